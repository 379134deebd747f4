//! The bus on Redis: each topic's stream (its history, and the events' ids) and one pattern
//! subscription per process, fanned out in-process.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Mutex, broadcast, watch};
use tokio::task::JoinHandle;

use super::{BadEventId, BusError, Event, EventId, Lost, Retention, Signal};

pub(super) struct RedisBus {
    pub(super) client: redis::Client,
    /// Created on first use and kept: it reconnects by itself after failures.
    connection: Mutex<Option<ConnectionManager>>,
    /// Whether the subscriber connection is currently subscribed.
    pub(super) subscribed: watch::Receiver<bool>,
    subscriber: JoinHandle<()>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.subscriber.abort();
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

impl RedisBus {
    /// A bus on Redis at `url` whose subscriber fans out to `sender`; it connects (and
    /// reconnects) in the background.
    pub(super) fn start(
        url: &str,
        prefix: &str,
        sender: broadcast::Sender<Signal>,
    ) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let (subscribed_tx, subscribed) = watch::channel(false);
        let subscriber = tokio::spawn(subscribe_loop(
            client.clone(),
            prefix.to_owned(),
            sender,
            subscribed_tx,
        ));
        Ok(Self {
            client,
            connection: Mutex::new(None),
            subscribed,
            subscriber,
        })
    }

    /// Appends `event` to `stream` (trimmed to `retention`) and publishes it on `channel`.
    pub(super) async fn publish(
        &self,
        stream: &str,
        channel: &str,
        event: &Event,
        retention: Retention,
    ) -> Result<EventId, BusError> {
        let body = serde_json::to_string(&event.payload)?;
        let max_age = retention
            .max_age
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.connection().await?;
        let id: String = redis::Script::new(PUBLISH_SCRIPT)
            .key(stream)
            .key(format!("{stream}:origin"))
            .arg(channel)
            .arg(&body)
            .arg(retention.max_events.max(1))
            .arg(max_age)
            .invoke_async(&mut conn)
            .await?;
        Ok(id.parse()?)
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
            // No stream, or one that began after `after`: Redis lost what was there.
            let reset = after != EventId::ZERO
                && match (&info, origin) {
                    (None, _) => true,
                    (Some(_), origin) => origin.is_some_and(|origin| after < origin),
                };
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
