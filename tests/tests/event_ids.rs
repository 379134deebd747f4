//! Event ids on the Redis bus: resuming after an id (with events published across the seam),
//! the gap error when the id is no longer kept, a subscriber that falls behind the in-process
//! fan-out, and one whose Redis goes away and comes back.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::json;
use tessera_kit::events::{Event, EventBus, RedisTarget, Retention, stream_key};
use tessera_tests::{
    PrivateRedis, REDIS_URL, SubgraphOptions, TestDb, TestRedis, WsClient, post_graphql,
    spawn_subgraph, unique_prefix, wait_until,
};

const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn event(topic: &str, n: u64) -> Event {
    Event {
        topic: topic.to_owned(),
        payload: json!({ "n": n }),
        id: None,
    }
}

pub(crate) async fn ready_bus(
    target: RedisTarget,
    prefix: &str,
    retention: Retention,
) -> anyhow::Result<EventBus> {
    let bus = EventBus::on(target, prefix, retention);
    tokio::time::timeout(TIMEOUT, bus.ready()).await?;
    Ok(bus)
}

/// The `n` of each next event of `stream` until `count` are read.
pub(crate) async fn take_ns<S>(stream: &mut S, count: usize) -> anyhow::Result<Vec<u64>>
where
    S: futures_util::Stream<Item = Result<Arc<Event>, tessera_kit::events::Gap>> + Unpin,
{
    let mut ns = Vec::with_capacity(count);
    while ns.len() < count {
        let item = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("no event after {} of {count}", ns.len()))?
            .ok_or_else(|| anyhow::anyhow!("the stream ended after {}", ns.len()))?;
        let event = item?;
        anyhow::ensure!(event.id.is_some(), "an event without an id");
        ns.push(event.payload["n"].as_u64().unwrap_or(u64::MAX));
    }
    Ok(ns)
}

#[tokio::test]
async fn a_publish_retried_after_its_answer_was_lost_is_appended_once() -> anyhow::Result<()> {
    publish_once(&TestRedis::Shared).await
}

pub(crate) async fn publish_once(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    let bus = ready_bus(server.target()?, &prefix, Retention::default()).await?;
    bus.listen("orders").await?;
    let mut follower = Box::pin(bus.follow("orders", None));
    let sent = |n: u64, source: &'static str, position: i64| {
        let bus = bus.clone();
        async move {
            let id = bus
                .publish_once(&event("orders", n), source, position)
                .await?;
            anyhow::Ok(id.is_some())
        }
    };
    assert!(sent(1, "a", 7).await?);
    // Its retry: already published.
    assert!(!sent(1, "a", 7).await?);
    // An earlier position that was not published (its row committed late) goes out, once.
    assert!(sent(2, "a", 6).await?);
    assert!(!sent(2, "a", 6).await?);
    // Another source counts its own positions.
    assert!(sent(3, "b", 7).await?);
    assert!(sent(4, "a", 8).await?);
    assert_eq!(take_ns(&mut follower, 4).await?, vec![1, 2, 3, 4]);
    let mut conn = server.connection().await?;
    let kept: usize = conn.xlen(stream_key(&prefix, "orders")).await?;
    assert_eq!(kept, 4, "each event once in the stream");
    // It remembers the latest positions of each source, not every one ever.
    for position in 100..1_200 {
        sent(5, "a", position).await?;
    }
    assert!(!sent(5, "a", 1_199).await?);
    assert!(sent(6, "a", 7).await?);
    Ok(())
}

#[tokio::test]
async fn a_follower_resumes_after_an_id_while_events_keep_coming_each_once_in_order()
-> anyhow::Result<()> {
    resume_across_the_seam(&TestRedis::Shared).await
}

pub(crate) async fn resume_across_the_seam(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    let bus = ready_bus(server.target()?, &prefix, Retention::default()).await?;
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(bus.publish(&event("orders", n)).await?);
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids grow");
    // A second process of the same deployment (its own subscriber connection) resumes after
    // event 19 while the first keeps publishing: the seam between replay and live falls among
    // concurrent publishes.
    let reader = ready_bus(server.target()?, &prefix, Retention::default()).await?;
    let writer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 50..400 {
                bus.publish(&event("orders", n)).await?;
                if n % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut follower = Box::pin(reader.follow("orders", Some(ids[19])));
    let got = take_ns(&mut follower, 380).await?;
    writer.await??;
    assert_eq!(
        got,
        (20..400).collect::<Vec<_>>(),
        "every later event once, in order"
    );
    // Then live: nothing more, until one more is published.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), follower.next())
            .await
            .is_err(),
        "no duplicate after the last"
    );
    bus.publish(&event("orders", 400)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![400]);
    Ok(())
}

#[tokio::test]
async fn resuming_after_an_id_the_stream_no_longer_keeps_is_a_gap() -> anyhow::Result<()> {
    gap(&TestRedis::Shared).await
}

