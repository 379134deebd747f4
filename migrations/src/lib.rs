//! Database migrations of Tessera's example subgraphs: one [`MigratorTrait`] per subgraph
//! database, because no two subgraphs share tables.
//!
//! Every migration runs on SQLite and PostgreSQL, and every one can be rolled back (`down`).
//! Each database also gets the transactional [`outbox`] table that the kit's relay publishes from,
//! and the `outbox_source` table that names it to the event bus.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod accounts;
mod inventory;
mod orders;
mod outbox;
mod products;
mod reviews;
mod saga;

/// The accounts database: users.
pub struct AccountsMigrator;
/// The products database: the catalog.
pub struct ProductsMigrator;
/// The inventory database: stock levels (never below zero), and the orders it reserved stock
/// for or rejected, with the lines it reserved.
pub struct InventoryMigrator;
/// The reviews database: reviews.
pub struct ReviewsMigrator;
/// The orders database: orders (with why one was rejected), their items, and the price list
/// orders are priced from.
pub struct OrdersMigrator;

#[async_trait::async_trait]
impl MigratorTrait for AccountsMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(outbox::Migration),
            Box::new(accounts::Migration),
            Box::new(outbox::Source),
        ]
    }
}

#[async_trait::async_trait]
impl MigratorTrait for ProductsMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(outbox::Migration),
            Box::new(products::Migration),
            Box::new(outbox::Source),
        ]
    }
}

#[async_trait::async_trait]
impl MigratorTrait for InventoryMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(outbox::Migration),
            Box::new(inventory::Migration),
            Box::new(saga::Inventory),
            Box::new(outbox::Source),
        ]
    }
}

#[async_trait::async_trait]
impl MigratorTrait for ReviewsMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(outbox::Migration),
            Box::new(reviews::Migration),
            Box::new(outbox::Source),
        ]
    }
}

#[async_trait::async_trait]
impl MigratorTrait for OrdersMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(outbox::Migration),
            Box::new(orders::Migration),
            Box::new(saga::Orders),
            Box::new(outbox::Source),
        ]
    }
}

/// Creates an index named `<table>_<column>_idx` on one column.
fn index(table: &'static str, column: &'static str) -> IndexCreateStatement {
    Index::create()
        .name(format!("{table}_{column}_idx"))
        .table(table)
        .col(column)
        .to_owned()
}
