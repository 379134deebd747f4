//! The orders subgraph: orders, their items and the live dashboard.
//!
//! It owns `Order @key(fields: "id")` and the `Dashboard` entity, adds `User.orders`, and
//! refers to products by upc. Placing an order writes the order and an `order_placed` event in
//! one transaction; inventory reserves the stock when the event arrives (a choreographed saga),
//! so orders never touches stock. Prices come from orders' own `price_list`.

mod dashboard;
mod entity;
mod loaders;
mod mutation;
pub mod saga;
mod schema;

use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set, TransactionTrait,
};
use tessera_kit::{AppState, Subgraph};

pub use dashboard::Dashboard;
pub use mutation::Mutation;
pub use schema::{Order, OrderItem, OrderStatus, Query, Subscription};

/// The orders subgraph, for [`tessera_kit::run`] and [`tessera_kit::start`].
pub struct Orders;

impl Subgraph for Orders {
    const NAME: &'static str = "orders";
    const DEFAULT_PORT: u16 = 4005;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = Subscription;
    type Migrator = tessera_migrations::OrdersMigrator;

    fn register(
        builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
        app: &AppState,
    ) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
        builder
            .data(tessera_kit::loader(app, loaders::OrdersDb::new(app)))
            .data(dashboard::DashboardFeed::new(app))
    }

    fn workers(app: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
        vec![saga::spawn(app)]
    }

    async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
        if entity::price::Entity::find().count(db).await? > 0 {
            return Ok(());
        }
        let txn = db.begin().await?;
        let prices =
            tessera_seed::products()
                .into_iter()
                .map(|product| entity::price::ActiveModel {
                    upc: Set(product.upc),
                    price: Set(product.price),
                });
        entity::price::Entity::insert_many(prices)
            .exec(&txn)
            .await?;
        let now = chrono::Utc::now();
        for order in tessera_seed::orders() {
            let total = order
                .items
                .iter()
                .map(|(_, quantity, price)| i64::from(*quantity) * price)
                .sum();
            let row = entity::order::ActiveModel {
                buyer_id: Set(order.buyer_id),
                status: Set(order.status.to_owned()),
                total: Set(total),
                created_at: Set(now - chrono::Duration::days(order.days_ago)),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            let items = order.items.into_iter().map(|(upc, quantity, unit_price)| {
                entity::item::ActiveModel {
                    order_id: Set(row.id),
                    product_upc: Set(upc),
                    quantity: Set(quantity),
                    unit_price: Set(unit_price),
                    ..Default::default()
                }
            });
            entity::item::Entity::insert_many(items).exec(&txn).await?;
        }
        txn.commit().await
    }
}
