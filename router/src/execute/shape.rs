//! Shapes the client's response: walks the client's operation over the merged data, in the
//! operation's field order with its aliases, answers `__typename`, drops fields fetched only
//! as keys or requirements, and propagates nulls as the GraphQL spec says.

use std::borrow::Cow;

use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema, ast};
use serde_json::{Map, Value};

use super::store::{Member, ObjectId, Store, Value as Data, position};
use crate::error::{GraphQLError, codes};
use crate::jsontext::write_name;
use crate::plan::keys::Keys;
use crate::plan::operation::{Field, Selection, SelectionSet, TypeKind};

/// A non-null position got null: the nearest nullable parent becomes null.
#[derive(Debug)]
pub struct Propagate;

/// The response path being shaped, as a list linked through the stack: each level borrows its
/// parent and its own key, so descending costs nothing; it becomes JSON only for errors.
#[derive(Debug, Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn to_json(self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut at = self;
        loop {
            match at {
                Path::Root => break,
                Path::Key(parent, key) => {
                    out.push(Value::String(key.to_owned()));
                    at = *parent;
                }
                Path::Index(parent, index) => {
                    out.push(Value::from(index));
                    at = *parent;
                }
            }
        }
        out.reverse();
        out
    }
}

/// Appends `value` as JSON (writing into a `Vec` cannot fail).
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// Whether one path is a prefix of the other.
fn related(known: &[Value], path: &[Value]) -> bool {
    known.iter().zip(path).all(|(k, p)| k == p)
}

/// Shapes responses against the API schema.
pub struct Shaper<'a> {
    /// The API schema.
    pub api: &'a Valid<Schema>,
    /// The data gathered.
    pub store: &'a Store,
    /// The plan's keys.
    pub keys: &'a Keys,
    /// The request's variables, for `@skip`/`@include`.
    pub variables: &'a Map<String, Value>,
    /// Errors found while shaping (e.g. enum values clients may not see).
    pub errors: Vec<GraphQLError>,
    /// Paths of errors fetching already reported.
    pub known_error_paths: Vec<Vec<Value>>,
    /// Whether fetching reported errors without a path (they may explain any null).
    pub unpathed_errors: bool,
}

