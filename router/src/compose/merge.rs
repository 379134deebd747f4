//! Merging subgraph types into supergraph types, field by field, checking federation's rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apollo_compiler::{Name, ast};
use indexmap::IndexMap;

use super::diagnostics::{Diagnostic, codes};
use super::ingest::{EnumValueDef, FieldDef, InputValueDef, KeyDef, Kind, SubgraphSchema, TypeDef};

/// How one subgraph takes part in a supergraph type.
#[derive(Debug, Clone)]
pub struct TypeSource {
    /// Index of the subgraph.
    pub graph: usize,
    /// Its keys.
    pub keys: Vec<KeyDef>,
    /// Fed1 extension.
    pub extension: bool,
    /// `@interfaceObject` there.
    pub interface_object: bool,
}

/// How one subgraph takes part in a field.
#[derive(Debug, Clone)]
pub struct FieldSource {
    /// Index of the subgraph.
    pub graph: usize,
    /// The field as that subgraph defines it.
    pub def: FieldDef,
    /// Overridden by another subgraph but still needed here (key or requires).
    pub used_overridden: bool,
}

/// A supergraph field.
#[derive(Debug, Clone)]
pub struct MergedField {
    /// Description.
    pub description: Option<String>,
    /// Supergraph type.
    pub ty: ast::Type,
    /// Arguments (the intersection across subgraphs).
    pub args: IndexMap<Name, InputValueDef>,
    /// Per subgraph; empty for fields no subgraph resolves directly (added by an
    /// `@interfaceObject` to implementations).
    pub sources: Vec<FieldSource>,
    /// `@inaccessible` anywhere.
    pub inaccessible: bool,
    /// Tags from every subgraph.
    pub tags: BTreeSet<String>,
    /// `@deprecated`.
    pub deprecated: Option<Option<String>>,
    /// Whether every subgraph of the parent type defines it the same plain way (no
    /// `@join__field` needed).
    pub implicit: bool,
}

/// A supergraph enum value.
#[derive(Debug, Clone)]
pub struct MergedValue {
    /// Definition (from the first subgraph that has it).
    pub def: EnumValueDef,
    /// Subgraphs that define it.
    pub graphs: Vec<usize>,
}

/// A supergraph type.
#[derive(Debug, Clone)]
pub struct MergedType {
    /// Kind in the supergraph.
    pub kind: Kind,
    /// Description.
    pub description: Option<String>,
    /// Per subgraph.
    pub sources: Vec<TypeSource>,
    /// Fields.
    pub fields: IndexMap<Name, MergedField>,
    /// Input fields.
    pub input_fields: IndexMap<Name, InputValueDef>,
    /// Enum values.
    pub values: IndexMap<Name, MergedValue>,
    /// Union members and the subgraphs that declare them.
    pub members: IndexMap<Name, Vec<usize>>,
    /// Implemented interfaces and the subgraphs that declare them.
    pub implements: IndexMap<Name, Vec<usize>>,
    /// `@inaccessible` anywhere.
    pub inaccessible: bool,
    /// Tags.
    pub tags: BTreeSet<String>,
}

