//! The event bus: Redis shared by every replica, or an in-process bus.
//!
//! Every event gets an id when it is published: its entry id in the topic's Redis stream
//! (`<millis>-<seq>`, increasing per topic), or the same shape from a per-process log without
//! Redis. One Lua script appends the event to the stream and publishes `<id> <payload>` on the
//! topic's channel, so the live order and the stream order are the same.
//!
//! Every process holds ONE Redis subscriber connection (a pattern subscription on
//! `<prefix>*`; on a Redis Cluster, a sharded subscription per topic followed) and fans events
//! out in-process through a tokio broadcast channel, so the number of Redis connections does not
//! grow with the number of GraphQL subscribers. The subscriber reconnects by itself after Redis
//! restarts.
//!
//! Each topic's keys and channel carry the topic as a hash tag (`<prefix>stream:{<topic>}`,
//! `<prefix>{<topic>}`): on a cluster a topic lives in one hash slot (see [`RedisTarget`]).
//!
//! A subscriber ([`EventBus::follow`]) loses nothing: it can start after an id (replaying the
//! stream from there, then switching to live events without a gap or a duplicate at the seam),
//! and when it falls behind the in-process fan-out, or the Redis subscription drops and comes
//! back, it catches up from the stream. An id older than the stream keeps ([`Retention`]) ends
//! it with a [`Gap`], never with silence.
//!
//! Here: the types and [`EventBus`]; `follow` (a subscriber's position), `memory` (the
//! in-process history) and `redis_bus` (streams, the Lua publish, the subscriber connection).

mod follow;
mod memory;
mod redis_bus;
mod target;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::broadcast;

use follow::Follower;
use memory::Log;
use redis_bus::RedisBus;
pub use target::{RedisConnection, RedisTarget};

/// How many events a slow subscriber may fall behind before it catches up from the stream.
const FAN_OUT_CAPACITY: usize = 4096;

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

/// An event's place in its topic: a Redis stream entry id, `<millis>-<seq>`. Ids of one topic
/// only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Milliseconds since the Unix epoch when the event was appended.
    pub millis: u64,
    /// Its order among the events of that millisecond.
    pub seq: u64,
}

impl EventId {
    /// Before every event: following from here replays the whole stream.
    pub const ZERO: EventId = EventId { millis: 0, seq: 0 };
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.millis, self.seq)
    }
}

/// Text that is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id (`<millis>-<seq>`)")]
pub struct BadEventId(pub String);

impl std::str::FromStr for EventId {
    type Err = BadEventId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(text.to_owned());
        let (millis, seq) = text.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            millis: millis.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One event on the bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// What happened, e.g. `stock_changed`. The Redis channel is `<prefix><topic>`.
    pub topic: String,
    /// The event's data, as the publishing subgraph wrote it.
    pub payload: serde_json::Value,
    /// Its id, given when it is published (ignored in what is handed to `publish`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
}

/// How much of each topic's history the bus keeps for subscribers that resume or catch up
/// (and for durable consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// About this many events per topic (Redis trims approximately, in whole nodes).
    pub max_events: usize,
    /// Events older than this go, when set.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    /// 100,000 events per topic, of any age.
    fn default() -> Self {
        Self {
            max_events: 100_000,
            max_age: None,
        }
    }
}

/// A failure to publish or read events.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis did not take the event.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The event could not be encoded.
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
    /// Redis answered something that is not an event id.
    #[error("{0}")]
    Id(#[from] BadEventId),
}

/// Events after an id are no longer all kept: following from there would miss some.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "events of `{topic}` after {after} are no longer kept (the stream keeps about {kept} events); \
     subscribe again without a last event id"
)]
pub struct Gap {
    /// The topic.
    pub topic: String,
    /// The id followed from.
    pub after: EventId,
    /// About how many events the stream keeps.
    pub kept: usize,
    /// Whether the stream began anew after `after` (Redis lost its data), rather than being
    /// trimmed past it.
    pub reset: bool,
}

/// What the in-process fan-out carries.
#[derive(Debug, Clone)]
enum Signal {
    /// An event, shared by every subscriber.
    Event(Arc<Event>),
    /// Redis' subscription came back: events may have been missed meanwhile.
    Resync,
}

