//! Which client headers reach the subgraphs.
//!
//! Rules come from the router's YAML config (`headers:`, in the shape users of other routers
//! know) and from flags; they are compiled once into a [`HeaderPolicy`] and applied to each
//! client request, giving every subgraph the list of headers its fetches carry
//! ([`SubgraphHeaders`]).
//!
//! ```yaml
//! headers:
//!   all:                      # every subgraph
//!     request:
//!       - propagate: { named: x-user-id }
//!       - propagate: { matching: "^x-tenant-" }
//!       - insert: { name: x-from-router, value: tessera }
//!   subgraphs:
//!     accounts:
//!       request:
//!         - propagate: { named: authorization, rename: x-auth, default: none }
//!         - remove: { named: x-tenant-debug }
//! ```
//!
//! Rules apply in order, those for all subgraphs first: `propagate` copies client headers,
//! `insert` adds a fixed one, `remove` takes out what earlier rules added. `x-request-id`,
//! `traceparent` and `tracestate` are propagated by default, so one request can be followed
//! through every subgraph's log. Hop-by-hop headers and those the router sets itself
//! (`content-type`, `content-length`, `accept`, `host`, WebSocket handshake headers) are never
//! forwarded, whatever the rules say.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// One header sent to a subgraph.
pub type Header = (HeaderName, HeaderValue);

/// Headers sent with every request to one subgraph: sorted by name (then value), so two
/// requests with the same headers compare equal (de-duplication keys on them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HeaderList(Vec<Header>);

impl HeaderList {
    /// The headers, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Whether no header is sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The headers that make two requests' answers differ: all but the request id and trace
    /// context, which are per request. Sharing (de-duplication, one upstream subscription for
    /// identical client subscriptions) compares these.
    pub fn identity(&self) -> HeaderList {
        HeaderList(
            self.0
                .iter()
                .filter(|(name, _)| !DEFAULT_PROPAGATED.contains(&name.as_str()))
                .cloned()
                .collect(),
        )
    }

    fn from_unsorted(mut headers: Vec<Header>) -> Self {
        headers.sort_by(|a, b| {
            a.0.as_str()
                .cmp(b.0.as_str())
                .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
        });
        Self(headers)
    }
}

/// What the router's YAML `headers:` section holds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Rules for every subgraph.
    #[serde(default)]
    pub all: HeaderScope,
    /// Rules for one subgraph each, applied after `all`'s.
    #[serde(default)]
    pub subgraphs: BTreeMap<String, HeaderScope>,
}

/// The rules of one scope.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderScope {
    /// Rules for the headers of requests to subgraphs.
    #[serde(default)]
    pub request: Vec<HeaderRule>,
}

/// One rule: exactly one of its members is set (`- propagate: {…}` in YAML).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// Copy client headers.
    pub propagate: Option<Propagate>,
    /// Add a fixed header.
    pub insert: Option<Insert>,
    /// Take out headers earlier rules added.
    pub remove: Option<Select>,
}

/// `propagate`: by name (optionally renamed, with a default when the client sent none), or
/// every header whose name matches a regular expression.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Propagate {
    /// The header's name.
    pub named: Option<String>,
    /// A regular expression on header names (lower case).
    pub matching: Option<String>,
    /// Send it under this name instead (only with `named`).
    pub rename: Option<String>,
    /// Send this value when the client sent none (only with `named`).
    pub default: Option<String>,
}

/// `insert`: a header with a fixed value.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Insert {
    /// The header's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `remove`: by name or by a regular expression on names.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// The header's name.
    pub named: Option<String>,
    /// A regular expression on header names (lower case).
    pub matching: Option<String>,
}

/// Why header rules could not be compiled.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum HeaderConfigError {
    /// A header name or value is not valid HTTP.
    #[error("invalid header {0:?}: {1}")]
    Invalid(String, String),
    /// A regular expression does not compile.
    #[error("invalid regular expression {0:?}: {1}")]
    Regex(String, String),
    /// A rule names neither or both of `named` and `matching`, or renames a regex.
    #[error("{0}")]
    Shape(String),
}

/// Headers never sent to a subgraph: hop-by-hop ones (RFC 9110 §7.6.1) and those the router
/// writes itself.
const NEVER_FORWARDED: [&str; 17] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "content-encoding",
    "sec-websocket-key",
    "sec-websocket-protocol",
];

/// Propagated unless a rule removes them: request ids and W3C trace context.
pub const DEFAULT_PROPAGATED: [&str; 3] = ["x-request-id", "traceparent", "tracestate"];

