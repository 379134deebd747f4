//! The event bus: Redis shared by every replica, or an in-process bus.
//!
//! Every event gets an id when it is published: its entry id in the topic's Redis stream
//! (`<millis>-<seq>`, increasing per topic), or the same shape from a per-process log without
//! Redis. One Lua script appends the event to the stream and publishes `<id> <payload>` on the
//! topic's channel, so the live order and the stream order are the same.
//!
//! Every process holds ONE Redis subscriber connection (a pattern subscription on
//! `<prefix>*`) and fans events out in-process through a tokio broadcast channel, so the number
//! of Redis connections does not grow with the number of GraphQL subscribers. The subscriber
//! reconnects by itself after Redis restarts.
//!
//! A subscriber ([`EventBus::follow`]) loses nothing: it can start after an id (replaying the
//! stream from there, then switching to live events without a gap or a duplicate at the seam),
//! and when it falls behind the in-process fan-out, or the Redis subscription drops and comes
//! back, it catches up from the stream. An id older than the stream keeps ([`Retention`]) ends
//! it with a [`Gap`], never with silence.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::{Mutex, broadcast, watch};
use tokio::task::JoinHandle;

/// How many events a slow subscriber may fall behind before it catches up from the stream.
const FAN_OUT_CAPACITY: usize = 4096;
/// Events read from the stream per round while catching up.
const CATCH_UP_BATCH: usize = 256;

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
    Redis(RedisBus),
}

/// The in-process bus's history: each topic's last events, like a Redis stream.
#[derive(Default)]
struct Log {
    last: EventId,
    topics: HashMap<String, TopicLog>,
}

#[derive(Default)]
struct TopicLog {
    entries: VecDeque<Arc<Event>>,
    /// The first id the topic ever had.
    origin: Option<EventId>,
    /// The newest id trimmed away.
    trimmed: EventId,
}

struct RedisBus {
    client: redis::Client,
    /// Created on first use and kept: it reconnects by itself after failures.
    connection: Mutex<Option<ConnectionManager>>,
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
            .field("redis", &matches!(self.inner.backend, Backend::Redis(_)))
            .finish()
    }
}

/// Appends to the stream, trims it, records the first id of a new stream, and publishes
/// `<id> <payload>`, atomically. KEYS: stream, origin. ARGV: channel, payload, max length, max age
/// in ms (0: none).
const PUBLISH_SCRIPT: &str = r"
local fresh = redis.call('EXISTS', KEYS[1]) == 0
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'payload', ARGV[2])
local age = tonumber(ARGV[4])
if age > 0 then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - age
  if cutoff > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', cutoff))
  end
end
if fresh then
  redis.call('SET', KEYS[2], id)
