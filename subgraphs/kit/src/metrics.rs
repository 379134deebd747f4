//! Prometheus metrics of one subgraph process.
//!
//! Each [`Metrics`] owns its own registry rather than a global one, so several in-process servers
//! (as in tests) keep separate counts.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Which connection pool ran a SQL statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The pool that serves GraphQL requests.
    Requests,
    /// The pool of background work: the outbox relay and event consumers.
    Background,
}

impl Pool {
    fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Background => "background",
        }
    }
}

/// The metrics a subgraph exports on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    db_statements: IntCounterVec,
    db_failures: IntCounterVec,
    db_duration: Histogram,
    dataloader_batch: HistogramVec,
    events_published: IntCounterVec,
    events_received: IntCounterVec,
    events_dead_lettered: IntCounterVec,
    event_retries: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the metrics of subgraph `subgraph`, each labelled with its name.
    pub fn new(subgraph: &str) -> Self {
        let registry = Registry::new_custom(
            None,
            Some([("subgraph".to_owned(), subgraph.to_owned())].into()),
        )
        .expect("a constant label set is valid");
        let inner = Inner {
            http_requests: counter_vec(
                &registry,
                "http_requests_total",
                "HTTP requests served, by route and status",
                &["route", "status"],
            ),
            http_duration: histogram_vec(
                &registry,
                "http_request_duration_seconds",
                "HTTP request latency, by route",
                &["route"],
                prometheus::DEFAULT_BUCKETS.to_vec(),
            ),
            db_statements: counter_vec(
                &registry,
                "db_statements_total",
                "SQL statements executed, by connection pool",
                &["pool"],
            ),
            db_failures: counter_vec(
                &registry,
                "db_statement_failures_total",
                "SQL statements that failed, by connection pool",
                &["pool"],
            ),
            db_duration: {
                let h = Histogram::with_opts(HistogramOpts::new(
                    "db_statement_duration_seconds",
                    "SQL statement latency",
                ))
                .expect("valid histogram options");
                registry
                    .register(Box::new(h.clone()))
                    .expect("metric names are unique");
                h
            },
            dataloader_batch: histogram_vec(
                &registry,
                "dataloader_batch_size",
                "Keys per DataLoader batch, by loader",
                &["loader"],
                vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
            ),
            events_published: counter_vec(
                &registry,
                "events_published_total",
                "Events published to the event bus, by topic",
                &["topic"],
            ),
            events_received: counter_vec(
                &registry,
                "events_received_total",
                "Events received from the event bus, by topic",
                &["topic"],
            ),
            events_dead_lettered: counter_vec(
                &registry,
                "events_dead_lettered_total",
                "Events a durable consumer gave up on and moved to the dead-letter stream, by topic",
                &["topic"],
            ),
            event_retries: counter_vec(
                &registry,
                "event_handler_retries_total",
                "Failed attempts of a durable consumer's handler that were retried, by topic",
                &["topic"],
            ),
            registry,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Counts one HTTP request on `route` that answered `status` after `elapsed`.
    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.inner
            .http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one SQL statement run on `pool`.
    pub fn observe_statement(&self, pool: Pool, elapsed: Duration, failed: bool) {
        self.inner
            .db_statements
            .with_label_values(&[pool.label()])
            .inc();
        if failed {
            self.inner
                .db_failures
                .with_label_values(&[pool.label()])
                .inc();
        }
        self.inner.db_duration.observe(elapsed.as_secs_f64());
    }

    /// SQL statements run so far on `pool`.
    pub fn db_statements(&self, pool: Pool) -> u64 {
        self.inner
            .db_statements
            .with_label_values(&[pool.label()])
            .get()
    }

    /// Records one DataLoader batch of `keys` keys in loader `loader`.
    pub fn observe_batch(&self, loader: &str, keys: usize) {
        self.inner
            .dataloader_batch
            .with_label_values(&[loader])
            .observe(keys as f64);
    }

    /// Counts one event published on `topic`.
    pub fn event_published(&self, topic: &str) {
        self.inner
            .events_published
            .with_label_values(&[topic])
            .inc();
    }

    /// Counts one event received on `topic`.
    pub fn event_received(&self, topic: &str) {
        self.inner.events_received.with_label_values(&[topic]).inc();
    }

    /// Counts an event a durable consumer gave up on.
    pub fn event_dead_lettered(&self, topic: &str) {
        self.inner
            .events_dead_lettered
            .with_label_values(&[topic])
            .inc();
    }

    /// Counts a failed handler attempt that will be retried.
    pub fn event_retried(&self, topic: &str) {
        self.inner.event_retries.with_label_values(&[topic]).inc();
    }

    /// Events dead-lettered so far on `topic`.
    pub fn events_dead_lettered(&self, topic: &str) -> u64 {
        self.inner
            .events_dead_lettered
            .with_label_values(&[topic])
            .get()
    }

    /// HTTP requests served so far on `route` with `status`.
    pub fn http_requests(&self, route: &str, status: u16) -> u64 {
        self.inner
            .http_requests
            .with_label_values(&[route, status.to_string().as_str()])
            .get()
    }

    /// Events published so far on `topic`.
    pub fn events_published(&self, topic: &str) -> u64 {
        self.inner
            .events_published
            .with_label_values(&[topic])
            .get()
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.inner.registry.gather(), &mut buf) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid histogram options");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}