impl<'a> Shaper<'a> {
    /// Writes the `data` object as JSON into `out`: `null` when a null propagated to the root.
    pub fn write_root(
        &mut self,
        out: &mut Vec<u8>,
        data: ObjectId,
        root_type: &Name,
        selection: &SelectionSet,
        introspection: Option<&Map<String, Value>>,
    ) {
        let start = out.len();
        let fields = self.store.fields(data);
        out.push(b'{');
        for (index, (key, field)) in self.collect(selection, root_type).into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_name(out, key.as_str());
            out.push(b':');
            match field.name.as_str() {
                "__typename" => write_name(out, root_type.as_str()),
                "__schema" | "__type" => {
                    write_json(
                        out,
                        introspection
                            .and_then(|i| i.get(key.as_str()))
                            .unwrap_or(&Value::Null),
                    );
                }
                _ => {
                    let path = Path::Key(&Path::Root, key.as_str());
                    let value =
                        position(fields, field.key_id, 0).map_or(Data::Null, |i| fields[i].value);
                    let written = self.write_value(out, value, &field.ty, &field, path);
                    if written.is_err() {
                        out.truncate(start);
                        out.extend_from_slice(b"null");
                        return;
                    }
                }
            }
        }
        out.push(b'}');
    }

    /// The fields of `selection` that apply to an object of runtime type `runtime`, merged by
    /// response key in first-seen order (CollectFields).
    fn collect<'s>(
        &self,
        selection: &'s SelectionSet,
        runtime: &str,
    ) -> Vec<(&'s Name, Cow<'s, Field>)> {
        let mut out = Vec::with_capacity(selection.items.len());
        self.collect_into(selection, runtime, &mut out);
        out
    }

    /// Borrows the operation's fields; only a response key selected twice (merged
    /// sub-selections) costs a copy.
    fn collect_into<'s>(
        &self,
        selection: &'s SelectionSet,
        runtime: &str,
        out: &mut Vec<(&'s Name, Cow<'s, Field>)>,
    ) {
        for item in &selection.items {
            match item {
                Selection::Field(field) => {
                    if !field.condition.is_always() && !field.condition.holds(self.variables) {
                        continue;
                    }
                    match out.iter_mut().find(|(key, _)| **key == field.key) {
                        // The sub-selections follow one another, as GraphQL's field collection
                        // merges them: collecting the next level then keeps their order.
                        Some((_, existing)) => {
                            let merged = &mut existing.to_mut().selection;
                            for inner in &field.selection.items {
                                crate::plan::operation::push_in_order(merged, inner.clone());
                            }
                        }
                        None => out.push((&field.key, Cow::Borrowed(field))),
                    }
                }
                Selection::Fragment(fragment) => {
                    if (fragment.condition.is_always() || fragment.condition.holds(self.variables))
                        && self.applies(&fragment.on, runtime)
                    {
                        self.collect_into(&fragment.selection, runtime, out);
                    }
                }
            }
        }
    }

    /// Whether a fragment on `condition` applies to an object of type `runtime`.
    fn applies(&self, condition: &Name, runtime: &str) -> bool {
        if condition == runtime {
            return true;
        }
        match self.api.types.get(condition) {
            Some(ExtendedType::Interface(_)) => match self.api.types.get(runtime) {
                Some(ExtendedType::Object(o)) => {
                    o.implements_interfaces.contains(condition.as_str())
                }
                Some(ExtendedType::Interface(i)) => {
                    i.implements_interfaces.contains(condition.as_str())
                }
                _ => false,
            },
            Some(ExtendedType::Union(u)) => u.members.contains(runtime),
            _ => false,
        }
    }

    /// Writes `value` as the client's type `ty` expects; `Ok(true)` when it wrote `null`.
    /// `Err` when a non-null position got null: the caller nulls its own nearest nullable
    /// parent, truncating what it wrote.
    fn write_value(
        &mut self,
        out: &mut Vec<u8>,
        value: Data,
        ty: &ast::Type,
        field: &Field,
        path: Path<'_>,
    ) -> Result<bool, Propagate> {
        let start = out.len();
        let (non_null, wrote_null) = match ty {
            ast::Type::NonNullNamed(name) => {
                (true, self.write_named(out, value, name, field, path))
            }
            ast::Type::Named(name) => (false, self.write_named(out, value, name, field, path)),
            ast::Type::NonNullList(inner) => {
                (true, self.write_list(out, value, inner, field, path))
            }
            ast::Type::List(inner) => (false, self.write_list(out, value, inner, field, path)),
        };
        if non_null && wrote_null {
            out.truncate(start);
            self.report_null(field, path);
            return Err(Propagate);
        }
        Ok(wrote_null)
    }

    /// A list; `null` (returns true) when an item could not be completed.
    fn write_list(
        &mut self,
        out: &mut Vec<u8>,
        value: Data,
        inner: &ast::Type,
        field: &Field,
        path: Path<'_>,
    ) -> bool {
        let Data::List(list) = value else {
            out.extend_from_slice(b"null");
            return true;
        };
        let store = self.store;
        let start = out.len();
        out.push(b'[');
        for (index, item) in store.items(list).iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let written = self.write_value(out, *item, inner, field, Path::Index(&path, index));
            if written.is_err() {
                out.truncate(start);
                out.extend_from_slice(b"null");
                return true;
            }
        }
        out.push(b']');
        false
    }

    /// A non-null position got null: unless an error already explains it (a subgraph error
    /// or failed fetch at, above or below this path, or one without a path), the client is
    /// told why data went missing.
    fn report_null(&mut self, field: &Field, path: Path<'_>) {
        let path = path.to_json();
        let path = path.as_slice();
        let explained = self.unpathed_errors
            || self
                .known_error_paths
                .iter()
                .any(|known| related(known, path))
            || self
                .errors
                .iter()
                .filter_map(|e| e.path.as_ref())
                .any(|known| related(known, path));
        if explained {
            return;
        }
        self.errors.push(
            GraphQLError::new(
                format!("cannot return null for non-nullable field {}", field.name),
                codes::NULL_IN_NON_NULL,
            )
            .with_path(path.to_vec()),
        );
    }

    /// A value of named type `name`; returns true when it wrote `null`.
    fn write_named(
        &mut self,
        out: &mut Vec<u8>,
        value: Data,
        name: &Name,
        field: &Field,
        path: Path<'_>,
    ) -> bool {
        if value == Data::Null {
            out.extend_from_slice(b"null");
            return true;
        }
        // Operations are annotated when planned; a field without a kind is looked up.
        let kind = match field.kind {
            TypeKind::Unknown => TypeKind::of(self.api, name),
            kind => kind,
        };
        match kind {
            TypeKind::Enum => self.write_enum(out, value, name, path),
            TypeKind::Object | TypeKind::Abstract => {
                let Data::Object(object) = value else {
                    out.extend_from_slice(b"null");
                    return true;
                };
                let store = self.store;
                let typename = match kind {
                    TypeKind::Abstract => store.typename(object),
                    _ => None,
                };
                let runtime = typename.as_deref().unwrap_or(name.as_str());
                if kind == TypeKind::Abstract {
                    let is_object =
                        matches!(self.api.types.get(runtime), Some(ExtendedType::Object(_)));
                    // An interface no subgraph can resolve to an object type is answered as
                    // itself.
                    let unresolvable_interface = runtime == name.as_str()
                        && matches!(self.api.types.get(name), Some(ExtendedType::Interface(_)));
                    if !is_object && !unresolvable_interface {
                        // A type the API schema hides (or a missing `__typename`).
                        out.extend_from_slice(b"null");
                        return true;
                    }
                }
                let start = out.len();
                if self
                    .write_object(out, object, runtime, &field.selection, path)
                    .is_err()
                {
                    out.truncate(start);
                    out.extend_from_slice(b"null");
                    return true;
                }
                false
            }
            TypeKind::Scalar | TypeKind::Unknown => {
                self.store.write(out, value);
                false
            }
        }
    }

    /// An enum value: only values the API schema shows may be sent.
    fn write_enum(&mut self, out: &mut Vec<u8>, value: Data, name: &Name, path: Path<'_>) -> bool {
        let visible = match (self.api.types.get(name), self.store.str_of(value)) {
            (Some(ExtendedType::Enum(enum_type)), Some(text)) => {
                enum_type.values.contains_key(text.as_ref())
            }
            _ => false,
        };
        if visible {
            self.store.write(out, value);
            return false;
        }
        self.errors.push(
            GraphQLError::new(
                format!(
                    "invalid value {} for enum {name}",
                    self.store.to_json(value)
                ),
                codes::INTERNAL,
            )
            .with_path(path.to_json()),
        );
        out.extend_from_slice(b"null");
        true
    }

    fn write_object(
        &mut self,
        out: &mut Vec<u8>,
        object: ObjectId,
        runtime: &str,
        selection: &SelectionSet,
        path: Path<'_>,
    ) -> Result<(), Propagate> {
        let store = self.store;
        let object = store.fields(object);
        out.push(b'{');
        // Subgraphs answer in the selection's order, so each field is looked for first where
        // the previous one was found, plus one.
        let mut hint = 0;
        if is_plain(selection) {
            // No fragments or conditions: the fields are the selection's, in order.
            let items = &selection.items;
            let mut index = 0;
            while let Some(item) = items.get(index) {
                if index > 0 {
                    out.push(b',');
                }
                if let Some(run) = run(object, items, index, hint) {
                    store.write_range(out, run.buf, run.start, run.end);
                    (index, hint) = (run.next_item, run.next_field);
                    continue;
                }
                if let Selection::Field(field) = item {
                    self.write_field(out, object, runtime, field, path, &mut hint)?;
                }
                index += 1;
            }
        } else {
            for (index, (_, field)) in self.collect(selection, runtime).into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                self.write_field(out, object, runtime, &field, path, &mut hint)?;
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn write_field(
        &mut self,
        out: &mut Vec<u8>,
        object: &[Member],
        runtime: &str,
        field: &Field,
        path: Path<'_>,
        hint: &mut usize,
    ) -> Result<(), Propagate> {
        if !self.keys.write_member(out, field.key_id) {
            write_name(out, field.key.as_str());
            out.push(b':');
        }
        if field.name == "__typename" {
            write_name(out, runtime);
            return Ok(());
        }
        let value = match position(object, field.key_id, *hint) {
            Some(index) => {
                *hint = index + 1;
                object[index].value
            }
            None => Data::Null,
        };
        // Most values are scalars where a scalar belongs: their text goes out as it came in.
        if is_scalar_leaf(field)
            && let Data::Number(text) | Data::String(text) | Data::Escaped(text) | Data::Bool(text) =
                value
        {
            self.store.write_text(out, text);
            return Ok(());
        }
        self.write_value(out, value, &field.ty, field, Path::Key(&path, &field.key))
            .map(|_| ())
    }
}

/// A run of fields copied as one piece (see [`run`]).
struct Run {
    buf: u32,
    start: usize,
    end: usize,
    /// The selection item after the run.
    next_item: usize,
    /// The object's field after the run.
    next_field: usize,
}

/// The longest run, from `items[index]` on, of at least two scalar fields whose texts
/// (`"key":value`) follow each other one comma apart in one response body, in the selection's
/// order: the subgraph wrote exactly what the client gets, and it is copied as one piece.
/// Keys are the client's (a member has text only if its key is written as the plan's key),
/// and a value with text is never null, so nothing in the run needs checking.
fn run(object: &[Member], items: &[Selection], index: usize, hint: usize) -> Option<Run> {
    let leaf = |item: &Selection| match item {
        Selection::Field(field) if is_scalar_leaf(field) => Some(field.key_id),
        _ => None,
    };
    let first = leaf(items.get(index)?)?;
    let at = position(object, first, hint)?;
    let (buf, start, mut end) = object[at].text_range()?;
    let mut count = 1;
    while let (Some(key), Some(member)) = (
        items.get(index + count).and_then(leaf),
        object.get(at + count),
    ) {
        match member.text_range() {
            Some((b, s, e)) if member.key == key && b == buf && s == end + 1 => end = e,
            _ => break,
        }
        count += 1;
    }
    (count >= 2).then_some(Run {
        buf,
        start,
        end,
        next_item: index + count,
        next_field: at + count,
    })
}

/// Whether `field` is a scalar (not an enum, not a list) other than `__typename`.
fn is_scalar_leaf(field: &Field) -> bool {
    field.kind == TypeKind::Scalar
        && matches!(field.ty, ast::Type::Named(_) | ast::Type::NonNullNamed(_))
        && field.name != "__typename"
}

/// Whether a selection set is only fields without conditions (so collecting its fields for
/// any type gives its items, in order).
fn is_plain(selection: &SelectionSet) -> bool {
    selection
        .items
        .iter()
        .all(|item| matches!(item, Selection::Field(f) if f.condition.is_always()))
}

#[cfg(test)]
mod tests {
    use apollo_compiler::Schema;

    use super::*;
    use crate::execute::merge::undo_aliases;
    use crate::execute::store::fixtures::{data, keys};
    use crate::plan::alias::Rename;

    /// Shapes `object` (read from `json`, or the result of `prepare`) through a plain selection
    /// of the nullable `Int` or `String` fields `fields`.
    fn shaped(
        fields: &[&str],
        json: &[&str],
        prepare: impl Fn(&mut Store, &Keys, &[Data]),
    ) -> String {
        let api = Schema::parse_and_validate(
            "type Query { a: Int b: String c: Boolean d: Int x: Int }",
            "api.graphql",
        )
        .expect("a valid schema");
        let keys = keys(&["a", "b", "c", "d", "x", "_t_a"]);
        let mut store = Store::new();
        let values: Vec<Data> = json.iter().map(|j| data(&mut store, &keys, j)).collect();
        prepare(&mut store, &keys, &values);
        let selection = SelectionSet {
            items: fields
                .iter()
                .map(|name| {
                    let ty = if *name == "b" { "String" } else { "Int" };
                    let mut field = Field::plain(
                        Name::new_unchecked(name),
                        ast::Type::Named(Name::new_unchecked(ty)),
                    );
                    field.kind = TypeKind::Scalar;
                    field.key_id = keys.id(name).expect("a key");
                    Selection::Field(field)
                })
                .collect(),
        };
        let variables = Map::new();
        let mut shaper = Shaper {
            api: &api,
            store: &store,
            keys: &keys,
            variables: &variables,
            errors: Vec::new(),
            known_error_paths: Vec::new(),
            unpathed_errors: false,
        };
        let Data::Object(object) = values[0] else {
            panic!("an object")
        };
        let mut out = Vec::new();
        shaper
            .write_object(&mut out, object, "Query", &selection, Path::Root)
            .expect("nothing non-null");
        String::from_utf8(out).expect("UTF-8")
    }

    fn plain(fields: &[&str], json: &str) -> String {
        shaped(fields, &[json], |_, _, _| {})
    }

    #[test]
    fn fields_written_as_the_client_gets_them_are_copied_and_others_are_not() {
        assert_eq!(
            plain(&["a", "b", "c"], r#"{"a":1,"b":"x\"y","c":true}"#),
            r#"{"a":1,"b":"x\"y","c":true}"#
        );
        // A field between two others, known to the plan or not, is left out.
        assert_eq!(
            plain(&["a", "b"], r#"{"a":1,"x":2,"b":"3"}"#),
            r#"{"a":1,"b":"3"}"#
        );
        assert_eq!(
            plain(&["a", "b"], r#"{"a":1,"y":2,"b":"3"}"#),
            r#"{"a":1,"b":"3"}"#
        );
        // Spaces, another order, an escaped key, a null: each field is written on its own.
        assert_eq!(
            plain(&["a", "b", "c"], r#"{"a": 1 , "b" :"2","c":false}"#),
            r#"{"a":1,"b":"2","c":false}"#
        );
        assert_eq!(
            plain(&["a", "b", "d"], r#"{"b":"2","a":1,"d":4}"#),
            r#"{"a":1,"b":"2","d":4}"#
        );
        assert_eq!(
            plain(&["a", "d"], r#"{"\u0061":1,"d":4}"#),
            r#"{"a":1,"d":4}"#
        );
        assert_eq!(
            plain(&["a", "b", "d"], r#"{"a":1,"b":null,"d":4}"#),
            r#"{"a":1,"b":null,"d":4}"#
        );
        // A field the response lacks is null, and the fields around it are still right.
        assert_eq!(
            plain(&["a", "b", "d"], r#"{"a":1,"d":4}"#),
            r#"{"a":1,"b":null,"d":4}"#
        );
    }

    #[test]
    fn an_object_merged_from_two_responses_is_copied_per_response() {
        let merged = shaped(
            &["a", "b", "c", "d"],
            &[r#"{"a":1,"b":"2"}"#, r#"{"c":true,"d":4}"#],
            |store, _, values| {
                store.merge(values[0], values[1]);
            },
        );
        assert_eq!(merged, r#"{"a":1,"b":"2","c":true,"d":4}"#);
        // A value replaced by a merge is written from where it now comes from.
        let replaced = shaped(
            &["a", "b", "d"],
            &[r#"{"a":1,"b":"2","d":3}"#, r#"{"b":"new"}"#],
            |store, _, values| {
                store.merge(values[0], values[1]);
            },
        );
        assert_eq!(replaced, r#"{"a":1,"b":"new","d":3}"#);
    }

    #[test]
    fn a_field_moved_back_from_an_alias_is_written_under_the_clients_key() {
        let renamed = shaped(
            &["a", "d"],
            &[r#"{"_t_a":1,"d":4}"#],
            |store, keys, values| {
                let rename = Rename {
                    key: Name::new_unchecked("_t_a"),
                    original: Some(Name::new_unchecked("a")),
                    children: Vec::new(),
                    key_id: keys.id("_t_a").expect("a key"),
                    original_id: keys.id("a"),
                };
                undo_aliases(store, values[0], &[rename]);
            },
        );
        assert_eq!(renamed, r#"{"a":1,"d":4}"#);
    }
}