/// Merges every subgraph's types. Problems go to `diagnostics`.
pub fn merge(
    subgraphs: &[SubgraphSchema],
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<Name, MergedType> {
    let mut merged: BTreeMap<Name, MergedType> = BTreeMap::new();
    // Pass 1: kinds, sources, members, implementations, values.
    for (graph, subgraph) in subgraphs.iter().enumerate() {
        for (name, def) in &subgraph.types {
            let kind = if def.interface_object {
                Kind::Interface
            } else {
                def.kind
            };
            let entry = merged.entry(name.clone()).or_insert_with(|| MergedType {
                kind,
                description: None,
                sources: Vec::new(),
                fields: IndexMap::new(),
                input_fields: IndexMap::new(),
                values: IndexMap::new(),
                members: IndexMap::new(),
                implements: IndexMap::new(),
                inaccessible: false,
                tags: BTreeSet::new(),
            });
            if entry.kind != kind {
                if entry.kind == Kind::Object && kind == Kind::Interface && def.interface_object {
                    entry.kind = Kind::Interface;
                } else if !(entry.kind == Kind::Interface && def.interface_object) {
                    diagnostics.push(
                        Diagnostic::error(
                            codes::TYPE_KIND_MISMATCH,
                            Some(&subgraph.name),
                            format!(
                                "type {name} is {} {} here but {} {} in another subgraph",
                                article(def.kind),
                                def.kind.keyword(),
                                article(entry.kind),
                                entry.kind.keyword()
                            ),
                        )
                        .at(name.to_string()),
                    );
                    continue;
                }
            }
            if entry.description.is_none() {
                entry.description = def.description.clone();
            }
            entry.inaccessible |= def.inaccessible;
            entry.tags.extend(def.tags.iter().cloned());
            entry.sources.push(TypeSource {
                graph,
                keys: def.keys.clone(),
                extension: def.extension,
                interface_object: def.interface_object,
            });
            for member in &def.members {
                entry.members.entry(member.clone()).or_default().push(graph);
            }
            for interface in &def.implements {
                entry
                    .implements
                    .entry(interface.clone())
                    .or_default()
                    .push(graph);
            }
        }
    }
    let usage = enum_usage(subgraphs);
    for (name, ty) in merged.iter_mut() {
        match ty.kind {
            Kind::Enum => merge_enum(
                name,
                ty,
                subgraphs,
                usage.get(name).copied().unwrap_or_default(),
                diagnostics,
            ),
            Kind::InputObject => merge_input(name, ty, subgraphs, diagnostics),
            _ => {}
        }
    }
    // Pass 2: fields, now that the type graph is known.
    let directive_use = DirectiveUse::of(subgraphs);
    let snapshot = merged.clone();
    for (name, ty) in merged.iter_mut() {
        if matches!(ty.kind, Kind::Object | Kind::Interface) {
            merge_fields(
                name,
                ty,
                subgraphs,
                (&snapshot, &directive_use),
                diagnostics,
            );
        }
    }
    add_interface_object_fields(&mut merged);
    merged
}

fn article(kind: Kind) -> &'static str {
    match kind {
        Kind::Object | Kind::Union | Kind::Enum | Kind::Scalar => "a",
        Kind::Interface | Kind::InputObject => "an",
    }
}

/// Whether an enum is used as input, output, or both.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: bool,
    output: bool,
}

fn enum_usage(subgraphs: &[SubgraphSchema]) -> HashMap<Name, Usage> {
    let mut usage: HashMap<Name, Usage> = HashMap::new();
    for subgraph in subgraphs {
        for def in subgraph.types.values() {
            for field in def.fields.values() {
                usage
                    .entry(field.ty.inner_named_type().clone())
                    .or_default()
                    .output = true;
                for arg in field.args.values() {
                    usage
                        .entry(arg.ty.inner_named_type().clone())
                        .or_default()
                        .input = true;
                }
            }
            for input in def.input_fields.values() {
                usage
                    .entry(input.ty.inner_named_type().clone())
                    .or_default()
                    .input = true;
            }
        }
    }
    usage
}

fn defs<'a>(
    name: &Name,
    ty: &MergedType,
    subgraphs: &'a [SubgraphSchema],
) -> Vec<(usize, &'a TypeDef)> {
    ty.sources
        .iter()
        .filter_map(|s| subgraphs[s.graph].types.get(name).map(|d| (s.graph, d)))
        .collect()
}

fn merge_enum(
    name: &Name,
    ty: &mut MergedType,
    subgraphs: &[SubgraphSchema],
    usage: Usage,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let defs = defs(name, ty, subgraphs);
    let mut values: IndexMap<Name, MergedValue> = IndexMap::new();
    for (graph, def) in &defs {
        for (value, value_def) in &def.values {
            let entry = values.entry(value.clone()).or_insert_with(|| MergedValue {
                def: value_def.clone(),
                graphs: Vec::new(),
            });
            entry.def.inaccessible |= value_def.inaccessible;
            if entry.def.description.is_none() {
                entry.def.description = value_def.description.clone();
            }
            entry.graphs.push(*graph);
        }
    }
    let all = defs.len();
    if usage.input && usage.output {
        for (value, merged) in &values {
            // A value clients can never see cannot disagree.
            if merged.graphs.len() != all && !merged.def.inaccessible {
                let missing: Vec<&str> = defs
                    .iter()
                    .filter(|(g, _)| !merged.graphs.contains(g))
                    .map(|(g, _)| subgraphs[*g].name.as_str())
                    .collect();
                diagnostics.push(Diagnostic::error(
                    codes::ENUM_VALUE_MISMATCH,
                    missing.first().copied(),
                    format!(
                        "enum {name} is used as input and output, so every subgraph must define the same values; {value} is missing in {}",
                        missing.join(", ")
                    ),
                ).at(name.to_string()));
            }
        }
    } else if usage.input {
        values.retain(|_, merged| merged.graphs.len() == all);
    }
    ty.values = values;
}

