//! [`RedisCluster`]: a three-node Redis Cluster of one test's own on loopback, and
//! [`TestRedis`], the Redis a test runs its subgraphs on (the shared server or such a cluster).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tessera_kit::events::{RedisConnection, RedisTarget};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long the cluster may take to agree on its slots.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Three `redis-server --cluster-enabled yes` children (no persistence) whose 16384 slots
/// `redis-cli --cluster create` split between them, each with a replica or not. Dropping it
/// kills them.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    _dir: crate::TempDir,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts the three nodes, creates the cluster and returns once every node reports
    /// `cluster_state:ok`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(0).await
    }

    /// Three primaries with a replica each (six nodes), which take over within a few seconds of
    /// their primary's failure; returns once every replica is in sync.
    pub async fn start_replicated() -> anyhow::Result<Self> {
        let cluster = Self::start_with(1).await?;
        for port in &cluster.ports {
            cluster
                .wait_for(
                    *port,
                    |info| info.contains("role:master") || info.contains("master_link_status:up"),
                    &["INFO", "replication"],
                )
                .await?;
        }
        Ok(cluster)
    }

    async fn start_with(replicas: usize) -> anyhow::Result<Self> {
        let dir = crate::TempDir::create("redis-cluster")?;
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let port = crate::free_port()?;
            let bus_port = crate::free_port()?;
            let child = crate::private_redis::spawn_quietly(
                Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-port", &bus_port.to_string()])
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                    // With replicas, a failed primary is replaced after about this long.
                    .args([
                        "--cluster-node-timeout",
                        if replicas > 0 { "2000" } else { "15000" },
                    ])
                    .args(["--save", "", "--appendonly", "no", "--dir"])
                    .arg(dir.path()),
            )?;
            children.push(child);
            ports.push(port);
        }
        let cluster = Self {
            ports,
            _dir: dir,
            children,
        };
        for port in &cluster.ports {
            cluster
                .wait_for(*port, |reply| reply == "PONG", &["PING"])
                .await?;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running redis-cli --cluster create")?;
        anyhow::ensure!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &cluster.ports {
            cluster
                .wait_for(
                    *port,
                    |info| info.contains("cluster_state:ok"),
                    &["CLUSTER", "INFO"],
                )
                .await?;
        }
        Ok(cluster)
    }

    /// Asks node `port` `command` until `ready` holds for its answer.
    async fn wait_for(
        &self,
        port: u16,
        ready: impl Fn(&str) -> bool,
        command: &[&str],
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(mut conn) = self.node(port).await {
                let mut cmd = redis::cmd(command[0]);
                for arg in &command[1..] {
                    cmd.arg(*arg);
                }
                match cmd.query_async::<String>(&mut conn).await {
                    Ok(reply) if ready(&reply) => return Ok(()),
                    Ok(reply) => last = reply,
                    Err(err) => last = err.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis node {port} not ready for {command:?} in {READY_TIMEOUT:?}: {last}")
    }

    /// The nodes' URLs, comma-separated: what `REDIS_URL` holds with `REDIS_CLUSTER`.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Kills node `port` (SIGKILL) and waits until it is gone.
    async fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        let at = self
            .ports
            .iter()
            .position(|p| *p == port)
            .with_context(|| format!("no node on port {port}"))?;
        self.children[at].kill().await?;
        Ok(())
    }

    /// A plain connection to node `port` alone (for commands about that node).
    pub async fn node(&self, port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))?
            .get_multiplexed_async_connection()
            .await
    }

    /// Kills the primary that holds `key`'s slot and waits until a replica has taken the slot
    /// over ([`start_replicated`](Self::start_replicated)); returns the new owner's port.
    pub async fn fail_over(&mut self, key: &str) -> anyhow::Result<u16> {
        let primary = self.owner_of(key).await?;
        let survivor = self
            .ports
            .iter()
            .copied()
            .find(|port| *port != primary)
            .context("one node only")?;
        self.kill(primary).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.owner_of_asking(key, survivor).await {
                Ok(owner) if owner != primary => return Ok(owner),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                owner => anyhow::bail!("no replica took {key}'s slot from {primary}: {owner:?}"),
            }
        }
    }

    /// The port of the node that holds `key`'s hash slot (as the first node that answers sees
    /// it).
    pub async fn owner_of(&self, key: &str) -> anyhow::Result<u16> {
        let mut last = None;
        for port in &self.ports {
            match self.owner_of_asking(key, *port).await {
                Ok(owner) => return Ok(owner),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no nodes")))
    }

    /// [`owner_of`](Self::owner_of), as node `port` sees it.
    async fn owner_of_asking(&self, key: &str, port: u16) -> anyhow::Result<u16> {
        let mut conn = self.node(port).await?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        // CLUSTER SLOTS: [[start, end, [host, port, id], …], …]
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(start), Some(end), Some(redis::Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let start: u16 = redis::from_redis_value_ref(start)?;
            let end: u16 = redis::from_redis_value_ref(end)?;
            if (start..=end).contains(&slot) {
                let port = master.get(1).context("a node without a port")?;
                return Ok(redis::from_redis_value_ref(port)?);
            }
        }
        anyhow::bail!("no node holds slot {slot}")
    }
}

/// The Redis a test's subgraphs and buses use.
#[derive(Debug)]
pub enum TestRedis {
    /// The shared server at [`crate::REDIS_URL`] (tests keep apart by prefix).
    Shared,
    /// A three-node cluster of the test's own.
    Cluster(RedisCluster),
}

impl TestRedis {
    /// A new three-node cluster.
    pub async fn cluster() -> anyhow::Result<Self> {
        Ok(Self::Cluster(RedisCluster::start().await?))
    }

    /// The URL subgraphs get (the cluster's nodes, comma-separated).
    pub fn url(&self) -> String {
        match self {
            Self::Shared => crate::REDIS_URL.to_owned(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Where the kit finds it.
    pub fn target(&self) -> anyhow::Result<RedisTarget> {
        Ok(RedisTarget::parse(&self.url(), self.is_cluster())?)
    }

    /// A connection for the test's own commands (routed by key on a cluster).
    pub async fn connection(&self) -> anyhow::Result<RedisConnection> {
        Ok(self.target()?.dedicated(Duration::from_secs(5)).await?)
    }
}
