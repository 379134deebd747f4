//! The whole e-commerce example in one process.
//!
//! [`start_all`] starts the five subgraphs, each on its own port with its own database, sharing
//! one event bus: in-process by default, so cross-subgraph events (the order saga, the live
//! dashboard) work with no Redis; or Redis when a URL is given. [`export_schemas`] writes each
//! subgraph's SDL into `schema/`.

pub mod simulate;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use tessera_accounts::Accounts;
use tessera_inventory::Inventory;
use tessera_kit::{Config, Running, StartError, Subgraph};
use tessera_orders::Orders;
use tessera_products::Products;
use tessera_reviews::Reviews;
use tokio::net::TcpListener;

/// The example's subgraph names, in the order they start.
pub const SUBGRAPHS: [&str; 5] = [
    Accounts::NAME,
    Products::NAME,
    Inventory::NAME,
    Reviews::NAME,
    Orders::NAME,
];

/// Starts subgraph `S` on `host`:its default port with `base`'s settings.
async fn start_one<S: Subgraph>(base: &Config, host: IpAddr) -> Result<Running, StartError> {
    let listener = TcpListener::bind(SocketAddr::new(host, S::DEFAULT_PORT)).await?;
    tessera_kit::start::<S>(base, listener).await
}

/// Starts all five subgraphs on `host` with `base`'s settings and one shared event bus.
pub async fn start_all(base: &Config, host: IpAddr) -> Result<Vec<Running>, StartError> {
    let mut config = base.clone();
    if config.shared_bus.is_none() {
        config.shared_bus = Some(config.event_bus()?);
    }
    Ok(vec![
        start_one::<Accounts>(&config, host).await?,
        start_one::<Products>(&config, host).await?,
        start_one::<Inventory>(&config, host).await?,
        start_one::<Reviews>(&config, host).await?,
        start_one::<Orders>(&config, host).await?,
    ])
}

/// Every subgraph's SDL, as `_service { sdl }` serves it, by subgraph name.
pub async fn schemas() -> Vec<(&'static str, String)> {
    vec![
        (Accounts::NAME, tessera_kit::sdl::<Accounts>().await),
        (Products::NAME, tessera_kit::sdl::<Products>().await),
        (Inventory::NAME, tessera_kit::sdl::<Inventory>().await),
        (Reviews::NAME, tessera_kit::sdl::<Reviews>().await),
        (Orders::NAME, tessera_kit::sdl::<Orders>().await),
    ]
}

/// Writes `<dir>/<subgraph>.graphql` for every subgraph.
pub async fn export_schemas(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, sdl) in schemas().await {
        std::fs::write(dir.join(format!("{name}.graphql")), sdl)?;
    }
    Ok(())
}

