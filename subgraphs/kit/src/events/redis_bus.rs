//! The bus on Redis: each topic's stream (its history, and the events' ids) and one
//! subscriber connection per process, fanned out in-process. On one server the subscriber holds
//! a pattern subscription on `<prefix>*`; on a cluster it holds a sharded subscription
//! (`SSUBSCRIBE`) per topic followed here, each on the node that owns the topic's slot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind};
use tokio::sync::{Mutex, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::target::{RedisConnection, RedisTarget};
use super::{BadEventId, BusError, Event, EventId, Lost, Retention, Signal, topic_of_channel};

pub(super) struct RedisBus {
    pub(super) target: RedisTarget,
    /// Created on first use and kept: it reconnects by itself after failures.
    connection: Mutex<Option<RedisConnection>>,
    /// Whether the subscriber connection is currently subscribed (on a cluster: to every
    /// channel followed here, on its slot's owner).
    pub(super) subscribed: watch::Receiver<bool>,
    subscriber: JoinHandle<()>,
    /// On a cluster: the subscriber connection, once connected.
    shards: watch::Receiver<Option<ClusterConnection>>,
    /// On a cluster: the channels followed here (all subscribed again after a node's connection
    /// drops).
    channels: Arc<Mutex<HashSet<String>>>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// Appends to the stream, trims it, records the first id of the stream's life (a stream a
/// consumer group created has none until its first event), and publishes
/// `<id> <payload>`, atomically. KEYS: stream, origin, the positions published from the
/// event's source. ARGV: channel, payload, max length, max age in ms (0: none), the publish
/// command (`PUBLISH`, or `SPUBLISH` on a cluster: the channel shares the stream's hash slot),
/// and a source with the event's position in it (or an empty source). A position among the
/// source's last [`REMEMBERED_POSITIONS`] was published already (a retry whose first answer was
/// lost): it is not appended again, and the script returns an empty string. (Positions are
/// remembered one by one, not as a high-water mark: outbox rows can commit out of id order.)
const PUBLISH_SCRIPT: &str = r"
if ARGV[6] ~= '' and redis.call('ZSCORE', KEYS[3], ARGV[7]) then
  return ''
end
local fresh = redis.call('EXISTS', KEYS[2]) == 0
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
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[7])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[8]) + 1))
end
redis.call(ARGV[5], ARGV[1], id .. ' ' .. ARGV[2])
return id
";

/// How many of its latest positions per topic the bus remembers of each source, to recognize a
/// retried publish. A relay retries from its first unsent row, right after the failure, so only
/// the last few are ever asked about.
const REMEMBERED_POSITIONS: usize = 1_000;

impl RedisBus {
    /// A bus on `target` whose subscriber fans out to `sender`; it connects (and reconnects)
    /// in the background.
    pub(super) fn start(
        target: RedisTarget,
        prefix: &str,
        sender: broadcast::Sender<Signal>,
    ) -> Self {
        let (subscribed_tx, subscribed) = watch::channel(false);
        let (shards_tx, shards) = watch::channel(None);
        let channels = Arc::new(Mutex::new(HashSet::new()));
        let subscriber = match &target {
            RedisTarget::Single(client) => tokio::spawn(subscribe_loop(
                client.clone(),
                prefix.to_owned(),
                sender,
                subscribed_tx,
            )),
            RedisTarget::Cluster(nodes) => tokio::spawn(shard_loop(
                nodes.clone(),
                prefix.to_owned(),
                sender,
                Arc::clone(&channels),
                subscribed_tx,
                shards_tx,
            )),
        };
        Self {
            target,
            connection: Mutex::new(None),
            subscribed,
            subscriber,
            shards,
            channels,
        }
    }

    /// Makes sure events on `channel` reach this process: on a cluster, subscribes to the
    /// sharded channel (once; it waits for the subscriber connection); on one server the
    /// pattern subscription already covers it.
    pub(super) async fn listen(&self, channel: &str) -> Result<(), BusError> {
        if !self.target.is_cluster() {
            return Ok(());
        }
        let mut channels = self.channels.lock().await;
        if channels.contains(channel) {
            return Ok(());
        }
        let mut shards = self.shards.clone();
        let mut conn = match shards.wait_for(Option::is_some).await {
            Ok(conn) => conn.clone().ok_or_else(gone)?,
            Err(_) => return Err(gone().into()),
        };
        conn.ssubscribe(channel).await?;
        channels.insert(channel.to_owned());
        Ok(())
    }

    /// Appends `event` to `stream` (trimmed to `retention`) and publishes it on `channel`; with
    /// `once` (a source and the event's position in it), only when that position of the source
    /// is not among those the stream remembers as published (else `None`).
    pub(super) async fn publish(
        &self,
        stream: &str,
        channel: &str,
        event: &Event,
        retention: Retention,
        once: Option<(&str, i64)>,
    ) -> Result<Option<EventId>, BusError> {
        let body = serde_json::to_string(&event.payload)?;
        let max_age = retention
            .max_age
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        let command = if self.target.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut conn = self.connection().await?;
        let (source, position) = once.unwrap_or(("", 0));
        let id: String = redis::Script::new(PUBLISH_SCRIPT)
            .key(stream)
            .key(format!("{stream}:origin"))
            .key(format!("{stream}:sent:{source}"))
            .arg(channel)
            .arg(&body)
            .arg(retention.max_events.max(1))
            .arg(max_age)
            .arg(command)
            .arg(source)
            .arg(position)
            .arg(REMEMBERED_POSITIONS)
            .invoke_async(&mut conn)
            .await?;
        if id.is_empty() {
            return Ok(None);
        }
        Ok(Some(id.parse()?))
    }

