//! The join-spec directives read into a typed model: which subgraph resolves which type and
//! field, with keys, requires, provides, overrides and interface objects.

use std::collections::{HashMap, HashSet};

use apollo_compiler::ast::{DirectiveList, Value};
use apollo_compiler::executable::{FieldSet, SelectionSet};
use apollo_compiler::schema::{Component, ExtendedType};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};

use super::{Subgraph, SupergraphError};

/// Index of a subgraph in [`super::Supergraph::subgraphs`].
pub type GraphId = usize;

/// A `@key` of an entity in one subgraph.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's fields.
    pub fields: SelectionSet,
    /// Whether the subgraph answers `_entities` for it.
    pub resolvable: bool,
}

/// How one subgraph defines a type.
#[derive(Debug, Clone)]
pub struct TypeInGraph {
    /// The subgraph.
    pub graph: GraphId,
    /// Its keys for the type (empty when the type is not an entity there).
    pub keys: Vec<Key>,
    /// The subgraph sees this interface as an object type (`@interfaceObject`).
    pub is_interface_object: bool,
}

/// How one subgraph takes part in a field.
#[derive(Debug, Clone)]
pub struct FieldInGraph {
    /// The subgraph.
    pub graph: GraphId,
    /// Fields of the parent it needs in the representation (`@requires`).
    pub requires: Option<SelectionSet>,
    /// Sub-fields of the result it can return although they are external (`@provides`).
    pub provides: Option<SelectionSet>,
    /// Declared but not resolved there (`@external`).
    pub external: bool,
    /// Overridden by another subgraph, kept only for keys and requires.
    pub used_overridden: bool,
    /// The field's type in that subgraph, when it differs from the supergraph's.
    pub type_in_graph: Option<String>,
}

impl FieldInGraph {
    /// Whether the subgraph resolves the field in general.
    pub fn resolves(&self) -> bool {
        !self.external && !self.used_overridden
    }
}

/// The join model of a supergraph.
#[derive(Debug, Default)]
pub struct JoinModel {
    types: HashMap<Name, Vec<TypeInGraph>>,
    fields: HashMap<(Name, Name), Vec<FieldInGraph>>,
    implements: HashMap<(Name, GraphId), HashSet<Name>>,
    union_members: HashMap<(Name, GraphId), HashSet<Name>>,
}

impl JoinModel {
    /// The subgraphs that define `type_name`.
    pub fn type_graphs(&self, type_name: &str) -> &[TypeInGraph] {
        self.types.get(type_name).map_or(&[], Vec::as_slice)
    }

    /// How `graph` defines `type_name`, if it does.
    pub fn type_in(&self, type_name: &str, graph: GraphId) -> Option<&TypeInGraph> {
        self.type_graphs(type_name)
            .iter()
            .find(|t| t.graph == graph)
    }

    /// The explicit `@join__field`s of a field; empty means every graph of the parent type.
    pub fn field_graphs(&self, type_name: &str, field: &str) -> Option<&[FieldInGraph]> {
        self.fields
            .get(&(Name::new_unchecked(type_name), Name::new_unchecked(field)))
            .map(Vec::as_slice)
    }

    /// How `graph` takes part in `type_name.field`: explicit, or implied by the type.
    pub fn field_in(&self, type_name: &str, field: &str, graph: GraphId) -> Option<FieldInGraph> {
        match self.field_graphs(type_name, field) {
            Some(list) => list.iter().find(|f| f.graph == graph).cloned(),
            None => self.type_in(type_name, graph).map(|_| FieldInGraph {
                graph,
                requires: None,
                provides: None,
                external: false,
                used_overridden: false,
                type_in_graph: None,
            }),
        }
    }

    /// The graphs that resolve `type_name.field`.
    pub fn resolvers(&self, type_name: &str, field: &str) -> Vec<FieldInGraph> {
        match self.field_graphs(type_name, field) {
            Some(list) => list.iter().filter(|f| f.resolves()).cloned().collect(),
            None => self
                .type_graphs(type_name)
                .iter()
                .map(|t| FieldInGraph {
                    graph: t.graph,
                    requires: None,
                    provides: None,
                    external: false,
                    used_overridden: false,
                    type_in_graph: None,
                })
                .collect(),
        }
    }

