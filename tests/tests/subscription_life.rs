//! Subscriptions outliving what changes around them: a supergraph reload in the middle of a
//! stream (compatible subscriptions lose nothing, an incompatible one ends with
//! `SUBSCRIPTION_SCHEMA_RELOAD`), and the subgraph serving the upstream going away (clients
//! resume when it comes back in time, else get `SUBGRAPH_SUBSCRIPTION_FAILED`), with the
//! router's gauges back at zero once clients leave.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_tests::{Shop, ShopOptions, WsClient, wait_until};

const TIMEOUT: Duration = Duration::from_secs(15);
const COMPATIBLE: &str = "subscription { orderPlaced { id buyer { username } } }";
const INCOMPATIBLE: &str = "subscription { orderPlaced { id items { product { name } } } }";

/// The example's supergraph with `Product.name` gone from products (as if that subgraph had
/// dropped the field).
async fn supergraph_without_product_name(shop: &Shop) -> anyhow::Result<String> {
    let mut sources = Vec::new();
    for (name, sdl) in tessera_example::schemas().await {
        let sdl = if name == "products" {
            let lines: Vec<&str> = sdl.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.trim() == "name: String!")
                .ok_or_else(|| anyhow::anyhow!("products declares name"))?;
            // The field and the description block above it.
            let start = (0..at)
                .rev()
                .take_while(|i| lines[*i].trim() != "type Product @key(fields: \"upc\") {")
                .filter(|i| lines[*i].trim() == "\"\"\"")
                .nth(1)
                .unwrap_or(at);
            let kept: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < start || *i > at)
                .map(|(_, l)| *l)
                .collect();
            kept.join("\n")
        } else {
            sdl
        };
        sources.push(tessera::compose::SubgraphSource {
            name: name.to_owned(),
            url: shop.subgraph(name).graphql_url(),
            sdl,
        });
    }
    let composed = tessera::compose::compose(&sources);
    composed
        .supergraph
        .ok_or_else(|| anyhow::anyhow!("{:?}", composed.diagnostics))
}

