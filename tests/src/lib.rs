//! The harness behind Tessera's integration tests: real subgraph servers on `127.0.0.1:0`, a
//! PostgreSQL database and a Redis channel prefix of their own per test, and real HTTP and
//! `graphql-transport-ws` clients. Nothing is mocked.
//!
//! # Layout
//!
//! - [`db`]: [`TestDb`], a throw-away PostgreSQL database (`CREATE DATABASE test_<uuid>`).
//! - [`subgraph`]: [`SubgraphOptions`] and [`spawn_subgraph`], which starts any
//!   [`tessera_kit::Subgraph`] on a fresh listener and returns once `/health` answers 200;
//!   [`unique_prefix`] keeps each test's Redis channels apart.
//! - [`http`]: [`post_graphql`] and [`post_raw`] for GraphQL over HTTP.
//! - [`ws`]: [`WsClient`], a `graphql-transport-ws` client for subscriptions.
//! - [`private_redis`]: [`PrivateRedis`], a `redis-server` of the test's own that can be killed
//!   and restarted on the same port, for reconnection tests.
//! - [`redis_cluster`]: [`RedisCluster`], a three-node Redis Cluster of the test's own, and
//!   [`TestRedis`], the shared server or such a cluster, for tests that run on both.
//! - [`node`]: [`NodeScript`], a Node script of `tests/js` (npm clients, browser drivers).
//! - [`binaries`]: [`binary`], the path of a workspace binary, and [`free_port`].
//! - [`temp_dir`]: [`TempDir`], a directory of the test's own, removed on drop.
//! - [`poll`]: [`wait_until`], the only sanctioned way to wait for something to happen.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use tessera_tests::{SubgraphOptions, TestDb, post_graphql, spawn_subgraph};
//!
//! let db = TestDb::create().await?;
//! let opts = SubgraphOptions {
//!     database_url: Some(db.url.clone()),
//!     seed: true,
//!     ..SubgraphOptions::default()
//! };
//! let running = spawn_subgraph::<tessera_accounts::Accounts>(&opts).await?;
//! let body = post_graphql(&running.graphql_url(), "{ __typename }", serde_json::json!({})).await?;
//! assert_eq!(body["data"]["__typename"], "Query");
//! running.shutdown().await;
//! db.drop().await?;
//! # Ok(())
//! # }
//! ```

pub mod binaries;
pub mod db;
pub mod http;
pub mod node;
pub mod poll;
pub mod private_redis;
pub mod redis_cluster;
pub mod shop;
pub mod subgraph;
pub mod temp_dir;
pub mod ws;

pub use binaries::{binary, free_port};
pub use db::TestDb;
pub use http::{
    post_graphql, post_graphql_with_headers, post_raw, post_raw_with_headers, read_stream_until,
};
pub use node::NodeScript;
pub use poll::wait_until;
pub use private_redis::PrivateRedis;
pub use redis_cluster::{RedisCluster, TestRedis};
pub use shop::{Shop, ShopOptions};
pub use subgraph::{
    SubgraphOptions, spawn_seeded, spawn_subgraph, spawn_subgraph_at, unique_prefix,
};
pub use temp_dir::TempDir;
pub use ws::WsClient;

/// The shared PostgreSQL server's maintenance database, used to create and drop test databases.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The shared Redis server; tests keep apart by [`unique_prefix`], not by server.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
