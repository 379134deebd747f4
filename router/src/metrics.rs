//! The router's Prometheus metrics, served on `GET /metrics`: HTTP requests and latency,
//! subgraph fetches by subgraph and outcome with their latency, and the plan cache.
//!
//! One [`RouterMetrics`] lives for the whole process (it travels in the engine configuration,
//! so a hot-reloaded engine keeps counting into it).

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The router's metrics; cloning shares them.
#[derive(Clone)]
pub struct RouterMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    subgraph_requests: IntCounterVec,
    subgraph_duration: HistogramVec,
    plan_cache: IntCounterVec,
    subscriptions: SubscriptionMetrics,
}

/// The subscription path's metrics, resolved to their series once (the fan-out updates them
/// per delivered message).
#[derive(Clone)]
pub struct SubscriptionMetrics {
    /// Open subscription connections (WebSocket, SSE, multipart), by protocol.
    pub connections: prometheus::IntGaugeVec,
    /// Client subscriptions being served.
    pub active: prometheus::IntGauge,
    /// Subscriptions held open with subgraphs (shared by identical client subscriptions).
    pub upstreams: prometheus::IntGauge,
    /// Distinct client operations being completed per event.
    pub groups: prometheus::IntGauge,
    /// Events received from subgraphs.
    pub events_received: prometheus::IntCounter,
    /// Messages delivered to clients.
    pub events_delivered: prometheus::IntCounter,
    /// Time to complete one event with other subgraphs' fields (once per distinct operation).
    pub enrichment: prometheus::Histogram,
}

impl std::fmt::Debug for RouterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterMetrics").finish_non_exhaustive()
    }
}

impl Default for RouterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid histogram options");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl RouterMetrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let inner = Inner {
            http_requests: counter(
                &registry,
                "tessera_http_requests_total",
                "HTTP requests, by route and status",
                &["route", "status"],
            ),
            http_duration: histogram(
                &registry,
                "tessera_http_request_duration_seconds",
                "HTTP request latency, by route",
                &["route"],
            ),
            subgraph_requests: counter(
                &registry,
                "tessera_subgraph_requests_total",
                "Subgraph requests, by subgraph and outcome (ok, error)",
                &["subgraph", "outcome"],
            ),
            subgraph_duration: histogram(
                &registry,
                "tessera_subgraph_request_duration_seconds",
                "Subgraph request latency, by subgraph",
                &["subgraph"],
            ),
            plan_cache: counter(
                &registry,
                "tessera_plan_cache_total",
                "Plan cache lookups, by result (hit, miss)",
                &["result"],
            ),
            subscriptions: SubscriptionMetrics::register(&registry),
            registry,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Counts one HTTP request.
    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        self.inner
            .http_requests
            .with_label_values(&[route, status.to_string().as_str()])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one subgraph request.
    pub fn observe_subgraph(&self, subgraph: &str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .subgraph_requests
            .with_label_values(&[subgraph, outcome])
            .inc();
        self.inner
            .subgraph_duration
            .with_label_values(&[subgraph])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one plan-cache lookup.
    pub fn observe_plan_cache(&self, hit: bool) {
        self.inner
            .plan_cache
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// Subgraph requests counted so far for `subgraph` with `ok`'s outcome.
    pub fn subgraph_requests(&self, subgraph: &str, ok: bool) -> u64 {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .subgraph_requests
            .with_label_values(&[subgraph, outcome])
            .get()
    }

    /// The subscription path's metrics.
    pub fn subscriptions(&self) -> &SubscriptionMetrics {
        &self.inner.subscriptions
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl SubscriptionMetrics {
    fn register(registry: &Registry) -> Self {
        let register = |metric: Box<dyn prometheus::core::Collector>| {
            registry.register(metric).expect("metric names are unique");
        };
        let connections = prometheus::IntGaugeVec::new(
            Opts::new(
                "tessera_subscription_connections",
                "Open subscription connections, by protocol",
            ),
            &["protocol"],
        )
        .expect("valid gauge options");
        register(Box::new(connections.clone()));
        let gauge = |name: &str, help: &str| {
            let metric = prometheus::IntGauge::new(name, help).expect("valid gauge options");
            register(Box::new(metric.clone()));
            metric
        };
        let count = |name: &str, help: &str| {
            let metric = prometheus::IntCounter::new(name, help).expect("valid counter options");
            register(Box::new(metric.clone()));
            metric
        };
        let enrichment = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tessera_subscription_enrichment_duration_seconds",
                "Time to complete one event with other subgraphs' fields",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid histogram options");
        register(Box::new(enrichment.clone()));
        Self {
            connections,
            active: gauge(
                "tessera_subscriptions_active",
                "Client subscriptions being served",
            ),
            upstreams: gauge(
                "tessera_subscription_upstreams_active",
                "Subscriptions held open with subgraphs",
            ),
            groups: gauge(
                "tessera_subscription_operations_active",
                "Distinct client operations completed per event",
            ),
            events_received: count(
                "tessera_subscription_events_received_total",
                "Events received from subgraphs",
            ),
            events_delivered: count(
                "tessera_subscription_events_delivered_total",
                "Messages delivered to subscription clients",
            ),
            enrichment,
        }
    }
}
