//! Helpers on selection sets the builder uses: paths, `__typename`, provides, aliases.

use apollo_compiler::{Name, ast};

use crate::plan::nodes::PathElem;
use crate::plan::operation::{
    Condition, Field, Fragment, Selection, SelectionSet, merge_into, push_field,
};

/// The path below `field` at `path`: its response key, then `@` per list level.
pub(super) fn child_path(path: &[PathElem], field: &Field) -> Vec<PathElem> {
    let mut child = path.to_vec();
    child.push(PathElem::Key(field.key.clone()));
    let mut ty = &field.ty;
    while let ast::Type::List(inner) | ast::Type::NonNullList(inner) = ty {
        child.push(PathElem::List);
        ty = inner;
    }
    child
}

/// Puts `__typename` first in `set` when it is not there.
pub(super) fn prepend_typename(set: &mut SelectionSet) {
    let has = set.items.iter().any(|item| {
        matches!(item, Selection::Field(f) if f.name == "__typename" && f.alias.is_none() && f.condition.is_always())
    });
    if !has {
        let typename = Field::plain(
            Name::new_unchecked("__typename"),
            ast::Type::NonNullNamed(Name::new_unchecked("String")),
        );
        set.items.insert(0, Selection::Field(typename));
    }
}

/// Adds `sub` to `out`, wrapped in a conditional fragment on `parent` when `condition` is set.
pub(super) fn push_conditional(
    out: &mut SelectionSet,
    parent: &Name,
    condition: &Condition,
    sub: SelectionSet,
) {
    if condition.is_always() {
        merge_into(out, sub);
    } else {
        push_typed_fragment(out, parent, condition, sub);
    }
}

pub(super) fn push_typed_fragment(
    out: &mut SelectionSet,
    on: &Name,
    condition: &Condition,
    sub: SelectionSet,
) {
    if sub.items.is_empty() {
        return;
    }
    merge_into(
        out,
        SelectionSet {
            items: vec![Selection::Fragment(Fragment {
                on: on.clone(),
                condition: condition.clone(),
                selection: sub,
            })],
        },
    );
}

/// Whether `provides` (at a level whose type is `parent`) includes `field`.
pub(super) fn provided(provides: Option<&SelectionSet>, parent: &str, field: &str) -> bool {
    provided_sub(provides, parent, field).is_some()
}

/// What `provides` supplies below `field`, if it supplies `field` at all.
pub(super) fn provided_sub(
    provides: Option<&SelectionSet>,
    parent: &str,
    field: &str,
) -> Option<SelectionSet> {
    let provides = provides?;
    let mut found: Option<SelectionSet> = None;
    for item in &provides.items {
        match item {
            Selection::Field(f) if f.name == field => match &mut found {
                Some(existing) => merge_into(existing, f.selection.clone()),
                None => found = Some(f.selection.clone()),
            },
            Selection::Fragment(fragment) if fragment.on == parent => {
                if let Some(sub) = provided_sub(Some(&fragment.selection), parent, field) {
                    match &mut found {
                        Some(existing) => merge_into(existing, sub),
                        None => found = Some(sub),
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The part of `provides` that applies to objects of type `on`.
pub(super) fn narrow_provides(provides: Option<&SelectionSet>, on: &Name) -> Option<SelectionSet> {
    let provides = provides?;
    let mut out = SelectionSet::default();
    for item in &provides.items {
        match item {
            Selection::Field(f) => push_field(&mut out, f.clone()),
            Selection::Fragment(fragment) if fragment.on == *on => {
                merge_into(&mut out, fragment.selection.clone());
            }
            Selection::Fragment(_) => {}
        }
    }
    Some(out)
}

/// The named type inside a type reference written as text (`[Book!]!` → `Book`).
pub(super) fn named_type_of(text: &str) -> Name {
    Name::new_unchecked(text.trim_matches(|c| c == '[' || c == ']' || c == '!' || c == ' '))
}

/// Gives every field with arguments in `set` (recursively) a response key of its own, derived
/// from its name and arguments.
pub(super) fn alias_arguments(mut set: SelectionSet) -> SelectionSet {
    for item in &mut set.items {
        match item {
            Selection::Field(field) => {
                if !field.args.is_empty() && field.alias.is_none() {
                    let alias = Name::new_unchecked(&format!(
                        "_tessera_{}_{:08x}",
                        field.name,
                        fnv1a(field.args.as_bytes())
                    ));
                    field.key = alias.clone();
                    field.alias = Some(alias);
                }
                field.selection = alias_arguments(std::mem::take(&mut field.selection));
            }
            Selection::Fragment(fragment) => {
                fragment.selection = alias_arguments(std::mem::take(&mut fragment.selection));
            }
        }
    }
    set
}

/// A small stable hash (FNV-1a, 32 bits) for internal aliases.
pub(super) fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// Whether two representation shapes ask for one field name with different arguments: such
/// inputs cannot share one representation.
pub(super) fn inputs_conflict(a: &SelectionSet, b: &SelectionSet) -> bool {
    let fields = |set: &SelectionSet| -> Vec<Field> {
        set.items
            .iter()
            .filter_map(|item| match item {
                Selection::Field(field) => Some(field.clone()),
                Selection::Fragment(_) => None,
            })
            .collect()
    };
    let (a, b) = (fields(a), fields(b));
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.name == y.name && (x.args != y.args || inputs_conflict(&x.selection, &y.selection))
        })
    })
}
