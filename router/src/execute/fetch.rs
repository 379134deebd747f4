//! Sending one subgraph request: the pooled HTTP client, timeouts, and the optional sharing of
//! identical in-flight requests.
//!
//! Sharing (`--dedupe`) applies only to requests the plan marks shareable: fetches of query
//! operations. A mutation is never shared, however alike two of them are. Requests share only
//! when their URL, headers and body are the same, so two users' requests never share a
//! response. Every waiter holds a guard: when the last one leaves (its client went away, or the
//! answer came), the in-flight entry goes, so nothing stale is ever handed to a later request.
//!
//! The client is hyper's own pooled client (hyper-util) with rustls for `https` subgraphs,
//! trusting the platform's roots. It is used directly rather than through reqwest: per request
//! that saves parsing the URL with IDNA, a request builder and redirect and retry layers the
//! router never uses.
//!
//! Each serving thread has a connection pool of its own ([`use_pool`]): a connection's task runs
//! on the thread that opened it, so a request using a connection of another thread would wake
//! that thread twice per fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::headers::HeaderList;

/// Why a subgraph request produced no usable response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Connecting, sending or receiving failed, or it timed out.
    #[error("request failed: {0}")]
    Transport(String),
    /// The subgraph answered with a non-success status.
    #[error("subgraph answered HTTP {0}")]
    Status(u16),
    /// The body is not a GraphQL response.
    #[error("invalid response: {0}")]
    InvalidBody(String),
    /// The body is larger than the configured limit.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

/// A subgraph's answer: its status and body (parsed by the executor, which keeps the bytes).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// One request to a subgraph.
#[derive(Debug, Clone)]
pub struct SubgraphRequest<'a> {
    /// Where it goes.
    pub url: &'a str,
    /// The headers the router's rules give this subgraph for the client's request.
    pub headers: &'a HeaderList,
    /// The GraphQL request, as JSON.
    pub body: Bytes,
    /// Whether an identical request in flight may answer it too (fetches of queries only).
    pub shareable: bool,
}

/// Sends one subgraph request: the executor's only contact with the network. The router uses
/// [`SubgraphClient`]; anything that answers like a subgraph (a benchmark's recorded responses)
/// can stand in for it.
pub trait Transport: Send + Sync {
    /// POSTs the request's body (a GraphQL request) to the subgraph.
    fn send<'a>(&'a self, request: SubgraphRequest<'a>)
    -> BoxFuture<'a, Result<Reply, FetchError>>;
}

impl Transport for SubgraphClient {
    fn send<'a>(
        &'a self,
        request: SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, FetchError>> {
        self.post(request).boxed()
    }
}

thread_local! {
    static POOL_INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes fetches sent from the current thread use connection pool `index` (each serving
/// thread calls it once with its own number, from 1). Threads that never call it (a test's
/// runtime, the startup runtime) share pool 0.
pub fn use_pool(index: usize) {
    POOL_INDEX.with(|i| i.set(index));
}

type SharedReply = Shared<BoxFuture<'static, Result<Reply, FetchError>>>;

/// What identical requests have in common.
type FlightKey = (String, HeaderList, Bytes);

/// One request in flight that several callers wait for.
struct Flight {
    /// Tells this flight from a later one with the same key.
    id: u64,
    reply: SharedReply,
    /// Callers still waiting.
    waiters: usize,
}

#[derive(Default)]
struct InFlight {
    flights: HashMap<FlightKey, Flight>,
    next_id: u64,
}

/// A caller's place in a [`Flight`]: leaving (answered or cancelled) counts it out, and the
/// flight's entry goes once its answer came or nobody waits any more.
struct Waiter<'a> {
    map: &'a Mutex<InFlight>,
    key: Option<FlightKey>,
    id: u64,
    answered: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(flight) = map.flights.get_mut(&key) else {
            return;
        };
        if flight.id != self.id {
            return;
        }
        flight.waiters = flight.waiters.saturating_sub(1);
        if self.answered || flight.waiters == 0 {
            map.flights.remove(&key);
        }
    }
}

type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Connection pools per client: serving threads past this many share them.
const POOLS: usize = 32;

/// The subgraph HTTP client: a connection pool for every subgraph per serving thread,
/// keep-alive on.
#[derive(Clone)]
pub struct SubgraphClient {
    connector: hyper_rustls::HttpsConnector<HttpConnector>,
    pools: Arc<[OnceLock<Http>]>,
    timeout: Duration,
    dedupe: bool,
    max_response_bytes: usize,
    in_flight: Arc<Mutex<InFlight>>,
}

