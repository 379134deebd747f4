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
    /// Every subgraph on the shared Redis under one prefix of the shop's own (the saga runs,
    /// and a restarted subgraph keeps its event history); otherwise an in-process bus each.
    pub redis: bool,
    /// With `redis`: the nodes of a Redis Cluster (comma-separated URLs) instead of the shared
    /// Redis.
    pub redis_cluster: Option<String>,
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
            redis: false,
            redis_cluster: None,
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
    /// The subgraphs' Redis prefix, when they share Redis.
    pub event_prefix: Option<String>,
    /// Their Redis: URL, and whether it lists a cluster's nodes.
    redis: Option<(String, bool)>,
}

/// How a subgraph of a shop on `db` (if any) and `redis` (URL and whether a cluster, with the
/// prefix) runs.
fn subgraph_options(
    db: Option<&TestDb>,
    redis: Option<(&(String, bool), &str)>,
) -> SubgraphOptions {
    let mut options = SubgraphOptions {
        database_url: db.map(|db| db.url.clone()),
        seed: true,
        ..SubgraphOptions::default()
    };
    if let Some(((url, cluster), prefix)) = redis {
        options.redis_url = Some(url.clone());
        options.redis_cluster = *cluster;
        options.event_prefix = prefix.to_owned();
    }
    options
}

async fn spawn<S: tessera_kit::Subgraph>(
    postgres: bool,
    redis: Option<(&(String, bool), &str)>,
) -> anyhow::Result<(&'static str, Option<TestDb>, Running)> {
    let db = if postgres {
        Some(TestDb::create().await?)
    } else {
        None
    };
    let options = subgraph_options(db.as_ref(), redis);
    let running = spawn_subgraph::<S>(&options).await?;
    Ok((S::NAME, db, running))
}

impl Shop {
    /// Starts everything.
    pub async fn start(options: ShopOptions) -> anyhow::Result<Self> {
        let postgres = options.postgres;
        let event_prefix = options.redis.then(crate::unique_prefix);
        let redis = options.redis.then(|| match &options.redis_cluster {
            Some(nodes) => (nodes.clone(), true),
            None => (crate::REDIS_URL.to_owned(), false),
        });
        let on = redis.as_ref().zip(event_prefix.as_deref());
        let subgraphs = vec![
            spawn::<tessera_accounts::Accounts>(postgres, on).await?,
            spawn::<tessera_products::Products>(postgres, on).await?,
            spawn::<tessera_inventory::Inventory>(postgres, on).await?,
            spawn::<tessera_reviews::Reviews>(postgres, on).await?,
            spawn::<tessera_orders::Orders>(postgres, on).await?,
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
            event_prefix,
            redis,
        })
    }

    /// How a further subgraph of this shop on `db` (if any) runs: seeded, on the shop's Redis
    /// and prefix when it has them.
    pub fn subgraph_options(&self, db: Option<&TestDb>) -> SubgraphOptions {
        subgraph_options(db, self.redis.as_ref().zip(self.event_prefix.as_deref()))
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
        let (db, running) = self.take_subgraph(name)?;
        let addr = running.addr;
        running.shutdown().await;
        if let Some(db) = db {
            db.drop().await?;
        }
        Ok(addr)
    }

    /// Takes subgraph `name` out of the shop, running, with its database: the caller stops
    /// it and starts it again ([`Shop::subgraph_options`] gives its settings).
    pub fn take_subgraph(&mut self, name: &str) -> anyhow::Result<(Option<TestDb>, Running)> {
        let at = self
            .subgraphs
            .iter()
            .position(|(n, _, _)| *n == name)
            .ok_or_else(|| anyhow::anyhow!("no subgraph {name}"))?;
        let (_, db, running) = self.subgraphs.remove(at);
        Ok((db, running))
    }

    /// Starts the orders subgraph again at `addr` (on a fresh database; on the shop's Redis
    /// prefix when it has one).
    pub async fn restart_orders(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let options = self.subgraph_options(None);
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
