//! The request pipeline: a [`GraphQLRequest`] in, an HTTP status and a GraphQL response body
//! out. It ties [`request`](crate::request), [`plan`](crate::plan) and
//! [`execute`](crate::execute) together and caches validated documents with their plans.
//!
//! Steps: query present → parse, limits, validate (cached) → select the operation → refuse
//! mutations over GET and subscriptions → coerce variables → introspection → plan (cached) →
//! execute.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use apollo_compiler::collections::HashMap;
use apollo_compiler::executable::{Operation, OperationType};
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};
use axum::http::{HeaderMap, StatusCode};
use lru::LruCache;
use serde_json::{Map, Value};

use crate::error::{GraphQLError, codes};
use crate::execute::{Executor, ExecutorConfig, Job, RunSizes};
use crate::headers::{HeaderPolicy, SubgraphHeaders};
use crate::plan::{self, QueryPlan};
use crate::request::{self, GraphQLRequest, Limits};
use crate::supergraph::Supergraph;

/// How the engine treats requests.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Size and shape limits on requests.
    pub limits: Limits,
    /// How subgraphs are called.
    pub executor: ExecutorConfig,
    /// How many (query, operation name) pairs keep their validated document and plan; 0 turns
    /// the cache off.
    pub plan_cache_size: usize,
    /// Whether `__schema` / `__type` are answered (they are refused when off).
    pub introspection: bool,
    /// Which client headers reach which subgraph.
    pub headers: HeaderPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            executor: ExecutorConfig::default(),
            plan_cache_size: 1024,
            introspection: true,
            headers: HeaderPolicy::default(),
        }
    }
}

/// The media type of the response body, negotiated from the request's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMediaType {
    /// `application/json`: the legacy type; request errors keep status 200.
    #[default]
    Json,
    /// `application/graphql-response+json`: request errors get status 400.
    GraphQLResponseJson,
}

impl ResponseMediaType {
    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphQLResponseJson => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// The header that asks for the query plan in `extensions`.
pub const EXPOSE_QUERY_PLAN_HEADER: &str = "tessera-expose-query-plan";

/// Whether a client asked to see its operation's plan ([`EXPOSE_QUERY_PLAN_HEADER`]: `true`).
pub fn expose_plan(headers: &HeaderMap) -> bool {
    headers
        .get(EXPOSE_QUERY_PLAN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// What the transport knows about a request that matters to the pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext {
    /// The request came as GET: only queries may run.
    pub is_get: bool,
    /// Add the query plan to `extensions` (header `tessera-expose-query-plan: true`).
    pub expose_plan: bool,
    /// The negotiated response media type; it decides the status of request errors.
    pub media_type: ResponseMediaType,
    /// The transport can carry a stream of responses (WebSocket, SSE, multipart): a
    /// subscription may be prepared (see [`Engine::prepare_subscription`]).
    pub streaming: bool,
}

/// A response ready for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The GraphQL response but `data`: `errors`, `extensions`.
    pub body: Value,
    /// The start of the body, `{"data":` and the data as JSON text, written while shaping
    /// (absent on request errors).
    pub data: Option<Vec<u8>>,
}

/// Why a request failed before execution; decides the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// Not a GraphQL request at all (no query, unreadable body): 400 for any media type.
    Malformed,
    /// A mutation or subscription over GET: 405.
    MethodNotAllowed,
    /// A well-formed request the schema or limits refuse: 400 for
    /// `application/graphql-response+json`, 200 for `application/json`.
    Request,
    /// The router's own failure (planning): 500 for `application/graphql-response+json`, 200
    /// for `application/json` (which keeps 200 for every well-formed request).
    Internal,
}

