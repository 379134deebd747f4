//! The `/graphql` handlers: turn HTTP into a [`GraphQLRequest`] and an [`EngineResponse`] back
//! into HTTP. Anything wrong with the HTTP request itself is answered here, as a GraphQL error.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Served;
use super::negotiate::Accept;
use crate::body::BodyError;
use crate::engine::{EngineResponse, RequestContext, RequestFailure, ResponseMediaType};
use crate::error::{GraphQLError, codes};
use crate::request::GraphQLRequest;

/// `POST /graphql`.
pub(super) async fn post_graphql(
    State(state): State<Served>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let media_type = Accept::from_headers(&headers).graphql_media_type();
    if !is_json_content(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media_type,
            codes::BAD_REQUEST,
            "the request body must be `application/json`",
        );
    }
    let engine = state.live.engine();
    let limit = engine.config().limits.max_body_bytes;
    let bytes = match read_body(&headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(response) => return response.into_http(media_type),
    };
    let request = match parse_body(&bytes) {
        Ok(request) => request,
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                media_type,
                codes::BAD_REQUEST,
                &message,
            );
        }
    };
    let accept = Accept::from_headers(&headers);
    if accept.wants_event_stream() {
        return super::stream::event_stream(state.hub, request, headers).await;
    }
    if accept.wants_multipart_subscription()
        && let Some(response) =
            super::stream::multipart(state.hub.clone(), request.clone(), &headers).await
    {
        return response;
    }
    let ctx = RequestContext {
        is_get: false,
        expose_plan: crate::engine::expose_plan(&headers),
        media_type,
        streaming: false,
    };
    engine
        .handle_with_headers(request, ctx, &headers)
        .await
        .into_http(media_type)
}

/// `GET /graphql`: a query in the URL, a WebSocket upgrade, an SSE stream, or GraphiQL for a
/// browser.
pub(super) async fn get_graphql(
    State(state): State<Served>,
    request: axum::extract::Request,
) -> Response {
    if super::stream::is_upgrade(request.headers()) {
        return super::stream::websocket(state, request).await;
    }
    let headers = request.headers().clone();
    let uri = request.uri().clone();
    let accept = Accept::from_headers(&headers);
    let media_type = accept.graphql_media_type();
    let params = match Query::<GetParams>::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(err) => {
            let message = format!("the query string is not a GraphQL request: {err}");
            return error(
                StatusCode::BAD_REQUEST,
                media_type,
                codes::BAD_REQUEST,
                &message,
            );
        }
    };
    if params.query.is_none() && state.graphiql && accept.wants_html() {
        return super::assets::page(super::assets::GRAPHIQL, "GraphiQL", &headers);
    }
    let request = match params.into_request() {
        Ok(request) => request,
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                media_type,
                codes::BAD_REQUEST,
                &message,
            );
        }
    };
    if accept.wants_event_stream() {
        return super::stream::event_stream(state.hub, request, headers).await;
    }
    let ctx = RequestContext {
        is_get: true,
        expose_plan: crate::engine::expose_plan(&headers),
        media_type,
        streaming: false,
    };
    state
        .live
        .engine()
        .handle_with_headers(request, ctx, &headers)
        .await
        .into_http(media_type)
}

/// `/`: GraphiQL for a browser, else nothing.
pub(super) async fn root(State(state): State<Served>, headers: HeaderMap) -> Response {
    if state.graphiql && Accept::from_headers(&headers).wants_html() {
        return super::assets::page(super::assets::GRAPHIQL, "GraphiQL", &headers);
    }
    not_found(headers).await
}

/// `GET /_tessera/graphiql/{file}`: GraphiQL's scripts, styles and fonts.
pub(super) async fn graphiql_asset(
    State(state): State<Served>,
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match super::assets::find(super::assets::GRAPHIQL, &file) {
        Some(asset) if state.graphiql => super::assets::serve(asset, &headers),
        _ => not_found(headers).await,
    }
}