end
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return id
";

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
                retention,
                sender,
                backend: Backend::Redis(RedisBus {
                    client,
                    connection: Mutex::new(None),
                    subscribed,
                    subscriber,
                }),
            }),
        })
    }

    /// The Redis stream of `topic`: its history, which durable consumers and catching-up
    /// subscribers read.
    pub fn stream_key(&self, topic: &str) -> String {
        format!("{}stream:{topic}", self.inner.prefix)
    }

    /// The Redis client, when the bus is on Redis.
    pub fn redis_client(&self) -> Option<&redis::Client> {
        match &self.inner.backend {
            Backend::Redis(redis) => Some(&redis.client),
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
        match &self.inner.backend {
            Backend::InProcess(log) => {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                let id = log.next_id();
                let event = Arc::new(Event {
                    id: Some(id),
                    ..event.clone()
                });
                log.append(&event, self.inner.retention);
                // No receiver is not an error: nobody is subscribed right now. Sent under the
                // lock, so the live order is the log's order.
                let _ = self.inner.sender.send(Signal::Event(event));
                Ok(id)
            }
            Backend::Redis(redis) => {
                let stream = self.stream_key(&event.topic);
                let body = serde_json::to_string(&event.payload)?;
                let max_age = self
                    .inner
                    .retention
                    .max_age
                    .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
                let mut conn = redis.connection().await?;
                let id: String = redis::Script::new(PUBLISH_SCRIPT)
                    .key(&stream)
                    .key(format!("{stream}:origin"))
                    .arg(format!("{}{}", self.inner.prefix, event.topic))
                    .arg(&body)
                    .arg(self.inner.retention.max_events.max(1))
                    .arg(max_age)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(id.parse()?)
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

    /// Every event on `topic` from now on, decoded as `T`. Events that don't decode are logged
    /// and skipped.
    pub fn events<T: DeserializeOwned + Send + 'static>(
        &self,
        topic: &str,
    ) -> impl Stream<Item = T> + Send + 'static {
        self.subscribe(topic)
            .filter_map(|event| std::future::ready(decode(&event).map(|(_, payload)| payload)))
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
        // Live events are heard from this moment, before any replay is read: nothing falls
        // between the two, and what both give is dropped by id.
        let follower = Follower {
            bus: self.clone(),
            topic: topic.to_owned(),
            live: self.inner.sender.subscribe(),
            last: after,
            start: None,
            catch_up: after.is_some(),
            resuming: after.is_some(),
            replay: VecDeque::new(),
            done: false,
        };
        futures_util::stream::unfold(follower, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        })
    }

    /// The newest id `topic` has had ([`EventId::ZERO`] for a topic that never had one).
    async fn last_id(&self, topic: &str) -> Result<EventId, BusError> {
        match &self.inner.backend {
            Backend::InProcess(log) => {
                let log = log.lock().unwrap_or_else(|e| e.into_inner());
                Ok(log.topics.get(topic).map_or(EventId::ZERO, |kept| {
                    kept.entries
                        .back()
                        .and_then(|e| e.id)
                        .unwrap_or(kept.trimmed)
                }))
            }
            Backend::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let info = stream_info(&mut conn, &self.stream_key(topic)).await?;
                Ok(info.map_or(EventId::ZERO, |info| info.last_generated))
            }
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
        let gap = |reset| Gap {
            topic: topic.to_owned(),
            after,
            kept: self.inner.retention.max_events,
            reset,
        };
        match &self.inner.backend {
            Backend::InProcess(log) => {
                let log = log.lock().unwrap_or_else(|e| e.into_inner());
                let Some(kept) = log.topics.get(topic) else {
                    return Ok(if check && after != EventId::ZERO {
                        Err(gap(true))
                    } else {
                        Ok(Vec::new())
                    });
                };
                if check {
                    let reset =
                        after != EventId::ZERO && kept.origin.is_some_and(|origin| after < origin);
                    if reset || after < kept.trimmed {
                        return Ok(Err(gap(reset)));
                    }
                }
                let start = kept
                    .entries
                    .partition_point(|e| e.id.is_none_or(|id| id <= after));
                Ok(Ok(kept
                    .entries
                    .iter()
                    .skip(start)
                    .take(count)
                    .cloned()
                    .collect()))
            }
            Backend::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let key = self.stream_key(topic);
                if check {
                    let info = stream_info(&mut conn, &key).await?;
                    let origin: Option<String> = redis::cmd("GET")
                        .arg(format!("{key}:origin"))
                        .query_async(&mut conn)
                        .await?;
                    let origin = origin.map(|o| o.parse::<EventId>()).transpose()?;
                    // No stream, or one that began after `after`: Redis lost what was there.
                    let reset = after != EventId::ZERO
                        && match (&info, origin) {
                            (None, _) => true,
                            (Some(_), origin) => origin.is_some_and(|origin| after < origin),
                        };
                    let trimmed = info.is_some_and(|info| info.lost_after(after));
                    if reset || trimmed {
                        return Ok(Err(gap(reset)));
                    }
                }
                let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn)
                    .await?;
                let mut events = Vec::with_capacity(reply.ids.len());
                for entry in reply.ids {
                    let payload: String = entry.get("payload").unwrap_or_default();
                    events.push(Arc::new(Event {
                        topic: topic.to_owned(),
                        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                        id: Some(entry.id.parse()?),
                    }));
                }
                Ok(Ok(events))
            }
        }
    }
}

