//! The orders schema: `Order`, `OrderItem`, `User.orders`, the queries and the streams.

use async_graphql::dataloader::DataLoader;
use async_graphql::{
    ComplexObject, Context, Enum, ID, Object, SimpleObject, Subscription as GqlSubscription,
};
use futures_util::{Stream, TryStreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tessera_events as events;
use tessera_kit::{AppState, Error, PageInfo, Result};

use crate::dashboard::{Dashboard, DashboardFeed};
use crate::entity::{item, order};
use crate::loaders::{DashboardId, ItemsOfOrder, OrderId, OrdersDb, OrdersOfBuyer};

/// Where an order stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, not paid yet.
    Placed,
    /// Paid.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Arrived.
    Delivered,
    /// Called off.
    Cancelled,
    /// Refused: inventory could not reserve its stock (`statusReason` says why).
    Rejected,
}

impl OrderStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "PLACED",
            Self::Paid => "PAID",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Reads a stored `status` value.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Placed,
            Self::Paid,
            Self::Shipped,
            Self::Delivered,
            Self::Cancelled,
            Self::Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }

    /// Whether an order in this status can move to `next` through `updateOrderStatus` (only
    /// the saga rejects orders, and a rejected order stays so).
    pub fn can_become(self, next: Self) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Placed, Paid | Cancelled) | (Paid, Shipped | Cancelled) | (Shipped, Delivered)
        )
    }
}

/// An order.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Order {
    /// The order's id.
    pub id: ID,
    /// Where it stands.
    pub status: OrderStatus,
    /// Why it stands there, when that needs saying: what inventory could not reserve for a
    /// rejected order.
    pub status_reason: Option<String>,
    /// Sum of the items' subtotals, in cents.
    pub total: i64,
    /// When it was placed (RFC 3339).
    pub created_at: String,
    /// The buyer's user id (`buyer` resolves it).
    #[graphql(skip)]
    pub buyer_id: i64,
    /// The items when already known (events carry them); otherwise they are loaded.
    #[graphql(skip)]
    pub items: Option<Vec<OrderItem>>,
}

impl Order {
    /// The order of a row, without its items.
    pub fn from_row(row: order::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            status: OrderStatus::parse(&row.status).unwrap_or(OrderStatus::Placed),
            total: row.total,
            created_at: row.created_at.to_rfc3339(),
            buyer_id: row.buyer_id,
            status_reason: row.status_reason,
            items: None,
        }
    }

    /// The order an event carries.
    pub fn from_event(event: events::OrderEvent) -> Self {
        Self {
            id: ID(event.id),
            status: OrderStatus::parse(&event.status).unwrap_or(OrderStatus::Placed),
            status_reason: event.status_reason,
            total: event.total,
            created_at: event.created_at,
            buyer_id: event.buyer_id,
            items: event.items.map(|lines| {
                lines
                    .into_iter()
                    .map(|line| OrderItem {
                        upc: line.upc,
                        quantity: line.quantity,
                        unit_price: line.unit_price,
                    })
                    .collect()
            }),
        }
    }

    /// The event that carries this order.
    pub fn to_event(&self) -> events::OrderEvent {
        events::OrderEvent {
            id: self.id.to_string(),
            status: self.status.as_str().to_owned(),
            status_reason: self.status_reason.clone(),
            total: self.total,
            created_at: self.created_at.clone(),
            buyer_id: self.buyer_id,
            items: self.items.as_ref().map(|items| {
                items
                    .iter()
                    .map(|item| events::OrderLine {
                        upc: item.upc.clone(),
                        quantity: item.quantity,
                        unit_price: item.unit_price,
                    })
                    .collect()
            }),
        }
    }
}

#[ComplexObject]
impl Order {
    /// Who placed it.
    async fn buyer(&self) -> User {
        User {
            id: ID(self.buyer_id.to_string()),
        }
    }

    /// What was ordered.
    async fn items(&self, ctx: &Context<'_>) -> Result<Vec<OrderItem>> {
        if let Some(items) = &self.items {
            return Ok(items.clone());
        }
        let Ok(id) = self.id.parse::<i64>() else {
            return Ok(Vec::new());
        };
        Ok(ctx
            .data_unchecked::<DataLoader<OrdersDb>>()
            .load_one(ItemsOfOrder(id))
            .await?
            .unwrap_or_default())
    }
}

/// One line of an order.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct OrderItem {
    /// The product's upc.
    #[graphql(skip)]
    pub upc: String,
    /// Units ordered.
    pub quantity: i32,
    /// Price per unit when ordered, in cents.
    pub unit_price: i64,
}

impl From<item::Model> for OrderItem {
    fn from(row: item::Model) -> Self {
        Self {
            upc: row.product_upc,
            quantity: row.quantity,
            unit_price: row.unit_price,
        }
    }
}

