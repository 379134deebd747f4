//! Executor tests: the engine plans and runs client operations against in-process federated
//! subgraphs (async-graphql served by axum on `127.0.0.1:0`, see `support`), and each test
//! asserts the response the client gets, and where it matters what reached each subgraph.
//!
//! Every test starts its own subgraphs; they stop when the test ends.

// The support module is shared with `sharing.rs`; this binary uses only part of it.
#[allow(dead_code)]
mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tessera::engine::EngineConfig;
use tessera::execute::ExecutorConfig;

use support::accounts::Accounts;
use support::bookshop::Bookshop;
use support::feed::Feed;
use support::shelters::Shelters;
use support::{SubgraphServer, assert_json, closed_url, execute};

/// The `extensions` of every error of a response, for errors whose message varies (transport
/// failures name the OS error).
fn error_extensions(body: &Value) -> Vec<Value> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"].clone()).collect())
        .unwrap_or_default()
}

// ---- merging across subgraphs ----------------------------------------------------------------

#[tokio::test]
async fn a_deep_query_across_four_subgraphs_is_merged_in_the_clients_shape() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "{ books { __typename heading: title isbn weight reviews { stars body author { name __typename id } } } }",
        json!({}),
    )
    .await;
    let author = |name: &str, id: &str| json!({ "name": name, "__typename": "Reader", "id": id });
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "__typename": "Book", "heading": "Dune", "isbn": "b1", "weight": 300, "reviews": [
                { "stars": 5, "body": "Epic", "author": author("Ann", "u1") },
                { "stars": 3, "body": "Long", "author": author("Bob", "u2") },
            ] },
            { "__typename": "Book", "heading": "Emma", "isbn": "b2", "weight": 200, "reviews": [
                { "stars": 4, "body": "Witty", "author": author("Ann", "u1") },
            ] },
            { "__typename": "Book", "heading": "Ubik", "isbn": "b3", "weight": 100, "reviews": [
                { "stars": 4, "body": "Strange", "author": author("Bob", "u2") },
                { "stars": 2, "body": "Short", "author": author("Cid", "u3") },
            ] },
        ] } }),
    );
}

#[tokio::test]
async fn each_flatten_sends_one_entities_request_without_duplicate_representations() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "{ books { reviews { author { name } } } }",
        json!({}),
    )
    .await;
    let names = |names: &[&str]| -> Value {
        json!({ "reviews": names.iter().map(|n| json!({ "author": { "name": n } })).collect::<Vec<_>>() })
    };
    assert_json(
        &body,
        &json!({ "data": { "books": [
            names(&["Ann", "Bob"]),
            names(&["Ann"]),
            names(&["Bob", "Cid"]),
        ] } }),
    );
    assert_eq!(shop.catalog.request_count(), 1);
    assert_eq!(shop.reviews.request_count(), 1);
    assert_eq!(shop.warehouse.request_count(), 0);
    assert_eq!(shop.shipping.request_count(), 0);
    // Five reviews by three readers: one request, each reader once.
    let reader = |id: &str| json!({ "__typename": "Reader", "id": id });
    assert_eq!(
        shop.readers.representations(),
        vec![json!([reader("u1"), reader("u2"), reader("u3")])]
    );
}

#[tokio::test]
async fn a_requires_chain_sends_each_subgraph_the_fields_it_requires() {
    let shop = Bookshop::start().await;
    let body = execute(&shop.engine(), "{ books { isbn postage } }", json!({})).await;
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "isbn": "b1", "postage": 901 },
            { "isbn": "b2", "postage": 601 },
            { "isbn": "b3", "postage": 301 },
        ] } }),
    );
    let book = |isbn: &str, field: &str, value: i64| json!({ "__typename": "Book", "isbn": isbn, field: value });
    assert_eq!(
        shop.warehouse.representations(),
        vec![json!([
            book("b1", "pages", 600),
            book("b2", "pages", 400),
            book("b3", "pages", 200)
        ])]
    );
    assert_eq!(
        shop.shipping.representations(),
        vec![json!([
            book("b1", "weight", 300),
            book("b2", "weight", 200),
            book("b3", "weight", 100)
        ])]
    );
}

