use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const SDL: &str = r#"
type Query {
  product(upc: String!): Product
  products(first: Int = 10): [Product!]!
}
type Product {
  upc: String!
  name: String
  related: [Product!]!
}
type Mutation {
  rename(upc: String!, name: String!): Product
}
"#;

fn api() -> Valid<Schema> {
    Schema::parse_and_validate(SDL, "api.graphql").expect("test schema validates")
}

fn errors_of(query: &str) -> Vec<GraphQLError> {
    parse_and_validate(&api(), query, &Limits::default()).expect_err("the query is refused")
}

/// Asserts the work was quick: hostile queries must be refused in far less than this.
fn assert_quick(started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

fn nested(levels: usize) -> String {
    let mut query = String::from("{ products ");
    for _ in 1..levels {
        query.push_str("{ related ");
    }
    query.push_str("{ upc }");
    for _ in 1..levels {
        query.push_str(" }");
    }
    query.push_str(" }");
    query
}

#[test]
fn query_nested_500_levels_is_refused_quickly_without_overflowing() {
    let started = Instant::now();
    // A thread with a tokio-worker-sized stack: the parse must fit in it.
    let errors = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| errors_of(&nested(500)))
        .expect("thread starts")
        .join()
        .expect("no stack overflow or panic");
    assert_quick(started);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code(), Some(codes::LIMIT_EXCEEDED));
    assert!(
        errors[0].message.contains("too deeply"),
        "{}",
        errors[0].message
    );
}

#[test]
fn query_nested_beyond_max_depth_but_within_parser_limit_is_refused() {
    let errors = errors_of(&nested(100));
    assert_eq!(errors[0].code(), Some(codes::LIMIT_EXCEEDED));
    assert!(
        errors[0].message.contains("depth 101"),
        "{}",
        errors[0].message
    );
    assert!(parse_and_validate(&api(), &nested(63), &Limits::default()).is_ok());
}

#[test]
fn query_with_10000_aliases_is_refused_quickly() {
    let mut query = String::from("{");
    for i in 0..10_000 {
        query.push_str(&format!(" a{i}: __typename"));
    }
    query.push('}');
    let started = Instant::now();
    let errors = errors_of(&query);
    assert_quick(started);
    assert_eq!(errors[0].code(), Some(codes::LIMIT_EXCEEDED));
    assert!(errors[0].message.contains("10000"), "{}", errors[0].message);
}

#[test]
fn one_megabyte_query_is_refused_before_parsing() {
    let query = format!("{{ products {{ upc }} }} #{}", "x".repeat(1_000_000));
    let started = Instant::now();
    let errors = errors_of(&query);
    assert_quick(started);
    assert_eq!(errors[0].code(), Some(codes::LIMIT_EXCEEDED));
    assert!(errors[0].message.contains("bytes"), "{}", errors[0].message);
}

#[test]
fn too_many_tokens_is_a_limit_error() {
    let limits = Limits {
        max_tokens: 50,
        ..Limits::default()
    };
    let query = format!("{{ products {{ {} }} }}", "upc ".repeat(100));
    let errors = parse_and_validate(&api(), &query, &limits).expect_err("over the token limit");
    assert_eq!(errors[0].code(), Some(codes::LIMIT_EXCEEDED));
    assert!(
        errors[0].message.contains("tokens"),
        "{}",
        errors[0].message
    );
}

#[test]
fn syntax_error_is_parse_failed_with_location() {
    let errors = errors_of("{\n  products { upc \n");
    assert_eq!(errors[0].code(), Some(codes::PARSE_FAILED));
    assert!(!errors[0].locations.is_empty());
}

