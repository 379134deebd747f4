//! Durable consumers: a worker that must see every event of a topic, even those published
//! while it was down (inventory's share of the order saga).
//!
//! On Redis every published event is also appended to the stream `<prefix>stream:<topic>`
//! (see [`EventBus::publish`](crate::EventBus::publish)). A consumer group reads it; an entry
//! is acknowledged only after the handler is done with it, so a crash means redelivery, never
//! loss. Handlers must therefore be idempotent.
//!
//! - **One consumer per replica.** Each process joins the group under a name of its own
//!   (`<group>-<host>-<pid>-<random>`), so replicas share the work instead of stepping on each
//!   other's pending entries.
//! - **Taking over from the dead.** Entries delivered to a consumer that never acknowledged them
//!   (its replica died mid-entry) are claimed with `XAUTOCLAIM` once they have been idle for
//!   [`ConsumerOptions::claim_idle`]. Consumers left with nothing pending and idle for long are
//!   removed from the group.
//! - **Poison events.** A payload that does not decode, or a handler that says it never will
//!   succeed ([`HandleError::Reject`]), sends the entry straight to the dead-letter stream
//!   `<stream>:dead` (with the error, the original id and payload). A handler that keeps failing
//!   ([`HandleError::Retry`]) is retried with growing pauses up to
//!   [`ConsumerOptions::max_attempts`] times, then dead-lettered too. An entry delivered more
//!   often than that across processes (it crashes whoever runs it) is dead-lettered without
//!   running again. Each is logged and counted (`events_dead_lettered_total`), and the
//!   consumer goes on with the next entry.
//!
//! Without Redis, events stay in the process: the consumer follows the in-process bus with the
//! same retry budget, and gives up on an event by logging and counting it.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoConsumersReply,
    StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::events::{RedisConnection, RedisTarget, Topic};

/// Entries read per round.
const BATCH: usize = 64;
/// How long one read waits for new entries, at most.
const BLOCK: Duration = Duration::from_millis(1_000);
/// Consumers with nothing pending that were idle this long are removed from the group.
const FORGET_IDLE_CONSUMERS: Duration = Duration::from_secs(3_600);

/// Why a handler did not handle an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// It may work later (the database is away, a lock timed out): retry.
    Retry(String),
    /// It will never work (the event contradicts the handler's data): dead-letter it now.
    Reject(String),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(reason) | Self::Reject(reason) => f.write_str(reason),
        }
    }
}

/// How durable consumers retry, give up and take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// Attempts of a failing handler on one event before it is dead-lettered.
    pub max_attempts: u32,
    /// The pause after the first failed attempt; each further one doubles it (up to 5 s).
    pub first_retry: Duration,
    /// How long an entry must have sat unacknowledged at another consumer before it is taken.
    pub claim_idle: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_retry: Duration::from_millis(100),
            claim_idle: Duration::from_secs(30),
        }
    }
}

/// The dead-letter stream of `stream`.
pub fn dead_letter_stream(stream: &str) -> String {
    format!("{stream}:dead")
}

/// A consumer name no other process uses.
fn consumer_name(group: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{group}-{host}-{}-{}", std::process::id(), &random[..8])
}

/// Runs `handler` for every event on `topic`, as a member of consumer group `group`.
pub fn spawn_consumer<T, F, Fut>(
    app: &AppState,
    group: &str,
    topic: &Topic<T>,
    handler: F,
) -> JoinHandle<()>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send,
{
    let app = app.clone();
    let group = group.to_owned();
    let topic = *topic;
    tokio::spawn(async move {
        let consumer = Consumer {
            app: &app,
            topic: topic.name(),
            group: &group,
            name: consumer_name(&group),
            handler: &handler,
            options: app.consumers,
            payload: std::marker::PhantomData,
        };
        match app.bus.redis_target().cloned() {
            None => consumer.follow_in_process().await,
            Some(target) => consumer.follow_stream(&target).await,
        }
    })
}

struct Consumer<'a, F, T, Fut> {
    app: &'a AppState,
    topic: &'static str,
    group: &'a str,
    name: String,
    handler: &'a F,
    options: ConsumerOptions,
    payload: std::marker::PhantomData<fn(T) -> Fut>,
}

/// What became of one event.
enum Outcome {
    Handled,
    /// Given up on, with why.
    DeadLetter(String),
}

