//! One distinct client operation being served: its upstream subscription, the completion of
//! each event, and the fan-out of the result.
//!
//! Clients whose subscriptions are identical (same operation, variables, forwarded headers and
//! `connection_init` payload) share one [`Group`]: ONE enrichment per event, whose bytes go to
//! every client on every protocol. Groups whose primary is identical share one upstream
//! subscription ([`super::Hub::upstream`]). When the supergraph changes, the group plans its
//! operation again once for all its clients: the same primary keeps its upstream (no gap); a
//! changed one subscribes anew before the old is dropped; one that no longer validates ends
//! with `SUBSCRIPTION_SCHEMA_RELOAD`.
//!
//! Events the subgraph tags with an id (`extensions.eventId`) keep it on the way to clients. A
//! group whose clients resume (`extensions.lastEventId`) subscribes upstream after that id. A
//! group with a rate limit (`extensions.maxEventsPerSecond`) conflates: between two deliveries
//! it keeps only the newest event, and completes just that one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use tokio::sync::broadcast;

use super::UpstreamFeed;
use super::upstream::{NextEvent, UpstreamEvent};
use super::{GroupKey, Hub};
use crate::engine::{Engine, PlannedOperation, RequestContext};
use crate::error::{GraphQLError, codes};
use crate::execute::Job;
use crate::plan::{FetchNode, PlanNode};
use crate::request::GraphQLRequest;

/// What a client of a group receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// One event, completed: a GraphQL response as JSON text, the same bytes for every client.
    Next(Arc<[u8]>),
    /// The subscription ended with these errors (a JSON array).
    Error(Arc<[u8]>),
    /// The subscription ended normally.
    Complete,
}

impl Delivery {
    /// An error delivery with one coded error.
    pub fn error(message: impl Into<String>, code: &str) -> Self {
        errors_delivery(&[GraphQLError::new(message, code)])
    }
}

/// An error delivery of `errors`.
pub fn errors_delivery(errors: &[GraphQLError]) -> Delivery {
    let text = serde_json::to_vec(errors).unwrap_or_else(|_| b"[]".to_vec());
    Delivery::Error(Arc::from(text))
}

/// A distinct client operation in service; dropping the last handle ends it.
pub struct Group {
    key: GroupKey,
    sender: broadcast::Sender<Delivery>,
    task: tokio::task::AbortHandle,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
        self.hub.forget_group(&self.key);
        self.hub.metrics.groups.dec();
    }
}

impl Group {
    /// A new receiver of this group's deliveries.
    pub fn receiver(&self) -> broadcast::Receiver<Delivery> {
        self.sender.subscribe()
    }

    /// Starts serving `planned` (a subscription of `request` planned on `engine`).
    pub(super) fn start(
        hub: &Arc<Hub>,
        key: GroupKey,
        run: GroupRun,
        capacity: usize,
    ) -> Arc<Group> {
        let (sender, _) = broadcast::channel(capacity.max(1));
        let task = tokio::spawn(run.serve(Arc::clone(hub), sender.clone()));
        hub.metrics.groups.inc();
        Arc::new(Group {
            key,
            sender,
            task: task.abort_handle(),
            hub: Arc::clone(hub),
        })
    }
}

/// What a group's task needs to (re)plan and run its operation.
pub(super) struct GroupRun {
    pub request: GraphQLRequest,
    pub client_headers: HeaderMap,
    pub init_payload: Option<String>,
    pub engine: Arc<Engine>,
    pub planned: PlannedOperation,
    pub stream: StreamOptions,
    /// For a resuming group: the live group of the same operation, which it hands its clients'
    /// stream over to once it has caught up.
    pub converge: Option<Arc<Group>>,
}

/// How a group's clients asked for their events (the request extensions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamOptions {
    /// Resume after this event id (`extensions.lastEventId`, or SSE's `Last-Event-ID`).
    pub last_event_id: Option<String>,
    /// At most this many events per second, the newest winning (`maxEventsPerSecond`).
    pub max_per_second: Option<u32>,
}

/// The request extension that limits a subscription's rate.
pub const MAX_EVENTS_PER_SECOND: &str = "maxEventsPerSecond";

