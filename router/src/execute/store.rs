//! The data a run gathers, in one arena per request.
//!
//! Subgraph responses are read ([`super::json`]) straight into a [`Store`]: objects are runs of
//! `(key, value)` fields in one vector, lists runs of values in another, and a [`Value`] is a
//! 16-byte handle. Scalars are never decoded: a number or string is a [`Span`] of the response
//! bytes and is written back verbatim, quotes and escapes included. Keys are the plan's
//! [`KeyId`]s, so looking a field up compares numbers.
//!
//! Merging an entity's result into the object it completes copies its fields' handles (nested
//! objects are shared, not copied), and dropping a run frees a few vectors.

use std::borrow::Cow;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::jsontext::append;
use crate::plan::keys::KeyId;

/// How large a run's data grew, so that the next run of the same plan allocates its vectors
/// once instead of growing them (and copying what they hold) as responses arrive. Concurrent
/// runs may overwrite each other's figures: they are only a hint.
#[derive(Debug, Default)]
pub struct RunSizes {
    /// Object fields.
    pub fields: AtomicUsize,
    /// List items.
    pub items: AtomicUsize,
    /// Objects.
    pub objects: AtomicUsize,
}

/// A range of one of the run's response bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    buf: u32,
    start: u32,
    end: u32,
}

impl Span {
    /// No text (the root object was not read from a response).
    const EMPTY: Span = Span {
        buf: u32::MAX,
        start: 0,
        end: 0,
    };

    /// A range of body `buf`.
    pub(super) fn new(buf: u32, start: usize, end: usize) -> Self {
        // Bodies are at most u32::MAX bytes long (checked before reading).
        Self {
            buf,
            start: start as u32,
            end: end as u32,
        }
    }
}

/// An object of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectId(u32);

/// A list of the store: a run of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRef {
    start: u32,
    len: u32,
}

/// One JSON value of the gathered data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`, as written.
    Bool(Span),
    /// A number, as the subgraph wrote it.
    Number(Span),
    /// A string without escapes, quotes included: its inner text is its value.
    String(Span),
    /// A string with escapes, quotes included (decoded only when its value is needed).
    Escaped(Span),
    /// A list.
    List(ListRef),
    /// An object.
    Object(ObjectId),
}

/// One field of an object: its key, its value, and where its text starts in the response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// The key.
    pub key: KeyId,
    /// The value.
    pub value: Value,
    /// Where `"key":value` starts in the value's body, when the subgraph wrote exactly that
    /// (the key unescaped, no space around the colon); [`Member::NO_TEXT`] otherwise. Fields
    /// whose texts follow each other, one comma apart, can be copied to the client as one
    /// piece.
    pub text: u32,
}

impl Member {
    /// `text` of a member whose text is not `"key":value` as written.
    pub const NO_TEXT: u32 = u32::MAX;

    /// A member without text (one the router made, or renamed).
    pub fn new(key: KeyId, value: Value) -> Self {
        Self {
            key,
            value,
            text: Self::NO_TEXT,
        }
    }

    /// The body, start and end of `"key":value`, when the member has that text and its value
    /// is a scalar.
    pub fn text_range(&self) -> Option<(u32, usize, usize)> {
        if self.text == Self::NO_TEXT {
            return None;
        }
        match self.value {
            Value::Number(span)
            | Value::String(span)
            | Value::Escaped(span)
            | Value::Bool(span) => Some((span.buf, self.text as usize, span.end as usize)),
            _ => None,
        }
    }
}

/// Where an object's fields are, and its text (for writing it whole, as a custom scalar).
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u32,
    len: u32,
    raw: Span,
}

/// The run's data and the response bodies it points into.
#[derive(Debug)]
pub struct Store {
    bufs: Vec<Bytes>,
    bytes_read: usize,
    objects: Vec<Slot>,
    fields: Vec<Member>,
    items: Vec<Value>,
    /// Whether the vectors were sized from a previous run, so guessing from each body's length
    /// would only move them (each guess past the capacity doubles it, copying everything).
    sized: bool,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// The object the root fields are gathered into.
    pub const ROOT: ObjectId = ObjectId(0);

