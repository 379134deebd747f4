//! orders: orders, their items, and the price list orders are priced from (orders' own copy of
//! the prices it sells at, since it never reads the products database).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("orders")
                    .col(big_pk_auto("id"))
                    .col(big_integer("buyer_id"))
                    .col(string("status"))
                    .col(big_integer("total"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index("orders", "buyer_id"))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("order_items")
                    .col(big_pk_auto("id"))
                    .col(big_integer("order_id"))
                    .col(string("product_upc"))
                    .col(integer("quantity"))
                    .col(big_integer("unit_price"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("order_items_order_fk")
                            .from("order_items", "order_id")
                            .to("orders", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index("order_items", "order_id"))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("price_list")
                    .col(string("upc").primary_key())
                    .col(big_integer("price"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["price_list", "order_items", "orders"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
