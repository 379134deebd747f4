use apollo_compiler::ExecutableDocument;
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;

use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/inaccessible.graphql");

fn api() -> Valid<Schema> {
    let supergraph =
        Schema::parse_and_validate(FIXTURE, "inaccessible.graphql").expect("fixture validates");
    api_schema(&supergraph).expect("API schema derives")
}

fn field_names(schema: &Schema, ty: &str) -> Vec<String> {
    match &schema.types[ty] {
        ExtendedType::Object(o) => o.fields.keys().map(|k| k.to_string()).collect(),
        ExtendedType::Interface(i) => i.fields.keys().map(|k| k.to_string()).collect(),
        ExtendedType::InputObject(i) => i.fields.keys().map(|k| k.to_string()).collect(),
        other => panic!("{ty} has no fields: {other:?}"),
    }
}

#[test]
fn inaccessible_types_of_every_kind_are_removed() {
    let api = api();
    for ty in [
        "Secret",       // interface
        "InternalNote", // object
        "Draft",        // object
        "Hidden",       // union
        "WeightUnit",   // enum
        "Opaque",       // scalar
        "HiddenInput",  // input
    ] {
        assert!(!api.types.contains_key(ty), "{ty} should be removed");
    }
    for ty in [
        "Product",
        "Node",
        "Review",
        "SearchResult",
        "Status",
        "Rating",
    ] {
        assert!(api.types.contains_key(ty), "{ty} should stay");
    }
}

#[test]
fn inaccessible_fields_and_fields_of_removed_types_are_removed() {
    let api = api();
    assert_eq!(
        field_names(&api, "Product"),
        [
            "id",
            "upc",
            "name",
            "secretCode",
            "status",
            "weight",
            "reviews"
        ]
    );
    assert_eq!(field_names(&api, "Query"), ["product", "search", "byInput"]);
}

#[test]
fn inaccessible_arguments_and_arguments_of_removed_types_are_removed() {
    let api = api();
    let ExtendedType::Object(product) = &api.types["Product"] else {
        panic!("Product is an object");
    };
    let args = |field: &str| -> Vec<String> {
        product.fields[field]
            .arguments
            .iter()
            .map(|a| a.name.to_string())
            .collect()
    };
    assert_eq!(args("name"), ["locale"]);
    assert!(args("weight").is_empty(), "WeightUnit is inaccessible");
    assert_eq!(args("reviews"), ["filter"]);
}

#[test]
fn inaccessible_enum_values_and_input_fields_are_removed() {
    let api = api();
    let ExtendedType::Enum(status) = &api.types["Status"] else {
        panic!("Status is an enum");
    };
    let values: Vec<_> = status.values.keys().map(|k| k.as_str()).collect();
    assert_eq!(values, ["ACTIVE", "DISCONTINUED"]);
    assert_eq!(field_names(&api, "ReviewFilter"), ["minRating"]);
}

#[test]
fn union_members_and_implementations_of_removed_types_are_removed() {
    let api = api();
    let ExtendedType::Union(search) = &api.types["SearchResult"] else {
        panic!("SearchResult is a union");
    };
    let members: Vec<_> = search.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, ["Product", "Review"]);
    assert!(
        !api.types.contains_key("OnlyDrafts"),
        "a union whose every member is removed goes too"
    );
    let ExtendedType::Object(product) = &api.types["Product"] else {
        panic!("Product is an object");
    };
    let interfaces: Vec<_> = product
        .implements_interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(interfaces, ["Node"]);
}

#[test]
fn root_operation_whose_type_is_emptied_is_dropped() {
    let api = api();
    assert!(!api.types.contains_key("Mutation"));
    assert!(api.schema_definition.mutation.is_none());
    assert_eq!(
        api.schema_definition
            .query
            .as_ref()
            .map(|q| q.name.as_str()),
        Some("Query")
    );
}

#[test]
fn federation_machinery_is_removed_and_custom_executable_directives_kept() {
    let api = api();
    let printed = api.to_string();
    for needle in ["join__", "link__", "@link", "@inaccessible", "@tag"] {
        assert!(!printed.contains(needle), "{needle} left in:\n{printed}");
    }
    assert!(api.directive_definitions.contains_key("lowercase"));
    assert!(api.directive_definitions.contains_key("deprecated"));
    assert!(api.schema_definition.directives.is_empty());
}

#[test]
fn introspection_of_the_api_schema_never_shows_federation_machinery() {
    let api = api();
    let query = r#"{
        __schema {
            types { name fields(includeDeprecated: true) { name args { name } } enumValues(includeDeprecated: true) { name } }
            directives { name }
        }
        status: __type(name: "Status") { enumValues { name } }
        graph: __type(name: "join__Graph") { name }
    }"#;
    let document =
        ExecutableDocument::parse_and_validate(&api, query, "introspect.graphql").expect("valid");
    let operation = document.operations.get(None).expect("one operation");
    let variables = Valid::assume_valid(JsonMap::new());
    let response = apollo_compiler::introspection::partial_execute(
        &api,
        &api.implementers_map(),
        &document,
        operation,
        &variables,
    )
    .expect("introspection runs");
    let json = serde_json::to_string(&response.data).expect("serializable");
    for needle in [
        "join__",
        "link__",
        "\"link\"",
        "\"inaccessible\"",
        "\"tag\"",
        "costPrice",
        "EMBARGOED",
        "Draft",
        "legacyLocale",
    ] {
        assert!(!json.contains(needle), "{needle} visible in {json}");
    }
    assert!(json.contains("\"graph\":null"), "{json}");
    assert!(json.contains("\"DISCONTINUED\""));
}

#[test]
fn unsupported_security_feature_fails_loading() {
    let sdl = FIXTURE.replace(
        "@link(url: \"https://specs.apollo.dev/tag/v0.3\")",
        "@link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\", for: SECURITY)",
    );
    let supergraph = Schema::parse_and_validate(sdl, "s.graphql").expect("still valid SDL");
    let err = api_schema(&supergraph).expect_err("requiresScopes is not implemented");
    assert!(
        matches!(err, SupergraphError::UnsupportedFeature(ref m) if m.contains("requiresScopes")),
        "{err}"
    );
}

#[test]
fn renamed_inaccessible_directive_is_honoured() {
    let sdl = FIXTURE
        .replace(
            "inaccessible/v0.2\", for: SECURITY)",
            "inaccessible/v0.2\", as: \"hidden\", for: SECURITY)",
        )
        .replace("@inaccessible", "@hidden");
    let supergraph = Schema::parse_and_validate(sdl, "s.graphql").expect("valid SDL");
    let api = api_schema(&supergraph).expect("derives");
    assert!(!api.types.contains_key("Secret"));
    assert!(!api.directive_definitions.contains_key("hidden"));
    assert_eq!(field_names(&api, "Query"), ["product", "search", "byInput"]);
}

#[test]
fn api_schema_prints_as_expected() {
    insta::assert_snapshot!(api().to_string());
}
