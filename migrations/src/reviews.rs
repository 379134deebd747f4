//! reviews: reviews of products by users. Product and user ids belong to other subgraphs, so
//! they are plain columns, not foreign keys.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_reviews"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("reviews")
                    .col(big_pk_auto("id"))
                    .col(string("product_upc"))
                    .col(big_integer("author_id"))
                    .col(integer("rating"))
                    .col(text("body"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index("reviews", "product_upc"))
            .await?;
        manager
            .create_index(crate::index("reviews", "author_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("reviews").to_owned())
            .await
    }
}
