//! What identical requests share and which client headers reach subgraphs: de-duplication
//! counted at the subgraph (queries share one request, mutations never do, different headers
//! never share, a cancelled leader leaves nothing behind), and header propagation rules.

// The support module is shared with `execute.rs`; this binary uses only part of it.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use tessera::engine::{Engine, EngineConfig};
use tessera::execute::ExecutorConfig;
use tessera::headers::{HeaderPolicy, HeadersConfig};

use support::counter::Counter;
use support::{execute, execute_with_headers};

fn config(dedupe: bool, headers: HeaderPolicy) -> EngineConfig {
    EngineConfig {
        executor: ExecutorConfig {
            dedupe,
            ..ExecutorConfig::default()
        },
        headers,
        ..EngineConfig::default()
    }
}

fn propagating_user_id() -> HeaderPolicy {
    HeaderPolicy::with_propagated(&HeadersConfig::default(), &["x-user-id".to_owned()])
        .expect("valid rules")
}

async fn concurrently(engine: &Engine, query: &str, n: usize) -> Vec<Value> {
    futures_util::future::join_all((0..n).map(|_| execute(engine, query, json!({})))).await
}

/// Waits until the subgraph has received `n` requests.
async fn requests_reached(counter: &Counter, n: usize) {
    for _ in 0..500 {
        if counter.server.request_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the subgraph received {} requests",
        counter.server.request_count()
    );
}

#[tokio::test]
async fn identical_concurrent_queries_with_dedupe_send_one_subgraph_request() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(true, HeaderPolicy::default()));
    let responses = concurrently(&engine, "{ slow(ms: 300) }", 20).await;
    for response in &responses {
        assert_eq!(response, &json!({ "data": { "slow": 42 } }));
    }
    assert_eq!(counter.server.request_count(), 1);
    assert_eq!(engine.executor().client().in_flight(), 0);
}

#[tokio::test]
async fn identical_concurrent_queries_without_dedupe_send_one_request_each() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(false, HeaderPolicy::default()));
    concurrently(&engine, "{ slow(ms: 100) }", 20).await;
    assert_eq!(counter.server.request_count(), 20);
}

#[tokio::test]
async fn identical_concurrent_mutations_with_dedupe_are_each_sent_and_each_answered() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(true, HeaderPolicy::default()));
    let responses = concurrently(&engine, "mutation { next(ms: 200) }", 20).await;
    let mut numbers: Vec<u64> = responses
        .iter()
        .map(|r| r["data"]["next"].as_u64().expect("a number"))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 20, "{responses:?}");
    assert_eq!(counter.server.request_count(), 20);
}

#[tokio::test]
async fn identical_queries_of_different_users_never_share_a_response() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(true, propagating_user_id()));
    let query = "{ whoami(ms: 300) }";
    let (ann, bob, ann_again) = tokio::join!(
        execute_with_headers(&engine, query, json!({}), &[("x-user-id", "ann")]),
        execute_with_headers(&engine, query, json!({}), &[("x-user-id", "bob")]),
        execute_with_headers(&engine, query, json!({}), &[("x-user-id", "ann")]),
    );
    assert_eq!(ann["data"]["whoami"], "ann");
    assert_eq!(ann_again["data"]["whoami"], "ann");
    assert_eq!(bob["data"]["whoami"], "bob");
    assert_eq!(counter.server.request_count(), 2);
}

#[tokio::test]
async fn a_cancelled_leader_leaves_its_followers_the_answer_and_no_entry_behind() {
    let counter = Counter::start().await;
    let engine = std::sync::Arc::new(counter.engine(config(true, HeaderPolicy::default())));
    let query = "{ slow(ms: 400) }";
    let leader = tokio::spawn({
        let engine = engine.clone();
        async move { execute(&engine, query, json!({})).await }
    });
    requests_reached(&counter, 1).await;
    let follower = tokio::spawn({
        let engine = engine.clone();
        async move { execute(&engine, query, json!({})).await }
    });
    // The follower joins the flight, then its leader's client goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let answer = follower.await.expect("the follower runs to the end");
    assert_eq!(answer, json!({ "data": { "slow": 42 } }));
    assert_eq!(counter.server.request_count(), 1);
    assert_eq!(engine.executor().client().in_flight(), 0);
}

