//! The data tree gathered so far: walking plan paths, building representations, and merging
//! subgraph results back in.

use apollo_compiler::Name;
use serde_json::Value;

use super::tree::{Entries, Node, Texts};
use crate::plan::PathElem;
use crate::plan::alias::Rename;
use crate::plan::operation::{Selection, SelectionSet};

/// Calls `f` with every object at `path` (lists flattened) and its location: the index of
/// each step, into an object's entries or a list's items.
pub fn for_each_object<'a>(
    texts: &Texts,
    data: &'a Node,
    path: &[PathElem],
    steps: &mut Vec<u32>,
    f: &mut dyn FnMut(&[u32], &'a Entries),
) {
    match (path.first(), data) {
        (None, Node::Object(entries)) => f(steps, entries),
        (None, Node::List(items)) => for_each_item(texts, items, path, steps, f),
        (Some(PathElem::Key(key)), Node::Object(entries)) => {
            if let Some(index) = texts.position(entries, key) {
                steps.push(index as u32);
                for_each_object(texts, &entries[index].1, &path[1..], steps, f);
                steps.pop();
            }
        }
        (Some(PathElem::List), Node::List(items)) => {
            for_each_item(texts, items, &path[1..], steps, f);
        }
        // A list where the path expects an object: every element continues the same path.
        (Some(PathElem::Key(_)), Node::List(items)) => for_each_item(texts, items, path, steps, f),
        _ => {}
    }
}

fn for_each_item<'a>(
    texts: &Texts,
    items: &'a [Node],
    path: &[PathElem],
    steps: &mut Vec<u32>,
    f: &mut dyn FnMut(&[u32], &'a Entries),
) {
    for (index, item) in items.iter().enumerate() {
        steps.push(index as u32);
        for_each_object(texts, item, path, steps, f);
        steps.pop();
    }
}

/// The node at a location found by [`for_each_object`], mutably. (Merging only appends
/// entries, so a location stays valid while the results of one step are merged.)
pub fn at_mut<'a>(data: &'a mut Node, steps: &[u32]) -> Option<&'a mut Node> {
    let mut node = data;
    for &step in steps {
        node = match node {
            Node::Object(entries) => &mut entries.get_mut(step as usize)?.1,
            Node::List(items) => items.get_mut(step as usize)?,
            _ => return None,
        };
    }
    Some(node)
}

/// A location as a GraphQL response path.
pub fn path_json(texts: &Texts, data: &Node, steps: &[u32]) -> Vec<Value> {
    let mut path = Vec::with_capacity(steps.len());
    let mut node = data;
    for &step in steps {
        match node {
            Node::Object(entries) => {
                let Some((key, child)) = entries.get(step as usize) else {
                    break;
                };
                path.push(Value::String(texts.key_string(*key)));
                node = child;
            }
            Node::List(items) => {
                let Some(child) = items.get(step as usize) else {
                    break;
                };
                path.push(Value::from(step));
                node = child;
            }
            _ => break,
        }
    }
    path
}

/// How representations are written: the fetch's input selection and the type facts needed.
pub struct RepresentationWriter<'a> {
    /// The run's texts.
    pub texts: &'a Texts,
    /// Whether an object of the first type may match a fragment on the second.
    pub possible: &'a dyn Fn(&str, &Name) -> bool,
}

