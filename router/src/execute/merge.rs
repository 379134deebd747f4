//! The data tree gathered so far: walking plan paths, building representations, and merging
//! subgraph results back in.

use std::collections::HashMap;

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

/// Projects `object` through `input` into a representation; `None` when it has no
/// `__typename` or misses a key field.
pub fn representation(
    object: &Map<String, Value>,
    input: &SelectionSet,
    possible: &dyn Fn(&str, &Name) -> bool,
    rewrite: Option<&Name>,
) -> Option<Value> {
    let typename = object.get("__typename")?.as_str()?.to_owned();
    let mut out = Map::new();
    project_into(object, input, &typename, possible, &mut out)?;
    if let Some(rewrite) = rewrite {
        out.insert("__typename".into(), Value::String(rewrite.to_string()));
    }
    Some(Value::Object(out))
}

fn project_into(
    object: &Map<String, Value>,
    set: &SelectionSet,
    typename: &str,
    possible: &dyn Fn(&str, &Name) -> bool,
    out: &mut Map<String, Value>,
) -> Option<()> {
    for item in &set.items {
        match item {
            Selection::Field(field) => {
                let value = object.get(field.key.as_str())?;
                let projected = if field.selection.items.is_empty() {
                    value.clone()
                } else {
                    project_value(value, &field.selection, possible)?
                };
                // Subgraphs read representations by field name; the key may be an alias
                // the planner gave a required field.
                out.insert(field.name.to_string(), projected);
            }
            Selection::Fragment(fragment) => {
                if possible(typename, &fragment.on) {
                    project_into(object, &fragment.selection, typename, possible, out)?;
                }
            }
        }
    }
    Some(())
}

fn project_value(
    value: &Value,
    set: &SelectionSet,
    possible: &dyn Fn(&str, &Name) -> bool,
) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let typename = object
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut out = Map::new();
            if let Some(t) = object.get("__typename") {
                out.insert("__typename".into(), t.clone());
            }
            project_into(object, set, &typename, possible, &mut out)?;
            Some(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| project_value(item, set, possible))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => Some(other.clone()),
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

/// Representations with duplicates removed: the unique list, and for each unique one the
/// locations of the objects that produced it.
pub fn dedupe(items: Vec<(Vec<Step>, Value)>) -> (Vec<Value>, Vec<Vec<Vec<Step>>>) {
    let mut unique: Vec<Value> = Vec::new();
    let mut origins: Vec<Vec<Vec<Step>>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (location, representation) in items {
        let key = representation.to_string();
        match seen.get(&key) {
            Some(index) => origins[*index].push(location),
            None => {
                seen.insert(key, unique.len());
                unique.push(representation);
                origins.push(vec![location]);
            }
        }
    }
    (unique, origins)
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
    fn dedupe_keeps_every_origin() {
        let (unique, origins) = dedupe(vec![
            (vec![Step::Index(0)], json!({ "id": 1 })),
            (vec![Step::Index(1)], json!({ "id": 1 })),
            (vec![Step::Index(2)], json!({ "id": 2 })),
        ]);
        assert_eq!(unique.len(), 2);
        assert_eq!(origins[0].len(), 2);
    }
}
