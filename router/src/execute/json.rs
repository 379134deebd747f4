//! Reads a subgraph's response body into the run's [`Store`] in one pass.
//!
//! The reader is strict JSON (RFC 8259: no trailing commas, leading zeros, raw control
//! characters in strings, invalid escapes, lone surrogates or invalid UTF-8; nothing after the
//! value), because what it keeps is written back to clients verbatim: a kept string or number
//! is its own valid JSON text.
//!
//! Why not a JSON crate: a general parser decodes every string and number and allocates a node
//! per value, and the executor needs neither. Reading into the arena with plan-numbered keys is
//! what makes the executor's cost per value small (see the `execution` bench). `errors` and
//! `extensions`, which are rare and need full fidelity, are left to serde_json.
//!
//! Keys are matched against the plan's [`Keys`]: a key no one looks up is dropped with its
//! value. Subgraphs answer objects of one selection with the same keys in the same order, so
//! the reader predicts each key from the key it found at the same place (same parent key, same
//! position) before, and a prediction costs one comparison.

use bytes::Bytes;
use serde::de::IgnoredAny;

use super::store::{Member, Span, Store, Value};
use crate::plan::keys::{KeyId, Keys};

/// How deeply lists and objects may nest in a subgraph response (the response object is the
/// first level): deeper is refused as invalid before recursion — here, and in merging and
/// shaping — could exhaust a 2 MiB stack, even in a debug build. (serde_json's default limit is
/// the same.)
pub const MAX_DEPTH: usize = 128;

/// Why a body is not a usable JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not JSON, or not strict JSON.
    #[error("invalid JSON at byte {at}: {what}")]
    Syntax {
        /// The byte offset.
        at: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// Lists and objects nested deeper than [`MAX_DEPTH`].
    #[error("response nested too deeply")]
    TooDeep,
    /// A body longer than 4 GiB, or too many bodies in one run.
    #[error("response too large")]
    TooLarge,
    /// `errors` or `extensions` could not be read.
    #[error("invalid JSON in `{member}`: {message}")]
    Member {
        /// The member.
        member: &'static str,
        /// serde_json's message.
        message: String,
    },
}

/// A subgraph response, read.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `data`, when the key is present (it may be `null`).
    pub data: Option<Value>,
    /// `errors`, when present.
    pub errors: Option<serde_json::Value>,
}

/// Keys seen per (parent key, position), to predict the next object's keys.
#[derive(Debug)]
pub struct KeyPredictor {
    slots: Vec<KeyId>,
    parents: usize,
    /// Per key, what follows its opening quote in compact JSON (`name":`), as two words to
    /// compare with the input a word at a time.
    patterns: Vec<Pattern>,
    /// Per key, the length of `"name":`.
    member_lens: Vec<usize>,
}

/// Up to 16 bytes of text as two little-endian words, with masks for its length.
#[derive(Debug, Clone, Copy, Default)]
struct Pattern {
    words: [u64; 2],
    masks: [u64; 2],
    len: usize,
}

impl Pattern {
    fn new(text: &[u8]) -> Option<Self> {
        if text.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..text.len()].copy_from_slice(text);
        let mask = |n: usize| match n {
            0 => 0,
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = bytes;
        Some(Self {
            words: [
                u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                u64::from_le_bytes([i, j, k, l, m, n, o, p]),
            ],
            masks: [mask(text.len()), mask(text.len().saturating_sub(8))],
            len: text.len(),
        })
    }

    /// Whether `bytes` holds this text at `at` (`None`: fewer than 16 bytes left to compare).
    #[inline]
    fn is_at(&self, bytes: &[u8], at: usize) -> Option<bool> {
        let chunk = bytes.get(at..at + 16)?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&chunk[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let differ = ((word(0) ^ self.words[0]) & self.masks[0])
            | ((word(8) ^ self.words[1]) & self.masks[1]);
        Some(differ == 0)
    }
}

/// How many positions per parent key are predicted.
const PREDICTED_POSITIONS: usize = 32;

impl KeyPredictor {
    /// A predictor for a plan's keys.
    pub fn new(keys: &Keys) -> Self {
        // One more parent for objects under a key no one looks up (and the response object).
        let parents = keys.len() + 1;
        let patterns = (0..keys.len())
            .map(|i| {
                let member = keys.member(KeyId::from_index(i)).unwrap_or_default();
                Pattern::new(member.get(1..).unwrap_or_default()).unwrap_or_default()
            })
            .collect();
        let member_lens = (0..keys.len())
            .map(|i| keys.member(KeyId::from_index(i)).map_or(0, <[u8]>::len))
            .collect();
        Self {
            slots: vec![KeyId::NONE; parents * PREDICTED_POSITIONS],
            parents,
            patterns,
            member_lens,
        }
    }

