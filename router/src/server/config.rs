//! The router's YAML configuration file (`--router-config`, `TESSERA_ROUTER_CONFIG`): what is
//! too structured for flags. Flags and their environment variables still set everything else.
//!
//! ```yaml
//! headers:          # which client headers reach which subgraph (see `crate::headers`)
//!   all:
//!     request:
//!       - propagate: { named: x-user-id }
//! subscriptions:    # every member optional; the defaults are safe
//!   subgraphs:
//!     orders: { url: "ws://orders.internal:4005/graphql" }
//!   max_connections: 50000
//!   max_per_connection: 100
//!   max_subscriptions: 200000
//!   client_queue: 128
//!   init_timeout_ms: 3000
//!   keepalive_ms: 12000
//!   upstream_grace_ms: 5000
//!   forward_init_payload: true
//!   auth_required: false
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
    /// Subscriptions through the router.
    #[serde(default)]
    pub subscriptions: SubscriptionsFile,
}

/// The `subscriptions:` section; what it leaves out keeps its default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsFile {
    /// Per subgraph: where its subscriptions are served, when not at its URL.
    #[serde(default)]
    pub subgraphs: std::collections::BTreeMap<String, SubgraphSubscriptions>,
    /// Open subscription connections at most.
    pub max_connections: Option<usize>,
    /// Operations one WebSocket connection may run at once.
    pub max_per_connection: Option<usize>,
    /// Client subscriptions in all.
    pub max_subscriptions: Option<usize>,
    /// Events a client may fall behind before it is disconnected.
    pub client_queue: Option<usize>,
    /// How long a WebSocket client has for `connection_init`, in ms.
    pub init_timeout_ms: Option<u64>,
    /// How often idle streams get a keep-alive, in ms.
    pub keepalive_ms: Option<u64>,
    /// How long subscriptions wait for a subgraph's connection to come back, in ms.
    pub upstream_grace_ms: Option<u64>,
    /// Pass the client's `connection_init` payload on to subgraphs.
    pub forward_init_payload: Option<bool>,
    /// Refuse WebSockets whose `connection_init` payload carries no `authorization`.
    pub auth_required: Option<bool>,
}

/// One subgraph's subscription settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubgraphSubscriptions {
    /// Its WebSocket URL.
    pub url: String,
}

impl SubscriptionsFile {
    /// The subscription configuration: the defaults with what the file sets.
    pub fn to_config(&self) -> crate::subscribe::SubscriptionConfig {
        use std::time::Duration;
        let mut config = crate::subscribe::SubscriptionConfig {
            subgraph_urls: self
                .subgraphs
                .iter()
                .map(|(name, s)| (name.clone(), s.url.clone()))
                .collect(),
            ..crate::subscribe::SubscriptionConfig::default()
        };
        let set = |slot: &mut usize, value: Option<usize>| {
            if let Some(value) = value {
                *slot = value.max(1);
            }
        };
        set(&mut config.max_connections, self.max_connections);
        set(&mut config.max_per_connection, self.max_per_connection);
        set(&mut config.max_subscriptions, self.max_subscriptions);
        set(&mut config.client_queue, self.client_queue);
        if let Some(ms) = self.init_timeout_ms {
            config.init_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = self.keepalive_ms {
            config.keepalive = Duration::from_millis(ms.max(100));
        }
        if let Some(ms) = self.upstream_grace_ms {
            config.upstream.grace = Duration::from_millis(ms);
        }
        if let Some(forward) = self.forward_init_payload {
            config.forward_init_payload = forward;
        }
        if let Some(required) = self.auth_required {
            config.auth_required = required;
        }
        config
    }
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
