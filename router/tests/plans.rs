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

/// The plan of a query that must plan.
fn plan_of(supergraph: &Supergraph, query: &str) -> plan::QueryPlan {
    let document = ExecutableDocument::parse_and_validate(&supergraph.api, query, "query.graphql")
        .unwrap_or_else(|err| panic!("invalid test query: {}", err.errors));
    plan::plan(supergraph, &document, None).expect("plans")
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

// ---------------------------------------------------------------------------------------------
// Keys (library.graphql): several keys, a composite nested key, `resolvable: false`.
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    an_entity_hand_off_uses_the_key_the_current_subgraph_can_supply,
    "library",
    "{ loans { due book { title year } } }"
);

plan_snapshot!(
    a_subgraph_that_has_both_keys_supplies_the_one_the_target_accepts,
    "library",
    "{ books { isbn timesLent } }"
);

plan_snapshot!(
    a_composite_key_the_current_subgraph_lacks_is_fetched_from_another_subgraph_first,
    "library",
    "{ archivedBooks { title timesLent } }"
);

plan_snapshot!(
    a_subgraph_whose_key_is_not_resolvable_is_never_asked_for_the_entity,
    "library",
    "{ member(id: \"m1\") { favoriteBook { title } } }"
);

plan_snapshot!(
    hand_offs_chain_through_the_subgraph_that_supplies_the_next_key,
    "library",
    "{ member(id: \"m1\") { name favoriteBook { title timesLent } } }"
);

// ---------------------------------------------------------------------------------------------
// `@skip` / `@include`, fragments and aliases (library.graphql).
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    literal_conditions_are_evaluated_and_variable_conditions_are_kept,
    "library",
    "query($withLoans: Boolean!, $hideYear: Boolean!) { books { title year @skip(if: $hideYear) isbn @include(if: true) id @skip(if: true) timesLent @include(if: $withLoans) } }"
);

plan_snapshot!(
    skip_and_include_on_one_field_combine_into_one_condition,
    "library",
    "query($show: Boolean!, $hide: Boolean!) { loans { due book @include(if: $show) @skip(if: $hide) { title } } }"
);

plan_snapshot!(
    a_condition_on_an_inline_fragment_guards_the_hand_offs_inside_it,
    "library",
    "query($full: Boolean!) { loans { id ... @include(if: $full) { member { name } } } }"
);

plan_snapshot!(
    a_root_field_skipped_by_a_literal_causes_no_fetch_of_its_subgraph,
    "library",
    "{ books { title } loans @skip(if: true) { due } }"
);

plan_snapshot!(
    a_root_fetch_whose_every_field_is_skipped_by_a_variable_is_conditional,
    "library",
    "query($hide: Boolean!, $full: Boolean!) { books { title } due: loans @skip(if: $hide) { due } ids: loans @skip(if: $hide) @include(if: $full) { id } member(id: \"m1\") @include(if: $full) { name } }"
);

plan_snapshot!(
    named_inline_and_nested_fragments_are_inlined_with_their_aliases,
    "library",
    "query { loans { ...LoanParts } } fragment LoanParts on Loan { when: due book { ... on Book { ...BookTitle } } member { ...MemberName } } fragment BookTitle on Book { heading: title } fragment MemberName on Member { fullName: name }"
);

plan_snapshot!(
    aliased_root_fields_with_arguments_share_one_fetch_and_hand_off_by_alias,
    "library",
    "{ first: member(id: \"m1\") { name } second: member(id: \"m2\") { name loans { due } } }"
);

plan_snapshot!(
    one_field_under_two_aliases_is_handed_off_under_both,
    "library",
    "{ books { a: timesLent b: timesLent title } }"
);

plan_snapshot!(
    mutation_fields_run_in_order_and_their_hand_offs_follow_each_step,
    "library",
    "mutation { first: lend(isbn: \"1\", memberId: \"m1\") { id } addBook(title: \"New\") { isbn timesLent } second: lend(isbn: \"2\", memberId: \"m1\") { id book { title } } giveBack(loanId: \"l1\") { id } }"
);

// ---------------------------------------------------------------------------------------------
// `@requires` chains and cycles (parcels.graphql).
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    a_requirement_that_has_requirements_of_its_own_is_fetched_first,
    "parcels",
    "{ parcels { insurance } }"
);

plan_snapshot!(
    requirements_can_lead_back_to_the_subgraph_that_needs_them,
    "parcels",
    "{ parcels { id handling } }"
);

plan_snapshot!(
    a_required_field_is_fetched_once_for_every_field_that_needs_it,
    "parcels",
    "{ parcels { cost insurance handling destination } }"
);

// ---------------------------------------------------------------------------------------------
// Interfaces, unions, `@provides` on abstract fields, `@join__field(type:)`, field conflicts
// (media.graphql).
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    fragments_on_implementations_a_subgraph_does_not_know_are_not_sent_to_it,
    "media",
    "{ search(term: \"x\") { title ... on Book { pages } ... on Movie { minutes } ... on Episode { show { name } } } }"
);

