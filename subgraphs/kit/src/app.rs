//! The [`Subgraph`] trait a subgraph crate implements, and the start-up that turns it into a
//! running server.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;

use async_graphql::{ObjectType, Schema, SchemaBuilder, SubscriptionType};
use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db;
use crate::error::ErrorCodes;
use crate::events::{BusError, EventBus};
use crate::metrics::{Metrics, Pool};
use crate::outbox::{self, OutboxSignal};

/// Deepest selection a subgraph accepts.
const MAX_DEPTH: usize = 32;
/// Largest query complexity a subgraph accepts.
const MAX_COMPLEXITY: usize = 20_000;

/// The schema type of subgraph `S`.
pub type SubgraphSchema<S> =
    Schema<<S as Subgraph>::Query, <S as Subgraph>::Mutation, <S as Subgraph>::Subscription>;

/// What a subgraph crate provides; the kit does the rest.
pub trait Subgraph: Send + Sync + 'static {
    /// The subgraph's name, as in `supergraph.yaml`.
    const NAME: &'static str;
    /// The port it listens on when no `--listen` is given.
    const DEFAULT_PORT: u16;
    /// The `Query` root.
    type Query: ObjectType + Default + 'static;
    /// The `Mutation` root (`EmptyMutation` when there is none).
    type Mutation: ObjectType + Default + 'static;
    /// The `Subscription` root (`EmptySubscription` when there is none).
    type Subscription: SubscriptionType + Default + 'static;
    /// The migrations of the subgraph's own database.
    type Migrator: MigratorTrait;

    /// Adds the subgraph's own data (its DataLoaders) to the schema.
    fn register(
        builder: SchemaBuilder<Self::Query, Self::Mutation, Self::Subscription>,
        app: &AppState,
    ) -> SchemaBuilder<Self::Query, Self::Mutation, Self::Subscription>;

    /// Loads the example data into an empty database; does nothing when data is there.
    fn seed(db: &DatabaseConnection) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Starts the subgraph's background workers, such as event consumers.
    fn workers(_app: &AppState) -> Vec<JoinHandle<()>> {
        Vec::new()
    }
}

/// What every resolver and worker of a running subgraph shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The subgraph's name.
    pub name: &'static str,
    /// The pool that serves requests.
    pub db: DatabaseConnection,
    /// The pool for background work (relay, consumers), counted apart from requests.
    pub background_db: DatabaseConnection,
    /// The event bus.
    pub bus: EventBus,
    /// The process's metrics.
    pub metrics: Metrics,
    /// Wakes the outbox relay after a commit.
    pub outbox: OutboxSignal,
    /// How long DataLoaders wait for more keys before running a batch.
    pub loader_delay: std::time::Duration,
    /// How durable consumers retry, give up and take over.
    pub consumers: crate::consume::ConsumerOptions,
}

impl AppState {
    /// Every event on `topic` for a subscription resolver: after the request's
    /// `extensions.lastEventId` when it names one (replayed, then live), else from now on;
    /// decoded, counted as received, and each response tagged with its event's id
    /// ([`crate::resume`]). Ends with an `EVENT_GAP` error when events after that id are no
    /// longer kept. Events that don't decode are logged and skipped.
    pub fn follow<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        ctx: &async_graphql::Context<'_>,
        topic: &crate::events::Topic<T>,
    ) -> impl futures_util::Stream<Item = async_graphql::Result<T>> + Send + 'static {
        use async_graphql::ErrorExtensions as _;
        let cursor = ctx
            .data_opt::<std::sync::Arc<crate::resume::Cursor>>()
            .cloned();
        let after = cursor.as_ref().and_then(|cursor| cursor.after());
        let metrics = self.metrics.clone();
        let counted = topic.name();
        futures_util::StreamExt::filter_map(self.bus.follow(counted, after), move |item| {
            let out = match item {
                Ok(event) => {
                    metrics.event_received(counted);
                    if let Some(cursor) = &cursor {
                        cursor.record(event.id);
                    }
                    crate::events::decode::<T>(&event).map(Ok)
                }
                Err(gap) => Some(Err(async_graphql::Error::new(gap.to_string())
                    .extend_with(|_, ext| ext.set("code", crate::resume::EVENT_GAP)))),
            };
            std::future::ready(out)
        })
    }

    /// Wakes the outbox relay: call after committing a transaction that enqueued events.
    pub fn events_committed(&self) {
        self.outbox.notify();
    }
}

