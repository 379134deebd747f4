//! The data a run gathers, as a tree whose strings and object keys point into the subgraphs'
//! response bytes.
//!
//! Parsing a response (with sonic-rs's serde deserializer, through seeds of our own) allocates only the lists and
//! objects; a string without escapes is kept as a [`Span`] of the response and written back
//! verbatim, so neither parsing nor writing copies or re-escapes it. Object keys are compared
//! as bytes by a linear scan: objects in GraphQL responses are small, and this is cheaper than
//! hashing every key.

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The buffer number of [`Texts::side`].
const SIDE: u32 = u32::MAX;

/// How deeply lists and objects may nest in a subgraph response: deeper is refused as invalid
/// before recursion (here, and in merging and shaping) could exhaust a 2 MiB stack, even in a
/// debug build. (serde_json's default limit is the same.)
pub const MAX_DEPTH: usize = 128;

/// A piece of text: a range of one of the run's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    buf: u32,
    start: u32,
    end: u32,
}

/// An object's entries: keys with values, in response order.
pub type Entries = [(Span, Node)];

/// One JSON value of the gathered data.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A larger non-negative integer.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string whose text needs no escaping: it is written verbatim between quotes.
    Str(Span),
    /// A string that had escapes: its decoded text, escaped again when written.
    Escaped(Span),
    /// A list.
    List(Vec<Node>),
    /// An object: keys with values, in response order.
    Object(Vec<(Span, Node)>),
}

/// The text behind the spans of one run: the subgraphs' response bodies, and a side buffer for
/// decoded strings and keys the router writes itself.
#[derive(Debug, Default)]
pub struct Texts {
    bufs: Vec<Bytes>,
    side: Vec<u8>,
}

