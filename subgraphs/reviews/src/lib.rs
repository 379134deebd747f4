//! The reviews subgraph: what users say about products.
//!
//! It owns `Review @key(fields: "id")`, refers to `User` and `Product` by key, and adds
//! `User.reviews`, `Product.reviews` and `Product.averageRating` to the other subgraphs' types.

mod entity;
mod schema;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set};
use tessera_kit::{AppState, Subgraph};

pub use schema::{Mutation, Product, Query, Review, Subscription, User};

/// The reviews subgraph, for [`tessera_kit::run`] and [`tessera_kit::start`].
pub struct Reviews;

impl Subgraph for Reviews {
    const NAME: &'static str = "reviews";
    const DEFAULT_PORT: u16 = 4004;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = Subscription;
    type Migrator = tessera_migrations::ReviewsMigrator;

    fn register(
        builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
        app: &AppState,
    ) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
        builder.data(tessera_kit::loader(app, schema::ReviewsDb::new(app)))
    }

    async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
        if entity::Entity::find().count(db).await? > 0 {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let rows = tessera_seed::reviews()
            .into_iter()
            .enumerate()
            .map(|(n, review)| entity::ActiveModel {
                product_upc: Set(review.product_upc),
                author_id: Set(review.author_id),
                rating: Set(review.rating),
                body: Set(review.body),
                created_at: Set(now - chrono::Duration::minutes(i64::try_from(n).unwrap_or(0))),
                ..Default::default()
            });
        entity::Entity::insert_many(rows).exec(db).await?;
        Ok(())
    }
}
