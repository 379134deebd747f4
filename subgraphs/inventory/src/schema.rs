//! The inventory schema: `Product` stock fields, `restock`, and the stock streams.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    ComplexObject, Context, Enum, ID, Object, SimpleObject, Subscription as GqlSubscription,
};
use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use tessera_kit::{AppState, Error, Result, outbox};

use crate::LOW_STOCK;
use crate::entity::stock;

/// The event topic of stock changes.
pub const STOCK_CHANGED: &str = "stock_changed";

/// A product, as inventory sees it: its stock, and a shipping estimate computed from the
/// price and weight that products owns.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Product {
    /// Universal product code: the product's key.
    pub upc: String,
    #[graphql(skip)]
    price: Option<i64>,
    #[graphql(skip)]
    weight: Option<i64>,
}

impl Product {
    fn reference(upc: String) -> Self {
        Self {
            upc,
            price: None,
            weight: None,
        }
    }
}

#[ComplexObject]
impl Product {
    /// Price in cents (owned by products; the router sends it for `shippingEstimate`).
    #[graphql(external)]
    async fn price(&self) -> Result<i64> {
        self.price
            .ok_or_else(|| Error::Internal("price was not provided".into()))
    }

    /// Weight in grams (owned by products; the router sends it for `shippingEstimate`).
    #[graphql(external)]
    async fn weight(&self) -> Result<i64> {
        self.weight
            .ok_or_else(|| Error::Internal("weight was not provided".into()))
    }

    /// Units on hand.
    async fn stock(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_stock(ctx, &self.upc).await?.unwrap_or(0))
    }

    /// Whether at least one unit is on hand.
    async fn in_stock(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(load_stock(ctx, &self.upc).await?.unwrap_or(0) > 0)
    }

    /// Shipping cost in cents: free from $100, otherwise by weight.
    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> Result<i64> {
        let (Some(price), Some(weight)) = (self.price, self.weight) else {
            return Err(Error::invalid(
                "shippingEstimate needs the product's price and weight",
            ));
        };
        Ok(if price >= 10_000 { 0 } else { 499 + weight / 2 })
    }
}

async fn load_stock(ctx: &Context<'_>, upc: &str) -> Result<Option<i64>> {
    Ok(ctx
        .data_unchecked::<DataLoader<StockDb>>()
        .load_one(upc.to_owned())
        .await?)
}

/// Loads stock levels by upc in one statement per batch.
pub struct StockDb {
    app: AppState,
}

impl StockDb {
    /// A loader over `app`'s database.
    pub fn new(app: &AppState) -> Self {
        Self { app: app.clone() }
    }
}

impl Loader<String> for StockDb {
    type Value = i64;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[String],
    ) -> std::result::Result<HashMap<String, i64>, Self::Error> {
        self.app.metrics.observe_batch("stock_by_upc", keys.len());
        let rows = stock::Entity::find()
            .filter(stock::Column::Upc.is_in(keys.iter().cloned()))
            .all(&self.app.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.upc, row.quantity))
            .collect())
    }
}

/// Why stock changed.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockChangeReason {
    /// Units arrived (`restock`).
    Restock,
    /// Units were reserved for an order.
    Order,
}

/// One change of a product's stock, as the `stock_changed` event carries it.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[graphql(complex)]
#[serde(rename_all = "camelCase")]
pub struct StockChange {
    /// The product's upc.
    pub upc: String,
    /// Units on hand after the change.
    pub stock: i64,
    /// Units added (positive) or taken (negative).
    pub delta: i64,
    /// Why it changed.
    pub reason: StockChangeReason,
    /// When it changed (RFC 3339).
    pub at: String,
}

#[ComplexObject]
impl StockChange {
    /// The product whose stock changed.
    async fn product(&self) -> Product {
        Product::reference(self.upc.clone())
    }
}

