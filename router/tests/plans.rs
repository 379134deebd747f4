//! Planner snapshots: fixture supergraphs written for these tests, an operation each, and the
//! printed plan.

use apollo_compiler::ExecutableDocument;
use tessera::plan;
use tessera::supergraph::Supergraph;

fn supergraph(name: &str) -> Supergraph {
    let path = format!(
        "{}/tests/fixtures/plan/{name}.graphql",
        env!("CARGO_MANIFEST_DIR")
    );
    let sdl = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    Supergraph::parse(&sdl).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn plan_text(supergraph: &Supergraph, query: &str) -> String {
    let document = ExecutableDocument::parse_and_validate(&supergraph.api, query, "query.graphql")
        .unwrap_or_else(|err| panic!("invalid test query: {}", err.errors));
    match plan::plan(supergraph, &document, None) {
        Ok(plan) => plan.to_string(),
        Err(err) => format!("PlanError: {err}"),
    }
}

macro_rules! plan_snapshot {
    ($name:ident, $fixture:expr, $query:expr) => {
        #[test]
        fn $name() {
            let supergraph = supergraph($fixture);
            insta::assert_snapshot!(plan_text(&supergraph, $query));
        }
    };
}

plan_snapshot!(
    root_fields_of_one_subgraph_share_one_fetch,
    "shop",
    "{ me { id name } topProducts { upc name } }"
);

plan_snapshot!(
    entity_fields_of_another_subgraph_are_fetched_through_entities,
    "shop",
    "{ topProducts { name reviews { body } } }"
);

plan_snapshot!(
    requires_fetches_the_required_fields_first,
    "shop",
    "{ topProducts { upc shippingEstimate } }"
);

plan_snapshot!(
    provides_saves_an_entity_fetch,
    "shop",
    "{ review(id: \"1\") { author { username } } }"
);

plan_snapshot!(
    a_field_outside_provides_still_hands_off,
    "shop",
    "{ review(id: \"1\") { author { username name } } }"
);

plan_snapshot!(
    deep_queries_chain_hand_offs,
    "shop",
    "{ me { reviews { product { name inStock reviews { author { name } } } } } }"
);

plan_snapshot!(
    mutation_fields_run_in_order,
    "shop",
    "mutation { a: addReview(upc: \"1\", body: \"x\") { id } restock(upc: \"1\", quantity: 2) { name } b: addReview(upc: \"2\", body: \"y\") { id } }"
);

plan_snapshot!(
    variable_skip_and_include_become_conditions,
    "shop",
    "query($withReviews: Boolean!) { topProducts { name reviews @include(if: $withReviews) { body } } }"
);

plan_snapshot!(
    literal_skip_causes_no_fetch,
    "shop",
    "{ topProducts { name reviews @skip(if: true) { body } } }"
);

plan_snapshot!(root_typename_needs_no_fetch, "shop", "{ __typename }");
