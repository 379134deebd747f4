//! The whole e-commerce example in one process.
//!
//! [`start_all`] starts the five subgraphs, each on its own port with its own database, sharing
//! one event bus: in-process by default, so cross-subgraph events (the order saga, the live
//! dashboard) work with no Redis; or Redis when a URL is given. [`export_schemas`] writes each
//! subgraph's SDL into `schema/`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use tessera_accounts::Accounts;
use tessera_inventory::Inventory;
use tessera_kit::{Config, EventBus, Running, StartError, Subgraph};
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
        config.shared_bus = Some(match &config.redis_url {
            Some(url) => EventBus::redis(url, &config.event_prefix)?,
            None => EventBus::in_process(&config.event_prefix),
        });
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
