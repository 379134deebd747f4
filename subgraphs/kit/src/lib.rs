//! The shared runtime of Tessera's subgraphs.
//!
//! A subgraph crate implements [`Subgraph`] (its schema roots, DataLoaders, migrator and seed
//! data) and its binary calls [`run`]. Everything else lives here, once.
//!
//! # Layout
//!
//! - [`config`]: CLI flags with environment fallbacks ([`Config`]).
//! - [`db`]: connect (SQL statements counted through sea-orm's metric callback) and migrate.
//! - [`events`]: the [`EventBus`]: one Redis subscriber connection per process, fanned out
//!   in-process, or an in-process bus when no Redis is configured.
//! - [`outbox`]: [`outbox::enqueue`] inside a mutation's transaction, and the relay that
//!   publishes committed rows.
//! - [`resume`]: event ids on subscription responses, and `extensions.lastEventId` to resume
//!   after one.
//! - [`serve`]: the axum app: `/graphql` over HTTP and WebSocket, `/health`, `/metrics`.
//! - [`metrics`]: per-process Prometheus metrics.
//! - [`error`]: the resolver [`Error`] and the extension that puts `extensions.code` on every
//!   GraphQL error.
//! - [`app`]: the [`Subgraph`] trait, [`start`] (for tests and embedding) and [`run`] (for
//!   binaries).

pub mod app;
pub mod config;
pub mod consume;
pub mod db;
pub mod error;
pub mod events;
pub mod metrics;
pub mod outbox;
pub mod resume;
pub mod serve;

/// Where a page of results ends: the `PageInfo` that every paginated subgraph shares
/// (`@shareable`, since several subgraphs resolve it).
#[derive(async_graphql::SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(shareable)]
pub struct PageInfo {
    /// Whether more results follow.
    pub has_next_page: bool,
    /// The cursor to pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

pub use app::{AppState, Running, StartError, Subgraph, SubgraphSchema, run, schema, sdl, start};
pub use config::Config;
pub use error::{Error, Result};
pub use events::{Event, EventBus, Topic};
pub use metrics::{Metrics, Pool};
pub use serve::Viewer;

/// How long a DataLoader waits for more keys before it runs a batch, by default (ms).
///
/// async-graphql's default (1 ms) splits batches when resolving a wide list takes longer than
/// that (a debug build under load), which turns one statement per level into several. A few
/// milliseconds per level of nesting buys a statement count that depends only on depth;
/// `--loader-delay-ms` widens it for busier machines.
pub const LOADER_DELAY_MS: u64 = 5;

/// A DataLoader over `loader` that batches keys for `app`'s window (`--loader-delay-ms`,
/// [`LOADER_DELAY_MS`] by default).
pub fn loader<T: Send + Sync + 'static>(
    app: &AppState,
    loader: T,
) -> async_graphql::dataloader::DataLoader<T> {
    async_graphql::dataloader::DataLoader::new(loader, tokio::spawn).delay(app.loader_delay)
}

/// Groups `rows` by `key` for a one-to-many DataLoader batch: every key asked for gets the
/// rows that belong to it (keys without rows are simply absent).
pub fn group_by<R, K, V>(
    rows: impl IntoIterator<Item = R>,
    key: impl Fn(&R) -> K,
    value: impl Fn(R) -> V,
) -> std::collections::HashMap<K, Vec<V>>
where
    K: std::hash::Hash + Eq,
{
    let mut grouped: std::collections::HashMap<K, Vec<V>> = std::collections::HashMap::new();
    for row in rows {
        grouped.entry(key(&row)).or_default().push(value(row));
    }
    grouped
}

/// Re-exported so subgraph crates and tests name the same versions.
pub use async_graphql;
pub use sea_orm;
