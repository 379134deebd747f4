//! The products subgraph: the catalog.
//!
//! It owns `Product @key(fields: "upc")` with its name, price, weight and category. Inventory,
//! reviews and orders extend `Product` with fields of their own.

mod entity;
mod schema;

use async_graphql::{EmptyMutation, EmptySubscription};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set};
use tessera_kit::{AppState, Subgraph};

pub use schema::{Product, ProductConnection, Query};

/// The products subgraph, for [`tessera_kit::run`] and [`tessera_kit::start`].
pub struct Products;

impl Subgraph for Products {
    const NAME: &'static str = "products";
    const DEFAULT_PORT: u16 = 4002;
    type Query = Query;
    type Mutation = EmptyMutation;
    type Subscription = EmptySubscription;
    type Migrator = tessera_migrations::ProductsMigrator;

    fn register(
        builder: async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription>,
        app: &AppState,
    ) -> async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
        builder.data(tessera_kit::loader(app, schema::ProductsDb::new(app)))
    }

    async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
        if entity::Entity::find().count(db).await? > 0 {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let rows = tessera_seed::products()
            .into_iter()
            .map(|product| entity::ActiveModel {
                upc: Set(product.upc),
                name: Set(product.name),
                description: Set(product.description),
                price: Set(product.price),
                weight: Set(product.weight),
                category: Set(product.category),
                created_at: Set(now),
            });
        entity::Entity::insert_many(rows).exec(db).await?;
        Ok(())
    }
}
