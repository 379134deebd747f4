//! [`WsClient`]: a `graphql-transport-ws` client for subscription tests.
//!
//! The protocol, client side: open the socket with subprotocol `graphql-transport-ws`, send
//! `connection_init`, wait for `connection_ack`, then `subscribe` with an id; the server answers
//! with `next` messages (and finally `complete` or `error`) carrying that id. Either side may
//! `ping`; the other answers `pong`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The one subprotocol this client speaks.
const PROTOCOL: &str = "graphql-transport-ws";
/// How long [`WsClient::connect`] waits for the handshake and for `connection_ack`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code reported when the server's close frame carries none (RFC 6455 §7.1.5).
const NO_STATUS_RECEIVED: u16 = 1005;

/// What one read from the socket produced, after control frames are dealt with.
enum Incoming {
    /// A JSON text message.
    Json(Value),
    /// The server closed the connection with this code and reason.
    Closed(u16, String),
}

/// A connected, acknowledged `graphql-transport-ws` session.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages [`WsClient::next_payload`] read past while looking for another id; handed out
    /// first by later reads, so concurrent subscriptions on one socket lose nothing.
    pending: VecDeque<Value>,
    /// The server's close code and reason, once seen.
    closed: Option<(u16, String)>,
}

impl WsClient {
    /// Opens `url` (`ws://…/graphql`), sends `connection_init` and waits for `connection_ack`.
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        Self::connect_with(url, json!({})).await
    }

    /// [`connect`](Self::connect) with `payload` in `connection_init`.
    pub async fn connect_with(url: &str, payload: Value) -> anyhow::Result<WsClient> {
        let mut client = Self::open(url, Some(PROTOCOL)).await?;
        client
            .send_json(&json!({ "type": "connection_init", "payload": payload }))
            .await?;
        let ack = client
            .next_message(CONNECT_TIMEOUT)
            .await
            .context("waiting for connection_ack")?;
        anyhow::ensure!(
            ack["type"] == "connection_ack",
            "expected connection_ack, got {ack}"
        );
        Ok(client)
    }

    /// Opens `url` offering `protocol` (or none) and does nothing else: for tests of the
    /// handshake and of protocol violations.
    pub async fn open(url: &str, protocol: Option<&str>) -> anyhow::Result<WsClient> {
        let mut request = url
            .into_client_request()
            .with_context(|| format!("bad WebSocket URL {url}"))?;
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(protocol).context("a header value")?,
            );
        }
        let (socket, _) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .with_context(|| format!("WebSocket handshake with {url} timed out"))?
                .with_context(|| format!("WebSocket handshake with {url}"))?;
        Ok(WsClient {
            socket,
            pending: VecDeque::new(),
            closed: None,
        })
    }

    /// Sends `subscribe` for `query` under `id`.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<()> {
        self.send_json(&json!({
            "type": "subscribe",
            "id": id,
            "payload": { "query": query, "variables": variables },
        }))
        .await
    }

    /// The next JSON message, answering and skipping the server's `ping`s.
    ///
    /// Fails on timeout, on a message that is not JSON text, and when the server closes (the
    /// close code stays available to [`WsClient::expect_close`]).
    pub async fn next_message(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        self.read_message(Instant::now() + timeout)
            .await
            .with_context(|| format!("waiting {timeout:?} for a message"))
    }

    /// The `payload` of the next `next` message for subscription `id`.
    ///
    /// Messages for other ids are kept for later reads. An `error` or `complete` for `id`
    /// fails, since no `next` can follow it.
    pub async fn next_payload(&mut self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        // Look through what earlier calls kept before reading more.
        let found = loop {
            let message = match self.pending.pop_front() {
                Some(message) => message,
                None => match self.read_message(deadline).await {
                    Ok(message) => message,
                    Err(err) => break Err(err),
                },
            };
            if message["id"] != id {
                skipped.push(message);
                continue;
            }
            break match message["type"].as_str() {
                Some("next") => Ok(message["payload"].clone()),
                _ => Err(anyhow::anyhow!(
                    "subscription {id} ended without a next: {message}"
                )),
            };
        };
        // Put the other subscriptions' messages back in front, in the order they came.
        for message in skipped.into_iter().rev() {
            self.pending.push_front(message);
        }
        found.with_context(|| format!("waiting for next on subscription {id} ({timeout:?})"))
    }

    /// Sends `text` as is, valid protocol or not.
    pub async fn send_raw(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .context("sending on the WebSocket")
    }

    /// Waits for the server to close the socket and returns its close code and reason.
    ///
    /// Messages that arrive first are discarded (`ping`s are still answered).
    pub async fn expect_close(&mut self, timeout: Duration) -> anyhow::Result<(u16, String)> {
        if let Some(closed) = self.closed.clone() {
            return Ok(closed);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let incoming = self
                .read(deadline)
                .await
                .with_context(|| format!("waiting {timeout:?} for the server to close"))?;
            match incoming {
                Incoming::Json(message) if message["type"] == "ping" => self.pong().await?,
                Incoming::Json(_) => {}
                Incoming::Closed(code, reason) => return Ok((code, reason)),
            }
        }
    }

    /// Closes the socket from the client side (code 1000).
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.socket
            .close(None)
            .await
            .context("closing the WebSocket")
    }

    /// Reads the next JSON message by `deadline`, answering `ping`s; the kept messages are not
    /// looked at.
    async fn read_message(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            match self.read(deadline).await? {
                Incoming::Json(message) if message["type"] == "ping" => self.pong().await?,
                Incoming::Json(message) => return Ok(message),
                Incoming::Closed(code, reason) => {
                    anyhow::bail!("the server closed the socket: {code} {reason}")
                }
            }
        }
    }

    /// Reads frames until a text message or a close, by `deadline`.
    async fn read(&mut self, deadline: Instant) -> anyhow::Result<Incoming> {
        if let Some((code, reason)) = &self.closed {
            anyhow::bail!("the socket is already closed: {code} {reason}");
        }
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| anyhow::anyhow!("timed out: nothing from the server"))?;
            let frame = match frame {
                Some(frame) => frame.context("reading from the WebSocket")?,
                None => anyhow::bail!("the WebSocket ended without a close frame"),
            };
            match frame {
                Message::Text(text) => {
                    let json = serde_json::from_str(text.as_str())
                        .with_context(|| format!("a text message that is not JSON: {text}"))?;
                    return Ok(Incoming::Json(json));
                }
                Message::Close(frame) => {
                    let closed = match frame {
                        Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
                        None => (NO_STATUS_RECEIVED, String::new()),
                    };
                    self.closed = Some(closed.clone());
                    return Ok(Incoming::Closed(closed.0, closed.1));
                }
                Message::Binary(bytes) => {
                    anyhow::bail!(
                        "a binary message, which graphql-transport-ws never sends: {bytes:?}"
                    )
                }
                // tungstenite answers WebSocket-level pings itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Answers a protocol-level `ping`.
    async fn pong(&mut self) -> anyhow::Result<()> {
        self.send_json(&json!({ "type": "pong" })).await
    }

    /// Sends one protocol message.
    pub async fn send_json(&mut self, message: &Value) -> anyhow::Result<()> {
        self.send_raw(&message.to_string()).await
    }
}
