//! `graphql-transport-ws`, the protocol of the `graphql-ws` library, server side.
//!
//! The client sends `connection_init` within the init timeout (else close 4408); the router
//! answers `connection_ack` (or closes 4403 when the payload is refused). Then:
//!
//! - `subscribe {id, payload}`: a query or mutation answers with one `next` and `complete`; a
//!   subscription streams `next` messages until `complete` (the subgraph completed it) or
//!   `error` (never followed by `complete`); a request the router refuses is an `error` for
//!   that id, and the socket stays open. A second subscribe with an active id closes 4409,
//!   one before the ack 4401.
//! - `complete {id}` ends that operation (an unknown id is ignored); `ping` gets `pong`.
//! - Anything unreadable closes 4400; a second `connection_init` 4429; an internal failure
//!   4500. A client too slow to read its events is closed with 1008; shutdown completes every
//!   subscription and closes 1001.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::Hub;
use super::group::Delivery;
use super::session::{ConnectionSlot, Started, headers_with_init_payload, request_of};
use crate::error::{GraphQLError, codes};

/// The close codes of `graphql-transport-ws`, and the WebSocket ones the router uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 4400: a message the protocol does not allow.
    BadRequest,
    /// 4401: `subscribe` before `connection_ack`.
    Unauthorized,
    /// 4403: `connection_init` refused.
    Forbidden,
    /// 4406: no subprotocol the router speaks.
    SubprotocolNotAcceptable,
    /// 4408: no `connection_init` in time.
    InitTimeout,
    /// 4409: a second `subscribe` with an active id.
    SubscriberExists,
    /// 4429: a second `connection_init`.
    TooManyInits,
    /// 4500: the router failed.
    Internal,
    /// 1001: the router is shutting down.
    GoingAway,
    /// 1008: the client fell too far behind its events.
    TooSlow,
}

impl CloseCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 4400,
            Self::Unauthorized => 4401,
            Self::Forbidden => 4403,
            Self::SubprotocolNotAcceptable => 4406,
            Self::InitTimeout => 4408,
            Self::SubscriberExists => 4409,
            Self::TooManyInits => 4429,
            Self::Internal => 4500,
            Self::GoingAway => 1001,
            Self::TooSlow => 1008,
        }
    }
}

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
}

/// Why the session ended, when the router ends it.
struct Close(CloseCode, String);

/// One socket's state.
struct Session {
    hub: Arc<Hub>,
    http_headers: HeaderMap,
    /// The client's headers with its init payload's; set by `connection_init`.
    headers: Option<HeaderMap>,
    /// Whether the client asked to see plans (then its events are looked at one by one).
    shows_plans: bool,
    init_payload: Option<Value>,
    /// Each subscription's deliveries, by id (shared, so that a delivery clones no string).
    streams: StreamMap<Arc<str>, BroadcastStream<Delivery>>,
    /// What keeps each subscription in service (its group and slot), by id.
    subscriptions: HashMap<String, super::session::ClientSubscription>,
    /// Queries and mutations running, by id.
    singles: JoinSet<(String, Started)>,
    /// Each running start's id, and how to cancel it.
    single_ids: HashMap<tokio::task::Id, (String, tokio::task::AbortHandle)>,
}

