//! Writing the merged types as a supergraph in Apollo's join-spec format (link v1.0, join
//! v0.3), deterministically: types sorted by name, fields in first-definition order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use apollo_compiler::Name;

use super::ingest::{InputValueDef, Kind, SubgraphSchema};
use super::merge::{MergedField, MergedType};

const JOIN_DEFINITIONS: &str = r#"directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE

directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION

directive @join__graph(name: String!, url: String!) on ENUM_VALUE

directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE

directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR

directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION

directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
"#;

const INACCESSIBLE_DEFINITION: &str = "directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION\n";
const TAG_DEFINITION: &str = "directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA\n";

/// The `join__Graph` enum value of a subgraph name.
pub fn graph_value(name: &str) -> String {
    let mut value: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if value.starts_with(|c: char| c.is_ascii_digit()) || value.is_empty() {
        value.insert(0, '_');
    }
    value
}

/// Prints the supergraph.
pub fn emit(subgraphs: &[SubgraphSchema], types: &BTreeMap<Name, MergedType>) -> String {
    let graphs: Vec<String> = subgraphs.iter().map(|s| graph_value(&s.name)).collect();
    let uses_inaccessible = types.values().any(uses_inaccessible);
    let uses_tag = types.values().any(uses_tag);
    let mut out = String::from(
        "schema\n  @link(url: \"https://specs.apollo.dev/link/v1.0\")\n  @link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION)\n",
    );
    if uses_inaccessible {
        out.push_str(
            "  @link(url: \"https://specs.apollo.dev/inaccessible/v0.2\", for: SECURITY)\n",
        );
    }
    if uses_tag {
        out.push_str("  @link(url: \"https://specs.apollo.dev/tag/v0.3\")\n");
    }
    out.push_str("{\n");
    for (root, keyword) in [
        ("Query", "query"),
        ("Mutation", "mutation"),
        ("Subscription", "subscription"),
    ] {
        if types.get(root).is_some_and(|t| !t.fields.is_empty()) {
            let _ = writeln!(out, "  {keyword}: {root}");
        }
    }
    out.push_str("}\n\n");
    if uses_inaccessible {
        out.push_str(INACCESSIBLE_DEFINITION);
        out.push('\n');
    }
    out.push_str(JOIN_DEFINITIONS);
    out.push('\n');
    if uses_tag {
        out.push_str(TAG_DEFINITION);
        out.push('\n');
    }
    out.push_str("scalar join__FieldSet\n\nenum join__Graph {\n");
    let mut ordered: Vec<(usize, &SubgraphSchema)> = subgraphs.iter().enumerate().collect();
    ordered.sort_by(|a, b| graphs[a.0].cmp(&graphs[b.0]));
    for (index, subgraph) in ordered {
        let _ = writeln!(
            out,
            "  {} @join__graph(name: {}, url: {})",
            graphs[index],
            quote(&subgraph.name),
            quote(&subgraph.url)
        );
    }
    out.push_str("}\n\nscalar link__Import\n\nenum link__Purpose {\n  \"\"\"\n  `SECURITY` features provide metadata necessary to securely resolve fields.\n  \"\"\"\n  SECURITY\n\n  \"\"\"\n  `EXECUTION` features provide metadata necessary for operation execution.\n  \"\"\"\n  EXECUTION\n}\n");
    for (name, ty) in types {
        if ty.kind != Kind::Scalar && is_empty(ty) {
            continue;
        }
        out.push('\n');
        write_type(&mut out, name, ty, &graphs);
    }
    out
}

fn is_empty(ty: &MergedType) -> bool {
    match ty.kind {
        Kind::Object | Kind::Interface => ty.fields.is_empty(),
        Kind::InputObject => ty.input_fields.is_empty(),
        Kind::Enum => ty.values.is_empty(),
        Kind::Union => ty.members.is_empty(),
        Kind::Scalar => false,
    }
}

fn uses_inaccessible(ty: &MergedType) -> bool {
    ty.inaccessible
        || ty
            .fields
            .values()
            .any(|f| f.inaccessible || f.args.values().any(|a| a.inaccessible))
        || ty.input_fields.values().any(|f| f.inaccessible)
        || ty.values.values().any(|v| v.def.inaccessible)
}

