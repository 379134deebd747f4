//! The router's own subscriptions to subgraphs: `graphql-transport-ws` over tokio-tungstenite.
//!
//! One connection per subgraph URL and forwarded-auth context (the headers the rules give that
//! subgraph, and the client's `connection_init` payload) carries every subscription that shares
//! them, each under an id of its own. A connection task owns the socket:
//!
//! - it connects, sends `connection_init` with the payload, waits for `connection_ack`, then
//!   subscribes everything that is active;
//! - it routes `next`, `error` and `complete` to the subscription they name, answers `ping`
//!   and pings the subgraph itself when the line goes quiet;
//! - when the socket drops it tells every subscription ([`UpstreamEvent::Interrupted`]),
//!   reconnects with backoff and subscribes them again ([`UpstreamEvent::Resumed`]); after
//!   [`UpstreamConfig::grace`] without a connection, each gets [`UpstreamEvent::Failed`];
//! - when the last subscription goes, it says `complete` for it, closes the socket and ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::headers::HeaderList;

/// How the router's subgraph subscriptions behave.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// How long a subgraph may take to acknowledge `connection_init`.
    pub init_timeout: Duration,
    /// How long subscriptions wait for a lost connection to come back before they fail.
    pub grace: Duration,
    /// After this long without a message the router pings; twice this long, the connection
    /// counts as lost.
    pub keepalive: Duration,
    /// Largest message accepted from a subgraph, in bytes.
    pub max_message_bytes: usize,
    /// Events waiting for one subscription's consumer before it fails as too slow.
    pub queue: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
            max_message_bytes: 16 << 20,
            queue: 4096,
        }
    }
}

/// What one connection is for: where, and with which forwarded-auth context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    /// The subgraph's WebSocket URL (`ws://` or `wss://`).
    pub url: String,
    /// The headers sent with the handshake (the router's header rules for this client).
    pub headers: HeaderList,
    /// The `connection_init` payload, as JSON text.
    pub init_payload: Option<String>,
}

/// What a subscription to a subgraph yields.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamEvent {
    /// An event.
    Next(NextEvent),
    /// The subgraph refused or ended the subscription with errors (JSON array text).
    Error(Bytes),
    /// The subgraph completed the subscription.
    Complete,
    /// The connection dropped; the router is reconnecting.
    Interrupted,
    /// The connection is back and the subscription renewed.
    Resumed,
    /// The subscription ended on the router's side: no connection within the grace period,
    /// or its consumer fell too far behind.
    Failed(String),
}

/// One event of a subscription: the `next` message's payload (a GraphQL response as JSON text)
/// and its `extensions.eventId`, read once when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct NextEvent {
    /// The GraphQL response.
    pub payload: Bytes,
    /// The id the subgraph tagged it with, if any.
    pub id: Option<Arc<str>>,
}

/// Every connection to subgraphs, by key.
#[derive(Debug, Default)]
pub struct Upstreams {
    config: UpstreamConfig,
    connections: Mutex<HashMap<ConnectionKey, Weak<Connection>>>,
}

/// One live subscription to a subgraph; dropping it unsubscribes.
#[derive(Debug)]
pub struct UpstreamSubscription {
    /// Its events, in order.
    pub events: mpsc::Receiver<UpstreamEvent>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for UpstreamSubscription {
    fn drop(&mut self) {
        let _ = self.connection.commands.send(Command::Unsubscribe(self.id));
    }
}

#[derive(Debug)]
struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    task: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The task ends by itself once the commands close; the abort is for a task stuck in
        // a connect or a write.
        self.task.abort();
    }
}

#[derive(Debug)]
enum Command {
    Subscribe {
        id: u64,
        payload: Bytes,
        events: mpsc::Sender<UpstreamEvent>,
    },
    Unsubscribe(u64),
}

impl Upstreams {
    /// Connections that behave as `config` says.
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            config,
            connections: Mutex::default(),
        }
    }

    /// Subscribes with `payload` (`{"query":…,"variables":…}`) on the connection for `key`,
    /// opening it if needed.
    pub fn subscribe(&self, key: &ConnectionKey, payload: Bytes) -> UpstreamSubscription {
        let connection = self.connection(key);
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, events) = mpsc::channel(self.config.queue.max(1));
        let _ = connection.commands.send(Command::Subscribe {
            id,
            payload,
            events: sender,
        });
        UpstreamSubscription {
            events,
            id,
            connection,
        }
    }

    /// How many connections to subgraphs are open (or being opened).
    pub fn connections(&self) -> usize {
        let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| c.strong_count() > 0);
        map.len()
    }

    fn connection(&self, key: &ConnectionKey) -> Arc<Connection> {
        let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(key).and_then(Weak::upgrade) {
            return existing;
        }
        map.retain(|_, c| c.strong_count() > 0);
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(key.clone(), self.config.clone(), receiver));
        let connection = Arc::new(Connection {
            commands,
            next_id: AtomicU64::new(1),
            task: task.abort_handle(),
        });
        map.insert(key.clone(), Arc::downgrade(&connection));
        connection
    }
}