#[tokio::test]
async fn a_hand_off_skipped_by_a_variable_sends_no_request() {
    let shop = Bookshop::start().await;
    let engine = shop.engine();
    let query = "query($withReviews: Boolean!) { book(isbn: \"b2\") { title reviews @include(if: $withReviews) { body } } }";
    let without = execute(&engine, query, json!({ "withReviews": false })).await;
    assert_json(
        &without,
        &json!({ "data": { "book": { "title": "Emma" } } }),
    );
    assert_eq!(shop.reviews.request_count(), 0);
    let with = execute(&engine, query, json!({ "withReviews": true })).await;
    assert_json(
        &with,
        &json!({ "data": { "book": { "title": "Emma", "reviews": [{ "body": "Witty" }] } } }),
    );
    assert_eq!(shop.reviews.request_count(), 1);
}

#[tokio::test]
async fn a_root_field_skipped_by_a_variable_sends_no_request() {
    let shop = Bookshop::start().await;
    let engine = shop.engine();
    let query = "query($hide: Boolean!) { book(isbn: \"b2\") @skip(if: $hide) { title } }";
    let hidden = execute(&engine, query, json!({ "hide": true })).await;
    assert_json(&hidden, &json!({ "data": {} }));
    assert_eq!(shop.catalog.request_count(), 0);
    let shown = execute(&engine, query, json!({ "hide": false })).await;
    assert_json(&shown, &json!({ "data": { "book": { "title": "Emma" } } }));
    assert_eq!(shop.catalog.request_count(), 1);
}

// ---- abstract types across subgraphs ---------------------------------------------------------

#[tokio::test]
async fn an_interface_whose_implementations_live_in_two_subgraphs_is_completed_per_type() {
    let feed = Feed::start().await;
    let body = execute(
        &feed.engine(),
        "{ feed { __typename id title ... on Book { author } ... on Episode { host } } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "feed": [
            { "__typename": "Book", "id": "b1", "title": "Dune", "author": "Herbert" },
            { "__typename": "Episode", "id": "e1", "title": "Pilot", "host": "Kim" },
            { "__typename": "Book", "id": "b2", "title": "Emma", "author": "Austen" },
        ] } }),
    );
    // Each subgraph is asked once, and only for its own type.
    assert_eq!(
        feed.catalog.representations(),
        vec![json!([{ "__typename": "Book", "id": "b1" }, { "__typename": "Book", "id": "b2" }])]
    );
    assert_eq!(
        feed.podcasts.representations(),
        vec![json!([{ "__typename": "Episode", "id": "e1" }])]
    );
}

#[tokio::test]
async fn a_union_whose_members_live_in_two_subgraphs_is_completed_per_member() {
    let feed = Feed::start().await;
    let body = execute(
        &feed.engine(),
        "{ search(term: \"fin\") { ... on Episode { kind: __typename title host } ... on Book { title } } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "search": [
            { "kind": "Episode", "title": "Finale", "host": "Lee" },
            { "title": "Dune" },
        ] } }),
    );
    assert_eq!(feed.catalog.request_count(), 1);
    assert_eq!(feed.podcasts.request_count(), 1);
}

#[tokio::test]
async fn an_interface_object_subgraph_receives_the_interface_name_and_adds_its_fields() {
    let accounts = Accounts::start().await;
    let body = execute(
        &accounts.engine(),
        "{ accounts { __typename id email balance } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "accounts": [
            { "__typename": "Person", "id": "p1", "email": "ann@example.com", "balance": 10 },
            { "__typename": "Company", "id": "c1", "email": "acme@example.com", "balance": 99 },
        ] } }),
    );
    assert_eq!(
        accounts.billing.representations(),
        vec![json!([
            { "__typename": "Account", "id": "p1" },
            { "__typename": "Account", "id": "c1" },
        ])]
    );
}

