//! inventory: stock levels, and the orders whose stock was reserved (so a redelivered
//! `order_placed` event reserves nothing twice).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_stock"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("stock")
                    .col(string("upc").primary_key())
                    .col(big_integer("quantity"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("reserved_orders")
                    .col(big_integer("order_id").primary_key())
                    .col(timestamp_with_time_zone("reserved_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("reserved_orders").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("stock").to_owned())
            .await
    }
}
