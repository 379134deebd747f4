//! The executor: runs a [`QueryPlan`] against the subgraphs and shapes the client's response.
//!
//! - [`fetch`]: the pooled subgraph HTTP client (with optional in-flight de-duplication).
//! - [`store`]: the gathered data, in one arena per request, pointing into the subgraphs'
//!   response bytes.
//! - [`json`]: reads a subgraph response into the store.
//! - [`merge`]: walking plan paths, representations, and undoing aliases in that data.
//! - [`shape`]: the client's response, with spec null propagation.

pub mod fetch;
pub mod json;
pub mod merge;
pub mod shape;
pub mod store;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use apollo_compiler::Name;
use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{Map, Value};

use crate::error::{GraphQLError, codes};
use crate::headers::SubgraphHeaders;
use crate::plan::keys::{KeyId, Keys};
use crate::plan::{FetchNode, PlanNode, QueryPlan};
use crate::supergraph::Supergraph;
use fetch::{FetchError, Reply, SubgraphClient, SubgraphRequest, Transport};
use json::KeyPredictor;
pub use store::RunSizes;
use store::{ObjectId, Store, Value as Data};

/// How a response body starts when it has data.
pub const DATA_MEMBER: &[u8] = b"{\"data\":";

/// The default of [`ExecutorConfig::max_response_bytes`]: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How the executor talks to subgraphs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Timeout of one subgraph request.
    pub subgraph_timeout: Duration,
    /// Share identical in-flight subgraph requests.
    pub dedupe: bool,
    /// The largest subgraph response body read; a larger one is a fetch error.
    pub max_response_bytes: usize,
    /// Where subgraph requests are counted.
    pub metrics: crate::metrics::RouterMetrics,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            subgraph_timeout: Duration::from_secs(30),
            dedupe: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            metrics: crate::metrics::RouterMetrics::new(),
        }
    }
}

/// A response: data and errors together, as fan-out produces them.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The start of the response body: `{"data":` and the data as JSON text (`null` when a null
    /// propagated to the root), for the caller to finish with the other members and `}`;
    /// `None` when execution never started.
    pub data: Option<Vec<u8>>,
    /// Every error, with client paths.
    pub errors: Vec<GraphQLError>,
}

/// Runs plans; holds the pooled subgraph HTTP client.
#[derive(Debug, Clone)]
pub struct Executor {
    client: SubgraphClient,
    metrics: crate::metrics::RouterMetrics,
}

/// One run of a plan: the plan and what it reads besides the subgraphs' answers.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The supergraph the plan was made on.
    pub supergraph: &'a Supergraph,
    /// The plan.
    pub plan: &'a QueryPlan,
    /// How large earlier runs of this plan grew (a hint; [`RunSizes::default`] when unknown).
    pub sizes: &'a RunSizes,
    /// The coerced variables.
    pub variables: &'a Map<String, Value>,
    /// The headers each subgraph's requests carry.
    pub headers: &'a SubgraphHeaders,
}

/// One run's state: the data gathered so far and the errors.
struct Run<'a> {
    transport: &'a dyn Transport,
    supergraph: &'a Supergraph,
    variables: &'a Map<String, Value>,
    headers: &'a SubgraphHeaders,
    keys: &'a Keys,
    store: Store,
    predictor: KeyPredictor,
    errors: Vec<GraphQLError>,
}

/// A prepared fetch: its request body and, for entity fetches, where results go.
struct Prepared {
    fetch: Arc<FetchNode>,
    body: Bytes,
    targets: Option<Targets>,
}

/// Where an entity fetch's results go: every object it completes, the representation each
/// one sent, and its location (its steps into the data, see [`merge::for_each_object`]) for
/// error paths.
#[derive(Debug, Default)]
struct Targets {
    /// Each object completed.
    objects: Vec<ObjectId>,
    /// Each object's representation (index into `_entities`).
    representation: Vec<u32>,
    /// Every location's steps, one after another.
    steps: Vec<u32>,
    /// Where each location's steps end in `steps`.
    ends: Vec<usize>,
}

