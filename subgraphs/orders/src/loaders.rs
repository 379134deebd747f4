//! The orders DataLoaders: by id, the items of orders, the orders of buyers, and the dashboard.
//! Each batch is one statement (the dashboard's figures: one computation).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use tessera_kit::AppState;

use crate::dashboard::{DASHBOARD_ID, Dashboard};
use crate::entity::{item, order};
use crate::schema::{Order, OrderItem};

/// Key: the order with this id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderId(pub i64);
/// Key: the items of the order with this id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemsOfOrder(pub i64);
/// Key: the orders of the buyer with this user id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrdersOfBuyer(pub i64);
/// Key: the dashboard with this id (there is one, `"shop"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DashboardId(pub String);

/// Loads orders and items over the orders database.
pub struct OrdersDb {
    app: AppState,
}

impl OrdersDb {
    /// A loader over `app`'s database.
    pub fn new(app: &AppState) -> Self {
        Self { app: app.clone() }
    }
}

impl Loader<OrderId> for OrdersDb {
    type Value = Order;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[OrderId]) -> Result<HashMap<OrderId, Order>, Self::Error> {
        self.app.metrics.observe_batch("orders_by_id", keys.len());
        let rows = order::Entity::find()
            .filter(order::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.app.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (OrderId(row.id), Order::from_row(row)))
            .collect())
    }
}

impl Loader<ItemsOfOrder> for OrdersDb {
    type Value = Vec<OrderItem>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[ItemsOfOrder],
    ) -> Result<HashMap<ItemsOfOrder, Vec<OrderItem>>, Self::Error> {
        self.app.metrics.observe_batch("items_by_order", keys.len());
        let rows = item::Entity::find()
            .filter(item::Column::OrderId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(item::Column::Id)
            .all(&self.app.db)
            .await?;
        Ok(tessera_kit::group_by(
            rows,
            |row| ItemsOfOrder(row.order_id),
            |row| row.into(),
        ))
    }
}

impl Loader<OrdersOfBuyer> for OrdersDb {
    type Value = Vec<Order>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[OrdersOfBuyer],
    ) -> Result<HashMap<OrdersOfBuyer, Vec<Order>>, Self::Error> {
        self.app
            .metrics
            .observe_batch("orders_by_buyer", keys.len());
        let rows = order::Entity::find()
            .filter(order::Column::BuyerId.is_in(keys.iter().map(|k| k.0)))
            .order_by_desc(order::Column::Id)
            .all(&self.app.db)
            .await?;
        Ok(tessera_kit::group_by(
            rows,
            |row| OrdersOfBuyer(row.buyer_id),
            Order::from_row,
        ))
    }
}

impl Loader<DashboardId> for OrdersDb {
    type Value = Dashboard;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[DashboardId],
    ) -> Result<HashMap<DashboardId, Dashboard>, Self::Error> {
        self.app.metrics.observe_batch("dashboard", keys.len());
        if !keys.iter().any(|k| k.0 == DASHBOARD_ID) {
            return Ok(HashMap::new());
        }
        let figures = crate::dashboard::compute(&self.app.db)
            .await
            .map_err(Arc::new)?;
        Ok(HashMap::from([(
            DashboardId(DASHBOARD_ID.to_owned()),
            figures,
        )]))
    }
}
