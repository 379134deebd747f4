//! Entity resolution (`_entities`) in each subgraph, on seeded PostgreSQL databases.

use serde_json::{Value, json};
use tessera_tests::{post_graphql, spawn_seeded};

async fn entities(url: &str, selection: &str, representations: Value) -> anyhow::Result<Value> {
    let query =
        format!("query($r: [_Any!]!) {{ _entities(representations: $r) {{ {selection} }} }}");
    let body = post_graphql(url, &query, json!({ "r": representations })).await?;
    anyhow::ensure!(body.get("errors").is_none(), "unexpected errors: {body}");
    Ok(body["data"]["_entities"].clone())
}

#[tokio::test]
async fn accounts_resolves_users_by_id_and_null_for_unknown_ids() -> anyhow::Result<()> {
    let (db, accounts) = spawn_seeded::<tessera_accounts::Accounts>().await?;
    let expected = &tessera_seed::users()[2];
    let found = entities(
        &accounts.graphql_url(),
        "... on User { id username name email }",
        json!([
            { "__typename": "User", "id": "3" },
            { "__typename": "User", "id": "999999" },
        ]),
    )
    .await?;
    assert_eq!(
        found,
        json!([
            { "id": "3", "username": expected.username, "name": expected.name, "email": expected.email },
            null,
        ])
    );
    accounts.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn products_resolves_products_by_upc() -> anyhow::Result<()> {
    let (db, products) = spawn_seeded::<tessera_products::Products>().await?;
    let catalog = tessera_seed::products();
    let found = entities(
        &products.graphql_url(),
        "... on Product { upc name price weight category }",
        json!([
            { "__typename": "Product", "upc": catalog[0].upc },
            { "__typename": "Product", "upc": catalog[41].upc },
            { "__typename": "Product", "upc": "no-such-upc" },
        ]),
    )
    .await?;
    let expect = |p: &tessera_seed::Product| json!({ "upc": p.upc, "name": p.name, "price": p.price, "weight": p.weight, "category": p.category });
    assert_eq!(
        found,
        json!([expect(&catalog[0]), expect(&catalog[41]), null])
    );
    products.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn inventory_resolves_stock_and_the_shipping_estimate_it_requires_price_and_weight_for()
-> anyhow::Result<()> {
    let (db, inventory) = spawn_seeded::<tessera_inventory::Inventory>().await?;
    let stock = tessera_seed::stock();
    let (upc, quantity) = &stock[7];
    let found = entities(
        &inventory.graphql_url(),
        "... on Product { upc stock inStock shippingEstimate }",
        json!([
            { "__typename": "Product", "upc": upc, "price": 2500, "weight": 1000 },
            { "__typename": "Product", "upc": upc, "price": 25000, "weight": 1000 },
        ]),
    )
    .await?;
    assert_eq!(
        found,
        json!([
            { "upc": upc, "stock": quantity, "inStock": *quantity > 0, "shippingEstimate": 999 },
            { "upc": upc, "stock": quantity, "inStock": *quantity > 0, "shippingEstimate": 0 },
        ])
    );
    inventory.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn reviews_resolves_reviews_and_adds_reviews_to_users_and_products() -> anyhow::Result<()> {
    let (db, reviews) = spawn_seeded::<tessera_reviews::Reviews>().await?;
    let seeded = tessera_seed::reviews();
    let first = &seeded[0];
    let found = entities(
        &reviews.graphql_url(),
        "... on Review { id rating body author { id } product { upc } }",
        json!([{ "__typename": "Review", "id": "1" }]),
    )
    .await?;
    assert_eq!(
        found,
        json!([{
            "id": "1", "rating": first.rating, "body": first.body,
            "author": { "id": first.author_id.to_string() },
            "product": { "upc": first.product_upc },
        }])
    );

    let by_author = seeded
        .iter()
        .filter(|r| r.author_id == first.author_id)
        .count();
    let by_product = seeded
        .iter()
        .filter(|r| r.product_upc == first.product_upc)
        .count();
    let found = entities(
        &reviews.graphql_url(),
        "... on User { reviews { id } } ... on Product { reviews { id } }",
        json!([
            { "__typename": "User", "id": first.author_id.to_string() },
            { "__typename": "Product", "upc": first.product_upc },
        ]),
    )
    .await?;
    assert_eq!(
        found[0]["reviews"].as_array().map(Vec::len),
        Some(by_author)
    );
    assert_eq!(
        found[1]["reviews"].as_array().map(Vec::len),
        Some(by_product)
    );
    reviews.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn orders_resolves_orders_with_items_and_adds_orders_to_users() -> anyhow::Result<()> {
    let (db, orders) = spawn_seeded::<tessera_orders::Orders>().await?;
    let seeded = tessera_seed::orders();
    let first = &seeded[0];
    let found = entities(
        &orders.graphql_url(),
        "... on Order { id status total buyer { id } items { quantity unitPrice product { upc } } }",
        json!([{ "__typename": "Order", "id": "1" }]),
    )
    .await?;
    let items: Vec<Value> = first
        .items
        .iter()
        .map(|(upc, quantity, price)| json!({ "quantity": quantity, "unitPrice": price, "product": { "upc": upc } }))
        .collect();
    let total: i64 = first.items.iter().map(|(_, q, p)| i64::from(*q) * p).sum();
    assert_eq!(
        found,
        json!([{
            "id": "1", "status": first.status, "total": total,
            "buyer": { "id": first.buyer_id.to_string() }, "items": items,
        }])
    );

    let of_buyer = seeded
        .iter()
        .filter(|o| o.buyer_id == first.buyer_id)
        .count();
    let found = entities(
        &orders.graphql_url(),
        "... on User { orders { id } }",
        json!([{ "__typename": "User", "id": first.buyer_id.to_string() }]),
    )
    .await?;
    assert_eq!(found[0]["orders"].as_array().map(Vec::len), Some(of_buyer));
    orders.shutdown().await;
    db.drop().await
}