/// Why the example's router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Composition reported errors (each listed).
    #[error("composition failed:\n{0}")]
    Composition(String),
    /// The composed supergraph did not load.
    #[error("supergraph: {0}")]
    Supergraph(#[from] tessera::supergraph::SupergraphError),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The router in front of the example, serving until dropped.
pub struct RunningRouter {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its subscriptions (counts, for tests and the load tools).
    pub hub: std::sync::Arc<tessera::subscribe::Hub>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRouter {
    /// Stops accepting requests and waits for in-flight ones.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningRouter {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// Composes the example's supergraph: from `config` (a `supergraph.yaml`) when given, else
/// from the subgraphs' SDL in this binary with their default URLs on `host`.
pub async fn compose_example(config: Option<&Path>, host: IpAddr) -> Result<String, RouterError> {
    let sources = match config {
        Some(path) => {
            let parsed = tessera::compose::config::SupergraphConfig::read(path)
                .map_err(|d| RouterError::Composition(d.to_string()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            parsed.load(base).await.map_err(|errors| {
                RouterError::Composition(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?
        }
        None => {
            let ports = [
                Accounts::DEFAULT_PORT,
                Products::DEFAULT_PORT,
                Inventory::DEFAULT_PORT,
                Reviews::DEFAULT_PORT,
                Orders::DEFAULT_PORT,
            ];
            schemas()
                .await
                .into_iter()
                .zip(ports)
                .map(|((name, sdl), port)| tessera::compose::SubgraphSource {
                    name: name.to_owned(),
                    url: format!("http://{}/graphql", SocketAddr::new(host, port)),
                    sdl,
                })
                .collect()
        }
    };
    let composed = tessera::compose::compose(&sources);
    composed.supergraph.ok_or_else(|| {
        RouterError::Composition(
            composed
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

/// The router configuration the example runs with: the defaults, and the `x-user-id` header
/// passed on to every subgraph so that `me` works through the router (until the example has
/// real authentication, the header names the acting user).
pub fn router_config() -> tessera::engine::EngineConfig {
    let headers = tessera::headers::HeaderPolicy::with_propagated(
        &tessera::headers::HeadersConfig::default(),
        &[tessera_kit::serve::USER_ID_HEADER.to_owned()],
    )
    .expect("a valid header name");
    tessera::engine::EngineConfig {
        headers,
        ..tessera::engine::EngineConfig::default()
    }
}

/// Starts Tessera's router for `supergraph` on `listener`, with [`router_config`].
pub fn start_router(supergraph: &str, listener: TcpListener) -> Result<RunningRouter, RouterError> {
    let supergraph = tessera::supergraph::Supergraph::parse(supergraph)?;
    let live = std::sync::Arc::new(tessera::live::Live::new(tessera::engine::Engine::new(
        supergraph,
        router_config(),
    )));
    start_router_on(live, &tessera::server::ServerConfig::default(), listener)
}

/// The live dashboard's files (`web/`), embedded at build time.
pub static DASHBOARD: &[tessera::server::assets::Asset] =
    include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

/// Where the dashboard is served, on the router's origin (it talks only to the router).
pub const DASHBOARD_PATH: &str = "/dashboard";

/// `GET /dashboard` (the page) and `GET /dashboard/assets/{file}` (its script and style).
pub fn dashboard_routes() -> axum::Router {
    use axum::extract::Path as UrlPath;
    use axum::http::HeaderMap;
    use axum::response::Redirect;
    use tessera::server::assets;

    axum::Router::new()
        .route(
            DASHBOARD_PATH,
            axum::routing::get(|headers: HeaderMap| async move {
                assets::page(DASHBOARD, "The dashboard", &headers)
            }),
        )
        .route(
            "/dashboard/",
            axum::routing::get(|| async { Redirect::permanent(DASHBOARD_PATH) }),
        )
        .route(
            "/dashboard/assets/{file}",
            axum::routing::get(
                |UrlPath(file): UrlPath<String>, headers: HeaderMap| async move {
                    match assets::find(DASHBOARD, &file) {
                        Some(asset) if asset.immutable => assets::serve(asset, &headers),
                        _ => tessera::server::not_found(headers).await,
                    }
                },
            ),
        )
}

/// Starts Tessera's router over `live` (whose engine a reload may replace) with `config`.
pub fn start_router_on(
    live: std::sync::Arc<tessera::live::Live>,
    config: &tessera::server::ServerConfig,
    listener: TcpListener,
) -> Result<RunningRouter, RouterError> {
    let (app, hub) = tessera::server::app_with_hub(live, config);
    let app = app.merge(dashboard_routes());
    let addr = listener.local_addr()?;
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let stopping = hub.clone();
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.await;
            stopping.shut_down();
        };
        if let Err(err) = tessera::server::serve(
            listener,
            app,
            stopped,
            tessera::server::serving::default_threads(),
        )
        .await
        {
            tracing::error!(error = %err, "router failed");
        }
    });
    Ok(RunningRouter {
        addr,
        hub,
        shutdown: Some(shutdown),
        task,
    })
}