#[derive(Debug, Clone)]
enum Compiled {
    PropagateNamed {
        name: HeaderName,
        rename: Option<HeaderName>,
        default: Option<HeaderValue>,
    },
    PropagateMatching(regex::Regex),
    Insert(HeaderName, HeaderValue),
    RemoveNamed(HeaderName),
    RemoveMatching(regex::Regex),
}

/// Compiled rules: which headers each subgraph gets from a client request.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    all: Arc<[Compiled]>,
    /// Per subgraph: `all`'s rules followed by its own.
    subgraphs: BTreeMap<String, Arc<[Compiled]>>,
}

impl Default for HeaderPolicy {
    /// Only the default propagation.
    fn default() -> Self {
        Self::new(&HeadersConfig::default()).expect("the default rules are valid")
    }
}

impl HeaderPolicy {
    /// Compiles `config`, after the default propagation rules.
    pub fn new(config: &HeadersConfig) -> Result<Self, HeaderConfigError> {
        let mut all: Vec<Compiled> = DEFAULT_PROPAGATED
            .iter()
            .map(|name| Compiled::PropagateNamed {
                name: HeaderName::from_static(name),
                rename: None,
                default: None,
            })
            .collect();
        for rule in &config.all.request {
            all.push(compile(rule)?);
        }
        let mut subgraphs = BTreeMap::new();
        for (name, scope) in &config.subgraphs {
            let mut rules = all.clone();
            for rule in &scope.request {
                rules.push(compile(rule)?);
            }
            subgraphs.insert(name.clone(), Arc::from(rules));
        }
        Ok(Self {
            all: Arc::from(all),
            subgraphs,
        })
    }

    /// These rules, then `propagate` of each header in `names` for every subgraph (the
    /// `--propagate-header` flag).
    pub fn with_propagated(
        config: &HeadersConfig,
        names: &[String],
    ) -> Result<Self, HeaderConfigError> {
        let mut config = config.clone();
        for name in names {
            config.all.request.push(HeaderRule {
                propagate: Some(Propagate {
                    named: Some(name.clone()),
                    ..Propagate::default()
                }),
                ..HeaderRule::default()
            });
        }
        Self::new(&config)
    }

    /// The headers of `client` that some rule may pass on, copied into memory of their own.
    ///
    /// A long-lived stream keeps this instead of the request's headers: those share the
    /// connection's whole read buffer, and most of them (cookies, user agent, WebSocket keys)
    /// no rule ever reads.
    pub fn retain(&self, client: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::new();
        for (name, value) in client {
            if !NEVER_FORWARDED.contains(&name.as_str()) && self.reads(name) {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_str().as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) else {
                    continue;
                };
                kept.append(name, value);
            }
        }
        kept
    }

    /// Whether some rule, for some subgraph, passes on header `name`.
    fn reads(&self, name: &HeaderName) -> bool {
        std::iter::once(&self.all)
            .chain(self.subgraphs.values())
            .flat_map(|rules| rules.iter())
            .any(|rule| match rule {
                Compiled::PropagateNamed { name: read, .. } => read == name,
                Compiled::PropagateMatching(regex) => regex.is_match(name.as_str()),
                _ => false,
            })
    }

    /// The headers subgraph `subgraph` gets for a client request with `client` headers.
    pub fn headers_for(&self, subgraph: &str, client: &HeaderMap) -> HeaderList {
        let rules = self.subgraphs.get(subgraph).unwrap_or(&self.all);
        apply(rules, client)
    }

    /// The headers of every subgraph in `names` (in that order), sharing one list between
    /// subgraphs without rules of their own.
    pub fn for_request<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        client: &HeaderMap,
    ) -> SubgraphHeaders {
        let mut common: Option<Arc<HeaderList>> = None;
        let lists = names
            .into_iter()
            .map(|name| match self.subgraphs.get(name) {
                Some(rules) => Arc::new(apply(rules, client)),
                None => common
                    .get_or_insert_with(|| Arc::new(apply(&self.all, client)))
                    .clone(),
            })
            .collect();
        SubgraphHeaders(lists)
    }
}

/// The headers of one client request, per subgraph (indexed like the supergraph's subgraphs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SubgraphHeaders(Vec<Arc<HeaderList>>);

impl SubgraphHeaders {
    /// Subgraph `index`'s headers (none for an index out of range).
    pub fn get(&self, index: usize) -> &HeaderList {
        static EMPTY: HeaderList = HeaderList(Vec::new());
        self.0.get(index).map_or(&EMPTY, |list| list)
    }

