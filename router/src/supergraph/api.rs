//! The API schema: the supergraph without its federation machinery and without `@inaccessible`
//! elements. Clients validate and introspect against it.
//!
//! Derivation, in order:
//! 1. read the `@link`s and refuse unimplemented `for: EXECUTION | SECURITY` specs;
//! 2. mark as removed every type of a linked Apollo spec (`join__Graph`, `link__Purpose`, …) and
//!    every type marked `@inaccessible`;
//! 3. prune fields, arguments, enum values, input fields, union members and implemented
//!    interfaces that are inaccessible or point at removed types; a type left empty is removed
//!    too, so repeat until nothing changes;
//! 4. drop the specs' directive definitions, then every directive application whose definition
//!    is gone (this removes `@join__*`, `@link`, `@inaccessible`, `@tag`);
//! 5. validate the result.

mod link;

use std::collections::HashSet;

use apollo_compiler::Name;
use apollo_compiler::Schema;
use apollo_compiler::ast;
use apollo_compiler::collections::IndexMap;
use apollo_compiler::schema::{self, ExtendedType};
use apollo_compiler::validation::Valid;

pub use link::{Import, Link, Purpose, check_supported, links};

use super::SupergraphError;

/// Directive names that are federation machinery even without a `@link` naming them (old or
/// hand-written supergraphs).
const ALWAYS_MACHINERY_DIRECTIVES: &[&str] = &["link", "core", "inaccessible", "tag"];
/// Type name prefixes that are federation machinery even without a `@link` naming them.
const ALWAYS_MACHINERY_PREFIXES: &[&str] = &["join__", "link__", "core__"];
/// Directives the GraphQL spec defines; never removed.
const BUILT_IN_DIRECTIVES: &[&str] = &["skip", "include", "deprecated", "specifiedBy", "oneOf"];

/// Derives the API schema from a supergraph schema.
///
/// Fails with [`SupergraphError::UnsupportedFeature`] when the supergraph links a spec the router
/// does not implement for EXECUTION or SECURITY, and with [`SupergraphError::Invalid`] when the
/// pruned schema does not validate (for example an object left implementing an interface field
/// that was made inaccessible on the object only).
pub fn api_schema(supergraph: &Valid<Schema>) -> Result<Valid<Schema>, SupergraphError> {
    let links = links(supergraph);
    check_supported(&links)?;
    let machinery = Machinery::new(links);

    let mut schema = supergraph.clone().into_inner();
    let removed = prune_types(&mut schema, &machinery);
    schema.types.retain(|name, _| !removed.contains(name));
    prune_directive_definitions(&mut schema, &machinery, &removed);
    prune_schema_definition(&mut schema, &removed);

    let kept: HashSet<Name> = schema.directive_definitions.keys().cloned().collect();
    strip_directive_applications(&mut schema, &kept);

    schema.validate().map_err(|err| {
        SupergraphError::Invalid(format!("the API schema does not validate: {}", err.errors))
    })
}

/// What belongs to the federation specs rather than to the graph clients see.
struct Machinery {
    /// Links whose elements are removed: Apollo's specs. Custom specs (as used by
    /// `@composeDirective`) stay visible.
    links: Vec<Link>,
    /// Local names of `@inaccessible`.
    inaccessible: HashSet<String>,
}

impl Machinery {
    fn new(links: Vec<Link>) -> Self {
        let mut inaccessible: HashSet<String> = links
            .iter()
            .filter(|link| link.is_apollo_spec() && link.name == "inaccessible")
            .map(|link| link.directive_name("inaccessible"))
            .collect();
        inaccessible.insert("inaccessible".to_owned());
        let links = links.into_iter().filter(Link::is_apollo_spec).collect();
        Self {
            links,
            inaccessible,
        }
    }

    fn is_directive(&self, name: &str) -> bool {
        !BUILT_IN_DIRECTIVES.contains(&name)
            && (ALWAYS_MACHINERY_DIRECTIVES.contains(&name)
                || ALWAYS_MACHINERY_PREFIXES
                    .iter()
                    .any(|p| name.starts_with(p))
                || self.links.iter().any(|link| link.owns_directive(name)))
    }

    fn is_type(&self, name: &str) -> bool {
        ALWAYS_MACHINERY_PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
            || self.links.iter().any(|link| link.owns_type(name))
    }

    fn hides_component(&self, directives: &schema::DirectiveList) -> bool {
        directives
            .iter()
            .any(|d| self.inaccessible.contains(d.name.as_str()))
    }

    fn hides(&self, directives: &ast::DirectiveList) -> bool {
        directives
            .iter()
            .any(|d| self.inaccessible.contains(d.name.as_str()))
    }
}

/// Prunes members of surviving types and returns the names of the removed types. Removal cascades
/// (an object whose every field is gone is removed, and so are fields of its type), so this
/// repeats until no more types are removed; each round removes at least one type, so it ends.
fn prune_types(schema: &mut Schema, machinery: &Machinery) -> HashSet<Name> {
    let mut removed: HashSet<Name> = schema
        .types
        .iter()
        .filter(|(name, ty)| {
            !ty.is_built_in()
                && (machinery.is_type(name) || machinery.hides_component(ty.directives()))
        })
        .map(|(name, _)| name.clone())
        .collect();
    loop {
        let mut emptied = Vec::new();
        for (name, ty) in schema.types.iter_mut() {
            if removed.contains(name) || ty.is_built_in() {
                continue;
            }
            if !prune_type(ty, machinery, &removed) {
                emptied.push(name.clone());
            }
        }
        if emptied.is_empty() {
            return removed;
        }
        removed.extend(emptied);
    }
}

