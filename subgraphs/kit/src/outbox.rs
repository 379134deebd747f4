//! The transactional outbox and its relay.
//!
//! A mutation writes its change and an outbox row in ONE transaction ([`enqueue`]). The relay
//! ([`spawn_relay`]) publishes unsent rows in id order and marks them sent. When the bus is down
//! the rows wait, so no event is lost. A publish whose answer was lost (Redis ran it, then the
//! connection dropped, or a cluster client sent it again) is retried, and the bus recognizes
//! the row by the outbox's name (`outbox_source`) and its id: each row is published once. Sent
//! rows are deleted once they are older than the retention ([`spawn_pruning`]), so the table
//! stays bounded.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::LockBehavior;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::events::{Event, EventBus, Topic};
use crate::metrics::Metrics;

/// Rows published per relay round.
const BATCH: u64 = 100;
/// How often the relay looks for rows it was not told about (written by another replica, or
/// left over after a crash).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The `outbox` table that every subgraph database has.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One event waiting to be published, or already published.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Publication order.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The event's topic.
        pub topic: String,
        /// The event's payload, as JSON text.
        pub payload: String,
        /// When the row was written.
        pub created_at: DateTimeUtc,
        /// When the relay published it; `None` while it waits.
        pub published_at: Option<DateTimeUtc>,
    }

    /// The outbox has no relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Writes an event on `topic` into the outbox as part of the caller's transaction `txn`.
pub async fn enqueue<C: ConnectionTrait, T: Serialize>(
    txn: &C,
    topic: &Topic<T>,
    payload: &T,
) -> Result<(), DbErr> {
    enqueue_raw(txn, topic.name(), payload).await
}

/// [`enqueue`] for a topic known only by name.
pub async fn enqueue_raw<C: ConnectionTrait>(
    txn: &C,
    topic: &str,
    payload: &impl Serialize,
) -> Result<(), DbErr> {
    let payload = serde_json::to_string(payload)
        .map_err(|err| DbErr::Custom(format!("encoding event: {err}")))?;
    entity::ActiveModel {
        topic: Set(topic.to_owned()),
        payload: Set(payload),
        created_at: Set(chrono::Utc::now()),
        published_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Wakes the relay after a commit, so events leave at once rather than on the next poll.
#[derive(Clone, Default, Debug)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Tells the relay that new rows were committed.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Starts the relay that publishes `db`'s outbox to `bus`.
pub fn spawn_relay(
    db: DatabaseConnection,
    bus: EventBus,
    signal: OutboxSignal,
    metrics: Metrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        // The outbox's name, asked for once (a failure to get it retries like a failed round).
        let mut source: Option<String> = None;
        loop {
            bus.ready().await;
            let round = match &source {
                Some(name) => publish_pending(&db, &bus, name, &metrics).await,
                None => source_name(&db)
                    .await
                    .map(|name| {
                        source = Some(name);
                        BATCH // go on at once, as after a full round
                    })
                    .map_err(RelayError::from),
            };
            match round {
                Ok(published) if published == BATCH => continue,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        () = signal.0.notified() => {}
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay: will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    })
}

/// The name of `db`'s outbox for the event bus: made once, at random, by the first relay to ask
/// (`outbox_source`), and the same for every replica sharing the database.
async fn source_name(db: &DatabaseConnection) -> Result<String, DbErr> {
    use sea_orm::sea_query::{Alias, ExprTrait, OnConflict, Query};
    let table = Alias::new("outbox_source");
    let (name, id) = (Alias::new("name"), Alias::new("id"));
    let insert = Query::insert()
        .into_table(table.clone())
        .columns([name.clone(), id.clone()])
        .values_panic([
            "outbox".into(),
            uuid::Uuid::new_v4().simple().to_string().into(),
        ])
        .on_conflict(OnConflict::column(name.clone()).do_nothing().to_owned())
        .to_owned();
    db.execute(&insert).await?;
    let select = Query::select()
        .column(id)
        .from(table)
        .and_where(Expr::col(name).eq("outbox"))
        .to_owned();
    db.query_one(&select)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("outbox_source".to_owned()))?
        .try_get::<String>("", "id")
}

/// Rows deleted per statement when pruning: a long backlog goes in short transactions.
const PRUNE_BATCH: u64 = 1_000;

/// Starts the task that deletes `db`'s outbox rows published more than `retention` ago, at
/// most a minute after they pass it (sooner for a short retention). Rows not published yet
/// are never deleted, however old. Replicas sharing a database may prune at the same time:
/// each deletes what is still there.
pub fn spawn_pruning(db: DatabaseConnection, retention: Duration) -> JoinHandle<()> {
    let every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A retention beyond what a date can go back keeps everything.
            let Some(cutoff) = chrono::Duration::from_std(retention)
                .ok()
                .and_then(|kept| chrono::Utc::now().checked_sub_signed(kept))
            else {
                continue;
            };
            match prune_published(&db, cutoff).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "outbox: published rows pruned"),
                Err(err) => tracing::warn!(error = %err, "outbox pruning: will retry"),
            }
        }
    })
}

/// Deletes the rows published before `cutoff`, [`PRUNE_BATCH`] at a time; how many went.
async fn prune_published(
    db: &DatabaseConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    let mut deleted = 0;
    loop {
        let ids: Vec<i64> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Id)
            .filter(entity::Column::PublishedAt.lt(cutoff))
            .order_by_asc(entity::Column::Id)
            .limit(PRUNE_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        let full = ids.len() as u64 == PRUNE_BATCH;
        deleted += entity::Entity::delete_many()
            .filter(entity::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        if !full {
            return Ok(deleted);
        }
    }
}

/// The advisory lock that lets one relay at a time publish a PostgreSQL database's outbox.
const RELAY_LOCK: i64 = 0x0074_6573_7365_7261; // "tessera"

/// Publishes up to [`BATCH`] unsent rows in order and marks those that went out. On PostgreSQL
/// the relays of replicas sharing a database take turns (a transaction-scoped advisory lock),
/// so events go out in the outbox's order whichever replica wrote them; the rows are locked too
/// (`FOR UPDATE SKIP LOCKED`), so none is published twice.
async fn publish_pending(
    db: &DatabaseConnection,
    bus: &EventBus,
    source: &str,
    metrics: &Metrics,
) -> Result<u64, RelayError> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [RELAY_LOCK.into()],
        ))
        .await?;
    }
    let rows = entity::Entity::find()
        .filter(entity::Column::PublishedAt.is_null())
        .order_by_asc(entity::Column::Id)
        .limit(BATCH)
        .lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            LockBehavior::SkipLocked,
        )
        .all(&txn)
        .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in &rows {
        let event = Event {
            topic: row.topic.clone(),
            payload: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null),
            id: None,
        };
        match bus.publish_once(&event, source, row.id).await {
            Ok(Some(_)) => {
                metrics.event_published(&row.topic);
                published.push(row.id);
            }
            Ok(None) => {
                tracing::debug!(
                    row = row.id,
                    "outbox relay: the bus had this row already (an answer was lost)"
                );
                published.push(row.id);
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if !published.is_empty() {
        entity::Entity::update_many()
            .col_expr(entity::Column::PublishedAt, Expr::value(chrono::Utc::now()))
            .filter(entity::Column::Id.is_in(published.iter().copied()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(published.len() as u64),
    }
}

/// Why a relay round failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("bus: {0}")]
    Bus(#[from] crate::events::BusError),
}