#[tokio::test]
async fn the_concrete_type_below_an_interface_object_comes_from_the_subgraph_that_knows_it() {
    let accounts = Accounts::start().await;
    let body = execute(
        &accounts.engine(),
        "{ richest { __typename id balance ... on Company { vatNumber } ... on Person { birthday } } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "richest": {
            "__typename": "Company", "id": "c1", "balance": 99, "vatNumber": "EU123",
        } } }),
    );
    // First the concrete type, then the implementations' fields as entities of that type:
    // the interface's own reference resolver need not return them.
    let requests = accounts.identity.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1]["variables"]["representations"],
        json!([{ "__typename": "Company", "id": "c1" }])
    );
}

// ---- null propagation ------------------------------------------------------------------------

#[tokio::test]
async fn a_null_in_a_non_null_field_nulls_the_nearest_nullable_parent() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "{ book(isbn: \"b0\") { isbn title } other: book(isbn: \"b1\") { title } }",
        json!({}),
    )
    .await;
    assert_json(
        &body["data"],
        &json!({ "book": null, "other": { "title": "Dune" } }),
    );
}

#[tokio::test]
async fn a_null_that_propagates_to_the_root_makes_data_null() {
    let shop = Bookshop::start().await;
    let body = execute(&shop.engine(), "{ bestseller { isbn title } }", json!({})).await;
    assert_eq!(body["data"], Value::Null);
    assert!(body.get("data").is_some(), "data is present and null");
}

#[tokio::test]
async fn a_null_item_in_a_list_of_non_null_items_nulls_the_list() {
    let shop = Bookshop::start().await;
    let engine = shop.engine();
    let tags = execute(&engine, "{ books { isbn tags } }", json!({})).await;
    assert_json(
        &tags["data"],
        &json!({ "books": [
            { "isbn": "b1", "tags": ["classic", "sf"] },
            { "isbn": "b2", "tags": ["classic"] },
            { "isbn": "b3", "tags": null },
        ] }),
    );
    // `shelf: [Book!]` holds b0, whose non-null title is null: the item, then the list, is null.
    let shelf = execute(&engine, "{ shelf { isbn title } }", json!({})).await;
    assert_json(&shelf["data"], &json!({ "shelf": null }));
}

