//! The data gathered so far: walking plan paths, building representations, and undoing the
//! planner's aliases in subgraph responses.

use apollo_compiler::Name;
use serde_json::Value as Json;

use super::store::{Member, ObjectId, Store, Value, position};
use crate::jsontext::write_name;
use crate::plan::PathElem;
use crate::plan::alias::Rename;
use crate::plan::keys::{KeyId, Keys};
use crate::plan::nodes::Representation;
use crate::plan::operation::{Selection, SelectionSet};

/// One step of an entity path, with its key numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKey {
    /// The value under this key.
    Key(KeyId),
    /// Each item of a list.
    List,
}

/// A plan path with its keys numbered (a key the plan lacks matches nothing).
pub fn path_keys(keys: &Keys, path: &[PathElem]) -> Vec<PathKey> {
    path.iter()
        .map(|elem| match elem {
            PathElem::Key(key) => PathKey::Key(keys.id(key).unwrap_or(KeyId::NONE)),
            PathElem::List => PathKey::List,
        })
        .collect()
}

/// Calls `f` with every object at `path` below `value` (lists flattened) and its location: the
/// index of each step, into an object's fields or a list's items.
pub fn for_each_object(
    store: &Store,
    value: Value,
    path: &[PathKey],
    steps: &mut Vec<u32>,
    f: &mut dyn FnMut(&[u32], ObjectId),
) {
    match (path.first(), value) {
        (None, Value::Object(object)) => f(steps, object),
        (None | Some(PathKey::Key(_)), Value::List(list)) => {
            // A list where the path expects an object: every item continues the same path.
            for_each_item(store, store.items(list), path, steps, f);
        }
        (Some(PathKey::Key(key)), Value::Object(object)) => {
            let fields = store.fields(object);
            if let Some(index) = position(fields, *key, 0) {
                steps.push(index as u32);
                for_each_object(store, fields[index].value, &path[1..], steps, f);
                steps.pop();
            }
        }
        (Some(PathKey::List), Value::List(list)) => {
            for_each_item(store, store.items(list), &path[1..], steps, f);
        }
        _ => {}
    }
}

fn for_each_item(
    store: &Store,
    items: &[Value],
    path: &[PathKey],
    steps: &mut Vec<u32>,
    f: &mut dyn FnMut(&[u32], ObjectId),
) {
    for (index, item) in items.iter().enumerate() {
        steps.push(index as u32);
        for_each_object(store, *item, path, steps, f);
        steps.pop();
    }
}

/// A location found by [`for_each_object`] from `value`, as a GraphQL response path.
pub fn path_json(store: &Store, keys: &Keys, value: Value, steps: &[u32]) -> Vec<Json> {
    let mut path = Vec::with_capacity(steps.len());
    let mut value = value;
    for &step in steps {
        match value {
            Value::Object(object) => {
                let Some(member) = store.fields(object).get(step as usize) else {
                    break;
                };
                path.push(Json::String(keys.name(member.key).to_owned()));
                value = member.value;
            }
            Value::List(list) => {
                let Some(&child) = store.items(list).get(step as usize) else {
                    break;
                };
                path.push(Json::from(step));
                value = child;
            }
            _ => break,
        }
    }
    path
}

/// How representations are written: the data and the type facts needed.
pub struct RepresentationWriter<'a> {
    /// The run's data.
    pub store: &'a Store,
    /// Whether an object of the first type may match a fragment on the second.
    pub possible: &'a dyn Fn(&str, &Name) -> bool,
}

