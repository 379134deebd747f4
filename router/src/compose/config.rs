//! `supergraph.yaml` in rover's format, and loading each subgraph's SDL from a file or from
//! its `_service { sdl }`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::SubgraphSource;
use super::diagnostics::{Diagnostic, codes};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
pub struct SupergraphConfig {
    /// `federation_version` (e.g. `=2.5.0`); informational.
    #[serde(default)]
    pub federation_version: Option<String>,
    /// Subgraphs by name.
    pub subgraphs: BTreeMap<String, SubgraphConfig>,
}

/// One subgraph's entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SubgraphConfig {
    /// Where the router sends fetches.
    pub routing_url: Option<String>,
    /// Where its SDL comes from.
    pub schema: SchemaSource,
}

/// Where a subgraph's SDL comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SchemaSource {
    /// A file, relative to the config file.
    File {
        /// The path.
        file: PathBuf,
    },
    /// A running subgraph, asked for `{ _service { sdl } }`.
    Url {
        /// Its GraphQL endpoint.
        subgraph_url: String,
    },
}

impl SupergraphConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Diagnostic::error(
                codes::CONFIG,
                None,
                format!("reading {}: {err}", path.display()),
            )
        })?;
        serde_yaml_ng::from_str(&text).map_err(|err| {
            Diagnostic::error(codes::CONFIG, None, format!("{}: {err}", path.display()))
        })
    }

    /// The files the config reads (for watching), resolved against `base`.
    pub fn files(&self, base: &Path) -> Vec<PathBuf> {
        self.subgraphs
            .values()
            .filter_map(|s| match &s.schema {
                SchemaSource::File { file } => Some(base.join(file)),
                SchemaSource::Url { .. } => None,
            })
            .collect()
    }

    /// Loads every subgraph's SDL; files relative to `base`. Reports every failure.
    pub async fn load(&self, base: &Path) -> Result<Vec<SubgraphSource>, Vec<Diagnostic>> {
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for (name, subgraph) in &self.subgraphs {
            let sdl = match &subgraph.schema {
                SchemaSource::File { file } => std::fs::read_to_string(base.join(file))
                    .map_err(|err| format!("reading {}: {err}", base.join(file).display())),
                SchemaSource::Url { subgraph_url } => fetch_sdl(subgraph_url).await,
            };
            let url = subgraph
                .routing_url
                .clone()
                .or_else(|| match &subgraph.schema {
                    SchemaSource::Url { subgraph_url } => Some(subgraph_url.clone()),
                    SchemaSource::File { .. } => None,
                });
            match (sdl, url) {
                (Ok(sdl), Some(url)) => sources.push(SubgraphSource {
                    name: name.clone(),
                    url,
                    sdl,
                }),
                (Err(err), _) => errors.push(Diagnostic::error(codes::CONFIG, Some(name), err)),
                (Ok(_), None) => errors.push(Diagnostic::error(
                    codes::CONFIG,
                    Some(name),
                    "no routing_url",
                )),
            }
        }
        if errors.is_empty() {
            Ok(sources)
        } else {
            Err(errors)
        }
    }
}

/// Asks a running subgraph for its SDL, retrying a few times.
pub async fn fetch_sdl(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|err| err.to_string())?;
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        let response = client
            .post(url)
            .json(&serde_json::json!({ "query": "{ _service { sdl } }" }))
            .send()
            .await;
        match response {
            Ok(response) => match response.json::<serde_json::Value>().await {
                Ok(body) => match body["data"]["_service"]["sdl"].as_str() {
                    Some(sdl) => return Ok(sdl.to_owned()),
                    None => last = format!("{url} answered without _service.sdl: {body}"),
                },
                Err(err) => last = format!("{url}: {err}"),
            },
            Err(err) => last = format!("{url}: {}", err.without_url()),
        }
    }
    Err(last)
}