impl StreamOptions {
    /// What `request`'s extensions ask for; a malformed value is an error message.
    pub fn of(request: &GraphQLRequest) -> Result<Self, String> {
        let Some(extensions) = &request.extensions else {
            return Ok(Self::default());
        };
        let last_event_id = match extensions.get(super::upstream::LAST_EVENT_ID) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) if !id.is_empty() && id.len() <= 128 => {
                Some(id.clone())
            }
            Some(_) => {
                return Err(format!(
                    "extensions.{} must be an event id the router gave (a string)",
                    super::upstream::LAST_EVENT_ID
                ));
            }
        };
        let max_per_second = match extensions.get(MAX_EVENTS_PER_SECOND) {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => match value.as_u64() {
                Some(n) if (1..=1000).contains(&n) => u32::try_from(n).ok(),
                _ => {
                    return Err(format!(
                        "extensions.{MAX_EVENTS_PER_SECOND} must be a whole number from 1 to 1000"
                    ));
                }
            },
        };
        Ok(Self {
            last_event_id,
            max_per_second,
        })
    }

    /// The least time between two deliveries.
    fn interval(&self) -> Option<Duration> {
        self.max_per_second
            .map(|n| Duration::from_secs(1) / n.max(1))
    }
}

/// The operation on one engine, attached to its upstream.
struct Attached {
    engine: Arc<Engine>,
    planned: PlannedOperation,
    upstream: UpstreamFeed,
    /// What identifies the upstream: connection key and subscribe payload (before any resume
    /// point is added).
    identity: (super::upstream::ConnectionKey, Bytes),
}

impl GroupRun {
    /// The same operation for live clients (no resume point, no rate limit).
    pub(super) fn live(&self) -> GroupRun {
        GroupRun {
            request: self.request.clone(),
            client_headers: self.client_headers.clone(),
            init_payload: self.init_payload.clone(),
            engine: Arc::clone(&self.engine),
            planned: self.planned.clone(),
            stream: StreamOptions::default(),
            converge: None,
        }
    }

    async fn serve(self, hub: Arc<Hub>, sender: broadcast::Sender<Delivery>) {
        let GroupRun {
            request,
            client_headers,
            init_payload,
            engine,
            planned,
            stream,
            converge,
        } = self;
        let mut live = converge.map(Catching::new);
        let mut changes = hub.live.changes();
        changes.mark_unchanged();
        // A resuming group follows its own position: after a re-plan onto a new upstream it
        // resumes after the last event it had, not the one its clients first named.
        let mut resume: Option<Arc<str>> = stream.last_event_id.as_deref().map(Arc::from);
        let Some(mut attached) = attach(
            &hub,
            engine,
            planned,
            init_payload.as_deref(),
            resume.as_deref(),
        ) else {
            let _ = sender.send(Delivery::error(
                "the subscription's plan has no subgraph subscription",
                codes::PLAN_FAILED,
            ));
            return;
        };
        // Conflation: the newest event not delivered yet, and when the next may go.
        let interval = stream.interval();
        let mut held: Option<NextEvent> = None;
        let mut next_at = tokio::time::Instant::now();
        let (from, newer) = loop {
            tokio::select! {
                received = Catching::recv(&mut live), if live.is_some() => {
                    let Some(catching) = live.as_mut() else { continue };
                    match catching.heard(received, resume.as_deref()) {
                        Heard::Keep => {}
                        Heard::CaughtUp(newer) => {
                            if let Some(catching) = live.take() {
                                break (catching, newer);
                            }
                        }
                        Heard::GiveUp => live = None,
                    }
                }
                event = attached.upstream.recv() => {
                    if let (Some(_), Some(UpstreamEvent::Next(NextEvent { id: Some(id), .. }))) = (&resume, &event) {
                        resume = Some(Arc::clone(id));
                    }
                    if let (Some(interval), Some(UpstreamEvent::Next(next))) = (interval, &event) {
                        let now = tokio::time::Instant::now();
                        if now < next_at || held.is_some() {
                            // One it replaces is received but never completed.
                            if held.replace(next.clone()).is_some() {
                                hub.metrics.events_received.inc();
                            }
                            continue;
                        }
                        next_at = now + interval;
                    } else if let Some(next) = held.take() {
                        // The subscription is ending: its newest event still goes first.
                        if !deliver(&hub, &attached, Some(UpstreamEvent::Next(next)), &sender).await {
                            return;
                        }
                    }
                    if !deliver(&hub, &attached, event, &sender).await {
                        return;
                    }
                    // Delivered up to where the live group has been heard: it takes over.
                    if let (Some(catching), Some(last)) = (live.as_mut(), resume.as_deref())
                        && let Some(newer) = catching.caught_up(last)
                        && let Some(catching) = live.take()
                    {
                        break (catching, newer);
                    }
                }
                () = tokio::time::sleep_until(next_at), if held.is_some() => {
                    next_at = tokio::time::Instant::now() + interval.unwrap_or_default();
                    let next = held.take();
                    if !deliver(&hub, &attached, next.map(UpstreamEvent::Next), &sender).await {
                        return;
                    }
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let engine = hub.live.engine();
                    match replan(&hub, &engine, &request, &client_headers, init_payload.as_deref(), resume.as_deref(), attached) {
                        Ok(next) => attached = next,
                        Err(errors) => {
                            let _ = sender.send(errors);
                            return;
                        }
                    }
                }
            }
        };
        // The live group's stream goes on from exactly after the last event delivered here:
        // this group's own upstream (and its completion of each event) are no longer needed.
        drop(attached);
        tracing::debug!("a resumed subscription caught up and joined the live one");
        for delivery in newer {
            let _ = sender.send(delivery);
        }
        from.relay(&sender).await;
    }
}

