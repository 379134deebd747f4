//! Writing JSON text fast: the two primitives the planner (representations written as text
//! with holes, response-key tables) and the executor (request bodies, shaped responses) share.

/// Appends a GraphQL name as a JSON string (names never need escaping).
#[inline]
pub fn write_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// Appends `source[start..end]` to `out`. A piece of at most 16 bytes with 16 bytes of `source`
/// from its start is copied as one fixed-size block and the excess cut off: for the short keys,
/// numbers and strings most responses are made of, that is much cheaper than a call to
/// `memcpy`.
#[inline]
pub fn append(out: &mut Vec<u8>, source: &[u8], start: usize, end: usize) {
    let len = end.saturating_sub(start);
    if len <= 16
        && let Some(block) = source.get(start..start + 16)
        && let Ok(block) = <&[u8; 16]>::try_from(block)
    {
        let at = out.len();
        out.extend_from_slice(block);
        out.truncate(at + len);
        return;
    }
    if let Some(piece) = source.get(start..end) {
        out.extend_from_slice(piece);
    }
}
