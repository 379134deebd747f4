//! The query planner: a validated operation → a [`QueryPlan`]. Pure and synchronous.
//!
//! - [`operation`]: the client's operation normalized (fragments inlined, conditions kept).
//! - `builder`: assigns fields to fetch groups, with entity hand-offs, keys and requires.
//! - `emit`: turns the group graph into Sequence / Parallel / Flatten / Condition nodes and
//!   writes each group's subgraph operation.
//! - [`nodes`]: the plan's node types and their text and JSON forms.
//! - [`keys`]: every response key the executor looks up, numbered once per plan.

pub mod alias;
mod builder;
mod emit;
pub mod keys;
pub mod nodes;
pub mod operation;
pub mod text;

use std::sync::Arc;

use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};

pub use nodes::{EntityFetch, FetchNode, PathElem, PlanNode, QueryPlan};
pub use operation::{Condition, Operation, OperationKind};

use crate::supergraph::Supergraph;

/// Why an operation could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The operation name matches no operation (or several and no name).
    #[error("unknown operation")]
    UnknownOperation,
    /// A field cannot be reached from any subgraph.
    #[error("cannot plan {0}: no subgraph can resolve it from here")]
    Unsatisfiable(String),
}

/// Plans operation `operation_name` of `document`.
pub fn plan(
    supergraph: &Supergraph,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
) -> Result<QueryPlan, PlanError> {
    let operation = document
        .operations
        .get(operation_name)
        .map_err(|_| PlanError::UnknownOperation)?;
    let operation = Operation::from_executable(document, operation);
    plan_operation(supergraph, operation)
}

/// Plans a normalized operation.
pub fn plan_operation(
    supergraph: &Supergraph,
    mut operation: Operation,
) -> Result<QueryPlan, PlanError> {
    operation.annotate(&supergraph.api);
    let mut builder = builder::Builder::new(supergraph);
    builder.index_client_selections(&operation);
    let root_type = operation.root_type.clone();
    let sequential = operation.kind == OperationKind::Mutation;
    for field in root_fields(&operation.selection) {
        if field.name == "__typename" || field.name == "__schema" || field.name == "__type" {
            continue;
        }
        builder.plan_root_field(&root_type, &field, sequential)?;
    }
    let mut root = emit::emit(supergraph, &operation, &builder.groups);
    if operation.kind == OperationKind::Subscription {
        root = root.map(into_subscription).transpose()?;
    }
    let keys = keys::assign(&mut operation, root.as_mut());
    if let Some(root) = root.as_mut() {
        compile_representations(supergraph, root);
    }
    Ok(QueryPlan {
        operation: Arc::new(operation),
        root,
        keys,
    })
}

/// Writes each entity fetch's representations as text with holes (once its keys are
/// numbered).
fn compile_representations(supergraph: &Supergraph, node: &mut PlanNode) {
    match node {
        PlanNode::Fetch(fetch) => {
            let fetch = Arc::make_mut(fetch);
            if let Some(entities) = &mut fetch.entities {
                let possible = |runtime: &str, condition: &Name| {
                    supergraph.matches_fragment(runtime, condition)
                };
                entities.representations = entities
                    .type_filter
                    .iter()
                    .map(|typename| {
                        nodes::Representation::compile(
                            &entities.input,
                            typename,
                            entities.rewrite_typename.as_ref(),
                            &possible,
                        )
                    })
                    .collect();
            }
        }
        PlanNode::Sequence(nodes) | PlanNode::Parallel(nodes) => {
            nodes
                .iter_mut()
                .for_each(|n| compile_representations(supergraph, n));
        }
        PlanNode::Condition { node, .. } => compile_representations(supergraph, node),
        PlanNode::Subscription { rest, .. } => {
            if let Some(rest) = rest {
                compile_representations(supergraph, rest);
            }
        }
    }
}

/// A subscription's plan: its first fetch (the root field's, in the subgraph that owns it)
/// becomes the subscription's primary; everything after it completes each event.
fn into_subscription(root: PlanNode) -> Result<PlanNode, PlanError> {
    let refused = || {
        PlanError::Unsatisfiable(
            "a subscription's root field must come from one subgraph, unconditionally".into(),
        )
    };
    let (primary, rest) = match root {
        PlanNode::Fetch(primary) if primary.entities.is_none() => (primary, None),
        PlanNode::Sequence(mut nodes) => {
            let Some(PlanNode::Fetch(primary)) = (!nodes.is_empty()).then(|| nodes.remove(0))
            else {
                return Err(refused());
            };
            if primary.entities.is_some() {
                return Err(refused());
            }
            let rest = match nodes.len() {
                0 => None,
                1 => nodes.pop().map(Box::new),
                _ => Some(Box::new(PlanNode::Sequence(nodes))),
            };
            (primary, rest)
        }
        _ => return Err(refused()),
    };
    Ok(PlanNode::Subscription { primary, rest })
}

/// Root fields with the conditions of the root fragments they sit in.
fn root_fields(selection: &operation::SelectionSet) -> Vec<operation::Field> {
    let mut out = Vec::new();
    for item in &selection.items {
        match item {
            operation::Selection::Field(field) => out.push(field.clone()),
            operation::Selection::Fragment(fragment) => {
                for mut field in root_fields(&fragment.selection) {
                    field.condition = field.condition.and(&fragment.condition);
                    out.push(field);
                }
            }
        }
    }
    out
}
