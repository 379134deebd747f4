//! Turns fetch groups into plan nodes: one [`FetchNode`] per group with its subgraph
//! operation written out, ordered by dependency level into Sequence and Parallel nodes.

use std::sync::Arc;

use apollo_compiler::Name;

use super::builder::Group;
use super::nodes::{EntityFetch, FetchNode, PlanNode};
use super::operation::{Condition, Fragment, Operation, Selection, SelectionSet, merge_into};
use super::text::{variables_of, write_selection};
use crate::supergraph::Supergraph;

/// The plan's root node for `groups`, or `None` when nothing is fetched.
pub(super) fn emit(
    supergraph: &Supergraph,
    operation: &Operation,
    groups: &[Group],
) -> Option<PlanNode> {
    if groups.is_empty() {
        return None;
    }
    let levels = levels(groups);
    let (groups, levels) = merge_types_per_path(groups, &levels);
    let groups = groups.as_slice();
    let depth = levels.iter().copied().max().unwrap_or(0);
    let mut sequence = Vec::new();
    for level in 0..=depth {
        let mut parallel: Vec<PlanNode> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| levels[*i] == level)
            .map(|(_, group)| group_node(supergraph, operation, group))
            .collect();
        match parallel.len() {
            0 => {}
            1 => sequence.extend(parallel.pop()),
            _ => sequence.push(PlanNode::Parallel(parallel)),
        }
    }
    match sequence.len() {
        1 => sequence.pop(),
        _ => Some(PlanNode::Sequence(sequence)),
    }
}

/// Entity groups of one subgraph at one path and level that differ only by type become one
/// fetch: `_entities { ... on A { … } ... on B { … } }`, one round trip instead of several.
fn merge_types_per_path(groups: &[Group], levels: &[usize]) -> (Vec<Group>, Vec<usize>) {
    let mut merged: Vec<Group> = Vec::new();
    let mut merged_levels: Vec<usize> = Vec::new();
    for (group, level) in groups.iter().zip(levels) {
        let target = group.entity.as_ref().and_then(|entity| {
            if entity.rewrite_typename.is_some() {
                return None;
            }
            merged.iter().zip(&merged_levels).position(|(m, l)| {
                l == level
                    && m.graph == group.graph
                    && m.condition == group.condition
                    && m.entity.as_ref().is_some_and(|e| {
                        e.path == entity.path
                            && e.rewrite_typename.is_none()
                            && !e.types.contains(&entity.type_name)
                    })
            })
        });
        match target {
            Some(index) => absorb(&mut merged[index], group),
            None => {
                merged.push(group.clone());
                merged_levels.push(*level);
            }
        }
    }
    (merged, merged_levels)
}

/// Adds `other`'s type to `into`, each type's selection and input under its own fragment.
fn absorb(into: &mut Group, other: &Group) {
    let (Some(entity), Some(other_entity)) = (&mut into.entity, &other.entity) else {
        return;
    };
    if entity.types.len() == 1 {
        // First merge: move the existing type's selection and input under a fragment.
        let only = entity.type_name.clone();
        into.selection = typed(&only, std::mem::take(&mut into.selection));
        entity.input = typed_input(&only, std::mem::take(&mut entity.input));
    }
    let selection = typed(&other_entity.type_name, other.selection.clone());
    merge_into(&mut into.selection, selection);
    let input = typed_input(&other_entity.type_name, other_entity.input.clone());
    merge_into(&mut entity.input, input);
    entity.types.push(other_entity.type_name.clone());
    into.deps.extend(other.deps.iter().copied());
}

fn typed(on: &Name, selection: SelectionSet) -> SelectionSet {
    SelectionSet {
        items: vec![Selection::Fragment(Fragment {
            on: on.clone(),
            condition: Condition::default(),
            selection,
        })],
    }
}

/// `__typename` stays at the top of a representation; the rest goes under the type's fragment.
fn typed_input(on: &Name, mut input: SelectionSet) -> SelectionSet {
    let typename_at = input
        .items
        .iter()
        .position(|i| matches!(i, Selection::Field(f) if f.name == "__typename"));
    let typename = typename_at.map(|at| input.items.remove(at));
    let mut out = typed(on, input);
    if let Some(typename) = typename {
        out.items.insert(0, typename);
    }
    out
}

