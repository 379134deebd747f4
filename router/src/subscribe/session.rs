//! What every client protocol shares: starting an operation (a query or mutation answers once,
//! a subscription joins its group), the limits, and the counting of connections and
//! subscriptions (each slot gives its count back when dropped, so the gauges return to zero
//! however a client leaves).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::group::{Delivery, Group, GroupRun, StreamOptions};
use super::{GroupKey, Hub};
use crate::engine::{RequestContext, ResponseMediaType};
use crate::error::{GraphQLError, codes};
use crate::request::GraphQLRequest;

/// A client protocol, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WebSocket, `graphql-transport-ws`.
    TransportWs,
    /// WebSocket, the legacy `graphql-ws` (subscriptions-transport-ws).
    LegacyWs,
    /// GraphQL over Server-Sent Events.
    Sse,
    /// Apollo's multipart HTTP subscriptions.
    Multipart,
}

impl Protocol {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TransportWs => "graphql-transport-ws",
            Self::LegacyWs => "graphql-ws",
            Self::Sse => "sse",
            Self::Multipart => "multipart",
        }
    }
}

/// One open subscription connection; dropping it counts it closed.
#[derive(Debug)]
pub struct ConnectionSlot {
    hub: Arc<Hub>,
    protocol: Protocol,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
        self.hub
            .metrics
            .connections
            .with_label_values(&[self.protocol.label()])
            .dec();
    }
}

/// One client subscription being served; dropping it counts it ended.
#[derive(Debug)]
pub struct SubscriptionSlot {
    hub: Arc<Hub>,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.hub.subscriptions.fetch_sub(1, Ordering::Relaxed);
        self.hub.metrics.active.dec();
    }
}

/// A client's subscription: its deliveries, its group and its slot.
pub struct ClientSubscription {
    /// The deliveries, from the group's broadcast (bounded: a client that falls behind sees a
    /// lag and is disconnected).
    pub receiver: broadcast::Receiver<Delivery>,
    /// The plan, for a client that asked to see it.
    plan: Option<Box<ShownPlan>>,
    _group: Arc<Group>,
    _slot: SubscriptionSlot,
}

impl ClientSubscription {
    /// A delivered event as this client gets it: for a client that asked to see the plan (the
    /// `tessera-expose-query-plan` header, or that member of its `connection_init` payload),
    /// with the plan in its `extensions`, as a query's response has it; else `None` (the
    /// group's bytes as they are). Events are shared by every client of a group, so the plan
    /// is added here, for the clients that want it only.
    pub fn with_plan(&self, event: &[u8]) -> Option<Vec<u8>> {
        self.plan.as_ref().and_then(|plan| plan.add_to(event))
    }
}

/// A subscription's plan as it goes into its events' `extensions`.
#[derive(Debug)]
struct ShownPlan {
    json: Value,
    text: String,
}

impl ShownPlan {
    fn of(plan: &crate::plan::QueryPlan) -> Self {
        Self {
            json: plan.to_json(),
            text: plan.to_string(),
        }
    }

    /// `event` (a GraphQL response) with `extensions.queryPlan` and `queryPlanText`.
    fn add_to(&self, event: &[u8]) -> Option<Vec<u8>> {
        let Ok(Value::Object(mut response)) = serde_json::from_slice::<Value>(event) else {
            return None;
        };
        let extensions = response
            .entry("extensions")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(extensions) = extensions else {
            return None;
        };
        extensions.insert("queryPlan".to_owned(), self.json.clone());
        extensions.insert("queryPlanText".to_owned(), Value::String(self.text.clone()));
        serde_json::to_vec(&response).ok()
    }
}

impl std::fmt::Debug for ClientSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSubscription").finish_non_exhaustive()
    }
}

/// What starting an operation gave.
#[derive(Debug)]
pub enum Started {
    /// A query or mutation: its one response, as JSON text.
    Single(Vec<u8>),
    /// A subscription: deliveries until it ends.
    Stream(ClientSubscription),
    /// Refused before it ran (parse, validation, limits): the errors.
    Refused(Vec<GraphQLError>),
}

