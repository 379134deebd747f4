//! Apollo's multipart HTTP subscriptions (what Apollo Client's `HttpLink` speaks):
//! `Content-Type: multipart/mixed;boundary="graphql";subscriptionSpec=1.0`, a heartbeat part
//! `{}` at once and every few seconds, each event a part `{"payload":{…}}`, and the stream
//! closed by `--graphql--`.
//!
//! Every part is followed at once by the next boundary: a client hands a part to the
//! application only when it sees the boundary after it, so an event written without it would
//! wait for the next heartbeat.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::Hub;
use super::session::{ConnectionSlot, Outgoing, Started, outgoing};

/// The heartbeat Apollo's protocol asks for.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// The first boundary, then a heartbeat part closed by the next boundary.
const OPENING: &[u8] = b"\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql";
const HEARTBEAT_PART: &[u8] = b"\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql";
const END: &[u8] = b"--\r\n";

/// The multipart response for `started`.
pub fn respond(hub: Arc<Hub>, started: Started, slot: ConnectionSlot) -> Response {
    let events = outgoing(hub, started, HEARTBEAT);
    let parts = events.flat_map(move |item| {
        let _slot = &slot;
        let chunks: Vec<Bytes> = match item {
            Outgoing::Next(bytes) => {
                let mut body = b"{\"payload\":".to_vec();
                body.extend_from_slice(&bytes);
                body.push(b'}');
                vec![Bytes::from(part(&body))]
            }
            Outgoing::Fatal(errors) => {
                let mut body = b"{\"payload\":null,\"errors\":".to_vec();
                body.extend_from_slice(&errors);
                body.push(b'}');
                vec![Bytes::from(part(&body)), Bytes::from_static(END)]
            }
            Outgoing::Complete => vec![Bytes::from_static(END)],
            Outgoing::KeepAlive => vec![Bytes::from_static(HEARTBEAT_PART)],
        };
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    let body = futures_util::stream::once(async { Ok(Bytes::from_static(OPENING)) }).chain(parts);
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One part, closed by the boundary.
fn part(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 48);
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\n\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n--graphql");
    out
}
