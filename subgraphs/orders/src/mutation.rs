//! `placeOrder` and `updateOrderStatus`.

use std::collections::HashMap;

use async_graphql::{Context, ID, InputObject, Object};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use tessera_kit::{AppState, Error, Result, outbox};

use crate::entity::{item, order, price};
use crate::schema::{Order, OrderItem, OrderStatus};
use tessera_events as events;

/// Most lines one order may have.
const MAX_ITEMS: usize = 50;
/// Most units of one line.
const MAX_QUANTITY: i32 = 100;

/// One line of `placeOrder`.
#[derive(InputObject)]
pub struct OrderItemInput {
    /// The product's upc.
    pub upc: String,
    /// Units, 1 to 100.
    pub quantity: i32,
}

/// What `placeOrder` takes.
#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// The buyer's user id.
    pub buyer_id: ID,
    /// 1 to 50 lines.
    pub items: Vec<OrderItemInput>,
}

/// The orders `Mutation` root.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Places an order at the current prices; emits `orderPlaced`. Inventory then reserves
    /// the stock.
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> Result<Order> {
        let buyer_id = input
            .buyer_id
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::invalid("buyerId must be a user id"))?;
        if input.items.is_empty() || input.items.len() > MAX_ITEMS {
            return Err(Error::invalid(format!(
                "an order has 1 to {MAX_ITEMS} items"
            )));
        }
        if let Some(bad) = input
            .items
            .iter()
            .find(|line| !(1..=MAX_QUANTITY).contains(&line.quantity))
        {
            return Err(Error::invalid(format!(
                "quantity of {} must be between 1 and {MAX_QUANTITY}",
                bad.upc
            )));
        }
        let app = ctx.data_unchecked::<AppState>();
        let prices: HashMap<String, i64> = price::Entity::find()
            .filter(price::Column::Upc.is_in(input.items.iter().map(|line| line.upc.clone())))
            .all(&app.db)
            .await?
            .into_iter()
            .map(|row| (row.upc, row.price))
            .collect();
        let mut items = Vec::with_capacity(input.items.len());
        for line in input.items {
            let unit_price = *prices
                .get(&line.upc)
                .ok_or_else(|| Error::not_found("product", &line.upc))?;
            items.push(OrderItem {
                upc: line.upc,
                quantity: line.quantity,
                unit_price,
            });
        }
        let total = items
            .iter()
            .map(|line| i64::from(line.quantity) * line.unit_price)
            .sum();

        let txn = app.db.begin().await?;
        let row = order::ActiveModel {
            buyer_id: Set(buyer_id),
            status: Set(OrderStatus::Placed.as_str().to_owned()),
            total: Set(total),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let rows = items.iter().map(|line| item::ActiveModel {
            order_id: Set(row.id),
            product_upc: Set(line.upc.clone()),
            quantity: Set(line.quantity),
            unit_price: Set(line.unit_price),
            ..Default::default()
        });
        item::Entity::insert_many(rows).exec(&txn).await?;
        let mut placed = Order::from_row(row);
        placed.items = Some(items);
        outbox::enqueue(&txn, &events::ORDER_PLACED, &placed.to_event()).await?;
        txn.commit().await?;
        app.events_committed();
        Ok(placed)
    }

    /// Moves an order on (PLACED → PAID → SHIPPED → DELIVERED, or to CANCELLED before it
    /// ships); emits `orderStatusChanged`.
    async fn update_order_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: OrderStatus,
    ) -> Result<Order> {
        let order_id = id
            .parse::<i64>()
            .map_err(|_| Error::not_found("order", id.as_str()))?;
        let app = ctx.data_unchecked::<AppState>();
        let txn = app.db.begin().await?;
        let row = order::Entity::find_by_id(order_id)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("order", id.as_str()))?;
        let current = OrderStatus::parse(&row.status).unwrap_or(OrderStatus::Placed);
        if !current.can_become(status) {
            return Err(Error::invalid(format!(
                "an order that is {} cannot become {}",
                current.as_str(),
                status.as_str()
            )));
        }
        // Conditional on the status read above, so two racing updates cannot both win.
        let updated = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(status.as_str()))
            .filter(order::Column::Id.eq(order_id))
            .filter(order::Column::Status.eq(current.as_str()))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::invalid("the order changed meanwhile; try again"));
        }
        let mut changed = Order::from_row(row);
        changed.status = status;
        outbox::enqueue(&txn, &events::ORDER_STATUS_CHANGED, &changed.to_event()).await?;
        txn.commit().await?;
        app.events_committed();
        Ok(changed)
    }
}
