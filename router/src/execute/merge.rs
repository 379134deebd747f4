//! The data tree gathered so far: walking plan paths, building representations, and merging
//! subgraph results back in.

use apollo_compiler::Name;
use serde_json::{Map, Value};

use crate::plan::PathElem;
use crate::plan::alias::Rename;
use crate::plan::operation::{Selection, SelectionSet};

/// One step into the concrete data: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Into an object's key (a cheap reference-counted name).
    Key(Name),
    /// Into a list's element.
    Index(usize),
}

impl Step {
    /// The step as a GraphQL response path element.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Key(key) => Value::String(key.to_string()),
            Self::Index(index) => Value::from(*index),
        }
    }
}

/// Every object at `path` (lists flattened), with its concrete location.
pub fn objects_at<'a>(
    data: &'a Value,
    path: &[PathElem],
) -> Vec<(Vec<Step>, &'a Map<String, Value>)> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    walk(data, path, &mut current, &mut out);
    out
}

fn walk<'a>(
    value: &'a Value,
    path: &[PathElem],
    current: &mut Vec<Step>,
    out: &mut Vec<(Vec<Step>, &'a Map<String, Value>)>,
) {
    match (path.first(), value) {
        (None, Value::Object(object)) => out.push((current.clone(), object)),
        (None, Value::Array(items)) => walk_items(items, path, current, out),
        (Some(PathElem::Key(key)), Value::Object(object)) => {
            if let Some(child) = object.get(key.as_str()) {
                current.push(Step::Key(key.clone()));
                walk(child, &path[1..], current, out);
                current.pop();
            }
        }
        (Some(PathElem::List), Value::Array(items)) => walk_items(items, &path[1..], current, out),
        // A list where the path expects an object: every element continues the same path.
        (Some(PathElem::Key(_)), Value::Array(items)) => walk_items(items, path, current, out),
        _ => {}
    }
}

fn walk_items<'a>(
    items: &'a [Value],
    path: &[PathElem],
    current: &mut Vec<Step>,
    out: &mut Vec<(Vec<Step>, &'a Map<String, Value>)>,
) {
    for (index, item) in items.iter().enumerate() {
        current.push(Step::Index(index));
        walk(item, path, current, out);
        current.pop();
    }
}

