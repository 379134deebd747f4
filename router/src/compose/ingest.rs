//! Reading one subgraph's SDL into a [`SubgraphSchema`]: its types and fields with the
//! federation directives resolved (Fed2 `@link` imports and renames, or Fed1 defaults).

use apollo_compiler::ast::{self, Definition, DirectiveList, Value};
use apollo_compiler::{Name, Node};
use indexmap::IndexMap;

use super::diagnostics::{Diagnostic, codes};

/// What kind of type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `type`.
    Object,
    /// `interface`.
    Interface,
    /// `union`.
    Union,
    /// `enum`.
    Enum,
    /// `input`.
    InputObject,
    /// `scalar`.
    Scalar,
}

impl Kind {
    /// The SDL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Object => "type",
            Self::Interface => "interface",
            Self::Union => "union",
            Self::Enum => "enum",
            Self::InputObject => "input",
            Self::Scalar => "scalar",
        }
    }
}

/// A `@key`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDef {
    /// The field set.
    pub fields: String,
    /// `resolvable:`.
    pub resolvable: bool,
}

/// An argument or input field.
#[derive(Debug, Clone, PartialEq)]
pub struct InputValueDef {
    /// Description.
    pub description: Option<String>,
    /// Type.
    pub ty: ast::Type,
    /// Default value, printed.
    pub default: Option<String>,
    /// `@inaccessible`.
    pub inaccessible: bool,
    /// `@tag(name:)`s.
    pub tags: Vec<String>,
}

/// A field of an object or interface.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Description.
    pub description: Option<String>,
    /// Type.
    pub ty: ast::Type,
    /// Arguments.
    pub args: IndexMap<Name, InputValueDef>,
    /// `@external`.
    pub external: bool,
    /// `@requires(fields:)`.
    pub requires: Option<String>,
    /// `@provides(fields:)`.
    pub provides: Option<String>,
    /// `@shareable` (on the field or its type).
    pub shareable: bool,
    /// `@override(from:)`.
    pub override_from: Option<String>,
    /// `@inaccessible`.
    pub inaccessible: bool,
    /// `@tag(name:)`s.
    pub tags: Vec<String>,
    /// `@deprecated(reason:)`, with the reason.
    pub deprecated: Option<Option<String>>,
}

/// An enum value.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumValueDef {
    /// Description.
    pub description: Option<String>,
    /// `@inaccessible`.
    pub inaccessible: bool,
    /// `@tag(name:)`s.
    pub tags: Vec<String>,
    /// `@deprecated(reason:)`.
    pub deprecated: Option<Option<String>>,
}

/// A type as one subgraph defines it.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// Kind.
    pub kind: Kind,
    /// Description.
    pub description: Option<String>,
    /// Fields (objects, interfaces).
    pub fields: IndexMap<Name, FieldDef>,
    /// Input fields (input objects).
    pub input_fields: IndexMap<Name, InputValueDef>,
    /// Enum values.
    pub values: IndexMap<Name, EnumValueDef>,
    /// Union members.
    pub members: Vec<Name>,
    /// Implemented interfaces.
    pub implements: Vec<Name>,
    /// `@key`s.
    pub keys: Vec<KeyDef>,
    /// `extend type` or `@extends` (Fed1 semantics).
    pub extension: bool,
    /// `@interfaceObject`.
    pub interface_object: bool,
    /// `@inaccessible`.
    pub inaccessible: bool,
    /// `@tag(name:)`s.
    pub tags: Vec<String>,
}

/// One subgraph, ingested.
#[derive(Debug, Clone)]
pub struct SubgraphSchema {
    /// The subgraph's name.
    pub name: String,
    /// Where the router sends its fetches.
    pub url: String,
    /// Federation 2 (`@link`ed federation spec) or Federation 1.
    pub fed2: bool,
    /// Its types, by supergraph name (root types renamed to Query/Mutation/Subscription).
    pub types: IndexMap<Name, TypeDef>,
    /// Where each type and field (`Type`, `Type.field`) is first defined: (line, column).
    pub locations: std::collections::HashMap<String, (usize, usize)>,
}