plan_snapshot!(
    fields_of_implementations_in_another_subgraph_are_fetched_per_type,
    "media",
    "{ search(term: \"x\") { id ... on Book { stars } ... on Movie { stars } } }"
);

plan_snapshot!(
    an_interface_field_external_on_one_implementation_is_split_by_type,
    "media",
    "{ everything { id title } }"
);

plan_snapshot!(
    provides_on_an_interface_field_saves_the_entity_fetch_for_the_provided_type,
    "media",
    "{ shows { mentions { title } } }"
);

plan_snapshot!(
    provides_on_a_union_field_covers_only_the_provided_fields_of_the_provided_member,
    "media",
    "{ shows { recommended { ... on Book { title pages } ... on Episode { title } } } }"
);

plan_snapshot!(
    union_members_a_subgraph_does_not_know_are_dropped_from_its_fetch,
    "media",
    "{ picks { ... on Book { title } ... on Movie { title } ... on Episode { title } } }"
);

plan_snapshot!(
    union_members_are_completed_in_the_subgraph_that_owns_each_type,
    "media",
    "{ topRated { __typename ... on Book { title stars } ... on Movie { title } ... on Episode { title show { name } } } }"
);

plan_snapshot!(
    a_field_a_subgraph_declares_with_a_narrower_type_is_planned_against_that_type,
    "media",
    "{ featured { title ... on Book { pages } ... on Movie { minutes } } }"
);

plan_snapshot!(
    fields_whose_types_differ_in_the_subgraph_are_aliased_apart,
    "media",
    "{ search(term: \"x\") { ... on Book { code } ... on Movie { code } } }"
);

// ---------------------------------------------------------------------------------------------
// `@interfaceObject` (accounts.graphql).
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    an_interface_object_subgraph_adds_its_fields_to_every_implementation,
    "accounts",
    "{ accounts { email balance } }"
);

plan_snapshot!(
    typename_below_an_interface_object_comes_from_the_subgraph_that_knows_the_types,
    "accounts",
    "{ richest { balance __typename } }"
);

plan_snapshot!(
    fragments_on_implementations_below_an_interface_object_go_through_the_real_type,
    "accounts",
    "{ richest { balance ... on Company { vatNumber } } }"
);

plan_snapshot!(
    a_field_an_interface_object_adds_is_reachable_from_an_implementation,
    "accounts",
    "{ accounts { ... on Person { birthday balance } } }"
);

#[test]
fn representations_sent_to_an_interface_object_carry_the_interface_name() {
    let supergraph = supergraph("accounts");
    let plan = plan_of(&supergraph, "{ accounts { balance } }");
    let rewrites: Vec<(String, Option<String>)> = plan
        .fetches()
        .iter()
        .filter_map(|fetch| {
            let entities = fetch.entities.as_ref()?;
            let rewrite = entities.rewrite_typename.as_ref().map(|t| t.to_string());
            Some((fetch.service.clone(), rewrite))
        })
        .collect();
    assert_eq!(
        rewrites,
        vec![("billing".to_owned(), Some("Account".to_owned()))]
    );
}