fn merge_input(
    name: &Name,
    ty: &mut MergedType,
    subgraphs: &[SubgraphSchema],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let defs = defs(name, ty, subgraphs);
    let mut fields: IndexMap<Name, InputValueDef> = IndexMap::new();
    let mut seen: IndexMap<Name, usize> = IndexMap::new();
    for (graph, def) in &defs {
        let here = Some(subgraphs[*graph].name.as_str());
        for (field, field_def) in &def.input_fields {
            *seen.entry(field.clone()).or_default() += 1;
            match fields.get_mut(field) {
                Some(existing) => {
                    match most_restrictive(&existing.ty, &field_def.ty) {
                        Some(ty) => existing.ty = ty,
                        None => diagnostics.push(Diagnostic::error(
                            codes::FIELD_TYPE_MISMATCH,
                            here,
                            format!(
                                "input field {name}.{field} has type {} here but {} in another subgraph",
                                field_def.ty, existing.ty
                            ),
                        ).at(format!("{name}.{field}"))),
                    }
                    if existing.default != field_def.default
                        && existing.default.is_some()
                        && field_def.default.is_some()
                    {
                        diagnostics.push(Diagnostic::error(
                            codes::INPUT_FIELD_DEFAULT_MISMATCH,
                            here,
                            format!(
                                "input field {name}.{field} defaults to {} here but {} elsewhere",
                                field_def.default.as_deref().unwrap_or("nothing"),
                                existing.default.as_deref().unwrap_or("nothing")
                            ),
                        ).at(format!("{name}.{field}")));
                    }
                    existing.inaccessible |= field_def.inaccessible;
                    if existing.description.is_none() {
                        existing.description = field_def.description.clone();
                    }
                }
                None => {
                    fields.insert(field.clone(), field_def.clone());
                }
            }
        }
    }
    for (field, count) in &seen {
        if *count == defs.len() {
            continue;
        }
        if let Some(def) = fields.get(field)
            && def.ty.is_non_null()
            && def.default.is_none()
        {
            let missing = defs
                .iter()
                .find(|(_, d)| !d.input_fields.contains_key(field))
                .map(|(g, _)| subgraphs[*g].name.clone());
            diagnostics.push(Diagnostic::error(
                codes::REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH,
                missing.as_deref(),
                format!(
                    "input field {name}.{field} is required in some subgraphs but missing here"
                ),
            ));
        }
        fields.shift_remove(field);
    }
    ty.input_fields = fields;
}

/// The less restrictive of two output types (nullable wins); `None` when incompatible.
pub fn least_restrictive(
    a: &ast::Type,
    b: &ast::Type,
    subtype: &dyn Fn(&Name, &Name) -> bool,
) -> Option<ast::Type> {
    use ast::Type::*;
    Some(match (a, b) {
        (Named(x) | NonNullNamed(x), Named(y) | NonNullNamed(y)) => {
            let name = if x == y || subtype(y, x) {
                x.clone()
            } else if subtype(x, y) {
                y.clone()
            } else {
                return None;
            };
            if matches!((a, b), (NonNullNamed(_), NonNullNamed(_))) {
                NonNullNamed(name)
            } else {
                Named(name)
            }
        }
        (List(x) | NonNullList(x), List(y) | NonNullList(y)) => {
            let inner = least_restrictive(x, y, subtype)?;
            if matches!((a, b), (NonNullList(_), NonNullList(_))) {
                NonNullList(Box::new(inner))
            } else {
                List(Box::new(inner))
            }
        }
        _ => return None,
    })
}