    /// The length of `"name":` for `key` (0 for a key the plan lacks).
    #[inline]
    fn member_len(&self, key: KeyId) -> usize {
        self.member_lens.get(key.index()).copied().unwrap_or(0)
    }

    #[inline]
    fn slot(&self, parent: KeyId, position: usize) -> Option<usize> {
        if position >= PREDICTED_POSITIONS {
            return None;
        }
        let parent = parent.index().min(self.parents - 1);
        Some(parent * PREDICTED_POSITIONS + position)
    }
}

/// Reads `body` into `store`: `data` as store values, `errors` as JSON.
pub fn read_response(
    store: &mut Store,
    keys: &Keys,
    predictor: &mut KeyPredictor,
    body: Bytes,
) -> Result<Parsed, ReadError> {
    let buf = store.add_body(body.clone()).ok_or(ReadError::TooLarge)?;
    let mut reader = Reader {
        bytes: &body,
        pos: 0,
        buf,
        depth: 0,
        keys,
        predictor,
        store,
        fields: Vec::with_capacity(64),
        items: Vec::with_capacity(256),
    };
    let parsed = reader.response()?;
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(parsed)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    buf: u32,
    depth: usize,
    keys: &'a Keys,
    predictor: &'a mut KeyPredictor,
    store: &'a mut Store,
    /// Fields of the objects being read (each object's run is moved to the store when it ends).
    fields: Vec<Member>,
    /// Items of the lists being read.
    items: Vec<Value>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is zero (exact for the lowest such byte).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> ReadError {
        ReadError::Syntax { at: self.pos, what }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        // Whitespace is all at or below b' ', and subgraphs rarely send any.
        while let Some(&byte) = self.bytes.get(self.pos)
            && byte <= b' '
            && matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
        {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ReadError> {
        self.skip_ws();
        if self.peek() != Some(byte) {
            return Err(self.error(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// Enters the object or list whose opening bracket is here; true when it is empty (its
    /// closing bracket, `close`, read too).
    #[inline]
    fn open(&mut self, close: u8) -> Result<bool, ReadError> {
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// After a member or an item: true at the end of the object or list (`close`), false after
    /// a comma.
    #[inline]
    fn end_or_comma(&mut self, close: u8, what: &'static str) -> Result<bool, ReadError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(byte) if byte == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.error(what)),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), ReadError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        Ok(())
    }

    /// The response object: `data` into the store, `errors` through serde_json, anything else
    /// checked and skipped. A body that is JSON but not an object reads as neither.
    fn response(&mut self) -> Result<Parsed, ReadError> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            self.member::<IgnoredAny>("the response")?;
            return Ok(Parsed::default());
        }
        self.enter()?;
        self.pos += 1;
        let mut parsed = Parsed::default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(parsed);
        }
        loop {
            self.expect(b'"', "expected a key")?;
            let start = self.pos;
            let escaped = self.string_end()?;
            let key = &self.bytes[start..self.pos - 1];
            self.expect(b':', "expected ':'")?;
            self.skip_ws();
            match key {
                b"data" if !escaped => parsed.data = Some(self.value(KeyId::NONE)?),
                b"errors" if !escaped => parsed.errors = Some(self.member("errors")?),
                _ => {
                    self.member::<IgnoredAny>("extensions")?;
                }
            }
            if self.end_or_comma(b'}', "expected ',' or '}'")? {
                self.depth -= 1;
                return Ok(parsed);
            }
        }
    }

    /// One value read by serde_json from here (which checks it as strictly).
    fn member<T: serde::de::DeserializeOwned>(
        &mut self,
        member: &'static str,
    ) -> Result<T, ReadError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                self.pos += stream.byte_offset();
                Ok(value)
            }
            Some(Err(err)) => Err(ReadError::Member {
                member,
                message: err.to_string(),
            }),
            None => Err(self.error("expected a value")),
        }
    }

    /// A value; `key` is the key it sits under (for predicting the keys of its objects).
    fn value(&mut self, key: KeyId) -> Result<Value, ReadError> {
        match self.peek() {
            Some(b'{') => self.object(key),
            Some(b'[') => self.list(key),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true").map(Value::Bool),
            Some(b'f') => self.literal(b"false").map(Value::Bool),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    /// A string value, at its opening quote.
    #[inline]
    fn string(&mut self) -> Result<Value, ReadError> {
        let start = self.pos;
        self.pos += 1;
        let escaped = self.string_end()?;
        let span = Span::new(self.buf, start, self.pos);
        Ok(if escaped {
            Value::Escaped(span)
        } else {
            Value::String(span)
        })
    }

    /// `true`, `false` or `null`: where it is.
    fn literal(&mut self, text: &[u8]) -> Result<Span, ReadError> {
        if !self.bytes[self.pos..].starts_with(text) {
            return Err(self.error("invalid literal"));
        }
        let start = self.pos;
        self.pos += text.len();
        Ok(Span::new(self.buf, start, self.pos))
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as text.
    fn number(&mut self) -> Result<Value, ReadError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            exponent = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        // A number no double can hold (`1e400`) is refused, as serde_json does: clients could
        // not read it. Only an exponent or hundreds of digits can get there.
        if exponent || self.pos - start > 300 {
            let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(ReadError::Syntax {
                    at: start,
                    what: "number out of range",
                });
            }
        }
        Ok(Value::Number(Span::new(self.buf, start, self.pos)))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), ReadError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("invalid number"));
        }
        self.digits();
        Ok(())
    }