    /// Whether `graph` declares that object type `object` implements `interface`.
    pub fn implements_in(&self, object: &str, interface: &str, graph: GraphId) -> bool {
        self.implements
            .get(&(Name::new_unchecked(object), graph))
            .is_some_and(|set| set.contains(interface))
    }

    /// Whether `graph` declares `member` as a member of union `union_name`.
    pub fn union_member_in(&self, union_name: &str, member: &str, graph: GraphId) -> bool {
        self.union_members
            .get(&(Name::new_unchecked(union_name), graph))
            .is_some_and(|set| set.contains(member))
    }
}

fn arg<'a>(directive: &'a apollo_compiler::ast::Directive, name: &str) -> Option<&'a Value> {
    directive.specified_argument_by_name(name).map(|v| &**v)
}

fn arg_str<'a>(directive: &'a apollo_compiler::ast::Directive, name: &str) -> Option<&'a str> {
    match arg(directive, name) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn arg_bool(directive: &apollo_compiler::ast::Directive, name: &str) -> Option<bool> {
    match arg(directive, name) {
        Some(Value::Boolean(b)) => Some(*b),
        _ => None,
    }
}

fn arg_enum<'a>(directive: &'a apollo_compiler::ast::Directive, name: &str) -> Option<&'a str> {
    match arg(directive, name) {
        Some(Value::Enum(e)) => Some(e.as_str()),
        _ => None,
    }
}

/// Reads `enum join__Graph`.
pub fn read_subgraphs(schema: &Schema) -> Result<Vec<Subgraph>, SupergraphError> {
    let Some(ExtendedType::Enum(graphs)) = schema.types.get("join__Graph") else {
        return Err(SupergraphError::Join("no `enum join__Graph`".into()));
    };
    let mut subgraphs = Vec::new();
    for (value, def) in &graphs.values {
        let directive = def.directives.get("join__graph").ok_or_else(|| {
            SupergraphError::Join(format!("join__Graph.{value} has no @join__graph"))
        })?;
        subgraphs.push(Subgraph {
            name: arg_str(directive, "name")
                .unwrap_or(value.as_str())
                .to_owned(),
            graph_value: value.to_string(),
            url: arg_str(directive, "url").unwrap_or_default().to_owned(),
        });
    }
    Ok(subgraphs)
}