impl Targets {
    fn with_capacity(objects: usize) -> Self {
        Self {
            objects: Vec::with_capacity(objects),
            representation: Vec::with_capacity(objects),
            steps: Vec::with_capacity(objects * 4),
            ends: Vec::with_capacity(objects),
        }
    }

    fn push(&mut self, location: &[u32], object: ObjectId, representation: u32) {
        self.objects.push(object);
        self.representation.push(representation);
        self.steps.extend_from_slice(location);
        self.ends.push(self.steps.len());
    }

    fn location(&self, index: usize) -> &[u32] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.steps[start..self.ends[index]]
    }

    /// The first location that sent `representation`.
    fn first_of(&self, representation: u32) -> Option<&[u32]> {
        let index = self
            .representation
            .iter()
            .position(|&r| r == representation)?;
        Some(self.location(index))
    }
}

impl Executor {
    /// An executor with its own connection pool.
    pub fn new(config: ExecutorConfig) -> Self {
        Self {
            client: SubgraphClient::new(
                config.subgraph_timeout,
                config.dedupe,
                config.max_response_bytes,
            ),
            metrics: config.metrics,
        }
    }

    /// The pooled subgraph client (to look at its in-flight requests).
    pub fn client(&self) -> &SubgraphClient {
        &self.client
    }

    /// Runs `job`. `introspection` holds the already computed values of the root `__schema` /
    /// `__type` fields, if the operation asked for them.
    pub async fn execute(
        &self,
        job: Job<'_>,
        introspection: Option<Map<String, Value>>,
    ) -> Response {
        self.execute_with(&self.client, job, introspection).await
    }

    /// Completes one event of a subscription plan: `event` is what the subscription's primary
    /// yielded (a GraphQL response, as the subgraph sent it); the plan's rest runs on it like a
    /// query, and the client's response comes back shaped.
    pub async fn execute_event(&self, job: Job<'_>, event: Bytes) -> Response {
        self.execute_event_with(&self.client, job, event).await
    }

    /// [`execute_event`](Self::execute_event), sending subgraph requests through `transport`.
    pub async fn execute_event_with(
        &self,
        transport: &dyn Transport,
        job: Job<'_>,
        event: Bytes,
    ) -> Response {
        self.run_job(transport, job, None, Some(event)).await
    }

    /// [`execute`](Self::execute), sending subgraph requests through `transport`.
    pub async fn execute_with(
        &self,
        transport: &dyn Transport,
        job: Job<'_>,
        introspection: Option<Map<String, Value>>,
    ) -> Response {
        self.run_job(transport, job, introspection, None).await
    }

    async fn run_job(
        &self,
        transport: &dyn Transport,
        job: Job<'_>,
        introspection: Option<Map<String, Value>>,
        event: Option<Bytes>,
    ) -> Response {
        let Job {
            supergraph,
            plan,
            sizes,
            variables,
            headers,
        } = job;
        let mut run = Run {
            transport,
            supergraph,
            variables,
            headers,
            keys: &plan.keys,
            store: Store::with_sizes(sizes),
            predictor: KeyPredictor::new(&plan.keys),
            errors: Vec::new(),
        };
        if let (Some(event), Some(PlanNode::Subscription { primary, .. })) = (event, &plan.root) {
            let prepared = Prepared {
                fetch: primary.clone(),
                body: Bytes::new(),
                targets: None,
            };
            let reply = Reply {
                status: 200,
                body: event,
            };
            merge_response(&mut run, prepared, Ok(reply));
        }
        if let Some(root) = &plan.root {
            self.run_node(root, &mut run).await;
        }
        let mut shaper = shape::Shaper {
            api: &supergraph.api,
            store: &run.store,
            keys: &plan.keys,
            variables,
            errors: Vec::new(),
            known_error_paths: run.errors.iter().filter_map(|e| e.path.clone()).collect(),
            unpathed_errors: run.errors.iter().any(|e| e.path.is_none()),
        };
        // The client's data is usually about as large as what the subgraphs sent.
        let mut data = Vec::with_capacity(run.store.bytes_read() + 1024);
        data.extend_from_slice(DATA_MEMBER);
        shaper.write_root(
            &mut data,
            Store::ROOT,
            &plan.operation.root_type,
            &plan.operation.selection,
            introspection.as_ref(),
        );
        run.store.record_sizes(sizes);
        let mut errors = run.errors;
        errors.extend(shaper.errors);
        Response {
            data: Some(data),
            errors,
        }
    }

