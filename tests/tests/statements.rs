//! A request's SQL statement count depends on the query's depth, never on how many rows it
//! touches: every entity lookup and relation goes through a DataLoader. Counted through
//! `db_statements_total` (sea-orm's metric callback), on PostgreSQL.

use serde_json::{Value, json};
use tessera_kit::Subgraph;
use tessera_kit::{Pool, Running};
use tessera_tests::{SubgraphOptions, TestDb, post_graphql, spawn_subgraph};

/// Runs `query` and returns how many statements the request pool executed for it.
async fn statements_for(running: &Running, query: &str, variables: Value) -> anyhow::Result<u64> {
    let before = running.app.metrics.db_statements(Pool::Requests);
    let body = post_graphql(&running.graphql_url(), query, variables).await?;
    anyhow::ensure!(body.get("errors").is_none(), "unexpected errors: {body}");
    Ok(running.app.metrics.db_statements(Pool::Requests) - before)
}

/// The DataLoader batch window these tests run with. The property under test is that each
/// level costs one statement per batch; the kit's default window (5 ms) can be outrun when
/// the whole test binary shares two busy cores, which splits a batch and makes the count
/// depend on timing instead of depth.
const BATCH_WINDOW_MS: u64 = 150;

/// Subgraph `S`, seeded, on a database of its own, batching with [`BATCH_WINDOW_MS`].
async fn spawn_seeded<S: Subgraph>() -> anyhow::Result<(TestDb, Running)> {
    let db = TestDb::create().await?;
    let opts = SubgraphOptions {
        database_url: Some(db.url.clone()),
        seed: true,
        loader_delay_ms: Some(BATCH_WINDOW_MS),
        ..SubgraphOptions::default()
    };
    let running = spawn_subgraph::<S>(&opts).await?;
    Ok((db, running))
}

const ENTITIES: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ";

#[tokio::test]
async fn hundred_products_with_reviews_and_authors_cost_one_statement() -> anyhow::Result<()> {
    let (db, reviews) = spawn_seeded::<tessera_reviews::Reviews>().await?;
    let representations: Vec<Value> = tessera_seed::products()
        .iter()
        .take(100)
        .map(|p| json!({ "__typename": "Product", "upc": p.upc }))
        .collect();
    // Product and User are references here (no SQL); `Product.reviews` is one batch.
    let count = statements_for(
        &reviews,
        &format!("{ENTITIES} ... on Product {{ reviews {{ id author {{ id }} }} }} }} }}"),
        json!({ "r": representations }),
    )
    .await?;
    assert_eq!(count, 1, "100 products' reviews and authors");
    reviews.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn two_levels_of_relations_cost_two_statements_whatever_the_fan_out() -> anyhow::Result<()> {
    let (db, reviews) = spawn_seeded::<tessera_reviews::Reviews>().await?;
    let query = format!(
        "{ENTITIES} ... on User {{ reviews {{ id product {{ reviews {{ id rating }} }} }} }} }} }}"
    );
    let users = |n: i64| -> Value {
        (1..=n)
            .map(|id| json!({ "__typename": "User", "id": id.to_string() }))
            .collect()
    };
    // One user or a hundred: reviews by author, then reviews by product.
    assert_eq!(
        statements_for(&reviews, &query, json!({ "r": users(1) })).await?,
        2
    );
    assert_eq!(
        statements_for(&reviews, &query, json!({ "r": users(100) })).await?,
        2
    );
    reviews.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn orders_of_many_users_with_their_items_cost_two_statements() -> anyhow::Result<()> {
    let (db, orders) = spawn_seeded::<tessera_orders::Orders>().await?;
    let users: Vec<Value> = (1..=100)
        .map(|id: i64| json!({ "__typename": "User", "id": id.to_string() }))
        .collect();
    let count = statements_for(
        &orders,
        &format!("{ENTITIES} ... on User {{ orders {{ id total items {{ quantity product {{ upc }} }} }} }} }} }}"),
        json!({ "r": users }),
    )
    .await?;
    assert_eq!(count, 2, "orders by buyer, then items by order");
    orders.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn entity_lookups_of_many_keys_cost_one_statement_each_subgraph() -> anyhow::Result<()> {
    let (db, accounts) = spawn_seeded::<tessera_accounts::Accounts>().await?;
    let users: Vec<Value> = (1..=100)
        .map(|id: i64| json!({ "__typename": "User", "id": id.to_string() }))
        .collect();
    let count = statements_for(
        &accounts,
        &format!("{ENTITIES} ... on User {{ id name }} }} }}"),
        json!({ "r": users }),
    )
    .await?;
    assert_eq!(count, 1, "100 users");
    accounts.shutdown().await;
    db.drop().await?;

    let (db, inventory) = spawn_seeded::<tessera_inventory::Inventory>().await?;
    let products: Vec<Value> = tessera_seed::products()
        .iter()
        .take(100)
        .map(|p| json!({ "__typename": "Product", "upc": p.upc, "price": p.price, "weight": p.weight }))
        .collect();
    // `stock` and `inStock` share one loader batch.
    let count = statements_for(
        &inventory,
        &format!("{ENTITIES} ... on Product {{ stock inStock shippingEstimate }} }} }}"),
        json!({ "r": products }),
    )
    .await?;
    assert_eq!(count, 1, "100 products' stock");
    inventory.shutdown().await;
    db.drop().await
}