#[ComplexObject]
impl OrderItem {
    /// The product ordered.
    async fn product(&self) -> Product {
        Product {
            upc: self.upc.clone(),
        }
    }

    /// `quantity × unitPrice`, in cents.
    async fn subtotal(&self) -> i64 {
        i64::from(self.quantity) * self.unit_price
    }
}

/// A product (owned by products); orders only refers to it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(unresolvable = "upc")]
pub struct Product {
    /// The product's upc.
    pub upc: String,
}

/// A user (owned by accounts), with the orders they placed.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct User {
    /// The user's id.
    pub id: ID,
}

#[ComplexObject]
impl User {
    /// The user's orders, newest first.
    async fn orders(&self, ctx: &Context<'_>) -> Result<Vec<Order>> {
        let Ok(id) = self.id.parse::<i64>() else {
            return Ok(Vec::new());
        };
        Ok(ctx
            .data_unchecked::<DataLoader<OrdersDb>>()
            .load_one(OrdersOfBuyer(id))
            .await?
            .unwrap_or_default())
    }
}

/// A page of orders.
#[derive(SimpleObject, Clone, Debug)]
pub struct OrderConnection {
    /// The orders of this page.
    pub nodes: Vec<Order>,
    /// Where this page ends.
    pub page_info: PageInfo,
}

pub(crate) async fn load_order(ctx: &Context<'_>, id: &str) -> Result<Option<Order>> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    Ok(ctx
        .data_unchecked::<DataLoader<OrdersDb>>()
        .load_one(OrderId(id))
        .await?)
}

/// The orders `Query` root.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// One order by id.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        load_order(ctx, &id).await
    }

    /// Orders, newest first: `first` of them after the order with id `after`, optionally of
    /// one status.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        status: Option<OrderStatus>,
        #[graphql(default = 20)] first: u64,
        after: Option<ID>,
    ) -> Result<OrderConnection> {
        if first > 100 {
            return Err(Error::invalid("`first` must be at most 100"));
        }
        let mut query = order::Entity::find().order_by_desc(order::Column::Id);
        if let Some(status) = status {
            query = query.filter(order::Column::Status.eq(status.as_str()));
        }
        if let Some(after) = after {
            let after = after
                .parse::<i64>()
                .map_err(|_| Error::invalid("`after` must be an order id"))?;
            query = query.filter(order::Column::Id.lt(after));
        }
        let mut rows = query
            .limit(first + 1)
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(usize::try_from(first).unwrap_or(0));
        let end_cursor = rows.last().map(|row| row.id.to_string());
        Ok(OrderConnection {
            nodes: rows.into_iter().map(Order::from_row).collect(),
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
        })
    }

    /// The shop's running figures, now.
    async fn dashboard(&self, ctx: &Context<'_>) -> Result<Dashboard> {
        load_dashboard(ctx, crate::dashboard::DASHBOARD_ID)
            .await?
            .ok_or_else(|| Error::Internal("the dashboard did not load".into()))
    }

    /// Resolves `Order` representations (batched).
    #[graphql(entity)]
    async fn find_order_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<Order>> {
        load_order(ctx, &id).await
    }

    /// Resolves `User` representations: any user id can have orders.
    #[graphql(entity)]
    async fn find_user_by_id(&self, #[graphql(key)] id: ID) -> User {
        User { id }
    }

    /// Resolves `Dashboard` representations with the current figures (computed once per
    /// batch, however many representations ask).
    #[graphql(entity)]
    async fn find_dashboard_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<Dashboard>> {
        load_dashboard(ctx, &id).await
    }
}

async fn load_dashboard(ctx: &Context<'_>, id: &str) -> Result<Option<Dashboard>> {
    Ok(ctx
        .data_unchecked::<DataLoader<OrdersDb>>()
        .load_one(DashboardId(id.to_owned()))
        .await?)
}

/// The orders `Subscription` root.
#[derive(Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Every order placed from now on.
    async fn order_placed(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = async_graphql::Result<Order>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::ORDER_PLACED)
            .map_ok(Order::from_event)
    }

    /// Every status change from now on, of order `id` or of all orders.
    async fn order_status_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> impl Stream<Item = async_graphql::Result<Order>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::ORDER_STATUS_CHANGED)
            .map_ok(Order::from_event)
            .try_filter(move |order| {
                std::future::ready(id.as_ref().is_none_or(|id| *id == order.id))
            })
    }

    /// The shop's running figures: now, and again after every order event and stock change.
    /// One computation per event serves every subscriber; a subscriber that falls behind gets
    /// the newest figures, never a backlog.
    async fn dashboard(&self, ctx: &Context<'_>) -> impl Stream<Item = Dashboard> {
        ctx.data_unchecked::<std::sync::Arc<DashboardFeed>>()
            .subscribe()
    }
}