impl<F, Fut, T> Consumer<'_, F, T, Fut>
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    /// Decodes `payload` and runs the handler on it within the retry budget.
    async fn handle(&self, payload: &str) -> Outcome {
        self.app.metrics.event_received(self.topic);
        let mut pause = self.options.first_retry;
        for attempt in 1..=self.options.max_attempts {
            let value: T = match serde_json::from_str(payload) {
                Ok(value) => value,
                Err(err) => return Outcome::DeadLetter(format!("undecodable payload: {err}")),
            };
            match (self.handler)(value).await {
                Ok(()) => return Outcome::Handled,
                Err(HandleError::Reject(reason)) => return Outcome::DeadLetter(reason),
                Err(HandleError::Retry(reason)) if attempt == self.options.max_attempts => {
                    return Outcome::DeadLetter(format!("failed {attempt} times, last: {reason}"));
                }
                Err(HandleError::Retry(reason)) => {
                    self.app.metrics.event_retried(self.topic);
                    tracing::warn!(
                        topic = self.topic,
                        group = self.group,
                        attempt,
                        error = reason,
                        "handling an event failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        Outcome::DeadLetter("no attempt was allowed".to_owned())
    }

    /// Without Redis: every event of the in-process bus, with the same retry budget.
    async fn follow_in_process(&self) {
        let mut events = Box::pin(self.app.bus.subscribe(self.topic));
        while let Some(event) = events.next().await {
            let payload = event.payload.to_string();
            if let Outcome::DeadLetter(reason) = self.handle(&payload).await {
                self.app.metrics.event_dead_lettered(self.topic);
                tracing::error!(
                    topic = self.topic,
                    group = self.group,
                    error = reason,
                    payload,
                    "gave up on an event"
                );
            }
        }
    }

    /// With Redis: the topic's stream as a member of the group, reconnecting with backoff.
    async fn follow_stream(&self, target: &RedisTarget) {
        let stream = self.app.bus.stream_key(self.topic);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.consume(target, &stream).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(stream, group = self.group, error = %err, "durable consumer: reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// One connection's life: join the group, then claim what dead consumers left and read new
    /// entries, until something fails.
    async fn consume(&self, target: &RedisTarget, stream: &str) -> redis::RedisResult<()> {
        let block = BLOCK.min(self.options.claim_idle);
        // Its own connection: a blocking read would hold up others' commands.
        let mut conn = target.dedicated(block + Duration::from_secs(4)).await?;
        // From the start of the stream: events published before this group existed count too.
        let created: redis::RedisResult<()> =
            conn.xgroup_create_mkstream(stream, self.group, "0").await;
        if let Err(err) = created
            && err.code() != Some("BUSYGROUP")
        {
            return Err(err);
        }
        // Claim at once (a replica restarting after a crash finds its own work waiting), then
        // every half idle period.
        let claim_every = self.options.claim_idle / 2;
        let mut next_claim = Instant::now();
        loop {
            if Instant::now() >= next_claim {
                self.claim(&mut conn, stream).await?;
                next_claim = Instant::now() + claim_every;
            }
            let wait = next_claim
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), block);
            let options = StreamReadOptions::default()
                .group(self.group, &self.name)
                .count(BATCH)
                .block(wait.as_millis() as usize);
            let reply: Option<StreamReadReply> =
                conn.xread_options(&[stream], &[">"], &options).await?;
            let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
            for entry in entries {
                self.process(&mut conn, stream, &entry).await?;
            }
        }
    }

    /// Takes over entries idle at other consumers for longer than the claim period.
    async fn claim(&self, conn: &mut RedisConnection, stream: &str) -> redis::RedisResult<()> {
        let idle = self.options.claim_idle.as_millis() as usize;
        let mut start = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    stream,
                    self.group,
                    &self.name,
                    idle,
                    &start,
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await?;
            for entry in &reply.claimed {
                tracing::info!(
                    stream,
                    id = entry.id,
                    consumer = self.name,
                    "claimed an entry another consumer left pending"
                );
                self.process(conn, stream, entry).await?;
            }
            if reply.next_stream_id == "0-0" || reply.claimed.is_empty() {
                break;
            }
            start = reply.next_stream_id;
        }
        self.forget_idle_consumers(conn, stream).await
    }

    /// Removes consumers of crashed replicas once nothing is pending at them.
    async fn forget_idle_consumers(
        &self,
        conn: &mut RedisConnection,
        stream: &str,
    ) -> redis::RedisResult<()> {
        let info: StreamInfoConsumersReply = conn.xinfo_consumers(stream, self.group).await?;
        for consumer in info.consumers {
            if consumer.name != self.name
                && consumer.pending == 0
                && consumer.idle as u128 > FORGET_IDLE_CONSUMERS.as_millis()
            {
                let _: usize = conn
                    .xgroup_delconsumer(stream, self.group, &consumer.name)
                    .await?;
            }
        }
        Ok(())
    }

    /// Handles one entry and acknowledges it, dead-lettering what cannot be handled.
    async fn process(
        &self,
        conn: &mut RedisConnection,
        stream: &str,
        entry: &StreamId,
    ) -> redis::RedisResult<()> {
        let payload = entry
            .map
            .get("payload")
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok());
        let outcome = match &payload {
            None => Outcome::DeadLetter("the entry has no payload".to_owned()),
            Some(_) if self.delivered_too_often(conn, stream, &entry.id).await? => {
                Outcome::DeadLetter(format!(
                    "delivered more than {} times without being acknowledged",
                    self.options.max_attempts
                ))
            }
            Some(payload) => self.handle(payload).await,
        };
        if let Outcome::DeadLetter(reason) = outcome {
            self.app.metrics.event_dead_lettered(self.topic);
            tracing::error!(
                stream,
                id = entry.id,
                group = self.group,
                error = reason,
                "moved an event to the dead-letter stream"
            );
            let fields = [
                ("id", entry.id.as_str()),
                ("group", self.group),
                ("error", reason.as_str()),
                ("payload", payload.as_deref().unwrap_or("")),
            ];
            let _: String = conn.xadd(dead_letter_stream(stream), "*", &fields).await?;
        }
        let _: usize = conn.xack(stream, self.group, &[&entry.id]).await?;
        Ok(())
    }

    /// Whether the entry was delivered more often than the retry budget: every run of it so
    /// far ended without an acknowledgement (it took its process down, say).
    async fn delivered_too_often(
        &self,
        conn: &mut RedisConnection,
        stream: &str,
        id: &str,
    ) -> redis::RedisResult<bool> {
        let pending: StreamPendingCountReply =
            conn.xpending_count(stream, self.group, id, id, 1).await?;
        Ok(pending
            .ids
            .first()
            .is_some_and(|p| p.times_delivered > self.options.max_attempts as usize))
    }
}
