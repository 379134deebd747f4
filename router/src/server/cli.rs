//! The `tessera` command line: `tessera router …` serves a supergraph, `tessera plan …` prints
//! the plan of one operation. Flags can also come from `TESSERA_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use super::ServerConfig;
use super::config::RouterConfig;
use crate::engine::{Engine, EngineConfig};
use crate::execute::ExecutorConfig;
use crate::headers::HeaderPolicy;
use crate::request::{self, Limits};
use crate::supergraph::Supergraph;

/// Tessera's federation router.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the supergraph's API over HTTP.
    Router(RouterArgs),
    /// Print the query plan of one operation.
    Plan(PlanArgs),
    /// Compose a supergraph from a `supergraph.yaml` (rover's format).
    Compose(ComposeArgs),
}

/// `tessera compose`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// The `supergraph.yaml` listing the subgraphs.
    pub config: PathBuf,
    /// Write the supergraph here instead of to stdout (only when composition succeeds).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `tessera router`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["supergraph", "config"])))]
pub struct RouterArgs {
    /// The supergraph SDL file.
    #[arg(long, env = "TESSERA_SUPERGRAPH")]
    pub supergraph: Option<PathBuf>,
    /// A `supergraph.yaml` to compose the supergraph from; it is watched, and the supergraph
    /// recomposed and swapped in when it or its sources change.
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// With `--config`: how often to look for changes (files and `subgraph_url` SDL), in ms.
    #[arg(long, env = "TESSERA_POLL_INTERVAL_MS", default_value_t = 2_000)]
    pub poll_interval_ms: u64,
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Timeout of one subgraph request, in milliseconds.
    #[arg(long, env = "TESSERA_SUBGRAPH_TIMEOUT_MS", default_value_t = 30_000)]
    pub subgraph_timeout_ms: u64,
    /// Share identical in-flight subgraph requests.
    #[arg(long, env = "TESSERA_DEDUPE")]
    pub dedupe: bool,
    /// The largest subgraph response body read, in bytes; a larger one is a fetch error.
    #[arg(
        long,
        env = "TESSERA_MAX_SUBGRAPH_RESPONSE_BYTES",
        default_value_t = crate::execute::DEFAULT_MAX_RESPONSE_BYTES
    )]
    pub max_subgraph_response_bytes: usize,
    /// Deepest field nesting of an operation.
    #[arg(long, env = "TESSERA_MAX_DEPTH", default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,
    /// Most field selections (aliased or not) of an operation, fragments expanded.
    #[arg(long, env = "TESSERA_MAX_FIELDS", default_value_t = Limits::default().max_fields)]
    pub max_fields: usize,
    /// Most aliased field selections of an operation, fragments expanded.
    #[arg(long, env = "TESSERA_MAX_ALIASES", default_value_t = Limits::default().max_aliases)]
    pub max_aliases: usize,
    /// Longest query text, in bytes.
    #[arg(long, env = "TESSERA_MAX_QUERY_BYTES", default_value_t = Limits::default().max_query_bytes)]
    pub max_query_bytes: usize,
    /// Most tokens in a query.
    #[arg(long, env = "TESSERA_MAX_TOKENS", default_value_t = Limits::default().max_tokens)]
    pub max_tokens: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Validated documents and plans kept in the cache (0 turns it off).
    #[arg(long, env = "TESSERA_PLAN_CACHE_SIZE", default_value_t = EngineConfig::default().plan_cache_size)]
    pub plan_cache_size: usize,
    /// Refuse `__schema` and `__type`.
    #[arg(long, env = "TESSERA_NO_INTROSPECTION")]
    pub no_introspection: bool,
    /// Do not serve GraphiQL to browsers.
    #[arg(long, env = "TESSERA_NO_GRAPHIQL")]
    pub no_graphiql: bool,
    /// Threads serving requests (default: one per core), each running its own connections
    /// and their subgraph fetches.
    #[arg(long, env = "TESSERA_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// The router's YAML configuration (header rules, subscriptions); see the README.
    #[arg(long, env = "TESSERA_ROUTER_CONFIG")]
    pub router_config: Option<PathBuf>,
    /// Pass this client header on to every subgraph (repeatable; the environment variable
    /// takes a comma-separated list). Added after the file's rules.
    #[arg(
        long = "propagate-header",
        env = "TESSERA_PROPAGATE_HEADERS",
        value_delimiter = ','
    )]
    pub propagate_headers: Vec<String>,
}

