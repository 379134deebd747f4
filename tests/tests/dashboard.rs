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
            id: None,
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

/// Orders placed now are counted in the series' last minutes and in `ordersLastMinute`, on
/// SQLite and on PostgreSQL (a sum per minute needs a type both backends decode).
#[tokio::test]
async fn orders_placed_now_are_in_the_per_minute_series() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    for database_url in [None, Some(db.url.clone())] {
        let backend = if database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        let orders = spawn_subgraph::<tessera_orders::Orders>(&SubgraphOptions {
            database_url,
            seed: true,
            ..SubgraphOptions::default()
        })
        .await?;
        let figures = async || -> anyhow::Result<(i64, i64, Vec<i64>)> {
            let body = post_graphql(
                &orders.graphql_url(),
                "{ dashboard { ordersTotal ordersLastMinute ordersPerMinute } }",
                json!({}),
            )
            .await?;
            let d = &body["data"]["dashboard"];
            Ok((
                serde_json::from_value(d["ordersTotal"].clone())?,
                serde_json::from_value(d["ordersLastMinute"].clone())?,
                serde_json::from_value(d["ordersPerMinute"].clone())?,
            ))
        };
        let (total, last_minute, _) = figures().await?;
        let placed = 3;
        for _ in 0..placed {
            let body = post_graphql(
                &orders.graphql_url(),
                "mutation { placeOrder(input: { buyerId: \"1\", items: [{ upc: \"100001\", quantity: 1 }] }) { id } }",
                json!({}),
            )
            .await?;
            anyhow::ensure!(body.get("errors").is_none(), "{backend}: {body}");
        }
        let (total_after, last_minute_after, series) = figures().await?;
        assert_eq!(total_after - total, placed, "{backend}");
        assert_eq!(last_minute_after - last_minute, placed, "{backend}");
        assert_eq!(series.len(), 15, "{backend}");
        // They fall in this minute, or the one before when the minute turned meanwhile.
        assert!(series[13] + series[14] >= placed, "{backend}: {series:?}");
        orders.shutdown().await;
    }
    db.drop().await
}