/// The names one subgraph uses for the federation directives.
struct FederationNames {
    fed2: bool,
    names: IndexMap<&'static str, String>,
}

const FEDERATION_DIRECTIVES: [&str; 11] = [
    "key",
    "external",
    "requires",
    "provides",
    "shareable",
    "override",
    "inaccessible",
    "tag",
    "interfaceObject",
    "extends",
    "composeDirective",
];

impl FederationNames {
    fn read(document: &ast::Document) -> Self {
        let mut names: IndexMap<&'static str, String> = FEDERATION_DIRECTIVES
            .iter()
            .map(|d| (*d, (*d).to_owned()))
            .collect();
        let mut fed2 = false;
        for definition in &document.definitions {
            let directives = match definition {
                Definition::SchemaDefinition(s) => &s.directives,
                Definition::SchemaExtension(s) => &s.directives,
                _ => continue,
            };
            for link in directives.get_all("link") {
                let Some(Value::String(url)) = link.specified_argument_by_name("url").map(|v| &**v)
                else {
                    continue;
                };
                if !url.contains("/federation/") {
                    continue;
                }
                fed2 = true;
                let prefix = match link.specified_argument_by_name("as").map(|v| &**v) {
                    Some(Value::String(alias)) => alias.clone(),
                    _ => "federation".to_owned(),
                };
                for d in FEDERATION_DIRECTIVES {
                    names.insert(d, format!("{prefix}__{d}"));
                }
                if let Some(Value::List(imports)) =
                    link.specified_argument_by_name("import").map(|v| &**v)
                {
                    for import in imports {
                        let (name, alias) = match &**import {
                            Value::String(name) => (name.clone(), name.clone()),
                            Value::Object(fields) => {
                                let get = |key: &str| {
                                    fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| {
                                        match &**v {
                                            Value::String(s) => Some(s.clone()),
                                            _ => None,
                                        }
                                    })
                                };
                                let Some(name) = get("name") else { continue };
                                let alias = get("as").unwrap_or_else(|| name.clone());
                                (name, alias)
                            }
                            _ => continue,
                        };
                        let plain = name.trim_start_matches('@');
                        if let Some(slot) = FEDERATION_DIRECTIVES.iter().find(|d| **d == plain) {
                            names.insert(slot, alias.trim_start_matches('@').to_owned());
                        }
                    }
                }
            }
        }
        Self { fed2, names }
    }

    fn name(&self, directive: &'static str) -> &str {
        self.names.get(directive).map_or(directive, String::as_str)
    }

    fn has(&self, directives: &DirectiveList, directive: &'static str) -> bool {
        directives.get(self.name(directive)).is_some()
    }

    fn all<'a>(
        &'a self,
        directives: &'a DirectiveList,
        directive: &'static str,
    ) -> impl Iterator<Item = &'a Node<ast::Directive>> + 'a {
        directives.get_all(self.name(directive))
    }
}