pub(crate) async fn gap(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    // Redis trims in whole stream nodes (100 entries by default): publish well past them.
    let retention = Retention {
        max_events: 10,
        max_age: None,
    };
    let bus = ready_bus(server.target()?, &prefix, retention).await?;
    let first = bus.publish(&event("orders", 0)).await?;
    let mut last = first;
    for n in 1..500 {
        last = bus.publish(&event("orders", n)).await?;
    }
    let mut follower = Box::pin(bus.follow("orders", Some(first)));
    let item = tokio::time::timeout(TIMEOUT, follower.next()).await?;
    let gap = item.expect("an item").expect_err("a gap, not an event");
    assert_eq!(gap.after, first);
    assert!(!gap.reset);
    assert!(follower.next().await.is_none(), "it ends after the gap");
    // The newest id is still kept: resuming there is no gap, and waits for the next.
    let mut follower = Box::pin(bus.follow("orders", Some(last)));
    bus.publish(&event("orders", 500)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![500]);
    // An id the topic never reached in this stream's life is a gap too (Redis lost it).
    let mut stranger = Box::pin(bus.follow("other", Some(last)));
    let gap = tokio::time::timeout(TIMEOUT, stranger.next())
        .await?
        .expect("an item")
        .expect_err("a gap");
    assert!(gap.reset);
    // Redis lost the topic, and a consumer group made its stream anew (`XGROUP CREATE …
    // MKSTREAM`) before anything was published: resuming from before is a gap, not silence.
    let stream = stream_key(&prefix, "orders");
    let mut conn = server.connection().await?;
    let _: i64 = redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:origin"))
        .query_async(&mut conn)
        .await?;
    let _: () = conn.xgroup_create_mkstream(&stream, "saga", "0").await?;
    let mut resumed = Box::pin(bus.follow("orders", Some(last)));
    let gap = tokio::time::timeout(TIMEOUT, resumed.next())
        .await?
        .expect("an item")
        .expect_err("a gap");
    assert!(gap.reset);
    // The new life's first event starts its history: resuming after it is no gap.
    let id = bus.publish(&event("orders", 501)).await?;
    let mut follower = Box::pin(bus.follow("orders", Some(id)));
    bus.publish(&event("orders", 502)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![502]);
    Ok(())
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_the_fan_out_catches_up_from_the_stream()
-> anyhow::Result<()> {
    lag_catch_up(&TestRedis::Shared).await
}

pub(crate) async fn lag_catch_up(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    let bus = ready_bus(server.target()?, &prefix, Retention::default()).await?;
    // On a cluster: subscribed before anything is published.
    bus.listen("orders").await?;
    let mut follower = Box::pin(bus.follow("orders", None));
    bus.publish(&event("orders", 0)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![0]);
    // More than the in-process fan-out holds (4096), while the follower reads nothing.
    let total = 6000;
    for n in 1..=total {
        bus.publish(&event("orders", n)).await?;
    }
    let got = take_ns(&mut follower, usize::try_from(total)?).await?;
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "none missed, none twice"
    );
    Ok(())
}

