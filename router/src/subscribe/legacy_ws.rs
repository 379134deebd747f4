//! The legacy `graphql-ws` subprotocol (subscriptions-transport-ws), server side.
//!
//! `connection_init` gets `connection_ack` and a first `ka`, then `ka` periodically (the
//! protocol has no ping); a refused init gets `connection_error` and the socket closes.
//! `start {id, payload}` streams `data {id, payload}` messages and `complete {id}` (a query or
//! mutation answers once); a request the router refuses is `error {id, payload}`; `stop {id}`
//! ends an operation and `connection_terminate` the socket. The protocol has no close-code
//! table: unreadable messages get `connection_error`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::Hub;
use super::group::Delivery;
use super::session::{
    ClientSubscription, ConnectionSlot, Started, headers_with_init_payload, request_of,
};
use crate::error::{GraphQLError, codes};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Start {
        id: String,
        payload: Value,
    },
    Stop {
        id: String,
    },
    ConnectionTerminate,
}

fn text(value: String) -> Message {
    Message::Text(Utf8Bytes::from(value))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn data_message(id: &str, payload: &[u8]) -> Message {
    text(format!(
        r#"{{"type":"data","id":{},"payload":{}}}"#,
        json_string(id),
        std::str::from_utf8(payload).unwrap_or("null")
    ))
}

fn error_message(id: &str, errors: &[u8]) -> Message {
    text(format!(
        r#"{{"type":"error","id":{},"payload":{}}}"#,
        json_string(id),
        std::str::from_utf8(errors).unwrap_or("[]")
    ))
}

fn complete_message(id: &str) -> Message {
    text(format!(r#"{{"type":"complete","id":{}}}"#, json_string(id)))
}

fn connection_error(message: &str) -> Message {
    text(format!(
        r#"{{"type":"connection_error","payload":{{"message":{}}}}}"#,
        json_string(message)
    ))
}

fn errors_json(errors: &[GraphQLError]) -> Vec<u8> {
    serde_json::to_vec(errors).unwrap_or_else(|_| b"[]".to_vec())
}

/// Serves one legacy `graphql-ws` socket.
pub async fn serve(
    hub: Arc<Hub>,
    socket: WebSocket,
    mut http_headers: HeaderMap,
    slot: ConnectionSlot,
) {
    let _slot = slot;
    let (mut sink, mut source) = socket.split();
    let mut headers: Option<HeaderMap> = None;
    let mut init_payload: Option<Value> = None;
    let mut streams: StreamMap<String, BroadcastStream<Delivery>> = StreamMap::new();
    let mut held: HashMap<String, ClientSubscription> = HashMap::new();
    // Whether the client asked to see plans (then its events are looked at one by one).
    let mut shows_plans = false;
    let mut shutdown = hub.shutdown_signal();
    // Made once: a fresh one per turn would register and drop a waiter on every event.
    let stopping = super::stopped(&mut shutdown);
    tokio::pin!(stopping);
    let mut keepalive = tokio::time::interval(hub.config.keepalive);
    keepalive.reset();
    let timeout = hub.config.write_timeout;
    loop {
        let outgoing: Vec<Message> = tokio::select! {
            message = source.next() => {
                let raw = match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(raw))) => raw,
                    Some(Ok(_)) => continue,
                };
                let Ok(message) = serde_json::from_str::<ClientMessage>(&raw) else {
                    let _ = send(&mut sink, vec![connection_error("unreadable message")], timeout).await;
                    continue;
                };
                match message {
                    ClientMessage::ConnectionInit { payload } => {
                        if payload.as_ref().is_some_and(|p| !p.is_object() && !p.is_null()) {
                            let _ = send(&mut sink, vec![connection_error("the payload must be an object")], timeout).await;
                            return;
                        }
                        let merged = headers_with_init_payload(&std::mem::take(&mut http_headers), payload.as_ref());
                        let kept = hub.kept_headers(&merged);
                        shows_plans = crate::engine::expose_plan(&kept);
                        headers = Some(kept);
                        init_payload = payload.filter(|p| !p.is_null());
                        vec![text(r#"{"type":"connection_ack"}"#.into()), text(r#"{"type":"ka"}"#.into())]
                    }
                    ClientMessage::Start { id, payload } => {
                        // Boxed: a query runs to its end here, and the connection's task should hold
                        // only what an idle socket needs.
                        match Box::pin(start(&hub, headers.as_ref(), init_payload.as_ref(), held.len(), payload)).await {
                            Err(errors) => vec![error_message(&id, &errors_json(&errors))],
                            Ok(Started::Refused(errors)) => vec![error_message(&id, &errors_json(&errors))],
                            Ok(Started::Single(bytes)) => vec![data_message(&id, &bytes), complete_message(&id)],
                            Ok(Started::Stream(mut subscription)) => {
                                let receiver = std::mem::replace(
                                    &mut subscription.receiver,
                                    tokio::sync::broadcast::channel(1).1,
                                );
                                streams.insert(id.clone(), BroadcastStream::new(receiver));
                                held.insert(id, subscription);
                                Vec::new()
                            }
                        }
                    }
                    ClientMessage::Stop { id } => {
                        streams.remove(&id);
                        held.remove(&id);
                        Vec::new()
                    }
                    ClientMessage::ConnectionTerminate => return,
                }
            }
            Some((id, item)) = streams.next() => match item {
                Ok(Delivery::Next(bytes)) => {
                    hub.metrics.events_delivered.inc();
                    let shown = shows_plans.then(|| held.get(&id)).flatten();
                    match shown.and_then(|s| s.with_plan(&bytes)) {
                        Some(shown) => vec![data_message(&id, &shown)],
                        None => vec![data_message(&id, &bytes)],
                    }
                }
                Ok(Delivery::Error(errors)) => {
                    streams.remove(&id);
                    held.remove(&id);
                    vec![error_message(&id, &errors)]
                }
                Ok(Delivery::Complete) => {
                    streams.remove(&id);
                    held.remove(&id);
                    vec![complete_message(&id)]
                }
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    let reason = format!("too slow: missed {missed} events");
                    let close = Message::Close(Some(CloseFrame { code: 1008, reason: Utf8Bytes::from(reason) }));
                    let _ = send(&mut sink, vec![close], timeout).await;
                    return;
                }
            },
            _ = keepalive.tick(), if headers.is_some() => vec![text(r#"{"type":"ka"}"#.into())],
            () = &mut stopping => {
                let mut last: Vec<Message> = held.keys().map(|id| complete_message(id)).collect();
                last.push(Message::Close(Some(CloseFrame { code: 1001, reason: Utf8Bytes::from("the router is shutting down") })));
                let _ = send(&mut sink, last, timeout).await;
                return;
            }
        };
        if !outgoing.is_empty() && send(&mut sink, outgoing, timeout).await.is_err() {
            return;
        }
    }
}

/// Starts a `start` message's operation, unless the connection may not yet or no more.
async fn start(
    hub: &Arc<Hub>,
    headers: Option<&HeaderMap>,
    init_payload: Option<&Value>,
    running: usize,
    payload: Value,
) -> Result<Started, Vec<GraphQLError>> {
    let Some(headers) = headers else {
        return Err(vec![GraphQLError::new(
            "connection_init first",
            codes::BAD_REQUEST,
        )]);
    };
    if running >= hub.config.max_per_connection {
        return Err(vec![GraphQLError::new(
            "too many operations on this connection",
            codes::SUBSCRIPTION_LIMIT,
        )]);
    }
    let request = request_of(&payload)
        .map_err(|reason| vec![GraphQLError::new(reason, codes::BAD_REQUEST)])?;
    Ok(hub.start(request, headers, init_payload).await)
}

async fn send<S>(
    sink: &mut S,
    messages: Vec<Message>,
    timeout: std::time::Duration,
) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let sending = async {
        for message in messages {
            sink.feed(message).await.map_err(|_| ())?;
        }
        sink.flush().await.map_err(|_| ())
    };
    tokio::time::timeout(timeout, sending)
        .await
        .map_err(|_| ())?
}
