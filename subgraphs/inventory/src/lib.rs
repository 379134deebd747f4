//! The inventory subgraph: stock levels.
//!
//! It extends `Product` with `inStock`, `stock` and `shippingEstimate` (which `@requires` the
//! product's `price` and `weight` from products), owns the `restock` mutation and the
//! `stockChanged` / `lowStock` streams, and adds `lowStockCount` to the orders dashboard.
//!
//! Stock is inventory's alone: orders never writes it. When an order is placed, inventory
//! consumes the `order_placed` event ([`saga`]), reserves the stock in one transaction with its
//! own `stock_changed` events, and remembers the order so a redelivery reserves nothing twice.

mod entity;
pub mod saga;
mod schema;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set};
use tessera_kit::{AppState, Subgraph};

pub use schema::{Mutation, Product, Query, StockChange, Subscription};

/// Stock at or below this is low.
pub const LOW_STOCK: i64 = 5;

/// The inventory subgraph, for [`tessera_kit::run`] and [`tessera_kit::start`].
pub struct Inventory;

impl Subgraph for Inventory {
    const NAME: &'static str = "inventory";
    const DEFAULT_PORT: u16 = 4003;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = Subscription;
    type Migrator = tessera_migrations::InventoryMigrator;

    fn register(
        builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
        app: &AppState,
    ) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
        builder.data(tessera_kit::loader(app, schema::StockDb::new(app)))
    }

    async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
        if entity::stock::Entity::find().count(db).await? > 0 {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let rows =
            tessera_seed::stock()
                .into_iter()
                .map(|(upc, quantity)| entity::stock::ActiveModel {
                    upc: Set(upc),
                    quantity: Set(quantity),
                    updated_at: Set(now),
                });
        entity::stock::Entity::insert_many(rows).exec(db).await?;
        Ok(())
    }

    fn workers(app: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
        saga::spawn(app)
    }
}
