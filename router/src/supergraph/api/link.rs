//! `@link` (and the older `@core`) on the supergraph's `schema`: which specs it uses, under which
//! names, and whether the router may start with them.

use apollo_compiler::Schema;
use apollo_compiler::ast::{Directive, Value};

use crate::supergraph::SupergraphError;

/// Where the specs the router implements live.
const APOLLO_SPECS: &str = "https://specs.apollo.dev/";

/// Specs the router implements, with the versions it understands (`major`, `minor`).
const IMPLEMENTED: &[(&str, &[(u32, u32)])] = &[
    ("link", &[(1, 0)]),
    ("core", &[(0, 1), (0, 2)]),
    ("join", &[(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]),
    ("inaccessible", &[(0, 1), (0, 2)]),
    ("tag", &[(0, 1), (0, 2), (0, 3)]),
];

/// Why a spec is linked (`for:`). Only these two make an unknown spec fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The spec changes what a query returns.
    Security,
    /// The spec changes how a query is executed.
    Execution,
}

/// One name imported from a spec: `"@tag"` or `{ name: "@tag", as: "@label" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The name in the spec, without `@`.
    pub name: String,
    /// The name in this schema, without `@`.
    pub local: String,
    /// Whether it names a directive (`@…`) rather than a type.
    pub is_directive: bool,
}

/// One `@link(url:, as:, for:, import:)` (or `@core(feature:, as:, for:)`) application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The url as written.
    pub url: String,
    /// The spec's name: the url's second-to-last path segment (`join`).
    pub name: String,
    /// The version, from the last segment (`v0.3` → `(0, 3)`), when it parses.
    pub version: Option<(u32, u32)>,
    /// The prefix of the spec's elements in this schema: `as:`, or the spec's name.
    pub prefix: String,
    /// `for:`, when given.
    pub purpose: Option<Purpose>,
    /// `import:` entries.
    pub imports: Vec<Import>,
}

impl Link {
    /// Whether the spec is one of Apollo's (`https://specs.apollo.dev/…`).
    pub fn is_apollo_spec(&self) -> bool {
        self.url.starts_with(APOLLO_SPECS)
    }

    /// Whether the router implements this spec at this version.
    pub fn is_implemented(&self) -> bool {
        let Some(version) = self.version else {
            return false;
        };
        self.is_apollo_spec()
            && IMPLEMENTED
                .iter()
                .any(|(name, versions)| *name == self.name && versions.contains(&version))
    }

    /// The local name of the spec's directive `directive` (the spec's own-named directive, such
    /// as `@inaccessible`, is `prefix`; others are `prefix__name` unless imported).
    pub fn directive_name(&self, directive: &str) -> String {
        if let Some(import) = self
            .imports
            .iter()
            .find(|i| i.is_directive && i.name == directive)
        {
            return import.local.clone();
        }
        if directive == self.name {
            self.prefix.clone()
        } else {
            format!("{}__{directive}", self.prefix)
        }
    }

    /// Whether a directive named `local` belongs to this spec.
    pub fn owns_directive(&self, local: &str) -> bool {
        local == self.prefix
            || is_prefixed(local, &self.prefix)
            || self
                .imports
                .iter()
                .any(|i| i.is_directive && i.local == local)
    }

    /// Whether a type named `local` belongs to this spec.
    pub fn owns_type(&self, local: &str) -> bool {
        is_prefixed(local, &self.prefix)
            || self
                .imports
                .iter()
                .any(|i| !i.is_directive && i.local == local)
    }
}

fn is_prefixed(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with("__"))
}

/// Every `@link` / `@core` on the schema definition, in order.
pub fn links(schema: &Schema) -> Vec<Link> {
    schema
        .schema_definition
        .directives
        .iter()
        .filter_map(|directive| parse_link(directive))
        .collect()
}

/// Fails when a `for: EXECUTION` or `for: SECURITY` link names a spec the router does not
/// implement (FEDERATION.md §1): starting anyway could return data a spec means to hide.
pub fn check_supported(links: &[Link]) -> Result<(), SupergraphError> {
    match links
        .iter()
        .find(|link| link.purpose.is_some() && !link.is_implemented())
    {
        Some(link) => Err(SupergraphError::UnsupportedFeature(format!(
            "{} (linked for {}) is not implemented by this router",
            link.url,
            match link.purpose {
                Some(Purpose::Security) => "SECURITY",
                _ => "EXECUTION",
            }
        ))),
        None => Ok(()),
    }
}

