//! The loss test: a deployment of separate processes on loopback (two router replicas, two
//! replicas of each subgraph on PostgreSQL, one Redis that persists), subscribers on every
//! client protocol spread over both routers, and a writer placing orders the whole time, while
//! one replica of orders is killed (`kill -9`) and restarted, one router is killed for good (its
//! clients reconnect to the other with their last event id), and Redis is killed and restarted.
//! Every subscriber must end with every order, each once, in order.
//!
//! `TESSERA_LOSS_SUBSCRIBERS` (default 20) and `TESSERA_LOSS_SECONDS` (default 20) size it; the
//! figures are printed (`cargo test … loss -- --nocapture`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tessera_tests::{PrivateRedis, TempDir, TestDb, post_graphql, unique_prefix, wait_until};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const QUERY: &str = "subscription { orderPlaced { id buyer { username } } }";
const READY: Duration = Duration::from_secs(30);

/// A process of the deployment, killed (-9) on drop.
struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    health: String,
}

impl Process {
    fn new(name: &str, program: &Path, args: &[&str], env: &[(&str, String)], port: u16) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            child: None,
            health: format!("http://127.0.0.1:{port}/health"),
        }
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        let health = self.health.clone();
        wait_until(&format!("{} to be healthy", self.name), READY, || {
            let health = health.clone();
            async move {
                reqwest::get(&health)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    }

    /// `kill -9`, and waits for the exit.
    async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }
}

/// What one subscriber received.
#[derive(Default)]
struct Received {
    /// Order ids, in arrival order.
    orders: Vec<String>,
    /// The last event id, to resume after.
    last: Option<String>,
    /// When the last event came.
    at: Option<Instant>,
    /// The longest time between two events.
    longest_stall: Duration,
    /// Errors that ended a session (a gap would be one).
    errors: Vec<String>,
    reconnects: usize,
}

impl Received {
    fn take(&mut self, payload: &Value) {
        if let Some(errors) = payload.get("errors") {
            self.errors.push(errors.to_string());
            return;
        }
        if let Some(order) = payload["data"]["orderPlaced"]["id"].as_str() {
            self.orders.push(order.to_owned());
        }
        if let Some(id) = payload["extensions"]["eventId"].as_str() {
            self.last = Some(id.to_owned());
        }
        let now = Instant::now();
        if let Some(before) = self.at {
            self.longest_stall = self.longest_stall.max(now - before);
        }
        self.at = Some(now);
    }
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    TransportWs,
    LegacyWs,
    Sse,
    Multipart,
}

fn request(last: Option<&str>) -> Value {
    match last {
        Some(last) => json!({ "query": QUERY, "extensions": { "lastEventId": last } }),
        None => json!({ "query": QUERY }),
    }
}

/// One connection's life: subscribes (after `last` if any) and takes events until it ends.
async fn session(
    protocol: Protocol,
    router: &str,
    received: &Mutex<Received>,
) -> anyhow::Result<()> {
    let last = received.lock().await.last.clone();
    match protocol {
        Protocol::TransportWs | Protocol::LegacyWs => {
            let (subprotocol, start, next) = match protocol {
                Protocol::TransportWs => ("graphql-transport-ws", "subscribe", "next"),
                _ => ("graphql-ws", "start", "data"),
            };
            let mut req = format!("ws://{router}/graphql").into_client_request()?;
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(subprotocol),
            );
            let (mut socket, _) = tokio_tungstenite::connect_async(req).await?;
            socket
                .send(Message::text(
                    json!({ "type": "connection_init" }).to_string(),
                ))
                .await?;
            while let Some(message) = socket.next().await {
                let Message::Text(text) = message? else {
                    continue;
                };
                let message: Value = serde_json::from_str(&text)?;
                match message["type"].as_str().unwrap_or_default() {
                    "connection_ack" => {
                        let subscribe = json!({ "type": start, "id": "1", "payload": request(last.as_deref()) });
                        socket.send(Message::text(subscribe.to_string())).await?;
                    }
                    "ping" => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                    t if t == next => received.lock().await.take(&message["payload"]),
                    "complete" | "error" => anyhow::bail!("ended: {message}"),
                    _ => {}
                }
            }
            anyhow::bail!("closed")
        }
        Protocol::Sse | Protocol::Multipart => {
            let client = reqwest::Client::new();
            let mut builder = client.post(format!("http://{router}/graphql"));
            builder = match protocol {
                Protocol::Sse => {
                    let builder = builder.header("accept", "text/event-stream");
                    match &last {
                        Some(last) => builder.header("last-event-id", last),
                        None => builder,
                    }
                    .json(&request(None))
                }
                _ => builder
                    .header(
                        "accept",
                        "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
                    )
                    .json(&request(last.as_deref())),
            };
            let response = builder.send().await?;
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(chunk) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk?));
                let separator = match protocol {
                    Protocol::Sse => "\n\n",
                    _ => "\r\n--graphql",
                };
                while let Some(end) = buffer.find(separator) {
                    let frame: String = buffer.drain(..end + separator.len()).collect();
                    if frame.contains("event: complete") || frame.starts_with("--") {
                        anyhow::bail!("completed");
                    }
                    let json = match protocol {
                        Protocol::Sse => frame
                            .lines()
                            .find_map(|l| l.strip_prefix("data: "))
                            .map(str::to_owned),
                        _ => frame
                            .split("\r\n\r\n")
                            .nth(1)
                            .map(|part| part.trim_end_matches(separator).trim().to_owned()),
                    };
                    let Some(json) = json.filter(|j| !j.is_empty() && j != "{}") else {
                        continue;
                    };
                    let value: Value = serde_json::from_str(&json)?;
                    let payload = match protocol {
                        Protocol::Sse => value,
                        _ => value["payload"].clone(),
                    };
                    received.lock().await.take(&payload);
                }
            }
            anyhow::bail!("closed")
        }
    }
}