/// One subscription as the connection task keeps it.
struct Active {
    payload: Bytes,
    events: mpsc::Sender<UpstreamEvent>,
    /// The id of the last event it got, when the subgraph tags events
    /// (`extensions.eventId`): a subscription renewed after a lost connection resumes after it.
    last_event: Option<Arc<str>>,
}

impl Active {
    fn new(payload: Bytes, events: mpsc::Sender<UpstreamEvent>) -> Self {
        Self {
            payload,
            events,
            last_event: None,
        }
    }

    /// What renews the subscription: its payload, resuming after its last event if known.
    fn renewal(&self) -> std::borrow::Cow<'_, Bytes> {
        match &self.last_event {
            Some(last) => std::borrow::Cow::Owned(resume_after(&self.payload, last)),
            None => std::borrow::Cow::Borrowed(&self.payload),
        }
    }
}

/// The request extension that asks a subgraph to resume a subscription after an event.
pub const LAST_EVENT_ID: &str = "lastEventId";

/// `payload` (a GraphQL request as JSON) with `extensions.lastEventId` set to `last`.
pub fn resume_after(payload: &[u8], last: &str) -> Bytes {
    let mut request: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).unwrap_or_default();
    let extensions = request
        .entry("extensions")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !extensions.is_object() {
        *extensions = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(extensions) = extensions.as_object_mut() {
        extensions.insert(LAST_EVENT_ID.to_owned(), last.into());
    }
    Bytes::from(serde_json::to_vec(&request).unwrap_or_default())
}

/// The `extensions.eventId` of a subscription response (JSON text), if it has one.
pub fn event_id(response: &[u8]) -> Option<Arc<str>> {
    #[derive(Deserialize)]
    struct Tagged<'a> {
        #[serde(borrow)]
        extensions: Option<Extensions<'a>>,
    }
    #[derive(Deserialize)]
    struct Extensions<'a> {
        #[serde(rename = "eventId", borrow)]
        event_id: Option<std::borrow::Cow<'a, str>>,
    }
    // Most subgraphs tag nothing: don't parse what cannot hold an id.
    if !response.windows(9).any(|window| window == b"\"eventId\"") {
        return None;
    }
    let tagged: Tagged = serde_json::from_slice(response).ok()?;
    tagged.extensions?.event_id.map(|id| id.into())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a connection's life ended.
enum Ended {
    /// Every subscription is gone: the task is done.
    Unused,
    /// The socket failed or closed.
    Lost(String),
}

