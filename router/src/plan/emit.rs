//! Turns fetch groups into plan nodes: one [`FetchNode`] per group with its subgraph
//! operation written out, ordered by dependency level into Sequence and Parallel nodes.

use std::sync::Arc;

use apollo_compiler::Name;

use super::builder::Group;
use super::nodes::{EntityFetch, FetchNode, PlanNode};
use super::operation::{Operation, SelectionSet};
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
        Some(entity) => entity_operation(&definitions, &entity.type_name, &selection),
    };
    let entities = group.entity.as_ref().map(|entity| {
        let mut type_filter: Vec<Name> = supergraph
            .possible_types(&entity.type_name)
            .iter()
            .cloned()
            .collect();
        type_filter.push(entity.type_name.clone());
        type_filter.sort();
        type_filter.dedup();
        EntityFetch {
            path: entity.path.clone(),
            type_filter,
            input: entity.input.clone(),
            rewrite_typename: entity.rewrite_typename.clone(),
        }
    });
    let fetch = PlanNode::Fetch(Arc::new(FetchNode {
        graph: group.graph,
        service: supergraph.subgraph(group.graph).name.clone(),
        operation: operation_text,
        variables,
        entities,
        renames,
    }));
    if group.condition.is_always() {
        fetch
    } else {
        PlanNode::Condition {
            condition: group.condition.clone(),
            node: Box::new(fetch),
        }
    }
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

fn entity_operation(definitions: &[String], type_name: &Name, selection: &SelectionSet) -> String {
    let mut out = String::from("query($representations: [_Any!]!");
    for definition in definitions {
        out.push_str(", ");
        out.push_str(definition);
    }
    out.push_str(") { _entities(representations: $representations) { ... on ");
    out.push_str(type_name);
    out.push(' ');
    write_selection(&mut out, selection);
    out.push_str(" } }");
    out
}
