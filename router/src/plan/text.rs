//! Subgraph operations as GraphQL text.

use std::fmt::Write as _;

use apollo_compiler::Name;

use super::operation::{Selection, SelectionSet};

/// Appends `{ … }` for `set` (nothing for an empty set).
pub fn write_selection(out: &mut String, set: &SelectionSet) {
    if set.items.is_empty() {
        return;
    }
    out.push_str("{ ");
    for item in &set.items {
        // `@skip` and `@include` may each appear once per selection: a condition on more
        // variables wraps the selection in inline fragments for the others.
        let condition = match item {
            Selection::Field(field) => &field.condition,
            Selection::Fragment(fragment) => &fragment.condition,
        };
        let (own, outer) = split_condition(&condition.0);
        for pair in &outer {
            out.push_str("...");
            write_directive(out, pair);
            out.push_str(" { ");
        }
        match item {
            Selection::Field(field) => {
                if let Some(alias) = &field.alias {
                    let _ = write!(out, "{alias}: ");
                }
                out.push_str(&field.name);
                out.push_str(&field.args);
                own.iter().for_each(|pair| write_directive(out, pair));
                out.push(' ');
                if !field.selection.items.is_empty() {
                    write_selection(out, &field.selection);
                    out.push(' ');
                }
            }
            Selection::Fragment(fragment) => {
                let _ = write!(out, "... on {}", fragment.on);
                own.iter().for_each(|pair| write_directive(out, pair));
                out.push(' ');
                write_selection(out, &fragment.selection);
                out.push(' ');
            }
        }
        for _ in &outer {
            out.push_str("} ");
        }
    }
    out.push('}');
}

/// One variable of a condition and the value it must have.
type ConditionPair = (Name, bool);

/// The first `@skip` and the first `@include` of a condition (written on the selection
/// itself, in the condition's order), and the rest (each written on an inline fragment around
/// it).
fn split_condition(pairs: &[ConditionPair]) -> (Vec<&ConditionPair>, Vec<&ConditionPair>) {
    let (mut own, mut outer): (Vec<&ConditionPair>, Vec<&ConditionPair>) = (Vec::new(), Vec::new());
    for pair in pairs {
        if own.iter().any(|(_, expected)| *expected == pair.1) {
            outer.push(pair);
        } else {
            own.push(pair);
        }
    }
    (own, outer)
}

fn write_directive(out: &mut String, (variable, expected): &ConditionPair) {
    let directive = if *expected { "include" } else { "skip" };
    let _ = write!(out, " @{directive}(if: ${variable})");
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
