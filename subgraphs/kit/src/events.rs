//! The event bus: Redis pub/sub shared by every replica, or an in-process bus.
//!
//! Every process holds ONE Redis subscriber connection (a pattern subscription on
//! `<prefix>*`) and fans events out in-process through a tokio broadcast channel, so the number
//! of Redis connections does not grow with the number of GraphQL subscribers. The subscriber
//! reconnects by itself after Redis restarts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::{Mutex, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::BroadcastStream;

/// How many events a slow subscriber may fall behind before it starts missing some.
const FAN_OUT_CAPACITY: usize = 4096;
/// About how many events each topic's Redis stream keeps for durable consumers.
const STREAM_LENGTH: usize = 100_000;

/// A topic, and the type of its payloads: producers and consumers name the same constant, so
/// neither its name nor its payload can drift apart between them.
pub struct Topic<T> {
    name: &'static str,
    payload: std::marker::PhantomData<fn() -> T>,
}

impl<T> Topic<T> {
    /// The topic `name` with payloads of type `T`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            payload: std::marker::PhantomData,
        }
    }

    /// The topic's name (the Redis channel is `<prefix><name>`).
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Topic<T> {}

impl<T> std::fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// One event on the bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// What happened, e.g. `stock_changed`. The Redis channel is `<prefix><topic>`.
    pub topic: String,
    /// The event's data, as the publishing subgraph wrote it.
    pub payload: serde_json::Value,
}

/// A failure to publish an event.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis did not take the event.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The event could not be encoded.
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The process's event bus. Cloning it is cheap and shares the one connection.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    sender: broadcast::Sender<Event>,
    redis: Option<RedisBus>,
}

struct RedisBus {
    client: redis::Client,
    /// Created on first use and kept: it reconnects by itself after failures.
    publisher: Mutex<Option<ConnectionManager>>,
    /// Whether the subscriber connection is currently subscribed.
    subscribed: watch::Receiver<bool>,
    subscriber: JoinHandle<()>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("prefix", &self.inner.prefix)
            .field("redis", &self.inner.redis.is_some())
            .finish()
    }
}

impl EventBus {
    /// A bus that never leaves this process: what runs without `REDIS_URL`.
    pub fn in_process(prefix: &str) -> Self {
        let (sender, _) = broadcast::channel(FAN_OUT_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                sender,
                redis: None,
            }),
        }
    }

    /// A bus on Redis at `url`. It returns at once; the subscriber connects (and reconnects) in
    /// the background, so a Redis that is down at start-up is not fatal.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let (sender, _) = broadcast::channel(FAN_OUT_CAPACITY);
        let (subscribed_tx, subscribed) = watch::channel(false);
        let subscriber = tokio::spawn(subscribe_loop(
            client.clone(),
            prefix.to_owned(),
            sender.clone(),
            subscribed_tx,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                sender,
                redis: Some(RedisBus {
                    client,
                    publisher: Mutex::new(None),
                    subscribed,
                    subscriber,
                }),
            }),
        })
    }

    /// The Redis stream durable consumers of `topic` read.
    pub fn stream_key(&self, topic: &str) -> String {
        format!("{}stream:{topic}", self.inner.prefix)
    }

    /// The Redis client, when the bus is on Redis.
    pub fn redis_client(&self) -> Option<&redis::Client> {
        self.inner.redis.as_ref().map(|r| &r.client)
    }

    /// The channel-name prefix of this bus.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Waits until the bus can deliver events: at once in-process, and on Redis once the
    /// subscriber connection is subscribed. The outbox relay waits for this before publishing,
    /// so events written while Redis was down are not published into a gap.
    pub async fn ready(&self) {
        if let Some(redis) = &self.inner.redis {
            let mut subscribed = redis.subscribed.clone();
            // An error means the subscriber task is gone, which only happens on shutdown.
            let _ = subscribed.wait_for(|ready| *ready).await;
        }
    }

    /// Whether the bus is connected (always true in-process).
    pub fn is_ready(&self) -> bool {
        self.inner
            .redis
            .as_ref()
            .is_none_or(|redis| *redis.subscribed.borrow())
    }

    /// Publishes `event` to every replica (and to this process).
    pub async fn publish(&self, event: &Event) -> Result<(), BusError> {
        match &self.inner.redis {
            None => {
                // No receiver is not an error: nobody is subscribed right now.
                let _ = self.inner.sender.send(event.clone());
            }
            Some(redis) => {
                let channel = format!("{}{}", self.inner.prefix, event.topic);
                let body = serde_json::to_string(&event.payload)?;
                let mut conn = redis.publisher().await?;
                // Live subscribers get the pub/sub message; durable consumers read the stream.
                let () = redis::pipe()
                    .atomic()
                    .publish(&channel, &body)
                    .ignore()
                    .xadd_maxlen(
                        self.stream_key(&event.topic),
                        redis::streams::StreamMaxlen::Approx(STREAM_LENGTH),
                        "*",
                        &[("payload", body.as_str())],
                    )
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Every event on `topic` from now on.
    pub fn subscribe(&self, topic: &str) -> impl Stream<Item = Event> + Send + 'static {
        let topic = topic.to_owned();
        BroadcastStream::new(self.inner.sender.subscribe()).filter_map(move |item| {
            let event = match item {
                Ok(event) if event.topic == topic => Some(event),
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(error = %err, "a subscriber fell behind and missed events");
                    None
                }
            };
            std::future::ready(event)
        })
    }

    /// Every event on `topic` from now on, decoded as `T`. Events that don't decode are logged
    /// and skipped.
    pub fn events<T: DeserializeOwned + Send + 'static>(
        &self,
        topic: &str,
    ) -> impl Stream<Item = T> + Send + 'static {
        self.subscribe(topic).filter_map(|event| {
            let decoded = serde_json::from_value(event.payload)
                .inspect_err(
                    |err| tracing::warn!(topic = event.topic, error = %err, "undecodable event"),
                )
                .ok();
            std::future::ready(decoded)
        })
    }
}

impl RedisBus {
    async fn publisher(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.publisher.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = self
            .client
            .get_connection_manager_with_config(config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Keeps one pattern subscription on `<prefix>*` alive, reconnecting with backoff, and fans
/// every message out to `sender`.
async fn subscribe_loop(
    client: redis::Client,
    prefix: String,
    sender: broadcast::Sender<Event>,
    subscribed: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(format!("{prefix}*")).await {
                Ok(()) => {
                    tracing::info!(prefix, "subscribed to redis");
                    backoff = Duration::from_millis(50);
                    subscribed.send_replace(true);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        fan_out(&msg, &prefix, &sender);
                    }
                    subscribed.send_replace(false);
                    tracing::warn!(prefix, "redis subscription lost; reconnecting");
                }
                Err(err) => tracing::warn!(error = %err, "redis psubscribe failed"),
            },
            Err(err) => tracing::debug!(error = %err, "redis unreachable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

fn fan_out(msg: &redis::Msg, prefix: &str, sender: &broadcast::Sender<Event>) {
    let channel = msg.get_channel_name();
    let Some(topic) = channel.strip_prefix(prefix) else {
        return;
    };
    let payload = match msg
        .get_payload::<String>()
        .map_err(|err| err.to_string())
        .and_then(|body| serde_json::from_str(&body).map_err(|err| err.to_string()))
    {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(
                channel,
                error = err,
                "dropping an undecodable redis message"
            );
            return;
        }
    };
    let _ = sender.send(Event {
        topic: topic.to_owned(),
        payload,
    });
}
