//! Content negotiation from the `Accept` header (RFC 9110 §12.5.1), reduced to what the router
//! answers with: `application/graphql-response+json`, `application/json`, or a GraphiQL page.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;

use crate::engine::ResponseMediaType;

const GRAPHQL_RESPONSE_JSON: (&str, &str) = ("application", "graphql-response+json");
const JSON: (&str, &str) = ("application", "json");
const HTML: (&str, &str) = ("text", "html");

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
struct MediaRange {
    kind: String,
    subtype: String,
    quality: f32,
    /// `subscriptionSpec=…` (Apollo's multipart subscriptions).
    subscription_spec: bool,
}

impl MediaRange {
    /// How specifically this range matches `media` (2 exact, 1 `type/*`, 0 `*/*`), if at all.
    fn specificity(&self, (kind, subtype): (&str, &str)) -> Option<u8> {
        match (self.kind.as_str(), self.subtype.as_str()) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

/// The parsed `Accept` header(s); empty when absent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accept(Vec<MediaRange>);

impl Accept {
    /// Reads every `Accept` header of a request. Malformed ranges are skipped.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let ranges = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(parse_range)
            .collect();
        Self(ranges)
    }

    /// The quality the client gives `media` and how specific the deciding range is; the most
    /// specific matching range decides.
    fn preference(&self, media: (&str, &str)) -> Option<(f32, u8)> {
        self.0
            .iter()
            .filter_map(|range| range.specificity(media).map(|s| (range.quality, s)))
            .max_by_key(|(_, specificity)| *specificity)
    }

    /// The response media type for a GraphQL response.
    ///
    /// `application/graphql-response+json` when the client accepts it at least as much as
    /// `application/json` (an explicit `application/json` beats a wildcard that merely allows
    /// the other); `application/json` without an `Accept` header (GraphQL over HTTP: treat it
    /// as `application/json`), or when neither is acceptable.
    pub(crate) fn graphql_media_type(&self) -> ResponseMediaType {
        if self.0.is_empty() {
            return ResponseMediaType::Json;
        }
        let graphql = self
            .preference(GRAPHQL_RESPONSE_JSON)
            .filter(|(q, _)| *q > 0.0);
        let json = self.preference(JSON).filter(|(q, _)| *q > 0.0);
        match (graphql, json) {
            (Some(_), None) => ResponseMediaType::GraphQLResponseJson,
            (Some((gq, gs)), Some((jq, js))) if gq > jq || (gq == jq && gs >= js) => {
                ResponseMediaType::GraphQLResponseJson
            }
            _ => ResponseMediaType::Json,
        }
    }

    /// Whether the client asks for Server-Sent Events (`text/event-stream` named).
    pub(crate) fn wants_event_stream(&self) -> bool {
        self.0.iter().any(|r| {
            r.quality > 0.0
                && r.kind.eq_ignore_ascii_case("text")
                && r.subtype.eq_ignore_ascii_case("event-stream")
        })
    }

    /// Whether the client accepts Apollo's multipart subscriptions
    /// (`multipart/mixed;subscriptionSpec=1.0`).
    pub(crate) fn wants_multipart_subscription(&self) -> bool {
        self.0.iter().any(|r| {
            r.quality > 0.0
                && r.subscription_spec
                && r.kind.eq_ignore_ascii_case("multipart")
                && r.subtype.eq_ignore_ascii_case("mixed")
        })
    }

    /// Whether the client named `text/html` explicitly (a browser navigating), not merely
    /// through `*/*`.
    pub(crate) fn wants_html(&self) -> bool {
        self.0
            .iter()
            .any(|range| range.specificity(HTML) == Some(2) && range.quality > 0.0)
    }
}

fn parse_range(text: &str) -> Option<MediaRange> {
    let mut parts = text.split(';');
    let (kind, subtype) = parts.next()?.trim().split_once('/')?;
    let (kind, subtype) = (kind.trim(), subtype.trim());
    if kind.is_empty() || subtype.is_empty() {
        return None;
    }
    let mut quality = 1.0;
    let mut subscription_spec = false;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            quality = value.trim().parse::<f32>().ok()?.clamp(0.0, 1.0);
        } else if name.trim().eq_ignore_ascii_case("subscriptionSpec") {
            subscription_spec = true;
        }
    }
    Some(MediaRange {
        kind: kind.to_owned(),
        subtype: subtype.to_owned(),
        quality,
        subscription_spec,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> Accept {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).expect("valid header"));
        Accept::from_headers(&headers)
    }

    #[test]
    fn no_accept_header_means_json() {
        assert_eq!(
            Accept::from_headers(&HeaderMap::new()).graphql_media_type(),
            ResponseMediaType::Json
        );
    }

    #[test]
    fn graphql_response_json_is_chosen_when_preferred_or_only_allowed() {
        for header in [
            "application/graphql-response+json",
            "application/graphql-response+json, application/json;q=0.9",
            "*/*",
            "application/*",
            "application/json;q=0.5, */*",
        ] {
            assert_eq!(
                accept(header).graphql_media_type(),
                ResponseMediaType::GraphQLResponseJson,
                "{header}"
            );
        }
    }

    #[test]
    fn json_is_chosen_when_asked_for_explicitly() {
        for header in [
            "application/json",
            "application/json, */*",
            "application/json, application/graphql-response+json;q=0.5",
            "application/graphql-response+json;q=0, */*",
            "text/plain",
            "application/json;q=nonsense",
        ] {
            assert_eq!(
                accept(header).graphql_media_type(),
                ResponseMediaType::Json,
                "{header}"
            );
        }
    }

    #[test]
    fn html_must_be_named_explicitly() {
        assert!(accept("text/html,application/xhtml+xml,*/*;q=0.8").wants_html());
        assert!(!accept("*/*").wants_html());
        assert!(!accept("text/html;q=0").wants_html());
    }
}
