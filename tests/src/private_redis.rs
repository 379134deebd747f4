//! [`PrivateRedis`]: a `redis-server` of one test's own, for killing and restarting under a
//! running subgraph.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a start waits for the first `PONG`, and a kill for the port to close.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often both ask.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Fresh ports [`PrivateRedis::start`] tries before giving up; another process can take a port
/// between our probe releasing it and `redis-server` binding it.
const START_ATTEMPTS: usize = 3;

/// A `redis-server` child process on a free port of 127.0.0.1, with no persistence.
///
/// Dropping it kills the server.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    /// Where it keeps an append-only file (fsynced on every write), when it persists.
    aof_dir: Option<crate::TempDir>,
    /// `None` between [`PrivateRedis::kill`] and [`PrivateRedis::restart`].
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port and returns once it answers `PING`.
    pub async fn start() -> anyhow::Result<PrivateRedis> {
        Self::start_with(false).await
    }

    /// [`PrivateRedis::start`], keeping its data across kills and restarts in an append-only
    /// file written through on every command (`appendfsync always`), as a production Redis
    /// that must not lose events would.
    pub async fn start_persistent() -> anyhow::Result<PrivateRedis> {
        Self::start_with(true).await
    }

    async fn start_with(persistent: bool) -> anyhow::Result<PrivateRedis> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = crate::free_port()?;
            let aof_dir = if persistent {
                Some(crate::TempDir::create("redis")?)
            } else {
                None
            };
            let mut redis = PrivateRedis {
                port,
                aof_dir,
                child: None,
            };
            match redis.restart().await {
                Ok(()) => return Ok(redis),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "starting redis-server ({START_ATTEMPTS} ports tried)"
            )))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and returns once the process has exited and the port refuses
    /// connections. Does nothing when it is not running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `kill` sends SIGKILL and reaps the process.
            child.kill().await.context("killing redis-server")?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "port {} still accepts connections {READY_TIMEOUT:?} after killing redis-server",
                self.port
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Starts the server again on the same port (killing a running one first) and returns
    /// once it answers `PING`. The data is gone: nothing is persisted.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.kill().await?;
        }
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.aof_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir.path()),
            None => command.args(["--appendonly", "no"]),
        };
        self.child = Some(spawn_quietly(&mut command)?);
        self.wait_for_ping().await
    }

    /// Polls `PING` until `PONG`, failing early when the process exits (a taken port, say).
    async fn wait_for_ping(&mut self) -> anyhow::Result<()> {
        let url = self.url();
        let client = redis::Client::open(url.as_str()).context("parsing the Redis URL")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("checking on redis-server")?
            {
                self.child = None;
                anyhow::bail!("redis-server on port {} exited with {status}", self.port);
            }
            let last = match tokio::time::timeout(POLL_INTERVAL * 20, ping(&client)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) => err.to_string(),
                Err(_) => "PING timed out".to_owned(),
            };
            if Instant::now() >= deadline {
                anyhow::bail!("{url} did not answer PING within {READY_TIMEOUT:?}; last: {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGKILL now; tokio reaps the process in the background.
            let _ = child.start_kill();
        }
    }
}

/// Starts `command` (a `redis-server`) with no terminal, killed when its handle is dropped.
pub(crate) fn spawn_quietly(command: &mut Command) -> anyhow::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning redis-server (is it on PATH?)")
}

/// One `PING` on a new connection.
async fn ping(client: &redis::Client) -> redis::RedisResult<()> {
    let mut connection = client.get_multiplexed_async_connection().await?;
    let _: String = redis::cmd("PING").query_async(&mut connection).await?;
    Ok(())
}