impl Texts {
    /// The bytes of `span` (decoded text; a [`Node::Str`]'s is also its JSON form).
    pub fn get(&self, span: Span) -> &[u8] {
        let buf: &[u8] = if span.buf == SIDE {
            &self.side
        } else {
            self.bufs.get(span.buf as usize).map_or(&[], |b| &b[..])
        };
        buf.get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    /// Stores `text` in the side buffer.
    pub fn intern(&mut self, text: &str) -> Span {
        side_span(&mut self.side, text).unwrap_or(Span {
            buf: SIDE,
            start: 0,
            end: 0,
        })
    }

    /// The text of a string node (`None` for other nodes).
    pub fn str_of(&self, node: &Node) -> Option<&[u8]> {
        match node {
            Node::Str(span) | Node::Escaped(span) => Some(self.get(*span)),
            _ => None,
        }
    }

    /// The value of `key` in an object's entries.
    pub fn field<'n>(&self, entries: &'n Entries, key: &str) -> Option<&'n Node> {
        self.position(entries, key).map(|index| &entries[index].1)
    }

    /// Where `key` is among an object's entries.
    pub fn position(&self, entries: &Entries, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        entries.iter().position(|(k, _)| self.is(*k, key))
    }

    /// [`position`](Self::position), looking at index `hint` first.
    pub fn position_from(&self, entries: &Entries, key: &str, hint: usize) -> Option<usize> {
        match entries.get(hint) {
            Some((k, _)) if self.is(*k, key.as_bytes()) => Some(hint),
            _ => self.position(entries, key),
        }
    }

    /// Whether the text of `span` is `text` (lengths compared first).
    fn is(&self, span: Span, text: &[u8]) -> bool {
        (span.end - span.start) as usize == text.len() && self.get(span) == text
    }

    /// A key as text (for error paths).
    pub fn key_string(&self, span: Span) -> String {
        String::from_utf8_lossy(self.get(span)).into_owned()
    }

    /// Appends `node` as JSON.
    pub fn write(&self, out: &mut Vec<u8>, node: &Node) {
        match node {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Node::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Node::Float(n) => {
                let _ = serde_json::to_writer(&mut *out, n);
            }
            Node::Str(span) => {
                out.push(b'"');
                out.extend_from_slice(self.get(*span));
                out.push(b'"');
            }
            Node::Escaped(span) => {
                let text = std::str::from_utf8(self.get(*span)).unwrap_or_default();
                let _ = serde_json::to_writer(&mut *out, text);
            }
            Node::List(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    self.write(out, item);
                }
                out.push(b']');
            }
            Node::Object(entries) => {
                out.push(b'{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    // A key borrowed from a response is its own JSON text; one in the side
                    // buffer is decoded text.
                    let key = if key.buf == SIDE {
                        Node::Escaped(*key)
                    } else {
                        Node::Str(*key)
                    };
                    self.write(out, &key);
                    out.push(b':');
                    self.write(out, value);
                }
                out.push(b'}');
            }
        }
    }

    /// `node` as a `serde_json::Value` (for the rare places that need one).
    pub fn to_value(&self, node: &Node) -> serde_json::Value {
        let mut out = Vec::new();
        self.write(&mut out, node);
        serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
    }

    /// Merges `source` into `target`: objects key by key, lists of one length element by
    /// element, anything else replaced; a `null` never replaces an object.
    pub fn merge(&self, target: &mut Node, source: Node) {
        match (target, source) {
            (Node::Object(target), Node::Object(source)) => {
                target.reserve(source.len());
                for (key, value) in source {
                    let key_text = self.get(key);
                    match target.iter_mut().find(|(k, _)| self.is(*k, key_text)) {
                        Some((_, existing)) => self.merge(existing, value),
                        None => target.push((key, value)),
                    }
                }
            }
            (Node::List(target), Node::List(source)) if target.len() == source.len() => {
                for (t, s) in target.iter_mut().zip(source) {
                    self.merge(t, s);
                }
            }
            (Node::Object(_), Node::Null) => {}
            (target, source) => *target = source,
        }
    }

    /// Parses a subgraph's response body: `data` as a tree, `errors` as JSON.
    pub fn parse_response(&mut self, body: Bytes) -> Result<Parsed, sonic_rs::Error> {
        let Ok(buf) = u32::try_from(self.bufs.len()) else {
            return Err(de::Error::custom("too many responses"));
        };
        if u32::try_from(body.len()).is_err() {
            return Err(de::Error::custom("response too large"));
        }
        self.bufs.push(body.clone());
        let mut ctx = Ctx {
            base: body.as_ptr() as usize,
            len: body.len(),
            buf,
            side: &mut self.side,
            depth: 0,
        };
        let mut deserializer = sonic_rs::Deserializer::from_slice(&body);
        let root = NodeSeed(&mut ctx).deserialize(&mut deserializer)?;
        deserializer.end()?;
        let Node::Object(entries) = root else {
            return Ok(Parsed::default());
        };
        let mut parsed = Parsed::default();
        for (key, value) in entries {
            match self.get(key) {
                b"data" => parsed.data = Some(value),
                b"errors" => parsed.errors = Some(self.to_value(&value)),
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// A subgraph response, parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `data`, when the key is present (it may be `null`).
    pub data: Option<Node>,
    /// `errors`, when present.
    pub errors: Option<serde_json::Value>,
}

fn side_span(side: &mut Vec<u8>, text: &str) -> Option<Span> {
    let start = u32::try_from(side.len()).ok()?;
    let end = u32::try_from(side.len() + text.len()).ok()?;
    side.extend_from_slice(text.as_bytes());
    Some(Span {
        buf: SIDE,
        start,
        end,
    })
}

/// Where the parser is: the body being parsed (to turn borrowed strings into spans) and the
/// side buffer (for strings that had escapes).
struct Ctx<'s> {
    base: usize,
    len: usize,
    buf: u32,
    side: &'s mut Vec<u8>,
    depth: usize,
}

impl Ctx<'_> {
    /// Enters a list or an object.
    fn descend<E: de::Error>(&mut self) -> Result<(), E> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(E::custom("response nested too deeply"));
        }
        Ok(())
    }

    /// A span for `text`: a range of the body when it was borrowed from it, else a copy in the
    /// side buffer. (`verbatim` tells which.)
    fn span<E: de::Error>(&mut self, text: &str, borrowed: bool) -> Result<(Span, bool), E> {
        let address = text.as_ptr() as usize;
        if borrowed && address >= self.base && address + text.len() <= self.base + self.len {
            let start = address - self.base;
            // The body's length fits u32 (checked before parsing).
            let span = Span {
                buf: self.buf,
                start: start as u32,
                end: (start + text.len()) as u32,
            };
            return Ok((span, true));
        }
        side_span(self.side, text)
            .map(|span| (span, false))
            .ok_or_else(|| E::custom("response too large"))
    }
}

