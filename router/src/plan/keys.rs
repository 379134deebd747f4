//! Response keys as small numbers.
//!
//! Every response key the executor will ever look up for a plan — the client's fields, the
//! fields representations are built from, the entity paths, aliases to undo, `__typename` and
//! `_entities` — is given a [`KeyId`] when the plan is made. Subgraph responses are read with
//! these ids (a key no one will look up is not kept), so merging, building representations and
//! shaping compare numbers instead of strings.

use std::collections::HashMap;

use apollo_compiler::Name;

use super::alias::Rename;
use super::nodes::{PathElem, PlanNode};
use super::operation::{Operation, Selection, SelectionSet};

/// How many zero bytes follow the member texts of [`Keys`].
const MEMBER_PADDING: usize = 16;

/// A response key of one plan (see [`Keys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(u32);

impl KeyId {
    /// `__typename`: the same in every plan.
    pub const TYPENAME: KeyId = KeyId(0);
    /// `_entities`: the same in every plan.
    pub const ENTITIES: KeyId = KeyId(1);
    /// Not a key of the plan: a field the planner has not numbered, or a response key no one
    /// looks up. It never equals a key of the table.
    pub const NONE: KeyId = KeyId(u32::MAX);

    /// The id as an index into per-key tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of index `index` (the inverse of [`index`](Self::index)).
    pub fn from_index(index: usize) -> Self {
        u32::try_from(index).map_or(Self::NONE, KeyId)
    }
}

impl Default for KeyId {
    fn default() -> Self {
        Self::NONE
    }
}

/// The response keys of one plan, numbered.
#[derive(Debug, Clone)]
pub struct Keys {
    names: Vec<Name>,
    ids: HashMap<Name, KeyId, foldhash::fast::RandomState>,
    /// Every key as JSON object-member text, `"name":`, one after another, and then
    /// [`MEMBER_PADDING`] zero bytes (so that short members can be copied as fixed blocks).
    members: Vec<u8>,
    /// Where each key's member text ends in `members`.
    member_ends: Vec<u32>,
}

impl Default for Keys {
    fn default() -> Self {
        let mut keys = Self {
            names: Vec::new(),
            ids: HashMap::default(),
            members: Vec::new(),
            member_ends: Vec::new(),
        };
        keys.intern(&Name::new_unchecked("__typename"));
        keys.intern(&Name::new_unchecked("_entities"));
        keys
    }
}

impl Keys {
    /// How many keys there are (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none but the two fixed keys.
    pub fn is_empty(&self) -> bool {
        self.names.len() <= 2
    }

    /// The id of `key`, if the plan has it.
    pub fn id(&self, key: &str) -> Option<KeyId> {
        self.ids.get(key).copied()
    }

    /// The key's text ("" for [`KeyId::NONE`]).
    pub fn name(&self, id: KeyId) -> &str {
        self.names.get(id.index()).map_or("", Name::as_str)
    }

    /// The key as the start of a JSON object member, `"name":` (names never need escaping);
    /// `None` for [`KeyId::NONE`].
    pub fn member(&self, id: KeyId) -> Option<&[u8]> {
        let (start, end) = self.member_range(id)?;
        self.members.get(start..end)
    }

    /// The length of [`member`](Self::member)'s text (0 for [`KeyId::NONE`]).
    #[inline]
    pub fn member_len(&self, id: KeyId) -> usize {
        self.member_range(id).map_or(0, |(start, end)| end - start)
    }

    /// Appends [`member`](Self::member)'s text to `out`; false (nothing written) for
    /// [`KeyId::NONE`].
    #[inline]
    pub fn write_member(&self, out: &mut Vec<u8>, id: KeyId) -> bool {
        let Some((start, end)) = self.member_range(id) else {
            return false;
        };
        crate::jsontext::append(out, &self.members, start, end);
        true
    }

    /// Where the member text of `id` is in `members`.
    #[inline]
    fn member_range(&self, id: KeyId) -> Option<(usize, usize)> {
        let end = *self.member_ends.get(id.index())? as usize;
        let start = match id.index() {
            0 => 0,
            i => self.member_ends[i - 1] as usize,
        };
        Some((start, end))
    }

