//! Typed configuration of a subgraph process: CLI flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of one subgraph process.
///
/// Every field has a working default, so a subgraph binary runs with no configuration at all:
/// SQLite under `./data/`, an in-process event bus, and a fixed example port.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on. Defaults to the subgraph's example port on 127.0.0.1.
    #[arg(long, env = "LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Database URL (`sqlite://…` or `postgres://…`). Defaults to `sqlite://./data/<subgraph>.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL for the event bus. Without it, events stay inside this process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Treat `--redis-url` as the comma-separated nodes of a Redis Cluster: each topic's stream
    /// and sharded channel (`SPUBLISH`/`SSUBSCRIBE`) live on the node that owns its hash slot.
    #[arg(long, env = "REDIS_CLUSTER")]
    pub redis_cluster: bool,

    /// Prefix of every Redis channel and stream name, so deployments (and tests) don't see each
    /// other's events.
    #[arg(long, env = "EVENT_PREFIX", default_value = "tessera:")]
    pub event_prefix: String,

    /// About how many events each topic's stream keeps, for subscriptions that resume
    /// (`extensions.lastEventId`) or catch up. Resuming from further back is an `EVENT_GAP`.
    /// Without Redis the history is in memory, and at most 10,000 events per topic.
    #[arg(long, env = "EVENT_STREAM_MAX_LEN", default_value_t = 100_000)]
    pub event_stream_max_len: usize,

    /// Events older than this many seconds leave each topic's stream, when set.
    #[arg(long, env = "EVENT_STREAM_MAX_AGE_SECS")]
    pub event_stream_max_age_secs: Option<u64>,

    /// Published outbox rows are deleted once published this many seconds ago (they stay a
    /// while for inspection); rows not published yet are never deleted.
    #[arg(long, env = "OUTBOX_RETENTION_SECS", default_value_t = 3_600)]
    pub outbox_retention_secs: u64,

    /// Load the example data when the database is empty.
    #[arg(long, env = "SEED")]
    pub seed: bool,

    /// Directory for the default SQLite files.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// How long DataLoaders wait for more keys before running a batch, in ms: a wider window
    /// keeps batches whole on a busy machine at the cost of latency per nesting level.
    #[arg(long, env = "LOADER_DELAY_MS", default_value_t = crate::LOADER_DELAY_MS)]
    pub loader_delay_ms: u64,

    /// How many times a durable consumer runs a failing handler on one event (with growing
    /// pauses) before it moves the event to the dead-letter stream.
    #[arg(long, env = "CONSUMER_MAX_ATTEMPTS", default_value_t = 5)]
    pub consumer_max_attempts: u32,

    /// How long an event may sit delivered but unacknowledged at another consumer (a replica
    /// that died) before this one claims it, in ms.
    #[arg(long, env = "CONSUMER_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub consumer_claim_idle_ms: u64,

    /// Print this subgraph's SDL (as served by `_service { sdl }`) and exit.
    #[arg(long)]
    pub print_sdl: bool,

    /// An event bus shared with other subgraphs in this process (the all-in-one example), used
    /// instead of building one from `redis_url`.
    #[arg(skip)]
    pub shared_bus: Option<crate::events::EventBus>,
}

/// Events per topic an in-process bus keeps (in memory) for subscriptions that resume, at most.
pub const IN_PROCESS_MAX_EVENTS: usize = 10_000;

impl Config {
    /// A configuration with every default: what a binary started without flags gets.
    pub fn defaults() -> Self {
        Self {
            listen: None,
            database_url: None,
            redis_url: None,
            redis_cluster: false,
            event_prefix: "tessera:".to_owned(),
            event_stream_max_len: 100_000,
            event_stream_max_age_secs: None,
            outbox_retention_secs: 3_600,
            seed: false,
            data_dir: PathBuf::from("./data"),
            print_sdl: false,
            loader_delay_ms: crate::LOADER_DELAY_MS,
            consumer_max_attempts: 5,
            consumer_claim_idle_ms: 30_000,
            shared_bus: None,
        }
    }

    /// How much of each topic's history the event bus keeps.
    pub fn retention(&self) -> crate::events::Retention {
        crate::events::Retention {
            max_events: self.event_stream_max_len,
            max_age: self
                .event_stream_max_age_secs
                .map(std::time::Duration::from_secs),
        }
    }

    /// The event bus this configuration asks for: the shared one, on Redis when a URL is set,
    /// else in-process.
    pub fn event_bus(&self) -> Result<crate::events::EventBus, crate::events::BusError> {
        Ok(match (&self.shared_bus, &self.redis_url) {
            (Some(bus), _) => bus.clone(),
            (None, Some(redis)) => crate::events::EventBus::on(
                crate::events::RedisTarget::parse(redis, self.redis_cluster)?,
                &self.event_prefix,
                self.retention(),
            ),
            (None, None) => {
                // Kept in this process's memory: at most IN_PROCESS_MAX_EVENTS per topic.
                let mut retention = self.retention();
                retention.max_events = retention.max_events.min(IN_PROCESS_MAX_EVENTS);
                crate::events::EventBus::in_process_with(&self.event_prefix, retention)
            }
        })
    }

    /// The database URL to use for subgraph `name`: the configured one, or a SQLite file in
    /// [`Config::data_dir`] that is created when missing.
    pub fn database_url_for(&self, name: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/{name}.db?mode=rwc", self.data_dir.display()),
        }
    }
}
