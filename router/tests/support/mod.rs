//! In-process subgraphs for the executor tests.
//!
//! Each [`SubgraphServer`] binds its own `127.0.0.1:0` listener before it starts serving, so it
//! accepts requests as soon as it exists (no readiness wait); it records the body of every HTTP
//! request that reaches it and stops when dropped. [`supergraph`] fills the `{name}` URL
//! placeholders of a fixture in `tests/fixtures/execute/` with the bound URLs.
//!
//! The subgraphs themselves are small async-graphql schemas with federation enabled, one module
//! per fixture domain.

pub mod accounts;
pub mod bookshop;
pub mod counter;
pub mod feed;
pub mod lending;
pub mod shelters;

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{ObjectType, Schema, SubscriptionType};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tessera::engine::{Engine, RequestContext};
use tessera::request::GraphQLRequest;
use tessera::supergraph::Supergraph;
use tokio::sync::oneshot;

/// Requests as they reached a subgraph (headers and body), in arrival order.
type Recorded = Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>;

/// One subgraph served on its own port for the length of a test.
pub struct SubgraphServer {
    /// Where the router sends fetches (`http://127.0.0.1:<port>/`).
    pub url: String,
    requests: Recorded,
    shutdown: Option<oneshot::Sender<()>>,
}

impl SubgraphServer {
    /// Serves an async-graphql schema at `/`.
    pub async fn graphql<Q, M, S>(schema: Schema<Q, M, S>) -> Self
    where
        Q: ObjectType + 'static,
        M: ObjectType + 'static,
        S: SubscriptionType + 'static,
    {
        let app = Router::new().route(
            "/",
            post(
                move |axum::Json(request): axum::Json<async_graphql::Request>| {
                    let schema = schema.clone();
                    async move { axum::Json(schema.execute(request).await) }
                },
            ),
        );
        Self::serve(app).await
    }

    /// A misbehaving subgraph: answers every request with `status` and `body`.
    pub async fn replying(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<String>,
    ) -> Self {
        let body = body.into();
        let app = Router::new().route(
            "/",
            post(move || async move { (status, [(header::CONTENT_TYPE, content_type)], body) }),
        );
        Self::serve(app).await
    }

    /// A subgraph that takes `delay` to answer each request (with `{"data":null}`).
    pub async fn stalling(delay: std::time::Duration) -> Self {
        let app = Router::new().route(
            "/",
            post(move || async move {
                tokio::time::sleep(delay).await;
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"data\":null}",
                )
            }),
        );
        Self::serve(app).await
    }

    /// A subgraph that answers every request with `chunks`, sent one after another without a
    /// `Content-Length`.
    pub async fn streaming(chunks: Vec<String>) -> Self {
        let app = Router::new().route(
            "/",
            post(move || {
                let chunks = chunks.clone();
                async move {
                    let stream = futures_util::stream::iter(
                        chunks.into_iter().map(Ok::<_, std::convert::Infallible>),
                    );
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        Body::from_stream(stream),
                    )
                }
            }),
        );
        Self::serve(app).await
    }

    /// Serves any axum app at `/`, recording requests like the others.
    pub async fn serve_app(app: Router) -> Self {
        Self::serve(app).await
    }

    async fn serve(app: Router) -> Self {
        let requests = Recorded::default();
        let app = app.layer(middleware::from_fn_with_state(requests.clone(), record));
        // Bound before serving: connections queue on the listener until `serve` accepts them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free local port");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        Self {
            url: format!("http://{address}/"),
            requests,
            shutdown: Some(shutdown),
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The headers of every request received so far.
    pub fn headers(&self) -> Vec<axum::http::HeaderMap> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(headers, _)| headers.clone())
            .collect()
    }

    /// How many requests reached the subgraph.
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    /// The `representations` variable of every request, in arrival order.
    pub fn representations(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .map(|body| body["variables"]["representations"].clone())
            .collect()
    }
}

impl Drop for SubgraphServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Middleware: records the request body, then passes the request on unchanged.
async fn record(State(requests): State<Recorded>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((parts.headers.clone(), value));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A URL nothing listens on: a port bound and released at once.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    drop(listener);
    format!("http://{address}/")
}

/// The supergraph of fixture `execute/<fixture>.graphql` with each `{name}` replaced by its URL.
pub fn supergraph(fixture: &str, urls: &[(&str, &str)]) -> Supergraph {
    let path = format!(
        "{}/tests/fixtures/execute/{fixture}.graphql",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut sdl = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    for (name, url) in urls {
        sdl = sdl.replace(&format!("{{{name}}}"), url);
    }
    assert!(
        !sdl.contains("url: \"{"),
        "{path}: a subgraph URL placeholder was not filled"
    );
    Supergraph::parse(&sdl).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Runs `query` with `variables` through the whole engine and returns the response body.
pub async fn execute(engine: &Engine, query: &str, variables: Value) -> Value {
    execute_with_headers(engine, query, variables, &[]).await
}

/// [`execute`] for a client request with `headers`.
pub async fn execute_with_headers(
    engine: &Engine,
    query: &str,
    variables: Value,
    headers: &[(&str, &str)],
) -> Value {
    let request = GraphQLRequest {
        query: Some(query.to_owned()),
        variables: variables.as_object().cloned(),
        ..GraphQLRequest::default()
    };
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            axum::http::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    engine
        .handle_with_headers(request, RequestContext::default(), &map)
        .await
        .json()
}

/// Composes a supergraph from `(name, url, sdl)` subgraphs with Tessera's own composition.
pub fn compose(subgraphs: &[(&str, &str, String)]) -> Supergraph {
    let sources: Vec<tessera::compose::SubgraphSource> = subgraphs
        .iter()
        .map(|(name, url, sdl)| tessera::compose::SubgraphSource {
            name: (*name).to_owned(),
            url: (*url).to_owned(),
            sdl: sdl.clone(),
        })
        .collect();
    let composed = tessera::compose::compose(&sources);
    let sdl = composed
        .supergraph
        .unwrap_or_else(|| panic!("composition failed: {:?}", composed.diagnostics));
    Supergraph::parse(&sdl).unwrap_or_else(|err| panic!("{err}"))
}

/// Asserts JSON equality including the order of object keys (clients see fields in the order
/// their operation names them), with a readable diff.
#[track_caller]
pub fn assert_json(actual: &Value, expected: &Value) {
    let pretty = |value: &Value| serde_json::to_string_pretty(value).expect("JSON values print");
    assert_eq!(pretty(actual), pretty(expected));
}