    /// Every subgraph's [`HeaderList::identity`].
    pub fn identity(&self) -> SubgraphHeaders {
        SubgraphHeaders(
            self.0
                .iter()
                .map(|list| Arc::new(list.identity()))
                .collect(),
        )
    }
}

fn apply(rules: &[Compiled], client: &HeaderMap) -> HeaderList {
    let mut out: Vec<Header> = Vec::new();
    for rule in rules {
        match rule {
            Compiled::PropagateNamed {
                name,
                rename,
                default,
            } => {
                let target = rename.as_ref().unwrap_or(name);
                let mut found = false;
                for value in client.get_all(name) {
                    out.push((target.clone(), value.clone()));
                    found = true;
                }
                if let (false, Some(default)) = (found, default) {
                    out.push((target.clone(), default.clone()));
                }
            }
            Compiled::PropagateMatching(regex) => {
                for (name, value) in client {
                    if regex.is_match(name.as_str()) {
                        out.push((name.clone(), value.clone()));
                    }
                }
            }
            Compiled::Insert(name, value) => {
                out.retain(|(n, _)| n != name);
                out.push((name.clone(), value.clone()));
            }
            Compiled::RemoveNamed(name) => out.retain(|(n, _)| n != name),
            Compiled::RemoveMatching(regex) => out.retain(|(n, _)| !regex.is_match(n.as_str())),
        }
    }
    out.retain(|(name, _)| !NEVER_FORWARDED.contains(&name.as_str()));
    // A header propagated by two rules is sent once.
    let mut list = HeaderList::from_unsorted(out);
    list.0.dedup();
    list
}

fn header_name(text: &str) -> Result<HeaderName, HeaderConfigError> {
    HeaderName::from_bytes(text.trim().to_ascii_lowercase().as_bytes())
        .map_err(|err| HeaderConfigError::Invalid(text.to_owned(), err.to_string()))
}

fn header_value(name: &str, text: &str) -> Result<HeaderValue, HeaderConfigError> {
    HeaderValue::from_str(text)
        .map_err(|err| HeaderConfigError::Invalid(name.to_owned(), err.to_string()))
}

fn regex(text: &str) -> Result<regex::Regex, HeaderConfigError> {
    regex::RegexBuilder::new(text)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|err| HeaderConfigError::Regex(text.to_owned(), err.to_string()))
}

