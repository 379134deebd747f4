//! The reader's tests: kept values, dropped keys, predicted keys, strictness, and agreement
//! with serde_json on generated and mutated documents.
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
    let body = br#"{"data":{"items":[{"a":1,"b":2},{"ab":3,"b":4},{"b":5,"a":6},{"\u0061":7}]}}"#;
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
        serde_json::Value::Array(items) => items.iter().map(|v| known_keys_only(keys, v)).collect(),
        other => other.clone(),
    }
}

/// Strings of every length up to 100 with one special piece at every position (an escape, a
/// control character, invalid or valid UTF-8), as the word-at-a-time and block-at-a-time scans
/// meet them at each offset: accepted and refused exactly as serde_json does.
#[test]
fn string_scans_find_special_bytes_at_every_offset() {
    let keys = keys(&["a"]);
    let pieces: [&[u8]; 6] = [b"\\\"", b"\\\\", b"\x01", b"\xff", b"\xc3\xa9", b"\x1f"];
    for length in 0..100 {
        for at in 0..=length {
            for piece in pieces {
                let mut body = b"{\"data\":{\"a\":\"".to_vec();
                body.extend(std::iter::repeat_n(b'a', at));
                body.extend_from_slice(piece);
                body.extend(std::iter::repeat_n(b'b', length - at));
                body.extend_from_slice(b"\"}}");
                let mut store = Store::new();
                let ours = read(&mut store, &keys, &body)
                    .map(|parsed| parsed.data.map(|d| structure(&store, &keys, d)));
                let theirs = serde_json::from_slice::<serde_json::Value>(&body)
                    .map(|v| v.get("data").cloned());
                let shown = String::from_utf8_lossy(&body);
                match (ours, theirs) {
                    (Ok(data), Ok(expected)) => assert_eq!(data, expected, "{shown}"),
                    (Err(_), Err(_)) => {}
                    (ours, theirs) => panic!("{shown}: ours {ours:?}, serde_json {theirs:?}"),
                }
            }
        }
    }
}