    /// A store holding only the empty root object.
    pub fn new() -> Self {
        Self::with_sizes(&RunSizes::default())
    }

    /// A store with room for what a run of the same plan needed last time.
    pub fn with_sizes(sizes: &RunSizes) -> Self {
        // An eighth more than last time, so a slightly larger run still fits.
        let hint = |size: &AtomicUsize, least: usize| {
            let last = size.load(Ordering::Relaxed);
            (last + last / 8).max(least)
        };
        let mut objects = Vec::with_capacity(hint(&sizes.objects, 64));
        objects.push(Slot {
            start: 0,
            len: 0,
            raw: Span::EMPTY,
        });
        Self {
            bufs: Vec::new(),
            bytes_read: 0,
            objects,
            fields: Vec::with_capacity(hint(&sizes.fields, 1024)),
            items: Vec::with_capacity(hint(&sizes.items, 512)),
            sized: sizes.fields.load(Ordering::Relaxed) > 0,
        }
    }

    /// Notes how large this store grew, for the next run of the same plan.
    pub fn record_sizes(&self, sizes: &RunSizes) {
        sizes.fields.store(self.fields.len(), Ordering::Relaxed);
        sizes.items.store(self.items.len(), Ordering::Relaxed);
        sizes.objects.store(self.objects.len(), Ordering::Relaxed);
    }

    /// Keeps a response body; spans name it by the number returned.
    pub(super) fn add_body(&mut self, body: Bytes) -> Option<u32> {
        let buf = u32::try_from(self.bufs.len())
            .ok()
            .filter(|b| *b < u32::MAX)?;
        u32::try_from(body.len()).ok()?;
        // Without a previous run's sizes, room for what the body likely holds, so reading it
        // rarely moves the vectors: a field takes at least six bytes of JSON (`"k":1,`), most
        // take far more.
        if !self.sized {
            self.fields.reserve(body.len() / 16);
            self.items.reserve(body.len() / 64);
            self.objects.reserve(body.len() / 64);
        }
        self.bytes_read += body.len();
        self.bufs.push(body);
        Some(buf)
    }

    /// How many bytes of response bodies the store holds.
    pub fn bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// The bytes of `span`.
    pub fn text(&self, span: Span) -> &[u8] {
        self.bufs
            .get(span.buf as usize)
            .and_then(|b| b.get(span.start as usize..span.end as usize))
            .unwrap_or_default()
    }

    /// An object's fields, in response order.
    pub fn fields(&self, object: ObjectId) -> &[Member] {
        let Some(slot) = self.objects.get(object.0 as usize) else {
            return &[];
        };
        let start = slot.start as usize;
        self.fields
            .get(start..start + slot.len as usize)
            .unwrap_or_default()
    }

    /// A list's items.
    pub fn items(&self, list: ListRef) -> &[Value] {
        let start = list.start as usize;
        self.items
            .get(start..start + list.len as usize)
            .unwrap_or_default()
    }

    /// Appends the text of `span` to `out`.
    #[inline]
    pub fn write_text(&self, out: &mut Vec<u8>, span: Span) {
        self.write_range(out, span.buf, span.start as usize, span.end as usize);
    }

    /// Appends bytes `start..end` of body `buf` to `out`.
    #[inline]
    pub fn write_range(&self, out: &mut Vec<u8>, buf: u32, start: usize, end: usize) {
        if let Some(body) = self.bufs.get(buf as usize) {
            append(out, body, start, end);
        }
    }

    /// The value of `key` in `object`.
    pub fn get(&self, object: ObjectId, key: KeyId) -> Option<Value> {
        position(self.fields(object), key, 0).map(|i| self.fields(object)[i].value)
    }

    /// The text of a string value without escapes (`None` for any other value).
    pub fn plain_str(&self, value: Value) -> Option<&str> {
        match value {
            Value::String(span) => {
                let text = self.text(span);
                std::str::from_utf8(text.get(1..text.len().saturating_sub(1))?).ok()
            }
            _ => None,
        }
    }

