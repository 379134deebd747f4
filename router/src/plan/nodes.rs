//! The plan's nodes and how they print.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use apollo_compiler::Name;
use serde_json::{Value, json};

use super::keys::KeyId;
use super::operation::{Condition, Operation, Selection, SelectionSet};
use super::text::write_selection;
use crate::jsontext::write_name;
use crate::supergraph::GraphId;

/// One step of a response path: a response key, or every element of a list (`@`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathElem {
    /// The value under this response key.
    Key(Name),
    /// Each element of a list.
    List,
}

/// Prints a path as `products.@.reviews`.
pub fn path_text(path: &[PathElem]) -> String {
    let parts: Vec<&str> = path
        .iter()
        .map(|elem| match elem {
            PathElem::Key(key) => key.as_str(),
            PathElem::List => "@",
        })
        .collect();
    parts.join(".")
}

/// What an entity fetch sends and where its results go.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityFetch {
    /// Where the objects to complete are, in the data gathered so far.
    pub path: Vec<PathElem>,
    /// The `__typename`s of objects this fetch completes.
    pub type_filter: Vec<Name>,
    /// The shape of each representation: `__typename`, key and required fields.
    pub input: SelectionSet,
    /// The `__typename` to send instead of the object's (for `@interfaceObject` subgraphs).
    pub rewrite_typename: Option<Name>,
    /// Per type of `type_filter` (same order), the representation as text with holes for
    /// field values, when `input` is flat for that type (set when planning ends; see
    /// [`Representation`]).
    pub representations: Vec<Option<Representation>>,
}

/// A representation of an object of one type as JSON text with holes: `input`'s fields that
/// apply to the type, in order, with `__typename` (or its rewrite) and every key already
/// written, so that only the values are looked up. Only for inputs whose fields are all
/// leaves (the usual keys and requirements); others are written field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    /// Every piece of text, one after another: the text before the first hole, between holes,
    /// and after the last.
    text: Vec<u8>,
    /// Each hole: where the text before it ends, and the key whose value fills it.
    holes: Vec<(usize, KeyId)>,
}

impl Representation {
    /// The representation of an object of type `typename`; `None` when a field that applies
    /// has a sub-selection. `possible` says whether an object of the first type matches a
    /// fragment on the second.
    pub fn compile(
        input: &SelectionSet,
        typename: &str,
        rewrite: Option<&Name>,
        possible: &dyn Fn(&str, &Name) -> bool,
    ) -> Option<Self> {
        let mut out = Self {
            text: vec![b'{'],
            holes: Vec::new(),
        };
        let mut first = true;
        out.add(
            input,
            typename,
            rewrite.map_or(typename, Name::as_str),
            possible,
            &mut first,
        )?;
        out.text.push(b'}');
        Some(out)
    }

    fn add(
        &mut self,
        set: &SelectionSet,
        typename: &str,
        sent_typename: &str,
        possible: &dyn Fn(&str, &Name) -> bool,
        first: &mut bool,
    ) -> Option<()> {
        for item in &set.items {
            match item {
                Selection::Field(field) => {
                    if !std::mem::take(first) {
                        self.text.push(b',');
                    }
                    write_name(&mut self.text, field.name.as_str());
                    self.text.push(b':');
                    if field.name == "__typename" {
                        write_name(&mut self.text, sent_typename);
                    } else if field.selection.items.is_empty() {
                        self.holes.push((self.text.len(), field.key_id));
                    } else {
                        return None;
                    }
                }
                Selection::Fragment(fragment) => {
                    if possible(typename, &fragment.on) {
                        self.add(
                            &fragment.selection,
                            typename,
                            sent_typename,
                            possible,
                            first,
                        )?;
                    }
                }
            }
        }
        Some(())
    }

    /// The text before each hole with the hole's key, then the text after the last hole.
    pub fn pieces(&self) -> (impl Iterator<Item = (&[u8], KeyId)>, &[u8]) {
        let mut at = 0;
        let pieces = self.holes.iter().map(move |&(end, key)| {
            let piece = &self.text[at..end];
            at = end;
            (piece, key)
        });
        let last = self.holes.last().map_or(0, |&(end, _)| end);
        (pieces, &self.text[last..])
    }
}

/// One request to one subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchNode {
    /// The subgraph.
    pub graph: GraphId,
    /// The subgraph's name.
    pub service: String,
    /// The operation text sent.
    pub operation: String,
    /// The client variables the operation uses.
    pub variables: Vec<Name>,
    /// `Some` for an `_entities` fetch.
    pub entities: Option<EntityFetch>,
    /// Aliases to undo in the response (see [`super::alias`]).
    pub renames: Vec<super::alias::Rename>,
    /// Whether an identical request in flight may answer this one too: only fetches of query
    /// operations (a mutation's fetches, even its entity fetches that read what it wrote, are
    /// never shared).
    pub shareable: bool,
}

/// A node of a query plan.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanNode {
    /// One request; an entity fetch is shown as `Flatten(path) { Fetch }`.
    Fetch(Arc<FetchNode>),
    /// Children one after another.
    Sequence(Vec<PlanNode>),
    /// Children at the same time.
    Parallel(Vec<PlanNode>),
    /// The child runs only when the `@skip`/`@include` variables say so.
    Condition {
        /// The condition.
        condition: Condition,
        /// What runs when it holds.
        node: Box<PlanNode>,
    },
    /// A subscription: `primary` is subscribed to once (over WebSocket, never fetched over
    /// HTTP); each event it yields is the primary's response, which `rest` then completes with
    /// fields of other subgraphs, like a query.
    Subscription {
        /// The subscription operation sent to the subgraph owning the root field.
        primary: Arc<FetchNode>,
        /// What completes each event; `None` when the owning subgraph resolves everything.
        rest: Option<Box<PlanNode>>,
    },
}