#[test]
fn entity_fetches_carry_their_representations_as_text_with_holes() {
    let supergraph = supergraph("accounts");
    let plan = plan_of(&supergraph, "{ accounts { balance } }");
    // Per type the fetch completes: the text, with `_` for each value looked up.
    let texts: Vec<(String, Vec<Option<String>>)> = plan
        .fetches()
        .iter()
        .filter_map(|fetch| {
            let entities = fetch.entities.as_ref()?;
            let texts = entities
                .representations
                .iter()
                .map(|representation| {
                    let representation = representation.as_ref()?;
                    let (pieces, last) = representation.pieces();
                    let mut text = String::new();
                    for (piece, _) in pieces {
                        text.push_str(&String::from_utf8_lossy(piece));
                        text.push('_');
                    }
                    text.push_str(&String::from_utf8_lossy(last));
                    Some(text)
                })
                .collect();
            Some((fetch.service.clone(), texts))
        })
        .collect();
    // Every type the interface object stands for is sent as `Account`, with its key.
    let account = Some(r#"{"__typename":"Account","id":_}"#.to_owned());
    assert_eq!(
        texts,
        vec![(
            "billing".to_owned(),
            vec![account.clone(), account.clone(), account]
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// `@override`, shared root value types, parent-entity hand-offs (stores.graphql).
// ---------------------------------------------------------------------------------------------

plan_snapshot!(
    an_overridden_field_is_fetched_from_the_subgraph_that_took_it_over,
    "stores",
    "{ products { name price } }"
);

plan_snapshot!(
    a_field_still_used_by_the_overridden_subgraph_is_resolved_by_the_new_owner,
    "stores",
    "{ products { name code units } }"
);

plan_snapshot!(
    a_shared_root_value_type_is_split_across_the_subgraphs_that_resolve_its_fields,
    "stores",
    "{ stats { productCount unitsInStock updatedAt } }"
);

plan_snapshot!(
    a_field_of_a_keyless_value_type_is_fetched_through_its_parent_entity,
    "stores",
    "{ store(id: \"s1\") { name address { street region } } }"
);

// ---------------------------------------------------------------------------------------------
// Known planner defects: each test states the plan the planner should produce.
// ---------------------------------------------------------------------------------------------

/// The services of a plan's fetches, in plan order.
fn fetched_services(supergraph: &Supergraph, query: &str) -> Vec<(String, String)> {
    let document = ExecutableDocument::parse_and_validate(&supergraph.api, query, "query.graphql")
        .unwrap_or_else(|err| panic!("invalid test query: {}", err.errors));
    let plan = plan::plan(supergraph, &document, None).expect("plans");
    plan.fetches()
        .iter()
        .map(|fetch| (fetch.service.clone(), fetch.operation.clone()))
        .collect()
}

#[test]
fn a_value_field_handed_off_through_its_parent_is_not_selected_without_sub_fields() {
    let supergraph = supergraph("stores");
    let fetches = fetched_services(&supergraph, "{ store(id: \"s1\") { address { region } } }");
    let (service, operation) = &fetches[0];
    assert_eq!(service, "stock");
    // `address` is an object type: a selection of it must have a sub-selection (or be absent).
    let bare = operation
        .match_indices("address")
        .any(|(at, _)| !operation[at + "address".len()..].starts_with(" {"));
    assert!(
        !bare,
        "composite field selected without sub-fields: {operation}"
    );
}

#[test]
fn entity_fetches_for_several_types_in_one_subgraph_at_one_path_share_one_fetch() {
    let supergraph = supergraph("media");
    let fetches = fetched_services(
        &supergraph,
        "{ search(term: \"x\") { id ... on Book { stars } ... on Movie { stars } } }",
    );
    let ratings = fetches.iter().filter(|(s, _)| s == "ratings").count();
    assert_eq!(ratings, 1, "{fetches:#?}");
}

// ---- every sub-selection skipped ---------------------------------------------------------------

plan_snapshot!(
    a_composite_field_whose_every_subfield_is_skipped_still_selects_its_typename,
    "shop",
    "{ topProducts { upc reviews { body @skip(if: true) } } }"
);

plan_snapshot!(
    a_root_field_whose_every_subfield_is_skipped_selects_its_typename,
    "shop",
    "{ me { id @include(if: false) name @skip(if: true) } }"
);

// ---- `@provides` on interface fields ---------------------------------------------------------

plan_snapshot!(
    an_external_key_below_a_provided_interface_is_completed_through_the_ancestor_entity,
    "shelters",
    "{ shelter { id pets { __typename a12: id ... on Dog { age name id } } } }"
);

plan_snapshot!(
    a_provided_field_stays_in_the_providing_fetch,
    "shelters",
    "{ shelter { pets { ... on Dog { name } } } }"
);

plan_snapshot!(
    a_field_only_another_subgraph_resolves_below_a_provided_interface_joins_one_entity_fetch,
    "shelters",
    "{ shelter { pets { ... on Cat { age name } ... on Dog { age } } } }"
);

plan_snapshot!(
    a_composite_field_whose_every_subfield_a_variable_may_skip_keeps_an_unconditional_typename,
    "shop",
    "query($s: Boolean!) { topProducts { upc reviews { body @skip(if: $s) } } }"
);

// ---- the client's response keys are the client's -------------------------------------------

plan_snapshot!(
    a_nested_key_field_whose_name_the_client_aliases_elsewhere_gets_a_key_of_its_own,
    "library",
    "{ books { org { id: __typename } timesLent } }"
);

plan_snapshot!(
    two_skips_on_one_field_are_written_as_a_nested_fragment,
    "library",
    "query($a: Boolean!, $b: Boolean!) { books { title } ... @skip(if: $a) { books @skip(if: $b) { year } } }"
);

// ---- shapes subgraphs refuse (gallery.graphql) -----------------------------------------------

plan_snapshot!(
    a_fragment_no_object_of_the_declared_type_can_match_is_left_out,
    "gallery",
    "{ paintings { ... on Similar { similar { ... on Sculpture { id } } } } }"
);

plan_snapshot!(
    a_conditional_fragment_on_a_shared_root_field_is_split_per_subgraph,
    "gallery",
    "query($s: Boolean!) { exhibit { name ... on Exhibit @skip(if: $s) { name price } } }"
);

plan_snapshot!(
    one_response_key_with_different_types_below_two_fragments_is_aliased,
    "gallery",
    "{ accounts { ... on Member { similar { ... on Member { id } } } ... on Guest { similar { ... on Guest { id } } } } }"
);

plan_snapshot!(
    a_fragment_below_an_interface_object_splits_its_fields_between_the_concrete_type_and_the_interface,
    "accounts",
    "{ richest { ... on Company { vatNumber balance } } }"
);