impl RouterArgs {
    /// The request limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_depth,
            max_fields: self.max_fields,
            max_aliases: self.max_aliases,
            max_query_bytes: self.max_query_bytes,
            max_tokens: self.max_tokens,
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// The configuration file, or the default one without `--router-config`.
    pub fn file_config(&self) -> anyhow::Result<RouterConfig> {
        match &self.router_config {
            Some(path) => Ok(RouterConfig::read(path)?),
            None => Ok(RouterConfig::default()),
        }
    }

    /// The engine configuration these flags and the configuration `file` set.
    pub fn engine_config(&self, file: &RouterConfig) -> anyhow::Result<EngineConfig> {
        let headers = HeaderPolicy::with_propagated(&file.headers, &self.propagate_headers)
            .context("invalid header rules")?;
        Ok(EngineConfig {
            limits: self.limits(),
            executor: ExecutorConfig {
                subgraph_timeout: Duration::from_millis(self.subgraph_timeout_ms),
                dedupe: self.dedupe,
                max_response_bytes: self.max_subgraph_response_bytes,
                ..ExecutorConfig::default()
            },
            plan_cache_size: self.plan_cache_size,
            introspection: !self.no_introspection,
            headers,
        })
    }

    /// The HTTP configuration these flags set.
    pub fn server_config(&self, file: &RouterConfig) -> ServerConfig {
        ServerConfig {
            graphiql: !self.no_graphiql,
            subscriptions: file.subscriptions.to_config(),
        }
    }
}

/// `tessera plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The supergraph SDL file.
    #[arg(long, env = "TESSERA_SUPERGRAPH")]
    pub supergraph: PathBuf,
    /// The file holding the operation.
    #[arg(long)]
    pub query: PathBuf,
    /// Which operation of the file to plan.
    #[arg(long)]
    pub operation_name: Option<String>,
}

/// Reads and loads a supergraph file.
pub fn load_supergraph(path: &Path) -> anyhow::Result<Supergraph> {
    let sdl = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the supergraph {}", path.display()))?;
    Supergraph::parse(&sdl)
        .with_context(|| format!("cannot load the supergraph {}", path.display()))
}

/// `tessera router`: loads the supergraph, binds, and serves until Ctrl-C or SIGTERM.
pub async fn run_router(args: RouterArgs) -> anyhow::Result<()> {
    let file = args.file_config()?;
    let engine_config = args.engine_config(&file)?;
    let (live, watcher) = match (&args.supergraph, &args.config) {
        (Some(path), _) => {
            let supergraph = load_supergraph(path)?;
            let engine = Engine::new(supergraph, engine_config);
            (Arc::new(crate::live::Live::new(engine)), None)
        }
        (None, Some(config)) => {
            let interval = Duration::from_millis(args.poll_interval_ms.max(100));
            let (live, task) = crate::reload::start(config.clone(), engine_config, interval)
                .await
                .map_err(|err| anyhow::anyhow!("composition failed:\n{err}"))?;
            tracing::info!(config = %config.display(), every_ms = interval.as_millis(), "watching the supergraph config for changes");
            (live, Some(task))
        }
        (None, None) => anyhow::bail!("give --supergraph FILE or --config supergraph.yaml"),
    };
    tracing::info!(
        subgraphs = live.engine().supergraph().subgraphs.len(),
        "supergraph loaded"
    );
    let (app, hub) = super::app_with_hub(live, &args.server_config(&file));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(%address, "router listening; GraphQL on /graphql");
    let threads = args
        .worker_threads
        .map_or_else(super::serving::default_threads, usize::from);
    tracing::info!(threads, "serving threads");
    let stopping = Arc::clone(&hub);
    let shutdown = async move {
        super::shutdown_signal().await;
        // Subscriptions get `complete` (or close 1001) while the server stops accepting.
        stopping.shut_down();
    };
    super::serve(listener, app, shutdown, threads)
        .await
        .context("the server failed")?;
    drain_subscriptions(&hub).await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    tracing::info!("router stopped");
    Ok(())
}

/// Waits (up to ten seconds) for subscription connections to finish closing.
async fn drain_subscriptions(hub: &crate::subscribe::Hub) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if hub.connection_count() > 0 {
        tracing::warn!(
            connections = hub.connection_count(),
            "subscription connections still open at shutdown"
        );
    }
}

