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
        Self {
            slots: vec![KeyId::NONE; parents * PREDICTED_POSITIONS],
            parents,
            patterns,
        }
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
    let parsed = reader.response().map_err(|fail| *fail)?;
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return Err(*reader.error("trailing characters"));
    }
    Ok(parsed)
}

/// A reading error, boxed so that a result of [`Value`] stays as small as the value (it is
/// returned for every value read).
type Fail = Box<ReadError>;

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

/// Whether none of `block`'s bytes ends a plain run of string text (a quote, a backslash or a
/// control character), and its bytes or-ed (the high bit says whether UTF-8 must be checked).
/// Written so that the compiler checks the block with a few vector instructions.
#[inline]
fn plain_block(block: &[u8; 32]) -> Option<u64> {
    let mut special = 0u8;
    for &byte in block {
        special |= u8::from(byte == b'"') | u8::from(byte == b'\\') | u8::from(byte < 0x20);
    }
    if special != 0 {
        return None;
    }
    let mut seen = 0;
    for word in block.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        seen |= u64::from_le_bytes(bytes);
    }
    Some(seen)
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> Fail {
        Box::new(ReadError::Syntax { at: self.pos, what })
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
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Fail> {
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
    fn open(&mut self, close: u8) -> Result<bool, Fail> {
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
    fn end_or_comma(&mut self, close: u8, what: &'static str) -> Result<bool, Fail> {
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
    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Box::new(ReadError::TooDeep));
        }
        Ok(())
    }

    /// The response object: `data` into the store, `errors` through serde_json, anything else
    /// checked and skipped. A body that is JSON but not an object reads as neither.
    fn response(&mut self) -> Result<Parsed, Fail> {
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
    fn member<T: serde::de::DeserializeOwned>(&mut self, member: &'static str) -> Result<T, Fail> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                self.pos += stream.byte_offset();
                Ok(value)
            }
            Some(Err(err)) => Err(Box::new(ReadError::Member {
                member,
                message: err.to_string(),
            })),
            None => Err(self.error("expected a value")),
        }
    }

    /// A value; `key` is the key it sits under (for predicting the keys of its objects).
    fn value(&mut self, key: KeyId) -> Result<Value, Fail> {
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

    /// A string value, at its opening quote. (Always inlined: see `object`.)
    #[inline(always)]
    fn string(&mut self) -> Result<Value, Fail> {
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
    fn literal(&mut self, text: &[u8]) -> Result<Span, Fail> {
        if !self.bytes[self.pos..].starts_with(text) {
            return Err(self.error("invalid literal"));
        }
        let start = self.pos;
        self.pos += text.len();
        Ok(Span::new(self.buf, start, self.pos))
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as text. (Always inlined: see
    /// `object`.)
    #[inline(always)]
    fn number(&mut self) -> Result<Value, Fail> {
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
            self.check_range(start)?;
        }
        Ok(Value::Number(Span::new(self.buf, start, self.pos)))
    }

    /// Whether the number from `start` to here fits a double.
    #[cold]
    fn check_range(&self, start: usize) -> Result<(), Fail> {
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(Box::new(ReadError::Syntax {
                at: start,
                what: "number out of range",
            }));
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), Fail> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("invalid number"));
        }
        self.digits();
        Ok(())
    }

    fn object(&mut self, parent: KeyId) -> Result<Value, Fail> {
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
                let before = self.pos;
                self.skip_ws();
                // `"key":value` exactly as a client would get it: only an escape in the key or
                // a space around the colon makes the text longer. A predicted key read with
                // its colon was read exactly so (`"` and the key's `name":` pattern).
                let exact = if colon {
                    self.pos == before
                } else {
                    self.pos - start == self.keys.member_len(key)
                };
                let text = if exact { start as u32 } else { Member::NO_TEXT };
                // Strings and numbers, the most common values, are read here rather than
                // through `value`: a value returned from that call travels through memory,
                // and loading it whole from the parts just stored stalls.
                let value = match self.peek() {
                    Some(b'"') => self.string()?,
                    Some(b'-' | b'0'..=b'9') => self.number()?,
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
        let object = self
            .store
            .push_object(&self.fields[base..], Span::new(self.buf, open, self.pos));
        self.fields.truncate(base);
        Ok(Value::Object(object))
    }

    fn list(&mut self, key: KeyId) -> Result<Value, Fail> {
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
        let list = self.store.push_list(&self.items[base..]);
        self.items.truncate(base);
        Ok(Value::List(list))
    }

    /// An object key (after its opening quote): its id, or [`KeyId::NONE`] when the plan has
    /// no such key, and whether the colon after it was read too.
    #[inline]
    fn key(&mut self, parent: KeyId, index: usize) -> Result<(KeyId, bool), Fail> {
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
    fn string_end(&mut self) -> Result<bool, Fail> {
        let start = self.pos;
        let mut escaped = false;
        // Every byte looked at, or-ed: the high bit says whether UTF-8 must be checked.
        let mut seen = 0u64;
        loop {
            // Plain words in a row: after two, the string is likely long (a description, a
            // body), and the rest is read 32 bytes at a time.
            let mut run = 0;
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
                run += 1;
                if run == 2 {
                    // Up to the block holding the string's end, which the words then find.
                    while let Some(block) = self.bytes.get(self.pos..self.pos + 32)
                        && let Ok(block) = <&[u8; 32]>::try_from(block)
                        && let Some(bytes) = plain_block(block)
                    {
                        seen |= bytes;
                        self.pos += 32;
                    }
                }
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
            return Err(Box::new(ReadError::Syntax {
                at: start,
                what: "invalid UTF-8 in string",
            }));
        }
        Ok(escaped)
    }

    /// An escape, at its backslash.
    fn escape(&mut self) -> Result<(), Fail> {
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

    fn hex4(&self, at: usize) -> Result<u32, Fail> {
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
mod tests;