#[tokio::test]
async fn a_flight_whose_every_waiter_is_cancelled_is_forgotten() {
    let counter = Counter::start().await;
    let engine = std::sync::Arc::new(counter.engine(config(true, HeaderPolicy::default())));
    let query = "{ slow(ms: 2000) }";
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { execute(&engine, query, json!({})).await })
        })
        .collect();
    requests_reached(&counter, 1).await;
    assert_eq!(engine.executor().client().in_flight(), 1);
    for waiter in &waiters {
        waiter.abort();
    }
    for waiter in waiters {
        let _ = waiter.await;
    }
    assert_eq!(engine.executor().client().in_flight(), 0);
    // A new request starts afresh instead of joining the abandoned one.
    let fresh = execute(&engine, "{ slow(ms: 10) }", json!({})).await;
    assert_eq!(fresh["data"]["slow"], 42);
}

#[tokio::test]
async fn propagated_headers_reach_the_subgraph_and_others_do_not() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(false, propagating_user_id()));
    let body = execute_with_headers(
        &engine,
        "{ whoami(ms: 0) }",
        json!({}),
        &[
            ("x-user-id", "3"),
            ("authorization", "Bearer secret"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("connection", "close"),
        ],
    )
    .await;
    assert_eq!(body["data"]["whoami"], "3");
    let headers = &counter.server.headers()[0];
    assert_eq!(headers["x-user-id"], "3");
    assert_eq!(
        headers["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert!(headers.get("authorization").is_none());
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn without_rules_a_user_header_is_not_forwarded() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(false, HeaderPolicy::default()));
    let body = execute_with_headers(
        &engine,
        "{ whoami(ms: 0) }",
        json!({}),
        &[("x-user-id", "3")],
    )
    .await;
    assert_eq!(body["data"]["whoami"], Value::Null);
}

#[tokio::test]
async fn a_traceparent_sent_to_the_router_reaches_every_subgraph_of_a_deep_query() {
    let shop = support::bookshop::Bookshop::start().await;
    let engine = shop.engine();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = execute_with_headers(
        &engine,
        "{ books { title weight reviews { stars author { name } } } }",
        json!({}),
        &[("traceparent", traceparent), ("x-request-id", "req-77")],
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    let subgraphs = [
        ("catalog", &shop.catalog),
        ("warehouse", &shop.warehouse),
        ("reviews", &shop.reviews),
        ("readers", &shop.readers),
    ];
    for (name, server) in subgraphs {
        let headers = server.headers();
        assert!(!headers.is_empty(), "{name} was not asked");
        for received in headers {
            assert_eq!(received["traceparent"], traceparent, "{name}");
            assert_eq!(received["x-request-id"], "req-77", "{name}");
        }
    }
}

#[tokio::test]
async fn identical_queries_with_their_own_request_ids_and_traces_still_share_one_request() {
    let counter = Counter::start().await;
    let engine = counter.engine(config(true, HeaderPolicy::default()));
    let query = "{ slow(ms: 300) }";
    let requests = (0..10).map(|i| {
        let id = format!("req-{i}");
        let trace = format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
        let engine = &engine;
        async move {
            execute_with_headers(
                engine,
                query,
                json!({}),
                &[
                    ("x-request-id", id.as_str()),
                    ("traceparent", trace.as_str()),
                ],
            )
            .await
        }
    });
    let responses = futures_util::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r["data"]["slow"] == 42));
    assert_eq!(counter.server.request_count(), 1);
}
