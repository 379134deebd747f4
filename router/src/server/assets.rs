//! Web pages embedded in the binary: GraphiQL here, and any other bundle a binary embeds with
//! `tessera-webbuild` (the example's dashboard).
//!
//! Each file is served as built (identity), gzip or brotli, as the request's `Accept-Encoding`
//! allows; hashed file names are cached for a year (`immutable`), pages are revalidated
//! (`no-cache` and an `ETag`). Pages carry a Content-Security-Policy that lets them load and
//! connect only to the origin that served them.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// One embedded file, in every encoding it is served in.
#[derive(Debug)]
pub struct Asset {
    /// Its file name (the last segment of its URL).
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A hashed name: its contents never change.
    pub immutable: bool,
    /// Its entity tag, quoted.
    pub etag: &'static str,
    /// The bytes as built.
    pub identity: &'static [u8],
    /// gzip-compressed.
    pub gzip: &'static [u8],
    /// brotli-compressed.
    pub br: &'static [u8],
}

/// GraphiQL's files (`router/web`), served under [`GRAPHIQL_PREFIX`]; empty when the binary
/// was built with `TESSERA_SKIP_WEB_BUILD`.
pub static GRAPHIQL: &[Asset] = include!(concat!(env!("OUT_DIR"), "/graphiql.rs"));

/// Where GraphiQL's files are served.
pub const GRAPHIQL_PREFIX: &str = "/_tessera/graphiql/";

/// The policy of every embedded page: scripts, styles, images, fonts and connections (HTTP and
/// WebSocket) only from the page's own origin (`data:` for inlined images and fonts), no
/// inline script or style, no plugins, no framing.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const YEAR: &str = "public, max-age=31536000, immutable";

/// The bundle's file called `name`.
pub fn find(bundle: &'static [Asset], name: &str) -> Option<&'static Asset> {
    bundle.iter().find(|asset| asset.name == name)
}

/// The bundle's page (`index.html`), or a short page saying it was not built in.
pub fn page(bundle: &'static [Asset], what: &str, request: &HeaderMap) -> Response {
    match find(bundle, "index.html") {
        Some(index) => serve(index, request),
        None => (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<!doctype html><title>{what}</title><p>{what} is not built into this binary \
                 (it was built with TESSERA_SKIP_WEB_BUILD set).</p>"
            )),
        )
            .into_response(),
    }
}

/// `asset` in the best encoding `request` accepts, or 304 when the client's copy is current.
pub fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable { YEAR } else { "no-cache" }),
    );
    if asset.content_type.starts_with("text/html") {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if matches_etag(request, asset.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let (coding, bytes) = encoding(asset, request);
    if let Some(coding) = coding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    (headers, bytes).into_response()
}

/// The smallest encoding of `asset` that `request` accepts.
fn encoding(asset: &'static Asset, request: &HeaderMap) -> (Option<&'static str>, &'static [u8]) {
    let mut best: (Option<&'static str>, &'static [u8]) = (None, asset.identity);
    for (coding, bytes) in [("br", asset.br), ("gzip", asset.gzip)] {
        if bytes.len() < best.1.len() && accepts(request, coding) {
            best = (Some(coding), bytes);
        }
    }
    best
}

/// Whether `Accept-Encoding` allows `coding`: named with a non-zero weight, or covered by `*`.
fn accepts(request: &HeaderMap, coding: &str) -> bool {
    let mut wildcard = false;
    for value in request.get_all(axum::http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("").trim();
            let allowed = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
            if name.eq_ignore_ascii_case(coding) {
                return allowed;
            }
            if name == "*" {
                wildcard = allowed;
            }
        }
    }
    wildcard
}

fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    static ONE: Asset = Asset {
        name: "app-1234.js",
        content_type: "text/javascript; charset=utf-8",
        immutable: true,
        etag: "\"1234\"",
        identity: b"console.log('a long enough script to compress')",
        gzip: b"gz",
        br: b"b",
    };

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_smallest_accepted_encoding_is_served() {
        assert_eq!(encoding(&ONE, &request(&[])).0, None);
        let gzip = request(&[("accept-encoding", "gzip, deflate")]);
        assert_eq!(encoding(&ONE, &gzip).0, Some("gzip"));
        let both = request(&[("accept-encoding", "gzip, deflate, br, zstd")]);
        assert_eq!(encoding(&ONE, &both).0, Some("br"));
        let refused = request(&[("accept-encoding", "br;q=0, gzip;q=0.5")]);
        assert_eq!(encoding(&ONE, &refused).0, Some("gzip"));
        let wildcard = request(&[("accept-encoding", "*")]);
        assert_eq!(encoding(&ONE, &wildcard).0, Some("br"));
        let nothing = request(&[("accept-encoding", "identity, *;q=0")]);
        assert_eq!(encoding(&ONE, &nothing).0, None);
    }

    #[test]
    fn hashed_files_are_cached_for_good_and_revalidated_by_etag() {
        let response = serve(&ONE, &request(&[("accept-encoding", "gzip")]));
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[CACHE_CONTROL], YEAR);
        assert_eq!(headers[CONTENT_ENCODING], "gzip");
        assert_eq!(headers[VARY], "accept-encoding");
        assert!(headers.get(CONTENT_SECURITY_POLICY).is_none());
        let again = serve(&ONE, &request(&[("if-none-match", "W/\"1234\"")]));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn graphiql_is_embedded_with_its_page_under_a_strict_policy() {
        let Some(index) = find(GRAPHIQL, "index.html") else {
            // Built with TESSERA_SKIP_WEB_BUILD: nothing to check, and the page says so.
            let response = page(GRAPHIQL, "GraphiQL", &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            return;
        };
        let response = serve(index, &HeaderMap::new());
        assert_eq!(response.headers()[CONTENT_SECURITY_POLICY], PAGE_CSP);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        let html = std::str::from_utf8(index.identity).expect("utf-8");
        for asset in GRAPHIQL.iter().filter(|asset| asset.immutable) {
            if asset.name.ends_with(".js") || asset.name.ends_with(".css") {
                assert!(
                    html.contains(&format!("{GRAPHIQL_PREFIX}{}", asset.name)),
                    "the page links {}",
                    asset.name
                );
            }
        }
    }
}
