//! Resuming subscriptions through the router: every event carries its id (`extensions.eventId`,
//! SSE `id:`); a client that names the last one it got (`extensions.lastEventId` over
//! graphql-transport-ws and multipart, `Last-Event-ID` over SSE) gets every later event once,
//! in order, then live ones, also while events keep coming; an id no longer kept is
//! `EVENT_GAP`; a subgraph replica that goes away and comes back is resumed by the router after
//! the last event it had; and `maxEventsPerSecond` conflates.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_tests::{
    Shop, ShopOptions, WsClient, post_graphql, read_stream_until, spawn_subgraph, spawn_subgraph_at,
};

const TIMEOUT: Duration = Duration::from_secs(10);
const ORDER_PLACED: &str = "subscription { orderPlaced { id buyer { username } } }";

/// One delivered event: the order's id and the event's id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    order: String,
    event: String,
}

fn seen(payload: &Value) -> anyhow::Result<Seen> {
    anyhow::ensure!(payload.get("errors").is_none(), "errors: {payload}");
    let order = payload["data"]["orderPlaced"]["id"].as_str();
    let event = payload["extensions"]["eventId"].as_str();
    match (order, event) {
        (Some(order), Some(event)) => Ok(Seen {
            order: order.to_owned(),
            event: event.to_owned(),
        }),
        _ => anyhow::bail!("not a tagged order event: {payload}"),
    }
}

async fn subscribe(client: &mut WsClient, id: &str, extensions: Value) -> anyhow::Result<()> {
    client
        .send_json(&json!({
            "type": "subscribe",
            "id": id,
            "payload": { "query": ORDER_PLACED, "extensions": extensions },
        }))
        .await
}

async fn next_seen(client: &mut WsClient, id: &str) -> anyhow::Result<Seen> {
    seen(&client.next_payload(id, TIMEOUT).await?)
}

/// A live subscriber on `shop` that has heard one event (orders are placed until it does).
async fn live_subscriber(shop: &Shop) -> anyhow::Result<(WsClient, Seen)> {
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    subscribe(&mut client, "live", json!({})).await?;
    for _ in 0..50 {
        shop.place_order(3, 1, 1).await?;
        if let Ok(mut payload) = client
            .next_payload("live", Duration::from_millis(300))
            .await
        {
            // An order placed before this one may trail in: the newest heard is the start.
            while let Ok(later) = client
                .next_payload("live", Duration::from_millis(300))
                .await
            {
                payload = later;
            }
            return Ok((client, seen(&payload)?));
        }
    }
    anyhow::bail!("no orderPlaced event reached the live subscriber")
}

#[tokio::test]
async fn every_protocol_resumes_after_the_last_event_id_then_goes_live() -> anyhow::Result<()> {
    every_protocol_resumes(ShopOptions::default()).await
}