#[tokio::test]
async fn a_null_in_a_non_null_field_is_reported_as_an_error_at_its_path() {
    let shop = Bookshop::start().await;
    let engine = shop.engine();
    let body = execute(&engine, "{ book(isbn: \"b0\") { isbn title } }", json!({})).await;
    let paths: Vec<Value> = body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["path"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(paths, vec![json!(["book", "title"])], "{body}");
    let root = execute(&engine, "{ bestseller { title } }", json!({})).await;
    assert!(
        root["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "data is null, so errors must say why: {root}"
    );
}

// ---- errors ----------------------------------------------------------------------------------

/// What a readers subgraph answers for representations [u1, u2, u3] when u3 fails: the error
/// path names the representation's index in `_entities`.
const READERS_WITH_AN_ERROR: &str = r#"{
  "data": { "_entities": [{ "name": "Ann" }, { "name": "Bob" }, null] },
  "errors": [{ "message": "reader u3 is private", "path": ["_entities", 2, "name"] }]
}"#;

#[tokio::test]
async fn entity_errors_are_reported_at_the_clients_path() {
    let shop = Bookshop::start().await;
    let readers =
        SubgraphServer::replying(StatusCode::OK, "application/json", READERS_WITH_AN_ERROR).await;
    let engine = shop.engine_with(EngineConfig::default(), &[("readers", &readers.url)]);
    let body = execute(
        &engine,
        "{ books { reviews { author { name } } } }",
        json!({}),
    )
    .await;
    let reader = |id: &str| json!({ "__typename": "Reader", "id": id });
    assert_eq!(
        readers.representations(),
        vec![json!([reader("u1"), reader("u2"), reader("u3")])]
    );
    // u3 wrote the second review of the third book. Its null `name: String!` nulls the author,
    // the review, and so the nullable `reviews` list.
    assert_json(
        &body,
        &json!({
            "data": { "books": [
                { "reviews": [{ "author": { "name": "Ann" } }, { "author": { "name": "Bob" } }] },
                { "reviews": [{ "author": { "name": "Ann" } }] },
                { "reviews": null },
            ] },
            "errors": [{
                "message": "reader u3 is private",
                "path": ["books", 2, "reviews", 1, "author", "name"],
                "extensions": { "code": "DOWNSTREAM_SERVICE_ERROR", "serviceName": "readers" },
            }],
        }),
    );
}

#[tokio::test]
async fn a_subgraph_that_is_down_leaves_partial_data_and_a_fetch_error() {
    let shop = Bookshop::start().await;
    let down = closed_url();
    let engine = shop.engine_with(EngineConfig::default(), &[("warehouse", &down)]);
    let body = execute(&engine, "{ books { title weight } }", json!({})).await;
    assert_json(
        &body["data"],
        &json!({ "books": [
            { "title": "Dune", "weight": null },
            { "title": "Emma", "weight": null },
            { "title": "Ubik", "weight": null },
        ] }),
    );
    assert_eq!(
        error_extensions(&body),
        vec![json!({ "code": "SUBGRAPH_FETCH_FAILED", "serviceName": "warehouse" })]
    );
}

#[tokio::test]
async fn a_failed_root_fetch_of_a_non_null_field_makes_data_null() {
    let shop = Bookshop::start().await;
    let down = closed_url();
    let engine = shop.engine_with(EngineConfig::default(), &[("catalog", &down)]);
    let body = execute(&engine, "{ books { title } }", json!({})).await;
    assert_eq!(body["data"], Value::Null);
    assert!(body.get("data").is_some(), "data is present and null");
    assert_eq!(
        error_extensions(&body),
        vec![json!({ "code": "SUBGRAPH_FETCH_FAILED", "serviceName": "catalog" })]
    );
}

/// Runs `{ books { title reviews { body } } }` with the reviews subgraph replaced by `reviews`.
async fn books_with_reviews_from(reviews: &SubgraphServer) -> Value {
    books_with_reviews_from_with(reviews, EngineConfig::default()).await
}

async fn books_with_reviews_from_with(reviews: &SubgraphServer, config: EngineConfig) -> Value {
    let shop = Bookshop::start().await;
    let engine = shop.engine_with(config, &[("reviews", &reviews.url)]);
    let body = execute(&engine, "{ books { title reviews { body } } }", json!({})).await;
    assert_eq!(reviews.request_count(), 1);
    body
}

/// The books without their reviews, and one `SUBGRAPH_FETCH_FAILED` error naming `reviews`.
fn assert_reviews_failed(body: &Value) {
    assert_json(&body["data"], &books_without_reviews());
    assert_eq!(
        error_extensions(body),
        vec![json!({ "code": "SUBGRAPH_FETCH_FAILED", "serviceName": "reviews" })]
    );
}

fn books_without_reviews() -> Value {
    json!({ "books": [
        { "title": "Dune", "reviews": null },
        { "title": "Emma", "reviews": null },
        { "title": "Ubik", "reviews": null },
    ] })
}

#[tokio::test]
async fn a_subgraph_answering_invalid_json_is_a_fetch_error() {
    let reviews = SubgraphServer::replying(StatusCode::OK, "application/json", "{\"data\": ").await;
    let body = books_with_reviews_from(&reviews).await;
    assert_reviews_failed(&body);
}

#[tokio::test]
async fn a_subgraph_answering_hostile_nesting_is_a_fetch_error_not_a_crash() {
    let nested = format!(
        "{{\"data\":{{\"_entities\":{}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let reviews = SubgraphServer::replying(StatusCode::OK, "application/json", nested).await;
    let body = books_with_reviews_from(&reviews).await;
    assert_reviews_failed(&body);
}

#[tokio::test]
async fn a_subgraph_response_over_the_size_limit_is_a_fetch_error() {
    let large = format!(
        "{{\"data\":{{\"_entities\":[{{\"reviews\":[{{\"body\":\"{}\"}}]}}]}}}}",
        "x".repeat(4096)
    );
    let reviews = SubgraphServer::replying(StatusCode::OK, "application/json", large).await;
    assert_too_large_for_1024_bytes(&reviews).await;
}

/// Runs the books query with subgraph responses limited to 1024 bytes: `reviews` answers more.
async fn assert_too_large_for_1024_bytes(reviews: &SubgraphServer) {
    let config = EngineConfig {
        executor: ExecutorConfig {
            max_response_bytes: 1024,
            ..ExecutorConfig::default()
        },
        ..EngineConfig::default()
    };
    let body = books_with_reviews_from_with(reviews, config).await;
    assert_reviews_failed_saying(&body, "larger than 1024 bytes");
}

/// [`assert_reviews_failed`], with an error message that says `text`.
fn assert_reviews_failed_saying(body: &Value, text: &str) {
    assert_reviews_failed(body);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(text)),
        "{body}"
    );
}