/// `event`'s id and payload as `T`; `None` (logged) when it does not decode.
pub fn decode<T: DeserializeOwned>(event: &Event) -> Option<(Option<EventId>, T)> {
    serde_json::from_value(event.payload.clone())
        .inspect_err(|err| tracing::warn!(topic = event.topic, error = %err, "undecodable event"))
        .ok()
        .map(|payload| (event.id, payload))
}

impl Log {
    /// The next id: this millisecond's, after every id given so far.
    fn next_id(&mut self) -> EventId {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let id = if millis > self.last.millis {
            EventId { millis, seq: 0 }
        } else {
            EventId {
                millis: self.last.millis,
                seq: self.last.seq + 1,
            }
        };
        self.last = id;
        id
    }

    fn append(&mut self, event: &Arc<Event>, retention: Retention) {
        let Some(id) = event.id else { return };
        let log = self.topics.entry(event.topic.clone()).or_default();
        log.origin.get_or_insert(id);
        log.entries.push_back(Arc::clone(event));
        let oldest = retention.max_age.map(|age| {
            id.millis
                .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
        });
        while let Some(first) = log.entries.front() {
            let first_id = first.id.unwrap_or_default();
            let too_many = log.entries.len() > retention.max_events.max(1);
            let too_old = oldest.is_some_and(|oldest| first_id.millis < oldest);
            if !(too_many || too_old) {
                break;
            }
            log.trimmed = first_id;
            log.entries.pop_front();
        }
    }
}

impl RedisBus {
    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.connection.lock().await;
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

/// What `XINFO STREAM` tells about a stream's ids.
struct StreamInfo {
    length: u64,
    last_generated: EventId,
    /// The oldest entry kept (trimming moves it; it does not move `max_deleted`).
    first_kept: EventId,
    /// The newest entry deleted by `XDEL`.
    max_deleted: EventId,
}

impl StreamInfo {
    /// Whether some entry after `after` is gone. An entry just before the first kept one is
    /// taken as gone too, as Redis does not tell what trimming removed: a needless gap, never a
    /// silent loss.
    fn lost_after(&self, after: EventId) -> bool {
        let trimmed = if self.length == 0 {
            after < self.last_generated
        } else {
            after < self.first_kept
        };
        trimmed || after < self.max_deleted
    }
}

/// `XINFO STREAM key`; `None` when the stream does not exist.
async fn stream_info(
    conn: &mut ConnectionManager,
    key: &str,
) -> Result<Option<StreamInfo>, BusError> {
    let reply: Result<redis::Value, _> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(err) if err.to_string().contains("no such key") => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let field = |name: &str| -> Option<String> {
        let pairs: Vec<(&redis::Value, &redis::Value)> = match &reply {
            redis::Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|pair| Some((pair.first()?, pair.get(1)?)))
                .collect(),
            _ => Vec::new(),
        };
        pairs.into_iter().find_map(|(key, value)| {
            let key: String = redis::from_redis_value_ref(key).ok()?;
            (key == name)
                .then(|| redis::from_redis_value_ref::<String>(value).ok())
                .flatten()
        })
    };
    let id = |name: &str| -> Result<EventId, BusError> {
        Ok(field(name)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or_default())
    };
    Ok(Some(StreamInfo {
        length: field("length").and_then(|n| n.parse().ok()).unwrap_or(0),
        last_generated: id("last-generated-id")?,
        first_kept: id("recorded-first-entry-id")?,
        max_deleted: id("max-deleted-entry-id")?,
    }))
}

