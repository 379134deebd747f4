//! The live dashboard: running figures of the shop, as a query, an entity (inventory adds
//! `lowStockCount` to it) and a stream that refreshes on every order event and stock change.

use async_graphql::{ID, SimpleObject};
use futures_util::{Stream, StreamExt, stream};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use tessera_kit::{AppState, Result};

use crate::entity::order;
use crate::{ORDER_PLACED, ORDER_STATUS_CHANGED};

/// The key of the one dashboard.
pub const DASHBOARD_ID: &str = "shop";
/// Inventory's topic of stock changes; the dashboard refreshes on them so that the
/// `lowStockCount` inventory adds moves too.
const STOCK_CHANGED: &str = "stock_changed";

/// The shop's running figures.
#[derive(SimpleObject, Clone, Debug)]
pub struct Dashboard {
    /// Always `"shop"`: there is one dashboard.
    pub id: ID,
    /// Orders ever placed.
    pub orders_total: i64,
    /// Orders placed in the last minute.
    pub orders_last_minute: i64,
    /// Orders not yet delivered or cancelled.
    pub open_orders: i64,
    /// Sum of the totals of orders not cancelled, in cents.
    pub revenue: i64,
    /// When these figures were computed (RFC 3339).
    pub computed_at: String,
}

/// The figures as they are now, in two statements.
pub async fn compute(db: &DatabaseConnection) -> Result<Dashboard> {
    let now = chrono::Utc::now();
    let (orders_total, revenue, open_orders): (i64, i64, i64) = order::Entity::find()
        .select_only()
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "orders_total")
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN status <> 'CANCELLED' THEN total ELSE 0 END), 0) AS BIGINT)"),
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
        open_orders,
        revenue,
        computed_at: now.to_rfc3339(),
    })
}

/// The figures now, then again after every order event or stock change.
pub fn stream(app: AppState) -> impl Stream<Item = Dashboard> {
    // Subscribe before computing the first figures, so no event falls between them.
    let triggers = stream::select_all(
        [ORDER_PLACED, ORDER_STATUS_CHANGED, STOCK_CHANGED]
            .map(|topic| app.events::<serde_json::Value>(topic).map(|_| ()).boxed()),
    );
    stream::once(std::future::ready(()))
        .chain(triggers)
        .then(move |()| {
            let db = app.db.clone();
            async move { compute(&db).await }
        })
        .filter_map(|figures| {
            std::future::ready(
                figures
                    .inspect_err(|err| tracing::warn!(?err, "dashboard refresh failed"))
                    .ok(),
            )
        })
}