/// Serves one `graphql-transport-ws` socket.
pub async fn serve(
    hub: Arc<Hub>,
    socket: WebSocket,
    http_headers: HeaderMap,
    slot: ConnectionSlot,
) {
    let _slot = slot;
    // Not split: the loop below reads and writes in turn, so no lock is needed between halves.
    let mut socket = socket;
    let mut session = Session {
        hub: Arc::clone(&hub),
        http_headers,
        headers: None,
        shows_plans: false,
        init_payload: None,
        streams: StreamMap::new(),
        subscriptions: HashMap::new(),
        singles: JoinSet::new(),
        single_ids: HashMap::new(),
    };
    let mut shutdown = hub.shutdown_signal();
    // Made once: a fresh one per turn would register and drop a waiter on every event.
    let stopping = super::stopped(&mut shutdown);
    tokio::pin!(stopping);
    let init_deadline = tokio::time::sleep(hub.config.init_timeout);
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval(hub.config.keepalive);
    keepalive.reset();
    let mut heard = true;
    // What to send next, reused from one turn to the next.
    let mut outgoing: Vec<Message> = Vec::new();
    let ended: Option<Close> = loop {
        tokio::select! {
            message = socket.next() => {
                heard = true;
                match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    // Boxed, like the sends that end the session: the connection's task holds
                    // only what an idle socket needs between messages.
                    Some(Ok(Message::Text(text))) => match Box::pin(session.receive(&text)).await {
                        Ok(replies) => outgoing.extend(replies),
                        Err(close) => break Some(close),
                    },
                    Some(Ok(Message::Binary(_))) => {
                        break Some(Close(CloseCode::BadRequest, "binary messages are not part of the protocol".into()));
                    }
                    Some(Ok(_)) => {}
                }
            }
            Some((id, item)) = session.streams.next() => match session.delivered(&id, item) {
                Ok(message) => outgoing.push(message),
                Err(close) => break Some(close),
            },
            Some(done) = session.singles.join_next_with_id(), if !session.singles.is_empty() => {
                match session.single_done(done) {
                    Ok(messages) => outgoing.extend(messages),
                    Err(close) => break Some(close),
                }
            }
            () = &mut init_deadline, if session.headers.is_none() => {
                break Some(Close(CloseCode::InitTimeout, "Connection initialisation timeout".into()));
            }
            _ = keepalive.tick() => {
                if !std::mem::take(&mut heard) {
                    break None;
                }
                outgoing.push(Message::Ping(Default::default()));
            }
            () = &mut stopping => {
                let mut last: Vec<Message> = session
                    .subscriptions
                    .keys()
                    .map(|id| frame(&format!(r#"{{"id":{},"type":"complete"}}"#, json_string(id))))
                    .collect();
                last.push(close_message(CloseCode::GoingAway, "the router is shutting down"));
                let _ = Box::pin(send_all(&mut socket, last, hub.config.write_timeout)).await;
                return;
            }
        }
        if !outgoing.is_empty()
            && Box::pin(send_all(
                &mut socket,
                outgoing.drain(..),
                hub.config.write_timeout,
            ))
            .await
            .is_err()
        {
            break None;
        }
    };
    if let Some(Close(code, reason)) = ended {
        let _ = Box::pin(send_all(
            &mut socket,
            [close_message(code, &reason)],
            hub.config.write_timeout,
        ))
        .await;
    }
}

/// Closes a socket whose client offered no subprotocol the router speaks.
pub async fn refuse_subprotocol(mut socket: WebSocket) {
    let _ = socket
        .send(close_message(
            CloseCode::SubprotocolNotAcceptable,
            "Subprotocol not acceptable",
        ))
        .await;
}

/// Sends `messages` in order; fails when the client does not take them in time.
///
/// Usually the socket takes them at once; only a send that has to wait arms the timer.
async fn send_all<S>(
    sink: &mut S,
    messages: impl IntoIterator<Item = Message>,
    timeout: Duration,
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
    let mut sending = std::pin::pin!(sending);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(sending.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(sent) => sent,
        std::task::Poll::Pending => tokio::time::timeout(timeout, sending)
            .await
            .map_err(|_| ())?,
    }
}

/// A close frame; the reason is cut to what a control frame holds (123 bytes after the code).
fn close_message(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from(&reason[..end]),
    }))
}

fn frame(text: &str) -> Message {
    Message::Text(Utf8Bytes::from(text))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Appends `text` as a JSON string; ids are nearly always plain, and then copied as they are.
fn push_json_string(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&json_string(text));
    }
}

