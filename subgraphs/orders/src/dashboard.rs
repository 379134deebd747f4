//! The live dashboard: running figures of the shop, as a query, an entity (inventory adds the
//! low-stock figures to it) and a stream that refreshes on every order event and stock change.
//!
//! The stream is computed once per event for every subscriber ([`DashboardFeed`]): a single
//! task listens to the triggering topics while anyone is subscribed, computes the figures, and
//! publishes them into a `watch` channel that each subscription reads. A subscriber that falls
//! behind simply sees the newest figures.

use std::sync::{Arc, Mutex};

use async_graphql::{ID, SimpleObject};
use futures_util::{Stream, StreamExt, stream};
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Expr, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use tessera_events as events;
use tessera_kit::AppState;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::entity::order;

/// The key of the one dashboard.
pub const DASHBOARD_ID: &str = "shop";
/// How many minutes `ordersPerMinute` covers.
pub const SERIES_MINUTES: i64 = 15;

/// The shop's running figures.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct Dashboard {
    /// Always `"shop"`: there is one dashboard.
    pub id: ID,
    /// Orders ever placed.
    pub orders_total: i64,
    /// Orders placed in the last minute.
    pub orders_last_minute: i64,
    /// Orders placed in each of the last 15 minutes, oldest first; the last is the minute
    /// now running.
    pub orders_per_minute: Vec<i64>,
    /// Orders not yet delivered, cancelled or rejected.
    pub open_orders: i64,
    /// Sum of the totals of orders neither cancelled nor rejected, in cents.
    pub revenue: i64,
    /// When these figures were computed (RFC 3339).
    pub computed_at: String,
}

/// The figures as they are now, in three statements.
pub async fn compute(db: &DatabaseConnection) -> Result<Dashboard, DbErr> {
    let now = chrono::Utc::now();
    let (orders_total, revenue, open_orders): (i64, i64, i64) = order::Entity::find()
        .select_only()
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "orders_total")
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN status NOT IN ('CANCELLED', 'REJECTED') THEN total ELSE 0 END), 0) AS BIGINT)"),
            "revenue",
        )
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN status IN ('PLACED', 'PAID', 'SHIPPED') THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            "open_orders",
        )
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or_default();
    let last_minute = order::Entity::find()
        .filter(order::Column::CreatedAt.gte(now - chrono::Duration::minutes(1)))
        .count(db)
        .await?;
    Ok(Dashboard {
        id: ID(DASHBOARD_ID.to_owned()),
        orders_total,
        orders_last_minute: i64::try_from(last_minute).unwrap_or(i64::MAX),
        orders_per_minute: per_minute(db, now).await?,
        open_orders,
        revenue,
        computed_at: now.to_rfc3339(),
    })
}

/// Orders per minute over the last [`SERIES_MINUTES`], in one statement: a sum per minute.
async fn per_minute(
    db: &DatabaseConnection,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<i64>, DbErr> {
    use chrono::{DurationRound, TimeDelta};
    let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    let start = this_minute - TimeDelta::minutes(SERIES_MINUTES - 1);
    let mut query = order::Entity::find()
        .select_only()
        .filter(order::Column::CreatedAt.gte(start));
    for minute in 0..SERIES_MINUTES {
        let from = start + TimeDelta::minutes(minute);
        let until = from + TimeDelta::minutes(1);
        let in_minute = Expr::case(
            Expr::col(order::Column::CreatedAt)
                .gte(from)
                .and(Expr::col(order::Column::CreatedAt).lt(until)),
            1,
        )
        .finally(0);
        // Typed as BIGINT on both backends (SQLite gives a bare SUM no declared type).
        let sum = Func::cast_as(Func::sum(in_minute), Alias::new("BIGINT"));
        query = query.column_as(Expr::from(sum), format!("m{minute}"));
    }
    Ok(query
        .into_model::<Series>()
        .one(db)
        .await?
        .map(|series| series.0)
        .unwrap_or_else(|| vec![0; SERIES_MINUTES as usize]))
}

/// The per-minute counts `m0` … `m14` of [`per_minute`]'s row (NULL, for no orders, is 0).
struct Series(Vec<i64>);

impl sea_orm::FromQueryResult for Series {
    fn from_query_result(row: &sea_orm::QueryResult, pre: &str) -> Result<Self, DbErr> {
        (0..SERIES_MINUTES)
            .map(|minute| {
                row.try_get::<Option<i64>>(pre, &format!("m{minute}"))
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<_, _>>()
            .map(Series)
    }
}

/// The dashboard stream, shared by every subscriber of this process.
pub struct DashboardFeed {
    app: AppState,
    figures: watch::Sender<Option<Arc<Dashboard>>>,
    /// Whether the computing task runs.
    running: Mutex<bool>,
}

impl DashboardFeed {
    /// A feed over `app`'s database and events; it computes only while someone subscribes.
    pub fn new(app: &AppState) -> Arc<Self> {
        Arc::new(Self {
            app: app.clone(),
            figures: watch::Sender::new(None),
            running: Mutex::new(false),
        })
    }

    /// The figures now, then after every order event and stock change.
    pub fn subscribe(self: &Arc<Self>) -> impl Stream<Item = Dashboard> + use<> {
        let receiver = self.figures.subscribe();
        self.start();
        WatchStream::new(receiver)
            .filter_map(|figures| std::future::ready(figures.map(|f| (*f).clone())))
    }

    fn start(self: &Arc<Self>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if *running {
            return;
        }
        *running = true;
        // Figures kept from an earlier run are old: nobody sees them.
        self.figures.send_replace(None);
        tokio::spawn(Arc::clone(self).run());
    }

    /// Computes once per trigger until nobody listens any more.
    async fn run(self: Arc<Self>) {
        // Subscribe before computing the first figures, so no event falls between them.
        let mut triggers = stream::select_all([
            self.app
                .bus
                .subscribe(events::ORDER_PLACED.name())
                .map(|_| ())
                .boxed(),
            self.app
                .bus
                .subscribe(events::ORDER_STATUS_CHANGED.name())
                .map(|_| ())
                .boxed(),
            self.app
                .bus
                .subscribe(events::STOCK_CHANGED.name())
                .map(|_| ())
                .boxed(),
        ]);
        loop {
            match compute(&self.app.db).await {
                Ok(figures) => {
                    self.figures.send_replace(Some(Arc::new(figures)));
                }
                Err(err) => tracing::warn!(?err, "dashboard refresh failed"),
            }
            // Wait for the next trigger; when the last subscriber leaves meanwhile, stop.
            loop {
                if self.stop_if_unwatched() {
                    return;
                }
                tokio::select! {
                    trigger = triggers.next() => match trigger {
                        Some(()) => break,
                        None => {
                            *self.running.lock().unwrap_or_else(|e| e.into_inner()) = false;
                            return;
                        }
                    },
                    () = self.figures.closed() => {}
                }
            }
        }
    }

    /// Stops the task when no subscription is left; decided under the lock that `start`
    /// takes, so a subscriber arriving now is either counted or starts a new task.
    fn stop_if_unwatched(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.figures.receiver_count() == 0 {
            *running = false;
            return true;
        }
        false
    }
}