    fn run_node<'a>(
        &'a self,
        node: &'a PlanNode,
        run: &'a mut Run<'_>,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            match node {
                PlanNode::Fetch(fetch) => self.run_fetches(std::slice::from_ref(fetch), run).await,
                PlanNode::Sequence(nodes) => {
                    for child in nodes {
                        self.run_node(child, run).await;
                    }
                }
                PlanNode::Parallel(nodes) => {
                    let mut fetches = Vec::new();
                    let mut others = Vec::new();
                    for child in nodes {
                        match child {
                            PlanNode::Fetch(fetch) => fetches.push(fetch.clone()),
                            PlanNode::Condition { condition, node }
                                if condition.holds(run.variables) =>
                            {
                                match &**node {
                                    PlanNode::Fetch(fetch) => fetches.push(fetch.clone()),
                                    other => others.push(other),
                                }
                            }
                            PlanNode::Condition { .. } => {}
                            other => others.push(other),
                        }
                    }
                    self.run_fetches(&fetches, run).await;
                    for other in others {
                        self.run_node(other, run).await;
                    }
                }
                PlanNode::Condition { condition, node } => {
                    if condition.holds(run.variables) {
                        self.run_node(node, run).await;
                    }
                }
                // The primary's answer is an event, merged before (see `execute_event`).
                PlanNode::Subscription { rest, .. } => {
                    if let Some(rest) = rest {
                        self.run_node(rest, run).await;
                    }
                }
            }
        })
    }

    /// Runs fetches at the same time: prepares every request from the data so far, sends them
    /// together, then merges each response in plan order.
    async fn run_fetches(&self, fetches: &[Arc<FetchNode>], run: &mut Run<'_>) {
        let prepared: Vec<Prepared> = fetches
            .iter()
            .filter_map(|fetch| prepare(fetch, run))
            .collect();
        let transport = run.transport;
        let responses = join_all(prepared.iter().map(|p| {
            let request = SubgraphRequest {
                url: &run.supergraph.subgraph(p.fetch.graph).url,
                headers: run.headers.get(p.fetch.graph),
                body: p.body.clone(),
                shareable: p.fetch.shareable,
            };
            async move {
                let started = std::time::Instant::now();
                let response = transport.send(request).await;
                self.metrics.observe_subgraph(
                    &p.fetch.service,
                    response.is_ok(),
                    started.elapsed(),
                );
                response
            }
        }))
        .await;
        for (prepared, response) in prepared.into_iter().zip(responses) {
            merge_response(run, prepared, response);
        }
    }
}

/// Builds the request of `fetch`; `None` when an entity fetch has no object to complete.
fn prepare(fetch: &Arc<FetchNode>, run: &Run<'_>) -> Option<Prepared> {
    // The request body is written directly: `{"query":…,"variables":{…}}`.
    let mut body = Vec::with_capacity(fetch.operation.len() + 256);
    body.extend_from_slice(b"{\"query\":");
    let _ = serde_json::to_writer(&mut body, &fetch.operation);
    body.extend_from_slice(b",\"variables\":{");
    let mut first = true;
    for name in &fetch.variables {
        if let Some(value) = run.variables.get(name.as_str()) {
            if !first {
                body.push(b',');
            }
            first = false;
            crate::jsontext::write_name(&mut body, name.as_str());
            body.push(b':');
            let _ = serde_json::to_writer(&mut body, value);
        }
    }
    let mut targets = None;
    if let Some(entities) = &fetch.entities {
        if !first {
            body.push(b',');
        }
        body.extend_from_slice(b"\"representations\":[");
        targets = Some(write_representations(&mut body, entities, run)?);
        body.push(b']');
    }
    body.extend_from_slice(b"}}");
    Some(Prepared {
        fetch: fetch.clone(),
        body: Bytes::from(body),
        targets,
    })
}