/// The process's event bus. Cloning it is cheap and shares the one connection.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    retention: Retention,
    sender: broadcast::Sender<Signal>,
    backend: Backend,
}

enum Backend {
    InProcess(std::sync::Mutex<Log>),
    Redis(Box<RedisBus>),
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("prefix", &self.inner.prefix)
            .field("redis", &matches!(self.inner.backend, Backend::Redis(_)))
            .finish()
    }
}

impl EventBus {
    /// A bus that never leaves this process: what runs without `REDIS_URL`.
    pub fn in_process(prefix: &str) -> Self {
        Self::in_process_with(prefix, Retention::default())
    }

    /// [`in_process`](Self::in_process), keeping `retention` of each topic's history.
    pub fn in_process_with(prefix: &str, retention: Retention) -> Self {
        let (sender, _) = broadcast::channel(FAN_OUT_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                retention,
                sender,
                backend: Backend::InProcess(std::sync::Mutex::new(Log::default())),
            }),
        }
    }

    /// A bus on Redis at `url`. It returns at once; the subscriber connects (and reconnects) in
    /// the background, so a Redis that is down at start-up is not fatal.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, BusError> {
        Self::redis_with(url, prefix, Retention::default())
    }

    /// [`redis`](Self::redis), each topic's stream trimmed to `retention`.
    pub fn redis_with(url: &str, prefix: &str, retention: Retention) -> Result<Self, BusError> {
        Ok(Self::on(RedisTarget::parse(url, false)?, prefix, retention))
    }

    /// A bus on `target` (one Redis, or a Redis Cluster), each topic's stream trimmed to
    /// `retention`; like [`redis`](Self::redis), it connects in the background.
    pub fn on(target: RedisTarget, prefix: &str, retention: Retention) -> Self {
        let (sender, _) = broadcast::channel(FAN_OUT_CAPACITY);
        let redis = RedisBus::start(target, prefix, sender.clone());
        Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                retention,
                sender,
                backend: Backend::Redis(Box::new(redis)),
            }),
        }
    }

    /// The Redis stream of `topic`: its history, which durable consumers and catching-up
    /// subscribers read.
    pub fn stream_key(&self, topic: &str) -> String {
        stream_key(&self.inner.prefix, topic)
    }

    /// The pub/sub channel of `topic`.
    fn channel(&self, topic: &str) -> String {
        format!("{}{{{topic}}}", self.inner.prefix)
    }

    /// Where the bus's Redis is, when the bus is on Redis.
    pub fn redis_target(&self) -> Option<&RedisTarget> {
        match &self.inner.backend {
            Backend::Redis(redis) => Some(&redis.target),
            Backend::InProcess(_) => None,
        }
    }

    /// The channel-name prefix of this bus.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// How much history each topic keeps.
    pub fn retention(&self) -> Retention {
        self.inner.retention
    }

    /// Waits until the bus can deliver events: at once in-process, and on Redis once the
    /// subscriber connection is subscribed. The outbox relay waits for this before publishing,
    /// so events written while Redis was down are not published into a gap.
    pub async fn ready(&self) {
        if let Backend::Redis(redis) = &self.inner.backend {
            let mut subscribed = redis.subscribed.clone();
            // An error means the subscriber task is gone, which only happens on shutdown.
            let _ = subscribed.wait_for(|ready| *ready).await;
        }
    }

    /// Whether the bus is connected (always true in-process).
    pub fn is_ready(&self) -> bool {
        match &self.inner.backend {
            Backend::Redis(redis) => *redis.subscribed.borrow(),
            Backend::InProcess(_) => true,
        }
    }

    /// Publishes `event` to every replica (and to this process); returns the id it got.
    pub async fn publish(&self, event: &Event) -> Result<EventId, BusError> {
        self.publish_inner(event, None)
            .await
            .map(Option::unwrap_or_default)
    }

    /// [`publish`](Self::publish) for the event at `position` of `source` (an outbox row), at
    /// most once: `None` when that position of `source` was published already, as when a
    /// publish is retried after its answer was lost (Redis ran it, then the connection dropped
    /// before the reply, or a cluster client sent it again). The bus remembers the last 1,000
    /// positions of each source per topic.
    pub async fn publish_once(
        &self,
        event: &Event,
        source: &str,
        position: i64,
    ) -> Result<Option<EventId>, BusError> {
        self.publish_inner(event, Some((source, position))).await
    }

    async fn publish_inner(
        &self,
        event: &Event,
        once: Option<(&str, i64)>,
    ) -> Result<Option<EventId>, BusError> {
        match &self.inner.backend {
            Backend::InProcess(log) => {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                let event = log.publish(event, self.inner.retention);
                let id = event.id.unwrap_or_default();
                // No receiver is not an error: nobody is subscribed right now. Sent under the
                // lock, so the live order is the log's order.
                // In memory a publish cannot fail after it happened: nothing is retried twice.
                let _ = self.inner.sender.send(Signal::Event(event));
                Ok(Some(id))
            }
            Backend::Redis(redis) => {
                let stream = self.stream_key(&event.topic);
                let channel = self.channel(&event.topic);
                redis
                    .publish(&stream, &channel, event, self.inner.retention, once)
                    .await
            }
        }
    }

    /// Every event on `topic` from now on. A subscriber that falls behind catches up from the
    /// stream; one that falls behind further than the stream keeps ends (logged).
    pub fn subscribe(&self, topic: &str) -> impl Stream<Item = Event> + Send + 'static {
        let topic_name = topic.to_owned();
        self.follow(topic, None).filter_map(move |item| {
            std::future::ready(match item {
                Ok(event) => Some(Arc::unwrap_or_clone(event)),
                Err(gap) => {
                    tracing::error!(topic = topic_name, error = %gap, "a subscriber missed events");
                    None
                }
            })
        })
    }

    /// Every event on `topic` after `after` (replayed from the stream, then live), or from now
    /// on without it; each once, in id order. Falling behind the in-process fan-out, or a Redis
    /// subscription that drops and comes back, is caught up from the stream. Ends with a [`Gap`]
    /// when events after the point it follows from are no longer kept.
    pub fn follow(
        &self,
        topic: &str,
        after: Option<EventId>,
    ) -> impl Stream<Item = Result<Arc<Event>, Gap>> + Send + 'static {
        let follower = Follower::new(self.clone(), topic, after);
        futures_util::stream::unfold(follower, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        })
    }

    /// Makes sure live events of `topic` reach this process. On one Redis (or in-process) they
    /// always do; on a cluster this subscribes to the topic's sharded channel, once per
    /// process, and returns when the node confirmed it. A follower does it on its first poll, so
    /// on a cluster a follower from now on hears what is published after that poll; call this
    /// first to hear everything published after it returns.
    pub async fn listen(&self, topic: &str) -> Result<(), BusError> {
        match &self.inner.backend {
            Backend::InProcess(_) => Ok(()),
            Backend::Redis(redis) => redis.listen(&self.channel(topic)).await,
        }
    }

    /// The newest id `topic` has had ([`EventId::ZERO`] for a topic that never had one).
    async fn last_id(&self, topic: &str) -> Result<EventId, BusError> {
        match &self.inner.backend {
            Backend::InProcess(log) => {
                Ok(log.lock().unwrap_or_else(|e| e.into_inner()).last_id(topic))
            }
            Backend::Redis(redis) => redis.last_id(&self.stream_key(topic)).await,
        }
    }

    /// Up to `count` events of `topic` after `after`, oldest first; with `check`, a [`Gap`]
    /// when some event after `after` is no longer kept.
    async fn read_after(
        &self,
        topic: &str,
        after: EventId,
        count: usize,
        check: bool,
    ) -> Result<Result<Vec<Arc<Event>>, Gap>, BusError> {
        let read = match &self.inner.backend {
            Backend::InProcess(log) => log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_after(topic, after, count, check),
            Backend::Redis(redis) => {
                redis
                    .read_after(&self.stream_key(topic), topic, after, count, check)
                    .await?
            }
        };
        Ok(read.map_err(|lost| Gap {
            topic: topic.to_owned(),
            after,
            kept: self.inner.retention.max_events,
            reset: lost.reset,
        }))
    }
}