/// Prunes one type's members; returns whether the type still has any.
fn prune_type(ty: &mut ExtendedType, machinery: &Machinery, removed: &HashSet<Name>) -> bool {
    match ty {
        ExtendedType::Scalar(_) => true,
        ExtendedType::Object(object) => {
            let object = object.make_mut();
            object
                .implements_interfaces
                .retain(|i| !removed.contains(&i.name));
            prune_fields(&mut object.fields, machinery, removed)
        }
        ExtendedType::Interface(interface) => {
            let interface = interface.make_mut();
            interface
                .implements_interfaces
                .retain(|i| !removed.contains(&i.name));
            prune_fields(&mut interface.fields, machinery, removed)
        }
        ExtendedType::Union(union_) => {
            let union_ = union_.make_mut();
            union_.members.retain(|m| !removed.contains(&m.name));
            !union_.members.is_empty()
        }
        ExtendedType::Enum(enum_) => {
            let enum_ = enum_.make_mut();
            enum_.values.retain(|_, v| !machinery.hides(&v.directives));
            !enum_.values.is_empty()
        }
        ExtendedType::InputObject(input) => {
            let input = input.make_mut();
            input
                .fields
                .retain(|_, f| keeps_input_value(f, machinery, removed));
            !input.fields.is_empty()
        }
    }
}

fn prune_fields(
    fields: &mut IndexMap<Name, schema::Component<ast::FieldDefinition>>,
    machinery: &Machinery,
    removed: &HashSet<Name>,
) -> bool {
    fields.retain(|_, field| {
        !machinery.hides(&field.directives) && !removed.contains(field.ty.inner_named_type())
    });
    for field in fields.values_mut() {
        let keeps_all = field
            .arguments
            .iter()
            .all(|arg| keeps_input_value(arg, machinery, removed));
        if !keeps_all {
            field
                .make_mut()
                .arguments
                .retain(|arg| keeps_input_value(arg, machinery, removed));
        }
    }
    !fields.is_empty()
}

fn keeps_input_value(
    value: &ast::InputValueDefinition,
    machinery: &Machinery,
    removed: &HashSet<Name>,
) -> bool {
    !machinery.hides(&value.directives) && !removed.contains(value.ty.inner_named_type())
}

/// Removes the specs' directive definitions, and custom ones that take a removed type.
fn prune_directive_definitions(
    schema: &mut Schema,
    machinery: &Machinery,
    removed: &HashSet<Name>,
) {
    schema.directive_definitions.retain(|name, definition| {
        !machinery.is_directive(name)
            && definition
                .arguments
                .iter()
                .all(|arg| !removed.contains(arg.ty.inner_named_type()))
    });
}

/// Keeps a root operation only if its type survived.
fn prune_schema_definition(schema: &mut Schema, removed: &HashSet<Name>) {
    let definition = schema.schema_definition.make_mut();
    for root in [
        &mut definition.query,
        &mut definition.mutation,
        &mut definition.subscription,
    ] {
        if root.as_ref().is_some_and(|r| removed.contains(&r.name)) {
            *root = None;
        }
    }
}

/// Drops every directive application whose definition is not in `kept`.
fn strip_directive_applications(schema: &mut Schema, kept: &HashSet<Name>) {
    let keep_component = |list: &mut schema::DirectiveList| list.retain(|d| kept.contains(&d.name));
    let keep = |list: &mut ast::DirectiveList| list.retain(|d| kept.contains(&d.name));
    let strip_values = |values: &mut Vec<apollo_compiler::Node<ast::InputValueDefinition>>| {
        for value in values {
            keep(&mut value.make_mut().directives);
        }
    };

    keep_component(&mut schema.schema_definition.make_mut().directives);
    for ty in schema.types.values_mut() {
        if ty.is_built_in() {
            continue;
        }
        match ty {
            ExtendedType::Scalar(scalar) => keep_component(&mut scalar.make_mut().directives),
            ExtendedType::Union(union_) => keep_component(&mut union_.make_mut().directives),
            ExtendedType::Object(object) => {
                let object = object.make_mut();
                keep_component(&mut object.directives);
                for field in object.fields.values_mut() {
                    let field = field.make_mut();
                    keep(&mut field.directives);
                    strip_values(&mut field.arguments);
                }
            }
            ExtendedType::Interface(interface) => {
                let interface = interface.make_mut();
                keep_component(&mut interface.directives);
                for field in interface.fields.values_mut() {
                    let field = field.make_mut();
                    keep(&mut field.directives);
                    strip_values(&mut field.arguments);
                }
            }
            ExtendedType::Enum(enum_) => {
                let enum_ = enum_.make_mut();
                keep_component(&mut enum_.directives);
                for value in enum_.values.values_mut() {
                    keep(&mut value.make_mut().directives);
                }
            }
            ExtendedType::InputObject(input) => {
                let input = input.make_mut();
                keep_component(&mut input.directives);
                for field in input.fields.values_mut() {
                    keep(&mut field.make_mut().directives);
                }
            }
        }
    }
    for definition in schema.directive_definitions.values_mut() {
        if definition
            .arguments
            .iter()
            .any(|arg| arg.directives.iter().any(|d| !kept.contains(&d.name)))
        {
            strip_values(&mut definition.make_mut().arguments);
        }
    }
}

#[cfg(test)]
mod tests;