/// The connection task: connect, serve, reconnect, until no subscription is left.
async fn run(
    key: ConnectionKey,
    config: UpstreamConfig,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut active: HashMap<u64, Active> = HashMap::new();
    let mut lost_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let reason = match connect(&key, &config).await {
            Ok(socket) => {
                backoff = Duration::from_millis(100);
                if lost_since.take().is_some() {
                    notify(&mut active, UpstreamEvent::Resumed);
                }
                match serve(socket, &config, &mut active, &mut commands).await {
                    Ended::Unused => return,
                    Ended::Lost(reason) => {
                        tracing::warn!(
                            url = key.url,
                            reason,
                            "subgraph subscription connection lost; reconnecting"
                        );
                        notify(&mut active, UpstreamEvent::Interrupted);
                        reason
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(
                    url = key.url,
                    reason,
                    "cannot open a subscription connection to the subgraph"
                );
                reason
            }
        };
        let since = *lost_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= config.grace && !active.is_empty() {
            let message = format!(
                "the subgraph's subscription connection is gone ({reason}) and did not come back within {} ms",
                config.grace.as_millis()
            );
            notify(&mut active, UpstreamEvent::Failed(message));
            active.clear();
        }
        // Wait before the next attempt; subscriptions still come and go meanwhile.
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe { id, payload, events }) => {
                        active.insert(id, Active::new(payload, events));
                    }
                    Some(Command::Unsubscribe(id)) => {
                        active.remove(&id);
                    }
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Tells every subscription `event`, forgetting those whose consumer is gone or full.
fn notify(active: &mut HashMap<u64, Active>, event: UpstreamEvent) {
    active.retain(|_, sub| sub.events.try_send(event.clone()).is_ok());
}

/// Opens the socket and completes the `connection_init` handshake.
async fn connect(key: &ConnectionKey, config: &UpstreamConfig) -> Result<Socket, String> {
    let mut request = key
        .url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("invalid subscription URL: {err}"))?;
    let headers = request.headers_mut();
    for (name, value) in key.headers.iter() {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(config.max_message_bytes);
    ws_config.max_frame_size = Some(config.max_message_bytes);
    let connector = tls_connector();
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, connector);
    let (mut socket, _) = tokio::time::timeout(config.init_timeout, connecting)
        .await
        .map_err(|_| "timed out connecting".to_owned())?
        .map_err(|err| err.to_string())?;
    let init = match &key.init_payload {
        Some(payload) => format!(r#"{{"type":"connection_init","payload":{payload}}}"#),
        None => r#"{"type":"connection_init"}"#.to_owned(),
    };
    socket
        .send(Message::text(init))
        .await
        .map_err(|err| err.to_string())?;
    let acknowledged = async {
        while let Some(message) = socket.next().await {
            let text = match message.map_err(|err| err.to_string())? {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    return Err(format!(
                        "closed during connection_init: {}",
                        frame
                            .map(|f| format!("{} {}", f.code, f.reason))
                            .unwrap_or_default()
                    ));
                }
                _ => continue,
            };
            match serde_json::from_str::<Incoming>(&text) {
                Ok(m) if m.kind == "connection_ack" => return Ok(()),
                Ok(m) if m.kind == "ping" => {
                    let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
                }
                _ => {}
            }
        }
        Err("closed during connection_init".to_owned())
    };
    tokio::time::timeout(config.init_timeout, acknowledged)
        .await
        .map_err(|_| "no connection_ack in time".to_owned())??;
    Ok(socket)
}

/// Trusts the platform's roots for `wss://` subgraphs, like the HTTP client.
fn tls_connector() -> Option<tokio_tungstenite::Connector> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_platform_verifier()
        .ok()?
        .with_no_client_auth();
    Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}

/// A `graphql-transport-ws` message from the subgraph; the payload stays JSON text.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<&'a str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

