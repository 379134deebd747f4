//! Every subgraph binary starts with no configuration at all: no flags and none of its
//! environment variables. It listens on its default port, keeps its SQLite file under `./data/`
//! of its working directory, and serves its federated SDL.
//!
//! The binaries are the ones `cargo build --workspace --bins` leaves next to this test binary's
//! `deps/` directory; this test does not build them.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tessera_tests::{TempDir, post_graphql, wait_until};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// Each subgraph binary's name suffix and the port it must listen on by default.
const BINARIES: [(&str, u16); 5] = [
    ("accounts", 4001),
    ("products", 4002),
    ("inventory", 4003),
    ("reviews", 4004),
    ("orders", 4005),
];

/// Every environment variable the binaries read configuration from. `RUST_LOG` is removed too,
/// so the default log filter (which shows the "serving GraphQL" line) applies.
const CONFIG_VARS: [&str; 7] = [
    "DATABASE_URL",
    "REDIS_URL",
    "LISTEN",
    "EVENT_PREFIX",
    "SEED",
    "DATA_DIR",
    "RUST_LOG",
];

/// How long a binary may take to connect, migrate a new SQLite file and answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whatever the child wrote to stderr so far, collected by a background task.
#[derive(Clone, Default)]
struct Stderr(Arc<Mutex<String>>);

impl Stderr {
    /// Starts copying the child's stderr, line by line, into a new buffer.
    fn capture(child: &mut Child) -> anyhow::Result<Stderr> {
        let pipe = child
            .stderr
            .take()
            .context("the child's stderr is not piped")?;
        let stderr = Stderr::default();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut text) = sink.0.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Ok(stderr)
    }

    fn text(&self) -> String {
        self.0.lock().map(|text| text.clone()).unwrap_or_default()
    }
}

/// Starts `tessera-<name>` with no configuration in a fresh working directory, checks it, and
/// kills and reaps it, whether the checks passed or not.
async fn starts_without_configuration(name: &str, port: u16) -> anyhow::Result<()> {
    let binary = tessera_tests::binary(&format!("tessera-{name}"))?;
    // Something already on the port would answer our requests instead of the child.
    anyhow::ensure!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "port {port} is already in use (a running tessera-example or tessera-{name}?); stop it \
         before running this test"
    );
    let cwd = TempDir::create(&format!("startup-{name}"))?;
    let mut command = Command::new(&binary);
    command
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in CONFIG_VARS {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let stderr = Stderr::capture(&mut child)?;
    let checked = check_running(&mut child, &stderr, name, port, cwd.path()).await;
    // `kill` sends SIGKILL and waits for the process, so the next binary starts alone.
    let killed = child
        .kill()
        .await
        .with_context(|| format!("killing tessera-{name}"));
    checked.with_context(|| format!("tessera-{name}; its stderr:\n{}", stderr.text()))?;
    killed
}

/// The checks on a running `tessera-<name>`.
async fn check_running(
    child: &mut Child,
    stderr: &Stderr,
    name: &str,
    port: u16,
    cwd: &Path,
) -> anyhow::Result<()> {
    let health = format!("http://127.0.0.1:{port}/health");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building the HTTP client")?;
    let what = format!("GET {health} to answer 200");
    let healthy = wait_until(&what, READY_TIMEOUT, || {
        let request = client.get(&health).send();
        async move {
            matches!(request.await, Ok(response) if response.status() == reqwest::StatusCode::OK)
        }
    });
    tokio::select! {
        status = child.wait() => {
            anyhow::bail!("exited before it was ready: {}", match status {
                Ok(status) => status.to_string(),
                Err(err) => err.to_string(),
            });
        }
        healthy = healthy => healthy?,
    }

    let line = format!("serving GraphQL on http://127.0.0.1:{port}/graphql");
    wait_until(
        &format!("stderr to say {line:?}"),
        Duration::from_secs(5),
        || {
            let logged = stderr.text().contains(&line);
            async move { logged }
        },
    )
    .await?;

    let body = post_graphql(
        &format!("http://127.0.0.1:{port}/graphql"),
        "{ _service { sdl } }",
        serde_json::json!({}),
    )
    .await?;
    let sdl = body["data"]["_service"]["sdl"]
        .as_str()
        .with_context(|| format!("no _service.sdl in {body}"))?;
    anyhow::ensure!(sdl.contains("@key"), "the SDL has no @key:\n{sdl}");

    let file = cwd.join("data").join(format!("{name}.db"));
    anyhow::ensure!(
        file.is_file(),
        "no SQLite file at {} (the default ./data/{name}.db of its working directory)",
        file.display()
    );
    Ok(())
}

// The binaries listen on fixed ports, so they run one after the other in one test.
#[tokio::test]
async fn every_subgraph_binary_starts_with_no_configuration() -> anyhow::Result<()> {
    for (name, port) in BINARIES {
        starts_without_configuration(name, port).await?;
    }
    Ok(())
}