/// Changes `upc`'s stock by `delta` inside `txn` and writes the `stock_changed` event into the
/// outbox. Returns the event, or `None` when inventory has no such product.
pub(crate) async fn change_stock<C: ConnectionTrait>(
    txn: &C,
    upc: &str,
    delta: i64,
    reason: StockChangeReason,
) -> std::result::Result<Option<StockChange>, DbErr> {
    let now = chrono::Utc::now();
    let updated = stock::Entity::update_many()
        .col_expr(
            stock::Column::Quantity,
            Expr::col(stock::Column::Quantity).add(delta),
        )
        .col_expr(stock::Column::UpdatedAt, Expr::value(now))
        .filter(stock::Column::Upc.eq(upc))
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    let quantity = stock::Entity::find_by_id(upc.to_owned())
        .one(txn)
        .await?
        .map_or(0, |row| row.quantity);
    let change = StockChange {
        upc: upc.to_owned(),
        stock: quantity,
        delta,
        reason,
        at: now.to_rfc3339(),
    };
    outbox::enqueue(txn, STOCK_CHANGED, &change).await?;
    Ok(Some(change))
}

/// The orders dashboard, as inventory extends it: how many products run low.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Dashboard {
    /// The dashboard's key (there is one dashboard, `"shop"`).
    pub id: ID,
}

#[ComplexObject]
impl Dashboard {
    /// Products with stock at or below the low-stock threshold.
    async fn low_stock_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let count = stock::Entity::find()
            .filter(stock::Column::Quantity.lte(LOW_STOCK))
            .count(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

/// The inventory `Query` root.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// Products whose stock is at or below `threshold`, lowest first.
    async fn low_stock_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] threshold: i64,
        #[graphql(default = 20)] first: u64,
    ) -> Result<Vec<Product>> {
        if first > 100 {
            return Err(Error::invalid("`first` must be at most 100"));
        }
        let rows = stock::Entity::find()
            .filter(stock::Column::Quantity.lte(threshold))
            .order_by_asc(stock::Column::Quantity)
            .order_by_asc(stock::Column::Upc)
            .limit(first)
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| Product::reference(row.upc))
            .collect())
    }

    /// Resolves `Product` representations; `price` and `weight` arrive when
    /// `shippingEstimate` is asked for.
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        #[graphql(key)] upc: String,
        price: Option<i64>,
        weight: Option<i64>,
    ) -> Product {
        Product { upc, price, weight }
    }

    /// Resolves `Dashboard` representations.
    #[graphql(entity)]
    async fn find_dashboard_by_id(&self, #[graphql(key)] id: ID) -> Dashboard {
        Dashboard { id }
    }
}

/// The inventory `Mutation` root.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Adds `quantity` units of product `upc`; emits `stockChanged`.
    async fn restock(&self, ctx: &Context<'_>, upc: String, quantity: i64) -> Result<Product> {
        if !(1..=1_000_000).contains(&quantity) {
            return Err(Error::invalid("quantity must be between 1 and 1000000"));
        }
        let app = ctx.data_unchecked::<AppState>();
        let txn = app.db.begin().await?;
        if change_stock(&txn, &upc, quantity, StockChangeReason::Restock)
            .await?
            .is_none()
        {
            // Dropping the transaction rolls it back: nothing changed.
            return Err(Error::not_found("product", upc));
        }
        txn.commit().await?;
        app.events_committed();
        Ok(Product::reference(upc))
    }
}

/// The inventory `Subscription` root.
#[derive(Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Every stock change from now on, of product `upc` or of all products.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        upc: Option<String>,
    ) -> impl Stream<Item = StockChange> {
        ctx.data_unchecked::<AppState>()
            .events::<StockChange>(STOCK_CHANGED)
            .filter(move |change| {
                std::future::ready(upc.as_ref().is_none_or(|upc| *upc == change.upc))
            })
    }

    /// Stock changes that leave a product at or below `threshold` units.
    async fn low_stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] threshold: i64,
    ) -> impl Stream<Item = StockChange> {
        ctx.data_unchecked::<AppState>()
            .events::<StockChange>(STOCK_CHANGED)
            .filter(move |change| std::future::ready(change.stock <= threshold))
    }
}
