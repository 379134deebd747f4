//! A small HTTP load generator for GraphQL endpoints: runs one query from several concurrent
//! clients for a fixed time and prints throughput and latency percentiles, and, given a
//! process id, that process's CPU time per request (Linux `/proc`).
//!
//! `cargo run --release --example load -- --url URL --query-file FILE [--concurrency 8]
//!  [--seconds 10] [--pid PID] [--label NAME]`

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// The GraphQL endpoint.
    #[arg(long)]
    url: String,
    /// A file holding the query.
    #[arg(long)]
    query_file: std::path::PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to measure (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A process whose CPU time per request to report.
    #[arg(long)]
    pid: Option<u32>,
    /// The row's label.
    #[arg(long, default_value = "load")]
    label: String,
}

/// User and system CPU time of `pid`, from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((
        Duration::from_millis(utime * 10),
        Duration::from_millis(stime * 10),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn client(
    url: String,
    body: bytes::Bytes,
    warmup_end: Instant,
    end: Instant,
) -> (Vec<Duration>, usize, usize) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let mut latencies = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    while Instant::now() < end {
        let started = Instant::now();
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let ok = match response {
            Ok(response) => match response.bytes().await {
                Ok(payload) => {
                    bytes = payload.len();
                    !payload.starts_with(b"{\"errors\"")
                        && !payload.windows(9).any(|w| w == b"\"errors\":")
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if started >= warmup_end {
            if ok {
                latencies.push(started.elapsed());
            } else {
                errors += 1;
            }
        }
    }
    (latencies, errors, bytes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let query = std::fs::read_to_string(&args.query_file)?;
    let body = bytes::Bytes::from(serde_json::to_vec(&serde_json::json!({ "query": query }))?);
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut cpu_before = None;
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(client(args.url.clone(), body.clone(), warmup_end, end)))
        .collect();
    tokio::time::sleep_until(warmup_end.into()).await;
    if let Some(pid) = args.pid {
        cpu_before = cpu_time(pid);
    }
    let mut latencies = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    for handle in clients {
        let (l, e, b) = handle.await?;
        latencies.extend(l);
        errors += e;
        bytes = bytes.max(b);
    }
    let cpu_after = args.pid.and_then(cpu_time);
    latencies.sort();
    let requests = latencies.len();
    let throughput = requests as f64 / args.seconds as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cpu = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if requests > 0 => {
            let per = |a: Duration, b: Duration| ms(a.saturating_sub(b)) / requests as f64;
            let (user, sys) = (per(after.0, before.0), per(after.1, before.1));
            format!("{:.3} ms (user {user:.3}, sys {sys:.3})", user + sys)
        }
        _ => "-".to_owned(),
    };
    println!(
        "{:<34} {:>8} req {:>9.1} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  {:>7} B  errors {:>3}  cpu/req {}",
        args.label,
        requests,
        throughput,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        bytes,
        errors,
        cpu
    );
    Ok(())
}