#[tokio::test]
async fn a_streamed_response_over_the_size_limit_is_a_fetch_error() {
    let chunk = format!(
        "{{\"data\":{{\"_entities\":[{{\"reviews\":[{{\"body\":\"{}",
        "x".repeat(600)
    );
    let reviews = SubgraphServer::streaming(vec![chunk, "x".repeat(600), "\"}]}]}}".into()]).await;
    assert_too_large_for_1024_bytes(&reviews).await;
}

#[tokio::test]
async fn a_response_streamed_in_pieces_is_read_whole() {
    let pieces = [
        "{\"data\":{\"_entities\":[{\"reviews\":[{\"bo",
        "dy\":\"Epic\"}]},{\"reviews\":[]},",
        "{\"reviews\":[{\"body\":\"Odd\"}]}]}}",
    ];
    let reviews = SubgraphServer::streaming(pieces.iter().map(|p| p.to_string()).collect()).await;
    let body = books_with_reviews_from(&reviews).await;
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "title": "Dune", "reviews": [{ "body": "Epic" }] },
            { "title": "Emma", "reviews": [] },
            { "title": "Ubik", "reviews": [{ "body": "Odd" }] },
        ] } }),
    );
}

#[tokio::test]
async fn a_subgraph_slower_than_the_timeout_is_a_fetch_error() {
    let reviews = SubgraphServer::stalling(std::time::Duration::from_secs(30)).await;
    let config = EngineConfig {
        executor: ExecutorConfig {
            subgraph_timeout: std::time::Duration::from_millis(200),
            ..ExecutorConfig::default()
        },
        ..EngineConfig::default()
    };
    let started = std::time::Instant::now();
    let body = books_with_reviews_from_with(&reviews, config).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the router waited for the subgraph"
    );
    assert_reviews_failed_saying(&body, "timed out after 200 ms");
}

#[tokio::test]
async fn a_subgraph_answering_http_500_is_a_fetch_error() {
    let reviews = SubgraphServer::replying(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain",
        "internal error",
    )
    .await;
    let body = books_with_reviews_from(&reviews).await;
    assert_reviews_failed(&body);
}

#[tokio::test]
async fn a_subgraph_answering_http_500_with_a_json_body_is_a_fetch_error() {
    let reviews = SubgraphServer::replying(
        StatusCode::INTERNAL_SERVER_ERROR,
        "application/json",
        "{\"message\": \"database unavailable\"}",
    )
    .await;
    let body = books_with_reviews_from(&reviews).await;
    assert_reviews_failed(&body);
}

#[tokio::test]
async fn an_enum_value_hidden_from_the_api_schema_becomes_null_with_an_error() {
    let shop = Bookshop::start().await;
    let body = execute(&shop.engine(), "{ books { isbn format } }", json!({})).await;
    assert_json(
        &body["data"],
        &json!({ "books": [
            { "isbn": "b1", "format": "PAPERBACK" },
            { "isbn": "b2", "format": "HARDCOVER" },
            { "isbn": "b3", "format": null },
        ] }),
    );
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], json!(["books", 2, "format"]));
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("AUDIO"), "{message}");
}

// ---- selections that skip every field, provides on interfaces -----------------------------

#[tokio::test]
async fn a_composite_field_whose_every_subfield_is_skipped_is_an_empty_object() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "query($yes: Boolean!) { books { title reviews { stars @skip(if: true) body @skip(if: $yes) } } }",
        json!({ "yes": true }),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "title": "Dune", "reviews": [{}, {}] },
            { "title": "Emma", "reviews": [{}] },
            { "title": "Ubik", "reviews": [{}, {}] },
        ] } }),
    );
}