pub(crate) async fn every_protocol_resumes(options: ShopOptions) -> anyhow::Result<()> {
    let shop = Shop::start(options).await?;
    let (mut live, first) = live_subscriber(&shop).await?;
    let mut history = vec![first];
    for _ in 0..3 {
        shop.place_order(3, 1, 1).await?;
        history.push(next_seen(&mut live, "live").await?);
    }
    let events: Vec<&str> = history.iter().map(|s| s.event.as_str()).collect();
    let mut sorted = events.clone();
    sorted.sort_by_key(|id| id.parse::<tessera_kit::events::EventId>().ok());
    assert_eq!(events, sorted, "ids grow");
    let after = &history[1];

    // graphql-transport-ws: extensions.lastEventId.
    let mut ws = WsClient::connect(&shop.ws_url()).await?;
    subscribe(&mut ws, "r", json!({ "lastEventId": after.event })).await?;
    assert_eq!(next_seen(&mut ws, "r").await?, history[2]);
    assert_eq!(next_seen(&mut ws, "r").await?, history[3]);

    // SSE: the Last-Event-ID header, and each event's id as `id:`.
    let http = reqwest::Client::new();
    let sse = http
        .post(shop.url())
        .header("accept", "text/event-stream")
        .header("last-event-id", &after.event)
        .json(&json!({ "query": ORDER_PLACED }))
        .send()
        .await?;
    let text = read_stream_until(sse, TIMEOUT, |t| t.matches("event: next").count() >= 2).await?;
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(
        ids,
        vec![history[2].event.as_str(), history[3].event.as_str()],
        "{text}"
    );
    let orders: Vec<Seen> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| seen(&serde_json::from_str(data)?))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(orders, history[2..4].to_vec());

    // Multipart: extensions.lastEventId in the body.
    let multipart = http
        .post(shop.url())
        .header(
            "accept",
            "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
        )
        .json(&json!({ "query": ORDER_PLACED, "extensions": { "lastEventId": after.event } }))
        .send()
        .await?;
    let text = read_stream_until(multipart, TIMEOUT, |t| {
        t.matches("orderPlaced").count() >= 2 && t.ends_with("--graphql")
    })
    .await?;
    let parts: Vec<Seen> = text
        .split("\r\n\r\n")
        .filter(|part| part.contains("orderPlaced"))
        .map(|part| {
            let json = part.split("\r\n--graphql").next().unwrap_or_default();
            let body: Value = serde_json::from_str(json)?;
            seen(&body["payload"])
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(parts, history[2..4].to_vec());

    // Then live, to the resumed client and the live one alike, and nothing twice.
    shop.place_order(3, 1, 1).await?;
    let fifth = next_seen(&mut live, "live").await?;
    assert_eq!(next_seen(&mut ws, "r").await?, fifth);
    assert!(
        ws.next_payload("r", Duration::from_millis(300))
            .await
            .is_err(),
        "a duplicate"
    );
    // Caught up, the resumed subscriptions joined the live one: one upstream subscription
    // again, where each had one of its own while replaying.
    tessera_tests::wait_until("the resumed groups join the live one", TIMEOUT, || async {
        shop.router.hub.metrics.upstreams.get() == 1
    })
    .await?;

    // An id from before what the subgraph keeps (here: before its bus began) is a gap.
    subscribe(&mut ws, "gap", json!({ "lastEventId": "1-0" })).await?;
    let refused = ws.next_message(TIMEOUT).await?;
    let text = refused.to_string();
    assert!(text.contains("EVENT_GAP"), "{text}");
    // Extensions of the wrong type are refused by the router with a code.
    subscribe(&mut ws, "bad", json!({ "maxEventsPerSecond": "fast" })).await?;
    let refused = loop {
        let message = ws.next_message(TIMEOUT).await?;
        if message["id"] == "bad" {
            break message;
        }
    };
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST");
    live.close().await?;
    ws.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn resuming_while_orders_keep_coming_gives_each_once_in_order() -> anyhow::Result<()> {
    resuming_while_orders_keep_coming(ShopOptions::default()).await
}

pub(crate) async fn resuming_while_orders_keep_coming(options: ShopOptions) -> anyhow::Result<()> {
    let shop = std::sync::Arc::new(Shop::start(options).await?);
    let (mut live, first) = live_subscriber(&shop).await?;
    let total = 40;
    let writer = {
        let shop = std::sync::Arc::clone(&shop);
        tokio::spawn(async move {
            let mut orders = Vec::with_capacity(total);
            for _ in 0..total {
                orders.push(shop.place_order(3, 1, 1).await?);
            }
            anyhow::Ok(orders)
        })
    };
    let mut history = vec![first];
    for _ in 0..5 {
        history.push(next_seen(&mut live, "live").await?);
    }
    // Resume after the second event while the writer is still placing orders: the seam between
    // replay and live falls among them.
    let mut resumed = WsClient::connect(&shop.ws_url()).await?;
    subscribe(
        &mut resumed,
        "r",
        json!({ "lastEventId": history[1].event }),
    )
    .await?;
    // The live subscriber hears every order the writer placed (and any order placed while it
    // was being set up that trails in): that is the history the resumed one must match.
    let mut orders: std::collections::HashSet<String> = writer.await??.into_iter().collect();
    for event in &history {
        orders.remove(&event.order);
    }
    while !orders.is_empty() {
        let event = next_seen(&mut live, "live").await?;
        orders.remove(&event.order);
        history.push(event);
    }
    let newest = history.last().cloned();
    let mut got = Vec::new();
    while got.last() != newest.as_ref() {
        got.push(next_seen(&mut resumed, "r").await?);
        anyhow::ensure!(
            got.len() <= history.len(),
            "more events than published: {got:?}"
        );
    }
    assert_eq!(
        got,
        history[2..].to_vec(),
        "every later event once, in order"
    );
    assert!(
        resumed
            .next_payload("r", Duration::from_millis(500))
            .await
            .is_err(),
        "a duplicate"
    );
    live.close().await?;
    resumed.close().await?;
    match std::sync::Arc::try_unwrap(shop) {
        Ok(shop) => shop.stop().await,
        Err(_) => anyhow::bail!("the shop is still shared"),
    }
}

#[tokio::test]
async fn events_placed_while_the_subscribed_replica_is_away_reach_the_client_once_it_is_back()
-> anyhow::Result<()> {
    replica_away(ShopOptions {
        postgres: true,
        redis: true,
        ..ShopOptions::default()
    })
    .await
}

pub(crate) async fn replica_away(options: ShopOptions) -> anyhow::Result<()> {
    let mut shop = Shop::start(options).await?;
    let (db, replica_a) = shop.take_subgraph("orders")?;
    let options = shop.subgraph_options(db.as_ref());
    // A second replica of orders: same database, same Redis.
    let replica_b = spawn_subgraph::<tessera_orders::Orders>(&options).await?;
    let addr = replica_a.addr;
    shop.subgraphs.push(("orders", None, replica_a));
    let (mut client, first) = live_subscriber(&shop).await?;

    // The replica the router subscribed to goes away; orders go on through the other one.
    let (_, replica_a) = shop.take_subgraph("orders")?;
    replica_a.shutdown().await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        let body = post_graphql(
            &replica_b.graphql_url(),
            "mutation($u: String!) { placeOrder(input: { buyerId: \"3\", items: [{ upc: $u, quantity: 1 }] }) { id } }",
            json!({ "u": tessera_seed::upc(1) }),
        )
        .await?;
        let id = body["data"]["placeOrder"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no order: {body}"))?;
        placed.push(id.to_owned());
    }
    // It comes back (within the router's grace period): the router subscribes again after the
    // last event it had, and the client gets the five, then live ones.
    let replica_a = spawn_subgraph_at::<tessera_orders::Orders>(&options, addr).await?;
    shop.subgraphs.push(("orders", db, replica_a));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_seen(&mut client, "live").await?);
    }
    let orders: Vec<&str> = got.iter().map(|s| s.order.as_str()).collect();
    assert_eq!(
        orders,
        placed.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|s| s.event != first.event));
    shop.place_order(3, 1, 1).await?;
    let live = next_seen(&mut client, "live").await?;
    assert!(!placed.contains(&live.order));
    client.close().await?;
    replica_b.shutdown().await;
    shop.stop().await
}

