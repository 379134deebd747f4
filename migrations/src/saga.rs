//! The order saga can say no: inventory guards stock with `CHECK (quantity >= 0)`, records
//! whether it reserved or rejected each order (and which lines it reserved, so a cancelled
//! order's units can go back), and orders keeps the reason an order was rejected.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

/// inventory's part.
pub struct Inventory;

impl MigrationName for Inventory {
    fn name(&self) -> &str {
        "m20261203_000003_stock_guard"
    }
}

/// `stock` as it was created, with the `CHECK` or without.
fn stock_table(name: &str, checked: bool) -> TableCreateStatement {
    let mut quantity = big_integer("quantity");
    if checked {
        quantity.check(Expr::col("quantity").gte(0));
    }
    Table::create()
        .table(name.to_owned())
        .col(string("upc").primary_key())
        .col(quantity)
        .col(timestamp_with_time_zone("updated_at"))
        .to_owned()
}

/// Replaces `stock` by a copy with or without the `CHECK`: SQLite cannot add or drop a
/// constraint in place. One batch of statements in one transaction, sent once, so all of it
/// runs on one connection of the pool.
async fn rebuild_stock(manager: &SchemaManager<'_>, checked: bool) -> Result<(), DbErr> {
    let create = stock_table("stock_rebuilt", checked).to_string(SqliteQueryBuilder);
    let batch = format!(
        "BEGIN; {create}; \
         INSERT INTO stock_rebuilt (upc, quantity, updated_at) \
         SELECT upc, MAX(quantity, 0), updated_at FROM stock; \
         DROP TABLE stock; \
         ALTER TABLE stock_rebuilt RENAME TO stock; \
         COMMIT;"
    );
    execute_batch(manager, &batch).await
}

async fn execute_batch(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Inventory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Stock that an earlier version let go below zero is counted as none left.
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild_stock(manager, true).await?,
            _ => {
                let db = manager.get_connection();
                db.execute_unprepared("UPDATE stock SET quantity = 0 WHERE quantity < 0")
                    .await?;
                db.execute_unprepared(
                    "ALTER TABLE stock ADD CONSTRAINT stock_quantity_not_negative \
                     CHECK (quantity >= 0)",
                )
                .await?;
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table("reserved_orders")
                    .add_column(string("outcome").default("RESERVED"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("reserved_lines")
                    .col(big_pk_auto("id"))
                    .col(big_integer("order_id"))
                    .col(string("upc"))
                    .col(big_integer("quantity"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index("reserved_lines", "order_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("reserved_lines").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("reserved_orders")
                    .drop_column("outcome")
                    .to_owned(),
            )
            .await?;
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild_stock(manager, false).await,
            _ => manager
                .get_connection()
                .execute_unprepared("ALTER TABLE stock DROP CONSTRAINT stock_quantity_not_negative")
                .await
                .map(|_| ()),
        }
    }
}

/// orders' part.
pub struct Orders;

impl MigrationName for Orders {
    fn name(&self) -> &str {
        "m20261203_000003_status_reason"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Orders {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("orders")
                    .add_column(string_null("status_reason"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("orders")
                    .drop_column("status_reason")
                    .to_owned(),
            )
            .await
    }
}
