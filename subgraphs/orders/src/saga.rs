//! Orders' part of the order saga (see `tessera_events`): an order inventory could not reserve
//! stock for becomes `REJECTED`, with inventory's reason, and `order_status_changed` says so.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use tessera_events as events;
use tessera_kit::AppState;
use tessera_kit::consume::HandleError;

use crate::entity::order;
use crate::schema::{Order, OrderStatus};

/// The consumer group orders reads inventory's events as.
const GROUP: &str = "orders";

/// Starts the durable consumer of `order_rejected` events.
pub fn spawn(app: &AppState) -> tokio::task::JoinHandle<()> {
    let handler_app = app.clone();
    tessera_kit::consume::spawn_consumer(app, GROUP, &events::ORDER_REJECTED, move |rejected| {
        let app = handler_app.clone();
        async move { on_order_rejected(&app, rejected).await }
    })
}

async fn on_order_rejected(
    app: &AppState,
    rejected: events::OrderRejected,
) -> Result<(), HandleError> {
    let Ok(order_id) = rejected.order_id.parse::<i64>() else {
        return Err(HandleError::Reject(format!(
            "order id {:?} is not a number",
            rejected.order_id
        )));
    };
    match reject(app, order_id, &rejected.message).await {
        Ok(Some(true)) => {
            app.events_committed();
            Ok(())
        }
        Ok(Some(false)) => Ok(()),
        Ok(None) => Err(HandleError::Reject(format!(
            "order {order_id} does not exist"
        ))),
        Err(err) => Err(HandleError::Retry(format!(
            "rejecting order {order_id}: {err}"
        ))),
    }
}

/// Marks the order rejected unless it already moved past where a rejection applies; `None`
/// when there is no such order, `Some(false)` when nothing changed (a redelivery, or an order
/// cancelled meanwhile).
async fn reject(app: &AppState, order_id: i64, reason: &str) -> Result<Option<bool>, DbErr> {
    let txn = app.background_db.begin().await?;
    let Some(row) = order::Entity::find_by_id(order_id).one(&txn).await? else {
        return Ok(None);
    };
    let rejectable = [OrderStatus::Placed.as_str(), OrderStatus::Paid.as_str()];
    let updated = order::Entity::update_many()
        .col_expr(
            order::Column::Status,
            Expr::value(OrderStatus::Rejected.as_str()),
        )
        .col_expr(order::Column::StatusReason, Expr::value(reason))
        .filter(order::Column::Id.eq(order_id))
        .filter(order::Column::Status.is_in(rejectable))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(Some(false));
    }
    let mut changed = Order::from_row(row);
    changed.status = OrderStatus::Rejected;
    changed.status_reason = Some(reason.to_owned());
    tessera_kit::outbox::enqueue(&txn, &events::ORDER_STATUS_CHANGED, &changed.to_event()).await?;
    txn.commit().await?;
    Ok(Some(true))
}