fn parse_link(directive: &Directive) -> Option<Link> {
    let url = match directive.name.as_str() {
        "link" => directive.specified_argument_by_name("url")?,
        "core" => directive.specified_argument_by_name("feature")?,
        _ => return None,
    }
    .as_str()?
    .to_owned();
    let mut segments = url.trim_end_matches('/').rsplit('/');
    let version = segments.next().and_then(parse_version);
    let name = segments.next().unwrap_or_default().to_owned();
    let prefix = directive
        .specified_argument_by_name("as")
        .and_then(|v| v.as_str())
        .map_or_else(|| name.clone(), str::to_owned);
    let purpose = directive
        .specified_argument_by_name("for")
        .and_then(|v| v.as_enum().map(|n| n.as_str()).or_else(|| v.as_str()))
        .and_then(|p| match p {
            "SECURITY" => Some(Purpose::Security),
            "EXECUTION" => Some(Purpose::Execution),
            _ => None,
        });
    let imports = directive
        .specified_argument_by_name("import")
        .and_then(|v| v.as_list())
        .map(|items| items.iter().filter_map(|v| parse_import(v)).collect())
        .unwrap_or_default();
    Some(Link {
        url,
        name,
        version,
        prefix,
        purpose,
        imports,
    })
}

fn parse_version(segment: &str) -> Option<(u32, u32)> {
    let (major, minor) = segment.strip_prefix('v')?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn parse_import(value: &Value) -> Option<Import> {
    let (name, local) = match value {
        Value::String(name) => (name.as_str(), name.as_str()),
        Value::Object(fields) => {
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.as_str())
            };
            let name = get("name")?;
            (name, get("as").unwrap_or(name))
        }
        _ => return None,
    };
    let is_directive = name.starts_with('@');
    Some(Import {
        name: name.trim_start_matches('@').to_owned(),
        local: local.trim_start_matches('@').to_owned(),
        is_directive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links_of(schema_directives: &str) -> Vec<Link> {
        let sdl = format!(
            "schema {schema_directives} {{ query: Query }}\n\
             type Query {{ a: Int }}\n\
             directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA\n\
             directive @core(feature: String!, as: String, for: core__Purpose) repeatable on SCHEMA\n\
             scalar link__Import\n\
             enum link__Purpose {{ SECURITY EXECUTION }}\n\
             enum core__Purpose {{ SECURITY EXECUTION }}\n"
        );
        let schema = Schema::parse_and_validate(sdl, "links.graphql").expect("valid test schema");
        links(&schema)
    }

    #[test]
    fn link_arguments_are_read_with_renames_and_imports() {
        let links = links_of(
            r#"@link(url: "https://specs.apollo.dev/link/v1.0")
               @link(url: "https://specs.apollo.dev/inaccessible/v0.2", as: "hidden", for: SECURITY)
               @link(url: "https://specs.apollo.dev/tag/v0.3", import: [{name: "@tag", as: "@label"}, "Thing"])"#,
        );
        assert_eq!(links.len(), 3);
        assert_eq!(links[1].name, "inaccessible");
        assert_eq!(links[1].version, Some((0, 2)));
        assert_eq!(links[1].prefix, "hidden");
        assert_eq!(links[1].purpose, Some(Purpose::Security));
        assert_eq!(links[1].directive_name("inaccessible"), "hidden");
        assert_eq!(links[2].directive_name("tag"), "label");
        assert!(links[2].owns_type("Thing"));
        assert!(links[2].owns_type("tag__Other"));
        assert!(!links[2].owns_type("tagged"));
        assert!(check_supported(&links).is_ok());
    }

    #[test]
    fn unknown_spec_linked_for_execution_or_security_is_unsupported() {
        for purpose in ["EXECUTION", "SECURITY"] {
            let links = links_of(&format!(
                r#"@link(url: "https://specs.apollo.dev/link/v1.0")
                   @link(url: "https://specs.apollo.dev/authenticated/v0.1", for: {purpose})"#
            ));
            let err = check_supported(&links).expect_err("authenticated is not implemented");
            assert!(
                matches!(err, SupergraphError::UnsupportedFeature(ref m) if m.contains("authenticated"))
            );
        }
    }

    #[test]
    fn unimplemented_version_of_a_known_spec_is_unsupported() {
        let links = links_of(
            r#"@link(url: "https://specs.apollo.dev/link/v1.0")
               @link(url: "https://specs.apollo.dev/join/v0.9", for: EXECUTION)"#,
        );
        assert!(check_supported(&links).is_err());
    }

    #[test]
    fn unknown_spec_without_purpose_is_ignored() {
        let links = links_of(
            r#"@link(url: "https://specs.apollo.dev/link/v1.0")
               @link(url: "https://example.com/custom/v2.1")
               @core(feature: "https://specs.apollo.dev/core/v0.2")"#,
        );
        assert_eq!(links.len(), 3);
        assert_eq!(links[2].name, "core");
        assert!(check_supported(&links).is_ok());
    }
}