/// Events a live group kept in hand while a resuming group catches up to it, for the handover.
const CATCHING_UP_EVENTS: usize = 256;

/// A resuming group's view of the live group of its operation: what the live group delivered
/// since, a contiguous run (the oldest dropped first), to hand over at the first event both
/// have.
struct Catching {
    receiver: broadcast::Receiver<Delivery>,
    heard: std::collections::VecDeque<(String, Arc<[u8]>)>,
    _live: Arc<Group>,
}

/// What one delivery of the live group means for the handover.
enum Heard {
    /// Kept (or nothing to do yet).
    Keep,
    /// The live group delivered the last event the resuming group delivered: these (its later
    /// ones) and everything it delivers from now on are new to the resuming group's clients.
    CaughtUp(Vec<Delivery>),
    /// The live group cannot take over (it ended, or its events carry no ids).
    GiveUp,
}

impl Catching {
    fn new(live: Arc<Group>) -> Self {
        Self {
            receiver: live.sender.subscribe(),
            heard: std::collections::VecDeque::new(),
            _live: live,
        }
    }

    async fn recv(catching: &mut Option<Self>) -> Result<Delivery, broadcast::error::RecvError> {
        match catching {
            Some(catching) => catching.receiver.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Takes in one delivery of the live group; `last` is the resuming group's last event.
    fn heard(
        &mut self,
        received: Result<Delivery, broadcast::error::RecvError>,
        last: Option<&str>,
    ) -> Heard {
        match received {
            Ok(Delivery::Next(bytes)) => {
                let Some(id) = delivered_event_id(&bytes) else {
                    return Heard::GiveUp;
                };
                if last == Some(id) {
                    self.heard.clear();
                    return Heard::CaughtUp(Vec::new());
                }
                if self.heard.len() == CATCHING_UP_EVENTS {
                    self.heard.pop_front();
                }
                self.heard.push_back((id.to_owned(), bytes));
                Heard::Keep
            }
            // What it missed breaks the run: start a new one.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.heard.clear();
                Heard::Keep
            }
            Ok(Delivery::Error(_) | Delivery::Complete)
            | Err(broadcast::error::RecvError::Closed) => Heard::GiveUp,
        }
    }

    /// After the resuming group delivered `last`: the live group's later deliveries, when it
    /// had delivered `last` too.
    fn caught_up(&mut self, last: &str) -> Option<Vec<Delivery>> {
        let at = self.heard.iter().position(|(id, _)| id == last)?;
        let newer = self
            .heard
            .drain(..)
            .skip(at + 1)
            .map(|(_, bytes)| Delivery::Next(bytes))
            .collect();
        Some(newer)
    }

    /// Passes the live group's deliveries on to `sender` until the subscription ends.
    async fn relay(mut self, sender: &broadcast::Sender<Delivery>) {
        loop {
            let delivery = match self.receiver.recv().await {
                Ok(delivery) => delivery,
                Err(broadcast::error::RecvError::Lagged(missed)) => Delivery::error(
                    format!("the router fell behind and missed {missed} events"),
                    codes::SUBSCRIPTION_LIMIT,
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let last = !matches!(delivery, Delivery::Next(_));
            let _ = sender.send(delivery);
            if last {
                return;
            }
        }
    }
}

/// Subscribes upstream for `planned`'s primary.
fn attach(
    hub: &Arc<Hub>,
    engine: Arc<Engine>,
    planned: PlannedOperation,
    init_payload: Option<&str>,
    resume: Option<&str>,
) -> Option<Attached> {
    let Some(PlanNode::Subscription { primary, .. }) = &planned.plan.root else {
        return None;
    };
    let identity = upstream_identity(hub, &engine, &planned, primary, init_payload);
    let upstream = subscribe_upstream(hub, &identity, resume);
    Some(Attached {
        engine,
        planned,
        upstream,
        identity,
    })
}

/// Subscribes upstream for `identity`: shared, or after `resume` (then of its own: a group that
/// joined a replay late would miss what went before).
fn subscribe_upstream(
    hub: &Arc<Hub>,
    identity: &(super::upstream::ConnectionKey, Bytes),
    resume: Option<&str>,
) -> UpstreamFeed {
    match resume {
        Some(last) => hub.upstream(
            &identity.0,
            super::upstream::resume_after(&identity.1, last),
            true,
        ),
        None => hub.upstream(&identity.0, identity.1.clone(), false),
    }
}

/// The connection and subscribe payload of a primary (without a resume point, so that a
/// re-plan onto the same primary keeps its upstream).
fn upstream_identity(
    hub: &Hub,
    engine: &Engine,
    planned: &PlannedOperation,
    primary: &FetchNode,
    init_payload: Option<&str>,
) -> (super::upstream::ConnectionKey, Bytes) {
    let subgraph = engine.supergraph().subgraph(primary.graph);
    let url = hub.subscription_url(&subgraph.name, &subgraph.url);
    let variables: serde_json::Map<String, serde_json::Value> = primary
        .variables
        .iter()
        .filter_map(|name| {
            planned
                .variables
                .get(name.as_str())
                .map(|v| (name.to_string(), v.clone()))
        })
        .collect();
    let payload = serde_json::json!({ "query": primary.operation, "variables": variables });
    // A connection is shared by clients: it carries their common headers, not one client's
    // request id or trace context.
    let key = super::upstream::ConnectionKey {
        url,
        headers: planned.headers.get(primary.graph).identity(),
        init_payload: init_payload.map(str::to_owned),
    };
    (
        key,
        Bytes::from(serde_json::to_vec(&payload).unwrap_or_default()),
    )
}

/// Handles one upstream event; false when the subscription is over.
async fn deliver(
    hub: &Hub,
    attached: &Attached,
    event: Option<UpstreamEvent>,
    sender: &broadcast::Sender<Delivery>,
) -> bool {
    match event {
        Some(UpstreamEvent::Next(next)) => {
            hub.metrics.events_received.inc();
            let started = Instant::now();
            let bytes = complete_event(attached, next).await;
            hub.metrics
                .enrichment
                .observe(started.elapsed().as_secs_f64());
            let _ = sender.send(Delivery::Next(bytes));
            true
        }
        Some(UpstreamEvent::Error(errors)) => {
            let _ = sender.send(Delivery::Error(Arc::from(subgraph_errors(&errors))));
            false
        }
        Some(UpstreamEvent::Complete) => {
            let _ = sender.send(Delivery::Complete);
            false
        }
        Some(UpstreamEvent::Interrupted | UpstreamEvent::Resumed) => true,
        Some(UpstreamEvent::Failed(reason)) => {
            let _ = sender.send(Delivery::error(reason, codes::SUBGRAPH_SUBSCRIPTION_FAILED));
            false
        }
        None => {
            let _ = sender.send(Delivery::error(
                "the subgraph subscription ended without a reason",
                codes::SUBGRAPH_SUBSCRIPTION_FAILED,
            ));
            false
        }
    }
}

/// A subgraph's errors for a subscription, each with the subgraph's code kept.
fn subgraph_errors(errors: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(errors) {
        Ok(serde_json::Value::Array(items)) => serde_json::to_vec(&items).unwrap_or_default(),
        _ => serde_json::to_vec(&[GraphQLError::new(
            "the subgraph refused the subscription",
            codes::SUBGRAPH_SUBSCRIPTION_FAILED,
        )])
        .unwrap_or_default(),
    }
}

/// Completes one event with the rest of the plan and writes the client's response.
async fn complete_event(attached: &Attached, next: NextEvent) -> Arc<[u8]> {
    let planned = &attached.planned;
    let job = Job {
        supergraph: attached.engine.supergraph(),
        plan: &planned.plan,
        sizes: planned.sizes(),
        variables: &planned.variables,
        headers: &planned.headers,
    };
    let response = attached
        .engine
        .executor()
        .execute_event(job, next.payload)
        .await;
    let mut out = response
        .data
        .unwrap_or_else(|| crate::execute::DATA_MEMBER.to_vec());
    if out.len() == crate::execute::DATA_MEMBER.len() {
        out.extend_from_slice(b"null");
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        let _ = serde_json::to_writer(&mut out, &response.errors);
    }
    if let Some(id) = next.id {
        out.extend_from_slice(b",\"extensions\":{\"eventId\":");
        let _ = serde_json::to_writer(&mut out, &*id);
        out.push(b'}');
    }
    out.push(b'}');
    Arc::from(out)
}

/// What a delivery's closing `"extensions":{"eventId":…}}` (written by the group) names, read
/// from its end without parsing the rest; `None` without one, or for an id that needed
/// escaping.
pub fn delivered_event_id(delivery: &[u8]) -> Option<&str> {
    const TAG: &[u8] = b"\"extensions\":{\"eventId\":\"";
    let body = delivery.strip_suffix(b"\"}}")?;
    let tail = &body[body.len().saturating_sub(256)..];
    let start = tail.windows(TAG.len()).rposition(|window| window == TAG)? + TAG.len();
    let id = &tail[start..];
    if id.is_empty() || id.iter().any(|b| matches!(b, b'"' | b'\\' | b'\n' | b'\r')) {
        return None;
    }
    std::str::from_utf8(id).ok()
}

/// Plans the group's operation on the new `engine`: keeps the upstream when the primary is
/// unchanged, else subscribes anew (the old one goes once the new is in place).
fn replan(
    hub: &Arc<Hub>,
    engine: &Arc<Engine>,
    request: &GraphQLRequest,
    client_headers: &HeaderMap,
    init_payload: Option<&str>,
    resume: Option<&str>,
    attached: Attached,
) -> Result<Attached, Delivery> {
    let ctx = RequestContext::default();
    let planned = engine
        .prepare_operation(request, ctx, client_headers)
        .map_err(|errors| {
            let detail = errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            Delivery::error(
                format!("the supergraph changed and this subscription no longer applies: {detail}"),
                codes::SUBSCRIPTION_SCHEMA_RELOAD,
            )
        })?;
    let Some(PlanNode::Subscription { primary, .. }) = &planned.plan.root else {
        return Err(Delivery::error(
            "the supergraph changed and this operation is no longer a subscription",
            codes::SUBSCRIPTION_SCHEMA_RELOAD,
        ));
    };
    let identity = upstream_identity(hub, engine, &planned, primary, init_payload);
    if identity == attached.identity {
        tracing::debug!("supergraph reloaded; the subscription continues on its upstream");
        return Ok(Attached {
            engine: Arc::clone(engine),
            planned,
            upstream: attached.upstream,
            identity,
        });
    }
    tracing::info!("supergraph reloaded; the subscription's upstream operation changed");
    let upstream = subscribe_upstream(hub, &identity, resume);
    drop(attached);
    Ok(Attached {
        engine: Arc::clone(engine),
        planned,
        upstream,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_event_id_is_read_from_its_end() {
        let tagged = br#"{"data":{"a":"\"extensions\":{\"eventId\":\"x\"}}"},"extensions":{"eventId":"17-2"}}"#;
        assert_eq!(delivered_event_id(tagged), Some("17-2"));
        assert_eq!(delivered_event_id(br#"{"data":{"a":1}}"#), None);
        assert_eq!(
            delivered_event_id(br#"{"data":null,"extensions":{"eventId":"a\"b"}}"#),
            None
        );
    }

    #[test]
    fn stream_options_come_from_the_request_extensions_and_bad_ones_are_refused() {
        let request = |extensions: serde_json::Value| GraphQLRequest {
            query: Some("subscription { a }".to_owned()),
            operation_name: None,
            variables: None,
            extensions: extensions.as_object().cloned(),
        };
        let options = StreamOptions::of(&request(serde_json::json!({
            "lastEventId": "5-0",
            "maxEventsPerSecond": 2,
        })))
        .expect("valid");
        assert_eq!(options.last_event_id.as_deref(), Some("5-0"));
        assert_eq!(options.interval(), Some(Duration::from_millis(500)));
        assert_eq!(
            StreamOptions::of(&request(serde_json::json!({}))).expect("valid"),
            StreamOptions::default()
        );
        for bad in [
            serde_json::json!({ "lastEventId": 5 }),
            serde_json::json!({ "maxEventsPerSecond": 0 }),
            serde_json::json!({ "maxEventsPerSecond": 2.5 }),
            serde_json::json!({ "maxEventsPerSecond": "2" }),
        ] {
            assert!(StreamOptions::of(&request(bad)).is_err());
        }
    }
}
