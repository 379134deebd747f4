use serde_json::json;

use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/supergraph.graphql");

fn engine_with(config: EngineConfig) -> Engine {
    let supergraph = Supergraph::parse(FIXTURE).expect("fixture loads");
    Engine::new(supergraph, config)
}

fn engine() -> Engine {
    engine_with(EngineConfig::default())
}

fn query(text: &str) -> GraphQLRequest {
    GraphQLRequest {
        query: Some(text.to_owned()),
        ..GraphQLRequest::default()
    }
}

const JSON: RequestContext = RequestContext {
    is_get: false,
    expose_plan: false,
    media_type: ResponseMediaType::Json,
    streaming: false,
};

const GRAPHQL_JSON: RequestContext = RequestContext {
    is_get: false,
    expose_plan: false,
    media_type: ResponseMediaType::GraphQLResponseJson,
    streaming: false,
};

fn first_code(response: &EngineResponse) -> String {
    response.json()["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<no code>")
        .to_owned()
}

#[tokio::test]
async fn missing_or_empty_query_is_a_bad_request() {
    let engine = engine();
    for request in [GraphQLRequest::default(), query("  ")] {
        let response = engine.handle(request, JSON).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert_eq!(first_code(&response), codes::BAD_REQUEST);
        assert!(response.json().get("data").is_none());
    }
}

#[tokio::test]
async fn persisted_query_hash_alone_is_answered_with_not_supported() {
    let request = GraphQLRequest {
        extensions: Some(
            json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        ..GraphQLRequest::default()
    };
    let response = engine().handle(request, JSON).await;
    assert_eq!(first_code(&response), codes::PERSISTED_QUERY_NOT_SUPPORTED);
}

#[tokio::test]
async fn request_errors_are_200_for_json_and_400_for_graphql_response_json() {
    let engine = engine();
    let json = engine.handle(query("{ product("), JSON).await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(first_code(&json), codes::PARSE_FAILED);
    assert!(
        json.json().get("data").is_none(),
        "request errors have no data"
    );

    let graphql = engine.handle(query("{ product("), GRAPHQL_JSON).await;
    assert_eq!(graphql.status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&graphql), codes::PARSE_FAILED);
}

#[tokio::test]
async fn inaccessible_field_is_a_validation_error() {
    let response = engine()
        .handle(query(r#"{ product(upc: "1") { cost } }"#), GRAPHQL_JSON)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&response), codes::VALIDATION_FAILED);
    assert!(response.json()["errors"][0]["locations"].is_array());
}

#[tokio::test]
async fn mutation_over_get_is_refused_with_405() {
    let ctx = RequestContext {
        is_get: true,
        ..JSON
    };
    let response = engine()
        .handle(
            query(r#"mutation { addReview(upc: "1", body: "b", rating: 5) { id } }"#),
            ctx,
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(first_code(&response), codes::METHOD_NOT_ALLOWED);
    assert!(response.json().get("data").is_none());
}

#[tokio::test]
async fn query_over_get_runs() {
    let ctx = RequestContext {
        is_get: true,
        ..JSON
    };
    let response = engine().handle(query("{ __typename }"), ctx).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    assert!(response.json().get("data").is_some());
    assert!(
        response.json().get("errors").is_none(),
        "no empty errors list"
    );
}

#[tokio::test]
async fn subscription_is_refused_with_a_clear_code() {
    let response = engine()
        .handle(query("subscription { reviewAdded { id } }"), GRAPHQL_JSON)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&response), codes::SUBSCRIPTIONS_NOT_SUPPORTED);
}

#[tokio::test]
async fn variable_of_the_wrong_type_is_bad_user_input() {
    let request = GraphQLRequest {
        variables: json!({"first": "five"}).as_object().cloned(),
        ..query("query($first: Int) { topProducts(first: $first) { upc } }")
    };
    let response = engine().handle(request, GRAPHQL_JSON).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&response), codes::BAD_USER_INPUT);
}

#[tokio::test]
async fn unknown_operation_name_is_refused() {
    let request = GraphQLRequest {
        operation_name: Some("Missing".to_owned()),
        ..query("query A { __typename }")
    };
    let response = engine().handle(request, JSON).await;
    assert_eq!(first_code(&response), codes::UNKNOWN_OPERATION);
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let engine = engine_with(EngineConfig {
        introspection: false,
        ..EngineConfig::default()
    });
    let response = engine
        .handle(query("{ __schema { queryType { name } } }"), GRAPHQL_JSON)
        .await;
    assert_eq!(first_code(&response), codes::INTROSPECTION_DISABLED);
    // `__typename` is not schema introspection and stays available.
    let response = engine.handle(query("{ __typename }"), GRAPHQL_JSON).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn introspection_never_reveals_inaccessible_or_join_elements() {
    let response = engine()
        .handle(
            query(r#"{ __schema { types { name fields { name } } } }"#),
            GRAPHQL_JSON,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    let text = response.json().to_string();
    assert!(!text.contains("join__"), "{text}");
    assert!(!text.contains("\"cost\""), "{text}");
}

#[tokio::test]
async fn query_plan_is_exposed_on_request() {
    let ctx = RequestContext {
        expose_plan: true,
        ..JSON
    };
    let response = engine().handle(query("{ __typename }"), ctx).await;
    let body = response.json();
    let extensions = &body["extensions"];
    assert!(extensions.get("queryPlan").is_some(), "{}", response.json());
    assert!(extensions["queryPlanText"].is_string());

    let hidden = engine().handle(query("{ __typename }"), JSON).await;
    assert!(hidden.json().get("extensions").is_none());
}

#[tokio::test]
async fn validated_documents_are_cached_by_query_and_operation_name() {
    let engine = engine();
    let text = "query A { __typename } query B { __typename }";
    for name in ["A", "B", "A"] {
        let request = GraphQLRequest {
            operation_name: Some(name.to_owned()),
            ..query(text)
        };
        let response = engine.handle(request, JSON).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    }
    let cache = engine.cache.as_ref().expect("cache on by default");
    assert_eq!(lock(cache).len(), 2);

    // Invalid queries are not cached.
    engine.handle(query("{ nope }"), JSON).await;
    assert_eq!(lock(cache).len(), 2);
}

#[tokio::test]
async fn cache_size_zero_turns_the_cache_off() {
    let engine = engine_with(EngineConfig {
        plan_cache_size: 0,
        ..EngineConfig::default()
    });
    assert!(engine.cache.is_none());
    let response = engine.handle(query("{ __typename }"), JSON).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[test]
fn status_codes_follow_graphql_over_http() {
    use ResponseMediaType::{GraphQLResponseJson as Gr, Json};
    let cases = [
        (RequestFailure::Malformed, Json, StatusCode::BAD_REQUEST),
        (RequestFailure::Malformed, Gr, StatusCode::BAD_REQUEST),
        (
            RequestFailure::MethodNotAllowed,
            Json,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            RequestFailure::MethodNotAllowed,
            Gr,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (RequestFailure::Request, Json, StatusCode::OK),
        (RequestFailure::Request, Gr, StatusCode::BAD_REQUEST),
        (RequestFailure::Internal, Json, StatusCode::OK),
        (
            RequestFailure::Internal,
            Gr,
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ];
    for (failure, media_type, status) in cases {
        assert_eq!(
            failure.status(media_type),
            status,
            "{failure:?} {media_type:?}"
        );
    }
}

#[tokio::test]
async fn empty_operation_name_means_no_name() {
    let request = GraphQLRequest {
        operation_name: Some(String::new()),
        ..query("query A { __typename }")
    };
    let response = engine().handle(request, GRAPHQL_JSON).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
}
