//! [`Shop`]: the example's five subgraphs, seeded, with Tessera's router in front, for tests
//! that go through the router (queries, subscriptions over every protocol, reloads).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tessera::engine::EngineConfig;
use tessera::live::Live;
use tessera::server::ServerConfig;
use tessera_kit::Running;

use crate::{SubgraphOptions, TestDb, post_graphql, spawn_subgraph};

/// How to start a [`Shop`].
#[derive(Debug, Clone)]
pub struct ShopOptions {
    /// Each subgraph on a PostgreSQL database of its own; otherwise SQLite in a temp dir.
    pub postgres: bool,
    /// The router's engine (header rules, limits).
    pub engine: EngineConfig,
    /// The router's HTTP and subscription settings.
    pub server: ServerConfig,
}

impl Default for ShopOptions {
    /// SQLite, the example's router configuration.
    fn default() -> Self {
        Self {
            postgres: false,
            engine: tessera_example::router_config(),
            server: ServerConfig::default(),
        }
    }
}

/// The five subgraphs and the router in front of them.
pub struct Shop {
    /// The subgraphs by name, with their database when on PostgreSQL.
    pub subgraphs: Vec<(&'static str, Option<TestDb>, Running)>,
    /// The router.
    pub router: tessera_example::RunningRouter,
    /// The engine in service (tests swap it to reload).
    pub live: Arc<Live>,
    /// The supergraph the router started with.
    pub supergraph: String,
}

async fn spawn<S: tessera_kit::Subgraph>(
    postgres: bool,
) -> anyhow::Result<(&'static str, Option<TestDb>, Running)> {
    let db = if postgres {
        Some(TestDb::create().await?)
    } else {
        None
    };
    let options = SubgraphOptions {
        database_url: db.as_ref().map(|db| db.url.clone()),
        seed: true,
        ..SubgraphOptions::default()
    };
    let running = spawn_subgraph::<S>(&options).await?;
    Ok((S::NAME, db, running))
}

impl Shop {
    /// Starts everything.
    pub async fn start(options: ShopOptions) -> anyhow::Result<Self> {
        let postgres = options.postgres;
        let subgraphs = vec![
            spawn::<tessera_accounts::Accounts>(postgres).await?,
            spawn::<tessera_products::Products>(postgres).await?,
            spawn::<tessera_inventory::Inventory>(postgres).await?,
            spawn::<tessera_reviews::Reviews>(postgres).await?,
            spawn::<tessera_orders::Orders>(postgres).await?,
        ];
        let supergraph = compose(&subgraphs).await?;
        let parsed = tessera::supergraph::Supergraph::parse(&supergraph)?;
        let live = Arc::new(Live::new(tessera::engine::Engine::new(
            parsed,
            options.engine,
        )));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let router =
            tessera_example::start_router_on(Arc::clone(&live), &options.server, listener)?;
        Ok(Self {
            subgraphs,
            router,
            live,
            supergraph,
        })
    }

    /// `http://…/graphql` of the router.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.router.addr)
    }

    /// `ws://…/graphql` of the router.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.router.addr)
    }

    /// The subgraph named `name`.
    pub fn subgraph(&self, name: &str) -> &Running {
        &self
            .subgraphs
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("one of the five subgraphs")
            .2
    }

    /// Runs `query` through the router; fails on errors.
    pub async fn query(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = post_graphql(&self.url(), query, variables).await?;
        anyhow::ensure!(body.get("errors").is_none(), "unexpected errors: {body}");
        Ok(body["data"].clone())
    }

    /// Places an order of `quantity` units of the `n`th product for user `buyer`, through the
    /// router; returns its id.
    pub async fn place_order(&self, buyer: u32, n: usize, quantity: u32) -> anyhow::Result<String> {
        let data = self
            .query(
                "mutation($b: ID!, $u: String!, $q: Int!) { placeOrder(input: { buyerId: $b, items: [{ upc: $u, quantity: $q }] }) { id } }",
                json!({ "b": buyer.to_string(), "u": tessera_seed::upc(n), "q": quantity }),
            )
            .await?;
        data["placeOrder"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no order id in {data}"))
    }

    /// Stops subgraph `name` (its WebSocket sessions end with it); returns where it served.
    pub async fn stop_subgraph(&mut self, name: &str) -> anyhow::Result<SocketAddr> {
        let at = self
            .subgraphs
            .iter()
            .position(|(n, _, _)| *n == name)
            .ok_or_else(|| anyhow::anyhow!("no subgraph {name}"))?;
        let (_, db, running) = self.subgraphs.remove(at);
        let addr = running.addr;
        running.shutdown().await;
        if let Some(db) = db {
            db.drop().await?;
        }
        Ok(addr)
    }

    /// Starts the orders subgraph again at `addr` (on a fresh database).
    pub async fn restart_orders(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let options = SubgraphOptions {
            seed: true,
            ..SubgraphOptions::default()
        };
        let running = crate::spawn_subgraph_at::<tessera_orders::Orders>(&options, addr).await?;
        self.subgraphs.push(("orders", None, running));
        Ok(())
    }

    /// Stops everything and drops the databases.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.router.shutdown().await;
        for (_, db, running) in self.subgraphs {
            running.shutdown().await;
            if let Some(db) = db {
                db.drop().await?;
            }
        }
        Ok(())
    }
}

/// The supergraph of the running subgraphs.
async fn compose(subgraphs: &[(&'static str, Option<TestDb>, Running)]) -> anyhow::Result<String> {
    let schemas = tessera_example::schemas().await;
    let sources: Vec<tessera::compose::SubgraphSource> = schemas
        .into_iter()
        .map(|(name, sdl)| {
            let running = &subgraphs
                .iter()
                .find(|(n, _, _)| *n == name)
                .expect("a running subgraph per schema")
                .2;
            tessera::compose::SubgraphSource {
                name: name.to_owned(),
                url: running.graphql_url(),
                sdl,
            }
        })
        .collect();
    let composed = tessera::compose::compose(&sources);
    composed
        .supergraph
        .ok_or_else(|| anyhow::anyhow!("composition failed: {:?}", composed.diagnostics))
}