impl Hub {
    /// Counts a new connection of `protocol`; `None` at the connection limit or while shutting
    /// down.
    pub fn open_connection(self: &Arc<Self>, protocol: Protocol) -> Option<ConnectionSlot> {
        if self.is_shutting_down() {
            return None;
        }
        let before = self.connections.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .connections
            .with_label_values(&[protocol.label()])
            .inc();
        let slot = ConnectionSlot {
            hub: Arc::clone(self),
            protocol,
        };
        (before < self.config.max_connections).then_some(slot)
    }

    fn reserve_subscription(self: &Arc<Self>) -> Option<SubscriptionSlot> {
        let before = self.subscriptions.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.inc();
        let slot = SubscriptionSlot {
            hub: Arc::clone(self),
        };
        (before < self.config.max_subscriptions).then_some(slot)
    }

    /// The headers of `headers` that the router's header rules read, and the one that asks to
    /// see plans, in memory of their own: what a long-lived stream keeps of its request.
    pub fn kept_headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut kept = self.live.engine().config().headers.retain(headers);
        if let Some(value) = headers.get(crate::engine::EXPOSE_QUERY_PLAN_HEADER) {
            kept.insert(crate::engine::EXPOSE_QUERY_PLAN_HEADER, value.clone());
        }
        kept
    }

    /// Starts `request` for a client with `headers` (its HTTP headers, plus what its
    /// `connection_init` payload contributes) and `init_payload`.
    pub async fn start(
        self: &Arc<Self>,
        request: GraphQLRequest,
        headers: &HeaderMap,
        init_payload: Option<&Value>,
    ) -> Started {
        let engine = self.live.engine();
        let ctx = RequestContext {
            media_type: ResponseMediaType::GraphQLResponseJson,
            expose_plan: crate::engine::expose_plan(headers),
            ..RequestContext::default()
        };
        let planned = match engine.prepare_operation(&request, ctx, headers) {
            Ok(planned) => planned,
            Err(errors) => return Started::Refused(errors),
        };
        if planned.kind != apollo_compiler::executable::OperationType::Subscription {
            let response = engine.handle_with_headers(request, ctx, headers).await;
            return Started::Single(response.into_bytes());
        }
        let Some(slot) = self.reserve_subscription() else {
            return Started::Refused(vec![GraphQLError::new(
                format!(
                    "the router serves {} subscriptions at most",
                    self.config.max_subscriptions
                ),
                codes::SUBSCRIPTION_LIMIT,
            )]);
        };
        let stream = match StreamOptions::of(&request) {
            Ok(stream) => stream,
            Err(message) => {
                return Started::Refused(vec![GraphQLError::new(message, codes::BAD_REQUEST)]);
            }
        };
        let init_payload = init_payload
            .filter(|_| self.config.forward_init_payload)
            .map(forwarded_init_payload);
        let key = GroupKey {
            query: request.query.clone().unwrap_or_default(),
            operation_name: request.operation_name.clone(),
            // As coerced: `"variables": {}`, none at all, or a default spelled out are one
            // group.
            variables: serde_json::to_string(&planned.variables).unwrap_or_default(),
            headers: planned.headers.identity(),
            init_payload: init_payload.clone(),
            stream: stream.clone(),
        };
        let resuming = stream.last_event_id.is_some();
        let plan = ctx
            .expose_plan
            .then(|| Box::new(ShownPlan::of(&planned.plan)));
        // Built only for a group that starts: joining one copies no headers.
        let run = move || GroupRun {
            request,
            client_headers: self.kept_headers(headers),
            init_payload,
            engine,
            planned,
            stream,
            converge: None,
        };
        // A resuming client's group replays from the client's own position: it is never
        // shared (one that joined a replay late would miss what went before). Once it has
        // caught up, it hands over to the live group of the same operation (without a rate
        // limit, whose conflation would make the two streams differ).
        let group = if !resuming {
            self.shared_group(key, run)
        } else {
            let mut run = run();
            if run.stream.max_per_second.is_none() {
                let live_key = GroupKey {
                    stream: StreamOptions::default(),
                    ..key.clone()
                };
                run.converge = Some(self.shared_group(live_key, || run.live()));
            }
            Group::start(self, key, run, self.config.client_queue)
        };
        Started::Stream(ClientSubscription {
            receiver: group.receiver(),
            plan,
            _group: group,
            _slot: slot,
        })
    }

    /// The group serving `key` to live clients, started with `run` when there is none.
    fn shared_group(self: &Arc<Self>, key: GroupKey, run: impl FnOnce() -> GroupRun) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(&key).and_then(std::sync::Weak::upgrade) {
            return group;
        }
        let group = Group::start(self, key.clone(), run(), self.config.client_queue);
        groups.insert(key, Arc::downgrade(&group));
        group
    }
}