#[tokio::test]
async fn a_root_field_whose_every_subfield_is_skipped_is_an_empty_object() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "{ books { title @skip(if: true) } }",
        json!({}),
    )
    .await;
    assert_json(&body, &json!({ "data": { "books": [{}, {}, {}] } }));
}

#[tokio::test]
async fn pets_below_a_provided_interface_are_completed_in_one_fetch_through_their_shelter() {
    let shelters = Shelters::start().await;
    let body = execute(
        &shelters.engine(),
        "{ shelter { id pets { __typename a12: id ... on Dog { age name id } } } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "shelter": { "id": "s1", "pets": [
            { "__typename": "Dog", "a12": "d1", "age": 3, "name": "Fido", "id": "d1" },
            { "__typename": "Cat", "a12": "c1" },
        ] } } }),
    );
    assert_eq!(shelters.shelters.request_count(), 1);
    let registry = shelters.registry.requests();
    assert_eq!(registry.len(), 1, "{registry:?}");
    assert_eq!(
        registry[0]["variables"]["representations"],
        json!([{ "__typename": "Shelter", "id": "s1" }])
    );
}

#[tokio::test]
async fn a_client_alias_over_a_nested_key_field_keeps_the_clients_value_and_the_key_its_own() {
    let lending = support::lending::Lending::start().await;
    let body = execute(
        &lending.engine(),
        "{ books { org { id: __typename } lentAs } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "org": { "id": "Org" }, "lentAs": "b1@o1" },
            { "org": { "id": "Org" }, "lentAs": "b2@o2" },
        ] } }),
    );
}

#[tokio::test]
async fn response_keys_come_in_the_order_the_operation_collects_them() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "query($yes: Boolean!) { books { ... on Book { title } } books @include(if: $yes) { isbn ... on Book { weight } } }",
        json!({ "yes": true }),
    )
    .await;
    // Field collection: `title`, then `isbn`, then `weight` (the fragment's fields where the
    // fragment stands), not the two fragments' fields side by side.
    let first = &body["data"]["books"][0];
    let keys: Vec<&String> = first
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["title", "isbn", "weight"], "{body}");
}

// ---- configuration ---------------------------------------------------------------------------

#[tokio::test]
async fn deduplication_on_and_off_give_the_same_responses() {
    let shop = Bookshop::start().await;
    let query =
        "{ books { heading: title reviews { author { name } } } again: books { isbn weight } }";
    let expected = execute(&shop.engine(), query, json!({})).await;
    assert_eq!(
        expected["data"]["books"][2]["reviews"][1]["author"]["name"],
        "Cid"
    );
    assert_eq!(expected["data"]["again"][0]["weight"], 300);
    for dedupe in [false, true] {
        let config = EngineConfig {
            executor: ExecutorConfig {
                dedupe,
                ..ExecutorConfig::default()
            },
            ..EngineConfig::default()
        };
        let engine = shop.engine_with(config, &[]);
        // Identical requests at the same time: with de-duplication they may share fetches.
        let (first, second) = tokio::join!(
            execute(&engine, query, json!({})),
            execute(&engine, query, json!({}))
        );
        assert_json(&first, &expected);
        assert_json(&second, &expected);
    }
}

// ---- known executor defects ------------------------------------------------------------------

#[tokio::test]
async fn a_client_alias_equal_to_a_key_field_keeps_the_clients_value() {
    let shop = Bookshop::start().await;
    let body = execute(
        &shop.engine(),
        "{ books { isbn: title reviews { stars } } }",
        json!({}),
    )
    .await;
    assert_json(
        &body,
        &json!({ "data": { "books": [
            { "isbn": "Dune", "reviews": [{ "stars": 5 }, { "stars": 3 }] },
            { "isbn": "Emma", "reviews": [{ "stars": 4 }] },
            { "isbn": "Ubik", "reviews": [{ "stars": 4 }, { "stars": 2 }] },
        ] } }),
    );
}