/// The more restrictive of two input types (non-null wins); `None` when incompatible.
pub fn most_restrictive(a: &ast::Type, b: &ast::Type) -> Option<ast::Type> {
    use ast::Type::*;
    Some(match (a, b) {
        (Named(x) | NonNullNamed(x), Named(y) | NonNullNamed(y)) if x == y => {
            if matches!((a, b), (Named(_), Named(_))) {
                Named(x.clone())
            } else {
                NonNullNamed(x.clone())
            }
        }
        (List(x) | NonNullList(x), List(y) | NonNullList(y)) => {
            let inner = most_restrictive(x, y)?;
            if matches!((a, b), (List(_), List(_))) {
                List(Box::new(inner))
            } else {
                NonNullList(Box::new(inner))
            }
        }
        _ => return None,
    })
}

fn merge_fields(
    name: &Name,
    ty: &mut MergedType,
    subgraphs: &[SubgraphSchema],
    (types, directive_use): (&BTreeMap<Name, MergedType>, &DirectiveUse),
    diagnostics: &mut Vec<Diagnostic>,
) {
    let defs = defs(name, ty, subgraphs);
    let subtype = |sub: &Name, sup: &Name| -> bool {
        types.get(sup).is_some_and(|t| {
            t.members.contains_key(sub)
                || types
                    .get(sub)
                    .is_some_and(|s| s.implements.contains_key(sup))
        })
    };
    for (graph, def) in &defs {
        for (field_name, field) in &def.fields {
            let entry = ty
                .fields
                .entry(field_name.clone())
                .or_insert_with(|| MergedField {
                    description: None,
                    ty: field.ty.clone(),
                    args: field.args.clone(),
                    sources: Vec::new(),
                    inaccessible: false,
                    tags: BTreeSet::new(),
                    deprecated: None,
                    implicit: true,
                });
            if entry.description.is_none() {
                entry.description = field.description.clone();
            }
            if entry.deprecated.is_none() {
                entry.deprecated = field.deprecated.clone();
            }
            entry.inaccessible |= field.inaccessible;
            entry.tags.extend(field.tags.iter().cloned());
            if !field.external {
                match least_restrictive(&entry.ty, &field.ty, &subtype) {
                    Some(merged) => entry.ty = merged,
                    None => diagnostics.push(Diagnostic::error(
                        codes::FIELD_TYPE_MISMATCH,
                        Some(&subgraphs[*graph].name),
                        format!(
                            "field {name}.{field_name} has type {} here but {} in another subgraph",
                            field.ty, entry.ty
                        ),
                    ).at(format!("{name}.{field_name}"))),
                }
            }
            entry.sources.push(FieldSource {
                graph: *graph,
                def: field.clone(),
                used_overridden: false,
            });
        }
    }
    let key_fields = &directive_use.keys;
    for (field_name, field) in ty.fields.iter_mut() {
        merge_arguments(name, field_name, field, subgraphs, diagnostics);
        apply_overrides(name, field_name, field, key_fields, subgraphs, diagnostics);
        // Interface fields are resolved through their implementations.
        if ty.kind == Kind::Object {
            let in_key =
                |graph: usize| key_fields.contains(&(graph, name.clone(), field_name.clone()));
            let provided = |graph: usize| {
                directive_use
                    .provided
                    .contains(&(graph, name.clone(), field_name.clone()))
            };
            check_sharing(
                name,
                field_name,
                field,
                (&ty.sources, &in_key, &provided),
                subgraphs,
                diagnostics,
            );
        }
        field.implicit = field.sources.len() == defs.len()
            && field.sources.iter().all(|s| {
                !s.def.external
                    && s.def.requires.is_none()
                    && s.def.provides.is_none()
                    && s.def.override_from.is_none()
                    && !s.used_overridden
                    && s.def.ty == field.ty
            });
    }
}