/// Writes the distinct representations of the objects an entity fetch completes into `body`
/// (comma-separated) and returns where each object is; `None` when there is no such object.
fn write_representations(
    body: &mut Vec<u8>,
    entities: &crate::plan::EntityFetch,
    run: &Run<'_>,
) -> Option<Targets> {
    let supergraph = run.supergraph;
    let possible =
        |runtime: &str, condition: &Name| supergraph.matches_fragment(runtime, condition);
    let store = &run.store;
    let writer = merge::RepresentationWriter {
        store,
        possible: &possible,
    };
    let hasher = foldhash::fast::FixedState::default();
    // Representations written so far (byte ranges of `body`), found again by their hash.
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(128);
    let mut seen: hashbrown::HashTable<u32> = hashbrown::HashTable::with_capacity(128);
    let mut targets = Targets::with_capacity(128);
    let mut steps = Vec::with_capacity(8);
    let path = merge::path_keys(run.keys, &entities.path);
    merge::for_each_object(
        store,
        Data::Object(Store::ROOT),
        &path,
        &mut steps,
        &mut |location, object| {
            // The object's `__typename`, as the type of the filter it matches.
            let Some(matched) = store.get(object, KeyId::TYPENAME).and_then(|t| {
                entities
                    .type_filter
                    .iter()
                    .position(|name| store.is_str(t, name))
            }) else {
                return;
            };
            let start = body.len();
            if !ranges.is_empty() {
                body.push(b',');
            }
            let from = body.len();
            let written = match entities.representations.get(matched) {
                Some(Some(representation)) => writer.fill(body, object, representation),
                _ => writer.write(
                    body,
                    object,
                    &entities.type_filter[matched],
                    &entities.input,
                    entities.rewrite_typename.as_ref(),
                ),
            };
            if !written {
                body.truncate(start);
                return;
            }
            let written = &body[from..];
            let hash = hasher.hash_one(written);
            let found = seen
                .find(hash, |&i| {
                    let (s, e) = ranges[i as usize];
                    &body[s..e] == written
                })
                .copied();
            let index = match found {
                Some(index) => {
                    body.truncate(start);
                    index
                }
                None => {
                    let index = ranges.len() as u32;
                    ranges.push((from, body.len()));
                    seen.insert_unique(hash, index, |&i| {
                        let (s, e) = ranges[i as usize];
                        hasher.hash_one(&body[s..e])
                    });
                    index
                }
            };
            targets.push(location, object, index);
        },
    );
    (!ranges.is_empty()).then_some(targets)
}

/// Reads a subgraph's reply as a GraphQL response: `data` into the run's store, `errors` as
/// JSON. Anything that is not a GraphQL response (whatever the status) is a fetch error.
fn read_reply(
    run: &mut Run<'_>,
    reply: Result<Reply, FetchError>,
) -> Result<(Data, Option<Value>), FetchError> {
    let reply = reply?;
    let success = (200..300).contains(&reply.status);
    match json::read_response(&mut run.store, run.keys, &mut run.predictor, reply.body) {
        Ok(parsed) if parsed.data.is_some() || parsed.errors.is_some() => {
            Ok((parsed.data.unwrap_or(Data::Null), parsed.errors))
        }
        Ok(_) | Err(_) if !success => Err(FetchError::Status(reply.status)),
        Ok(_) => Err(FetchError::InvalidBody("not a GraphQL response".into())),
        Err(err) => Err(FetchError::InvalidBody(err.to_string())),
    }
}