/// The value at a concrete location, mutably.
pub fn at_mut<'a>(data: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut value = data;
    for step in steps {
        value = match (step, value) {
            (Step::Key(key), Value::Object(object)) => object.get_mut(key.as_str())?,
            (Step::Index(index), Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Writes the representation of `object` through `input` as JSON into `out`; false (and
/// nothing written) when it has no `__typename` or misses a key field. Fields are written under
/// their names (the key may be an alias the planner gave a required field).
pub fn write_representation(
    out: &mut Vec<u8>,
    object: &Map<String, Value>,
    input: &SelectionSet,
    possible: &dyn Fn(&str, &Name) -> bool,
    rewrite: Option<&Name>,
) -> bool {
    let Some(typename) = object.get("__typename").and_then(Value::as_str) else {
        return false;
    };
    let start = out.len();
    out.push(b'{');
    let mut first = true;
    let written = write_fields(out, object, input, typename, possible, rewrite, &mut first);
    if !written {
        out.truncate(start);
        return false;
    }
    out.push(b'}');
    true
}

fn write_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

fn write_fields(
    out: &mut Vec<u8>,
    object: &Map<String, Value>,
    set: &SelectionSet,
    typename: &str,
    possible: &dyn Fn(&str, &Name) -> bool,
    rewrite: Option<&Name>,
    first: &mut bool,
) -> bool {
    for item in &set.items {
        match item {
            Selection::Field(field) if field.name == "__typename" => {
                write_key(out, "__typename", first);
                let _ = serde_json::to_writer(&mut *out, rewrite.map_or(typename, Name::as_str));
            }
            Selection::Field(field) => {
                let Some(value) = object.get(field.key.as_str()) else {
                    return false;
                };
                write_key(out, field.name.as_str(), first);
                if field.selection.items.is_empty() {
                    let _ = serde_json::to_writer(&mut *out, value);
                } else if !write_projected(out, value, &field.selection, possible) {
                    return false;
                }
            }
            Selection::Fragment(fragment) => {
                if possible(typename, &fragment.on)
                    && !write_fields(
                        out,
                        object,
                        &fragment.selection,
                        typename,
                        possible,
                        rewrite,
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

fn write_projected(
    out: &mut Vec<u8>,
    value: &Value,
    set: &SelectionSet,
    possible: &dyn Fn(&str, &Name) -> bool,
) -> bool {
    match value {
        Value::Object(object) => {
            let typename = object
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(b'{');
            let mut first = true;
            if let Some(t) = object.get("__typename") {
                write_key(out, "__typename", &mut first);
                let _ = serde_json::to_writer(&mut *out, t);
            }
            let plain: SelectionSet = SelectionSet {
                items: set
                    .items
                    .iter()
                    .filter(|i| !matches!(i, Selection::Field(f) if f.name == "__typename"))
                    .cloned()
                    .collect(),
            };
            if !write_fields(out, object, &plain, typename, possible, None, &mut first) {
                return false;
            }
            out.push(b'}');
            true
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                if !write_projected(out, item, set, possible) {
                    return false;
                }
            }
            out.push(b']');
            true
        }
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
            true
        }
    }
}

/// Merges `source` into `target`: objects key by key, lists element by element, anything
/// else replaced.
pub fn deep_merge(target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => {
            for (key, value) in source {
                match target.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (t, s) in target.iter_mut().zip(source) {
                deep_merge(t, s);
            }
        }
        (Value::Object(_), Value::Null) => {}
        (target, source) => *target = source,
    }
}

/// Moves aliased values in a subgraph response back under the client's keys.
pub fn undo_aliases(value: &mut Value, renames: &[Rename]) {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| undo_aliases(item, renames)),
        Value::Object(object) => {
            for rename in renames {
                if let Some(inner) = object.get_mut(rename.key.as_str()) {
                    undo_aliases(inner, &rename.children);
                }
                if let Some(original) = &rename.original
                    && let Some(moved) = object.remove(rename.key.as_str())
                {
                    match object.get_mut(original.as_str()) {
                        Some(existing) => deep_merge(existing, moved),
                        None => {
                            object.insert(original.to_string(), moved);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_at_flattens_lists_and_records_locations() {
        let data = json!({ "products": [{ "upc": "1" }, null, { "upc": "2" }] });
        let path = [
            PathElem::Key(Name::new_unchecked("products")),
            PathElem::List,
        ];
        let found: Vec<Vec<Step>> = objects_at(&data, &path)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            found,
            vec![
                vec![Step::Key(Name::new_unchecked("products")), Step::Index(0)],
                vec![Step::Key(Name::new_unchecked("products")), Step::Index(2)],
            ]
        );
    }

    #[test]
    fn deep_merge_merges_objects_and_lists() {
        let mut target = json!({ "a": [{ "x": 1 }], "b": { "c": 1 } });
        deep_merge(&mut target, json!({ "a": [{ "y": 2 }], "b": { "d": 2 } }));
        assert_eq!(
            target,
            json!({ "a": [{ "x": 1, "y": 2 }], "b": { "c": 1, "d": 2 } })
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
        let object =
            json!({ "__typename": "Book", "id": "b1", "_tessera_price_1": 5, "title": "x" });
        let mut out = Vec::new();
        let possible = |_: &str, _: &Name| true;
        let rewrite = Name::new_unchecked("Media");
        assert!(write_representation(
            &mut out,
            object.as_object().expect("an object"),
            &input,
            &possible,
            Some(&rewrite)
        ));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"__typename":"Media","id":"b1","price":5}"#
        );
        let missing = json!({ "__typename": "Book" });
        let mut out = Vec::new();
        assert!(!write_representation(
            &mut out,
            missing.as_object().expect("an object"),
            &input,
            &possible,
            None
        ));
        assert!(out.is_empty());
    }
}