    /// The id of `key`, numbering it when new.
    pub fn intern(&mut self, key: &Name) -> KeyId {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = KeyId(u32::try_from(self.names.len()).unwrap_or(u32::MAX - 1));
        self.names.push(key.clone());
        self.ids.insert(key.clone(), id);
        self.members
            .truncate(self.member_ends.last().map_or(0, |end| *end as usize));
        self.members.push(b'"');
        self.members.extend_from_slice(key.as_bytes());
        self.members.extend_from_slice(b"\":");
        self.member_ends.push(self.members.len() as u32);
        self.members.extend_from_slice(&[0; MEMBER_PADDING]);
        id
    }
}

/// Numbers every key the executor looks up in a plan, writing the ids onto the client's fields,
/// the representations' input fields and the renames.
pub(super) fn assign(operation: &mut Operation, root: Option<&mut PlanNode>) -> Keys {
    let mut keys = Keys::default();
    number_selection(&mut keys, &mut operation.selection);
    if let Some(root) = root {
        number_node(&mut keys, root);
    }
    keys
}

fn number_selection(keys: &mut Keys, set: &mut SelectionSet) {
    for item in &mut set.items {
        match item {
            Selection::Field(field) => {
                field.key_id = keys.intern(&field.key);
                number_selection(keys, &mut field.selection);
            }
            Selection::Fragment(fragment) => number_selection(keys, &mut fragment.selection),
        }
    }
}

fn number_node(keys: &mut Keys, node: &mut PlanNode) {
    match node {
        PlanNode::Fetch(fetch) => {
            let fetch = std::sync::Arc::make_mut(fetch);
            if let Some(entities) = &mut fetch.entities {
                number_selection(keys, &mut entities.input);
                for elem in &entities.path {
                    if let PathElem::Key(key) = elem {
                        keys.intern(key);
                    }
                }
            }
            number_renames(keys, &mut fetch.renames);
        }
        PlanNode::Sequence(nodes) | PlanNode::Parallel(nodes) => {
            nodes.iter_mut().for_each(|n| number_node(keys, n));
        }
        PlanNode::Condition { node, .. } => number_node(keys, node),
        PlanNode::Subscription { primary, rest } => {
            let mut primary_node = PlanNode::Fetch(primary.clone());
            number_node(keys, &mut primary_node);
            if let PlanNode::Fetch(numbered) = primary_node {
                *primary = numbered;
            }
            if let Some(rest) = rest {
                number_node(keys, rest);
            }
        }
    }
}

fn number_renames(keys: &mut Keys, renames: &mut [Rename]) {
    for rename in renames {
        rename.key_id = keys.intern(&rename.key);
        rename.original_id = rename.original.as_ref().map(|o| keys.intern(o));
        number_renames(keys, &mut rename.children);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_keys_come_first_and_interning_is_stable() {
        let mut keys = Keys::default();
        assert_eq!(keys.id("__typename"), Some(KeyId::TYPENAME));
        assert_eq!(keys.id("_entities"), Some(KeyId::ENTITIES));
        let a = keys.intern(&Name::new_unchecked("upc"));
        assert_eq!(keys.intern(&Name::new_unchecked("upc")), a);
        assert_eq!(keys.name(a), "upc");
        assert_eq!(keys.member(a), Some(&b"\"upc\":"[..]));
        assert_eq!(keys.member(KeyId::TYPENAME), Some(&b"\"__typename\":"[..]));
        assert_eq!(keys.member(KeyId::NONE), None);
        let mut out = Vec::new();
        assert!(keys.write_member(&mut out, a) && keys.write_member(&mut out, KeyId::ENTITIES));
        assert!(!keys.write_member(&mut out, KeyId::NONE));
        assert_eq!(out, b"\"upc\":\"_entities\":");
        assert_eq!(keys.id("price"), None);
        assert_eq!(keys.name(KeyId::NONE), "");
        assert_eq!(keys.len(), 3);
    }
}
