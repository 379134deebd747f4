//! The executor's own work on a deep query, without the network: the example's supergraph, a
//! query across four subgraphs (100 products, their stock, about four reviews each with their
//! authors), and subgraph responses of the sizes the seeded example returns (about 100 KB in,
//! 95 KB out). It measures writing requests and representations, parsing responses, merging
//! and shaping the client's response — the router's CPU per request minus HTTP and the kernel.
//!
//! Run: `cargo bench --bench execution` (figures are machine-dependent; compare side by side).

use std::collections::HashMap;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tessera::execute::fetch::{FetchError, Reply, SubgraphRequest, Transport};
use tessera::execute::{Executor, ExecutorConfig, Job, RunSizes};
use tessera::headers::SubgraphHeaders;
use tessera::request::{self, Limits};
use tessera::supergraph::Supergraph;

// The router binary's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERY: &str = "{ topProducts(first: 100) { upc name price weight category inStock stock \
    shippingEstimate reviews { id rating body createdAt author { id username name } } } }";

const BODY: &str = "Solid build and it does what it says. Shipping was quick; would buy again \
    for the price.";

/// Answers like the example's subgraphs, from the request alone (deterministic data).
struct Synthetic;

impl Synthetic {
    fn answer(body: &[u8]) -> Value {
        let request: Value = serde_json::from_slice(body).expect("a GraphQL request");
        let query = request["query"].as_str().unwrap_or_default();
        if query.contains("topProducts") {
            let products: Vec<Value> = (0..100)
                .map(|i| {
                    let category = ["Books", "Garden", "Kitchen", "Toys"][i % 4];
                    json!({ "upc": format!("upc-{i:04}"), "name": format!("Product number {i}"),
                        "price": 1999 + i * 37, "weight": 150 + i * 11,
                        "category": category,
                        "__typename": "Product" })
                })
                .collect();
            return json!({ "data": { "topProducts": products } });
        }
        let representations = request["variables"]["representations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let entities: Vec<Value> = representations
            .iter()
            .map(|r| {
                let key = r["upc"]
                    .as_str()
                    .or_else(|| r["id"].as_str())
                    .unwrap_or_default();
                let n: usize = key
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .unwrap_or(0);
                if r["__typename"] == "User" {
                    json!({ "username": format!("user{n}"), "name": format!("User Number {n}") })
                } else if query.contains("inStock") {
                    json!({ "inStock": !n.is_multiple_of(7), "stock": (n * 13) % 90, "shippingEstimate": 500 + n })
                } else {
                    let reviews: Vec<Value> = (0..(3 + n % 3))
                        .map(|k| {
                            json!({ "id": format!("review-{n}-{k}"), "rating": 1 + (n + k) % 5,
                                "body": BODY, "createdAt": "2026-11-01T12:00:00Z",
                                "author": { "id": format!("user-{}", (n * 7 + k) % 199), "__typename": "User" } })
                        })
                        .collect();
                    json!({ "reviews": reviews })
                }
            })
            .collect();
        json!({ "data": { "_entities": entities } })
    }
}

impl Transport for Synthetic {
    fn send<'a>(
        &'a self,
        request: SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, FetchError>> {
        let answer = serde_json::to_vec(&Self::answer(&request.body)).expect("JSON");
        async move {
            Ok(Reply {
                status: 200,
                body: Bytes::from(answer),
            })
        }
        .boxed()
    }
}

/// Answers recorded from [`Synthetic`], looked up by request body (so the measured loop does
/// no subgraph work).
struct Recorded(HashMap<Bytes, Bytes>);

impl Transport for Recorded {
    fn send<'a>(
        &'a self,
        request: SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, FetchError>> {
        let answer = self.0.get(&request.body).cloned();
        async move {
            answer
                .map(|body| Reply { status: 200, body })
                .ok_or_else(|| FetchError::Transport("no recorded answer".into()))
        }
        .boxed()
    }
}

/// Records every exchange of one run.
struct Recorder(std::sync::Mutex<HashMap<Bytes, Bytes>>);

impl Transport for Recorder {
    fn send<'a>(
        &'a self,
        request: SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, FetchError>> {
        async move {
            let body = request.body.clone();
            let reply = Synthetic.send(request).await?;
            self.0
                .lock()
                .expect("not poisoned")
                .insert(body, reply.body.clone());
            Ok(reply)
        }
        .boxed()
    }
}

fn execution(c: &mut Criterion) {
    let path = format!(
        "{}/../schema/supergraph.graphql",
        env!("CARGO_MANIFEST_DIR")
    );
    let sdl = std::fs::read_to_string(&path).expect("the example's supergraph");
    let supergraph = Supergraph::parse(&sdl).expect("a supergraph");
    let document = request::parse_and_validate(&supergraph.api, QUERY, &Limits::default())
        .expect("a valid query");
    let plan = tessera::plan::plan(&supergraph, &document, None).expect("a plan");
    let executor = Executor::new(ExecutorConfig::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let variables = serde_json::Map::new();
    let sizes = RunSizes::default();
    let headers = SubgraphHeaders::default();
    let job = Job {
        supergraph: &supergraph,
        plan: &plan,
        sizes: &sizes,
        variables: &variables,
        headers: &headers,
    };

    let recorder = Recorder(Default::default());
    let response = runtime.block_on(executor.execute_with(&recorder, job, None));
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let recorded = recorder.0.into_inner().expect("not poisoned");
    let received: usize = recorded.values().map(Bytes::len).sum();
    let written = response.data.as_ref().map_or(0, Vec::len);
    eprintln!(
        "deep query: {} subgraph requests, {received} B received, {written} B of data written",
        recorded.len()
    );
    let recorded = Recorded(recorded);

    let mut group = c.benchmark_group("execute");
    group.throughput(Throughput::Bytes(received as u64));
    group.bench_function("deep_query_four_subgraphs", |b| {
        b.iter(|| {
            let response = runtime.block_on(executor.execute_with(&recorded, job, None));
            black_box(response.data)
        })
    });
    group.finish();
}

criterion_group!(benches, execution);
criterion_main!(benches);
