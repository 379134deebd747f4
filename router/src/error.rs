//! The GraphQL error that clients see: a message, optional locations and path, and
//! `extensions.code` always.

use serde::Serialize;
use serde_json::{Map, Value};

/// A GraphQL error as it appears in a response's `errors`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphQLError {
    /// What went wrong, in plain words.
    pub message: String,
    /// Where in the query, when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// The response path the error belongs to, when it belongs to a field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<Value>>,
    /// At least `code`; the subgraph's name (`serviceName`) for subgraph errors.
    pub extensions: Map<String, Value>,
}

/// A line and column in the query (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl GraphQLError {
    /// An error with `message` and `extensions.code = code`.
    pub fn new(message: impl Into<String>, code: &str) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".to_owned(), Value::String(code.to_owned()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions,
        }
    }

    /// The same error at response path `path`.
    pub fn with_path(mut self, path: Vec<Value>) -> Self {
        self.path = Some(path);
        self
    }

    /// The same error with one more extension entry.
    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The error's `extensions.code`.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Value::as_str)
    }
}

/// Error codes the router uses.
pub mod codes {
    /// The body is not a GraphQL request.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// The query does not parse.
    pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The query does not validate against the API schema.
    pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    /// Variables are missing or of the wrong type.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// The operation name matches no operation, or several operations and no name.
    pub const UNKNOWN_OPERATION: &str = "GRAPHQL_UNKNOWN_OPERATION_NAME";
    /// A mutation sent over GET.
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// The query exceeds a configured limit (depth, aliases, size).
    pub const LIMIT_EXCEEDED: &str = "QUERY_LIMIT_EXCEEDED";
    /// The planner could not plan the operation.
    pub const PLAN_FAILED: &str = "QUERY_PLANNING_FAILED";
    /// A subgraph request failed (transport, status, invalid body).
    pub const SUBGRAPH_FETCH_FAILED: &str = "SUBGRAPH_FETCH_FAILED";
    /// A subgraph left a non-null field null.
    pub const NULL_IN_NON_NULL: &str = "RESPONSE_NULL_IN_NON_NULL_FIELD";
    /// A subscription sent where a single response is expected (a plain POST or GET): it
    /// needs WebSocket, Server-Sent Events or multipart.
    pub const SUBSCRIPTIONS_NOT_SUPPORTED: &str = "SUBSCRIPTIONS_NOT_SUPPORTED";
    /// The subgraph serving a subscription went away and did not come back in time.
    pub const SUBGRAPH_SUBSCRIPTION_FAILED: &str = "SUBGRAPH_SUBSCRIPTION_FAILED";
    /// The supergraph changed and the subscription no longer validates against it.
    pub const SUBSCRIPTION_SCHEMA_RELOAD: &str = "SUBSCRIPTION_SCHEMA_RELOAD";
    /// A subscription limit (per connection, in total) is reached.
    pub const SUBSCRIPTION_LIMIT: &str = "SUBSCRIPTION_LIMIT_EXCEEDED";
    /// The router is shutting down.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// The operation asks for `__schema` or `__type` and introspection is turned off.
    pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
    /// The request carries only a persisted-query hash; the router has no persisted queries.
    /// Apollo Client reacts to this code by sending the full query.
    pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";
    /// No route for this path.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// Anything else on the router's side.
    pub const INTERNAL: &str = "INTERNAL_SERVER_ERROR";
}
