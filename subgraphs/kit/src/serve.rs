//! The axum app of a subgraph: `POST /graphql`, WebSocket subscriptions on `/graphql`,
//! `GET /health` (ready: the database answers; 503 otherwise), `GET /live` (the process serves:
//! for liveness probes, which must not restart a replica because its database is away) and
//! `GET /metrics`.

use std::time::Instant;

use async_graphql::Executor;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;

/// Largest request body accepted on `/graphql`.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// The header a router (or a client) names the acting user with; `me` reads it.
pub const USER_ID_HEADER: &str = "x-user-id";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The user a request acts for, from the `x-user-id` header.
#[derive(Debug, Clone, Default)]
pub struct Viewer(pub Option<String>);

#[derive(Clone)]
struct Served<E> {
    executor: E,
    app: AppState,
    shutdown: watch::Receiver<bool>,
}

/// Builds the subgraph's HTTP app around `executor`. WebSocket sessions end when `shutdown`
/// turns true.
pub fn router<E: Executor>(executor: E, app: AppState, shutdown: watch::Receiver<bool>) -> Router {
    let metrics_app = app.clone();
    let state = Served {
        executor,
        app,
        shutdown,
    };
    Router::new()
        .route("/graphql", post(graphql_http::<E>).get(graphql_ws::<E>))
        .route("/health", get(health::<E>))
        .route("/live", get(|| async { Json(serde_json::json!({ "status": "alive" })) }))
        .route("/metrics", get(metrics::<E>))
        .route_layer(axum::middleware::from_fn_with_state(metrics_app, observe))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // W3C trace context: `version-traceid-parentid-flags`; the router passes it on,
                // so one client request is found in every subgraph's log by its trace id.
                let trace_id = req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split('-').nth(1))
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id, trace_id = %trace_id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
}

/// A GraphQL error response with one error carrying `extensions.code`.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, Json(body)).into_response()
}

async fn graphql_http<E: Executor>(
    State(state): State<Served<E>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the request body is not a GraphQL request: {err}"),
            );
        }
    };
    let viewer = headers
        .get(USER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = state.executor.execute(request.data(Viewer(viewer))).await;
    let mut out = Json(response).into_response();
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    out
}

async fn graphql_ws<E: Executor>(
    State(state): State<Served<E>>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let transport_ws = chosen_protocol(&headers) == Some("graphql-transport-ws");
    let Served {
        executor,
        mut shutdown,
        ..
    } = state;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            // graphql-transport-ws closes a session on an invalid message with 4400;
            // async-graphql sends the generic 1002, so rewrite it for that protocol.
            let sink = sink.with(move |msg: Message| {
                std::future::ready(Ok::<_, axum::Error>(match msg {
                    Message::Close(Some(frame)) if transport_ws && frame.code == 1002 => {
                        Message::Close(Some(CloseFrame {
                            code: 4400,
                            reason: frame.reason,
                        }))
                    }
                    other => other,
                }))
            });
            let session = GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol).serve();
            tokio::select! {
                () = session => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        })
}

/// The subprotocol a WebSocket handshake settles on: the client's first one that we speak.
fn chosen_protocol(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| {
            ALL_WEBSOCKET_PROTOCOLS
                .into_iter()
                .find(|known| *known == p)
        })
}

async fn health<E: Executor>(State(state): State<Served<E>>) -> Response {
    let bus = state.app.bus.is_ready();
    match state.app.db.ping().await {
        Ok(()) => Json(serde_json::json!({
            "status": "ok",
            "subgraph": state.app.name,
            "database": "ok",
            "events": if bus { "ok" } else { "reconnecting" },
        }))
        .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "subgraph": state.app.name,
                    "database": "unreachable",
                })),
            )
                .into_response()
        }
    }
}

async fn metrics<E: Executor>(State(state): State<Served<E>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.app.metrics.render(),
    )
        .into_response()
}

/// Counts every request and its latency, by matched route.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    app.metrics
        .observe_http(&route, response.status().as_u16(), started.elapsed());
    response
}