/// `GET /health`.
/// `GET /metrics`: Prometheus text.
pub(super) async fn metrics(State(state): State<Served>) -> Response {
    let text = state.live.engine().config().executor.metrics.render();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Counts every request and its latency, by matched route.
pub(super) async fn observe(
    State(state): State<Served>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.live.engine().config().executor.metrics.observe_http(
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /health`: ok, or degraded (still serving the last good supergraph) when the latest
/// recomposition failed, with its errors.
pub(super) async fn health(State(state): State<Served>) -> Response {
    let errors = state.live.composition_errors();
    let body = if errors.is_empty() {
        serde_json::json!({ "status": "ok" })
    } else {
        serde_json::json!({ "status": "degraded", "composition_errors": *errors })
    };
    (
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Any other method on `/graphql`.
pub(super) async fn method_not_allowed(headers: HeaderMap) -> Response {
    let media_type = Accept::from_headers(&headers).graphql_media_type();
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        media_type,
        codes::METHOD_NOT_ALLOWED,
        "`/graphql` accepts GET and POST",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

/// Any other path: a GraphQL error with code `NOT_FOUND`.
pub async fn not_found(headers: HeaderMap) -> Response {
    let media_type = Accept::from_headers(&headers).graphql_media_type();
    error(
        StatusCode::NOT_FOUND,
        media_type,
        codes::NOT_FOUND,
        "not found; GraphQL is served on `/graphql`",
    )
}

/// GET parameters: `variables` and `extensions` are JSON text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl GetParams {
    fn into_request(self) -> Result<GraphQLRequest, String> {
        Ok(GraphQLRequest {
            query: self.query,
            operation_name: self.operation_name.filter(|n| !n.is_empty()),
            variables: json_object_param("variables", self.variables.as_deref())?,
            extensions: json_object_param("extensions", self.extensions.as_deref())?,
        })
    }
}

/// A JSON object (or `null`, or nothing) given as a GET parameter.
fn json_object_param(name: &str, text: Option<&str>) -> Result<Option<Map<String, Value>>, String> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        Ok(_) => Err(format!("`{name}` must be a JSON object")),
        Err(err) => Err(format!("`{name}` is not valid JSON: {err}")),
    }
}

/// Whether the body is declared as JSON (or not declared at all). Refusing form and text bodies
/// also keeps browsers from sending cross-site "simple" POSTs that skip CORS preflight.
fn is_json_content(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Reads the body up to `limit` bytes; a declared or actual larger body is a 413, answered after
/// the rest of the body (up to eight times the limit, for up to five seconds) is read and
/// dropped, so that a client still sending it gets the 413 and not a reset connection.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, EngineResponse> {
    let too_large = || {
        EngineResponse::failure(
            RequestFailure::Malformed,
            ResponseMediaType::Json,
            vec![GraphQLError::new(
                format!("the request body is larger than {limit} bytes"),
                codes::LIMIT_EXCEEDED,
            )],
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    let read = if declared.is_some_and(|len| len > limit as u64) {
        Err(BodyError::TooLarge)
    } else {
        let expected = declared.unwrap_or(0) as usize;
        crate::body::read_whole(&mut body, limit, expected).await
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge) => {
            crate::body::drain(&mut body, limit.saturating_mul(8), Duration::from_secs(5)).await;
            Err(too_large())
        }
        Err(BodyError::Read(err)) => {
            tracing::debug!(error = %err, "could not read the request body");
            Err(EngineResponse::failure(
                RequestFailure::Malformed,
                ResponseMediaType::Json,
                vec![GraphQLError::new(
                    "the request body could not be read",
                    codes::BAD_REQUEST,
                )],
            ))
        }
    }
}

fn parse_body(bytes: &[u8]) -> Result<GraphQLRequest, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => serde_json::from_value(Value::Object(object))
            .map_err(|err| format!("the body is not a GraphQL request: {err}")),
        Ok(Value::Array(_)) => Err("batched requests are not supported".to_owned()),
        Ok(_) => Err("the body is not a GraphQL request: expected a JSON object".to_owned()),
        Err(err) => Err(format!("the body is not valid JSON: {err}")),
    }
}

fn error(status: StatusCode, media_type: ResponseMediaType, code: &str, message: &str) -> Response {
    EngineResponse::failure(
        RequestFailure::Malformed,
        media_type,
        vec![GraphQLError::new(message, code)],
    )
    .with_status(status)
    .into_http(media_type)
}

impl EngineResponse {
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The HTTP response: the body as JSON of `media_type`; a 405 names the allowed method.
    fn into_http(self, media_type: ResponseMediaType) -> Response {
        let status = self.status;
        let body = self.into_bytes();
        let mut response =
            (status, [(CONTENT_TYPE, media_type.content_type())], body).into_response();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}
