//! [`spawn_subgraph`]: any [`Subgraph`] serving on `127.0.0.1:<free port>`, ready when it returns.

use std::time::Duration;

use anyhow::Context as _;
use tessera_kit::{Config, Running, Subgraph};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::http::client;

/// How long [`spawn_subgraph`] waits for `/health` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often it asks.
const READY_POLL: Duration = Duration::from_millis(25);

/// A fresh Redis channel prefix, `test:<uuid>:`, so concurrent tests never see each other's
/// events on a shared Redis.
pub fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// How [`spawn_subgraph`] configures the subgraph; the fields map onto [`Config`].
#[derive(Debug, Clone)]
pub struct SubgraphOptions {
    /// Database URL (a [`crate::TestDb`]'s); `None` gives a SQLite file in a fresh temp dir.
    pub database_url: Option<String>,
    /// Redis URL for the event bus; `None` gives the in-process bus.
    pub redis_url: Option<String>,
    /// Whether `redis_url` lists the nodes of a Redis Cluster.
    pub redis_cluster: bool,
    /// Prefix of the subgraph's Redis channels and streams. Subgraphs that should see each
    /// other's events share one prefix.
    pub event_prefix: String,
    /// Load the example data on start.
    pub seed: bool,
    /// The DataLoader batch window in ms; `None` keeps the kit's default.
    pub loader_delay_ms: Option<u64>,
    /// How long durable consumers wait before claiming another consumer's pending entries, in
    /// ms; `None` keeps the kit's default.
    pub consumer_claim_idle_ms: Option<u64>,
    /// How many events each topic's stream keeps; `None` keeps the kit's default.
    pub event_stream_max_len: Option<usize>,
    /// How long published outbox rows are kept, in seconds; `None` keeps the kit's default.
    pub outbox_retention_secs: Option<u64>,
}

impl Default for SubgraphOptions {
    /// SQLite, in-process events, a [`unique_prefix`], no seed data.
    fn default() -> Self {
        Self {
            database_url: None,
            redis_url: None,
            redis_cluster: false,
            event_prefix: unique_prefix(),
            seed: false,
            loader_delay_ms: None,
            consumer_claim_idle_ms: None,
            event_stream_max_len: None,
            outbox_retention_secs: None,
        }
    }
}

impl SubgraphOptions {
    /// These options with events on `redis`.
    pub fn on_redis(mut self, redis: &crate::TestRedis) -> Self {
        self.redis_url = Some(redis.url());
        self.redis_cluster = redis.is_cluster();
        self
    }

    /// The kit configuration these options stand for.
    ///
    /// Without a database URL, `data_dir` is a new directory under the system temp dir, so
    /// SQLite files are never shared between tests. It is left behind after the test: the
    /// returned [`Running`] has nowhere to keep a guard that would delete it.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::defaults();
        config.database_url = self.database_url.clone();
        config.redis_url = self.redis_url.clone();
        config.redis_cluster = self.redis_cluster;
        config.event_prefix = self.event_prefix.clone();
        config.seed = self.seed;
        if let Some(delay) = self.loader_delay_ms {
            config.loader_delay_ms = delay;
        }
        if let Some(idle) = self.consumer_claim_idle_ms {
            config.consumer_claim_idle_ms = idle;
        }
        if let Some(max_len) = self.event_stream_max_len {
            config.event_stream_max_len = max_len;
        }
        if let Some(retention) = self.outbox_retention_secs {
            config.outbox_retention_secs = retention;
        }
        if self.database_url.is_none() {
            let dir = std::env::temp_dir()
                .join(format!("tessera-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            config.data_dir = dir;
        }
        Ok(config)
    }
}

/// Starts subgraph `S` on `127.0.0.1:0` and returns once `GET /health` answers 200.
///
/// Dropping the returned [`Running`] stops it; [`Running::shutdown`] stops it gracefully.
pub async fn spawn_subgraph<S: Subgraph>(opts: &SubgraphOptions) -> anyhow::Result<Running> {
    spawn_subgraph_at::<S>(opts, "127.0.0.1:0".parse()?).await
}

/// [`spawn_subgraph`] on `address` (to bring a stopped subgraph back where it was).
pub async fn spawn_subgraph_at<S: Subgraph>(
    opts: &SubgraphOptions,
    address: std::net::SocketAddr,
) -> anyhow::Result<Running> {
    let config = opts.config()?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    let running = tessera_kit::start::<S>(&config, listener)
        .await
        .with_context(|| format!("starting subgraph {}", S::NAME))?;
    wait_healthy(&format!("http://{}/health", running.addr))
        .await
        .with_context(|| format!("subgraph {} never became healthy", S::NAME))?;
    Ok(running)
}

/// Polls `url` until it answers 200, for at most [`READY_TIMEOUT`].
async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let client = client()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // Kept for the error message: why the last attempt was not a 200.
        let last = match client.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                format!("status {status}: {body}")
            }
            Err(err) => format!("request failed: {err}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("GET {url} not 200 after {READY_TIMEOUT:?}; last: {last}");
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Starts subgraph `S` with seeded example data on a fresh PostgreSQL database of its own and
/// the in-process event bus. Drop the database with [`TestDb::drop`] when done.
pub async fn spawn_seeded<S: Subgraph>() -> anyhow::Result<(crate::TestDb, Running)> {
    let db = crate::TestDb::create().await?;
    let opts = SubgraphOptions {
        database_url: Some(db.url.clone()),
        seed: true,
        ..SubgraphOptions::default()
    };
    let running = spawn_subgraph::<S>(&opts).await?;
    Ok((db, running))
}
