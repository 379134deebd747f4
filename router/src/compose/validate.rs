//! Checks on one subgraph on its own: `@key`, `@requires` and `@provides` select fields that
//! exist, and (Federation 2) `@requires` selects `@external` fields.

use apollo_compiler::Name;

use super::diagnostics::{Diagnostic, codes};
use super::ingest::{Kind, SubgraphSchema};

/// The top-level field names a field set selects (`id org { id }` → `id`, `org`), with the
/// sub-selection text of each.
pub(super) fn top_level_fields(field_set: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut sub = String::new();
    let mut in_args = 0usize;
    for c in field_set.chars() {
        match c {
            '(' => in_args += 1,
            ')' => in_args = in_args.saturating_sub(1),
            _ if in_args > 0 => {}
            '{' => {
                if depth == 0 && !current.is_empty() {
                    out.push((std::mem::take(&mut current), String::new()));
                }
                depth += 1;
                if depth > 1 {
                    sub.push(c);
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth > 0 {
                    sub.push(c);
                } else if let Some((_, s)) = out.last_mut() {
                    *s = std::mem::take(&mut sub);
                }
            }
            _ if depth > 0 => sub.push(c),
            c if c.is_alphanumeric() || c == '_' => current.push(c),
            _ => {
                if !current.is_empty() {
                    out.push((std::mem::take(&mut current), String::new()));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push((current, String::new()));
    }
    out.retain(|(name, _)| name != "on" && name != "__typename");
    out
}

/// Key fields of an `extend type` (or `@extends`) are marked `@external` by convention, but the
/// subgraph can still return them: they are not external in the supergraph.
pub fn extension_key_fields_are_not_external(schema: &mut SubgraphSchema) {
    for ty in schema.types.values_mut().filter(|t| t.extension) {
        let key_fields: Vec<String> = ty
            .keys
            .iter()
            .flat_map(|k| top_level_fields(&k.fields))
            .map(|(name, _)| name)
            .collect();
        for (name, field) in ty.fields.iter_mut() {
            if key_fields.iter().any(|k| k == name.as_str()) {
                field.external = false;
            }
        }
    }
}

/// Adds every `(type, field)` that `field_set` selects from `type_name` in `schema`, at any
/// depth.
pub(super) fn reach(
    schema: &SubgraphSchema,
    type_name: &Name,
    field_set: &str,
    out: &mut std::collections::BTreeSet<(Name, Name)>,
) {
    for (field, sub) in top_level_fields(field_set) {
        let field = Name::new_unchecked(&field);
        let is_field = schema
            .types
            .get(type_name)
            .is_some_and(|t| t.fields.contains_key(&field));
        if !is_field && schema.types.contains_key(&field) {
            // `... on Type { … }`: the fragment's fields, on that type.
            reach(schema, &field, &sub, out);
            continue;
        }
        // On an interface, the selection applies to every implementation too.
        let mut owners = vec![type_name.clone()];
        if schema
            .types
            .get(type_name)
            .is_some_and(|t| t.kind == Kind::Interface)
        {
            owners.extend(
                schema
                    .types
                    .iter()
                    .filter(|(_, t)| t.implements.contains(type_name))
                    .map(|(name, _)| name.clone()),
            );
        }
        for owner in owners {
            out.insert((owner.clone(), field.clone()));
            if !sub.trim().is_empty()
                && let Some(def) = schema.types.get(&owner).and_then(|t| t.fields.get(&field))
            {
                let inner = def.ty.inner_named_type().clone();
                reach(schema, &inner, &sub, out);
            }
        }
    }
}

/// Every `(type, field)` that the subgraph's `@key`s, `@requires` and `@provides` select.
pub(super) fn used_by_directives(
    schema: &SubgraphSchema,
) -> std::collections::BTreeSet<(Name, Name)> {
    let mut out = std::collections::BTreeSet::new();
    for (type_name, ty) in &schema.types {
        for key in &ty.keys {
            reach(schema, type_name, &key.fields, &mut out);
        }
        for field in ty.fields.values() {
            if let Some(requires) = &field.requires {
                reach(schema, type_name, requires, &mut out);
            }
            if let Some(provides) = &field.provides {
                reach(schema, field.ty.inner_named_type(), provides, &mut out);
            }
        }
    }
    out
}

/// Every problem of `schema` on its own.
pub fn validate(schema: &SubgraphSchema) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let used = used_by_directives(schema);
    for (type_name, ty) in &schema.types {
        for (field_name, field) in &ty.fields {
            // An interface object's fields and Fed1 extensions follow their own conventions.
            if field.external
                && !ty.interface_object
                && !used.contains(&(type_name.clone(), field_name.clone()))
            {
                out.push(Diagnostic::error(
                    codes::EXTERNAL_UNUSED,
                    Some(&schema.name),
                    format!("field {type_name}.{field_name} is marked @external but no @key, @requires or @provides uses it"),
                ).at(format!("{type_name}.{field_name}")));
            }
        }
    }
    for (type_name, ty) in &schema.types {
        if !matches!(ty.kind, Kind::Object | Kind::Interface) {
            continue;
        }
        for key in &ty.keys {
            check_selects(schema, type_name, &key.fields, &mut |missing| {
                out.push(Diagnostic::error(
                    codes::KEY_INVALID_FIELDS,
                    Some(&schema.name),
                    format!("@key(fields: \"{}\") on {type_name} selects {missing}, which does not exist", key.fields),
                ).at(type_name.to_string()));
            });
        }
        for (field_name, field) in &ty.fields {
            if let Some(requires) = &field.requires {
                check_selects(schema, type_name, requires, &mut |missing| {
                    out.push(Diagnostic::error(
                        codes::REQUIRES_INVALID_FIELDS,
                        Some(&schema.name),
                        format!("@requires(fields: \"{requires}\") on {type_name}.{field_name} selects {missing}, which does not exist"),
                    ).at(format!("{type_name}.{field_name}")));
                });
                if schema.fed2 {
                    for (required, sub) in top_level_fields(requires) {
                        let external = ty.fields.get(required.as_str()).is_some_and(|f| f.external);
                        // A required object field may be local when what it selects is external.
                        if ty.fields.contains_key(required.as_str())
                            && !external
                            && sub.trim().is_empty()
                        {
                            out.push(Diagnostic::error(
                                codes::REQUIRES_INVALID_FIELDS,
                                Some(&schema.name),
                                format!("@requires on {type_name}.{field_name} selects {type_name}.{required}, which is not marked @external"),
                            ).at(format!("{type_name}.{field_name}")));
                        }
                    }
                }
            }
            if let Some(provides) = &field.provides {
                let target = field.ty.inner_named_type().clone();
                check_selects(schema, &target, provides, &mut |missing| {
                    out.push(Diagnostic::error(
                        codes::PROVIDES_INVALID_FIELDS,
                        Some(&schema.name),
                        format!("@provides(fields: \"{provides}\") on {type_name}.{field_name} selects {missing}, which does not exist"),
                    ).at(format!("{type_name}.{field_name}")));
                });
            }
        }
    }
    out
}

/// Calls `missing` with `Type.field` for each field the set selects that `type_name` lacks.
fn check_selects(
    schema: &SubgraphSchema,
    type_name: &Name,
    field_set: &str,
    missing: &mut dyn FnMut(String),
) {
    let Some(ty) = schema.types.get(type_name) else {
        return;
    };
    if !matches!(ty.kind, Kind::Object | Kind::Interface) || field_set.contains("...") {
        return;
    }
    for (name, sub) in top_level_fields(field_set) {
        match ty.fields.get(name.as_str()) {
            None => missing(format!("{type_name}.{name}")),
            Some(field) if !sub.trim().is_empty() => {
                let inner = field.ty.inner_named_type().clone();
                check_selects(schema, &inner, &sub, missing);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::top_level_fields;

    #[test]
    fn top_level_fields_of_nested_and_argument_field_sets() {
        let names: Vec<String> = top_level_fields("id org { id name } price(currency: \"USD\")")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["id", "org", "price"]);
    }
}