/// Why a subgraph failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Connecting to the database or migrating it failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// The event bus could not be set up.
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds subgraph `S`'s schema; with `app`, ready to serve, without it only good for its SDL.
pub fn schema<S: Subgraph>(app: Option<&AppState>) -> SubgraphSchema<S> {
    let builder = Schema::build(
        S::Query::default(),
        S::Mutation::default(),
        S::Subscription::default(),
    )
    .enable_federation()
    .enable_subscription_in_federation()
    .extension(ErrorCodes)
    .extension(crate::resume::EventIds)
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY);
    match app {
        Some(app) => S::register(
            builder
                .data(app.clone())
                .data(app.db.clone())
                .data(app.bus.clone()),
            app,
        )
        .finish(),
        None => builder.finish(),
    }
}

/// Subgraph `S`'s SDL exactly as `{ _service { sdl } }` returns it.
pub async fn sdl<S: Subgraph>() -> String {
    let response = schema::<S>(None).execute("{ _service { sdl } }").await;
    let data = response.data.into_json().unwrap_or_default();
    data["_service"]["sdl"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A subgraph serving on a bound listener. Dropping it stops the server and its tasks.
pub struct Running {
    /// The address it serves on.
    pub addr: SocketAddr,
    /// Its shared state (metrics, database, bus), for tests and embedding.
    pub app: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// `http://<addr>/graphql`.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// `ws://<addr>/graphql`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish and ends the background tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        let mut tasks = std::mem::take(&mut self.tasks);
        // The server task is first; it ends once in-flight requests are done.
        if !tasks.is_empty() {
            let server = tasks.remove(0);
            let _ = server.await;
        }
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects, migrates, optionally seeds, and serves subgraph `S` on `listener`.
pub async fn start<S: Subgraph>(
    config: &Config,
    listener: TcpListener,
) -> Result<Running, StartError> {
    let metrics = Metrics::new(S::NAME);
    let url = config.database_url_for(S::NAME);
    tracing::info!(subgraph = S::NAME, database = %redact(&url), "connecting to the database");
    let db = db::connect(&url, &metrics, Pool::Requests).await?;
    db::migrate::<S::Migrator>(&db, S::NAME).await?;
    let background_db = db::connect(&url, &metrics, Pool::Background).await?;
    if config.seed {
        tracing::info!(subgraph = S::NAME, "seeding example data (if empty)");
        S::seed(&db).await?;
    }
    match (&config.shared_bus, &config.redis_url) {
        (Some(_), _) => {}
        (None, Some(redis)) => {
            tracing::info!(subgraph = S::NAME, redis = %redact(redis), prefix = config.event_prefix, "event bus: redis");
        }
        (None, None) => tracing::info!(subgraph = S::NAME, "event bus: in-process"),
    }
    let bus = config.event_bus()?;
    let app = AppState {
        name: S::NAME,
        db,
        background_db: background_db.clone(),
        bus: bus.clone(),
        metrics,
        outbox: OutboxSignal::default(),
        loader_delay: std::time::Duration::from_millis(config.loader_delay_ms),
        consumers: crate::consume::ConsumerOptions {
            max_attempts: config.consumer_max_attempts.max(1),
            claim_idle: std::time::Duration::from_millis(config.consumer_claim_idle_ms.max(1)),
            ..crate::consume::ConsumerOptions::default()
        },
    };
    let (shutdown, stop) = watch::channel(false);
    let router = crate::serve::router(schema::<S>(Some(&app)), app.clone(), stop.clone());
    let addr = listener.local_addr()?;
    let mut server_stop = stop;
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "server failed");
        }
    });
    let mut tasks = vec![
        server,
        outbox::spawn_relay(
            background_db.clone(),
            bus,
            app.outbox.clone(),
            app.metrics.clone(),
        ),
        outbox::spawn_pruning(
            background_db,
            std::time::Duration::from_secs(config.outbox_retention_secs),
        ),
    ];
    tasks.extend(S::workers(&app));
    tracing::info!(subgraph = S::NAME, %addr, "serving GraphQL on http://{addr}/graphql");
    Ok(Running {
        addr,
        app,
        shutdown,
        tasks,
    })
}

/// The main of a subgraph binary: parse flags, set up logging, serve until Ctrl-C or SIGTERM.
pub async fn run<S: Subgraph>() -> Result<(), StartError> {
    let config = <Config as clap::Parser>::parse();
    init_tracing();
    if config.print_sdl {
        print!("{}", sdl::<S>().await);
        return Ok(());
    }
    let listen = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], S::DEFAULT_PORT)));
    let listener = TcpListener::bind(listen).await?;
    let running = start::<S>(&config, listener).await?;
    shutdown_signal().await;
    tracing::info!(subgraph = S::NAME, "shutting down");
    running.shutdown().await;
    Ok(())
}

/// Logs to stderr (never stdout, which `--print-sdl` uses), filtered by `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A URL with its password replaced, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