/// Merges one subgraph response into the run: data at the right places, errors at client
/// paths.
fn merge_response(run: &mut Run<'_>, prepared: Prepared, reply: Result<Reply, FetchError>) {
    let service = prepared.fetch.service.clone();
    let (data, errors) = match read_reply(run, reply) {
        Ok(read) => read,
        Err(err) => {
            tracing::warn!(subgraph = service, error = %err, "subgraph fetch failed");
            let mut error = GraphQLError::new(
                format!("request to subgraph \"{service}\" failed: {err}"),
                codes::SUBGRAPH_FETCH_FAILED,
            )
            .with_extension("serviceName", service.clone());
            if let Some(targets) = &prepared.targets
                && !targets.ends.is_empty()
            {
                error = error.with_path(client_path(run, targets.location(0)));
            }
            run.errors.push(error);
            return;
        }
    };
    // For an entity fetch, the results; for a root fetch, the data object.
    let entities = match (&prepared.targets, data) {
        (Some(_), Data::Object(object)) => run.store.get(object, KeyId::ENTITIES),
        _ => None,
    };
    if !prepared.fetch.renames.is_empty() {
        let renamed = if prepared.targets.is_some() {
            entities
        } else {
            Some(data)
        };
        if let Some(value) = renamed {
            merge::undo_aliases(&mut run.store, value, &prepared.fetch.renames);
        }
    }
    match &prepared.targets {
        None => {
            if let Data::Object(object) = data {
                run.store.merge_object(Store::ROOT, object);
            }
        }
        Some(targets) => {
            if let Some(Data::List(list)) = entities {
                run.store.reserve_merges(targets.objects.len());
                for (index, &representation) in targets.representation.iter().enumerate() {
                    let entity = run.store.items(list).get(representation as usize).copied();
                    // A null (or a non-object) completes nothing.
                    if let Some(Data::Object(result)) = entity {
                        run.store.merge_object(targets.objects[index], result);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(errors)) = &errors {
        for error in errors {
            let error = subgraph_error(run, error, &service, prepared.targets.as_ref());
            run.errors.push(error);
        }
    }
}

/// A location in the run's data as a client path.
fn client_path(run: &Run<'_>, location: &[u32]) -> Vec<Value> {
    merge::path_json(&run.store, run.keys, Data::Object(Store::ROOT), location)
}

/// A subgraph's error, with its path rewritten to the client's and the subgraph named.
fn subgraph_error(
    run: &Run<'_>,
    error: &Value,
    service: &str,
    targets: Option<&Targets>,
) -> GraphQLError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("subgraph error")
        .to_owned();
    let mut out = GraphQLError::new(message, "DOWNSTREAM_SERVICE_ERROR");
    if let Some(Value::Object(extensions)) = error.get("extensions") {
        for (key, value) in extensions {
            out.extensions.insert(key.clone(), value.clone());
        }
    }
    out.extensions
        .insert("serviceName".into(), Value::String(service.to_owned()));
    let path = error.get("path").and_then(Value::as_array);
    out.path = match (path, targets) {
        (Some(path), None) => Some(path.clone()),
        (Some(path), Some(targets)) => entity_error_path(run, path, targets),
        (None, _) => None,
    };
    out
}

/// `["_entities", i, ...rest]` → the path of the first object behind representation `i`,
/// then `rest`.
fn entity_error_path(run: &Run<'_>, path: &[Value], targets: &Targets) -> Option<Vec<Value>> {
    if path.first().and_then(Value::as_str) != Some("_entities") {
        return None;
    }
    let index = u32::try_from(path.get(1)?.as_u64()?).ok()?;
    let location = targets.first_of(index)?;
    let mut out = client_path(run, location);
    out.extend(path.iter().skip(2).cloned());
    Some(out)
}
