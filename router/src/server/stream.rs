//! The streaming transports of `/graphql`: a WebSocket upgrade (`graphql-transport-ws` or the
//! legacy `graphql-ws`), Server-Sent Events (`Accept: text/event-stream`, GET or POST) and
//! Apollo's multipart subscriptions (`Accept: multipart/mixed;subscriptionSpec=1.0`, POST).
//! The subscription stage ([`crate::subscribe`]) does the rest.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header::{SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Served;
use crate::engine::{EngineResponse, RequestFailure, ResponseMediaType};
use crate::error::{GraphQLError, codes};
use crate::request::GraphQLRequest;
use crate::subscribe::session::{Protocol, Started};
use crate::subscribe::{Hub, legacy_ws, multipart, sse, transport_ws};

/// Whether a request asks to become a WebSocket.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The subprotocols a client offers, in its order.
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect()
}

fn unavailable(message: &str, code: &str) -> Response {
    let body = EngineResponse::failure(
        RequestFailure::Malformed,
        ResponseMediaType::Json,
        vec![GraphQLError::new(message, code)],
    )
    .into_bytes();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `GET /graphql` with `Upgrade: websocket`.
pub(super) async fn websocket(state: Served, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let offered = offered(&parts.headers);
    // Copies of what header rules read: the request's own headers would keep the connection's
    // whole read buffer alive for as long as the socket lives.
    let headers = state.hub.kept_headers(&parts.headers);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // The protocol the client lists first among those the router speaks.
    let protocol = offered.iter().find_map(|p| match p.as_str() {
        "graphql-transport-ws" => Some(Protocol::TransportWs),
        "graphql-ws" => Some(Protocol::LegacyWs),
        _ => None,
    });
    let hub = Arc::clone(&state.hub);
    let Some(slot) = hub.open_connection(protocol.unwrap_or(Protocol::TransportWs)) else {
        return unavailable(
            "the router holds as many subscription connections as it may",
            codes::SUBSCRIPTION_LIMIT,
        );
    };
    let config = &hub.config;
    // Each read takes at most 512 bytes (a larger message takes more reads): the buffer stays
    // with the socket for its life, and client messages are small and rare.
    let upgrade = upgrade
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes);
    match protocol {
        Some(Protocol::TransportWs) => upgrade
            .protocols(["graphql-transport-ws"])
            .on_upgrade(move |socket| transport_ws::serve(hub, socket, headers, slot)),
        Some(_) => upgrade
            .protocols(["graphql-ws"])
            .on_upgrade(move |socket| legacy_ws::serve(hub, socket, headers, slot)),
        // The handshake completes (echoing what the client offered, which strict clients need
        // to see the close) and the socket closes 4406.
        None => {
            let upgrade = match offered.first() {
                Some(first) => upgrade.protocols([first.clone()]),
                None => upgrade,
            };
            upgrade.on_upgrade(move |socket| async move {
                let _slot = slot;
                transport_ws::refuse_subprotocol(socket).await;
            })
        }
    }
}

/// A request over SSE: any operation, its results as events. A `Last-Event-ID` header (which
/// `EventSource` sends when it reconnects) resumes after that event, as
/// `extensions.lastEventId` would.
pub(super) async fn event_stream(
    hub: Arc<Hub>,
    mut request: GraphQLRequest,
    headers: HeaderMap,
) -> Response {
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .filter(|last| !last.is_empty())
    {
        request
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                crate::subscribe::upstream::LAST_EVENT_ID.to_owned(),
                last.into(),
            );
    }
    let Some(slot) = hub.open_connection(Protocol::Sse) else {
        return unavailable(
            "the router holds as many subscription connections as it may",
            codes::SUBSCRIPTION_LIMIT,
        );
    };
    let started = hub.start(request, &headers, None).await;
    sse::respond(hub, started, slot)
}

/// A subscription over multipart; `None` when `request` is no subscription (it is then
/// answered as JSON).
pub(super) async fn multipart(
    hub: Arc<Hub>,
    request: GraphQLRequest,
    headers: &HeaderMap,
) -> Option<Response> {
    let engine = hub.live.engine();
    let ctx = crate::engine::RequestContext::default();
    let planned = engine.prepare_operation(&request, ctx, headers).ok()?;
    if planned.kind != apollo_compiler::executable::OperationType::Subscription {
        return None;
    }
    let Some(slot) = hub.open_connection(Protocol::Multipart) else {
        return Some(unavailable(
            "the router holds as many subscription connections as it may",
            codes::SUBSCRIPTION_LIMIT,
        ));
    };
    let started = hub.start(request, headers, None).await;
    if let Started::Refused(_) = started {
        // Only a limit refuses a subscription that planned; the client hears it as JSON.
    }
    Some(multipart::respond(hub, started, slot))
}