    /// The text of a string value, decoded when it has escapes.
    pub fn str_of(&self, value: Value) -> Option<Cow<'_, str>> {
        match value {
            Value::String(_) => self.plain_str(value).map(Cow::Borrowed),
            Value::Escaped(span) => serde_json::from_slice::<String>(self.text(span))
                .ok()
                .map(Cow::Owned),
            _ => None,
        }
    }

    /// Whether `value` is the string `text` (compared as bytes unless it has escapes).
    pub fn is_str(&self, value: Value, text: &str) -> bool {
        match value {
            Value::String(span) => {
                let raw = self.text(span);
                raw.len() == text.len() + 2 && &raw[1..raw.len() - 1] == text.as_bytes()
            }
            Value::Escaped(_) => self.str_of(value).as_deref() == Some(text),
            _ => false,
        }
    }

    /// An object's `__typename`, when it is a string.
    pub fn typename(&self, object: ObjectId) -> Option<Cow<'_, str>> {
        self.get(object, KeyId::TYPENAME)
            .and_then(|value| self.str_of(value))
    }

    /// Appends `value` as JSON: scalars verbatim, objects as the subgraph wrote them.
    pub fn write(&self, out: &mut Vec<u8>, value: Value) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Number(span)
            | Value::String(span)
            | Value::Escaped(span)
            | Value::Bool(span) => {
                self.write_text(out, span);
            }
            Value::List(list) => {
                out.push(b'[');
                for (index, item) in self.items(list).iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    self.write(out, *item);
                }
                out.push(b']');
            }
            Value::Object(object) => match self.objects.get(object.0 as usize) {
                Some(slot) if slot.raw.buf != u32::MAX => {
                    out.extend_from_slice(self.text(slot.raw))
                }
                _ => out.extend_from_slice(b"{}"),
            },
        }
    }

    /// `value` as a `serde_json::Value` (for error messages).
    pub fn to_json(&self, value: Value) -> serde_json::Value {
        let mut out = Vec::new();
        self.write(&mut out, value);
        serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
    }

    /// Adds an object whose fields are `fields` and whose text is `raw`; the reader makes the
    /// [`Value`] from the id.
    pub(super) fn push_object(&mut self, fields: &[Member], raw: Span) -> ObjectId {
        let start = self.fields.len() as u32;
        self.fields.extend_from_slice(fields);
        let id = ObjectId(self.objects.len() as u32);
        self.objects.push(Slot {
            start,
            len: fields.len() as u32,
            raw,
        });
        id
    }

    /// Adds a list of `items`.
    pub(super) fn push_list(&mut self, items: &[Value]) -> ListRef {
        let start = self.items.len() as u32;
        self.items.extend_from_slice(items);
        ListRef {
            start,
            len: items.len() as u32,
        }
    }

    /// Sets the value of field `index` of `object`, and where its text is.
    pub(super) fn set(&mut self, object: ObjectId, index: usize, value: Value, text: u32) {
        if let Some(slot) = self.objects.get(object.0 as usize)
            && index < slot.len as usize
        {
            let member = &mut self.fields[slot.start as usize + index];
            member.value = value;
            member.text = text;
        }
    }

    /// Changes the key of field `index` of `object` (to [`KeyId::NONE`] to hide it); its text
    /// no longer names it.
    pub(super) fn rekey(&mut self, object: ObjectId, index: usize, key: KeyId) {
        if let Some(slot) = self.objects.get(object.0 as usize)
            && index < slot.len as usize
        {
            let member = &mut self.fields[slot.start as usize + index];
            member.key = key;
            member.text = Member::NO_TEXT;
        }
    }

    /// Merges `source` into `target` and returns what `target`'s place holds afterwards:
    /// objects key by key, lists of one length item by item, anything else replaced; a `null`
    /// never replaces an object.
    pub fn merge(&mut self, target: Value, source: Value) -> Value {
        match (target, source) {
            (Value::Object(t), Value::Object(s)) => {
                self.merge_object(t, s);
                target
            }
            (Value::List(t), Value::List(s)) if t.len == s.len => {
                for i in 0..t.len as usize {
                    let (ti, si) = (t.start as usize + i, s.start as usize + i);
                    let merged = self.merge(self.items[ti], self.items[si]);
                    self.items[ti] = merged;
                }
                target
            }
            (Value::Object(_), Value::Null) => target,
            (_, source) => source,
        }
    }

    /// Makes room for merging into `objects` objects: each one merged into is moved to the end
    /// of the fields once, and grows.
    pub fn reserve_merges(&mut self, objects: usize) {
        if !self.sized {
            self.fields.reserve(objects * 8);
        }
    }

    /// Merges the fields of object `source` into object `target`.
    pub fn merge_object(&mut self, target: ObjectId, source: ObjectId) {
        if target == source {
            return;
        }
        let Some(&from) = self.objects.get(source.0 as usize) else {
            return;
        };
        let mut hint = 0;
        for i in 0..from.len as usize {
            let member = self.fields[from.start as usize + i];
            if member.key == KeyId::NONE {
                continue;
            }
            match position(self.fields(target), member.key, hint) {
                Some(at) => {
                    hint = at + 1;
                    let current = self.fields(target)[at];
                    let merged = self.merge(current.value, member.value);
                    // A replaced value brings its own text; a merged one keeps the target's.
                    let text = if merged == current.value {
                        current.text
                    } else {
                        member.text
                    };
                    // `at` counts within `target`'s fields, so it holds even if merging below
                    // moved them.
                    self.set(target, at, merged, text);
                }
                None => self.push_field(target, member),
            }
        }
    }

    /// Appends a field to `object`, moving its fields to the end first unless they are there.
    fn push_field(&mut self, object: ObjectId, member: Member) {
        let Some(slot) = self.objects.get_mut(object.0 as usize) else {
            return;
        };
        let (start, end) = (slot.start as usize, (slot.start + slot.len) as usize);
        if end != self.fields.len() {
            slot.start = self.fields.len() as u32;
            self.fields.extend_from_within(start..end);
        }
        slot.len += 1;
        self.fields.push(member);
    }
}