impl RepresentationWriter<'_> {
    /// Writes the representation of the object `entries` through `input` as JSON into `out`;
    /// false (and nothing written) when it has no `__typename` or misses a key field. Fields
    /// are written under their names (the key may be an alias the planner gave a required
    /// field).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        entries: &Entries,
        input: &SelectionSet,
        rewrite: Option<&Name>,
    ) -> bool {
        let Some(typename) = self
            .texts
            .field(entries, "__typename")
            .and_then(|n| self.texts.str_of(n))
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return false;
        };
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        if !self.write_fields(out, entries, input, typename, Some(rewrite), &mut first) {
            out.truncate(start);
            return false;
        }
        out.push(b'}');
        true
    }

    /// Writes `set`'s fields of the object `entries`. `rewrite` is the `__typename` to send
    /// (`Some(None)`: the object's own); with `None`, a `__typename` directly in `set` is left
    /// out (the caller wrote it already).
    fn write_fields(
        &self,
        out: &mut Vec<u8>,
        entries: &Entries,
        set: &SelectionSet,
        typename: &str,
        rewrite: Option<Option<&Name>>,
        first: &mut bool,
    ) -> bool {
        for item in &set.items {
            match item {
                Selection::Field(field) if field.name == "__typename" => {
                    let Some(rewrite) = rewrite else {
                        continue;
                    };
                    write_key(out, "__typename", first);
                    write_name(out, rewrite.map_or(typename, Name::as_str));
                }
                Selection::Field(field) => {
                    let Some(value) = self.texts.field(entries, field.key.as_str()) else {
                        return false;
                    };
                    write_key(out, field.name.as_str(), first);
                    if field.selection.items.is_empty() {
                        self.texts.write(out, value);
                    } else if !self.write_projected(out, value, &field.selection) {
                        return false;
                    }
                }
                Selection::Fragment(fragment) => {
                    if (self.possible)(typename, &fragment.on)
                        && !self.write_fields(
                            out,
                            entries,
                            &fragment.selection,
                            typename,
                            Some(rewrite.flatten()),
                            first,
                        )
                    {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn write_projected(&self, out: &mut Vec<u8>, value: &Node, set: &SelectionSet) -> bool {
        match value {
            Node::Object(entries) => {
                let typename = self.texts.field(entries, "__typename");
                let typename_text = typename
                    .and_then(|n| self.texts.str_of(n))
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .unwrap_or_default();
                out.push(b'{');
                let mut first = true;
                if let Some(t) = typename {
                    write_key(out, "__typename", &mut first);
                    self.texts.write(out, t);
                }
                if !self.write_fields(out, entries, set, typename_text, None, &mut first) {
                    return false;
                }
                out.push(b'}');
                true
            }
            Node::List(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    if !self.write_projected(out, item, set) {
                        return false;
                    }
                }
                out.push(b']');
                true
            }
            other => {
                self.texts.write(out, other);
                true
            }
        }
    }
}

/// Appends a GraphQL name as a JSON string (names never need escaping).
pub fn write_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

fn write_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_name(out, key);
    out.push(b':');
}

/// Moves aliased values in a subgraph response back under the client's keys.
pub fn undo_aliases(texts: &mut Texts, value: &mut Node, renames: &[Rename]) {
    match value {
        Node::List(items) => items
            .iter_mut()
            .for_each(|item| undo_aliases(texts, item, renames)),
        Node::Object(entries) => {
            for rename in renames {
                let Some(index) = texts.position(entries, rename.key.as_str()) else {
                    continue;
                };
                undo_aliases(texts, &mut entries[index].1, &rename.children);
                let Some(original) = &rename.original else {
                    continue;
                };
                match texts.position(entries, original.as_str()) {
                    Some(existing) => {
                        let (_, moved) = entries.remove(index);
                        let existing = if existing > index {
                            existing - 1
                        } else {
                            existing
                        };
                        texts.merge(&mut entries[existing].1, moved);
                    }
                    None => entries[index].0 = texts.intern(original.as_str()),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(texts: &mut Texts, data: &str) -> Node {
        let body = format!("{{\"data\":{data}}}");
        texts
            .parse_response(bytes::Bytes::from(body))
            .expect("valid JSON")
            .data
            .expect("data")
    }

    #[test]
    fn objects_are_found_through_lists_with_their_locations() {
        let mut texts = Texts::default();
        let data = tree(
            &mut texts,
            r#"{ "x": 0, "products": [{ "upc": "1" }, null, { "upc": "2" }] }"#,
        );
        let path = [
            PathElem::Key(Name::new_unchecked("products")),
            PathElem::List,
        ];
        let mut found = Vec::new();
        for_each_object(&texts, &data, &path, &mut Vec::new(), &mut |steps, _| {
            found.push(steps.to_vec())
        });
        assert_eq!(found, vec![vec![1, 0], vec![1, 2]]);
        assert_eq!(
            path_json(&texts, &data, &found[1]),
            vec![Value::from("products"), Value::from(2)]
        );
        let mut data = data;
        assert!(matches!(
            at_mut(&mut data, &found[1]),
            Some(Node::Object(_))
        ));
    }

    #[test]
    fn aliases_are_undone_into_existing_and_new_keys() {
        let mut texts = Texts::default();
        let mut data = tree(
            &mut texts,
            r#"{ "a": { "x": 1 }, "_t_a": { "y": 2 }, "_t_b": 3 }"#,
        );
        let renames = [
            Rename {
                key: Name::new_unchecked("_t_a"),
                original: Some(Name::new_unchecked("a")),
                children: Vec::new(),
            },
            Rename {
                key: Name::new_unchecked("_t_b"),
                original: Some(Name::new_unchecked("b")),
                children: Vec::new(),
            },
        ];
        undo_aliases(&mut texts, &mut data, &renames);
        let mut out = Vec::new();
        texts.write(&mut out, &data);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":{"x":1,"y":2},"b":3}"#
        );
    }

    #[test]
    fn representations_use_field_names_and_the_rewritten_typename() {
        use crate::plan::operation::{Field, Selection, SelectionSet};
        let ty = apollo_compiler::ast::Type::Named(Name::new_unchecked("String"));
        let mut price = Field::plain(Name::new_unchecked("price"), ty.clone());
        price.key = Name::new_unchecked("_tessera_price_1");
        let input = SelectionSet {
            items: vec![
                Selection::Field(Field::plain(Name::new_unchecked("__typename"), ty.clone())),
                Selection::Field(Field::plain(Name::new_unchecked("id"), ty)),
                Selection::Field(price),
            ],
        };
        let mut texts = Texts::default();
        let object = tree(
            &mut texts,
            r#"{ "__typename": "Book", "id": "b1", "_tessera_price_1": 5, "title": "x" }"#,
        );
        let missing = tree(&mut texts, r#"{ "__typename": "Book" }"#);
        let possible = |_: &str, _: &Name| true;
        let writer = RepresentationWriter {
            texts: &texts,
            possible: &possible,
        };
        let Node::Object(entries) = &object else {
            panic!("an object")
        };
        let mut out = Vec::new();
        let rewrite = Name::new_unchecked("Media");
        assert!(writer.write(&mut out, entries, &input, Some(&rewrite)));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"__typename":"Media","id":"b1","price":5}"#
        );
        let Node::Object(entries) = &missing else {
            panic!("an object")
        };
        let mut out = Vec::new();
        assert!(!writer.write(&mut out, entries, &input, None));
        assert!(out.is_empty());
    }
}
