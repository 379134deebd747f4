//! The router's HTTP app (axum 0.8):
//!
//! - `POST /graphql`: a JSON GraphQL request;
//! - `GET /graphql?query=…&operationName=…&variables=…&extensions=…`: queries only;
//! - `GET /graphql` or `GET /` from a browser (`Accept: text/html`, no `query`): GraphiQL,
//!   whose files ([`assets`], embedded at build time) are under `/_tessera/graphiql/`;
//! - `GET /health`: `{"status":"ok"}` once the supergraph is loaded (the app exists only then).
//!
//! Every error body, down to unknown routes and methods, is a GraphQL error with
//! `extensions.code`. Responses are `application/graphql-response+json` or `application/json`
//! as the `Accept` header asks ([`negotiate`]); requests carry an `x-request-id` (kept from the
//! client or made up) that the trace span records and the response echoes.
//!
//! - [`graphql`]: the `/graphql` handlers.
//! - [`negotiate`]: `Accept` parsing.
//! - [`assets`]: embedded web pages and their files.
//! - [`cli`]: the `tessera` command line and the `router` / `plan` commands.
//! - [`config`]: the router's YAML configuration file.
//! - [`serving`]: connections spread over serving threads, each with its own runtime.

pub mod assets;
pub mod cli;
pub mod config;
mod graphql;
mod negotiate;
pub mod serving;
mod stream;

pub use graphql::not_found;
pub use serving::serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::routing::{any, get};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::engine::Engine;
use crate::live::Live;
use crate::subscribe::{Hub, SubscriptionConfig};

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// HTTP-level settings (request limits live in the engine's [`crate::request::Limits`]).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve GraphiQL to browsers on `GET /` and `GET /graphql`.
    pub graphiql: bool,
    /// The subscription path's limits and timings.
    pub subscriptions: SubscriptionConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            graphiql: true,
            subscriptions: SubscriptionConfig::default(),
        }
    }
}

/// State shared by the handlers.
#[derive(Debug, Clone)]
struct Served {
    live: Arc<Live>,
    hub: Arc<Hub>,
    graphiql: bool,
}

/// Builds the router's HTTP app around `engine`.
pub fn app(engine: Arc<Engine>, config: &ServerConfig) -> Router {
    app_live(Arc::new(Live::new(engine)), config)
}

/// The router's HTTP app over a swappable engine (hot reload).
pub fn app_live(live: Arc<Live>, config: &ServerConfig) -> Router {
    app_with_hub(live, config).0
}

/// [`app_live`], and the subscription hub it serves (to shut its subscriptions down).
pub fn app_with_hub(live: Arc<Live>, config: &ServerConfig) -> (Router, Arc<Hub>) {
    let hub = Hub::new(Arc::clone(&live), config.subscriptions.clone());
    let state = Served {
        live,
        hub: Arc::clone(&hub),
        graphiql: config.graphiql,
    };
    let router = routes(state);
    (router, hub)
}

fn routes(state: Served) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql::get_graphql)
                .post(graphql::post_graphql)
                .fallback(graphql::method_not_allowed),
        )
        .route("/", any(graphql::root))
        .route("/_tessera/graphiql/{file}", get(graphql::graphiql_asset))
        .route("/health", get(graphql::health))
        .route("/metrics", get(graphql::metrics))
        .fallback(graphql::not_found)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), graphql::observe))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The W3C trace id, which subgraphs log too (`traceparent` is propagated).
                let trace_id = req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split('-').nth(1))
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id, trace_id = %trace_id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
