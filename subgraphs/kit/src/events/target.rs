//! Where the bus's Redis is: one server, or a Redis Cluster, and a connection to either.
//!
//! On a cluster every key and channel of a topic carries the topic as its hash tag
//! (`<prefix>stream:{<topic>}`, `<prefix>{<topic>}`), so a topic's stream, its first-id record,
//! its dead letters and its sharded channel live in one hash slot: the publish script touches
//! one node, and `SPUBLISH` reaches only the subscribers of that shard.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// One Redis server, or the seed nodes of a Redis Cluster.
#[derive(Clone)]
pub enum RedisTarget {
    /// A single server (with or without replicas behind it).
    Single(redis::Client),
    /// A Redis Cluster, found from these nodes.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(_) => f.write_str("RedisTarget::Single"),
            Self::Cluster(nodes) => write!(f, "RedisTarget::Cluster({} seed nodes)", nodes.len()),
        }
    }
}

impl RedisTarget {
    /// `url` as one server, or with `cluster` as a comma-separated list of a cluster's nodes.
    pub fn parse(url: &str, cluster: bool) -> redis::RedisResult<Self> {
        if cluster {
            let nodes: Vec<String> = url
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .map(str::to_owned)
                .collect();
            // Checks the URLs now rather than at the first connection.
            ClusterClient::new(nodes.clone())?;
            Ok(Self::Cluster(nodes))
        } else {
            Ok(Self::Single(redis::Client::open(url)?))
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A cluster client for `nodes` with the bus's timeouts.
    pub(super) fn cluster_builder(nodes: &[String], response: Duration) -> ClusterClientBuilder {
        ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response)
            .retries(2)
    }

    /// A shared connection that reconnects by itself (commands fail fast while it cannot).
    pub(super) async fn shared(&self) -> redis::RedisResult<RedisConnection> {
        Ok(match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                RedisConnection::Single(client.get_connection_manager_with_config(config).await?)
            }
            Self::Cluster(nodes) => RedisConnection::Cluster(
                Self::cluster_builder(nodes, Duration::from_secs(2))
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
        })
    }

    /// A connection of its own, for blocking reads that wait up to `response` for an answer.
    pub async fn dedicated(&self, response: Duration) -> redis::RedisResult<RedisConnection> {
        Ok(match self {
            Self::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(response))
                    .set_connection_timeout(Some(Duration::from_secs(2)));
                RedisConnection::Multiplexed(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Self::Cluster(nodes) => RedisConnection::Cluster(
                Self::cluster_builder(nodes, response)
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
        })
    }
}

/// A connection to a [`RedisTarget`]; commands run on it like on any redis-rs connection.
#[derive(Clone)]
pub enum RedisConnection {
    /// To one server, reconnecting by itself.
    Single(ConnectionManager),
    /// To one server, for one user.
    Multiplexed(redis::aio::MultiplexedConnection),
    /// To a cluster: each command goes to the node that holds its keys.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Multiplexed(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Multiplexed(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Multiplexed(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