fn subscribe_message(id: u64, payload: &Bytes) -> Message {
    let mut text = format!(r#"{{"type":"subscribe","id":"{id}","payload":"#);
    text.push_str(std::str::from_utf8(payload).unwrap_or("{}"));
    text.push('}');
    Message::text(text)
}

/// Runs one connection: subscribes what is active, then routes messages both ways.
async fn serve(
    mut socket: Socket,
    config: &UpstreamConfig,
    active: &mut HashMap<u64, Active>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Ended {
    for (id, sub) in active.iter() {
        if let Err(err) = socket.send(subscribe_message(*id, &sub.renewal())).await {
            return Ended::Lost(err.to_string());
        }
    }
    let mut last_heard = Instant::now();
    let mut pinged = false;
    let mut tick = tokio::time::interval(config.keepalive);
    tick.reset();
    loop {
        tokio::select! {
            message = socket.next() => {
                let Some(message) = message else {
                    return Ended::Lost("closed".to_owned());
                };
                let text = match message {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Close(frame)) => {
                        return Ended::Lost(format!("closed by the subgraph: {}", frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default()));
                    }
                    Ok(_) => continue,
                    Err(err) => return Ended::Lost(err.to_string()),
                };
                last_heard = Instant::now();
                pinged = false;
                if let Some(reply) = route(&text, active) {
                    let _ = socket.send(reply).await;
                }
            }
            command = commands.recv() => match command {
                None => {
                    let _ = socket.close(None).await;
                    return Ended::Unused;
                }
                Some(Command::Subscribe { id, payload, events }) => {
                    let message = subscribe_message(id, &payload);
                    active.insert(id, Active::new(payload, events));
                    if let Err(err) = socket.send(message).await {
                        return Ended::Lost(err.to_string());
                    }
                }
                Some(Command::Unsubscribe(id)) => {
                    if active.remove(&id).is_some() {
                        let complete = format!(r#"{{"type":"complete","id":"{id}"}}"#);
                        if let Err(err) = socket.send(Message::text(complete)).await {
                            return Ended::Lost(err.to_string());
                        }
                    }
                }
            },
            _ = tick.tick() => {
                if last_heard.elapsed() >= config.keepalive * 2 && pinged {
                    return Ended::Lost("the subgraph stopped answering pings".to_owned());
                }
                if last_heard.elapsed() >= config.keepalive {
                    pinged = true;
                    if let Err(err) = socket.send(Message::text(r#"{"type":"ping"}"#)).await {
                        return Ended::Lost(err.to_string());
                    }
                }
            }
        }
    }
}

/// Delivers one message from the subgraph; returns a reply to send (a `pong`).
fn route(text: &str, active: &mut HashMap<u64, Active>) -> Option<Message> {
    let message: Incoming = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(err) => {
            tracing::warn!(error = %err, "ignoring an unreadable message from a subgraph");
            return None;
        }
    };
    let id = message.id.and_then(|id| id.parse::<u64>().ok());
    let payload =
        || Bytes::copy_from_slice(message.payload.map_or("null", RawValue::get).as_bytes());
    match (message.kind, id) {
        ("ping", _) => return Some(Message::text(r#"{"type":"pong"}"#)),
        ("next", Some(id)) => {
            let sub = active.get_mut(&id)?;
            let payload = payload();
            let tagged = event_id(&payload);
            if tagged.is_some() {
                sub.last_event.clone_from(&tagged);
            }
            let next = NextEvent {
                payload,
                id: tagged,
            };
            if let Err(mpsc::error::TrySendError::Full(_)) =
                sub.events.try_send(UpstreamEvent::Next(next))
            {
                let _ = sub.events.try_send(UpstreamEvent::Failed(
                    "events arrived faster than they were completed".to_owned(),
                ));
                active.remove(&id);
            }
        }
        ("error", Some(id)) => {
            if let Some(sub) = active.remove(&id) {
                let _ = sub.events.try_send(UpstreamEvent::Error(payload()));
            }
        }
        ("complete", Some(id)) => {
            if let Some(sub) = active.remove(&id) {
                let _ = sub.events.try_send(UpstreamEvent::Complete);
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> (HashMap<u64, Active>, mpsc::Receiver<UpstreamEvent>) {
        let (events, receiver) = mpsc::channel(2);
        let mut map = HashMap::new();
        map.insert(
            7,
            Active::new(
                Bytes::from_static(br#"{"query":"subscription { a }"}"#),
                events,
            ),
        );
        (map, receiver)
    }

    #[test]
    fn next_error_and_complete_reach_the_subscription_they_name() {
        let (mut map, mut receiver) = active();
        route(
            r#"{"type":"next","id":"7","payload":{"data":{"a":1}}}"#,
            &mut map,
        );
        assert_eq!(
            receiver.try_recv().ok(),
            Some(UpstreamEvent::Next(NextEvent {
                payload: Bytes::from_static(br#"{"data":{"a":1}}"#),
                id: None,
            }))
        );
        route(r#"{"type":"next","id":"8","payload":{}}"#, &mut map);
        assert!(receiver.try_recv().is_err(), "another id's event");
        route(r#"{"type":"complete","id":"7"}"#, &mut map);
        assert_eq!(receiver.try_recv().ok(), Some(UpstreamEvent::Complete));
        assert!(map.is_empty());
    }

    #[test]
    fn a_renewed_subscription_resumes_after_the_last_event_it_got() {
        let (mut map, mut receiver) = active();
        assert_eq!(
            map[&7].renewal().as_ref(),
            &map[&7].payload,
            "nothing to resume from"
        );
        route(
            r#"{"type":"next","id":"7","payload":{"data":{"a":1},"extensions":{"eventId":"5-1"}}}"#,
            &mut map,
        );
        route(
            r#"{"type":"next","id":"7","payload":{"data":{"a":2}}}"#,
            &mut map,
        );
        assert!(receiver.try_recv().is_ok());
        let renewal: serde_json::Value = serde_json::from_slice(&map[&7].renewal()).expect("JSON");
        assert_eq!(
            renewal,
            serde_json::json!({
                "query": "subscription { a }",
                "extensions": { "lastEventId": "5-1" },
            })
        );
        assert_eq!(event_id(br#"{"data":{"eventId":"no"}}"#), None);
        assert_eq!(
            event_id(br#"{"data":null,"extensions":{"eventId":"9-0"}}"#).as_deref(),
            Some("9-0")
        );
    }

    #[test]
    fn a_ping_is_answered_and_garbage_ignored() {
        let (mut map, _receiver) = active();
        assert!(route(r#"{"type":"ping"}"#, &mut map).is_some());
        assert!(route("not json", &mut map).is_none());
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_consumer_that_falls_behind_fails_instead_of_buffering_without_bound() {
        let (mut map, mut receiver) = active();
        for _ in 0..3 {
            route(r#"{"type":"next","id":"7","payload":{}}"#, &mut map);
        }
        assert!(map.is_empty());
        assert!(matches!(receiver.try_recv(), Ok(UpstreamEvent::Next(_))));
        assert!(matches!(receiver.try_recv(), Ok(UpstreamEvent::Next(_))));
    }
}