impl RepresentationWriter<'_> {
    /// Writes the representation of `object` (whose `__typename` is `typename`) through `input`
    /// as JSON into `out`; false (and nothing written) when it misses a key field. Fields are
    /// written under their names (the key may be an alias the planner gave a required field),
    /// `__typename` as `rewrite` when given.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        object: ObjectId,
        typename: &str,
        input: &SelectionSet,
        rewrite: Option<&Name>,
    ) -> bool {
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        let fields = self.store.fields(object);
        if !self.write_fields(out, fields, input, typename, Some(rewrite), &mut first) {
            out.truncate(start);
            return false;
        }
        out.push(b'}');
        true
    }

    /// Writes the representation of `object` as `representation` (its type's text with
    /// holes) into `out`; false (and nothing written) when it misses a key field. The same
    /// text as [`write`](Self::write) for that type.
    pub fn fill(
        &self,
        out: &mut Vec<u8>,
        object: ObjectId,
        representation: &Representation,
    ) -> bool {
        let start = out.len();
        let fields = self.store.fields(object);
        let (pieces, last) = representation.pieces();
        let mut hint = 0;
        for (piece, key) in pieces {
            out.extend_from_slice(piece);
            let Some(index) = position(fields, key, hint) else {
                out.truncate(start);
                return false;
            };
            hint = index + 1;
            self.store.write(out, fields[index].value);
        }
        out.extend_from_slice(last);
        true
    }

    /// Writes `set`'s fields of an object. `rewrite` is the `__typename` to send (`Some(None)`:
    /// the object's own); with `None`, a `__typename` directly in `set` is left out (the caller
    /// wrote it already).
    fn write_fields(
        &self,
        out: &mut Vec<u8>,
        fields: &[Member],
        set: &SelectionSet,
        typename: &str,
        rewrite: Option<Option<&Name>>,
        first: &mut bool,
    ) -> bool {
        let mut hint = 0;
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
                    let Some(index) = position(fields, field.key_id, hint) else {
                        return false;
                    };
                    hint = index + 1;
                    let value = fields[index].value;
                    write_key(out, field.name.as_str(), first);
                    if field.selection.items.is_empty() {
                        self.store.write(out, value);
                    } else if !self.write_projected(out, value, &field.selection) {
                        return false;
                    }
                }
                Selection::Fragment(fragment) => {
                    if (self.possible)(typename, &fragment.on)
                        && !self.write_fields(
                            out,
                            fields,
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

    fn write_projected(&self, out: &mut Vec<u8>, value: Value, set: &SelectionSet) -> bool {
        match value {
            Value::Object(object) => {
                let fields = self.store.fields(object);
                let typename = position(fields, KeyId::TYPENAME, 0).map(|i| fields[i].value);
                let typename_text = typename
                    .and_then(|t| self.store.str_of(t))
                    .unwrap_or_default();
                out.push(b'{');
                let mut first = true;
                if let Some(t) = typename {
                    write_key(out, "__typename", &mut first);
                    self.store.write(out, t);
                }
                if !self.write_fields(out, fields, set, &typename_text, None, &mut first) {
                    return false;
                }
                out.push(b'}');
                true
            }
            Value::List(list) => {
                out.push(b'[');
                for (index, item) in self.store.items(list).iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    if !self.write_projected(out, *item, set) {
                        return false;
                    }
                }
                out.push(b']');
                true
            }
            other => {
                self.store.write(out, other);
                true
            }
        }
    }
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
pub fn undo_aliases(store: &mut Store, value: Value, renames: &[Rename]) {
    match value {
        Value::List(list) => {
            for index in 0..store.items(list).len() {
                let item = store.items(list)[index];
                undo_aliases(store, item, renames);
            }
        }
        Value::Object(object) => {
            for rename in renames {
                let Some(index) = position(store.fields(object), rename.key_id, 0) else {
                    continue;
                };
                let moved = store.fields(object)[index].value;
                undo_aliases(store, moved, &rename.children);
                let Some(original) = rename.original_id else {
                    continue;
                };
                match position(store.fields(object), original, 0) {
                    Some(existing) => {
                        let merged = store.merge(store.fields(object)[existing].value, moved);
                        // Its text is under the alias.
                        store.set(object, existing, merged, Member::NO_TEXT);
                        store.rekey(object, index, KeyId::NONE);
                    }
                    None => store.rekey(object, index, original),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::store::fixtures::{data, json_of, keys};
    use crate::plan::operation::Field;

    #[test]
    fn objects_are_found_through_lists_with_their_locations() {
        let keys = keys(&["x", "products", "upc"]);
        let mut store = Store::new();
        let data = data(
            &mut store,
            &keys,
            r#"{ "x": 0, "products": [{ "upc": "1" }, null, { "upc": "2" }, 3] }"#,
        );
        let path = path_keys(
            &keys,
            &[
                PathElem::Key(Name::new_unchecked("products")),
                PathElem::List,
            ],
        );
        let mut found = Vec::new();
        for_each_object(
            &store,
            data,
            &path,
            &mut Vec::new(),
            &mut |steps, object| found.push((steps.to_vec(), object)),
        );
        assert_eq!(
            found.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
            vec![vec![1, 0], vec![1, 2]]
        );
        assert_eq!(
            path_json(&store, &keys, data, &found[1].0),
            vec![Json::from("products"), Json::from(2)]
        );
        let upc = keys.id("upc").expect("a key");
        assert_eq!(
            store.plain_str(store.get(found[1].1, upc).expect("upc")),
            Some("2")
        );
        // A path through a key the plan does not have finds nothing.
        let unknown = path_keys(&keys, &[PathElem::Key(Name::new_unchecked("other"))]);
        let mut any = false;
        for_each_object(&store, data, &unknown, &mut Vec::new(), &mut |_, _| {
            any = true
        });
        assert!(!any);
    }

    fn rename(keys: &Keys, key: &str, original: &str) -> Rename {
        Rename {
            key: Name::new_unchecked(key),
            original: Some(Name::new_unchecked(original)),
            children: Vec::new(),
            key_id: keys.id(key).expect("a key"),
            original_id: keys.id(original),
        }
    }

    #[test]
    fn aliases_are_undone_into_existing_and_new_keys() {
        let keys = keys(&["a", "b", "x", "y", "_t_a", "_t_b"]);
        let mut store = Store::new();
        let data = data(
            &mut store,
            &keys,
            r#"{ "a": { "x": 1 }, "_t_a": { "y": 2 }, "_t_b": 3 }"#,
        );
        let renames = [rename(&keys, "_t_a", "a"), rename(&keys, "_t_b", "b")];
        undo_aliases(&mut store, data, &renames);
        assert_eq!(
            json_of(&store, &keys, data),
            serde_json::json!({ "a": { "x": 1, "y": 2 }, "b": 3 })
        );
    }

    #[test]
    fn representations_use_field_names_and_the_rewritten_typename() {
        let keys = keys(&["id", "_tessera_price_1", "title"]);
        let ty = apollo_compiler::ast::Type::Named(Name::new_unchecked("String"));
        let field = |name: &str, key: &str| {
            let mut field = Field::plain(Name::new_unchecked(name), ty.clone());
            field.key = Name::new_unchecked(key);
            field.key_id = keys.id(key).expect("a key");
            Selection::Field(field)
        };
        let input = SelectionSet {
            items: vec![
                field("__typename", "__typename"),
                field("id", "id"),
                field("price", "_tessera_price_1"),
            ],
        };
        let mut store = Store::new();
        let object = data(
            &mut store,
            &keys,
            r#"{ "__typename": "Book", "id": "b1", "_tessera_price_1": 5, "title": "x" }"#,
        );
        let missing = data(&mut store, &keys, r#"{ "__typename": "Book" }"#);
        let possible = |_: &str, _: &Name| true;
        let writer = RepresentationWriter {
            store: &store,
            possible: &possible,
        };
        let (Value::Object(object), Value::Object(missing)) = (object, missing) else {
            panic!("objects")
        };
        let mut out = Vec::new();
        let rewrite = Name::new_unchecked("Media");
        assert!(writer.write(&mut out, object, "Book", &input, Some(&rewrite)));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"__typename":"Media","id":"b1","price":5}"#
        );
        let mut out = Vec::new();
        assert!(!writer.write(&mut out, missing, "Book", &input, None));
        assert!(out.is_empty());
    }

    #[test]
    fn a_representation_with_holes_writes_what_the_field_by_field_writer_writes() {
        use crate::plan::operation::Fragment;
        let keys = keys(&["id", "isbn", "_tessera_price_1", "title", "cover"]);
        let ty = apollo_compiler::ast::Type::Named(Name::new_unchecked("String"));
        let field = |name: &str, key: &str| {
            let mut field = Field::plain(Name::new_unchecked(name), ty.clone());
            field.key = Name::new_unchecked(key);
            field.key_id = keys.id(key).unwrap_or(KeyId::TYPENAME);
            Selection::Field(field)
        };
        let fragment = |on: &str, items: Vec<Selection>| {
            Selection::Fragment(Fragment {
                on: Name::new_unchecked(on),
                condition: Default::default(),
                selection: SelectionSet { items },
            })
        };
        // Fields of fragments that apply are written in place; others are left out.
        let input = SelectionSet {
            items: vec![
                field("__typename", "__typename"),
                fragment("Book", vec![field("isbn", "isbn")]),
                fragment("Movie", vec![field("title", "title")]),
                field("id", "id"),
                field("price", "_tessera_price_1"),
            ],
        };
        let possible = |runtime: &str, on: &Name| runtime == on.as_str() || on == "Media";
        let mut store = Store::new();
        let object = data(
            &mut store,
            &keys,
            r#"{ "__typename": "Book", "id": "b1", "isbn": "i\"1", "_tessera_price_1": 5.5,
                 "title": "x", "cover": { "url": "u" } }"#,
        );
        let missing = data(
            &mut store,
            &keys,
            r#"{ "__typename": "Book", "isbn": "2" }"#,
        );
        let (Value::Object(object), Value::Object(missing)) = (object, missing) else {
            panic!("objects")
        };
        let writer = RepresentationWriter {
            store: &store,
            possible: &possible,
        };
        let rewrite = Name::new_unchecked("Media");
        for rewrite in [None, Some(&rewrite)] {
            let representation =
                Representation::compile(&input, "Book", rewrite, &possible).expect("flat input");
            let (mut filled, mut written) = (b"[".to_vec(), b"[".to_vec());
            assert!(writer.fill(&mut filled, object, &representation));
            assert!(writer.write(&mut written, object, "Book", &input, rewrite));
            assert_eq!(
                String::from_utf8_lossy(&filled),
                String::from_utf8_lossy(&written)
            );
            assert!(!writer.fill(&mut filled, missing, &representation));
            assert_eq!(
                filled.len(),
                written.len(),
                "nothing written for a missing key"
            );
        }
        let representation =
            Representation::compile(&input, "Book", None, &possible).expect("flat input");
        let mut out = Vec::new();
        writer.fill(&mut out, object, &representation);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"__typename":"Book","isbn":"i\"1","id":"b1","price":5.5}"#
        );
        // A field with a sub-selection is written field by field.
        let mut nested = Field::plain(Name::new_unchecked("cover"), ty.clone());
        nested.key_id = keys.id("cover").expect("a key");
        nested.selection = SelectionSet {
            items: vec![field("url", "url")],
        };
        let input = SelectionSet {
            items: vec![field("id", "id"), Selection::Field(nested)],
        };
        assert!(Representation::compile(&input, "Book", None, &possible).is_none());
    }
}
