//! Composition: subgraph SDL → supergraph SDL in Apollo's join-spec format, plus every
//! diagnostic found. Pure: no I/O except [`config`]'s loading of the listed sources.
//!
//! A pipeline that always returns its diagnostics:
//! - [`config`]: `supergraph.yaml` in rover's format, and fetching each subgraph's SDL.
//! - [`ingest`]: each subgraph's SDL with its federation directives resolved.
//! - `validate`: each subgraph on its own (keys, requires and provides select real fields).
//! - [`merge`]: types and fields merged across subgraphs, with federation's rules checked.
//! - `emit`: the supergraph, deterministic so it diffs cleanly.

pub mod config;
pub mod diagnostics;
mod emit;
pub mod ingest;
pub mod merge;
mod validate;

pub use diagnostics::{Diagnostic, Severity};
use ingest::SubgraphSchema;

/// One subgraph's source for composition.
#[derive(Debug, Clone)]
pub struct SubgraphSource {
    /// The subgraph's name.
    pub name: String,
    /// Where the router sends its fetches.
    pub url: String,
    /// Its SDL.
    pub sdl: String,
}

/// What composition produced: the supergraph when there were no errors, and every
/// diagnostic.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The supergraph SDL; `None` when any diagnostic is an error.
    pub supergraph: Option<String>,
    /// Every error and hint found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Composed {
    /// The error diagnostics.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Composes `subgraphs` into a supergraph.
pub fn compose(subgraphs: &[SubgraphSource]) -> Composed {
    let mut diagnostics = Vec::new();
    let mut schemas: Vec<SubgraphSchema> = Vec::new();
    let mut sorted: Vec<&SubgraphSource> = subgraphs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for source in sorted {
        match ingest::ingest(&source.name, &source.url, &source.sdl) {
            Ok((schema, problems)) => {
                schemas.push(schema);
                diagnostics.extend(problems);
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    for schema in &mut schemas {
        validate::extension_key_fields_are_not_external(schema);
        diagnostics.extend(validate::validate(schema));
    }
    let merged = merge::merge(&schemas, &mut diagnostics);
    if merged.get("Query").is_none_or(|q| q.fields.is_empty()) {
        diagnostics.push(Diagnostic::error(
            diagnostics::codes::NO_QUERIES,
            None,
            "no subgraph defines a Query type with fields",
        ));
    }
    for diagnostic in &mut diagnostics {
        if let (Some(subgraph), Some(coordinate)) = (&diagnostic.subgraph, &diagnostic.coordinate)
            && let Some(schema) = schemas.iter().find(|s| s.name == *subgraph)
        {
            diagnostic.location = schema.locations.get(coordinate).copied();
        }
    }
    diagnostics.sort();
    diagnostics.dedup();
    let failed = diagnostics.iter().any(|d| d.severity == Severity::Error);
    let supergraph = (!failed).then(|| emit::emit(&schemas, &merged));
    Composed {
        supergraph,
        diagnostics,
    }
}