/// Where `key` is among `fields`, looking at `hint` first (subgraphs answer in selection order,
/// so the next field is usually where the previous one was found, plus one).
pub fn position(fields: &[Member], key: KeyId, hint: usize) -> Option<usize> {
    match fields.get(hint) {
        Some(member) if member.key == key => Some(hint),
        _ => fields.iter().position(|member| member.key == key),
    }
}

/// Helpers for the executor's unit tests: key tables, data read from JSON text, and data
/// rebuilt as JSON from the store's fields.
#[cfg(test)]
pub(crate) mod fixtures {
    use apollo_compiler::Name;

    use super::*;
    use crate::execute::json::{KeyPredictor, Parsed, ReadError, read_response};
    use crate::plan::keys::Keys;

    /// A key table with `names` (and the two fixed keys).
    pub fn keys(names: &[&str]) -> Keys {
        let mut keys = Keys::default();
        for name in names {
            keys.intern(&Name::new_unchecked(name));
        }
        keys
    }

    /// Reads a whole response body.
    pub fn read(store: &mut Store, keys: &Keys, body: &[u8]) -> Result<Parsed, ReadError> {
        let mut predictor = KeyPredictor::new(keys);
        read_response(store, keys, &mut predictor, Bytes::from(body.to_vec()))
    }

    /// Reads `{"data": <data>}` and returns the data.
    pub fn data(store: &mut Store, keys: &Keys, data: &str) -> Value {
        read(store, keys, format!("{{\"data\":{data}}}").as_bytes())
            .expect("valid JSON")
            .data
            .expect("data")
    }

