//! Planning speed, cold (parse, validate and plan) and cached (the plan cache's hit path), on
//! several supergraphs: the example's, and the planner's test fixtures.
//!
//! Run: `cargo bench --bench planning` (figures are machine-dependent; compare side by side).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::engine::{Engine, EngineConfig};
use tessera::request::{self, Limits};
use tessera::supergraph::Supergraph;

/// (name, supergraph file relative to the router crate, operation)
const CASES: &[(&str, &str, &str)] = &[
    (
        "example_deep",
        "../schema/supergraph.graphql",
        "{ topProducts(first: 20) { upc name price inStock shippingEstimate reviews { rating body \
         author { username orders { total items { quantity product { name inStock } } } } } } }",
    ),
    (
        "shop_requires_provides",
        "tests/fixtures/plan/shop.graphql",
        "{ me { reviews { product { name inStock shippingEstimate reviews { author { username name } } } } } }",
    ),
    (
        "media_abstract_types",
        "tests/fixtures/plan/media.graphql",
        "{ search(term: \"x\") { __typename id title ... on Book { id } } everything { title } }",
    ),
    (
        "accounts_interface_object",
        "tests/fixtures/plan/accounts.graphql",
        "{ accounts { __typename id email balance } richest { __typename email balance } }",
    ),
];

fn load(path: &str) -> Supergraph {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let sdl = std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("{full}: {err}"));
    Supergraph::parse(&sdl).unwrap_or_else(|err| panic!("{full}: {err}"))
}

fn planning(c: &mut Criterion) {
    for (name, path, query) in CASES {
        let supergraph = load(path);
        // Only operations valid for the fixture are benchmarked; an invalid one is a bench bug.
        let document = match request::parse_and_validate(&supergraph.api, query, &Limits::default())
        {
            Ok(document) => document,
            Err(errors) => {
                eprintln!("skipping {name}: {:?}", errors.first().map(|e| &e.message));
                continue;
            }
        };
        tessera::plan::plan(&supergraph, &document, None)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        c.bench_function(&format!("plan_cold/{name}"), |b| {
            b.iter(|| {
                let document = request::parse_and_validate(
                    &supergraph.api,
                    black_box(query),
                    &Limits::default(),
                )
                .expect("valid above");
                black_box(tessera::plan::plan(&supergraph, &document, None).expect("planned above"))
            })
        });
        let engine = Engine::new(supergraph, EngineConfig::default());
        engine.plan_for(query, None).expect("planned above");
        c.bench_function(&format!("plan_cached/{name}"), |b| {
            b.iter(|| black_box(engine.plan_for(black_box(query), None).expect("cached")))
        });
    }
}

criterion_group!(benches, planning);
criterion_main!(benches);