/// A subscriber: sessions on one router, then the other when one ends, until `stop`.
async fn subscriber(
    protocol: Protocol,
    routers: [String; 2],
    mut at: usize,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let run = session(protocol, &routers[at], &received);
        let ended = tokio::select! {
            ended = run => ended,
            () = async { while !stop.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(50)).await } } => return,
        };
        if let Err(err) = ended {
            let mut r = received.lock().await;
            r.reconnects += 1;
            if err.to_string().contains("EVENT_GAP") {
                r.errors.push(err.to_string());
            }
        }
        at = 1 - at;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn place_order(orders_url: &str) -> anyhow::Result<String> {
    let body = post_graphql(
        orders_url,
        "mutation($u: String!) { placeOrder(input: { buyerId: \"3\", items: [{ upc: $u, quantity: 1 }] }) { id } }",
        json!({ "u": tessera_seed::upc(1) }),
    )
    .await?;
    body["data"]["placeOrder"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no order: {body}"))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subscriber_loses_an_order_across_killed_replicas_and_a_redis_restart()
-> anyhow::Result<()> {
    let subscribers = env_number("TESSERA_LOSS_SUBSCRIBERS", 20) as usize;
    let seconds = env_number("TESSERA_LOSS_SECONDS", 20);
    let mut redis = PrivateRedis::start_persistent().await?;
    let prefix = unique_prefix();
    let names = ["accounts", "products", "inventory", "reviews", "orders"];
    let mut dbs = Vec::new();
    let mut replicas: Vec<[Process; 2]> = Vec::new();
    for name in names {
        let db = TestDb::create().await?;
        let program = tessera_tests::binary(&format!("tessera-{name}"))?;
        let mut pair = Vec::new();
        for replica in 0..2 {
            let port = tessera_tests::free_port()?;
            let env = [
                ("LISTEN", format!("127.0.0.1:{port}")),
                ("DATABASE_URL", db.url.clone()),
                ("REDIS_URL", redis.url()),
                ("EVENT_PREFIX", prefix.clone()),
                ("SEED", "true".to_owned()),
                ("CONSUMER_CLAIM_IDLE_MS", "2000".to_owned()),
            ];
            let mut process = Process::new(&format!("{name}-{replica}"), &program, &[], &env, port);
            process.start().await?;
            pair.push((process, port));
        }
        let mut pair = pair.into_iter();
        let (a, pa) = pair.next().context("replica a")?;
        let (b, pb) = pair.next().context("replica b")?;
        replicas.push([a, b]);
        dbs.push((name, db, [pa, pb]));
    }
    // Router i reaches replica i of every subgraph.
    let dir = TempDir::create("loss")?;
    let schemas = tessera_example::schemas().await;
    let tessera = tessera_tests::binary("tessera")?;
    let mut routers = Vec::new();
    for replica in 0..2 {
        let sources = schemas
            .iter()
            .map(|(name, sdl)| {
                let port = dbs
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, _, p)| p[replica]);
                tessera::compose::SubgraphSource {
                    name: (*name).to_owned(),
                    url: format!("http://127.0.0.1:{}/graphql", port.unwrap_or_default()),
                    sdl: sdl.clone(),
                }
            })
            .collect::<Vec<_>>();
        let supergraph = tessera::compose::compose(&sources)
            .supergraph
            .context("composition failed")?;
        let file = dir.path().join(format!("supergraph-{replica}.graphql"));
        std::fs::write(&file, supergraph)?;
        let port = tessera_tests::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let file = file.display().to_string();
        let mut router = Process::new(
            &format!("router-{replica}"),
            &tessera,
            &["router", "--supergraph", &file, "--listen", &listen],
            &[],
            port,
        );
        router.start().await?;
        routers.push((router, listen));
    }
    let router_addrs = [routers[0].1.clone(), routers[1].1.clone()];
    let orders_b = format!("http://127.0.0.1:{}/graphql", dbs[4].2[1]);

    // Subscribers: every protocol, half on each router.
    let stop = Arc::new(AtomicBool::new(false));
    let protocols = [
        Protocol::TransportWs,
        Protocol::LegacyWs,
        Protocol::Sse,
        Protocol::Multipart,
    ];
    let mut clients = Vec::new();
    for i in 0..subscribers {
        let received = Arc::new(Mutex::new(Received::default()));
        let protocol = protocols[i % 4];
        let task = tokio::spawn(subscriber(
            protocol,
            router_addrs.clone(),
            (i / 4) % 2,
            Arc::clone(&received),
            Arc::clone(&stop),
        ));
        clients.push((protocol, received, task));
    }
    // Orders until every subscriber has heard one: from then on, nothing may be missed.
    let mut warm_up = None;
    for _ in 0..200 {
        warm_up = Some(place_order(&orders_b).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut all = true;
        for (_, received, _) in &clients {
            all &= !received.lock().await.orders.is_empty();
        }
        if all {
            break;
        }
    }
    let warm_up = warm_up.context("no warm-up order")?;
    wait_until(
        "every subscriber hears the last warm-up order",
        READY,
        || {
            let clients = &clients;
            let warm_up = &warm_up;
            async move {
                for (_, received, _) in clients {
                    if !received.lock().await.orders.contains(warm_up) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await?;
    for (_, received, _) in &clients {
        let mut r = received.lock().await;
        r.longest_stall = Duration::ZERO;
    }

    // The writer, and the chaos.
    let run = Duration::from_secs(seconds);
    let started = Instant::now();
    let writer = {
        let orders_b = orders_b.clone();
        tokio::spawn(async move {
            let mut placed = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while started.elapsed() < run {
                tick.tick().await;
                match place_order(&orders_b).await {
                    Ok(id) => placed.push((id, started.elapsed())),
                    Err(err) => return Err(err),
                }
            }
            Ok(placed)
        })
    };
    tokio::time::sleep(run / 4).await;
    let orders_a = &mut replicas[4][0];
    orders_a.kill().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    orders_a.start().await?;
    println!(
        "loss: orders replica 0 killed and restarted at {:?}",
        started.elapsed()
    );
    tokio::time::sleep(run / 4).await;
    routers[0].0.kill().await?;
    println!("loss: router 0 killed at {:?}", started.elapsed());
    tokio::time::sleep(run / 4).await;
    redis.kill().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await?;
    println!(
        "loss: redis killed and restarted at {:?}",
        started.elapsed()
    );
    let placed_at = writer.await??;
    let placed: Vec<String> = placed_at.iter().map(|(id, _)| id.clone()).collect();
    let published = placed.len();

    // Every subscriber catches up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = placed.last().cloned().unwrap_or_default();
    while Instant::now() < deadline {
        let mut all = true;
        for (_, received, _) in &clients {
            all &= received.lock().await.orders.contains(&last);
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let expected: Vec<&String> = placed.iter().collect();
    let (mut min, mut max, mut duplicates, mut gaps, mut disorder) = (usize::MAX, 0, 0, 0, 0);
    let mut stall = Duration::ZERO;
    let mut failures = Vec::new();
    for (i, (protocol, received, task)) in clients.into_iter().enumerate() {
        let _ = task.await;
        let r = received.lock().await;
        let start = r
            .orders
            .iter()
            .position(|o| *o == warm_up)
            .map_or(0, |p| p + 1);
        let got: Vec<&String> = r.orders[start..]
            .iter()
            .filter(|o| placed.contains(o))
            .collect();
        let unique: HashSet<&&String> = got.iter().collect();
        duplicates += got.len() - unique.len();
        gaps += expected.iter().filter(|o| !unique.contains(o)).count();
        if got != expected && got.len() == unique.len() && unique.len() == expected.len() {
            disorder += 1;
        }
        min = min.min(unique.len());
        max = max.max(unique.len());
        stall = stall.max(r.longest_stall);
        if got != expected || !r.errors.is_empty() {
            let missing: Vec<String> = placed_at
                .iter()
                .filter(|(id, _)| !unique.contains(&id))
                .map(|(id, at)| format!("{id} placed at {at:?}"))
                .collect();
            failures.push(format!(
                "subscriber {i} ({protocol:?}): {} of {published}, {} reconnects, errors {:?}, \
                 missing {missing:?}",
                unique.len(),
                r.reconnects,
                r.errors
            ));
        }
    }
    println!(
        "loss: {subscribers} subscribers, {published} orders published in {run:?}; received per \
         subscriber min {min} max {max}; duplicates {duplicates}; gaps {gaps}; out of order \
         {disorder}; longest stall {stall:?}"
    );
    drop(routers);
    drop(replicas);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (_, db, _) in dbs {
        db.drop().await.ok();
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}
