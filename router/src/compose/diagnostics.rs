//! Composition diagnostics: every problem found, each with a code, the subgraph and plain words.

use std::fmt;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Composition fails.
    Error,
    /// Worth knowing; the supergraph is still produced.
    Hint,
}

/// One problem found by composition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Error or hint.
    pub severity: Severity,
    /// A stable code, e.g. `INVALID_FIELD_SHARING`.
    pub code: &'static str,
    /// The subgraph it comes from, when it comes from one.
    pub subgraph: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
    /// The schema element it is about (`Type` or `Type.field`), when it is about one.
    pub coordinate: Option<String>,
    /// Where that element is defined in the subgraph's SDL: (line, column), from 1.
    pub location: Option<(usize, usize)>,
}

impl Diagnostic {
    /// An error.
    pub fn error(code: &'static str, subgraph: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            subgraph: subgraph.map(str::to_owned),
            message: message.into(),
            coordinate: None,
            location: None,
        }
    }

    /// The same diagnostic, about schema element `coordinate` (`Type` or `Type.field`); its
    /// source location is filled in from the subgraph's SDL.
    pub fn at(mut self, coordinate: impl Into<String>) -> Self {
        self.coordinate = Some(coordinate.into());
        self
    }

    /// A hint.
    pub fn hint(code: &'static str, subgraph: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Hint,
            ..Self::error(code, subgraph, message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Hint => "hint",
        };
        match &self.subgraph {
            Some(subgraph) => write!(
                f,
                "{level}[{}] subgraph \"{subgraph}\": {}",
                self.code, self.message
            )?,
            None => write!(f, "{level}[{}]: {}", self.code, self.message)?,
        }
        match self.location {
            Some((line, column)) => write!(f, " (line {line}, column {column})"),
            None => Ok(()),
        }
    }
}

/// The diagnostic codes composition uses.
pub mod codes {
    /// The SDL does not parse.
    pub const INVALID_GRAPHQL: &str = "INVALID_GRAPHQL";
    /// A directive nobody defined.
    pub const UNKNOWN_DIRECTIVE: &str = "UNKNOWN_DIRECTIVE";
    /// A type is an object in one subgraph and something else in another.
    pub const TYPE_KIND_MISMATCH: &str = "TYPE_KIND_MISMATCH";
    /// A field resolved by several subgraphs is not `@shareable` in all of them.
    pub const INVALID_FIELD_SHARING: &str = "INVALID_FIELD_SHARING";
    /// A field's types in two subgraphs are incompatible.
    pub const FIELD_TYPE_MISMATCH: &str = "FIELD_TYPE_MISMATCH";
    /// An argument's types in two subgraphs are incompatible.
    pub const FIELD_ARGUMENT_TYPE_MISMATCH: &str = "FIELD_ARGUMENT_TYPE_MISMATCH";
    /// A required argument is missing in a subgraph.
    pub const REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH: &str =
        "REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH";
    /// Argument default values differ.
    pub const FIELD_ARGUMENT_DEFAULT_MISMATCH: &str = "FIELD_ARGUMENT_DEFAULT_MISMATCH";
    /// Input field default values differ.
    pub const INPUT_FIELD_DEFAULT_MISMATCH: &str = "INPUT_FIELD_DEFAULT_MISMATCH";
    /// A required input field is missing in a subgraph.
    pub const REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH: &str =
        "REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH";
    /// An enum used as input and output has different values in two subgraphs.
    pub const ENUM_VALUE_MISMATCH: &str = "ENUM_VALUE_MISMATCH";
    /// An `@external` field nothing in its subgraph uses.
    pub const EXTERNAL_UNUSED: &str = "EXTERNAL_UNUSED";
    /// A `@key` selects a field that does not exist.
    pub const KEY_INVALID_FIELDS: &str = "KEY_INVALID_FIELDS";
    /// A `@requires` selects a field that is not `@external` (Fed2) or does not exist.
    pub const REQUIRES_INVALID_FIELDS: &str = "REQUIRES_INVALID_FIELDS";
    /// A `@provides` selects a field that does not exist.
    pub const PROVIDES_INVALID_FIELDS: &str = "PROVIDES_INVALID_FIELDS";
    /// `@override(from:)` names the subgraph itself.
    pub const OVERRIDE_FROM_SELF: &str = "OVERRIDE_FROM_SELF_ERROR";
    /// `@override(from:)` names a subgraph that does not define the field.
    pub const OVERRIDE_SOURCE_HAS_NO_FIELD: &str = "OVERRIDE_SOURCE_HAS_OVERRIDE";
    /// An interface has no definition in any subgraph, only `@interfaceObject`s.
    pub const INTERFACE_OBJECT_WITHOUT_INTERFACE: &str = "INTERFACE_OBJECT_USAGE_ERROR";
    /// No subgraph defines a Query type with fields.
    pub const NO_QUERIES: &str = "NO_QUERIES";
    /// The configuration could not be read.
    pub const CONFIG: &str = "CONFIG_ERROR";
}
