//! The live dashboard: one computation per event serves every subscriber, and resolving many
//! `Dashboard` representations computes the figures once.

use std::time::Duration;

use serde_json::json;
use tessera_kit::{Event, Pool};
use tessera_tests::{SubgraphOptions, TestDb, WsClient, post_graphql, spawn_subgraph};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Statements of one computation of the figures.
const PER_COMPUTATION: u64 = 3;

#[tokio::test]
async fn one_computation_per_event_serves_every_dashboard_subscriber() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let orders = spawn_subgraph::<tessera_orders::Orders>(&SubgraphOptions {
        database_url: Some(db.url.clone()),
        seed: true,
        ..SubgraphOptions::default()
    })
    .await?;
    let mut client = WsClient::connect(&orders.ws_url()).await?;
    let subscribers = 8;
    for n in 0..subscribers {
        client
            .subscribe(
                &format!("d{n}"),
                "subscription { dashboard { ordersTotal computedAt } }",
                json!({}),
            )
            .await?;
    }
    for n in 0..subscribers {
        client.next_payload(&format!("d{n}"), TIMEOUT).await?;
    }
    // Settle: the first figures are computed; nothing else runs on the request pool now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = orders.app.metrics.db_statements(Pool::Requests);
    orders
        .app
        .bus
        .publish(&Event {
            topic: tessera_events::ORDER_STATUS_CHANGED.name().to_owned(),
            payload: json!({}),
        })
        .await?;
    for n in 0..subscribers {
        client.next_payload(&format!("d{n}"), TIMEOUT).await?;
    }
    let spent = orders.app.metrics.db_statements(Pool::Requests) - before;
    assert_eq!(spent, PER_COMPUTATION, "{subscribers} subscribers");
    client.close().await?;
    orders.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn many_dashboard_representations_are_computed_once() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let orders = spawn_subgraph::<tessera_orders::Orders>(&SubgraphOptions {
        database_url: Some(db.url.clone()),
        seed: true,
        loader_delay_ms: Some(50),
        ..SubgraphOptions::default()
    })
    .await?;
    let before = orders.app.metrics.db_statements(Pool::Requests);
    let representations: Vec<_> = (0..20)
        .map(|_| json!({ "__typename": "Dashboard", "id": "shop" }))
        .collect();
    let body = post_graphql(
        &orders.graphql_url(),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Dashboard { ordersTotal ordersPerMinute } } }",
        json!({ "r": representations }),
    )
    .await?;
    anyhow::ensure!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["_entities"].as_array().map(Vec::len), Some(20));
    assert_eq!(
        body["data"]["_entities"][0]["ordersPerMinute"]
            .as_array()
            .map(Vec::len),
        Some(15)
    );
    let spent = orders.app.metrics.db_statements(Pool::Requests) - before;
    assert_eq!(spent, PER_COMPUTATION);
    orders.shutdown().await;
    db.drop().await
}