impl RequestFailure {
    /// The status for this failure under `media_type` (GraphQL over HTTP, §"Status codes").
    pub fn status(self, media_type: ResponseMediaType) -> StatusCode {
        match (self, media_type) {
            (Self::Malformed, _) => StatusCode::BAD_REQUEST,
            (Self::MethodNotAllowed, _) => StatusCode::METHOD_NOT_ALLOWED,
            (Self::Request | Self::Internal, ResponseMediaType::Json) => StatusCode::OK,
            (Self::Request, ResponseMediaType::GraphQLResponseJson) => StatusCode::BAD_REQUEST,
            (Self::Internal, ResponseMediaType::GraphQLResponseJson) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl EngineResponse {
    /// A response without `data`: the request failed before execution.
    pub fn failure(
        failure: RequestFailure,
        media_type: ResponseMediaType,
        errors: Vec<GraphQLError>,
    ) -> Self {
        let mut body = Map::new();
        body.insert("errors".to_owned(), errors_json(errors));
        Self {
            status: failure.status(media_type),
            body: Value::Object(body),
            data: None,
        }
    }

    /// The response as JSON bytes: `data` first (as written while shaping), then the rest.
    pub fn into_bytes(self) -> Vec<u8> {
        let Some(mut out) = self.data else {
            return serde_json::to_vec(&self.body).unwrap_or_default();
        };
        if let Value::Object(rest) = &self.body {
            for (key, value) in rest {
                out.push(b',');
                let _ = serde_json::to_writer(&mut out, key);
                out.push(b':');
                let _ = serde_json::to_writer(&mut out, value);
            }
        }
        out.push(b'}');
        out
    }

    /// The whole response as a JSON value (parses [`Self::into_bytes`]; for tests and tools).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.clone().into_bytes()).unwrap_or(Value::Null)
    }
}

fn errors_json(errors: Vec<GraphQLError>) -> Value {
    serde_json::to_value(errors).unwrap_or_else(|err| {
        // GraphQLError holds only strings, numbers and JSON values: serializing cannot fail.
        tracing::error!(error = %err, "could not serialize GraphQL errors");
        Value::Array(Vec::new())
    })
}

/// A validated document and, once planned, its plan. Shared by every request with the same
/// query text and operation name.
struct Prepared {
    document: Valid<ExecutableDocument>,
    /// Planned on first use, after the checks that may refuse the request without a plan.
    plan: OnceLock<Result<Arc<QueryPlan>, String>>,
    /// How large the executor's data grew when it last ran the plan.
    sizes: RunSizes,
}

type CacheKey = (String, Option<String>);

/// A request validated, its variables coerced and its operation planned.
struct Ready {
    prepared: Arc<Prepared>,
    plan: Arc<QueryPlan>,
    variables: Map<String, Value>,
    introspection: Option<request::Introspection>,
    kind: OperationType,
}

/// An operation ready to run on a streaming transport: its plan, coerced variables and the
/// headers its subgraph requests carry.
#[derive(Clone)]
pub struct PlannedOperation {
    prepared: Arc<Prepared>,
    /// The plan (for a subscription, a [`crate::plan::PlanNode::Subscription`] at its root).
    pub plan: Arc<QueryPlan>,
    /// The coerced variables.
    pub variables: Map<String, Value>,
    /// The headers the rules give each subgraph for this client.
    pub headers: SubgraphHeaders,
    /// Query, mutation or subscription.
    pub kind: OperationType,
}

impl PlannedOperation {
    /// How large the executor's data grew when it last ran this plan.
    pub fn sizes(&self) -> &RunSizes {
        &self.prepared.sizes
    }
}

impl std::fmt::Debug for PlannedOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedOperation")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The request pipeline over one supergraph.
pub struct Engine {
    supergraph: Arc<Supergraph>,
    implementers: HashMap<Name, Implementers>,
    executor: Executor,
    config: EngineConfig,
    /// Validated documents and plans by (query text, operation name). Failures are not cached,
    /// so the cache holds only queries that validate.
    cache: Option<Mutex<LruCache<CacheKey, Arc<Prepared>>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("subgraphs", &self.supergraph.subgraphs.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine serving `supergraph`.
    pub fn new(supergraph: impl Into<Arc<Supergraph>>, config: EngineConfig) -> Self {
        let supergraph = supergraph.into();
        let implementers = supergraph.api.implementers_map();
        let cache =
            NonZeroUsize::new(config.plan_cache_size).map(|size| Mutex::new(LruCache::new(size)));
        Self {
            implementers,
            executor: Executor::new(config.executor.clone()),
            supergraph,
            config,
            cache,
        }
    }

    /// The supergraph served.
    pub fn supergraph(&self) -> &Supergraph {
        &self.supergraph
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The plan of `query`'s operation `operation_name`, through the plan cache (validated and
    /// planned on first use, then shared).
    pub fn plan_for(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<QueryPlan>, Vec<GraphQLError>> {
        let prepared = self.prepare(query, operation_name)?;
        self.plan_of(&prepared, operation_name)
            .map_err(|(_, errors)| errors)
    }

    /// Runs one request through the whole pipeline (without client headers).
    pub async fn handle(&self, request: GraphQLRequest, ctx: RequestContext) -> EngineResponse {
        self.handle_with_headers(request, ctx, &HeaderMap::new())
            .await
    }

    /// Runs one request through the whole pipeline; `headers` are the client's, which the
    /// header rules pass on to subgraphs.
    pub async fn handle_with_headers(
        &self,
        request: GraphQLRequest,
        ctx: RequestContext,
        headers: &HeaderMap,
    ) -> EngineResponse {
        match self.run(request, ctx, headers).await {
            Ok(response) => response,
            Err((failure, errors)) => EngineResponse::failure(failure, ctx.media_type, errors),
        }
    }

    /// The headers each subgraph gets for a client request with `client` headers.
    pub fn subgraph_headers(&self, client: &HeaderMap) -> SubgraphHeaders {
        self.config.headers.for_request(
            self.supergraph.subgraphs.iter().map(|s| s.name.as_str()),
            client,
        )
    }

    /// The executor.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Validates, plans and prepares `request` up to execution.
    fn ready(
        &self,
        request: &GraphQLRequest,
        ctx: RequestContext,
    ) -> Result<Ready, (RequestFailure, Vec<GraphQLError>)> {
        let query = match request.query.as_deref() {
            Some(query) if !query.trim().is_empty() => query,
            _ => return Err(missing_query(request)),
        };
        // Some clients send `"operationName": ""` for "no name".
        let operation_name = request.operation_name.as_deref().filter(|n| !n.is_empty());
        let prepared = self
            .prepare(query, operation_name)
            .map_err(|errors| (RequestFailure::Request, errors))?;
        let document = &prepared.document;
        let operation = request::select_operation(document, operation_name)
            .map_err(|e| (RequestFailure::Request, vec![e]))?;
        self.check_operation(operation, ctx)?;
        let api = &self.supergraph.api;
        let variables =
            request::coerce_variables(api, document, operation, request.variables.as_ref())
                .map_err(|e| (RequestFailure::Request, vec![e]))?;
        let introspection = self.introspection(document, operation, &variables)?;
        let plan = self.plan_of(&prepared, operation_name)?;
        let kind = operation.operation_type;
        Ok(Ready {
            prepared,
            plan,
            variables,
            introspection,
            kind,
        })
    }

    /// Validates and plans a subscription (or any operation, for a streaming transport that
    /// also carries queries and mutations): the subscription stage runs it.
    pub fn prepare_operation(
        &self,
        request: &GraphQLRequest,
        ctx: RequestContext,
        client_headers: &HeaderMap,
    ) -> Result<PlannedOperation, Vec<GraphQLError>> {
        let ctx = RequestContext {
            streaming: true,
            ..ctx
        };
        let ready = self.ready(request, ctx).map_err(|(_, errors)| errors)?;
        Ok(PlannedOperation {
            headers: self.subgraph_headers(client_headers),
            prepared: ready.prepared,
            plan: ready.plan,
            variables: ready.variables,
            kind: ready.kind,
        })
    }

    async fn run(
        &self,
        request: GraphQLRequest,
        ctx: RequestContext,
        client_headers: &HeaderMap,
    ) -> Result<EngineResponse, (RequestFailure, Vec<GraphQLError>)> {
        let Ready {
            prepared,
            plan,
            variables,
            introspection,
            ..
        } = self.ready(&request, ctx)?;

        let (introspection_data, mut early_errors) = match introspection {
            Some(result) => (Some(result.data), result.errors),
            None => (None, Vec::new()),
        };
        let headers = if plan.root.is_some() {
            self.subgraph_headers(client_headers)
        } else {
            SubgraphHeaders::default()
        };
        let job = Job {
            supergraph: &self.supergraph,
            plan: &plan,
            sizes: &prepared.sizes,
            variables: &variables,
            headers: &headers,
        };
        let response = self.executor.execute(job, introspection_data).await;
        early_errors.extend(response.errors);

        let mut body = Map::new();
        if !early_errors.is_empty() {
            body.insert("errors".to_owned(), errors_json(early_errors));
        }
        if ctx.expose_plan {
            let mut extensions = Map::new();
            extensions.insert("queryPlan".to_owned(), plan.to_json());
            extensions.insert("queryPlanText".to_owned(), Value::String(plan.to_string()));
            body.insert("extensions".to_owned(), Value::Object(extensions));
        }
        let status = if response.data.is_some() {
            StatusCode::OK
        } else {
            // Execution produced neither data nor a reason: the router's own failure.
            RequestFailure::Internal.status(ctx.media_type)
        };
        Ok(EngineResponse {
            status,
            body: Value::Object(body),
            data: response.data,
        })
    }

    /// The validated document for `query`, from the cache or freshly validated.
    fn prepare(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<Prepared>, Vec<GraphQLError>> {
        let key = (query.to_owned(), operation_name.map(str::to_owned));
        if let Some(cache) = &self.cache
            && let Some(hit) = lock(cache).get(&key)
        {
            self.config.executor.metrics.observe_plan_cache(true);
            return Ok(Arc::clone(hit));
        }
        self.config.executor.metrics.observe_plan_cache(false);
        let document =
            request::parse_and_validate(&self.supergraph.api, query, &self.config.limits)?;
        let prepared = Arc::new(Prepared {
            document,
            plan: OnceLock::new(),
            sizes: RunSizes::default(),
        });
        if let Some(cache) = &self.cache {
            lock(cache).put(key, Arc::clone(&prepared));
        }
        Ok(prepared)
    }

    /// Refuses what this transport or router cannot run.
    fn check_operation(
        &self,
        operation: &Operation,
        ctx: RequestContext,
    ) -> Result<(), (RequestFailure, Vec<GraphQLError>)> {
        if ctx.is_get && operation.operation_type != OperationType::Query {
            return Err((
                RequestFailure::MethodNotAllowed,
                vec![GraphQLError::new(
                    format!(
                        "a {} cannot be sent with GET; use POST",
                        operation.operation_type
                    ),
                    codes::METHOD_NOT_ALLOWED,
                )],
            ));
        }
        if operation.operation_type == OperationType::Subscription && !ctx.streaming {
            return Err((
                RequestFailure::Request,
                vec![GraphQLError::new(
                    "a subscription needs a streaming transport: a WebSocket (graphql-transport-ws \
                     or graphql-ws), Server-Sent Events (Accept: text/event-stream) or multipart \
                     (Accept: multipart/mixed;subscriptionSpec=1.0)",
                    codes::SUBSCRIPTIONS_NOT_SUPPORTED,
                )],
            ));
        }
        Ok(())
    }

    fn introspection(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Operation,
        variables: &Map<String, Value>,
    ) -> Result<Option<request::Introspection>, (RequestFailure, Vec<GraphQLError>)> {
        if !request::has_schema_introspection(document, operation) {
            return Ok(None);
        }
        if !self.config.introspection {
            return Err((
                RequestFailure::Request,
                vec![GraphQLError::new(
                    "introspection is disabled on this router",
                    codes::INTROSPECTION_DISABLED,
                )],
            ));
        }
        request::introspect(
            &self.supergraph.api,
            &self.implementers,
            document,
            operation,
            variables,
        )
        .map(Some)
        .map_err(|e| {
            let failure = if e.code() == Some(codes::INTERNAL) {
                RequestFailure::Internal
            } else {
                RequestFailure::Request
            };
            (failure, vec![e])
        })
    }

    /// The plan of the prepared document's operation, planned once per cache entry.
    fn plan_of(
        &self,
        prepared: &Prepared,
        operation_name: Option<&str>,
    ) -> Result<Arc<QueryPlan>, (RequestFailure, Vec<GraphQLError>)> {
        let planned = prepared.plan.get_or_init(|| {
            plan::plan(&self.supergraph, &prepared.document, operation_name)
                .map(Arc::new)
                .map_err(|err| err.to_string())
        });
        planned.clone().map_err(|message| {
            tracing::warn!(error = %message, "query planning failed");
            (
                RequestFailure::Internal,
                vec![GraphQLError::new(
                    format!("the query could not be planned: {message}"),
                    codes::PLAN_FAILED,
                )],
            )
        })
    }
}

/// Locks the cache; a panic while holding the lock leaves only an LRU list behind, which is
/// still usable, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn missing_query(request: &GraphQLRequest) -> (RequestFailure, Vec<GraphQLError>) {
    let persisted = request
        .extensions
        .as_ref()
        .is_some_and(|e| e.contains_key("persistedQuery"));
    if persisted {
        return (
            RequestFailure::Request,
            vec![GraphQLError::new(
                "persisted queries are not supported; send the query text",
                codes::PERSISTED_QUERY_NOT_SUPPORTED,
            )],
        );
    }
    (
        RequestFailure::Malformed,
        vec![GraphQLError::new(
            "the request has no query",
            codes::BAD_REQUEST,
        )],
    )
}

#[cfg(test)]
mod tests;
