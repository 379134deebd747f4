//! Sending one subgraph request: the pooled HTTP client, timeouts, and the optional sharing of
//! identical in-flight requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

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

/// Sends one subgraph request: the executor's only contact with the network. The router uses
/// [`SubgraphClient`]; anything that answers like a subgraph (a benchmark's recorded responses)
/// can stand in for it.
pub trait Transport: Send + Sync {
    /// POSTs `body` (a GraphQL request) to the subgraph at `url`.
    fn send<'a>(&'a self, url: &'a str, body: Bytes) -> BoxFuture<'a, Result<Reply, FetchError>>;
}

impl Transport for SubgraphClient {
    fn send<'a>(&'a self, url: &'a str, body: Bytes) -> BoxFuture<'a, Result<Reply, FetchError>> {
        self.post(url, body).boxed()
    }
}

type InFlight = Shared<BoxFuture<'static, Result<Reply, FetchError>>>;

/// The subgraph HTTP client: one connection pool for every subgraph, keep-alive on.
#[derive(Clone)]
pub struct SubgraphClient {
    http: reqwest::Client,
    dedupe: bool,
    max_response_bytes: usize,
    in_flight: Arc<Mutex<HashMap<(String, Bytes), InFlight>>>,
}

impl std::fmt::Debug for SubgraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubgraphClient")
            .field("dedupe", &self.dedupe)
            .finish_non_exhaustive()
    }
}

impl SubgraphClient {
    /// A client whose requests time out after `timeout` and whose responses may be at most
    /// `max_response_bytes` long; with `dedupe`, identical in-flight requests (same URL and
    /// body) share one response.
    pub fn new(timeout: Duration, dedupe: bool, max_response_bytes: usize) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            http,
            dedupe,
            max_response_bytes,
            in_flight: Arc::default(),
        }
    }

    /// POSTs `body` (a GraphQL request) to `url` and reads the response.
    pub async fn post(&self, url: &str, body: Bytes) -> Result<Reply, FetchError> {
        if !self.dedupe {
            return send(
                self.http.clone(),
                url.to_owned(),
                body,
                self.max_response_bytes,
            )
            .await;
        }
        let key = (url.to_owned(), body.clone());
        let shared = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&key) {
                Some(existing) => existing.clone(),
                None => {
                    let future = send(
                        self.http.clone(),
                        url.to_owned(),
                        body,
                        self.max_response_bytes,
                    )
                    .boxed()
                    .shared();
                    in_flight.insert(key.clone(), future.clone());
                    future
                }
            }
        };
        let result = shared.await;
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        result
    }
}

async fn send(
    http: reqwest::Client,
    url: String,
    body: Bytes,
    limit: usize,
) -> Result<Reply, FetchError> {
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "accept",
            "application/graphql-response+json, application/json",
        )
        .body(body)
        .send()
        .await
        .map_err(|err| FetchError::Transport(err.without_url().to_string()))?;
    let status = response.status().as_u16();
    let length = response.content_length().unwrap_or(0);
    if length > limit as u64 {
        return Err(FetchError::TooLarge(limit));
    }
    // Read chunk by chunk, so a body without (or lying about) its length stops at the limit.
    let mut response = response;
    let mut collected = bytes::BytesMut::with_capacity(length as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| FetchError::Transport(err.without_url().to_string()))?
    {
        if collected.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        body: collected.freeze(),
    })
}
