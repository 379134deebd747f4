//! Hot reload: compose from a `supergraph.yaml`, then keep watching it. Every interval the
//! config, its schema files and its `subgraph_url` SDLs are read again; when anything changed,
//! the supergraph is recomposed and swapped in ([`Live::replace`]). A failed recomposition
//! keeps the last good supergraph in service and is reported on `/health`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::compose::{self, SubgraphSource, config::SupergraphConfig};
use crate::engine::{Engine, EngineConfig};
use crate::live::Live;
use crate::supergraph::Supergraph;

/// Why a supergraph could not be composed from the config.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ReloadError(pub Vec<String>);

/// The sources of `config`, and a fingerprint of everything composition reads.
async fn load(config: &Path) -> Result<(Vec<SubgraphSource>, u64), ReloadError> {
    let parsed = SupergraphConfig::read(config).map_err(|d| ReloadError(vec![d.to_string()]))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let sources = parsed
        .load(base)
        .await
        .map_err(|errors| ReloadError(errors.iter().map(ToString::to_string).collect()))?;
    let mut hasher = DefaultHasher::new();
    for source in &sources {
        (&source.name, &source.url, &source.sdl).hash(&mut hasher);
    }
    Ok((sources, hasher.finish()))
}

/// Composes `sources` into an engine.
fn build(sources: &[SubgraphSource], engine_config: &EngineConfig) -> Result<Engine, ReloadError> {
    let composed = compose::compose(sources);
    let errors: Vec<String> = composed.errors().map(ToString::to_string).collect();
    let sdl = composed.supergraph.ok_or(ReloadError(errors))?;
    let supergraph = Supergraph::parse(&sdl).map_err(|err| ReloadError(vec![err.to_string()]))?;
    Ok(Engine::new(supergraph, engine_config.clone()))
}

/// Composes `config` once and starts watching it every `interval`. Fails when the first
/// composition fails.
pub async fn start(
    config: PathBuf,
    engine_config: EngineConfig,
    interval: Duration,
) -> Result<(Arc<Live>, JoinHandle<()>), ReloadError> {
    let (sources, fingerprint) = load(&config).await?;
    let live = Arc::new(Live::new(build(&sources, &engine_config)?));
    let watched = Arc::clone(&live);
    let task = tokio::spawn(async move {
        let mut last = fingerprint;
        // Whether the supergraph in service was composed from the sources `last` stands for
        // (false after a failed recomposition of them).
        let mut last_in_service = true;
        loop {
            tokio::time::sleep(interval).await;
            let (sources, fingerprint) = match load(&config).await {
                Ok(loaded) => loaded,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the subgraphs; keeping the supergraph in service");
                    watched.set_composition_errors(err.0);
                    continue;
                }
            };
            if fingerprint == last {
                // The sources read again as they were: a failure to read them is over (a
                // failed composition of these same sources is not).
                if last_in_service && !watched.composition_errors().is_empty() {
                    tracing::info!(
                        "the subgraphs read again; the supergraph in service is current"
                    );
                    watched.set_composition_errors(Vec::new());
                }
                continue;
            }
            last = fingerprint;
            match build(&sources, &engine_config) {
                Ok(engine) => {
                    last_in_service = true;
                    watched.replace(engine);
                    tracing::info!(
                        subgraphs = sources.len(),
                        "recomposed; the new supergraph is in service"
                    );
                }
                Err(err) => {
                    last_in_service = false;
                    tracing::error!(errors = %err, "recomposition failed; the last good supergraph stays in service");
                    watched.set_composition_errors(err.0);
                }
            }
        }
    });
    Ok((live, task))
}