    fn object(&mut self, parent: KeyId) -> Result<Value, ReadError> {
        let open = self.pos;
        let base = self.fields.len();
        if !self.open(b'}')? {
            let mut index = 0;
            loop {
                self.expect(b'"', "expected a key")?;
                let start = self.pos - 1;
                let (key, colon) = self.key(parent, index)?;
                if !colon {
                    self.expect(b':', "expected ':'")?;
                }
                self.skip_ws();
                // `"key":value` exactly as a client would get it: only an escape in the key or
                // a space around the colon makes the text longer.
                let text = if self.pos - start == self.predictor.member_len(key) {
                    start as u32
                } else {
                    Member::NO_TEXT
                };
                let value = match self.peek() {
                    Some(b'"') => self.string()?,
                    _ => self.value(key)?,
                };
                if key != KeyId::NONE {
                    self.fields.push(Member { key, value, text });
                }
                index += 1;
                if self.end_or_comma(b'}', "expected ',' or '}'")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        let value = self
            .store
            .push_object(&self.fields[base..], Span::new(self.buf, open, self.pos));
        self.fields.truncate(base);
        Ok(value)
    }

    fn list(&mut self, key: KeyId) -> Result<Value, ReadError> {
        let base = self.items.len();
        if !self.open(b']')? {
            loop {
                self.skip_ws();
                let item = self.value(key)?;
                self.items.push(item);
                if self.end_or_comma(b']', "expected ',' or ']'")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        let value = self.store.push_list(&self.items[base..]);
        self.items.truncate(base);
        Ok(value)
    }

    /// An object key (after its opening quote): its id, or [`KeyId::NONE`] when the plan has
    /// no such key, and whether the colon after it was read too.
    #[inline]
    fn key(&mut self, parent: KeyId, index: usize) -> Result<(KeyId, bool), ReadError> {
        let slot = self.predictor.slot(parent, index);
        if let Some(slot) = slot
            && let Some(predicted) = self.predicted(slot)
        {
            return Ok(predicted);
        }
        let start = self.pos;
        let escaped = self.string_end()?;
        let raw = &self.bytes[start..self.pos - 1];
        let id = if escaped {
            let quoted = &self.bytes[start - 1..self.pos];
            serde_json::from_slice::<String>(quoted)
                .ok()
                .and_then(|key| self.keys.id(&key))
        } else {
            std::str::from_utf8(raw)
                .ok()
                .and_then(|key| self.keys.id(key))
        };
        let id = id.unwrap_or(KeyId::NONE);
        if let Some(slot) = slot
            && id != KeyId::NONE
        {
            self.predictor.slots[slot] = id;
        }
        Ok((id, false))
    }

    /// The key predicted for `slot`, when the input holds it here (after the opening quote).
    /// Names never need escaping, so the key is the name exactly when the name is followed by
    /// the closing quote; in compact JSON, the colon follows, and one comparison reads all
    /// three.
    #[inline]
    fn predicted(&mut self, slot: usize) -> Option<(KeyId, bool)> {
        let predicted = *self.predictor.slots.get(slot)?;
        let pattern = self.predictor.patterns.get(predicted.index())?;
        if pattern.len > 0 && pattern.is_at(self.bytes, self.pos) == Some(true) {
            self.pos += pattern.len;
            return Some((predicted, true));
        }
        let name = self.keys.name(predicted).as_bytes();
        let end = self.pos + name.len();
        if self.bytes.get(self.pos..end) == Some(name) && self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Some((predicted, false));
        }
        None
    }

    /// Checks a string from just after its opening quote to just after its closing quote;
    /// returns whether it had escapes.
    #[inline]
    fn string_end(&mut self) -> Result<bool, ReadError> {
        let start = self.pos;
        let mut escaped = false;
        // Every byte looked at, or-ed: the high bit says whether UTF-8 must be checked.
        let mut seen = 0u64;
        loop {
            // Eight bytes at a time while none is a quote, a backslash or a control character.
            while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let word = u64::from_le_bytes(word);
                let special = zero_bytes(word ^ (ONES * u64::from(b'"')))
                    | zero_bytes(word ^ (ONES * u64::from(b'\\')))
                    | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
                // (Bytes past the string may count as seen too: that only costs a check.)
                seen |= word;
                if special != 0 {
                    self.pos += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            let Some(byte) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match byte {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0..=0x1f => return Err(self.error("control character in string")),
                _ => {
                    seen |= u64::from(byte);
                    self.pos += 1;
                }
            }
        }
        if seen & HIGHS != 0 && std::str::from_utf8(&self.bytes[start..self.pos - 1]).is_err() {
            return Err(ReadError::Syntax {
                at: start,
                what: "invalid UTF-8 in string",
            });
        }
        Ok(escaped)
    }

    /// An escape, at its backslash.
    fn escape(&mut self) -> Result<(), ReadError> {
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 2)?;
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low one.
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.error("lone surrogate in string"));
                        }
                        let low = self.hex4(self.pos + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone surrogate in string"));
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    0xDC00..=0xDFFF => Err(self.error("lone surrogate in string")),
                    _ => Ok(()),
                }
            }
            _ => Err(self.error("invalid escape")),
        }
    }

    fn hex4(&self, at: usize) -> Result<u32, ReadError> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .ok_or_else(|| self.error("invalid escape"))?;
        let mut unit = 0;
        for digit in digits {
            let value = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return Err(self.error("invalid escape")),
            };
            unit = unit * 16 + u32::from(value);
        }
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execute::store::ObjectId;
    use crate::execute::store::fixtures::{json_of as structure, keys, read};

    fn object(value: Option<Value>) -> ObjectId {
        match value {
            Some(Value::Object(object)) => object,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn scalars_are_kept_as_written_and_strings_know_their_escapes() {
        let keys = keys(&["a", "b\"c", "n", "f", "l"]);
        let mut store = Store::new();
        let body = br#"{"data":{"a":"plain","b\"c":"tab\there","n":-3e+2,"f":1.50,"l":[true,null,{}]},"extensions":{"x":1}}"#;
        let parsed = read(&mut store, &keys, body).expect("valid");
        let data = object(parsed.data);
        let fields = store.fields(data);
        assert!(matches!(fields[0].value, Value::String(_)));
        assert!(matches!(fields[1].value, Value::Escaped(_)));
        assert_eq!(fields[1].key, keys.id("b\"c").expect("a key"));
        assert_eq!(store.plain_str(fields[0].value), Some("plain"));
        assert_eq!(store.str_of(fields[1].value).as_deref(), Some("tab\there"));
        let mut out = Vec::new();
        for member in fields {
            store.write(&mut out, member.value);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#""plain" "tab\there" -3e+2 1.50 [true,null,{}] "#
        );
        assert!(parsed.errors.is_none());
    }

    #[test]
    fn keys_the_plan_does_not_have_are_dropped_with_their_values() {
        let keys = keys(&["id"]);
        let mut store = Store::new();
        let body = br#"{"data":{"extra":{"deep":[1,2]},"id":"1","other":null}}"#;
        let data = object(read(&mut store, &keys, body).expect("valid").data);
        assert_eq!(
            structure(&store, &keys, Value::Object(data)),
            json!({ "id": "1" })
        );
        // Written whole (as a custom scalar's value), an object is its text, every key kept.
        let mut out = Vec::new();
        store.write(&mut out, Value::Object(data));
        assert_eq!(out, br#"{"extra":{"deep":[1,2]},"id":"1","other":null}"#);
    }

    #[test]
    fn predicted_keys_do_not_hide_objects_whose_keys_differ() {
        let keys = keys(&["items", "a", "ab", "b"]);
        let mut store = Store::new();
        // The second object starts with a key that begins like the first one's, the third
        // has the keys the other way round, the fourth an escaped spelling of `a`.
        let body =
            br#"{"data":{"items":[{"a":1,"b":2},{"ab":3,"b":4},{"b":5,"a":6},{"\u0061":7}]}}"#;
        let data = object(read(&mut store, &keys, body).expect("valid").data);
        assert_eq!(
            structure(&store, &keys, Value::Object(data)),
            json!({ "items": [{ "a": 1, "b": 2 }, { "ab": 3, "b": 4 }, { "b": 5, "a": 6 }, { "a": 7 }] })
        );
    }

    #[test]
    fn responses_that_are_not_objects_or_not_json() {
        let keys = keys(&[]);
        let mut store = Store::new();
        let list = read(&mut store, &keys, b"[1,2]").expect("JSON");
        assert!(list.data.is_none() && list.errors.is_none());
        let errors = read(&mut store, &keys, br#"{"errors":[{"message":"x"}]}"#).expect("JSON");
        assert_eq!(errors.errors, Some(json!([{ "message": "x" }])));
        assert!(read(&mut store, &keys, b"{\"data\":").is_err());
        assert!(read(&mut store, &keys, b"{} trailing").is_err());
        assert!(read(&mut store, &keys, b"").is_err());
        assert!(read(&mut store, &keys, br#"{"data":{},"extensions":{"a":}}"#).is_err());
    }

    #[test]
    fn invalid_json_is_refused_so_kept_text_is_safe_to_write_verbatim() {
        let keys = keys(&["a"]);
        for body in [
            &b"{\"data\":{\"a\":\"x\ny\"}}"[..],
            b"{\"data\":{\"a\":\"x\xffy\"}}",
            b"{\"data\":{\"a\":\"a string long enough to be searched\x01 for its end\"}}",
            b"{\"data\":{\"a\":\"a string long enough to be searched \xff for its end\"}}",
            b"{\"data\":{\"a\":\"a string long enough to be searched, never ended}}",
            b"{\"data\":{\"a\":\"\xe2\x82\"}}",
            b"{\"data\":{\"a\":01}}",
            b"{\"data\":{\"a\":1.}}",
            b"{\"data\":{\"a\":-}}",
            b"{\"data\":{\"a\":1e}}",
            b"{\"data\":{\"a\":1e400}}",
            b"{\"data\":{\"a\":.5}}",
            b"{\"data\":{\"a\":1,}}",
            b"{\"data\":{\"a\":[1,]}}",
            b"{\"data\":{\"a\":tru}}",
            b"{\"data\":{\"a\":\"\\ud800\"}}",
            b"{\"data\":{\"a\":\"\\udc00\"}}",
            b"{\"data\":{\"a\":\"\\ud800\\u0041\"}}",
            b"{\"data\":{\"a\":\"\\x\"}}",
            b"{\"data\":{\"a\":\"\\u12g4\"}}",
            b"{\"data\":{\"a\" 1}}",
            b"{\"data\":{a:1}}",
            b"{\"data\":{\"a\":1}",
        ] {
            let mut store = Store::new();
            assert!(
                read(&mut store, &keys, body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let mut store = Store::new();
        let fine = "{\"data\":{\"a\":[\"caf\u{e9} \\ud83d\\ude00 \u{1f600}\", -0, 0.5e-3, 1E9]}}";
        assert!(read(&mut store, &keys, fine.as_bytes()).is_ok());
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let keys = keys(&[]);
        // The response object is the first level.
        let nested = |n: usize| format!("{{\"data\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        let mut store = Store::new();
        assert!(read(&mut store, &keys, nested(MAX_DEPTH - 1).as_bytes()).is_ok());
        for n in [MAX_DEPTH, 100_000] {
            let mut store = Store::new();
            assert_eq!(
                read(&mut store, &keys, nested(n).as_bytes()).err(),
                Some(ReadError::TooDeep)
            );
        }
        // Every member is held to a limit, not only `data`.
        let errors = format!(
            "{{\"errors\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(read(&mut store, &keys, errors.as_bytes()).is_err());
    }

    /// A small deterministic generator (xorshift), so the differential test needs no crate.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_json(noise: &mut Noise, depth: usize, out: &mut String) {
        const STRINGS: [&str; 12] = [
            "",
            "x",
            "caf\u{e9}",
            "a\\\"b",
            "\\u00e9\\n",
            "\\ud83d\\ude00",
            "\u{1f600}",
            "longer text here",
            // Longer strings, with what needs care after their first words.
            "a string long enough to be searched for its end",
            "a string long enough, then an escape \\t and more",
            "a string long enough, then caf\u{e9} and more text",
            "sixteen bytes..\\\\then a backslash",
        ];
        const NUMBERS: [&str; 8] = [
            "0",
            "-0",
            "12",
            "-3.25",
            "1e5",
            "2E-3",
            "18446744073709551616",
            "0.5",
        ];
        match noise.below(if depth > 4 { 4 } else { 6 }) {
            0 => out.push_str(["null", "true", "false"][noise.below(3)]),
            1 => out.push_str(NUMBERS[noise.below(NUMBERS.len())]),
            2 | 3 => {
                out.push('"');
                out.push_str(STRINGS[noise.below(STRINGS.len())]);
                out.push('"');
            }
            4 => {
                out.push('[');
                for i in 0..noise.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(noise, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..noise.below(4) {
                    if i > 0 {
                        out.push_str(if noise.below(2) == 0 { "," } else { " , " });
                    }
                    out.push_str(["\"k\"", "\"key\"", "\"k2\"", "\"k\\u0032\""][noise.below(4)]);
                    out.push(':');
                    random_json(noise, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    /// Reads generated documents, and copies of them with one byte changed, with both this
    /// reader and serde_json: both accept or both refuse, and what is accepted has the same
    /// structure.
    #[test]
    fn the_reader_agrees_with_serde_json_on_valid_and_mutated_documents() {
        let keys = keys(&["k", "key", "k2"]);
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        const BYTES: &[u8] = b"{}[]\",:\\ 0-.eE+tfnux\x01\xc3\xff";
        for _ in 0..3000 {
            let mut text = String::from("{\"data\":");
            random_json(&mut noise, 0, &mut text);
            text.push('}');
            let mut body = text.into_bytes();
            if noise.below(2) == 0 {
                let at = noise.below(body.len());
                body[at] = BYTES[noise.below(BYTES.len())];
            }
            let mut store = Store::new();
            let ours = read(&mut store, &keys, &body);
            let theirs = serde_json::from_slice::<serde_json::Value>(&body);
            let shown = String::from_utf8_lossy(&body);
            match (ours, theirs) {
                (Ok(parsed), Ok(expected)) => {
                    // (`structure` rebuilds a map, so a key given twice shows its last value,
                    // as serde_json's map does; lookups in the store find the first.)
                    let data = parsed.data.map(|d| structure(&store, &keys, d));
                    let expected = expected.get("data").map(|d| known_keys_only(&keys, d));
                    assert_eq!(data, expected, "{shown}");
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("{shown}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
    }

    /// `value` without the keys the table lacks (the reader drops them).
    fn known_keys_only(keys: &Keys, value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(key, _)| keys.id(key).is_some())
                .map(|(key, v)| (key.clone(), known_keys_only(keys, v)))
                .collect(),
            serde_json::Value::Array(items) => {
                items.iter().map(|v| known_keys_only(keys, v)).collect()
            }
            other => other.clone(),
        }
    }
}