/// What each subgraph's directives select, as `(subgraph, type, field)`.
pub struct DirectiveUse {
    /// Selected by a `@key` (at any depth): shareable in that subgraph by definition.
    pub keys: BTreeSet<(usize, Name, Name)>,
    /// Returned through a `@provides`.
    pub provided: BTreeSet<(usize, Name, Name)>,
}

impl DirectiveUse {
    fn of(subgraphs: &[SubgraphSchema]) -> Self {
        let mut keys = BTreeSet::new();
        let mut provided = BTreeSet::new();
        for (graph, subgraph) in subgraphs.iter().enumerate() {
            let mut found = BTreeSet::new();
            let mut provides = BTreeSet::new();
            for (type_name, ty) in &subgraph.types {
                for key in &ty.keys {
                    super::validate::reach(subgraph, type_name, &key.fields, &mut found);
                }
                for field in ty.fields.values() {
                    if let Some(fields) = &field.provides {
                        super::validate::reach(
                            subgraph,
                            field.ty.inner_named_type(),
                            fields,
                            &mut provides,
                        );
                    }
                }
            }
            keys.extend(found.into_iter().map(|(t, f)| (graph, t, f)));
            provided.extend(provides.into_iter().map(|(t, f)| (graph, t, f)));
        }
        Self { keys, provided }
    }
}

fn merge_arguments(
    type_name: &Name,
    field_name: &Name,
    field: &mut MergedField,
    subgraphs: &[SubgraphSchema],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let resolving: Vec<&FieldSource> = field.sources.iter().filter(|s| !s.def.external).collect();
    let mut args: IndexMap<Name, InputValueDef> = IndexMap::new();
    for source in &resolving {
        for (arg, def) in &source.def.args {
            let present_everywhere = resolving.iter().all(|s| s.def.args.contains_key(arg));
            if !present_everywhere {
                if def.ty.is_non_null() && def.default.is_none() {
                    diagnostics.push(Diagnostic::error(
                        codes::REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH,
                        Some(&subgraphs[source.graph].name),
                        format!("argument {type_name}.{field_name}({arg}:) is required here but missing in another subgraph"),
                    ).at(format!("{type_name}.{field_name}")));
                }
                continue;
            }
            match args.get_mut(arg) {
                Some(existing) => {
                    match most_restrictive(&existing.ty, &def.ty) {
                        Some(ty) => existing.ty = ty,
                        None => diagnostics.push(Diagnostic::error(
                            codes::FIELD_ARGUMENT_TYPE_MISMATCH,
                            Some(&subgraphs[source.graph].name),
                            format!("argument {type_name}.{field_name}({arg}:) has type {} here but {} elsewhere", def.ty, existing.ty),
                        ).at(format!("{type_name}.{field_name}"))),
                    }
                    if existing.default != def.default
                        && existing.default.is_some()
                        && def.default.is_some()
                    {
                        diagnostics.push(Diagnostic::error(
                            codes::FIELD_ARGUMENT_DEFAULT_MISMATCH,
                            Some(&subgraphs[source.graph].name),
                            format!(
                                "argument {type_name}.{field_name}({arg}:) defaults to {} here but {} elsewhere",
                                def.default.as_deref().unwrap_or("nothing"),
                                existing.default.as_deref().unwrap_or("nothing")
                            ),
                        ).at(format!("{type_name}.{field_name}")));
                    }
                    // A default survives only where every subgraph declares it.
                    if existing.default.is_none() || def.default.is_none() {
                        existing.default = None;
                    }
                    existing.inaccessible |= def.inaccessible;
                    if existing.description.is_none() {
                        existing.description = def.description.clone();
                    }
                }
                None => {
                    args.insert(arg.clone(), def.clone());
                }
            }
        }
    }
    if !resolving.is_empty() {
        field.args = args;
    }
}

fn key_or_requires_use(def: &TypeDef, field: &str) -> bool {
    let mentions = |fields: &str| {
        fields
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == field)
    };
    def.keys.iter().any(|k| mentions(&k.fields))
        || def
            .fields
            .values()
            .any(|f| f.requires.as_deref().is_some_and(mentions))
}

