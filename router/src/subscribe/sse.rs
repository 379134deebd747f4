//! GraphQL over Server-Sent Events, distinct-connections mode (the `graphql-sse` protocol):
//! a GET or POST with `Accept: text/event-stream` gets a stream of `event: next` messages
//! (`data:` a GraphQL response), then `event: complete` with an empty `data:` line (which
//! `EventSource` needs). A request the router refuses is a `next` with the errors, then
//! `complete`. A comment line keeps an idle stream alive; the client stops by closing. An event
//! with an id (`extensions.eventId`) carries it as `id:`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::Hub;
use super::session::{ConnectionSlot, Outgoing, Started, outgoing};

/// The SSE response for `started`.
pub fn respond(hub: Arc<Hub>, started: Started, slot: ConnectionSlot) -> Response {
    let keep_alive = hub.config.keepalive;
    let events = outgoing(hub, started, keep_alive);
    let mut ended = false;
    let body = events.flat_map(move |item| {
        let _slot = &slot;
        let chunks: Vec<Bytes> = match item {
            Outgoing::Next(bytes) => vec![Bytes::from(frame(&bytes))],
            Outgoing::Fatal(errors) => {
                let mut body = b"{\"errors\":".to_vec();
                body.extend_from_slice(&errors);
                body.push(b'}');
                ended = true;
                vec![Bytes::from(frame(&body)), Bytes::from_static(COMPLETE)]
            }
            Outgoing::Complete => {
                ended = true;
                vec![Bytes::from_static(COMPLETE)]
            }
            Outgoing::KeepAlive => vec![Bytes::from_static(b":\n\n")],
        };
        let _ = ended;
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

const COMPLETE: &[u8] = b"event: complete\ndata:\n\n";

/// `event: next` with `data` (JSON has no raw newlines, so one `data:` line), and the event's
/// id as `id:` when it has one, which `EventSource` sends back as `Last-Event-ID`.
fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 48);
    out.extend_from_slice(b"event: next\n");
    if let Some(id) = super::group::delivered_event_id(data) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}