fn uses_tag(ty: &MergedType) -> bool {
    !ty.tags.is_empty()
        || ty
            .fields
            .values()
            .any(|f| !f.tags.is_empty() || f.args.values().any(|a| !a.tags.is_empty()))
        || ty.input_fields.values().any(|f| !f.tags.is_empty())
        || ty.values.values().any(|v| !v.def.tags.is_empty())
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

fn write_description(out: &mut String, description: &Option<String>, indent: &str) {
    if let Some(text) = description {
        let _ = writeln!(
            out,
            "{indent}\"\"\"\n{indent}{}\n{indent}\"\"\"",
            text.replace("\"\"\"", "\\\"\"\"")
                .replace('\n', &format!("\n{indent}"))
        );
    }
}

fn access(inaccessible: bool, tags: &BTreeSet<String>) -> String {
    let mut out = String::new();
    if inaccessible {
        out.push_str(" @inaccessible");
    }
    for tag in tags {
        let _ = write!(out, " @tag(name: {})", quote(tag));
    }
    out
}

fn write_type(out: &mut String, name: &Name, ty: &MergedType, graphs: &[String]) {
    write_description(out, &ty.description, "");
    out.push_str(ty.kind.keyword());
    out.push(' ');
    out.push_str(name);
    if matches!(ty.kind, Kind::Object | Kind::Interface) && !ty.implements.is_empty() {
        let interfaces: Vec<&str> = ty.implements.keys().map(Name::as_str).collect();
        let _ = write!(out, " implements {}", interfaces.join(" & "));
    }
    out.push_str(&access(ty.inaccessible, &ty.tags));
    for (interface, in_graphs) in &ty.implements {
        for graph in in_graphs {
            let _ = write!(
                out,
                "\n  @join__implements(graph: {}, interface: {})",
                graphs[*graph],
                quote(interface)
            );
        }
    }
    write_join_types(out, ty, graphs);
    for (member, in_graphs) in &ty.members {
        for graph in in_graphs {
            let _ = write!(
                out,
                "\n  @join__unionMember(graph: {}, member: {})",
                graphs[*graph],
                quote(member)
            );
        }
    }
    match ty.kind {
        Kind::Scalar => out.push('\n'),
        Kind::Union => {
            let members: Vec<&str> = ty.members.keys().map(Name::as_str).collect();
            let _ = writeln!(out, "\n = {}", members.join(" | "));
        }
        Kind::Enum => {
            out.push_str("\n{\n");
            for (value, merged) in &ty.values {
                write_description(out, &merged.def.description, "  ");
                let tags: BTreeSet<String> = merged.def.tags.iter().cloned().collect();
                let _ = write!(out, "  {value}{}", access(merged.def.inaccessible, &tags));
                if let Some(reason) = &merged.def.deprecated {
                    out.push_str(&deprecated(reason));
                }
                for graph in &merged.graphs {
                    let _ = write!(out, " @join__enumValue(graph: {})", graphs[*graph]);
                }
                out.push('\n');
            }
            out.push_str("}\n");
        }
        Kind::InputObject => {
            out.push_str("\n{\n");
            for (field, def) in &ty.input_fields {
                write_description(out, &def.description, "  ");
                let _ = writeln!(
                    out,
                    "  {field}: {}{}",
                    input_value(def),
                    access(def.inaccessible, &def.tags.iter().cloned().collect())
                );
            }
            out.push_str("}\n");
        }
        Kind::Object | Kind::Interface => {
            out.push_str("\n{\n");
            for (field_name, field) in &ty.fields {
                write_field(out, field_name, field, graphs);
            }
            out.push_str("}\n");
        }
    }
}

fn write_join_types(out: &mut String, ty: &MergedType, graphs: &[String]) {
    for source in &ty.sources {
        let graph = &graphs[source.graph];
        let flags = |out: &mut String| {
            if source.extension {
                out.push_str(", extension: true");
            }
            if source.interface_object {
                out.push_str(", isInterfaceObject: true");
            }
        };
        if source.keys.is_empty() || !matches!(ty.kind, Kind::Object | Kind::Interface) {
            let _ = write!(out, "\n  @join__type(graph: {graph}");
            flags(out);
            out.push(')');
            continue;
        }
        for key in &source.keys {
            let _ = write!(
                out,
                "\n  @join__type(graph: {graph}, key: {}",
                quote(&key.fields)
            );
            flags(out);
            if !key.resolvable {
                out.push_str(", resolvable: false");
            }
            out.push(')');
        }
    }
}

fn deprecated(reason: &Option<String>) -> String {
    match reason {
        Some(reason) => format!(" @deprecated(reason: {})", quote(reason)),
        None => " @deprecated".to_owned(),
    }
}

fn input_value(def: &InputValueDef) -> String {
    match &def.default {
        Some(default) => format!("{} = {default}", def.ty),
        None => def.ty.to_string(),
    }
}

fn write_field(out: &mut String, name: &Name, field: &MergedField, graphs: &[String]) {
    write_description(out, &field.description, "  ");
    let _ = write!(out, "  {name}");
    let described = field.args.values().any(|a| a.description.is_some());
    if described {
        // Arguments with descriptions go one per line, each description above its argument.
        out.push_str("(\n");
        for (arg, def) in &field.args {
            write_description(out, &def.description, "    ");
            let tags = def.tags.iter().cloned().collect();
            let _ = writeln!(
                out,
                "    {arg}: {}{}",
                input_value(def),
                access(def.inaccessible, &tags)
            );
        }
        out.push_str("  )");
    } else if !field.args.is_empty() {
        let args: Vec<String> = field
            .args
            .iter()
            .map(|(arg, def)| {
                format!(
                    "{arg}: {}{}",
                    input_value(def),
                    access(def.inaccessible, &def.tags.iter().cloned().collect())
                )
            })
            .collect();
        let _ = write!(out, "({})", args.join(", "));
    }
    let _ = write!(
        out,
        ": {}{}",
        field.ty,
        access(field.inaccessible, &field.tags)
    );
    if let Some(reason) = &field.deprecated {
        out.push_str(&deprecated(reason));
    }
    if field.sources.is_empty() {
        out.push_str(" @join__field");
    }
    if !field.implicit {
        for source in &field.sources {
            let _ = write!(out, " @join__field(graph: {}", graphs[source.graph]);
            if let Some(requires) = &source.def.requires {
                let _ = write!(out, ", requires: {}", quote(requires));
            }
            if let Some(provides) = &source.def.provides {
                let _ = write!(out, ", provides: {}", quote(provides));
            }
            if source.def.ty != field.ty {
                let _ = write!(out, ", type: {}", quote(&source.def.ty.to_string()));
            }
            if source.def.external {
                out.push_str(", external: true");
            }
            if let Some(from) = &source.def.override_from {
                let _ = write!(out, ", override: {}", quote(from));
            }
            if source.used_overridden {
                out.push_str(", usedOverridden: true");
            }
            out.push(')');
        }
    }
    out.push('\n');
}