/// Each group's level: 0 without dependencies, else one more than its deepest dependency.
fn levels(groups: &[Group]) -> Vec<usize> {
    let mut levels = vec![0; groups.len()];
    // Dependencies always point at earlier groups or at groups whose level is settled by a
    // few passes; iterate to a fixed point (bounded by the number of groups).
    for _ in 0..groups.len() {
        let mut changed = false;
        for (i, group) in groups.iter().enumerate() {
            let level = group.deps.iter().map(|d| levels[*d] + 1).max().unwrap_or(0);
            if level != levels[i] {
                levels[i] = level;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    levels
}

fn group_node(supergraph: &Supergraph, operation: &Operation, group: &Group) -> PlanNode {
    let parent = match &group.entity {
        Some(entity) => entity.type_name.clone(),
        None => operation.root_type.clone(),
    };
    let (selection, renames) =
        super::alias::dealias(supergraph, group.graph, &parent, &group.selection);
    let mut variables = Vec::new();
    variables_of(&selection, &mut variables);
    let definitions = variable_definitions(operation, &variables);
    let operation_text = match &group.entity {
        None => root_operation(operation, &definitions, &selection),
        Some(entity) => {
            let single = (entity.types.len() == 1).then_some(&entity.type_name);
            entity_operation(&definitions, single, &selection)
        }
    };
    let entities = group.entity.as_ref().map(|entity| {
        let mut type_filter: Vec<Name> = entity
            .types
            .iter()
            .flat_map(|t| supergraph.possible_types(t).iter().cloned())
            .collect();
        type_filter.extend(entity.types.iter().cloned());
        type_filter.sort();
        type_filter.dedup();
        EntityFetch {
            path: entity.path.clone(),
            type_filter,
            input: entity.input.clone(),
            rewrite_typename: entity.rewrite_typename.clone(),
            representations: Vec::new(),
        }
    });
    let fetch = PlanNode::Fetch(Arc::new(FetchNode {
        graph: group.graph,
        service: supergraph.subgraph(group.graph).name.clone(),
        operation: operation_text,
        variables,
        entities,
        renames,
        shareable: operation.kind == super::operation::OperationKind::Query,
    }));
    // A fetch whose every selection is skipped is not sent at all.
    let condition = group.condition.and(&common_condition(&group.selection));
    if condition.is_always() {
        fetch
    } else {
        PlanNode::Condition {
            condition,
            node: Box::new(fetch),
        }
    }
}

/// The `@skip`/`@include` conditions every top-level selection of `set` carries: when they do
/// not hold, nothing in `set` applies.
fn common_condition(set: &SelectionSet) -> Condition {
    let mut common: Option<Vec<(Name, bool)>> = None;
    for item in &set.items {
        let own = match item {
            Selection::Field(field) => &field.condition,
            Selection::Fragment(fragment) => &fragment.condition,
        };
        let kept = match common {
            None => own.0.clone(),
            Some(pairs) => pairs.into_iter().filter(|p| own.0.contains(p)).collect(),
        };
        if kept.is_empty() {
            return Condition::default();
        }
        common = Some(kept);
    }
    Condition(common.unwrap_or_default())
}

fn variable_definitions(operation: &Operation, used: &[Name]) -> Vec<String> {
    operation
        .variables
        .iter()
        .filter(|v| used.contains(&v.name))
        .map(|v| v.text.clone())
        .collect()
}

fn root_operation(
    operation: &Operation,
    definitions: &[String],
    selection: &SelectionSet,
) -> String {
    let mut out = String::from(operation.kind.keyword());
    if !definitions.is_empty() {
        out.push('(');
        out.push_str(&definitions.join(", "));
        out.push(')');
    }
    out.push(' ');
    write_selection(&mut out, selection);
    out
}

fn entity_operation(
    definitions: &[String],
    type_name: Option<&Name>,
    selection: &SelectionSet,
) -> String {
    let mut out = String::from("query($representations: [_Any!]!");
    for definition in definitions {
        out.push_str(", ");
        out.push_str(definition);
    }
    out.push_str(") { _entities(representations: $representations) { ");
    match type_name {
        // One type: its fields under one fragment.
        Some(type_name) => {
            out.push_str("... on ");
            out.push_str(type_name);
            out.push(' ');
            write_selection(&mut out, selection);
        }
        // Several: the selection already holds a fragment per type.
        None => {
            let mut inner = String::new();
            write_selection(&mut inner, selection);
            let inner = inner.strip_prefix("{ ").unwrap_or(&inner);
            out.push_str(inner.strip_suffix('}').unwrap_or(inner).trim_end());
        }
    }
    out.push_str(" } }");
    out
}