fn compile(rule: &HeaderRule) -> Result<Compiled, HeaderConfigError> {
    match (&rule.propagate, &rule.insert, &rule.remove) {
        (Some(p), None, None) => match (&p.named, &p.matching) {
            (Some(named), None) => Ok(Compiled::PropagateNamed {
                name: header_name(named)?,
                rename: p.rename.as_deref().map(header_name).transpose()?,
                default: p
                    .default
                    .as_deref()
                    .map(|v| header_value(named, v))
                    .transpose()?,
            }),
            (None, Some(matching)) if p.rename.is_none() && p.default.is_none() => {
                Ok(Compiled::PropagateMatching(regex(matching)?))
            }
            (None, Some(_)) => Err(HeaderConfigError::Shape(
                "`propagate` with `matching` takes neither `rename` nor `default`".into(),
            )),
            _ => Err(HeaderConfigError::Shape(
                "`propagate` needs exactly one of `named` and `matching`".into(),
            )),
        },
        (None, Some(insert), None) => Ok(Compiled::Insert(
            header_name(&insert.name)?,
            header_value(&insert.name, &insert.value)?,
        )),
        (None, None, Some(select)) => match (&select.named, &select.matching) {
            (Some(named), None) => Ok(Compiled::RemoveNamed(header_name(named)?)),
            (None, Some(matching)) => Ok(Compiled::RemoveMatching(regex(matching)?)),
            _ => Err(HeaderConfigError::Shape(
                "`remove` needs exactly one of `named` and `matching`".into(),
            )),
        },
        _ => Err(HeaderConfigError::Shape(
            "a header rule is exactly one of `propagate`, `insert` and `remove`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn names(list: &HeaderList) -> Vec<String> {
        list.iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap_or("?")))
            .collect()
    }

    fn policy(yaml: &str) -> HeaderPolicy {
        let config: HeadersConfig = serde_yaml_ng::from_str(yaml).expect("valid YAML");
        HeaderPolicy::new(&config).expect("valid rules")
    }

    #[test]
    fn request_ids_and_trace_context_are_propagated_by_default_and_nothing_else() {
        let policy = HeaderPolicy::default();
        let headers = client(&[
            ("x-request-id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("tracestate", "k=v"),
            ("authorization", "Bearer secret"),
            ("x-user-id", "3"),
        ]);
        assert_eq!(
            names(&policy.headers_for("any", &headers)),
            [
                "traceparent=00-abc-def-01",
                "tracestate=k=v",
                "x-request-id=r1"
            ]
        );
    }

    #[test]
    fn a_stream_keeps_only_headers_some_rule_passes_on_and_they_give_the_same_result() {
        let policy = policy(
            r#"
all:
  request:
    - propagate: { matching: "^x-tenant-" }
subgraphs:
  accounts:
    request:
      - propagate: { named: authorization, rename: x-auth }
"#,
        );
        let headers = client(&[
            ("x-request-id", "r1"),
            ("cookie", "session=1"),
            ("user-agent", "test"),
            ("sec-websocket-key", "k"),
            ("x-tenant-id", "t1"),
            ("authorization", "Bearer a"),
        ]);
        let kept = policy.retain(&headers);
        let mut kept_names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        kept_names.sort_unstable();
        assert_eq!(kept_names, ["authorization", "x-request-id", "x-tenant-id"]);
        for subgraph in ["accounts", "reviews"] {
            assert_eq!(
                policy.headers_for(subgraph, &kept),
                policy.headers_for(subgraph, &headers),
                "{subgraph}"
            );
        }
    }

    #[test]
    fn rules_propagate_rename_default_insert_and_remove_in_order() {
        let policy = policy(
            r#"
all:
  request:
    - propagate: { named: x-user-id }
    - propagate: { matching: "^x-tenant-" }
    - insert: { name: x-from-router, value: tessera }
subgraphs:
  accounts:
    request:
      - propagate: { named: authorization, rename: x-auth, default: none }
      - remove: { named: x-tenant-debug }
"#,
        );
        let headers = client(&[
            ("x-user-id", "3"),
            ("x-tenant-id", "acme"),
            ("x-tenant-debug", "1"),
        ]);
        assert_eq!(
            names(&policy.headers_for("products", &headers)),
            [
                "x-from-router=tessera",
                "x-tenant-debug=1",
                "x-tenant-id=acme",
                "x-user-id=3"
            ]
        );
        assert_eq!(
            names(&policy.headers_for("accounts", &headers)),
            [
                "x-auth=none",
                "x-from-router=tessera",
                "x-tenant-id=acme",
                "x-user-id=3"
            ]
        );
    }

    #[test]
    fn hop_by_hop_and_router_owned_headers_are_never_forwarded() {
        let policy = policy(
            r#"
all:
  request:
    - propagate: { matching: ".*" }
    - insert: { name: connection, value: close }
"#,
        );
        let headers = client(&[
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("content-length", "12"),
            ("content-type", "text/plain"),
            ("host", "evil"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        assert_eq!(names(&policy.headers_for("any", &headers)), ["x-kept=yes"]);
    }

    #[test]
    fn default_propagation_can_be_removed() {
        let policy = policy("all: { request: [ { remove: { named: traceparent } } ] }");
        let headers = client(&[("traceparent", "t"), ("x-request-id", "r")]);
        assert_eq!(
            names(&policy.headers_for("any", &headers)),
            ["x-request-id=r"]
        );
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let bad = [
            "all: { request: [ { propagate: {} } ] }",
            "all: { request: [ { propagate: { named: a, matching: b } } ] }",
            "all: { request: [ { propagate: { matching: '(' } } ] }",
            "all: { request: [ { propagate: { matching: a, rename: b } } ] }",
            "all: { request: [ { insert: { name: 'bad name', value: v } } ] }",
            "all: { request: [ { remove: {} } ] }",
            "all: { request: [ {} ] }",
            "all: { request: [ { insert: { name: a, value: b }, remove: { named: a } } ] }",
        ];
        for yaml in bad {
            let config: HeadersConfig = serde_yaml_ng::from_str(yaml).expect("valid YAML");
            assert!(HeaderPolicy::new(&config).is_err(), "{yaml} was accepted");
        }
        assert!(
            serde_yaml_ng::from_str::<HeadersConfig>("all: { request: [ { copy: {} } ] }").is_err()
        );
    }

    #[test]
    fn subgraphs_without_rules_of_their_own_share_one_list() {
        let policy =
            policy("subgraphs: { b: { request: [ { insert: { name: x-b, value: '1' } } ] } }");
        let headers = client(&[("x-request-id", "r")]);
        let lists = policy.for_request(["a", "b", "c"], &headers);
        assert!(Arc::ptr_eq(&lists.0[0], &lists.0[2]));
        assert_eq!(names(lists.get(1)), ["x-b=1", "x-request-id=r"]);
        assert!(lists.get(7).is_empty());
    }
}