/// Reads every `@join__*` directive of `schema`.
pub fn read_model(
    schema: &Valid<Schema>,
    subgraphs: &[Subgraph],
) -> Result<JoinModel, SupergraphError> {
    let graph_ids: HashMap<&str, GraphId> = subgraphs
        .iter()
        .enumerate()
        .map(|(id, s)| (s.graph_value.as_str(), id))
        .collect();
    let graph_of =
        |directive: &apollo_compiler::ast::Directive| -> Result<GraphId, SupergraphError> {
            let value = arg_enum(directive, "graph").ok_or_else(|| {
                SupergraphError::Join(format!("@{} without graph", directive.name))
            })?;
            graph_ids
                .get(value)
                .copied()
                .ok_or_else(|| SupergraphError::Join(format!("unknown graph {value}")))
        };
    let mut model = JoinModel::default();
    for (type_name, ty) in &schema.types {
        if ty.is_built_in() || type_name.starts_with("join__") || type_name.starts_with("link__") {
            continue;
        }
        let directives = ty.directives();
        let mut in_graphs: Vec<TypeInGraph> = Vec::new();
        for directive in directives.get_all("join__type") {
            let graph = graph_of(directive)?;
            let is_interface_object = arg_bool(directive, "isInterfaceObject").unwrap_or(false);
            let entry = match in_graphs.iter_mut().position(|t| t.graph == graph) {
                Some(i) => &mut in_graphs[i],
                None => {
                    in_graphs.push(TypeInGraph {
                        graph,
                        keys: Vec::new(),
                        is_interface_object,
                    });
                    in_graphs.last_mut().expect("just pushed")
                }
            };
            entry.is_interface_object |= is_interface_object;
            if let Some(key) = arg_str(directive, "key") {
                let fields = parse_field_set(schema, type_name, key)?;
                entry.keys.push(Key {
                    fields,
                    resolvable: arg_bool(directive, "resolvable").unwrap_or(true),
                });
            }
        }
        model.types.insert(type_name.clone(), in_graphs);
        for directive in directives.get_all("join__implements") {
            let graph = graph_of(directive)?;
            if let Some(interface) = arg_str(directive, "interface") {
                model
                    .implements
                    .entry((type_name.clone(), graph))
                    .or_default()
                    .insert(Name::new_unchecked(interface));
            }
        }
        for directive in directives.get_all("join__unionMember") {
            let graph = graph_of(directive)?;
            if let Some(member) = arg_str(directive, "member") {
                model
                    .union_members
                    .entry((type_name.clone(), graph))
                    .or_default()
                    .insert(Name::new_unchecked(member));
            }
        }
        for (field_name, field_directives) in field_directives(ty) {
            let join_fields: Vec<_> = field_directives.get_all("join__field").collect();
            if join_fields.is_empty() {
                continue;
            }
            let mut list = Vec::new();
            for directive in join_fields {
                // `@join__field` without a graph marks a field no subgraph resolves directly
                // (e.g. a field of an interface object's implementations); skip it.
                let Ok(graph) = graph_of(directive) else {
                    continue;
                };
                let field_type = field_type_name(schema, type_name, field_name);
                let requires = arg_str(directive, "requires")
                    .map(|fs| parse_field_set(schema, type_name, fs))
                    .transpose()?;
                let provides = match (arg_str(directive, "provides"), &field_type) {
                    (Some(fs), Some(ty)) => Some(parse_field_set(schema, ty, fs)?),
                    _ => None,
                };
                list.push(FieldInGraph {
                    graph,
                    requires,
                    provides,
                    external: arg_bool(directive, "external").unwrap_or(false),
                    used_overridden: arg_bool(directive, "usedOverridden").unwrap_or(false),
                    type_in_graph: arg_str(directive, "type").map(str::to_owned),
                });
            }
            model
                .fields
                .insert((type_name.clone(), field_name.clone()), list);
        }
    }
    Ok(model)
}

fn field_directives(ty: &ExtendedType) -> Vec<(&Name, &DirectiveList)> {
    match ty {
        ExtendedType::Object(o) => o
            .fields
            .iter()
            .map(
                |(name, f): (&Name, &Component<apollo_compiler::schema::FieldDefinition>)| {
                    (name, &f.directives)
                },
            )
            .collect(),
        ExtendedType::Interface(i) => i
            .fields
            .iter()
            .map(|(name, f)| (name, &f.directives))
            .collect(),
        _ => Vec::new(),
    }
}

fn field_type_name(schema: &Schema, type_name: &str, field: &str) -> Option<Name> {
    let ty = schema.types.get(type_name)?;
    let def = match ty {
        ExtendedType::Object(o) => o.fields.get(field).map(|f| &f.ty),
        ExtendedType::Interface(i) => i.fields.get(field).map(|f| &f.ty),
        _ => None,
    }?;
    Some(def.inner_named_type().clone())
}

/// Parses a `join__FieldSet` on `type_name`. Field sets are validated against the supergraph.
pub fn parse_field_set(
    schema: &Valid<Schema>,
    type_name: &str,
    source: &str,
) -> Result<SelectionSet, SupergraphError> {
    let name = Name::new(type_name).map_err(|err| SupergraphError::Join(err.to_string()))?;
    FieldSet::parse(schema, name, source, "field_set.graphql")
        .map(|fs| fs.selection_set)
        .map_err(|err| {
            SupergraphError::Join(format!(
                "field set {source:?} on {type_name}: {}",
                err.errors
            ))
        })
}