/// Some event after the id read from is no longer kept.
struct Lost {
    /// The history began anew after the id (rather than being trimmed past it).
    reset: bool,
}

/// The Redis stream of `topic` for a bus with channel prefix `prefix`.
pub fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}stream:{{{topic}}}")
}

/// The topic of pub/sub channel `channel` (`<prefix>{<topic>}`), when it is one of `prefix`.
fn topic_of_channel<'a>(channel: &'a str, prefix: &str) -> Option<&'a str> {
    channel
        .strip_prefix(prefix)?
        .strip_prefix('{')?
        .strip_suffix('}')
}

/// `event`'s payload as `T`; `None` (logged) when it does not decode.
pub fn decode<T: DeserializeOwned>(event: &Event) -> Option<T> {
    serde_json::from_value(event.payload.clone())
        .inspect_err(|err| tracing::warn!(topic = event.topic, error = %err, "undecodable event"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(topic: &str, n: u64) -> Event {
        Event {
            topic: topic.to_owned(),
            payload: serde_json::json!({ "n": n }),
            id: None,
        }
    }

    #[test]
    fn a_topics_stream_and_channel_share_its_hash_tag() {
        let bus = EventBus::in_process("shop:");
        assert_eq!(bus.stream_key("order_placed"), "shop:stream:{order_placed}");
        assert_eq!(bus.channel("order_placed"), "shop:{order_placed}");
        assert_eq!(
            topic_of_channel("shop:{order_placed}", "shop:"),
            Some("order_placed")
        );
        assert_eq!(topic_of_channel("other:{order_placed}", "shop:"), None);
        assert_eq!(topic_of_channel("shop:order_placed", "shop:"), None);
    }

    #[test]
    fn ids_print_and_parse_and_order_like_redis_stream_ids() {
        let id: EventId = "1700000000000-7".parse().expect("an id");
        assert_eq!(id.to_string(), "1700000000000-7");
        assert!(id < "1700000000000-8".parse().expect("an id"));
        assert!(id < "1700000000001-0".parse().expect("an id"));
        assert!("17-".parse::<EventId>().is_err());
        assert!("abc".parse::<EventId>().is_err());
    }

    #[tokio::test]
    async fn a_follower_resumes_after_an_id_then_goes_live_without_a_duplicate() {
        let bus = EventBus::in_process("t:");
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(bus.publish(&event("a", n)).await.expect("published"));
            bus.publish(&event("b", n)).await.expect("published");
        }
        let mut follower = Box::pin(bus.follow("a", Some(ids[1])));
        for n in 2..5 {
            let got = follower.next().await.expect("an event").expect("no gap");
            assert_eq!(got.payload["n"], n);
            assert_eq!(got.id, Some(ids[n as usize]));
        }
        bus.publish(&event("a", 5)).await.expect("published");
        let live = follower.next().await.expect("an event").expect("no gap");
        assert_eq!(live.payload["n"], 5);
    }

    #[tokio::test]
    async fn an_id_older_than_what_is_kept_is_a_gap() {
        let retention = Retention {
            max_events: 3,
            max_age: None,
        };
        let bus = EventBus::in_process_with("t:", retention);
        let first = bus.publish(&event("a", 0)).await.expect("published");
        for n in 1..6 {
            bus.publish(&event("a", n)).await.expect("published");
        }
        let mut follower = Box::pin(bus.follow("a", Some(first)));
        let gap = follower.next().await.expect("an item").expect_err("a gap");
        assert_eq!(gap.after, first);
        assert!(follower.next().await.is_none());
        // An id of another life of the bus (before its first) is a gap too.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let restarted = EventBus::in_process_with("t:", retention);
        restarted.publish(&event("a", 0)).await.expect("published");
        let mut follower = Box::pin(restarted.follow("a", Some(first)));
        assert!(follower.next().await.expect("an item").is_err());
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_the_fan_out_catches_up_from_the_log() {
        let bus = EventBus::in_process("t:");
        let mut follower = Box::pin(bus.follow("a", None));
        bus.publish(&event("a", 0)).await.expect("published");
        assert_eq!(
            follower
                .next()
                .await
                .expect("an event")
                .expect("no gap")
                .payload["n"],
            0
        );
        // Far more than the fan-out holds, while the follower does not read.
        let total = FAN_OUT_CAPACITY as u64 * 2;
        for n in 1..=total {
            bus.publish(&event("a", n)).await.expect("published");
        }
        for n in 1..=total {
            let got = follower.next().await.expect("an event").expect("no gap");
            assert_eq!(got.payload["n"], n, "in order, none missed");
        }
    }
}