/// Composes the subgraphs `config` lists; logs every diagnostic; fails on errors.
pub async fn compose_config(config: &Path) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let parsed = crate::compose::config::SupergraphConfig::read(config)
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let sources = parsed.load(base).await.map_err(|errors| {
        anyhow::anyhow!(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let composed = crate::compose::compose(&sources);
    for diagnostic in &composed.diagnostics {
        eprintln!("{diagnostic}");
    }
    let supergraph = composed.supergraph.ok_or_else(|| {
        anyhow::anyhow!(
            "composition failed with {} error(s)",
            composed
                .diagnostics
                .iter()
                .filter(|d| d.severity == crate::compose::Severity::Error)
                .count()
        )
    })?;
    tracing::info!(
        subgraphs = sources.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "composed the supergraph"
    );
    Ok(supergraph)
}

/// `tessera compose`: writes the supergraph to the output file (replacing it whole) or
/// stdout; nothing is written when composition fails.
pub async fn compose_command(args: &ComposeArgs) -> anyhow::Result<()> {
    let supergraph = compose_config(&args.config).await?;
    match &args.output {
        Some(path) => {
            let partial = path.with_extension("graphql.partial");
            std::fs::write(&partial, &supergraph)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => print!("{supergraph}"),
    }
    Ok(())
}

/// `tessera plan`: the plan's text, or why there is none.
pub fn plan_command(args: &PlanArgs) -> anyhow::Result<String> {
    let supergraph = load_supergraph(&args.supergraph)?;
    let query = std::fs::read_to_string(&args.query)
        .with_context(|| format!("cannot read the query {}", args.query.display()))?;
    let document = request::parse_and_validate(&supergraph.api, &query, &Limits::default())
        .map_err(|errors| anyhow::anyhow!(describe(&errors)))?;
    request::select_operation(&document, args.operation_name.as_deref())
        .map_err(|error| anyhow::anyhow!(error.message))?;
    let plan = crate::plan::plan(&supergraph, &document, args.operation_name.as_deref())
        .context("the operation could not be planned")?;
    Ok(plan.to_string())
}

fn describe(errors: &[crate::error::GraphQLError]) -> String {
    errors
        .iter()
        .map(|e| {
            let at = e
                .locations
                .first()
                .map(|l| format!(" at {}:{}", l.line, l.column))
                .unwrap_or_default();
            format!("{}{at} ({})", e.message, e.code().unwrap_or("-"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_worker_threads_is_refused() {
        let parsed = Cli::try_parse_from(["tessera", "router", "--worker-threads", "0"]);
        assert!(parsed.is_err());
    }

    #[test]
    fn router_flags_map_to_the_configuration() {
        let cli = Cli::try_parse_from([
            "tessera",
            "router",
            "--supergraph",
            "s.graphql",
            "--listen",
            "0.0.0.0:5000",
            "--subgraph-timeout-ms",
            "1500",
            "--dedupe",
            "--max-depth",
            "10",
            "--max-aliases",
            "20",
            "--no-introspection",
            "--worker-threads",
            "1",
        ])
        .expect("valid command line");
        let Command::Router(args) = cli.command else {
            panic!("router subcommand");
        };
        let config = args
            .engine_config(&RouterConfig::default())
            .expect("valid configuration");
        assert_eq!(args.listen.port(), 5000);
        assert_eq!(args.worker_threads, Some(1));
        assert_eq!(
            config.executor.subgraph_timeout,
            Duration::from_millis(1500)
        );
        assert!(config.executor.dedupe);
        assert_eq!(config.limits.max_depth, 10);
        assert_eq!(config.limits.max_aliases, 20);
        assert_eq!(
            config.limits.max_query_bytes,
            Limits::default().max_query_bytes
        );
        assert!(!config.introspection);
        assert!(args.server_config(&RouterConfig::default()).graphiql);
    }

    #[test]
    fn plan_command_requires_a_query() {
        assert!(Cli::try_parse_from(["tessera", "plan", "--supergraph", "s.graphql"]).is_err());
    }

    #[test]
    fn plan_command_reports_validation_errors() {
        let dir = std::env::temp_dir().join(format!("tessera-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let supergraph = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/supergraph.graphql"
        );
        let query = dir.join("q.graphql");
        std::fs::write(&query, "{ product(upc: \"1\") { cost } }").expect("write query");
        let err = plan_command(&PlanArgs {
            supergraph: supergraph.into(),
            query,
            operation_name: None,
        })
        .expect_err("cost is inaccessible");
        assert!(
            err.to_string().contains("GRAPHQL_VALIDATION_FAILED"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
