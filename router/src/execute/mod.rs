//! The executor: runs a [`QueryPlan`] against the subgraphs and shapes the client's response.
//!
//! - [`fetch`]: the pooled subgraph HTTP client (with optional in-flight de-duplication).
//! - [`merge`]: the data tree: walking paths, representations, merging results.
//! - [`shape`]: the client's response, with spec null propagation.

pub mod fetch;
pub mod merge;
pub mod shape;

use std::sync::Arc;
use std::time::Duration;

use apollo_compiler::Name;
use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{Map, Value};

use crate::error::{GraphQLError, codes};
use crate::plan::{FetchNode, PlanNode, QueryPlan};
use crate::supergraph::Supergraph;
use fetch::{FetchError, SubgraphClient};
use merge::Step;

/// How the executor talks to subgraphs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Timeout of one subgraph request.
    pub subgraph_timeout: Duration,
    /// Share identical in-flight subgraph requests.
    pub dedupe: bool,
    /// Where subgraph requests are counted.
    pub metrics: crate::metrics::RouterMetrics,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            subgraph_timeout: Duration::from_secs(30),
            dedupe: false,
            metrics: crate::metrics::RouterMetrics::new(),
        }
    }
}

/// A response: data and errors together, as fan-out produces them.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// `data`, already written as JSON text (`null` when a null propagated to the root); `None`
    /// when execution never started.
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

/// One run's state: the data gathered so far and the errors.
struct Run<'a> {
    supergraph: &'a Supergraph,
    variables: &'a Map<String, Value>,
    data: Value,
    errors: Vec<GraphQLError>,
}

/// A prepared fetch: its request body and, for entity fetches, where results go.
struct Prepared {
    fetch: Arc<FetchNode>,
    body: Bytes,
    origins: Option<Vec<Vec<Vec<Step>>>>,
}

impl Executor {
    /// An executor with its own connection pool.
    pub fn new(config: ExecutorConfig) -> Self {
        Self {
            client: SubgraphClient::new(config.subgraph_timeout, config.dedupe),
            metrics: config.metrics,
        }
    }

