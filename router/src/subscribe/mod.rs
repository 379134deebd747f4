//! Subscriptions through the router: client protocols, the upstream WebSocket client, event
//! completion and de-duplication.
//!
//! The path of one event, from the subgraph to the client:
//!
//! 1. [`upstream`]: one `graphql-transport-ws` connection per subgraph and forwarded-auth
//!    context carries the router's subscriptions to that subgraph, reconnecting and
//!    re-subscribing when it drops.
//! 2. [`Hub::upstream`]: identical primaries (same subgraph, operation, variables and auth
//!    context) share ONE upstream subscription, whose events are broadcast to every
//!    [`group::Group`] that needs them.
//! 3. [`group`]: clients with identical subscriptions share a group, which completes each event
//!    ONCE with the rest of the plan (entity fetches to other subgraphs, like a query) and
//!    broadcasts the resulting bytes to all of them. It re-plans when the supergraph changes.
//! 4. [`session`]: what every protocol shares (start an operation, limits, counters);
//!    [`transport_ws`], [`legacy_ws`], [`sse`] and [`multipart`] frame the same bytes for
//!    each client protocol.
//!
//! Every queue is bounded: a client that stops reading is disconnected, never buffered for.

pub mod group;
pub mod legacy_ws;
pub mod multipart;
pub mod session;
pub mod sse;
pub mod transport_ws;
pub mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::headers::SubgraphHeaders;
use crate::live::Live;
use crate::metrics::SubscriptionMetrics;
use upstream::{ConnectionKey, UpstreamConfig, UpstreamEvent, Upstreams};

/// Completes once `shutdown` says the router is shutting down (never holds its guard across
/// an await, so the futures waiting on it stay `Send`).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Limits and timings of the subscription path, with safe defaults.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The router's own connections to subgraphs.
    pub upstream: UpstreamConfig,
    /// A subscription URL per subgraph name, where it is not the subgraph's URL with `ws`.
    pub subgraph_urls: HashMap<String, String>,
    /// Open subscription connections (all protocols) at most.
    pub max_connections: usize,
    /// Subscriptions one WebSocket connection may hold.
    pub max_per_connection: usize,
    /// Client subscriptions in all.
    pub max_subscriptions: usize,
    /// Deliveries a client may fall behind before it is disconnected.
    pub client_queue: usize,
    /// How long a WebSocket client has to send `connection_init`.
    pub init_timeout: Duration,
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// How often idle streams get a keep-alive (WebSocket ping / `ka`, SSE comment).
    pub keepalive: Duration,
    /// How long one write to a client may take before it is dropped as stuck.
    pub write_timeout: Duration,
    /// Pass the client's `connection_init` payload on to subgraphs.
    pub forward_init_payload: bool,
    /// Refuse (close 4403) a WebSocket whose `connection_init` payload carries no
    /// `authorization` (at its top level or under `headers`).
    pub auth_required: bool,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            subgraph_urls: HashMap::new(),
            max_connections: 50_000,
            max_per_connection: 100,
            max_subscriptions: 200_000,
            client_queue: 128,
            init_timeout: Duration::from_secs(3),
            max_message_bytes: 1 << 20,
            keepalive: Duration::from_secs(12),
            write_timeout: Duration::from_secs(10),
            forward_init_payload: true,
            auth_required: false,
        }
    }
}

/// What makes two client subscriptions identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    query: String,
    operation_name: Option<String>,
    variables: String,
    headers: SubgraphHeaders,
    init_payload: Option<String>,
    /// Resuming clients and rate-limited ones are served apart from live ones.
    stream: group::StreamOptions,
}

/// One upstream subscription shared by every group whose primary is the same.
struct SharedUpstream {
    key: (ConnectionKey, Bytes),
    sender: broadcast::Sender<UpstreamEvent>,
    task: tokio::task::AbortHandle,
    hub: Weak<Hub>,
}

impl Drop for SharedUpstream {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(hub) = self.hub.upgrade() {
            hub.metrics.upstreams.dec();
            let mut shared = hub.shared.lock().unwrap_or_else(|e| e.into_inner());
            if shared.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
                shared.remove(&self.key);
            }
        }
    }
}

