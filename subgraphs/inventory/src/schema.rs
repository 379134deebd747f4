//! The inventory schema: `Product` stock fields, `restock`, and the stock streams.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    ComplexObject, Context, Enum, ID, Object, SimpleObject, Subscription as GqlSubscription,
};
use futures_util::{Stream, TryStreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use tessera_events as events;
use tessera_kit::{AppState, Error, Result, outbox};

use crate::LOW_STOCK;
use crate::entity::stock;

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
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum StockChangeReason {
    /// Units arrived (`restock`).
    Restock,
    /// Units were reserved for an order.
    Order,
    /// A cancelled order's reserved units went back.
    Release,
}

impl From<events::StockChangeReason> for StockChangeReason {
    fn from(reason: events::StockChangeReason) -> Self {
        match reason {
            events::StockChangeReason::Restock => Self::Restock,
            events::StockChangeReason::Order => Self::Order,
            events::StockChangeReason::Release => Self::Release,
        }
    }
}

/// One change of a product's stock.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
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

impl From<events::StockChanged> for StockChange {
    fn from(change: events::StockChanged) -> Self {
        Self {
            upc: change.upc,
            stock: change.stock,
            delta: change.delta,
            reason: change.reason.into(),
            at: change.at,
        }
    }
}

#[ComplexObject]
impl StockChange {
    /// The product whose stock changed.
    async fn product(&self) -> Product {
        Product::reference(self.upc.clone())
    }
}

/// What [`change_stock`] did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StockUpdate {
    /// The stock changed; this event is in the outbox.
    Changed(events::StockChanged),
    /// Inventory has no such product.
    UnknownProduct,
    /// Taking the units would leave less than none: nothing changed.
    Insufficient {
        /// Units on hand.
        on_hand: i64,
    },
}

/// Changes `upc`'s stock by `delta` inside `txn`, never below zero, and writes the
/// `stock_changed` event into the outbox.
pub(crate) async fn change_stock<C: ConnectionTrait>(
    txn: &C,
    upc: &str,
    delta: i64,
    reason: events::StockChangeReason,
) -> std::result::Result<StockUpdate, DbErr> {
    let now = chrono::Utc::now();
    // One conditional statement: two concurrent reservations cannot both take the last unit
    // (and the table's CHECK refuses a negative quantity whatever the statement).
    let updated = stock::Entity::update_many()
        .col_expr(
            stock::Column::Quantity,
            Expr::col(stock::Column::Quantity).add(delta),
        )
        .col_expr(stock::Column::UpdatedAt, Expr::value(now))
        .filter(stock::Column::Upc.eq(upc))
        .filter(Expr::col(stock::Column::Quantity).add(delta).gte(0))
        .exec(txn)
        .await?;
    let row = stock::Entity::find_by_id(upc.to_owned()).one(txn).await?;
    let Some(row) = row else {
        return Ok(StockUpdate::UnknownProduct);
    };
    if updated.rows_affected == 0 {
        return Ok(StockUpdate::Insufficient {
            on_hand: row.quantity,
        });
    }
    let change = events::StockChanged {
        upc: upc.to_owned(),
        stock: row.quantity,
        delta,
        reason,
        at: now.to_rfc3339(),
    };
    outbox::enqueue(txn, &events::STOCK_CHANGED, &change).await?;
    Ok(StockUpdate::Changed(change))
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
    /// How many products have stock at or below the low-stock threshold (5).
    async fn low_stock_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let low = load_low_stock(ctx).await?;
        Ok(i64::try_from(low.len()).unwrap_or(i64::MAX))
    }

    /// The products with stock at or below the low-stock threshold (5), lowest first (at most
    /// 50).
    async fn low_stock_products(&self, ctx: &Context<'_>) -> Result<Vec<Product>> {
        let low = load_low_stock(ctx).await?;
        Ok(low
            .iter()
            .take(50)
            .map(|upc| Product::reference(upc.clone()))
            .collect())
    }
}

/// Key: the products at or below the low-stock threshold (one key: however many dashboards a
/// request resolves, one statement).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LowStock;

impl Loader<LowStock> for StockDb {
    type Value = Arc<Vec<String>>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[LowStock],
    ) -> std::result::Result<HashMap<LowStock, Arc<Vec<String>>>, Self::Error> {
        self.app.metrics.observe_batch("low_stock", keys.len());
        let rows = stock::Entity::find()
            .filter(stock::Column::Quantity.lte(LOW_STOCK))
            .order_by_asc(stock::Column::Quantity)
            .order_by_asc(stock::Column::Upc)
            .all(&self.app.db)
            .await?;
        let upcs = rows.into_iter().map(|row| row.upc).collect();
        Ok(HashMap::from([(LowStock, Arc::new(upcs))]))
    }
}

async fn load_low_stock(ctx: &Context<'_>) -> Result<Arc<Vec<String>>> {
    Ok(ctx
        .data_unchecked::<DataLoader<StockDb>>()
        .load_one(LowStock)
        .await?
        .unwrap_or_default())
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
        match change_stock(&txn, &upc, quantity, events::StockChangeReason::Restock).await? {
            StockUpdate::Changed(_) => {}
            // Dropping the transaction rolls it back: nothing changed.
            StockUpdate::UnknownProduct | StockUpdate::Insufficient { .. } => {
                return Err(Error::not_found("product", upc));
            }
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
    ) -> impl Stream<Item = async_graphql::Result<StockChange>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::STOCK_CHANGED)
            .try_filter(move |change| {
                std::future::ready(upc.as_ref().is_none_or(|upc| *upc == change.upc))
            })
            .map_ok(StockChange::from)
    }

    /// Stock changes that leave a product at or below `threshold` units.
    async fn low_stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] threshold: i64,
    ) -> impl Stream<Item = async_graphql::Result<StockChange>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::STOCK_CHANGED)
            .try_filter(move |change| std::future::ready(change.stock <= threshold))
            .map_ok(StockChange::from)
    }
}
