//! Durable consumers: a worker that must see every event of a topic, even those published
//! while it was down (inventory's share of the order saga).
//!
//! On Redis every published event is also appended to the stream `<prefix>stream:<topic>`
//! (see [`EventBus::publish`]). A consumer group reads it: pending entries first (delivered
//! before but never acknowledged), then new ones; an entry is acknowledged only after the
//! handler succeeded, so a crash or a failure means redelivery, never loss. Handlers must be
//! idempotent. All replicas of a subgraph share one consumer name, so a restarted replica picks
//! up what its predecessor left pending. Without Redis, events stay in the process and the
//! consumer simply follows the in-process bus.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::events::Event;

/// Entries read per round.
const BATCH: usize = 64;
/// How long one read waits for new entries, in milliseconds.
const BLOCK_MS: usize = 1_000;

/// Runs `handler` for every event on `topic`, as consumer group `group`.
pub fn spawn_consumer<F, Fut>(
    app: &AppState,
    group: &str,
    topic: &str,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let app = app.clone();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::spawn(async move {
        match app.bus.redis_client().cloned() {
            None => {
                let mut events = Box::pin(app.bus.subscribe(&topic));
                while let Some(event) = events.next().await {
                    app.metrics.event_received(&topic);
                    if let Err(err) = handler(event).await {
                        tracing::error!(topic, error = err, "handling an event failed");
                    }
                }
            }
            Some(client) => {
                let stream = app.bus.stream_key(&topic);
                let mut backoff = Duration::from_millis(100);
                loop {
                    match consume(&client, &stream, &group, &app, &topic, &handler).await {
                        Ok(()) => backoff = Duration::from_millis(100),
                        Err(err) => {
                            tracing::warn!(stream, group, error = %err, "durable consumer: retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            }
        }
    })
}

/// One connection's life: create the group if needed, then read, handle and acknowledge until
/// something fails.
async fn consume<F, Fut>(
    client: &redis::Client,
    stream: &str,
    group: &str,
    app: &AppState,
    topic: &str,
    handler: &F,
) -> Result<(), redis::RedisError>
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_millis(BLOCK_MS as u64 + 4_000)))
        .set_connection_timeout(Some(Duration::from_secs(2)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    // From the start of the stream: events published before this group existed count too.
    let created: Result<(), redis::RedisError> =
        conn.xgroup_create_mkstream(stream, group, "0").await;
    if let Err(err) = created
        && err.code() != Some("BUSYGROUP")
    {
        return Err(err);
    }
    // "0" re-reads what was delivered but never acknowledged; ">" reads new entries.
    let mut position = "0";
    loop {
        let options = StreamReadOptions::default()
            .group(group, group)
            .count(BATCH)
            .block(BLOCK_MS);
        let reply: Option<StreamReadReply> =
            conn.xread_options(&[stream], &[position], &options).await?;
        let entries: Vec<_> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if entries.is_empty() && position == "0" {
            position = ">";
            continue;
        }
        for entry in entries {
            let payload = entry
                .map
                .get("payload")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(serde_json::Value::Null);
            app.metrics.event_received(topic);
            let event = Event {
                topic: topic.to_owned(),
                payload,
            };
            match handler(event).await {
                Ok(()) => {
                    let _: usize = conn.xack(stream, group, &[&entry.id]).await?;
                }
                Err(err) => {
                    // Left pending: the next round re-reads it.
                    tracing::error!(
                        stream,
                        id = entry.id,
                        error = err,
                        "handling an event failed; it stays pending"
                    );
                    position = "0";
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}