fn string_arg(directive: &ast::Directive, name: &str) -> Option<String> {
    match directive.specified_argument_by_name(name).map(|v| &**v) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn description(text: &Option<Node<str>>) -> Option<String> {
    text.as_ref().map(|d| d.to_string())
}

fn deprecated(directives: &DirectiveList) -> Option<Option<String>> {
    directives
        .get("deprecated")
        .map(|d| string_arg(d, "reason"))
}

/// Reads one subgraph's SDL, with the problems found on the way (unknown directives). Syntax
/// errors, which leave nothing to read, are returned as diagnostics with locations.
pub fn ingest(
    name: &str,
    url: &str,
    sdl: &str,
) -> Result<(SubgraphSchema, Vec<Diagnostic>), Vec<Diagnostic>> {
    let document = match ast::Document::parse(sdl, format!("{name}.graphql")) {
        Ok(document) => document,
        Err(with_errors) => {
            return Err(with_errors
                .errors
                .iter()
                .map(|d| {
                    let location = d
                        .line_column_range()
                        .map(|r| format!(" at line {}, column {}", r.start.line, r.start.column))
                        .unwrap_or_default();
                    Diagnostic::error(
                        codes::INVALID_GRAPHQL,
                        Some(name),
                        format!("syntax error{location}: {}", d.error),
                    )
                })
                .collect());
        }
    };
    let fed = FederationNames::read(&document);
    let unknown = unknown_directives(&document, &fed, name);
    let roots = root_names(&document);
    let mut types: IndexMap<Name, TypeDef> = IndexMap::new();
    let locations = element_locations(&document, &roots);
    for definition in &document.definitions {
        let Some((type_name, is_extension)) = type_name_of(definition) else {
            continue;
        };
        if is_federation_type(&type_name) {
            continue;
        }
        let canonical = roots
            .iter()
            .find(|(declared, _)| *declared == type_name)
            .map(|(_, canonical)| canonical.clone())
            .unwrap_or(type_name);
        let entry = types
            .entry(canonical)
            .or_insert_with(|| empty_type(kind_of(definition)));
        read_definition(definition, &fed, entry, is_extension);
    }
    drop_federation_root_fields(&mut types);
    Ok((
        SubgraphSchema {
            name: name.to_owned(),
            url: url.to_owned(),
            fed2: fed.fed2,
            types,
            locations,
        },
        unknown,
    ))
}

/// Root fields federation adds to every subgraph's `Query`.
const FEDERATION_ROOT_FIELDS: [&str; 2] = ["_entities", "_service"];

/// Removes the `Query._entities` and `Query._service` that many subgraph libraries print in
/// `_service { sdl }` (with federation's own types and directive definitions, which are
/// skipped where they are read); a `Query` left without fields had only those, and goes too.
fn drop_federation_root_fields(types: &mut IndexMap<Name, TypeDef>) {
    let Some(query) = types.get_mut("Query") else {
        return;
    };
    let before = query.fields.len();
    query
        .fields
        .retain(|name, _| !FEDERATION_ROOT_FIELDS.contains(&name.as_str()));
    if query.fields.is_empty() && before > 0 {
        types.shift_remove("Query");
    }
}

/// Types every subgraph has for federation's own use; they never reach the supergraph.
fn is_federation_type(name: &str) -> bool {
    matches!(
        name,
        "_Service"
            | "_Entity"
            | "_Any"
            | "FieldSet"
            | "_FieldSet"
            | "link__Import"
            | "link__Purpose"
    ) || name.starts_with("federation__")
        || name.starts_with("link__")
}

/// `schema { query: RootQuery }` → [("RootQuery", "Query")].
fn root_names(document: &ast::Document) -> Vec<(Name, Name)> {
    let mut out = Vec::new();
    for definition in &document.definitions {
        let roots = match definition {
            Definition::SchemaDefinition(s) => &s.root_operations,
            Definition::SchemaExtension(s) => &s.root_operations,
            _ => continue,
        };
        for root in roots {
            let (operation, name) = &**root;
            let canonical = match operation {
                ast::OperationType::Query => "Query",
                ast::OperationType::Mutation => "Mutation",
                ast::OperationType::Subscription => "Subscription",
            };
            out.push((name.clone(), Name::new_unchecked(canonical)));
        }
    }
    out
}

fn type_name_of(definition: &Definition) -> Option<(Name, bool)> {
    Some(match definition {
        Definition::ObjectTypeDefinition(d) => (d.name.clone(), false),
        Definition::ObjectTypeExtension(d) => (d.name.clone(), true),
        Definition::InterfaceTypeDefinition(d) => (d.name.clone(), false),
        Definition::InterfaceTypeExtension(d) => (d.name.clone(), true),
        Definition::UnionTypeDefinition(d) => (d.name.clone(), false),
        Definition::UnionTypeExtension(d) => (d.name.clone(), true),
        Definition::EnumTypeDefinition(d) => (d.name.clone(), false),
        Definition::EnumTypeExtension(d) => (d.name.clone(), true),
        Definition::InputObjectTypeDefinition(d) => (d.name.clone(), false),
        Definition::InputObjectTypeExtension(d) => (d.name.clone(), true),
        Definition::ScalarTypeDefinition(d) => (d.name.clone(), false),
        Definition::ScalarTypeExtension(d) => (d.name.clone(), true),
        _ => return None,
    })
}

fn kind_of(definition: &Definition) -> Kind {
    match definition {
        Definition::InterfaceTypeDefinition(_) | Definition::InterfaceTypeExtension(_) => {
            Kind::Interface
        }
        Definition::UnionTypeDefinition(_) | Definition::UnionTypeExtension(_) => Kind::Union,
        Definition::EnumTypeDefinition(_) | Definition::EnumTypeExtension(_) => Kind::Enum,
        Definition::InputObjectTypeDefinition(_) | Definition::InputObjectTypeExtension(_) => {
            Kind::InputObject
        }
        Definition::ScalarTypeDefinition(_) | Definition::ScalarTypeExtension(_) => Kind::Scalar,
        _ => Kind::Object,
    }
}

fn empty_type(kind: Kind) -> TypeDef {
    TypeDef {
        kind,
        description: None,
        fields: IndexMap::new(),
        input_fields: IndexMap::new(),
        values: IndexMap::new(),
        members: Vec::new(),
        implements: Vec::new(),
        keys: Vec::new(),
        extension: false,
        interface_object: false,
        inaccessible: false,
        tags: Vec::new(),
    }
}

fn tags(fed: &FederationNames, directives: &DirectiveList) -> Vec<String> {
    fed.all(directives, "tag")
        .filter_map(|d| string_arg(d, "name"))
        .collect()
}

fn read_definition(
    definition: &Definition,
    fed: &FederationNames,
    into: &mut TypeDef,
    is_extension: bool,
) {
    let (directives, desc) = match definition {
        Definition::ObjectTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::ObjectTypeExtension(d) => (&d.directives, None),
        Definition::InterfaceTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::InterfaceTypeExtension(d) => (&d.directives, None),
        Definition::UnionTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::UnionTypeExtension(d) => (&d.directives, None),
        Definition::EnumTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::EnumTypeExtension(d) => (&d.directives, None),
        Definition::InputObjectTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::InputObjectTypeExtension(d) => (&d.directives, None),
        Definition::ScalarTypeDefinition(d) => (&d.directives, description(&d.description)),
        Definition::ScalarTypeExtension(d) => (&d.directives, None),
        _ => return,
    };
    if into.description.is_none() {
        into.description = desc;
    }
    into.extension |= is_extension || fed.has(directives, "extends");
    into.interface_object |= fed.has(directives, "interfaceObject");
    into.inaccessible |= fed.has(directives, "inaccessible");
    into.tags.extend(tags(fed, directives));
    for key in fed.all(directives, "key") {
        if let Some(fields) = string_arg(key, "fields") {
            let resolvable = !matches!(
                key.specified_argument_by_name("resolvable").map(|v| &**v),
                Some(Value::Boolean(false))
            );
            into.keys.push(KeyDef { fields, resolvable });
        }
    }
    // Fed1: every field of a type is shareable; Fed2: `@shareable` on the type or field.
    let type_shareable = !fed.fed2 || fed.has(directives, "shareable");
    // `@external` on a type marks every field it declares there.
    let type_external = fed.has(directives, "external");
    match definition {
        Definition::ObjectTypeDefinition(d) => {
            into.implements
                .extend(d.implements_interfaces.iter().cloned());
            read_fields(&d.fields, fed, into, (type_shareable, type_external));
        }
        Definition::ObjectTypeExtension(d) => {
            into.implements
                .extend(d.implements_interfaces.iter().cloned());
            read_fields(&d.fields, fed, into, (type_shareable, type_external));
        }
        Definition::InterfaceTypeDefinition(d) => {
            into.implements
                .extend(d.implements_interfaces.iter().cloned());
            read_fields(&d.fields, fed, into, (type_shareable, type_external));
        }
        Definition::InterfaceTypeExtension(d) => {
            into.implements
                .extend(d.implements_interfaces.iter().cloned());
            read_fields(&d.fields, fed, into, (type_shareable, type_external));
        }
        Definition::UnionTypeDefinition(d) => into.members.extend(d.members.iter().cloned()),
        Definition::UnionTypeExtension(d) => into.members.extend(d.members.iter().cloned()),
        Definition::EnumTypeDefinition(d) => read_values(&d.values, fed, into),
        Definition::EnumTypeExtension(d) => read_values(&d.values, fed, into),
        Definition::InputObjectTypeDefinition(d) => {
            read_inputs(&d.fields, fed, &mut into.input_fields)
        }
        Definition::InputObjectTypeExtension(d) => {
            read_inputs(&d.fields, fed, &mut into.input_fields)
        }
        _ => {}
    }
    into.implements.dedup();
}

fn read_fields(
    fields: &[Node<ast::FieldDefinition>],
    fed: &FederationNames,
    into: &mut TypeDef,
    (type_shareable, type_external): (bool, bool),
) {
    for field in fields {
        let mut args = IndexMap::new();
        read_inputs(&field.arguments, fed, &mut args);
        let directives = &field.directives;
        into.fields.insert(
            field.name.clone(),
            FieldDef {
                description: description(&field.description),
                ty: field.ty.clone(),
                args,
                external: type_external || fed.has(directives, "external"),
                requires: fed
                    .all(directives, "requires")
                    .find_map(|d| string_arg(d, "fields")),
                provides: fed
                    .all(directives, "provides")
                    .find_map(|d| string_arg(d, "fields")),
                shareable: type_shareable || fed.has(directives, "shareable"),
                override_from: fed
                    .all(directives, "override")
                    .find_map(|d| string_arg(d, "from")),
                inaccessible: fed.has(directives, "inaccessible"),
                tags: tags(fed, directives),
                deprecated: deprecated(directives),
            },
        );
    }
}

fn read_inputs(
    values: &[Node<ast::InputValueDefinition>],
    fed: &FederationNames,
    into: &mut IndexMap<Name, InputValueDef>,
) {
    for value in values {
        into.insert(
            value.name.clone(),
            InputValueDef {
                description: description(&value.description),
                ty: (*value.ty).clone(),
                default: value.default_value.as_ref().map(|v| v.to_string()),
                inaccessible: fed.has(&value.directives, "inaccessible"),
                tags: tags(fed, &value.directives),
            },
        );
    }
}

fn read_values(
    values: &[Node<ast::EnumValueDefinition>],
    fed: &FederationNames,
    into: &mut TypeDef,
) {
    for value in values {
        into.values.insert(
            value.value.clone(),
            EnumValueDef {
                description: description(&value.description),
                inaccessible: fed.has(&value.directives, "inaccessible"),
                tags: tags(fed, &value.directives),
                deprecated: deprecated(&value.directives),
            },
        );
    }
}

/// Directives every GraphQL schema knows.
const BUILT_IN_DIRECTIVES: [&str; 7] = [
    "skip",
    "include",
    "deprecated",
    "specifiedBy",
    "oneOf",
    "defer",
    "stream",
];

/// Every directive application whose name is neither built in, nor a federation directive
/// under this subgraph's names, nor defined in the SDL itself.
fn unknown_directives(
    document: &ast::Document,
    fed: &FederationNames,
    subgraph: &str,
) -> Vec<Diagnostic> {
    let mut known: Vec<String> = BUILT_IN_DIRECTIVES
        .iter()
        .map(|d| (*d).to_owned())
        .collect();
    known.extend(fed.names.values().cloned());
    known.push("link".to_owned());
    if !fed.fed2 {
        // Fed1 subgraphs use the plain names.
        known.extend(FEDERATION_DIRECTIVES.iter().map(|d| (*d).to_owned()));
    }
    for definition in &document.definitions {
        if let Definition::DirectiveDefinition(d) = definition {
            known.push(d.name.to_string());
        }
    }
    let mut out = Vec::new();
    let mut check = |directives: &DirectiveList, at: &str| {
        for directive in directives.iter() {
            if known.iter().any(|k| *k == directive.name.as_str()) {
                continue;
            }
            let location = directive
                .line_column_range(&document.sources)
                .map(|r| format!(" at line {}, column {}", r.start.line, r.start.column))
                .unwrap_or_default();
            out.push(Diagnostic::error(
                super::diagnostics::codes::UNKNOWN_DIRECTIVE,
                Some(subgraph),
                format!("unknown directive @{} on {at}{location}", directive.name),
            ));
        }
    };
    for definition in &document.definitions {
        let Some((type_name, _)) = type_name_of(definition) else {
            continue;
        };
        match definition {
            Definition::ObjectTypeDefinition(d) => {
                check(&d.directives, &type_name);
                check_fields(&d.fields, &type_name, &mut check);
            }
            Definition::ObjectTypeExtension(d) => {
                check(&d.directives, &type_name);
                check_fields(&d.fields, &type_name, &mut check);
            }
            Definition::InterfaceTypeDefinition(d) => {
                check(&d.directives, &type_name);
                check_fields(&d.fields, &type_name, &mut check);
            }
            Definition::InterfaceTypeExtension(d) => {
                check(&d.directives, &type_name);
                check_fields(&d.fields, &type_name, &mut check);
            }
            Definition::EnumTypeDefinition(d) => {
                check(&d.directives, &type_name);
                for value in &d.values {
                    check(&value.directives, &format!("{type_name}.{}", value.value));
                }
            }
            Definition::InputObjectTypeDefinition(d) => {
                check(&d.directives, &type_name);
                for field in &d.fields {
                    check(&field.directives, &format!("{type_name}.{}", field.name));
                }
            }
            Definition::UnionTypeDefinition(d) => check(&d.directives, &type_name),
            Definition::ScalarTypeDefinition(d) => check(&d.directives, &type_name),
            _ => {}
        }
    }
    out
}

fn check_fields(
    fields: &[Node<ast::FieldDefinition>],
    type_name: &str,
    check: &mut dyn FnMut(&DirectiveList, &str),
) {
    for field in fields {
        let at = format!("{type_name}.{}", field.name);
        check(&field.directives, &at);
        for arg in &field.arguments {
            check(&arg.directives, &format!("{at}({}:)", arg.name));
        }
    }
}

/// Where each type and field is first defined, by coordinate (root types by their supergraph
/// names).
fn element_locations(
    document: &ast::Document,
    roots: &[(Name, Name)],
) -> std::collections::HashMap<String, (usize, usize)> {
    let mut out = std::collections::HashMap::new();
    let at = |node_location: Option<std::ops::Range<apollo_compiler::parser::LineColumn>>| {
        node_location.map(|r| (r.start.line, r.start.column))
    };
    for definition in &document.definitions {
        let Some((name, _)) = type_name_of(definition) else {
            continue;
        };
        let name = roots
            .iter()
            .find(|(declared, _)| *declared == name)
            .map_or(name, |(_, canonical)| canonical.clone());
        if let Some(location) = at(definition
            .location()
            .and_then(|span| span.line_column_range(&document.sources)))
        {
            out.entry(name.to_string()).or_insert(location);
        }
        let fields: &[Node<ast::FieldDefinition>] = match definition {
            Definition::ObjectTypeDefinition(d) => &d.fields,
            Definition::ObjectTypeExtension(d) => &d.fields,
            Definition::InterfaceTypeDefinition(d) => &d.fields,
            Definition::InterfaceTypeExtension(d) => &d.fields,
            _ => &[],
        };
        for field in fields {
            if let Some(location) = at(field.line_column_range(&document.sources)) {
                out.entry(format!("{name}.{}", field.name))
                    .or_insert(location);
            }
        }
        let inputs: &[Node<ast::InputValueDefinition>] = match definition {
            Definition::InputObjectTypeDefinition(d) => &d.fields,
            Definition::InputObjectTypeExtension(d) => &d.fields,
            _ => &[],
        };
        for input in inputs {
            if let Some(location) = at(input.line_column_range(&document.sources)) {
                out.entry(format!("{name}.{}", input.name))
                    .or_insert(location);
            }
        }
    }
    out
}