/// A group's view of a shared upstream subscription.
pub struct UpstreamFeed {
    receiver: broadcast::Receiver<UpstreamEvent>,
    _share: Arc<SharedUpstream>,
}

impl std::fmt::Debug for UpstreamFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamFeed").finish_non_exhaustive()
    }
}

impl UpstreamFeed {
    /// The next event; a group that fell too far behind the shared feed fails.
    pub async fn recv(&mut self) -> Option<UpstreamEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(UpstreamEvent::Failed(
                format!("events were completed too slowly: {missed} missed"),
            )),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The subscription path's shared state: upstreams, groups, limits and counters.
pub struct Hub {
    /// The engine in service (groups re-plan when it changes).
    pub live: Arc<Live>,
    /// Limits and timings.
    pub config: SubscriptionConfig,
    /// Counters and gauges.
    pub metrics: SubscriptionMetrics,
    upstreams: Upstreams,
    shared: Mutex<HashMap<(ConnectionKey, Bytes), Weak<SharedUpstream>>>,
    groups: Mutex<HashMap<GroupKey, Weak<group::Group>>>,
    connections: AtomicUsize,
    subscriptions: AtomicUsize,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connections.load(Ordering::Relaxed))
            .field("subscriptions", &self.subscriptions.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// The subscription path over `live`'s engines.
    pub fn new(live: Arc<Live>, config: SubscriptionConfig) -> Arc<Self> {
        let metrics = live
            .engine()
            .config()
            .executor
            .metrics
            .subscriptions()
            .clone();
        Arc::new(Self {
            upstreams: Upstreams::new(config.upstream.clone()),
            live,
            config,
            metrics,
            shared: Mutex::default(),
            groups: Mutex::default(),
            connections: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
        })
    }

    /// The WebSocket URL of subgraph `name` served at `url`.
    pub fn subscription_url(&self, name: &str, url: &str) -> String {
        if let Some(configured) = self.config.subgraph_urls.get(name) {
            return configured.clone();
        }
        if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url.to_owned()
        }
    }

    /// The shared upstream subscription for `key` and `payload`, subscribing when none runs.
    /// One that replays (`private`: it resumes after an event id) is never shared: a group that
    /// joined it late would miss what it replayed before.
    pub fn upstream(
        self: &Arc<Self>,
        key: &ConnectionKey,
        payload: Bytes,
        private: bool,
    ) -> UpstreamFeed {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let id = (key.clone(), payload);
        if !private && let Some(existing) = shared.get(&id).and_then(Weak::upgrade) {
            return UpstreamFeed {
                receiver: existing.sender.subscribe(),
                _share: existing,
            };
        }
        let mut subscription = self.upstreams.subscribe(key, id.1.clone());
        let (sender, receiver) = broadcast::channel(self.config.upstream.queue.max(1));
        let forward = sender.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = subscription.events.recv().await {
                let last = matches!(
                    event,
                    UpstreamEvent::Complete | UpstreamEvent::Error(_) | UpstreamEvent::Failed(_)
                );
                let _ = forward.send(event);
                if last {
                    break;
                }
            }
            // Keeps the upstream subscription until the share goes.
            std::future::pending::<()>().await;
        });
        self.metrics.upstreams.inc();
        let share = Arc::new(SharedUpstream {
            key: id.clone(),
            sender,
            task: task.abort_handle(),
            hub: Arc::downgrade(self),
        });
        if !private {
            shared.insert(id, Arc::downgrade(&share));
        }
        UpstreamFeed {
            receiver,
            _share: share,
        }
    }

    /// How many subscriptions the router holds with subgraphs.
    pub fn upstream_count(&self) -> usize {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|_, s| s.strong_count() > 0);
        shared.len()
    }

    /// How many subscription connections to subgraphs are open.
    pub fn upstream_connections(&self) -> usize {
        self.upstreams.connections()
    }

    /// Client subscriptions being served.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Subscription connections open.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Completes when the router shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Ends every subscription: clients get `complete` (or close 1001) and connections close.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether the router is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn forget_group(&self, key: &GroupKey) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if groups.get(key).is_some_and(|w| w.strong_count() == 0) {
            groups.remove(key);
        }
    }
}
