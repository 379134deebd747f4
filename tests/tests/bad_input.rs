//! Bad input gets a GraphQL error with `extensions.code`, changes nothing, and the process
//! keeps serving.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_kit::Running;
use tessera_tests::{WsClient, post_graphql, post_raw, spawn_seeded};

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

async fn still_serves(running: &Running) -> anyhow::Result<()> {
    let body = post_graphql(&running.graphql_url(), "{ __typename }", json!({})).await?;
    anyhow::ensure!(body["data"]["__typename"] == "Query", "not serving: {body}");
    Ok(())
}

async fn stock_of(inventory: &Running, upc: &str) -> anyhow::Result<Value> {
    let body = post_graphql(
        &inventory.graphql_url(),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { stock } } }",
        json!({ "r": [{ "__typename": "Product", "upc": upc }] }),
    )
    .await?;
    Ok(body["data"]["_entities"][0]["stock"].clone())
}

#[tokio::test]
async fn malformed_json_and_invalid_queries_get_coded_errors() -> anyhow::Result<()> {
    let (db, accounts) = spawn_seeded::<tessera_accounts::Accounts>().await?;
    let url = accounts.graphql_url();

    let (status, body) = post_raw(&url, "{ \"query\": ").await?;
    assert_eq!(status, 400);
    assert_eq!(code(&body), Some("BAD_REQUEST"), "{body}");

    let (status, body) = post_raw(&url, "[1, 2, 3]").await?;
    assert_eq!(status, 400);
    assert_eq!(code(&body), Some("BAD_REQUEST"), "{body}");

    let body = post_graphql(&url, "{ users { id ", json!({})).await?;
    assert_eq!(code(&body), Some("GRAPHQL_PARSE_FAILED"), "{body}");

    let body = post_graphql(&url, "{ users { id password } }", json!({})).await?;
    assert_eq!(code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");

    let body = post_graphql(
        &url,
        "query($id: ID!) { user(id: $id) { id } }",
        json!({ "id": [1] }),
    )
    .await?;
    assert!(
        code(&body).is_some(),
        "wrong variable type gets a code: {body}"
    );

    // Deeper than the subgraph's depth limit.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(40),
        "}".repeat(40)
    );
    let body = post_graphql(&url, &deep, json!({})).await?;
    assert!(
        code(&body).is_some(),
        "an over-deep query gets a code: {body}"
    );

    still_serves(&accounts).await?;
    accounts.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn invalid_mutation_input_gets_a_coded_error_and_changes_nothing() -> anyhow::Result<()> {
    let (db, inventory) = spawn_seeded::<tessera_inventory::Inventory>().await?;
    let url = inventory.graphql_url();
    let upc = tessera_seed::upc(3);
    let before = stock_of(&inventory, &upc).await?;
    let restock =
        "mutation($upc: String!, $q: Int!) { restock(upc: $upc, quantity: $q) { stock } }";

    for quantity in [0, -5] {
        let body = post_graphql(&url, restock, json!({ "upc": upc, "q": quantity })).await?;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    let body = post_graphql(&url, restock, json!({ "upc": "no-such-upc", "q": 3 })).await?;
    assert_eq!(code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(
        stock_of(&inventory, &upc).await?,
        before,
        "stock is unchanged"
    );
    assert_eq!(inventory.app.metrics.events_published("stock_changed"), 0);
    still_serves(&inventory).await?;
    inventory.shutdown().await;
    db.drop().await?;

    let (db, reviews) = spawn_seeded::<tessera_reviews::Reviews>().await?;
    let add = "mutation($body: String!, $rating: Int!) { addReview(input: { upc: \"100001\", authorId: \"1\", rating: $rating, body: $body }) { id } }";
    for (body_text, rating) in [("   ", 4), ("fine", 9)] {
        let body = post_graphql(
            &reviews.graphql_url(),
            add,
            json!({ "body": body_text, "rating": rating }),
        )
        .await?;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    let latest = post_graphql(
        &reviews.graphql_url(),
        "{ latestReviews(first: 1) { body } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        latest["data"]["latestReviews"][0]["body"],
        json!(tessera_seed::reviews()[0].body)
    );
    reviews.shutdown().await;
    db.drop().await?;

    let (db, orders) = spawn_seeded::<tessera_orders::Orders>().await?;
    let place = "mutation($items: [OrderItemInput!]!) { placeOrder(input: { buyerId: \"1\", items: $items }) { id } }";
    let cases = [
        (json!([]), "BAD_USER_INPUT"),
        (
            json!([{ "upc": "100001", "quantity": 0 }]),
            "BAD_USER_INPUT",
        ),
        (
            json!([{ "upc": "100001", "quantity": 1 }, { "upc": "nope", "quantity": 1 }]),
            "NOT_FOUND",
        ),
    ];
    for (items, expected) in cases {
        let body = post_graphql(&orders.graphql_url(), place, json!({ "items": items })).await?;
        assert_eq!(code(&body), Some(expected), "{body}");
    }
    let body = post_graphql(
        &orders.graphql_url(),
        "mutation { updateOrderStatus(id: \"999999\", status: PAID) { id } }",
        json!({}),
    )
    .await?;
    assert_eq!(code(&body), Some("NOT_FOUND"), "{body}");
    let dashboard = post_graphql(
        &orders.graphql_url(),
        "{ dashboard { ordersTotal } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        dashboard["data"]["dashboard"]["ordersTotal"],
        json!(tessera_seed::ORDERS)
    );
    orders.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn a_bad_websocket_message_closes_only_that_session() -> anyhow::Result<()> {
    let (db, inventory) = spawn_seeded::<tessera_inventory::Inventory>().await?;

    // An invalid subscription gets GraphQL errors with a code (async-graphql sends them as a
    // `next` payload followed by `complete`); the session stays open.
    let mut client = WsClient::connect(&inventory.ws_url()).await?;
    client
        .subscribe("bad", "subscription { noSuchField }", json!({}))
        .await?;
    let reply = client.next_message(Duration::from_secs(5)).await?;
    assert_eq!(reply["id"], "bad", "{reply}");
    assert_eq!(
        reply["payload"]["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{reply}"
    );

    // A frame that is not a protocol message closes the session with 4400.
    client.send_raw("this is not json").await?;
    let (close_code, reason) = client.expect_close(Duration::from_secs(5)).await?;
    assert_eq!(close_code, 4400, "closed with {close_code}: {reason}");

    // Other sessions and HTTP are unaffected.
    let mut other = WsClient::connect(&inventory.ws_url()).await?;
    other
        .subscribe("ok", "subscription { stockChanged { upc } }", json!({}))
        .await?;
    other.close().await?;
    still_serves(&inventory).await?;
    inventory.shutdown().await;
    db.drop().await
}
