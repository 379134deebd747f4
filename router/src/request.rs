//! The request side, up to planning: a client's [`GraphQLRequest`] → a validated document (within
//! [`Limits`]) → the selected operation → coerced variables → the introspection part of the
//! answer, computed here from the API schema.
//!
//! Every failure is a list of client-facing [`GraphQLError`]s with `extensions.code`.

mod limits;

use apollo_compiler::ast::Document;
use apollo_compiler::collections::HashMap;
use apollo_compiler::executable::Operation;
use apollo_compiler::parser::{LineColumn, Parser};
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{ExecutableDocument, Name, Node, Schema};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use limits::Limits;

use crate::error::{GraphQLError, Location, codes};

/// Path used in diagnostics for the client's query.
const QUERY_PATH: &str = "query.graphql";

/// A GraphQL request as sent in a POST body, or assembled from GET parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphQLRequest {
    /// The query text.
    #[serde(default)]
    pub query: Option<String>,
    /// Which operation of the query to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values; JSON `null` counts as none.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions (for example `persistedQuery`).
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

/// Parses `query`, checks it against `limits`, and validates it against the API schema.
///
/// The limits are checked before validation: the size before parsing, nesting and token count
/// while parsing (apollo-parser stops at them), depth and field counts on the syntax tree.
pub fn parse_and_validate(
    api: &Valid<Schema>,
    query: &str,
    limits: &Limits,
) -> Result<Valid<ExecutableDocument>, Vec<GraphQLError>> {
    limits.check_size(query).map_err(|e| vec![e])?;
    let recursion_limit = limits.parser_recursion_limit();
    let mut parser = Parser::new()
        .recursion_limit(recursion_limit)
        .token_limit(limits.max_tokens);
    let parsed = parser.parse_ast(query, QUERY_PATH);
    if parser.recursion_reached() > recursion_limit {
        return Err(vec![limits.parser_limit_error(true)]);
    }
    if parser.tokens_reached() > limits.max_tokens {
        return Err(vec![limits.parser_limit_error(false)]);
    }
    let ast: Document = parsed.map_err(|e| diagnostics(&e.errors, codes::PARSE_FAILED))?;
    limits.check_shape(&ast).map_err(|e| vec![e])?;
    ast.to_executable_validate(api)
        .map_err(|e| diagnostics(&e.errors, codes::VALIDATION_FAILED))
}

fn diagnostics(list: &DiagnosticList, code: &str) -> Vec<GraphQLError> {
    list.iter()
        .map(|diagnostic| {
            let mut error = GraphQLError::new(diagnostic.error.to_string(), code);
            if let Some(range) = diagnostic.line_column_range() {
                error.locations.push(location(range.start));
            }
            error
        })
        .collect()
}

fn location(at: LineColumn) -> Location {
    Location {
        line: at.line,
        column: at.column,
    }
}

/// Selects the operation to run: the one named `name`, or the only one when no name is given.
pub fn select_operation<'doc>(
    document: &'doc ExecutableDocument,
    name: Option<&str>,
) -> Result<&'doc Node<Operation>, GraphQLError> {
    let operations = &document.operations;
    let count = operations.named.len() + usize::from(operations.anonymous.is_some());
    let unknown = |message: String| GraphQLError::new(message, codes::UNKNOWN_OPERATION);
    match name {
        Some(name) => operations
            .named
            .get(name)
            .ok_or_else(|| unknown(format!("the query has no operation named `{name}`"))),
        None if count > 1 => Err(unknown(format!(
            "the query has {count} operations; name the one to run with `operationName`"
        ))),
        None => operations
            .anonymous
            .as_ref()
            .or_else(|| operations.named.values().next())
            .ok_or_else(|| unknown("the query has no operation".to_owned())),
    }
}

/// Coerces the request's variable values to the operation's variable types, applying defaults.
/// Missing required variables and values of the wrong type are `BAD_USER_INPUT` errors.
pub fn coerce_variables(
    api: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    variables: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, GraphQLError> {
    let values: JsonMap = match variables {
        Some(values) => to_json_map(values)?,
        None => JsonMap::new(),
    };
    let coerced = apollo_compiler::request::coerce_variable_values(api, operation, &values)
        .map_err(|err| {
            request_error(
                &err.to_graphql_error(&document.sources),
                codes::BAD_USER_INPUT,
            )
        })?;
    from_json_map(coerced.into_inner())
}

/// Whether the operation's root selection asks for `__schema` or `__type`.
pub fn has_schema_introspection(document: &ExecutableDocument, operation: &Operation) -> bool {
    operation
        .root_fields(document)
        .any(|field| matches!(field.name.as_str(), "__schema" | "__type"))
}

/// What the introspection part of an operation computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Introspection {
    /// The values of the root `__schema` / `__type` fields, by response key.
    pub data: Map<String, Value>,
    /// Field errors raised while computing them.
    pub errors: Vec<GraphQLError>,
}

/// Answers the `__schema` / `__type` root fields of `operation` from the API schema.
/// `implementers` is `api.implementers_map()`, computed once per schema.
///
/// A query nested too deeply into the (recursive) introspection types is refused with
/// `QUERY_LIMIT_EXCEEDED` before anything runs.
pub fn introspect(
    api: &Valid<Schema>,
    implementers: &HashMap<Name, Implementers>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    variables: &Map<String, Value>,
) -> Result<Introspection, GraphQLError> {
    apollo_compiler::introspection::check_max_depth(document, operation).map_err(|err| {
        request_error(
            &err.to_graphql_error(&document.sources),
            codes::LIMIT_EXCEEDED,
        )
    })?;
    // Already coerced against this operation, so valid by construction.
    let variables = Valid::assume_valid(to_json_map(variables)?);
    let response = apollo_compiler::introspection::partial_execute(
        api,
        implementers,
        document,
        operation,
        &variables,
    )
    .map_err(|err| request_error(&err.to_graphql_error(&document.sources), codes::INTERNAL))?;
    let errors = response
        .errors
        .iter()
        .map(|e| request_error(e, codes::INTERNAL))
        .collect();
    let data = match response.data {
        Some(data) => from_json_map(data)?,
        None => Map::new(),
    };
    Ok(Introspection { data, errors })
}

/// Converts one of apollo-compiler's errors, keeping message, locations and path.
fn request_error(error: &apollo_compiler::response::GraphQLError, code: &str) -> GraphQLError {
    let mut converted = GraphQLError::new(error.message.clone(), code);
    converted.locations = error.locations.iter().copied().map(location).collect();
    if !error.path.is_empty() {
        let path = serde_json::to_value(&error.path)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        converted.path = Some(path);
    }
    converted
}

fn to_json_map(values: &Map<String, Value>) -> Result<JsonMap, GraphQLError> {
    serde_json::from_value(Value::Object(values.clone())).map_err(|err| {
        GraphQLError::new(
            format!("variables are not a JSON object: {err}"),
            codes::BAD_USER_INPUT,
        )
    })
}

fn from_json_map(values: JsonMap) -> Result<Map<String, Value>, GraphQLError> {
    match serde_json::to_value(values) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(GraphQLError::new(
            "could not convert a JSON object",
            codes::INTERNAL,
        )),
    }
}

#[cfg(test)]
mod tests;
