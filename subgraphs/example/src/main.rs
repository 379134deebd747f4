//! `tessera-example`: runs the five example subgraphs in one process, on the embedded
//! defaults (SQLite under `./data/`, an in-process event bus, seeded example data).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// Runs Tessera's e-commerce example: accounts :4001, products :4002, inventory :4003,
/// reviews :4004, orders :4005.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address the subgraphs listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Directory of the SQLite databases.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Redis URL; without it, events stay in this process.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Treat `--redis-url` as the comma-separated nodes of a Redis Cluster.
    #[arg(long, env = "REDIS_CLUSTER")]
    redis_cluster: bool,
    /// Don't load the example data into empty databases.
    #[arg(long)]
    no_seed: bool,
    /// Write each subgraph's SDL to DIR/<subgraph>.graphql and exit.
    #[arg(long, value_name = "DIR")]
    export_schema: Option<PathBuf>,
    /// Where the router listens (GraphiQL at its root).
    #[arg(long, env = "ROUTER_LISTEN", default_value = "127.0.0.1:4000")]
    router_listen: std::net::SocketAddr,
    /// The `supergraph.yaml` to compose the router's supergraph from; without it (or when the
    /// file is missing) the subgraphs' SDL in this binary is composed.
    #[arg(long, default_value = "supergraph.yaml")]
    config: PathBuf,
    /// Simulate shop traffic for demos: place this many orders per second through the router
    /// (random buyers and products) and restock what runs low, so the dashboard moves.
    #[arg(
        long,
        env = "SIMULATE_ORDERS_PER_SECOND",
        value_name = "ORDERS_PER_SECOND"
    )]
    simulate: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tessera_kit::app::init_tracing();
    if let Some(dir) = args.export_schema {
        tessera_example::export_schemas(&dir).await?;
        tracing::info!(dir = %dir.display(), "wrote the subgraph schemas");
        return Ok(());
    }
    let mut config = tessera_kit::Config::defaults();
    config.data_dir = args.data_dir;
    config.redis_url = args.redis_url;
    config.redis_cluster = args.redis_cluster;
    config.seed = !args.no_seed;
    let running = tessera_example::start_all(&config, args.host).await?;
    let supergraph_config = args.config.exists().then_some(args.config.as_path());
    let supergraph = tessera_example::compose_example(supergraph_config, args.host).await?;
    let listener = tokio::net::TcpListener::bind(args.router_listen).await?;
    let router = tessera_example::start_router(&supergraph, listener)?;
    tracing::info!(
        "the example is up: five subgraphs and the router; GraphiQL at http://{addr}/, the live \
         dashboard at http://{addr}{dashboard} (Ctrl-C stops)",
        addr = router.addr,
        dashboard = tessera_example::DASHBOARD_PATH,
    );
    let simulation = args.simulate.map(|rate| {
        let url = format!("http://{}/graphql", router.addr);
        tokio::spawn(async move {
            if let Err(err) = tessera_example::simulate::run(url, rate).await {
                tracing::error!(%err, "the traffic simulator stopped");
            }
        })
    });
    tokio::signal::ctrl_c().await?;
    if let Some(simulation) = simulation {
        simulation.abort();
    }
    router.shutdown().await;
    for subgraph in running {
        subgraph.shutdown().await;
    }
    Ok(())
}