/// One subscriber's position in a topic ([`EventBus::follow`]).
struct Follower {
    bus: EventBus,
    topic: String,
    live: broadcast::Receiver<Signal>,
    /// The last id given out, or followed from.
    last: Option<EventId>,
    /// Where the stream was when a subscriber from now on was first polled: where it catches up
    /// from if it must before it has given anything out.
    start: Option<EventId>,
    /// Whether to read the stream before taking live events.
    catch_up: bool,
    /// Whether the catch-up is the replay a subscriber asked for (after its id), where a stream
    /// that began anew is a gap; in a catch-up of its own, the follower goes on with the new
    /// stream (what the old one held after its last event is lost with it, and logged).
    resuming: bool,
    /// Events read from the stream, not given out yet.
    replay: VecDeque<Arc<Event>>,
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<Arc<Event>, Gap>> {
        if self.done {
            return None;
        }
        if self.last.is_none() && self.start.is_none() {
            // Where "now" is in the stream, so that a catch-up before the first event knows where
            // to start. Live events already heard are still given out: they came after `follow`.
            // Without Redis at this moment, the subscriber cannot catch up until its first event.
            match self.bus.last_id(&self.topic).await {
                Ok(id) => self.start = Some(id),
                Err(err) => tracing::warn!(topic = self.topic, error = %err, "no stream position"),
            }
        }
        let mut check_gap = self.catch_up;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(event) = self.replay.pop_front() {
                self.last = event.id.or(self.last);
                return Some(Ok(event));
            }
            if self.catch_up {
                let after = self.last.or(self.start).unwrap_or_default();
                match self
                    .bus
                    .read_after(&self.topic, after, CATCH_UP_BATCH, check_gap)
                    .await
                {
                    Ok(Ok(events)) if events.is_empty() => self.catch_up = false,
                    Ok(Ok(events)) => self.replay = events.into(),
                    Ok(Err(gap)) if gap.reset && !self.resuming => {
                        tracing::error!(
                            topic = self.topic,
                            after = %gap.after,
                            "redis lost the stream: events after this one may be lost; going on \
                             with the new stream"
                        );
                        self.last = Some(EventId::ZERO);
                        self.start = None;
                        check_gap = false;
                        continue;
                    }
                    Ok(Err(gap)) => {
                        self.done = true;
                        return Some(Err(gap));
                    }
                    Err(err) => {
                        tracing::warn!(topic = self.topic, error = %err, "catching up: will retry");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
                check_gap = false;
                self.resuming = false;
                continue;
            }
            match self.live.recv().await {
                Ok(Signal::Event(event)) if event.topic == self.topic => {
                    if let (Some(id), Some(last)) = (event.id, self.last)
                        && id <= last
                    {
                        continue; // already given out from the stream
                    }
                    self.last = event.id.or(self.last);
                    return Some(Ok(event));
                }
                Ok(Signal::Event(_)) => {}
                Ok(Signal::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.last.is_some() || self.start.is_some() {
                        self.catch_up = true;
                        check_gap = true;
                    } else {
                        tracing::warn!(topic = self.topic, "a subscriber may have missed events");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Keeps one pattern subscription on `<prefix>*` alive, reconnecting with backoff, and fans
/// every message out to `sender`; after a reconnection, tells subscribers to catch up.
async fn subscribe_loop(
    client: redis::Client,
    prefix: String,
    sender: broadcast::Sender<Signal>,
    subscribed: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut lost = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(format!("{prefix}*")).await {
                Ok(()) => {
                    tracing::info!(prefix, "subscribed to redis");
                    backoff = Duration::from_millis(50);
                    subscribed.send_replace(true);
                    if std::mem::take(&mut lost) {
                        let _ = sender.send(Signal::Resync);
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        fan_out(&msg, &prefix, &sender);
                    }
                    subscribed.send_replace(false);
                    lost = true;
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

/// A pub/sub message `<id> <payload>` on `<prefix><topic>`, to every subscriber here.
fn fan_out(msg: &redis::Msg, prefix: &str, sender: &broadcast::Sender<Signal>) {
    let channel = msg.get_channel_name();
    let Some(topic) = channel.strip_prefix(prefix) else {
        return;
    };
    let decoded = msg
        .get_payload::<String>()
        .map_err(|err| err.to_string())
        .and_then(|body| {
            let (id, payload) = body
                .split_once(' ')
                .ok_or_else(|| "no event id".to_owned())?;
            let id: EventId = id.parse().map_err(|err: BadEventId| err.to_string())?;
            let payload = serde_json::from_str(payload).map_err(|err| err.to_string())?;
            Ok((id, payload))
        });
    let (id, payload) = match decoded {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::warn!(
                channel,
                error = err,
                "dropping an undecodable redis message"
            );
            return;
        }
    };
    let _ = sender.send(Signal::Event(Arc::new(Event {
        topic: topic.to_owned(),
        payload,
        id: Some(id),
    })));
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