fn apply_overrides(
    type_name: &Name,
    field_name: &Name,
    field: &mut MergedField,
    key_fields: &BTreeSet<(usize, Name, Name)>,
    subgraphs: &[SubgraphSchema],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let overrides: Vec<(usize, String)> = field
        .sources
        .iter()
        .filter_map(|s| s.def.override_from.clone().map(|from| (s.graph, from)))
        .collect();
    for (graph, from) in overrides {
        if subgraphs[graph].name == from {
            diagnostics.push(
                Diagnostic::error(
                    codes::OVERRIDE_FROM_SELF,
                    Some(&subgraphs[graph].name),
                    format!("field {type_name}.{field_name} cannot @override its own subgraph"),
                )
                .at(format!("{type_name}.{field_name}")),
            );
            continue;
        }
        let Some(index) = field
            .sources
            .iter()
            .position(|s| subgraphs[s.graph].name == from)
        else {
            diagnostics.push(Diagnostic::hint(
                codes::OVERRIDE_SOURCE_HAS_NO_FIELD,
                Some(&subgraphs[graph].name),
                format!("field {type_name}.{field_name} overrides subgraph \"{from}\", which does not define it"),
            ));
            continue;
        };
        let from_graph = field.sources[index].graph;
        // Still needed by the old subgraph when a key (of any type, at any depth) or a
        // requirement selects it there.
        let still_used = key_fields.contains(&(from_graph, type_name.clone(), field_name.clone()))
            || subgraphs[from_graph]
                .types
                .get(type_name)
                .is_some_and(|def| key_or_requires_use(def, field_name));
        if still_used {
            field.sources[index].used_overridden = true;
        } else {
            field.sources.remove(index);
        }
    }
}

/// A question about one subgraph (by index).
type GraphTest<'a> = dyn Fn(usize) -> bool + 'a;

fn check_sharing(
    type_name: &Name,
    field_name: &Name,
    field: &MergedField,
    (sources, is_key_field, provided): (&[TypeSource], &GraphTest<'_>, &GraphTest<'_>),
    subgraphs: &[SubgraphSchema],
    diagnostics: &mut Vec<Diagnostic>,
) {
    // An external field a subgraph returns through `@provides` is resolved there too.
    let resolving: Vec<&FieldSource> = field
        .sources
        .iter()
        .filter(|s| (!s.def.external || provided(s.graph)) && !s.used_overridden)
        .collect();
    if resolving.len() < 2 {
        return;
    }
    let unshared: Vec<&str> = resolving
        .iter()
        .filter(|s| !s.def.shareable && !s.def.external && !is_key_field(s.graph))
        .map(|s| subgraphs[s.graph].name.as_str())
        .collect();
    if !unshared.is_empty() && sources.iter().all(|t| !t.interface_object) {
        let all: Vec<&str> = resolving
            .iter()
            .map(|s| subgraphs[s.graph].name.as_str())
            .collect();
        diagnostics.push(
            Diagnostic::error(
                codes::INVALID_FIELD_SHARING,
                unshared.first().copied(),
                format!(
                    "field {type_name}.{field_name} is resolved by {} but is not @shareable in {}",
                    all.join(", "),
                    unshared.join(", ")
                ),
            )
            .at(format!("{type_name}.{field_name}")),
        );
    }
}

/// Fields an `@interfaceObject` subgraph adds to an interface also appear on every
/// implementation, resolved through the interface.
fn add_interface_object_fields(merged: &mut BTreeMap<Name, MergedType>) {
    let mut additions: Vec<(Name, Name, MergedField)> = Vec::new();
    for (interface, ty) in merged.iter() {
        if ty.kind != Kind::Interface || !ty.sources.iter().any(|s| s.interface_object) {
            continue;
        }
        for (object, object_ty) in merged.iter() {
            if !object_ty.implements.contains_key(interface) {
                continue;
            }
            for (field_name, field) in &ty.fields {
                if object_ty.fields.contains_key(field_name) {
                    continue;
                }
                additions.push((
                    object.clone(),
                    field_name.clone(),
                    MergedField {
                        sources: Vec::new(),
                        implicit: false,
                        ..field.clone()
                    },
                ));
            }
        }
    }
    for (object, field_name, field) in additions {
        if let Some(ty) = merged.get_mut(&object) {
            ty.fields.insert(field_name, field);
        }
    }
}