/// A `connection_init` payload as subgraphs get it: without the member that asks the router
/// for plans (addressed to the router; left in, it would also give the client an upstream
/// connection apart from clients that do not ask).
fn forwarded_init_payload(payload: &Value) -> String {
    let mut payload = payload.clone();
    if let Value::Object(fields) = &mut payload {
        let kept = |name: &String, _: &mut Value| {
            !name.eq_ignore_ascii_case(crate::engine::EXPOSE_QUERY_PLAN_HEADER)
        };
        fields.retain(kept);
        if let Some(Value::Object(nested)) = fields.get_mut("headers") {
            nested.retain(kept);
        }
    }
    payload.to_string()
}

/// The request a `subscribe` / `start` payload (or an HTTP body) describes.
pub fn request_of(payload: &Value) -> Result<GraphQLRequest, String> {
    let Value::Object(object) = payload else {
        return Err("the payload must be an object".to_owned());
    };
    serde_json::from_value(Value::Object(object.clone()))
        .map_err(|err| format!("the payload is not a GraphQL request: {err}"))
}

/// The client's HTTP headers plus the string members of its `connection_init` payload as
/// headers (browsers cannot set headers on a WebSocket: authentication travels in the
/// payload), either at its top level or under `headers`. The router's header rules then decide
/// which reach subgraphs.
pub fn headers_with_init_payload(http: &HeaderMap, payload: Option<&Value>) -> HeaderMap {
    let mut headers = http.clone();
    let Some(Value::Object(payload)) = payload else {
        return headers;
    };
    let mut add = |fields: &Map<String, Value>| {
        for (name, value) in fields {
            let Value::String(value) = value else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
    };
    add(payload);
    if let Some(Value::Object(nested)) = payload.get("headers") {
        add(nested);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_payload_strings_become_headers() {
        let mut http = HeaderMap::new();
        http.insert("x-request-id", HeaderValue::from_static("r1"));
        let payload = serde_json::json!({
            "Authorization": "Bearer t",
            "count": 3,
            "headers": { "x-user-id": "7" },
            "bad name": "x",
        });
        let headers = headers_with_init_payload(&http, Some(&payload));
        assert_eq!(headers["authorization"], "Bearer t");
        assert_eq!(headers["x-user-id"], "7");
        assert_eq!(headers["x-request-id"], "r1");
        assert!(headers.get("count").is_none());
    }

    #[test]
    fn the_request_for_plans_is_not_forwarded_in_the_init_payload() {
        let payload = serde_json::json!({
            "Tessera-Expose-Query-Plan": "true",
            "token": "t",
            "headers": { "tessera-expose-query-plan": "true", "x-user-id": "7" },
        });
        let forwarded: Value =
            serde_json::from_str(&forwarded_init_payload(&payload)).expect("JSON");
        assert_eq!(
            forwarded,
            serde_json::json!({ "token": "t", "headers": { "x-user-id": "7" } })
        );
        let plain = serde_json::json!({ "token": "t" });
        assert_eq!(forwarded_init_payload(&plain), plain.to_string());
    }

    #[test]
    fn the_plan_joins_an_events_extensions() {
        let plan = ShownPlan {
            json: serde_json::json!({ "kind": "QueryPlan" }),
            text: "QueryPlan {}".to_owned(),
        };
        let tagged = plan
            .add_to(br#"{"data":{"a":1},"extensions":{"eventId":"5-0"}}"#)
            .expect("an object");
        let tagged: Value = serde_json::from_slice(&tagged).expect("JSON");
        assert_eq!(
            tagged,
            serde_json::json!({ "data": { "a": 1 }, "extensions": {
                "eventId": "5-0", "queryPlan": { "kind": "QueryPlan" }, "queryPlanText": "QueryPlan {}",
            } })
        );
        let untagged = plan.add_to(br#"{"data":null}"#).expect("an object");
        let untagged: Value = serde_json::from_slice(&untagged).expect("JSON");
        assert_eq!(untagged["extensions"]["queryPlanText"], "QueryPlan {}");
        assert!(plan.add_to(b"[1]").is_none());
    }

    #[test]
    fn a_payload_that_is_not_a_request_is_refused() {
        assert!(request_of(&serde_json::json!([1])).is_err());
        assert!(request_of(&serde_json::json!({ "query": 5 })).is_err());
        let request = request_of(&serde_json::json!({ "query": "{ a }" })).expect("a request");
        assert_eq!(request.query.as_deref(), Some("{ a }"));
    }
}

/// What an HTTP streaming protocol (SSE, multipart) writes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A result (a GraphQL response as JSON text).
    Next(Arc<[u8]>),
    /// The operation ended with these errors (a JSON array).
    Fatal(Arc<[u8]>),
    /// The operation ended.
    Complete,
    /// Nothing happened for a while.
    KeepAlive,
}

/// The stream an HTTP protocol writes for `started`: its results, keep-alives every
/// `keep_alive`, and an end (also when the router shuts down, or with an error when the client
/// falls too far behind).
pub fn outgoing(
    hub: Arc<Hub>,
    started: Started,
    keep_alive: std::time::Duration,
) -> impl futures_util::Stream<Item = Outgoing> + Send + 'static {
    use futures_util::StreamExt;
    enum State {
        Once(Vec<Outgoing>),
        Streaming(Box<ClientSubscription>),
        Done,
    }
    let state = match started {
        Started::Single(bytes) => {
            State::Once(vec![Outgoing::Complete, Outgoing::Next(Arc::from(bytes))])
        }
        Started::Refused(errors) => {
            let body = serde_json::json!({ "errors": errors });
            State::Once(vec![
                Outgoing::Complete,
                Outgoing::Next(Arc::from(serde_json::to_vec(&body).unwrap_or_default())),
            ])
        }
        Started::Stream(subscription) => State::Streaming(Box::new(subscription)),
    };
    let shutdown = hub.shutdown_signal();
    futures_util::stream::unfold(state, move |state| {
        let hub = Arc::clone(&hub);
        let mut shutdown = shutdown.clone();
        async move {
            match state {
                State::Done => None,
                State::Once(mut items) => {
                    let item = items.pop()?;
                    let next = if items.is_empty() { State::Done } else { State::Once(items) };
                    Some((item, next))
                }
                State::Streaming(mut subscription) => {
                    let item = tokio::select! {
                        received = subscription.receiver.recv() => match received {
                            Ok(Delivery::Next(bytes)) => {
                                hub.metrics.events_delivered.inc();
                                let bytes = subscription.with_plan(&bytes).map_or(bytes, Arc::from);
                                return Some((Outgoing::Next(bytes), State::Streaming(subscription)));
                            }
                            Ok(Delivery::Error(errors)) => Outgoing::Fatal(errors),
                            Ok(Delivery::Complete) | Err(broadcast::error::RecvError::Closed) => Outgoing::Complete,
                            Err(broadcast::error::RecvError::Lagged(missed)) => {
                                let error = GraphQLError::new(
                                    format!("the client read too slowly and missed {missed} events"),
                                    codes::SUBSCRIPTION_LIMIT,
                                );
                                Outgoing::Fatal(Arc::from(serde_json::to_vec(&[error]).unwrap_or_default()))
                            }
                        },
                        () = tokio::time::sleep(keep_alive) => {
                            return Some((Outgoing::KeepAlive, State::Streaming(subscription)));
                        }
                        () = super::stopped(&mut shutdown) => Outgoing::Complete,
                    };
                    Some((item, State::Done))
                }
            }
        }
    })
    .boxed()
}