    /// The newest id `stream` has had ([`EventId::ZERO`] when it does not exist).
    pub(super) async fn last_id(&self, stream: &str) -> Result<EventId, BusError> {
        let mut conn = self.connection().await?;
        let info = stream_info(&mut conn, stream).await?;
        Ok(info.map_or(EventId::ZERO, |info| info.last_generated))
    }

    /// Up to `count` entries of `stream` (the topic `topic`'s) after `after`; with `check`,
    /// [`Lost`] when some entry after `after` is no longer kept.
    pub(super) async fn read_after(
        &self,
        stream: &str,
        topic: &str,
        after: EventId,
        count: usize,
        check: bool,
    ) -> Result<Result<Vec<Arc<Event>>, Lost>, BusError> {
        let mut conn = self.connection().await?;
        if check {
            let info = stream_info(&mut conn, stream).await?;
            let origin: Option<String> = redis::cmd("GET")
                .arg(format!("{stream}:origin"))
                .query_async(&mut conn)
                .await?;
            let origin = origin.map(|o| o.parse::<EventId>()).transpose()?;
            // No stream, one that began after `after`, or one that no event began (a consumer
            // group made it anew): Redis lost what was there.
            let reset = after != EventId::ZERO
                && (info.is_none() || origin.is_none_or(|origin| after < origin));
            let trimmed = info.is_some_and(|info| info.lost_after(after));
            if reset || trimmed {
                return Ok(Err(Lost { reset }));
            }
        }
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
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

    async fn connection(&self) -> Result<RedisConnection, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.target.shared().await?;
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
    conn: &mut RedisConnection,
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
                        match msg.get_payload::<String>() {
                            Ok(body) => fan_out(msg.get_channel_name(), &body, &prefix, &sender),
                            Err(err) => {
                                tracing::warn!(error = %err, "an undecodable redis message")
                            }
                        }
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

fn gone() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "the cluster subscriber has stopped"))
}

/// Keeps the cluster subscriber connection (RESP3, its pushes to this task) and fans every
/// sharded message out to `sender`. After a node's connection drops, the bus is not ready until
/// every channel in `channels` is subscribed again: redis-rs renews a node's channels when that
/// node comes back, but not when a replica took over its slots, so this task subscribes them
/// all again itself (each routed to its slot's owner of now; subscribing twice is harmless),
/// trying each second. Then subscribers catch up, as events may have been missed meanwhile.
async fn shard_loop(
    nodes: Vec<String>,
    prefix: String,
    sender: broadcast::Sender<Signal>,
    channels: Arc<Mutex<HashSet<String>>>,
    subscribed: watch::Sender<bool>,
    shards: watch::Sender<Option<ClusterConnection>>,
) {
    let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let mut backoff = Duration::from_millis(50);
    let connection = loop {
        let connected = match RedisTarget::cluster_builder(&nodes, Duration::from_secs(2))
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push_tx.clone())
            .build()
        {
            Ok(client) => client.get_async_connection().await,
            Err(err) => Err(err),
        };
        match connected {
            Ok(conn) => break conn,
            Err(err) => tracing::debug!(error = %err, "redis cluster unreachable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    };
    tracing::info!(prefix, "connected to the redis cluster");
    shards.send_replace(Some(connection.clone()));
    subscribed.send_replace(true);
    let mut probe = tokio::time::interval(Duration::from_secs(1));
    loop {
        let push = tokio::select! {
            push = pushes.recv() => match push {
                Some(push) => push,
                None => return,
            },
            _ = probe.tick(), if !*subscribed.borrow() => {
                if let Err(err) = subscribe_again(&connection, &channels).await {
                    tracing::debug!(prefix, error = %err, "redis cluster: not subscribed again yet");
                    continue;
                }
                tracing::info!(prefix, "redis cluster: every channel subscribed again");
                subscribed.send_replace(true);
                let _ = sender.send(Signal::Resync);
                continue;
            }
        };
        match push.kind {
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(body)) = (data.next(), data.next()) else {
                    continue;
                };
                let (Ok(channel), Ok(body)) = (
                    redis::from_redis_value::<String>(channel),
                    redis::from_redis_value::<String>(body),
                ) else {
                    continue;
                };
                fan_out(&channel, &body, &prefix, &sender);
            }
            PushKind::Disconnection => {
                tracing::warn!(
                    prefix,
                    "a redis cluster node's subscription dropped; resubscribing"
                );
                subscribed.send_replace(false);
            }
            _ => {}
        }
    }
}

/// Subscribes every channel of `channels` on `connection`, each on its slot's owner.
async fn subscribe_again(
    connection: &ClusterConnection,
    channels: &Mutex<HashSet<String>>,
) -> redis::RedisResult<()> {
    let channels = channels.lock().await;
    let mut conn = connection.clone();
    // Also the answer to whether the cluster is reachable when no channel is followed yet.
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    for channel in channels.iter() {
        conn.ssubscribe(channel).await?;
    }
    Ok(())
}

/// A pub/sub message `<id> <payload>` on `<prefix>{<topic>}`, to every subscriber here.
fn fan_out(channel: &str, body: &str, prefix: &str, sender: &broadcast::Sender<Signal>) {
    let Some(topic) = topic_of_channel(channel, prefix) else {
        return;
    };
    let decoded = (|| {
        let (id, payload) = body.split_once(' ').ok_or("no event id")?;
        let id: EventId = id.parse().map_err(|err: BadEventId| err.to_string())?;
        let payload = serde_json::from_str(payload).map_err(|err| err.to_string())?;
        Ok::<_, String>((id, payload))
    })();
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