/// A query plan: what to fetch, in which order, and the normalized operation that shapes the
/// response.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// The client's operation, normalized.
    pub operation: Arc<Operation>,
    /// The fetches; `None` when nothing needs fetching (only `__typename` or introspection).
    pub root: Option<PlanNode>,
    /// Every response key the executor looks up, numbered.
    pub keys: super::keys::Keys,
}

impl QueryPlan {
    /// The plan as JSON, for `extensions.queryPlan`.
    pub fn to_json(&self) -> Value {
        json!({ "kind": "QueryPlan", "node": self.root.as_ref().map(node_json) })
    }

    /// Every fetch of the plan.
    pub fn fetches(&self) -> Vec<&Arc<FetchNode>> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            collect_fetches(root, &mut out);
        }
        out
    }
}

fn collect_fetches<'a>(node: &'a PlanNode, out: &mut Vec<&'a Arc<FetchNode>>) {
    match node {
        PlanNode::Fetch(fetch) => out.push(fetch),
        PlanNode::Sequence(nodes) | PlanNode::Parallel(nodes) => {
            nodes.iter().for_each(|n| collect_fetches(n, out));
        }
        PlanNode::Condition { node, .. } => collect_fetches(node, out),
        PlanNode::Subscription { primary, rest } => {
            out.push(primary);
            if let Some(rest) = rest {
                collect_fetches(rest, out);
            }
        }
    }
}

fn node_json(node: &PlanNode) -> Value {
    match node {
        PlanNode::Fetch(fetch) => {
            let fetch_json = json!({
                "kind": "Fetch",
                "serviceName": fetch.service,
                "variableUsages": fetch.variables.iter().map(Name::as_str).collect::<Vec<_>>(),
                "operation": fetch.operation,
            });
            match &fetch.entities {
                Some(entities) => json!({
                    "kind": "Flatten",
                    "path": entities.path.iter().map(|p| match p {
                        PathElem::Key(k) => k.as_str(),
                        PathElem::List => "@",
                    }).collect::<Vec<_>>(),
                    "node": fetch_json,
                }),
                None => fetch_json,
            }
        }
        PlanNode::Sequence(nodes) => {
            json!({ "kind": "Sequence", "nodes": nodes.iter().map(node_json).collect::<Vec<_>>() })
        }
        PlanNode::Parallel(nodes) => {
            json!({ "kind": "Parallel", "nodes": nodes.iter().map(node_json).collect::<Vec<_>>() })
        }
        PlanNode::Condition { condition, node } => json!({
            "kind": "Condition",
            "condition": condition.0.iter().map(|(v, expected)| json!({ "variable": v.as_str(), "is": expected })).collect::<Vec<_>>(),
            "node": node_json(node),
        }),
        PlanNode::Subscription { primary, rest } => json!({
            "kind": "Subscription",
            "primary": node_json(&PlanNode::Fetch(primary.clone())),
            "rest": rest.as_deref().map(node_json),
        }),
    }
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("QueryPlan {\n");
        if let Some(root) = &self.root {
            write_node(&mut out, root, 1);
        }
        out.push('}');
        f.write_str(&out)
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_node(out: &mut String, node: &PlanNode, level: usize) {
    match node {
        PlanNode::Fetch(fetch) => write_fetch(out, fetch, level),
        PlanNode::Sequence(nodes) | PlanNode::Parallel(nodes) => {
            indent(out, level);
            out.push_str(if matches!(node, PlanNode::Sequence(_)) {
                "Sequence {\n"
            } else {
                "Parallel {\n"
            });
            for child in nodes {
                write_node(out, child, level + 1);
            }
            indent(out, level);
            out.push_str("},\n");
        }
        PlanNode::Condition { condition, node } => {
            indent(out, level);
            let parts: Vec<String> = condition
                .0
                .iter()
                .map(|(v, expected)| {
                    if *expected {
                        format!("${v}")
                    } else {
                        format!("!${v}")
                    }
                })
                .collect();
            let _ = writeln!(out, "Include(if: {}) {{", parts.join(" && "));
            write_node(out, node, level + 1);
            indent(out, level);
            out.push_str("},\n");
        }
        PlanNode::Subscription { primary, rest } => {
            indent(out, level);
            out.push_str("Subscription {\n");
            indent(out, level + 1);
            out.push_str("Primary: {\n");
            write_fetch(out, primary, level + 2);
            indent(out, level + 1);
            out.push_str("},\n");
            if let Some(rest) = rest {
                indent(out, level + 1);
                out.push_str("Rest: {\n");
                write_node(out, rest, level + 2);
                indent(out, level + 1);
                out.push_str("},\n");
            }
            indent(out, level);
            out.push_str("},\n");
        }
    }
}

fn write_fetch(out: &mut String, fetch: &FetchNode, level: usize) {
    let mut level = level;
    if let Some(entities) = &fetch.entities {
        indent(out, level);
        let _ = writeln!(out, "Flatten(path: \"{}\") {{", path_text(&entities.path));
        level += 1;
    }
    indent(out, level);
    let _ = writeln!(out, "Fetch(service: \"{}\") {{", fetch.service);
    if let Some(entities) = &fetch.entities {
        indent(out, level + 1);
        let mut input = String::new();
        write_selection(&mut input, &entities.input);
        let _ = writeln!(out, "{input} =>");
    }
    indent(out, level + 1);
    out.push_str(&fetch.operation);
    out.push('\n');
    indent(out, level);
    out.push_str("},\n");
    if fetch.entities.is_some() {
        indent(out, level - 1);
        out.push_str("},\n");
    }
}
