//! Field conflicts inside one subgraph operation.
//!
//! Fragments on different types may select one response key with different types in the
//! subgraph (`id: ID!` on one type, `id: ID` on another) or different arguments; GraphQL
//! validation rejects such an operation, also when the two sit deeper, below two fields that
//! share a response key. Later occurrences get an alias of their own, and the fetch carries
//! [`Rename`]s that move the values back under the client's key when the response arrives.

use apollo_compiler::Name;

use super::keys::KeyId;
use super::operation::{Field, Selection, SelectionSet};
use crate::supergraph::{GraphId, Supergraph};

/// Where an aliased response key goes back to, and the renames below it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    /// The key in the subgraph's response.
    pub key: Name,
    /// The key the value belongs under; `None` when only something below it is renamed.
    pub original: Option<Name>,
    /// Renames inside the value.
    pub children: Vec<Rename>,
    /// `key`'s number in the plan (set when planning ends).
    pub key_id: KeyId,
    /// `original`'s number in the plan (set when planning ends).
    pub original_id: Option<KeyId>,
}

/// Aliases conflicting fields of `set` (whose objects are of type `parent` in `graph`).
pub fn dealias(
    sg: &Supergraph,
    graph: GraphId,
    parent: &Name,
    set: &SelectionSet,
) -> (SelectionSet, Vec<Rename>) {
    let mut counter = 0;
    let mut level = Level::default();
    let mut renames = Vec::new();
    let out = rewrite(
        sg,
        graph,
        parent,
        set,
        &mut counter,
        &mut level,
        &mut renames,
    );
    (out, renames)
}

/// What one response path already holds: every (key, signature, key used) at it, and the same
/// for each response key below it, shared by every field that writes that key.
#[derive(Default)]
struct Level {
    seen: Vec<(Name, String, Name)>,
    below: Vec<(Name, Level)>,
}

impl Level {
    fn below(&mut self, key: &Name) -> &mut Level {
        let at = match self.below.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.below.push((key.clone(), Level::default()));
                self.below.len() - 1
            }
        };
        &mut self.below[at].1
    }
}

/// The field's type as the subgraph declares it, as text.
fn type_in_graph(sg: &Supergraph, graph: GraphId, parent: &str, field: &Field) -> String {
    sg.join
        .field_in(parent, &field.name, graph)
        .and_then(|f| f.type_in_graph)
        .unwrap_or_else(|| field.ty.to_string())
}

/// What must agree between two fields with one response key.
fn signature(sg: &Supergraph, graph: GraphId, parent: &str, field: &Field) -> String {
    format!(
        "{}{}:{}",
        field.name,
        field.args,
        type_in_graph(sg, graph, parent, field)
    )
}

fn rewrite(
    sg: &Supergraph,
    graph: GraphId,
    parent: &Name,
    set: &SelectionSet,
    counter: &mut usize,
    level: &mut Level,
    renames: &mut Vec<Rename>,
) -> SelectionSet {
    let mut out = SelectionSet::default();
    for item in &set.items {
        match item {
            Selection::Field(field) => {
                let mut field = field.clone();
                let signature = signature(sg, graph, parent, &field);
                let existing = level.seen.iter().find(|(key, _, _)| *key == field.key);
                let new_key = match existing {
                    Some((_, sig, used)) if *sig == signature => Some(used.clone()),
                    Some(_) => None,
                    None => Some(field.key.clone()),
                };
                let original = field.key.clone();
                let key = match new_key {
                    Some(key) => key,
                    None => {
                        *counter += 1;
                        Name::new_unchecked(&format!("_tessera_{}_{original}", *counter))
                    }
                };
                if !level
                    .seen
                    .iter()
                    .any(|(k, s, _)| *k == original && *s == signature)
                {
                    level.seen.push((original.clone(), signature, key.clone()));
                }
                let child_type = sg
                    .join
                    .field_in(parent, &field.name, graph)
                    .and_then(|f| f.type_in_graph)
                    .map(|t| {
                        Name::new_unchecked(t.trim_matches(|c| c == '[' || c == ']' || c == '!'))
                    })
                    .unwrap_or_else(|| field.type_name().clone());
                let mut children = Vec::new();
                let selection = rewrite(
                    sg,
                    graph,
                    &child_type,
                    &field.selection,
                    counter,
                    level.below(&key),
                    &mut children,
                );
                field.selection = selection;
                let renamed = key != original;
                if renamed {
                    field.alias = Some(key.clone());
                    field.key = key.clone();
                }
                if renamed || !children.is_empty() {
                    renames.push(Rename {
                        key,
                        original: renamed.then_some(original),
                        children,
                        key_id: KeyId::NONE,
                        original_id: None,
                    });
                }
                out.items.push(Selection::Field(field));
            }
            Selection::Fragment(fragment) => {
                let mut fragment = fragment.clone();
                fragment.selection = rewrite(
                    sg,
                    graph,
                    &fragment.on,
                    &fragment.selection,
                    counter,
                    level,
                    renames,
                );
                out.items.push(Selection::Fragment(fragment));
            }
        }
    }
    out
}