#[tokio::test]
async fn a_rate_limited_subscription_gets_at_most_its_rate_and_ends_on_the_newest_state()
-> anyhow::Result<()> {
    let shop = std::sync::Arc::new(Shop::start(ShopOptions::default()).await?);
    let upc = tessera_seed::upc(2);
    let query = "subscription($upc: String) { stockChanged(upc: $upc) { stock } }";
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client
        .send_json(&json!({
            "type": "subscribe",
            "id": "slow",
            "payload": {
                "query": query,
                "variables": { "upc": upc },
                "extensions": { "maxEventsPerSecond": 2 },
            },
        }))
        .await?;
    let restock = |shop: std::sync::Arc<Shop>, upc: String| async move {
        shop.query(
            "mutation($u: String!) { restock(upc: $u, quantity: 1) { stock } }",
            json!({ "u": upc }),
        )
        .await
        .map(|data| data["restock"]["stock"].as_i64().unwrap_or_default())
    };
    // Wait for the subscription to be in place.
    let mut ready = false;
    for _ in 0..50 {
        restock(std::sync::Arc::clone(&shop), upc.clone()).await?;
        if client
            .next_payload("slow", Duration::from_millis(600))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
    }
    anyhow::ensure!(ready, "no stock event reached the subscriber");
    // 50 events a second for three seconds, while a reader notes when each delivery arrives.
    let started = tokio::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while let Ok(payload) = client
            .next_payload("slow", Duration::from_millis(1500))
            .await
        {
            arrivals.push((started.elapsed(), payload));
        }
        (client, arrivals)
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut newest = 0;
    for _ in 0..150 {
        tick.tick().await;
        newest = restock(std::sync::Arc::clone(&shop), upc.clone()).await?;
    }
    let publishing = started.elapsed();
    let (client, arrivals) = reader.await?;
    // The router sends at least half a second apart, so no second holds more than two. Seen
    // from here, on a loaded machine, an arrival can be late by a scheduling delay: three within
    // 700 ms would still be a broken limit (without one, 150 events come in three seconds).
    for pair in arrivals.windows(3) {
        let span = pair[2].0 - pair[0].0;
        assert!(
            span >= Duration::from_millis(700),
            "three events within {span:?}"
        );
    }
    if let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) {
        let allowed = (last.0 - first.0).as_secs_f64() * 2.0 + 2.0;
        assert!(
            arrivals.len() as f64 <= allowed,
            "{} events over {:?}",
            arrivals.len(),
            last.0 - first.0
        );
    }
    let expected = publishing.as_secs_f64() * 2.0;
    assert!(
        arrivals.len() as f64 >= expected - 2.0,
        "{} events in {publishing:?}",
        arrivals.len()
    );
    let last = &arrivals.last().expect("events").1;
    assert_eq!(
        last["data"]["stockChanged"]["stock"],
        json!(newest),
        "the newest state last"
    );
    println!(
        "conflation: 150 events in {publishing:?}, {} delivered at ≤2/s",
        arrivals.len()
    );
    client.close().await?;
    match std::sync::Arc::try_unwrap(shop) {
        Ok(shop) => shop.stop().await,
        Err(_) => anyhow::bail!("the shop is still shared"),
    }
}

/// Through the router, on a Redis Cluster with replicas: the primary holding `order_placed`
/// dies and its replica takes over; the live subscriber hears the orders placed afterwards,
/// each once.
pub(crate) async fn through_a_failover(
    mut cluster: tessera_tests::RedisCluster,
) -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions {
        redis: true,
        redis_cluster: Some(cluster.url()),
        ..ShopOptions::default()
    })
    .await?;
    let (mut live, _) = live_subscriber(&shop).await?;
    let prefix = shop
        .event_prefix
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a shop on Redis has a prefix"))?;
    cluster
        .fail_over(&tessera_kit::events::stream_key(&prefix, "order_placed"))
        .await?;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(shop.place_order(3, 1, 1).await?);
    }
    let mut heard = Vec::new();
    let mut seen = Vec::new();
    while heard.len() < placed.len() {
        let event = next_seen(&mut live, "live").await?;
        heard.push(event.order.clone());
        seen.push(event);
    }
    assert_eq!(heard, placed, "each order once, in order: {seen:?}");
    assert!(
        live.next_payload("live", Duration::from_millis(500))
            .await
            .is_err(),
        "a duplicate"
    );
    live.close().await?;
    shop.stop().await
}