#[tokio::test]
async fn a_subscriber_catches_up_after_its_redis_connection_drops() -> anyhow::Result<()> {
    let redis = PrivateRedis::start().await?;
    let prefix = unique_prefix();
    let subscriber = ready_bus(
        RedisTarget::parse(&redis.url(), false)?,
        &prefix,
        Retention::default(),
    )
    .await?;
    let publisher = ready_bus(
        RedisTarget::parse(&redis.url(), false)?,
        &prefix,
        Retention::default(),
    )
    .await?;
    let mut follower = Box::pin(subscriber.follow("orders", None));
    publisher.publish(&event("orders", 0)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![0]);
    // Cut the subscriber's pub/sub connection (Redis stays up, its data kept); events published
    // before it is back are missed by pub/sub and must come from the stream.
    let client = redis::Client::open(redis.url())?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await?;
    for n in 1..=20 {
        publisher.publish(&event("orders", n)).await?;
    }
    let got = take_ns(&mut follower, 20).await?;
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    // Redis restarted without its data: the follower goes on with the new stream.
    let mut redis = redis;
    redis.kill().await?;
    redis.restart().await?;
    wait_until("both buses to reconnect", TIMEOUT, || async {
        subscriber.is_ready() && publisher.is_ready()
    })
    .await?;
    // The publisher's connection finds out on its first command; that one may fail.
    let mut n = 21;
    let mut failures = 0;
    while n <= 25 {
        match publisher.publish(&event("orders", n)).await {
            Ok(_) => n += 1,
            Err(_) if n == 21 && failures < 20 => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    assert_eq!(
        take_ns(&mut follower, 5).await?,
        (21..=25).collect::<Vec<_>>()
    );
    Ok(())
}

const STOCK_CHANGED: &str = "subscription($upc: String) { stockChanged(upc: $upc) { upc delta } }";

async fn restock(url: &str, upc: &str, quantity: i64) -> anyhow::Result<()> {
    let body = post_graphql(
        url,
        "mutation($upc: String!, $q: Int!) { restock(upc: $upc, quantity: $q) { stock } }",
        json!({ "upc": upc, "q": quantity }),
    )
    .await?;
    anyhow::ensure!(body.get("errors").is_none(), "restock failed: {body}");
    Ok(())
}

/// Subscribes `client` under `id` to the stock of `upc`, after `last` when given.
async fn subscribe_stock(
    client: &mut WsClient,
    id: &str,
    upc: &str,
    last: Option<&str>,
) -> anyhow::Result<()> {
    let mut payload = json!({ "query": STOCK_CHANGED, "variables": { "upc": upc } });
    if let Some(last) = last {
        payload["extensions"] = json!({ "lastEventId": last });
    }
    client
        .send_json(&json!({ "type": "subscribe", "id": id, "payload": payload }))
        .await
}

/// The next event on `id`: its delta and its id.
async fn next_stock(client: &mut WsClient, id: &str) -> anyhow::Result<(i64, String)> {
    let payload = client.next_payload(id, TIMEOUT).await?;
    let delta = payload["data"]["stockChanged"]["delta"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no delta in {payload}"))?;
    let id = payload["extensions"]["eventId"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no eventId in {payload}"))?;
    Ok((delta, id.to_owned()))
}

/// The `code` of the error that ends subscription `id` (async-graphql sends a request it
/// refuses, and an error item of the stream, as a `next` with `errors`), once it is complete.
async fn error_code(client: &mut WsClient, id: &str) -> anyhow::Result<String> {
    let mut code = None;
    loop {
        let message = client.next_message(TIMEOUT).await?;
        if message["id"] != id {
            continue;
        }
        let errors = match message["type"].as_str() {
            Some("next") => &message["payload"]["errors"],
            Some("error") => &message["payload"],
            Some("complete") => {
                return code.ok_or_else(|| anyhow::anyhow!("completed without an error"));
            }
            _ => anyhow::bail!("unexpected: {message}"),
        };
        anyhow::ensure!(
            message["payload"]["data"].is_null(),
            "data with the error: {message}"
        );
        code = errors[0]["extensions"]["code"].as_str().map(str::to_owned);
        if message["type"] == "error" {
            return code.ok_or_else(|| anyhow::anyhow!("an error without a code: {message}"));
        }
    }
}

#[tokio::test]
async fn a_subgraph_subscription_tags_events_with_ids_and_resumes_after_one() -> anyhow::Result<()>
{
    let db = TestDb::create().await?;
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&SubgraphOptions {
        database_url: Some(db.url.clone()),
        redis_url: Some(REDIS_URL.to_owned()),
        seed: true,
        event_stream_max_len: Some(10),
        ..SubgraphOptions::default()
    })
    .await?;
    let url = inventory.graphql_url();
    let upc = tessera_seed::upc(1);
    let mut live = WsClient::connect(&inventory.ws_url()).await?;
    subscribe_stock(&mut live, "live", &upc, None).await?;
    // graphql-transport-ws does not acknowledge a subscribe: restock until one arrives.
    let mut first = None;
    for _ in 0..50 {
        restock(&url, &upc, 1).await?;
        if let Ok(payload) = live.next_payload("live", Duration::from_millis(200)).await {
            first = payload["extensions"]["eventId"].as_str().map(str::to_owned);
            break;
        }
    }
    let first = first.ok_or_else(|| anyhow::anyhow!("no event with an id"))?;
    for delta in 2..=4 {
        restock(&url, &upc, delta).await?;
    }
    let mut ids = vec![first.clone()];
    for delta in 2..=4 {
        let (got, id) = next_stock(&mut live, "live").await?;
        assert_eq!(got, delta);
        ids.push(id);
    }
    // Another client resumes after the second event: the third and fourth, then live.
    let mut resumed = WsClient::connect(&inventory.ws_url()).await?;
    subscribe_stock(&mut resumed, "r", &upc, Some(&ids[1])).await?;
    assert_eq!(next_stock(&mut resumed, "r").await?, (3, ids[2].clone()));
    assert_eq!(next_stock(&mut resumed, "r").await?, (4, ids[3].clone()));
    restock(&url, &upc, 5).await?;
    let (delta, fifth) = next_stock(&mut resumed, "r").await?;
    assert_eq!(delta, 5);
    assert_eq!(next_stock(&mut live, "live").await?, (5, fifth));

    // Not an id: refused with a code.
    subscribe_stock(&mut resumed, "bad", &upc, Some("yesterday")).await?;
    assert_eq!(error_code(&mut resumed, "bad").await?, "BAD_EVENT_ID");
    // Far past what the stream keeps (10 here, trimmed in whole nodes of 100): a gap.
    for _ in 0..120 {
        restock(&url, &upc, 1).await?;
    }
    subscribe_stock(&mut resumed, "old", &upc, Some(&first)).await?;
    assert_eq!(error_code(&mut resumed, "old").await?, "EVENT_GAP");

    live.close().await?;
    resumed.close().await?;
    inventory.shutdown().await;
    db.drop().await
}