struct NodeSeed<'c, 's>(&'c mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_> {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Node, E> {
        // The parser lends a string only when it has no escapes (and it refuses control
        // characters and invalid UTF-8), so the text is its own JSON form.
        let (span, verbatim) = self.0.span(v, true)?;
        Ok(if verbatim {
            Node::Str(span)
        } else {
            Node::Escaped(span)
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        let (span, _) = self.0.span(v, false)?;
        Ok(Node::Escaped(span))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.0.descend()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(NodeSeed(&mut *self.0))? {
            items.push(item);
        }
        self.0.depth -= 1;
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.0.descend()?;
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key_seed(KeySeed(&mut *self.0))? {
            let value = map.next_value_seed(NodeSeed(&mut *self.0))?;
            entries.push((key, value));
        }
        self.0.depth -= 1;
        Ok(Node::Object(entries))
    }
}

struct KeySeed<'c, 's>(&'c mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Span;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Span, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Span;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Span, E> {
        self.0.span(v, true).map(|(span, _)| span)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        self.0.span(v, false).map(|(span, _)| span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(texts: &mut Texts, body: &str) -> Parsed {
        texts
            .parse_response(Bytes::from(body.to_owned()))
            .expect("valid JSON")
    }

    #[test]
    fn strings_and_keys_round_trip_with_and_without_escapes() {
        let mut texts = Texts::default();
        let body = r#"{"data":{"a":"plain","b\"c":"tab\there","n":-3,"u":18446744073709551615,"f":1.5,"l":[true,null,{}]},"extensions":{"x":1}}"#;
        let parsed = parse(&mut texts, body);
        let data = parsed.data.expect("data");
        let mut out = Vec::new();
        texts.write(&mut out, &data);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":"plain","b\"c":"tab\there","n":-3,"u":18446744073709551615,"f":1.5,"l":[true,null,{}]}"#
        );
        let Node::Object(entries) = &data else {
            panic!("an object")
        };
        assert!(matches!(entries[0].1, Node::Str(_)));
        assert!(matches!(entries[1].1, Node::Escaped(_)));
        assert_eq!(texts.get(entries[1].0), b"b\"c");
        assert_eq!(
            texts.field(entries, "a").and_then(|n| texts.str_of(n)),
            Some(&b"plain"[..])
        );
        assert!(parsed.errors.is_none());
    }

    #[test]
    fn responses_that_are_not_objects_or_not_json() {
        let mut texts = Texts::default();
        let list = parse(&mut texts, "[1,2]");
        assert!(list.data.is_none() && list.errors.is_none());
        assert!(
            parse(&mut texts, r#"{"errors":[{"message":"x"}]}"#)
                .errors
                .is_some()
        );
        assert!(
            texts
                .parse_response(Bytes::from_static(b"{\"data\":"))
                .is_err()
        );
        assert!(
            texts
                .parse_response(Bytes::from_static(b"{} trailing"))
                .is_err()
        );
    }

    #[test]
    fn invalid_json_is_refused_so_kept_strings_are_safe_to_write_verbatim() {
        let mut texts = Texts::default();
        for body in [
            &b"{\"data\":{\"a\":\"x\ny\"}}"[..],
            b"{\"data\":{\"a\":\"x\xffy\"}}",
            b"{\"data\":{\"a\":01}}",
            b"{\"data\":{\"a\":1,}}",
            b"{\"data\":{\"a\":\"\\ud800\"}}",
        ] {
            assert!(
                texts.parse_response(Bytes::from(body.to_vec())).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let mut texts = Texts::default();
        // The response object is the first level.
        let nested = |n: usize| format!("{{\"data\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(
            texts
                .parse_response(Bytes::from(nested(MAX_DEPTH - 1)))
                .is_ok()
        );
        for n in [MAX_DEPTH, 100_000] {
            assert!(texts.parse_response(Bytes::from(nested(n))).is_err());
        }
        // Every member is held to the same limit, not only `data`.
        let errors = format!(
            "{{\"errors\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(texts.parse_response(Bytes::from(errors)).is_err());
    }

    #[test]
    fn merge_joins_objects_and_equal_lists() {
        let mut texts = Texts::default();
        let mut target = parse(&mut texts, r#"{"data":{"a":[{"x":1}],"b":{"c":1}}}"#)
            .data
            .expect("data");
        let source = parse(
            &mut texts,
            r#"{"data":{"a":[{"y":2}],"b":{"d":2},"e":null}}"#,
        )
        .data
        .expect("data");
        texts.merge(&mut target, source);
        let mut out = Vec::new();
        texts.write(&mut out, &target);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":[{"x":1,"y":2}],"b":{"c":1,"d":2},"e":null}"#
        );
    }
}