/// The order ids in `client`'s `next` messages for `id` until `count` arrived.
async fn ids(client: &mut WsClient, id: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    while out.len() < count {
        let payload = client.next_payload(id, TIMEOUT).await?;
        out.push(
            payload["data"]["orderPlaced"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Ok(out)
}

#[tokio::test]
async fn a_supergraph_reload_keeps_compatible_subscriptions_streaming_without_a_gap()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut client = WsClient::connect(&shop.ws_url()).await?;
        client.subscribe("o", COMPATIBLE, json!({})).await?;
        clients.push(client);
    }
    let mut doomed = WsClient::connect(&shop.ws_url()).await?;
    doomed.subscribe("x", INCOMPATIBLE, json!({})).await?;
    // Warm up: every subscription hears one order.
    let mut warm = None;
    for _ in 0..50 {
        shop.place_order(3, 1, 1).await?;
        if let Ok(payload) = clients[0]
            .next_payload("o", Duration::from_millis(300))
            .await
        {
            warm = payload["data"]["orderPlaced"]["id"]
                .as_str()
                .map(str::to_owned);
            break;
        }
    }
    let warm = warm.ok_or_else(|| anyhow::anyhow!("no event before the reload"))?;
    for client in clients.iter_mut().skip(1) {
        while ids(client, "o", 1).await?[0] != warm {}
    }
    while doomed.next_payload("x", TIMEOUT).await?["data"]["orderPlaced"]["id"] != json!(warm) {}

    // Orders keep coming while the supergraph is swapped.
    let changed = supergraph_without_product_name(&shop).await?;
    let mut placed = Vec::new();
    for n in 0..20 {
        if n == 10 {
            let supergraph = tessera::supergraph::Supergraph::parse(&changed)?;
            let config = shop.live.engine().config().clone();
            shop.live
                .replace(tessera::engine::Engine::new(supergraph, config));
        }
        placed.push(shop.place_order(3, 1, 1).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for client in &mut clients {
        let received = ids(client, "o", placed.len()).await?;
        assert_eq!(received, placed, "every order across the swap, in order");
    }
    // The subscription that selects the removed field ends with a coded error.
    let ended = loop {
        let message = doomed.next_message(TIMEOUT).await?;
        if message["type"] != "next" {
            break message;
        }
    };
    assert_eq!(ended["type"], "error", "{ended}");
    assert_eq!(
        ended["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_SCHEMA_RELOAD"
    );
    // The compatible ones kept their upstream: still one.
    assert_eq!(shop.router.hub.upstream_count(), 1);
    for client in clients {
        client.close().await?;
    }
    doomed.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn subscriptions_resume_when_their_subgraph_comes_back_in_time() -> anyhow::Result<()> {
    // On Redis, the restarted subgraph has the stream the router resumes from (an in-process
    // bus would start a new history, and the client would rightly hear EVENT_GAP).
    let mut shop = Shop::start(ShopOptions {
        redis: true,
        ..ShopOptions::default()
    })
    .await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client.subscribe("o", COMPATIBLE, json!({})).await?;
    let mut heard = false;
    for _ in 0..50 {
        shop.place_order(3, 1, 1).await?;
        if client
            .next_payload("o", Duration::from_millis(300))
            .await
            .is_ok()
        {
            heard = true;
            break;
        }
    }
    anyhow::ensure!(heard, "no event before the restart");
    let addr = shop.stop_subgraph("orders").await?;
    shop.restart_orders(addr).await?;
    // The router reconnects and subscribes again; events flow once more.
    let mut resumed = None;
    for _ in 0..50 {
        if shop.place_order(3, 1, 1).await.is_ok()
            && let Ok(payload) = client.next_payload("o", Duration::from_millis(300)).await
        {
            resumed = Some(payload);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let payload = resumed.ok_or_else(|| anyhow::anyhow!("no event after the restart"))?;
    assert!(
        payload["data"]["orderPlaced"]["id"].is_string(),
        "{payload}"
    );
    client.close().await?;
    wait_until("the gauges return to zero", TIMEOUT, || async {
        let hub = &shop.router.hub;
        hub.subscription_count() == 0 && hub.upstream_count() == 0 && hub.connection_count() == 0
    })
    .await?;
    shop.stop().await
}

#[tokio::test]
async fn a_subgraph_that_stays_away_ends_its_subscriptions_with_a_coded_error() -> anyhow::Result<()>
{
    let mut options = ShopOptions::default();
    options.server.subscriptions.upstream.grace = Duration::from_millis(500);
    let mut shop = Shop::start(options).await?;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = WsClient::connect(&shop.ws_url()).await?;
        client.subscribe("o", COMPATIBLE, json!({})).await?;
        clients.push(client);
    }
    wait_until("the upstream is subscribed", TIMEOUT, || async {
        shop.router.hub.upstream_count() == 1
    })
    .await?;
    shop.stop_subgraph("orders").await?;
    let mut codes = BTreeSet::new();
    for client in &mut clients {
        let message: Value = loop {
            let message = client.next_message(TIMEOUT).await?;
            if message["type"] != "next" {
                break message;
            }
        };
        assert_eq!(message["type"], "error", "{message}");
        codes.insert(message["payload"][0]["extensions"]["code"].to_string());
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        ["\"SUBGRAPH_SUBSCRIPTION_FAILED\""]
    );
    // The sockets stay usable, and nothing is left running once the clients go.
    clients[0].send_json(&json!({ "type": "ping" })).await?;
    assert_eq!(clients[0].next_message(TIMEOUT).await?["type"], "pong");
    for client in clients {
        client.close().await?;
    }
    wait_until("the gauges return to zero", TIMEOUT, || async {
        let hub = &shop.router.hub;
        hub.subscription_count() == 0
            && hub.upstream_count() == 0
            && hub.connection_count() == 0
            && hub.upstream_connections() == 0
    })
    .await?;
    shop.stop().await
}
