//! Every migrator goes up, all the way down, and up again, on PostgreSQL and on SQLite: the
//! tables appear, `down` removes every one of them, and a second `up` brings them back (so
//! `down` left nothing behind that would get in its way).

use anyhow::Context as _;
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::{MigratorTrait, SchemaManager};
use tessera_migrations::{
    AccountsMigrator, InventoryMigrator, OrdersMigrator, ProductsMigrator, ReviewsMigrator,
};
use tessera_tests::{TempDir, TestDb};

/// The tables each migrator creates, the outbox's included.
const ACCOUNTS: &[&str] = &["outbox", "outbox_source", "users"];
const PRODUCTS: &[&str] = &["outbox", "outbox_source", "products"];
const INVENTORY: &[&str] = &[
    "outbox",
    "outbox_source",
    "stock",
    "reserved_orders",
    "reserved_lines",
];
const REVIEWS: &[&str] = &["outbox", "outbox_source", "reviews"];
const ORDERS: &[&str] = &[
    "outbox",
    "outbox_source",
    "orders",
    "order_items",
    "price_list",
];

/// Fails unless every table of `tables` exists (`present`) or none does (`!present`).
async fn expect_tables(
    db: &DatabaseConnection,
    migrator: &str,
    stage: &str,
    tables: &[&str],
    present: bool,
) -> anyhow::Result<()> {
    let manager = SchemaManager::new(db);
    for table in tables {
        let exists = manager
            .has_table(table)
            .await
            .with_context(|| format!("{migrator}: looking for table {table} {stage}"))?;
        anyhow::ensure!(
            exists == present,
            "{migrator}: table {table} should {} {stage}",
            if present { "exist" } else { "be gone" }
        );
    }
    Ok(())
}

/// Runs `M` up, all the way down and up again on a new connection to `url`, checking `tables`
/// after each step.
async fn up_down_up<M: MigratorTrait>(
    url: &str,
    migrator: &str,
    tables: &[&str],
) -> anyhow::Result<()> {
    let db = Database::connect(url)
        .await
        .with_context(|| format!("{migrator}: connecting to {url}"))?;
    let checked = async {
        M::up(&db, None)
            .await
            .with_context(|| format!("{migrator}: first up"))?;
        expect_tables(&db, migrator, "after up", tables, true).await?;
        M::down(&db, None)
            .await
            .with_context(|| format!("{migrator}: down (all)"))?;
        expect_tables(&db, migrator, "after down", tables, false).await?;
        M::up(&db, None)
            .await
            .with_context(|| format!("{migrator}: up after down"))?;
        expect_tables(&db, migrator, "after up again", tables, true).await
    }
    .await;
    let _ = db.close().await;
    checked
}

/// Runs [`up_down_up`] for `M` on a [`TestDb`] of its own, dropping it whatever happened.
async fn on_postgres<M: MigratorTrait>(migrator: &str, tables: &[&str]) -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let checked = up_down_up::<M>(&db.url, migrator, tables).await;
    db.drop().await?;
    checked
}

/// Runs [`up_down_up`] for `M` on SQLite file `<dir>/<file>`, created by the connection.
async fn on_sqlite<M: MigratorTrait>(
    dir: &TempDir,
    file: &str,
    migrator: &str,
    tables: &[&str],
) -> anyhow::Result<()> {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join(file).display());
    up_down_up::<M>(&url, migrator, tables).await
}

// One database per migrator, as in production: no two subgraphs share tables, and every
// migrator keeps its own `seaql_migrations` (all five share the outbox migration).

#[tokio::test]
async fn every_migrator_goes_up_down_and_up_again_on_postgres() -> anyhow::Result<()> {
    on_postgres::<AccountsMigrator>("AccountsMigrator", ACCOUNTS).await?;
    on_postgres::<ProductsMigrator>("ProductsMigrator", PRODUCTS).await?;
    on_postgres::<InventoryMigrator>("InventoryMigrator", INVENTORY).await?;
    on_postgres::<ReviewsMigrator>("ReviewsMigrator", REVIEWS).await?;
    on_postgres::<OrdersMigrator>("OrdersMigrator", ORDERS).await
}

#[tokio::test]
async fn every_migrator_goes_up_down_and_up_again_on_sqlite() -> anyhow::Result<()> {
    let dir = TempDir::create("migrations")?;
    on_sqlite::<AccountsMigrator>(&dir, "accounts.db", "AccountsMigrator", ACCOUNTS).await?;
    on_sqlite::<ProductsMigrator>(&dir, "products.db", "ProductsMigrator", PRODUCTS).await?;
    on_sqlite::<InventoryMigrator>(&dir, "inventory.db", "InventoryMigrator", INVENTORY).await?;
    on_sqlite::<ReviewsMigrator>(&dir, "reviews.db", "ReviewsMigrator", REVIEWS).await?;
    on_sqlite::<OrdersMigrator>(&dir, "orders.db", "OrdersMigrator", ORDERS).await
}