    /// Runs `plan` with `variables`. `introspection` holds the already computed values of
    /// the root `__schema` / `__type` fields, if the operation asked for them.
    pub async fn execute(
        &self,
        supergraph: &Supergraph,
        plan: &QueryPlan,
        variables: &Map<String, Value>,
        introspection: Option<Map<String, Value>>,
    ) -> Response {
        let mut run = Run {
            supergraph,
            variables,
            data: Value::Object(Map::new()),
            errors: Vec::new(),
        };
        if let Some(root) = &plan.root {
            self.run_node(root, &mut run).await;
        }
        let empty = Map::new();
        let gathered = run.data.as_object().unwrap_or(&empty);
        let mut shaper = shape::Shaper {
            api: &supergraph.api,
            variables,
            errors: Vec::new(),
            known_error_paths: run.errors.iter().filter_map(|e| e.path.clone()).collect(),
            unpathed_errors: run.errors.iter().any(|e| e.path.is_none()),
        };
        let mut data = Vec::with_capacity(16 * 1024);
        shaper.write_root(
            &mut data,
            gathered,
            &plan.operation.root_type,
            &plan.operation.selection,
            introspection.as_ref(),
        );
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
        let responses = join_all(prepared.iter().map(|p| {
            let url = &run.supergraph.subgraph(p.fetch.graph).url;
            async move {
                let started = std::time::Instant::now();
                let response = self.client.post(url, p.body.clone()).await;
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
            let _ = serde_json::to_writer(&mut body, name.as_str());
            body.push(b':');
            let _ = serde_json::to_writer(&mut body, value);
        }
    }
    let mut origins = None;
    if let Some(entities) = &fetch.entities {
        let (representations, locations) = representations(entities, run)?;
        if !first {
            body.push(b',');
        }
        body.extend_from_slice(b"\"representations\":[");
        for (index, representation) in representations.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(representation);
        }
        body.push(b']');
        origins = Some(locations);
    }
    body.extend_from_slice(b"}}");
    Some(Prepared {
        fetch: fetch.clone(),
        body: Bytes::from(body),
        origins,
    })
}

/// The distinct representations (as JSON) of the objects an entity fetch completes, and for
/// each the locations of the objects behind it; `None` when there is no such object.
#[allow(clippy::type_complexity)]
fn representations(
    entities: &crate::plan::EntityFetch,
    run: &Run<'_>,
) -> Option<(indexmap::IndexSet<Vec<u8>>, Vec<Vec<Vec<Step>>>)> {
    let supergraph = run.supergraph;
    let possible = |runtime: &str, condition: &Name| {
        runtime == condition.as_str() || supergraph.possible_types(condition).contains(runtime)
    };
    let mut unique: indexmap::IndexSet<Vec<u8>> = indexmap::IndexSet::new();
    let mut locations: Vec<Vec<Vec<Step>>> = Vec::new();
    let mut scratch = Vec::with_capacity(128);
    for (location, object) in merge::objects_at(&run.data, &entities.path) {
        let typename = object
            .get("__typename")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !entities.type_filter.iter().any(|t| t == typename) {
            continue;
        }
        scratch.clear();
        if !merge::write_representation(
            &mut scratch,
            object,
            &entities.input,
            &possible,
            entities.rewrite_typename.as_ref(),
        ) {
            continue;
        }
        match unique.get_index_of(scratch.as_slice()) {
            Some(index) => locations[index].push(location),
            None => {
                unique.insert(scratch.clone());
                locations.push(vec![location]);
            }
        }
    }
    (!unique.is_empty()).then_some((unique, locations))
}

/// Merges one subgraph response into the run: data at the right places, errors at client
/// paths.
fn merge_response(run: &mut Run<'_>, prepared: Prepared, response: Result<Arc<Value>, FetchError>) {
    let service = prepared.fetch.service.clone();
    let response = match response {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(subgraph = service, error = %err, "subgraph fetch failed");
            let mut error = GraphQLError::new(
                format!("request to subgraph \"{service}\" failed: {err}"),
                codes::SUBGRAPH_FETCH_FAILED,
            )
            .with_extension("serviceName", service.clone());
            if let Some(origins) = &prepared.origins
                && let Some(first) = origins.first().and_then(|o| o.first())
            {
                error = error.with_path(first.iter().map(Step::to_json).collect());
            }
            run.errors.push(error);
            return;
        }
    };
    // Take the response apart without copying it (it is shared only when de-duplicated).
    let (mut data, errors) = match Arc::try_unwrap(response) {
        Ok(Value::Object(mut object)) => (
            object.remove("data").unwrap_or(Value::Null),
            object.remove("errors"),
        ),
        Ok(_) => (Value::Null, None),
        Err(shared) => (
            shared.get("data").cloned().unwrap_or(Value::Null),
            shared.get("errors").cloned(),
        ),
    };
    if !prepared.fetch.renames.is_empty() {
        match &mut data {
            Value::Object(object) if prepared.origins.is_some() => {
                if let Some(entities) = object.get_mut("_entities") {
                    merge::undo_aliases(entities, &prepared.fetch.renames);
                }
            }
            other => merge::undo_aliases(other, &prepared.fetch.renames),
        }
    }
    match &prepared.origins {
        None => merge::deep_merge(&mut run.data, data),
        Some(origins) => {
            let entities = match data {
                Value::Object(mut object) => object.remove("_entities").unwrap_or(Value::Null),
                _ => Value::Null,
            };
            if let Value::Array(entities) = entities {
                for (index, entity) in entities.into_iter().enumerate() {
                    let Some(locations) = origins.get(index) else {
                        break;
                    };
                    // The last object behind a representation takes the value itself.
                    let mut entity = Some(entity);
                    for (n, location) in locations.iter().enumerate() {
                        let value = if n + 1 == locations.len() {
                            entity.take()
                        } else {
                            entity.clone()
                        };
                        if let (Some(target), Some(value)) =
                            (merge::at_mut(&mut run.data, location), value)
                        {
                            merge::deep_merge(target, value);
                        }
                    }
                }
            }
        }
    }
    if let Some(Value::Array(errors)) = &errors {
        for error in errors {
            run.errors
                .push(subgraph_error(error, &service, prepared.origins.as_deref()));
        }
    }
}

/// A subgraph's error, with its path rewritten to the client's and the subgraph named.
fn subgraph_error(
    error: &Value,
    service: &str,
    origins: Option<&[Vec<Vec<Step>>]>,
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
    out.path = match (path, origins) {
        (Some(path), None) => Some(path.clone()),
        (Some(path), Some(origins)) => entity_error_path(path, origins),
        (None, _) => None,
    };
    out
}

/// `["_entities", i, ...rest]` → the path of the first object behind representation `i`,
/// then `rest`.
fn entity_error_path(path: &[Value], origins: &[Vec<Vec<Step>>]) -> Option<Vec<Value>> {
    if path.first().and_then(Value::as_str) != Some("_entities") {
        return None;
    }
    let index = usize::try_from(path.get(1)?.as_u64()?).ok()?;
    let origin = origins.get(index)?.first()?;
    let mut out: Vec<Value> = origin.iter().map(Step::to_json).collect();
    out.extend(path.iter().skip(2).cloned());
    Some(out)
}