#[test]
fn unknown_field_is_validation_failed_with_location() {
    let errors = errors_of("{\n  products { upc price }\n}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code(), Some(codes::VALIDATION_FAILED));
    assert!(errors[0].message.contains("price"), "{}", errors[0].message);
    assert_eq!(
        errors[0].locations,
        [Location {
            line: 2,
            column: 18
        }]
    );
}

fn document(query: &str) -> Valid<ExecutableDocument> {
    parse_and_validate(&api(), query, &Limits::default()).expect("valid query")
}

#[test]
fn operation_is_selected_by_name_or_as_the_only_one() {
    let doc = document("query A { products { upc } } query B { products { name } }");
    let b = select_operation(&doc, Some("B")).expect("B exists");
    assert_eq!(b.name.as_ref().map(Name::as_str), Some("B"));
    let single = document("query Only { products { upc } }");
    assert!(select_operation(&single, None).is_ok());
    let anonymous = document("{ products { upc } }");
    assert!(select_operation(&anonymous, None).is_ok());
}

#[test]
fn unknown_operation_name_is_refused() {
    let doc = document("query A { products { upc } }");
    let err = select_operation(&doc, Some("Nope")).expect_err("no such operation");
    assert_eq!(err.code(), Some(codes::UNKNOWN_OPERATION));
    assert!(err.message.contains("Nope"));
}

#[test]
fn several_operations_without_a_name_are_refused() {
    let doc = document("query A { products { upc } } query B { products { name } }");
    let err = select_operation(&doc, None).expect_err("ambiguous");
    assert_eq!(err.code(), Some(codes::UNKNOWN_OPERATION));
}

fn coerce(query: &str, variables: Value) -> Result<Map<String, Value>, GraphQLError> {
    let doc = document(query);
    let operation = select_operation(&doc, None).expect("one operation");
    let Value::Object(variables) = variables else {
        panic!("variables are an object");
    };
    coerce_variables(&api(), &doc, operation, Some(&variables))
}

#[test]
fn variable_of_the_wrong_type_is_bad_user_input() {
    let err = coerce(
        "query($first: Int) { products(first: $first) { upc } }",
        json!({"first": "ten"}),
    )
    .expect_err("a string is not an Int");
    assert_eq!(err.code(), Some(codes::BAD_USER_INPUT));
}

#[test]
fn missing_required_variable_is_bad_user_input() {
    let err = coerce(
        "query($upc: String!) { product(upc: $upc) { name } }",
        json!({}),
    )
    .expect_err("upc is required");
    assert_eq!(err.code(), Some(codes::BAD_USER_INPUT));
    assert!(err.message.contains("upc"), "{}", err.message);
}

#[test]
fn variable_defaults_are_applied() {
    let values = coerce(
        "query($first: Int = 3) { products(first: $first) { upc } }",
        json!({}),
    )
    .expect("valid");
    assert_eq!(values.get("first"), Some(&json!(3)));
}

#[test]
fn schema_introspection_is_answered_from_the_api_schema() {
    let api = api();
    let doc = document(
        r#"{ __typename __schema { queryType { name } } t: __type(name: "Product") { fields { name } } products { upc } }"#,
    );
    let operation = select_operation(&doc, None).expect("one operation");
    assert!(has_schema_introspection(&doc, operation));
    let result = introspect(&api, &api.implementers_map(), &doc, operation, &Map::new())
        .expect("introspection runs");
    assert!(result.errors.is_empty());
    assert_eq!(
        result.data["__schema"],
        json!({"queryType": {"name": "Query"}})
    );
    assert_eq!(
        result.data["t"],
        json!({"fields": [{"name": "upc"}, {"name": "name"}, {"name": "related"}]})
    );
    assert!(!result.data.contains_key("products"));
}

#[test]
fn plain_operation_has_no_schema_introspection() {
    let doc = document("{ __typename products { upc } }");
    let operation = select_operation(&doc, None).expect("one operation");
    assert!(!has_schema_introspection(&doc, operation));
}

#[test]
fn request_deserializes_with_camel_case_and_null_variables() {
    let request: GraphQLRequest = serde_json::from_value(json!({
        "query": "{ a }",
        "operationName": "A",
        "variables": null,
    }))
    .expect("deserializes");
    assert_eq!(request.operation_name.as_deref(), Some("A"));
    assert_eq!(request.variables, None);
}

#[test]
fn deepest_queries_the_limits_allow_validate_on_a_worker_sized_stack() {
    // However high `max_depth` is set, what passes the limits must validate (or fail
    // validation) on a tokio-worker-sized stack, never overflow it.
    let limits = Limits {
        max_depth: 10_000,
        ..Limits::default()
    };
    let deepest = limits.effective_max_depth();
    let inline_nesting = limits.parser_recursion_limit() - 2;
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let api = api();
            // `nested(n)` has n + 1 levels of fields.
            let deepest_ok = parse_and_validate(&api, &nested(deepest - 1), &limits).is_ok();
            let deeper = parse_and_validate(&api, &nested(deepest), &limits)
                .expect_err("one level too deep")[0]
                .code()
                .map(str::to_owned);
            let inline = format!(
                "{{ {} products {{ upc }} {} }}",
                "... on Query {".repeat(inline_nesting),
                "}".repeat(inline_nesting)
            );
            let _ = parse_and_validate(&api, &inline, &limits);
            (deepest_ok, deeper)
        })
        .expect("thread starts")
        .join()
        .expect("no stack overflow");
    assert_eq!(outcome, (true, Some(codes::LIMIT_EXCEEDED.to_owned())));
}