/// `{"id":…,"type":"next","payload":<bytes>}`: the payload bytes are shared by every client;
/// each message is one allocation of its exact size.
fn next_message(id: &str, payload: &[u8]) -> Message {
    let mut text = String::with_capacity(payload.len() + id.len() + 36);
    text.push_str(r#"{"id":"#);
    push_json_string(&mut text, id);
    text.push_str(r#","type":"next","payload":"#);
    text.push_str(std::str::from_utf8(payload).unwrap_or("null"));
    text.push('}');
    frame(&text)
}

fn error_message(id: &str, errors: &[u8]) -> Message {
    frame(&format!(
        r#"{{"id":{},"type":"error","payload":{}}}"#,
        json_string(id),
        std::str::from_utf8(errors).unwrap_or("[]")
    ))
}

fn complete_message(id: &str) -> Message {
    frame(&format!(
        r#"{{"id":{},"type":"complete"}}"#,
        json_string(id)
    ))
}

fn errors_json(errors: &[GraphQLError]) -> Vec<u8> {
    serde_json::to_vec(errors).unwrap_or_else(|_| b"[]".to_vec())
}

/// Whether the init payload passes: with `auth_required`, it must carry an authorization.
fn init_refused(hub: &Hub, payload: Option<&Value>) -> bool {
    if !hub.config.auth_required {
        return false;
    }
    let carries = |value: Option<&Value>| match value {
        Some(Value::Object(fields)) => fields
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.is_string()),
        _ => false,
    };
    !(carries(payload) || carries(payload.and_then(|p| p.get("headers"))))
}

impl Session {
    /// Handles one text message from the client; returns what to send back.
    async fn receive(&mut self, text: &str) -> Result<Vec<Message>, Close> {
        if text.len() > self.hub.config.max_message_bytes {
            return Err(Close(CloseCode::BadRequest, "message too large".into()));
        }
        let message: ClientMessage = serde_json::from_str(text).map_err(|err| {
            Close(
                CloseCode::BadRequest,
                format!("Invalid message received: {err}"),
            )
        })?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.headers.is_some() {
                    return Err(Close(
                        CloseCode::TooManyInits,
                        "Too many initialisation requests".into(),
                    ));
                }
                if payload
                    .as_ref()
                    .is_some_and(|p| !p.is_object() && !p.is_null())
                {
                    return Err(Close(
                        CloseCode::BadRequest,
                        "the connection_init payload must be an object".into(),
                    ));
                }
                if init_refused(&self.hub, payload.as_ref()) {
                    return Err(Close(CloseCode::Forbidden, "Forbidden".into()));
                }
                // The HTTP headers are needed no more once merged with the payload.
                let http_headers = std::mem::take(&mut self.http_headers);
                let headers = self
                    .hub
                    .kept_headers(&headers_with_init_payload(&http_headers, payload.as_ref()));
                self.shows_plans = crate::engine::expose_plan(&headers);
                self.headers = Some(headers);
                self.init_payload = payload.filter(|p| !p.is_null());
                Ok(vec![frame(r#"{"type":"connection_ack"}"#)])
            }
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload).await,
            ClientMessage::Complete { id } => {
                self.streams.remove(id.as_str());
                self.subscriptions.remove(&id);
                if let Some(task) = self
                    .single_ids
                    .iter()
                    .find_map(|(task, (single, _))| (*single == id).then_some(*task))
                    && let Some((_, handle)) = self.single_ids.remove(&task)
                {
                    handle.abort();
                }
                Ok(Vec::new())
            }
            ClientMessage::Ping { payload } => Ok(vec![frame(&match payload {
                Some(payload) => format!(r#"{{"type":"pong","payload":{payload}}}"#),
                None => r#"{"type":"pong"}"#.to_owned(),
            })]),
            ClientMessage::Pong { .. } => Ok(Vec::new()),
        }
    }

    async fn subscribe(&mut self, id: String, payload: Value) -> Result<Vec<Message>, Close> {
        let Some(headers) = self.headers.clone() else {
            return Err(Close(CloseCode::Unauthorized, "Unauthorized".into()));
        };
        if self.subscriptions.contains_key(&id) || self.single_ids.values().any(|(s, _)| *s == id) {
            return Err(Close(
                CloseCode::SubscriberExists,
                format!("Subscriber for {id} already exists"),
            ));
        }
        let request = request_of(&payload).map_err(|reason| {
            Close(
                CloseCode::BadRequest,
                format!("Invalid message received: {reason}"),
            )
        })?;
        if self.subscriptions.len() + self.singles.len() >= self.hub.config.max_per_connection {
            let error = GraphQLError::new(
                format!(
                    "a connection may run {} operations at once",
                    self.hub.config.max_per_connection
                ),
                codes::SUBSCRIPTION_LIMIT,
            );
            return Ok(vec![error_message(&id, &errors_json(&[error]))]);
        }
        let hub = Arc::clone(&self.hub);
        let init_payload = self.init_payload.clone();
        let task = self.singles.spawn({
            let id = id.clone();
            async move {
                let started = hub.start(request, &headers, init_payload.as_ref()).await;
                (id, started)
            }
        });
        self.single_ids.insert(task.id(), (id, task));
        Ok(Vec::new())
    }

    /// An operation finished starting (or a query or mutation finished).
    fn single_done(
        &mut self,
        done: Result<(tokio::task::Id, (String, Started)), tokio::task::JoinError>,
    ) -> Result<Vec<Message>, Close> {
        let (task, (id, started)) = match done {
            Ok(done) => done,
            Err(err) if err.is_cancelled() => {
                self.single_ids.remove(&err.id());
                return Ok(Vec::new());
            }
            Err(err) => {
                tracing::error!(error = %err, "an operation over WebSocket failed");
                return Err(Close(CloseCode::Internal, "Internal server error".into()));
            }
        };
        self.single_ids.remove(&task);
        Ok(match started {
            Started::Refused(errors) => vec![error_message(&id, &errors_json(&errors))],
            Started::Single(bytes) => vec![next_message(&id, &bytes), complete_message(&id)],
            Started::Stream(mut subscription) => {
                let receiver = std::mem::replace(
                    &mut subscription.receiver,
                    tokio::sync::broadcast::channel(1).1,
                );
                self.streams
                    .insert(Arc::from(id.as_str()), BroadcastStream::new(receiver));
                self.subscriptions.insert(id, subscription);
                Vec::new()
            }
        })
    }

    /// A delivery for subscription `id`.
    fn delivered(
        &mut self,
        id: &str,
        item: Result<Delivery, BroadcastStreamRecvError>,
    ) -> Result<Message, Close> {
        let delivery = match item {
            Ok(delivery) => delivery,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                return Err(Close(
                    CloseCode::TooSlow,
                    format!("the client read too slowly and missed {missed} events"),
                ));
            }
        };
        Ok(match delivery {
            Delivery::Next(bytes) => {
                self.hub.metrics.events_delivered.inc();
                let shown = self
                    .shows_plans
                    .then(|| self.subscriptions.get(id))
                    .flatten();
                match shown.and_then(|s| s.with_plan(&bytes)) {
                    Some(shown) => next_message(id, &shown),
                    None => next_message(id, &bytes),
                }
            }
            Delivery::Error(errors) => {
                self.end(id);
                error_message(id, &errors)
            }
            Delivery::Complete => {
                self.end(id);
                complete_message(id)
            }
        })
    }

    fn end(&mut self, id: &str) {
        self.streams.remove(id);
        self.subscriptions.remove(id);
    }
}