    /// The value rebuilt from the store's fields, keys by name (not from the kept text).
    pub fn json_of(store: &Store, keys: &Keys, value: Value) -> serde_json::Value {
        match value {
            Value::Object(object) => serde_json::Value::Object(
                store
                    .fields(object)
                    .iter()
                    .filter(|member| member.key != KeyId::NONE)
                    .map(|m| (keys.name(m.key).to_owned(), json_of(store, keys, m.value)))
                    .collect(),
            ),
            Value::List(list) => store
                .items(list)
                .iter()
                .map(|v| json_of(store, keys, *v))
                .collect(),
            other => store.to_json(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixtures::{data, json_of, keys};
    use super::*;
    use crate::plan::keys::Keys;

    #[test]
    fn merge_joins_objects_and_equal_lists() {
        let keys = keys(&["a", "b", "c", "d", "e", "x", "y"]);
        let mut store = Store::new();
        let target = data(
            &mut store,
            &keys,
            r#"{"a":[{"x":1}],"b":{"c":1},"d":{"x":1}}"#,
        );
        let source = data(
            &mut store,
            &keys,
            r#"{"a":[{"y":2}],"b":{"d":2},"d":null,"e":[1,2]}"#,
        );
        let merged = store.merge(target, source);
        assert_eq!(merged, target);
        assert_eq!(
            json_of(&store, &keys, target),
            json!({ "a": [{ "x": 1, "y": 2 }], "b": { "c": 1, "d": 2 }, "d": { "x": 1 }, "e": [1, 2] })
        );
        // Lists of other lengths and scalars are replaced.
        let other = data(&mut store, &keys, r#"{"a":[{"x":3},{"x":4}],"b":5}"#);
        store.merge(target, other);
        assert_eq!(
            json_of(&store, &keys, target),
            json!({ "a": [{ "x": 3 }, { "x": 4 }], "b": 5, "d": { "x": 1 }, "e": [1, 2] })
        );
    }

    #[test]
    fn merging_into_an_object_that_is_not_last_moves_it_and_keeps_the_others_intact() {
        let keys = keys(&["p", "q", "x", "y"]);
        let mut store = Store::new();
        let list = data(&mut store, &keys, r#"[{"x":1},{"x":2}]"#);
        let Value::List(list) = list else {
            panic!("a list")
        };
        let (first, second) = match store.items(list) {
            [Value::Object(a), Value::Object(b)] => (*a, *b),
            other => panic!("two objects: {other:?}"),
        };
        let extra = data(&mut store, &keys, r#"{"y":3,"p":{"q":4}}"#);
        let Value::Object(extra) = extra else {
            panic!("an object")
        };
        store.merge_object(first, extra);
        store.merge_object(second, extra);
        assert_eq!(
            json_of(&store, &keys, Value::List(list)),
            json!([{ "x": 1, "y": 3, "p": { "q": 4 } }, { "x": 2, "y": 3, "p": { "q": 4 } }])
        );
        // Both now share the nested object, and merging into it once completes both.
        let p = keys.id("p").expect("a key");
        assert_eq!(store.get(first, p), store.get(second, p));
        assert_eq!(store.get(first, KeyId::TYPENAME), None);
        store.merge_object(first, first);
        assert_eq!(store.fields(first).len(), 3);
    }

    /// Every member of `object` (and below) that has text has exactly `"key":value` there.
    fn assert_texts_hold(store: &Store, keys: &Keys, value: Value) {
        match value {
            Value::Object(object) => {
                for member in store.fields(object) {
                    if let Some((buf, start, end)) = member.text_range() {
                        let mut text = Vec::new();
                        store.write_range(&mut text, buf, start, end);
                        let mut expected = keys.member(member.key).expect("a key").to_vec();
                        store.write(&mut expected, member.value);
                        assert_eq!(
                            String::from_utf8_lossy(&text),
                            String::from_utf8_lossy(&expected)
                        );
                    }
                    assert_texts_hold(store, keys, member.value);
                }
            }
            Value::List(list) => store
                .items(list)
                .iter()
                .for_each(|v| assert_texts_hold(store, keys, *v)),
            _ => {}
        }
    }

    #[test]
    fn member_texts_stay_true_through_merges_and_renames() {
        let keys = keys(&["a", "b", "d", "o", "_t_a"]);
        let mut store = Store::new();
        let target = data(&mut store, &keys, r#"{"a":1,"b":"2","d":3,"o":{"a":true}}"#);
        let source = data(
            &mut store,
            &keys,
            r#"{"d":"new","b" : 9,"o":{"b":null,"a":false}}"#,
        );
        assert_texts_hold(&store, &keys, target);
        assert_texts_hold(&store, &keys, source);
        store.merge(target, source);
        assert_texts_hold(&store, &keys, target);
        let Value::Object(object) = target else {
            panic!("an object")
        };
        // `d` was replaced by a value with text, `b` by one without (a space before its colon).
        let fields = store.fields(object);
        assert!(fields[2].text_range().is_some() && fields[1].text_range().is_none());
        let aliased = data(&mut store, &keys, r#"{"_t_a":1,"a":{"d":2},"b":"x"}"#);
        let renames = [crate::plan::alias::Rename {
            key: apollo_compiler::Name::new_unchecked("_t_a"),
            original: Some(apollo_compiler::Name::new_unchecked("b")),
            children: Vec::new(),
            key_id: keys.id("_t_a").expect("a key"),
            original_id: keys.id("b"),
        }];
        crate::execute::merge::undo_aliases(&mut store, aliased, &renames);
        assert_texts_hold(&store, &keys, aliased);
    }

    #[test]
    fn a_store_made_with_the_sizes_of_a_run_holds_the_same_data_without_growing() {
        let keys = keys(&["a", "b"]);
        // More fields, items and objects than a store starts with room for, then a body whose
        // length promises far more fields than it holds (a guess from it would grow the store).
        let json = (0..1500)
            .map(|i| format!(r#"{{"a":{i},"b":[1,2,3]}}"#))
            .collect::<Vec<_>>()
            .join(",");
        let json = format!("[{json}]");
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(200_000));
        let mut first = Store::new();
        data(&mut first, &keys, &json);
        data(&mut first, &keys, &long);
        let sizes = RunSizes::default();
        first.record_sizes(&sizes);
        let mut second = Store::with_sizes(&sizes);
        let capacities = |s: &Store| {
            (
                s.fields.capacity(),
                s.items.capacity(),
                s.objects.capacity(),
            )
        };
        let before = capacities(&second);
        assert!(before.0 >= first.fields.len() && before.1 >= first.items.len());
        data(&mut second, &keys, &json);
        data(&mut second, &keys, &long);
        assert_eq!(capacities(&second), before);
        assert_eq!(second.fields.len(), first.fields.len());
    }

    #[test]
    fn short_and_long_pieces_are_appended_exactly() {
        let source = b"0123456789abcdefghijklmnopqrstuvwxyz";
        for (start, end) in [
            (0, 0),
            (0, 5),
            (3, 19),
            (20, 36),
            (0, 36),
            (30, 36),
            (36, 36),
        ] {
            let mut out = b"x".to_vec();
            append(&mut out, source, start, end);
            assert_eq!(&out[1..], &source[start..end], "{start}..{end}");
            assert_eq!(out[0], b'x');
        }
        let mut out = Vec::new();
        append(&mut out, source, 30, 40);
        assert!(out.is_empty(), "a range past the end appends nothing");
    }

    #[test]
    fn strings_are_decoded_only_when_their_value_is_needed() {
        let keys = keys(&["s", "e", "n"]);
        let mut store = Store::new();
        let object = data(&mut store, &keys, r#"{"s":"Book","e":"B\u006fok","n":1}"#);
        let Value::Object(object) = object else {
            panic!("an object")
        };
        let field = |name: &str| {
            store
                .get(object, keys.id(name).expect("a key"))
                .expect("a field")
        };
        assert_eq!(store.plain_str(field("s")), Some("Book"));
        assert_eq!(store.plain_str(field("e")), None);
        assert_eq!(store.str_of(field("e")).as_deref(), Some("Book"));
        assert_eq!(store.str_of(field("n")), None);
        assert!(store.is_str(field("s"), "Book") && store.is_str(field("e"), "Book"));
        assert!(!store.is_str(field("s"), "Boo") && !store.is_str(field("n"), "1"));
        let mut out = Vec::new();
        store.write(&mut out, field("e"));
        assert_eq!(out, br#""B\u006fok""#);
    }
}
