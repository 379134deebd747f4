//! Inventory's part of the order saga: reserve stock for every placed order.
//!
//! Orders publishes `order_placed` (through its outbox); inventory takes the items' units in
//! one transaction that also records the order in `reserved_orders` and writes the
//! `stock_changed` events. A redelivered event finds the order recorded and changes nothing.

use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, Set, TransactionTrait};
use serde::Deserialize;
use tessera_kit::AppState;

use crate::entity::reserved_orders;
use crate::schema::{StockChangeReason, change_stock};

/// The event topic orders publishes placed orders on.
pub const ORDER_PLACED: &str = "order_placed";

/// The part of an `order_placed` event inventory reads.
#[derive(Debug, Deserialize)]
struct OrderPlaced {
    id: String,
    items: Vec<OrderedItem>,
}

#[derive(Debug, Deserialize)]
struct OrderedItem {
    upc: String,
    quantity: i64,
}

/// Starts the durable consumer of `order_placed` events (a Redis Streams consumer group on
/// Redis, so orders placed while inventory was down are reserved when it is back).
pub fn spawn(app: AppState) -> tokio::task::JoinHandle<()> {
    let handler_app = app.clone();
    tessera_kit::consume::spawn_consumer(&app, "inventory", ORDER_PLACED, move |event| {
        let app = handler_app.clone();
        async move {
            let order: OrderPlaced = serde_json::from_value(event.payload)
                .map_err(|err| format!("undecodable order_placed event: {err}"))?;
            match reserve(&app, &order).await {
                Ok(true) => app.events_committed(),
                Ok(false) => tracing::debug!(order = order.id, "order already reserved"),
                Err(err) => return Err(format!("reserving stock for order {}: {err}", order.id)),
            }
            Ok(())
        }
    })
}

/// Takes the order's units. Returns false when the order was reserved before.
async fn reserve(app: &AppState, order: &OrderPlaced) -> Result<bool, DbErr> {
    let Ok(order_id) = order.id.parse::<i64>() else {
        tracing::warn!(
            order = order.id,
            "order_placed with a non-numeric id; ignored"
        );
        return Ok(false);
    };
    let txn = app.background_db.begin().await?;
    if reserved_orders::Entity::find_by_id(order_id)
        .one(&txn)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    reserved_orders::ActiveModel {
        order_id: Set(order_id),
        reserved_at: Set(chrono::Utc::now()),
    }
    .insert(&txn)
    .await?;
    for item in &order.items {
        if change_stock(&txn, &item.upc, -item.quantity, StockChangeReason::Order)
            .await?
            .is_none()
        {
            tracing::warn!(
                order = order.id,
                upc = item.upc,
                "ordered product has no stock record"
            );
        }
    }
    txn.commit().await?;
    Ok(true)
}
