//! The router's YAML configuration file (`--router-config`, `TESSERA_ROUTER_CONFIG`): what is
//! too structured for flags. Flags and their environment variables still set everything else.
//!
//! ```yaml
//! headers:          # which client headers reach which subgraph (see `crate::headers`)
//!   all:
//!     request:
//!       - propagate: { named: x-user-id }
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::headers::HeadersConfig;

/// The whole file; every section is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Header propagation to subgraphs.
    #[serde(default)]
    pub headers: HeadersConfig,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML of this shape.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its line.
        message: String,
    },
}

impl RouterConfig {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses YAML text (an empty text is the default configuration).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text).map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default_configuration() {
        assert_eq!(RouterConfig::parse("  \n"), Ok(RouterConfig::default()));
    }

    #[test]
    fn unknown_sections_are_refused() {
        let err = RouterConfig::parse("header: {}").expect_err("a typo");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn header_rules_are_read() {
        let config = RouterConfig::parse(
            "headers: { all: { request: [ { propagate: { named: x-user-id } } ] } }",
        )
        .expect("valid");
        assert_eq!(config.headers.all.request.len(), 1);
    }
}
