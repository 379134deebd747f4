//! The accounts subgraph: who the shop's users are.
//!
//! It owns `User @key(fields: "id")` and the `users` table. Other subgraphs refer to users by id
//! and add their own fields (reviews, orders) through federation.

mod entity;
mod schema;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set};
use tessera_kit::{AppState, Subgraph};

pub use schema::{Mutation, Query, Subscription, User};

/// The accounts subgraph, for [`tessera_kit::run`] and [`tessera_kit::start`].
pub struct Accounts;

impl Subgraph for Accounts {
    const NAME: &'static str = "accounts";
    const DEFAULT_PORT: u16 = 4001;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = Subscription;
    type Migrator = tessera_migrations::AccountsMigrator;

    fn register(
        builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
        app: &AppState,
    ) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
        builder.data(tessera_kit::loader(app, schema::UsersDb::new(app)))
    }

    async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
        if entity::Entity::find().count(db).await? > 0 {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let rows = tessera_seed::users()
            .into_iter()
            .map(|user| entity::ActiveModel {
                username: Set(user.username),
                name: Set(user.name),
                email: Set(user.email),
                created_at: Set(now),
                ..Default::default()
            });
        entity::Entity::insert_many(rows).exec(db).await?;
        Ok(())
    }
}