impl std::fmt::Debug for SubgraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubgraphClient")
            .field("dedupe", &self.dedupe)
            .finish_non_exhaustive()
    }
}

/// Connects over TCP (no Nagle delay), and over TLS for `https` URLs.
fn connector() -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(provider.clone())
        .unwrap_or_else(|err| {
            // Without the platform's roots, https subgraphs fail to connect with a clear error
            // rather than the router failing to start.
            tracing::error!(error = %err, "cannot load the platform's TLS roots");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports the default TLS versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        });
    tls.https_or_http().enable_http1().wrap_connector(tcp)
}

impl SubgraphClient {
    /// A client whose requests time out after `timeout` and whose responses may be at most
    /// `max_response_bytes` long; with `dedupe`, identical in-flight requests (same URL and
    /// body) share one response.
    pub fn new(timeout: Duration, dedupe: bool, max_response_bytes: usize) -> Self {
        Self {
            connector: connector(),
            pools: (0..POOLS).map(|_| OnceLock::new()).collect(),
            timeout,
            dedupe,
            max_response_bytes,
            in_flight: Arc::default(),
        }
    }

    /// The connection pool of the serving thread this runs on.
    fn http(&self) -> &Http {
        let pool = &self.pools[POOL_INDEX.with(std::cell::Cell::get) % POOLS];
        pool.get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(64)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.connector.clone())
        })
    }

    /// Sends `request` and reads the response; with de-duplication on, a shareable request
    /// identical to one in flight waits for that one's answer instead.
    pub async fn post(&self, request: SubgraphRequest<'_>) -> Result<Reply, FetchError> {
        if !(self.dedupe && request.shareable) {
            return self.send(request.url, request.headers, request.body).await;
        }
        // Per-request ids and trace context do not make answers differ: they stay out of the
        // key (the shared request carries the first caller's).
        let key: FlightKey = (
            request.url.to_owned(),
            request.headers.identity(),
            request.body.clone(),
        );
        let (reply, mut waiter) = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let next_id = map.next_id;
            let sent_headers = request.headers.clone();
            let flight = map.flights.entry(key.clone()).or_insert_with(|| {
                let client = self.clone();
                let (url, _, body) = key.clone();
                let headers = sent_headers;
                Flight {
                    id: next_id,
                    reply: async move { client.send(&url, &headers, body).await }
                        .boxed()
                        .shared(),
                    waiters: 0,
                }
            });
            flight.waiters += 1;
            let taken = (flight.reply.clone(), flight.id);
            if taken.1 == next_id {
                map.next_id += 1;
            }
            (
                taken.0,
                Waiter {
                    map: &self.in_flight,
                    key: Some(key),
                    id: taken.1,
                    answered: false,
                },
            )
        };
        let result = reply.await;
        waiter.answered = true;
        result
    }

    /// How many distinct requests are in flight for de-duplication (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flights
            .len()
    }

    /// One request, with the timeout around all of it (connecting, sending and reading).
    async fn send(
        &self,
        url: &str,
        headers: &HeaderList,
        body: Bytes,
    ) -> Result<Reply, FetchError> {
        tokio::time::timeout(self.timeout, self.exchange(url, headers, body))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Transport(format!(
                    "timed out after {} ms",
                    self.timeout.as_millis()
                )))
            })
    }

    async fn exchange(
        &self,
        url: &str,
        extra: &HeaderList,
        body: Bytes,
    ) -> Result<Reply, FetchError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|err| FetchError::Transport(format!("invalid subgraph URL: {err}")))?;
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in extra.iter() {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/graphql-response+json, application/json"),
        );
        let response = self
            .http()
            .request(request)
            .await
            .map_err(|err| FetchError::Transport(describe(&err)))?;
        let status = response.status().as_u16();
        let limit = self.max_response_bytes;
        let length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if length > limit as u64 {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = response.into_body();
        let body = crate::body::read_whole(&mut body, limit, length as usize)
            .await
            .map_err(|err| match err {
                crate::body::BodyError::TooLarge => FetchError::TooLarge(limit),
                crate::body::BodyError::Read(err) => FetchError::Transport(describe(&err)),
            })?;
        Ok(Reply { status, body })
    }
}

/// An HTTP error with its causes ("client error (Connect): tcp connect error: Connection
/// refused"), so the log and the client's error say what went wrong.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
