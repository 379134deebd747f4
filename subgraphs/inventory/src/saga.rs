//! Inventory's part of the order saga (see `tessera_events`).
//!
//! - `order_placed`: take every line's units in one transaction, or none. The transaction
//!   first records the order in `reserved_orders` (a redelivered or concurrently claimed event
//!   finds it there and changes nothing), then takes each line's units with a conditional
//!   update that never goes below zero, and writes the `stock_changed` events. When a product
//!   is unknown or short, that transaction rolls back and another records the order as
//!   `REJECTED` with an `order_rejected` event, which orders consumes.
//! - `order_status_changed` to `CANCELLED`: a reserved order's units go back to stock, once.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use tessera_events as events;
use tessera_kit::AppState;
use tessera_kit::consume::HandleError;

use crate::entity::{reserved_lines, reserved_orders};
use crate::schema::{StockUpdate, change_stock};

/// The consumer group inventory reads orders' events as.
const GROUP: &str = "inventory";

/// What inventory did with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every line's units were taken.
    Reserved,
    /// Nothing was taken; `order_rejected` says why.
    Rejected,
    /// The order was handled before (a redelivery).
    AlreadyHandled,
}

impl Outcome {
    fn column(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Rejected | Self::AlreadyHandled => "REJECTED",
        }
    }
}

/// Starts the durable consumers of orders' events (Redis Streams consumer groups on Redis, so
/// orders placed while inventory was down are handled when it is back).
pub fn spawn(app: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let placed = {
        let app = app.clone();
        tessera_kit::consume::spawn_consumer(
            &app.clone(),
            GROUP,
            &events::ORDER_PLACED,
            move |order| {
                let app = app.clone();
                async move { on_order_placed(&app, order).await }
            },
        )
    };
    let changed = {
        let app = app.clone();
        tessera_kit::consume::spawn_consumer(
            &app.clone(),
            GROUP,
            &events::ORDER_STATUS_CHANGED,
            move |order| {
                let app = app.clone();
                async move { on_order_status_changed(&app, order).await }
            },
        )
    };
    vec![placed, changed]
}

async fn on_order_placed(app: &AppState, order: events::OrderEvent) -> Result<(), HandleError> {
    let outcome = reserve(app, &order).await.map_err(|err| {
        HandleError::Retry(format!("reserving stock for order {}: {err}", order.id))
    })?;
    match outcome {
        Ok(Outcome::AlreadyHandled) => {
            tracing::debug!(order = order.id, "order already handled");
        }
        Ok(outcome) => {
            tracing::info!(order = order.id, ?outcome, "order handled");
            app.events_committed();
        }
        Err(reason) => return Err(HandleError::Reject(reason)),
    }
    Ok(())
}

async fn on_order_status_changed(
    app: &AppState,
    order: events::OrderEvent,
) -> Result<(), HandleError> {
    if order.status != "CANCELLED" {
        return Ok(());
    }
    let Ok(order_id) = order.id.parse::<i64>() else {
        return Err(HandleError::Reject(format!(
            "order id {:?} is not a number",
            order.id
        )));
    };
    match release(app, order_id).await {
        Ok(true) => {
            tracing::info!(order = order.id, "cancelled order's stock released");
            app.events_committed();
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(err) => Err(HandleError::Retry(format!(
            "releasing stock of order {}: {err}",
            order.id
        ))),
    }
}

/// Takes the order's units, or rejects the order. The outer error is the database's (retry);
/// the inner one says the event itself is unusable (dead-letter).
pub async fn reserve(
    app: &AppState,
    order: &events::OrderEvent,
) -> Result<Result<Outcome, String>, DbErr> {
    let Ok(order_id) = order.id.parse::<i64>() else {
        return Ok(Err(format!("order id {:?} is not a number", order.id)));
    };
    let Some(lines) = &order.items else {
        return Ok(Err(format!("order {order_id} came without its lines")));
    };
    let txn = app.background_db.begin().await?;
    if !record(&txn, order_id, Outcome::Reserved).await? {
        return Ok(Ok(Outcome::AlreadyHandled));
    }
    for line in lines {
        let taken = change_stock(
            &txn,
            &line.upc,
            -i64::from(line.quantity),
            events::StockChangeReason::Order,
        )
        .await?;
        let (reason, message) = match taken {
            StockUpdate::Changed(_) => {
                reserved_lines::ActiveModel {
                    order_id: Set(order_id),
                    upc: Set(line.upc.clone()),
                    quantity: Set(i64::from(line.quantity)),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                continue;
            }
            StockUpdate::UnknownProduct => (
                events::RejectionReason::UnknownProduct,
                format!("product {} is not stocked", line.upc),
            ),
            StockUpdate::Insufficient { on_hand } => (
                events::RejectionReason::InsufficientStock,
                format!(
                    "product {} has {on_hand} units on hand, {} were ordered",
                    line.upc, line.quantity
                ),
            ),
        };
        // Nothing of this order is taken: roll back and record the rejection instead.
        drop(txn);
        return reject(app, order_id, reason, &line.upc, message).await;
    }
    txn.commit().await?;
    Ok(Ok(Outcome::Reserved))
}

async fn reject(
    app: &AppState,
    order_id: i64,
    reason: events::RejectionReason,
    upc: &str,
    message: String,
) -> Result<Result<Outcome, String>, DbErr> {
    let txn = app.background_db.begin().await?;
    if !record(&txn, order_id, Outcome::Rejected).await? {
        return Ok(Ok(Outcome::AlreadyHandled));
    }
    let rejected = events::OrderRejected {
        order_id: order_id.to_string(),
        reason,
        upc: upc.to_owned(),
        message,
    };
    tessera_kit::outbox::enqueue(&txn, &events::ORDER_REJECTED, &rejected).await?;
    txn.commit().await?;
    Ok(Ok(Outcome::Rejected))
}

/// Records that `order_id` is handled; false when it was before (inserting it again violates
/// the primary key: a concurrent handler got there first, which PostgreSQL makes this one
/// wait for).
async fn record(txn: &DatabaseTransaction, order_id: i64, outcome: Outcome) -> Result<bool, DbErr> {
    if reserved_orders::Entity::find_by_id(order_id)
        .one(txn)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let inserted = reserved_orders::ActiveModel {
        order_id: Set(order_id),
        reserved_at: Set(chrono::Utc::now()),
        outcome: Set(outcome.column().to_owned()),
    }
    .insert(txn)
    .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(err) if tessera_kit::error::is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Gives a reserved order's units back, once. Returns whether anything went back.
async fn release(app: &AppState, order_id: i64) -> Result<bool, DbErr> {
    let txn = app.background_db.begin().await?;
    let released = reserved_orders::Entity::update_many()
        .col_expr(reserved_orders::Column::Outcome, Expr::value("RELEASED"))
        .filter(reserved_orders::Column::OrderId.eq(order_id))
        .filter(reserved_orders::Column::Outcome.eq("RESERVED"))
        .exec(&txn)
        .await?;
    if released.rows_affected == 0 {
        return Ok(false);
    }
    let lines = reserved_lines::Entity::find()
        .filter(reserved_lines::Column::OrderId.eq(order_id))
        .all(&txn)
        .await?;
    for line in lines {
        change_stock(
            &txn,
            &line.upc,
            line.quantity,
            events::StockChangeReason::Release,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}
