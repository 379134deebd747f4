//! The transactional outbox table every subgraph database has.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000001_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .col(big_pk_auto("id"))
                    .col(string("topic"))
                    .col(text("payload"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("published_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index("outbox", "published_at"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("outbox").to_owned())
            .await
    }
}

/// The table that names a database's outbox to the event bus (`outbox_source`: one row, made by
/// the relay), so that a publish retried after its answer was lost is recognized and not
/// appended twice.
pub struct Source;

impl MigrationName for Source {
    fn name(&self) -> &str {
        "m20261203_000001_outbox_source"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Source {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox_source")
                    .col(string("name").primary_key())
                    .col(string("id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("outbox_source").to_owned())
            .await
    }
}
