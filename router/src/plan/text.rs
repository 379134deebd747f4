//! Subgraph operations as GraphQL text.

use std::fmt::Write as _;

use apollo_compiler::Name;

use super::operation::{Condition, Selection, SelectionSet};

/// Appends `{ … }` for `set` (nothing for an empty set).
pub fn write_selection(out: &mut String, set: &SelectionSet) {
    if set.items.is_empty() {
        return;
    }
    out.push_str("{ ");
    for item in &set.items {
        match item {
            Selection::Field(field) => {
                if let Some(alias) = &field.alias {
                    let _ = write!(out, "{alias}: ");
                }
                out.push_str(&field.name);
                out.push_str(&field.args);
                write_condition(out, &field.condition);
                out.push(' ');
                if !field.selection.items.is_empty() {
                    write_selection(out, &field.selection);
                    out.push(' ');
                }
            }
            Selection::Fragment(fragment) => {
                let _ = write!(out, "... on {}", fragment.on);
                write_condition(out, &fragment.condition);
                out.push(' ');
                write_selection(out, &fragment.selection);
                out.push(' ');
            }
        }
    }
    out.push('}');
}

fn write_condition(out: &mut String, condition: &Condition) {
    for (variable, expected) in &condition.0 {
        let directive = if *expected { "include" } else { "skip" };
        let _ = write!(out, " @{directive}(if: ${variable})");
    }
}

/// The client variables `set` uses (arguments and conditions), in first-use order.
pub fn variables_of(set: &SelectionSet, out: &mut Vec<Name>) {
    for item in &set.items {
        let (condition, selection) = match item {
            Selection::Field(field) => {
                for var in &field.vars {
                    if !out.contains(var) {
                        out.push(var.clone());
                    }
                }
                (&field.condition, &field.selection)
            }
            Selection::Fragment(fragment) => (&fragment.condition, &fragment.selection),
        };
        for (var, _) in &condition.0 {
            if !out.contains(var) {
                out.push(var.clone());
            }
        }
        variables_of(selection, out);
    }
}
