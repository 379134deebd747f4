//! Subscription fan-out benchmark: many identical subscribers over real WebSockets
//! (`graphql-transport-ws`), one event at a time, through a router and, in the same run,
//! straight against the subgraph. Prints its figures:
//!
//! - time until every subscriber is acknowledged;
//! - the served process's resident memory per idle subscription (`/proc/PID/status`);
//! - its CPU time per delivered message (`/proc/PID/stat`), one upstream event fanned out;
//! - the latency from each order's creation (its `createdAt`, set in the mutation's
//!   transaction) to its receipt by each subscriber: p50, p99, max.
//!
//! `scripts/fanout.sh` starts the example's subgraphs and a release router and runs this with
//! their addresses and process ids; see it for a typical command line.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// One target: where subscribers connect and which process serves them.
struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
}

struct Options {
    targets: Vec<Target>,
    subscribers: usize,
    events: usize,
    interval: Duration,
    mutation_url: String,
    query: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: fanout --target NAME=WS_URL[@PID] [--target …] --mutation-url HTTP_URL \
         [--subscribers 10000] [--events 10] [--interval-ms 1000] [--query SUBSCRIPTION]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        targets: Vec::new(),
        subscribers: 10_000,
        events: 10,
        interval: Duration::from_millis(1000),
        mutation_url: String::new(),
        query: "subscription { orderPlaced { id total createdAt } }".to_owned(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--target" => {
                let (name, rest) = value.split_once('=').unwrap_or_else(|| usage());
                let (url, pid) = match rest.rsplit_once('@') {
                    Some((url, pid)) => (url, pid.parse().ok()),
                    None => (rest, None),
                };
                options.targets.push(Target {
                    name: name.to_owned(),
                    url: url.to_owned(),
                    pid,
                });
            }
            "--subscribers" => options.subscribers = value.parse().unwrap_or_else(|_| usage()),
            "--events" => options.events = value.parse().unwrap_or_else(|_| usage()),
            "--interval-ms" => {
                options.interval = Duration::from_millis(value.parse().unwrap_or_else(|_| usage()));
            }
            "--mutation-url" => options.mutation_url = value,
            "--query" => options.query = value,
            _ => usage(),
        }
    }
    if options.targets.is_empty() || options.mutation_url.is_empty() {
        usage();
    }
    options
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One subscriber: connects, is acknowledged, subscribes, then reports each event's latency.
async fn subscriber(
    url: String,
    query: String,
    acked: mpsc::UnboundedSender<()>,
    latencies: mpsc::UnboundedSender<i64>,
) {
    let Ok(mut request) = url.into_client_request() else {
        return;
    };
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
        eprintln!("a subscriber could not connect");
        return;
    };
    if socket
        .send(Message::text(r#"{"type":"connection_init"}"#))
        .await
        .is_err()
    {
        return;
    }
    let subscribe =
        serde_json::json!({ "type": "subscribe", "id": "1", "payload": { "query": query } });
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let received = chrono::Utc::now();
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match value["type"].as_str() {
            Some("connection_ack") => {
                let _ = acked.send(());
                if socket
                    .send(Message::text(subscribe.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some("next") => {
                let created = value["payload"]["data"]["orderPlaced"]["createdAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if let Some(created) = created {
                    let micros = (received - created.with_timezone(&chrono::Utc))
                        .num_microseconds()
                        .unwrap_or(i64::MAX);
                    let _ = latencies.send(micros);
                }
            }
            Some("ping") => {
                let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            Some("error" | "complete") => return,
            _ => {}
        }
    }
}

async fn place_order(client: &reqwest::Client, url: &str) -> bool {
    let body = serde_json::json!({
        "query": "mutation { placeOrder(input: { buyerId: \"3\", items: [{ upc: \"100001\", quantity: 1 }] }) { id } }"
    });
    client
        .post(url)
        .json(&body)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

async fn run(target: &Target, options: &Options, http: &reqwest::Client) {
    let n = options.subscribers;
    println!("== {} ({}) — {n} subscribers", target.name, target.url);
    let rss_before = target.pid.and_then(rss_kib);
    let (acked_tx, mut acked) = mpsc::unbounded_channel();
    let (latency_tx, mut latencies) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(subscriber(
            target.url.clone(),
            options.query.clone(),
            acked_tx.clone(),
            latency_tx.clone(),
        )));
        // Pace the connects a little so the listen backlog never overflows.
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut count = 0;
    while count < n {
        match tokio::time::timeout(Duration::from_secs(60), acked.recv()).await {
            Ok(Some(())) => count += 1,
            _ => break,
        }
    }
    let ack_time = started.elapsed();
    println!(
        "acknowledged: {count}/{n} in {:.2} s",
        ack_time.as_secs_f64()
    );
    // Let the subscribe messages land and the upstream subscribe.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Some(before), Some(after)) = (rss_before, target.pid.and_then(rss_kib)) {
        let per = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
        println!(
            "memory: RSS {before} KiB -> {after} KiB: {:.1} KB per idle subscription",
            per / 1000.0
        );
    }
    // A warm-up event: every subscriber must hear it before measuring.
    let mut warm = 0;
    for _ in 0..20 {
        place_order(http, &options.mutation_url).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while warm < n && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(500), latencies.recv()).await {
                Ok(Some(_)) => warm += 1,
                _ => break,
            }
        }
        if warm >= n {
            break;
        }
    }
    println!("warm-up: {warm}/{n} subscribers heard an event");
    // Drain what is still in flight from the warm-up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while latencies.try_recv().is_ok() {}
    let cpu_before = target.pid.and_then(cpu_seconds);
    let mut samples = Vec::with_capacity(n * options.events);
    let wall = Instant::now();
    for _ in 0..options.events {
        let tick = Instant::now();
        place_order(http, &options.mutation_url).await;
        let next = tick + options.interval;
        while Instant::now() < next {
            match tokio::time::timeout_at(next.into(), latencies.recv()).await {
                Ok(Some(micros)) => samples.push(micros),
                _ => break,
            }
        }
    }
    let expected = n * options.events;
    let deadline = Instant::now() + Duration::from_secs(10);
    while samples.len() < expected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), latencies.recv()).await {
            Ok(Some(micros)) => samples.push(micros),
            _ => break,
        }
    }
    let cpu_after = target.pid.and_then(cpu_seconds);
    println!(
        "delivered: {}/{expected} messages over {:.1} s",
        samples.len(),
        wall.elapsed().as_secs_f64()
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after)
        && !samples.is_empty()
    {
        println!(
            "cpu: {:.2} s for {} messages: {:.2} µs per delivered message",
            after - before,
            samples.len(),
            (after - before) * 1e6 / samples.len() as f64
        );
    }
    samples.sort_unstable();
    println!(
        "latency from the order's creation to receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
    for task in tasks {
        task.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::main]
async fn main() {
    let options = options();
    let http = reqwest::Client::new();
    for target in &options.targets {
        run(target, &options, &http).await;
    }
}
