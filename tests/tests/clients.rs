//! Stock subscription clients, unchanged, against the router: the `graphql-ws` client, Apollo
//! Client with `GraphQLWsLink` and with `HttpLink` (multipart), `graphql-sse`, and the legacy
//! `subscriptions-transport-ws`. Each is an npm package run by Node (`tests/js`, installed by
//! the test command from its lockfile); each must receive the issue's `orderPlaced` event,
//! completed with fields of four subgraphs, after a mutation through the router.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_tests::{NodeScript, Shop, ShopOptions};

const ORDER_PLACED: &str = "subscription { orderPlaced { id total buyer { username reviews { rating } } \
     items { quantity product { name price inStock shippingEstimate } } } }";

/// Runs client `name` against `shop` until it prints one event; returns that event.
async fn event_through(shop: &Shop, name: &str) -> anyhow::Result<Value> {
    let NodeScript {
        mut child,
        mut lines,
    } = NodeScript::start(
        "clients.mjs",
        &[
            "--url",
            &shop.url(),
            "--client",
            name,
            "--query",
            ORDER_PLACED,
            "--count",
            "1",
            "--timeout-ms",
            "30000",
        ],
    )?;
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??;
    anyhow::ensure!(line.as_deref() == Some("READY"), "{name}: {line:?}");
    // The client cannot tell when the router has subscribed upstream: order until it hears.
    let mut ordering = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = ordering.tick() => {
                shop.place_order(3, 1, 1).await?;
            }
            line = lines.next_line() => {
                let line = line?.ok_or_else(|| anyhow::anyhow!("{name} ended without an event"))?;
                let message: Value = serde_json::from_str(&line)?;
                if let Some(event) = message.get("event") {
                    let status = child.wait().await?;
                    anyhow::ensure!(status.success(), "{name} exited with {status}");
                    return Ok(event.clone());
                }
                anyhow::bail!("{name}: {line}");
            }
        }
    }
}

fn assert_complete_order(name: &str, payload: &Value) {
    let order = &payload["data"]["orderPlaced"];
    assert!(payload.get("errors").is_none(), "{name}: {payload}");
    assert!(order["id"].is_string(), "{name}: {payload}");
    assert_eq!(
        order["buyer"]["username"],
        json!(tessera_seed::users()[2].username),
        "{name}"
    );
    assert!(order["buyer"]["reviews"].is_array(), "{name}: {payload}");
    let product = &order["items"][0]["product"];
    assert_eq!(
        product["name"],
        json!(tessera_seed::products()[0].name),
        "{name}"
    );
    assert!(product["inStock"].is_boolean(), "{name}: {payload}");
    assert!(product["shippingEstimate"].is_number(), "{name}: {payload}");
}

#[tokio::test]
async fn stock_npm_clients_receive_the_completed_order_placed_event() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    for name in [
        "graphql-ws",
        "apollo-ws",
        "apollo-multipart",
        "graphql-sse",
        "subscriptions-transport-ws",
    ] {
        let event = event_through(&shop, name).await?;
        assert_complete_order(name, &event);
    }
    shop.stop().await
}
