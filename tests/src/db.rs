//! [`TestDb`]: a PostgreSQL database of a test's own, created empty and dropped by name.

use anyhow::Context as _;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::POSTGRES_ADMIN_URL;

/// A fresh, empty PostgreSQL database on the shared server.
///
/// Subgraphs migrate it themselves on start. It is not dropped on `Drop` (that would need a
/// runtime inside `drop`); call [`TestDb::drop`] at the end of the test. A test that panics
/// first leaves a `test_…` database behind, which is harmless and easy to spot.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Connection URL of the new database.
    pub url: String,
    /// Its name: `test_<uuid without dashes>`.
    pub name: String,
}

impl TestDb {
    /// Creates `test_<uuid>` through [`POSTGRES_ADMIN_URL`].
    pub async fn create() -> anyhow::Result<TestDb> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin().await?;
        // The name is ours (hex digits only), so formatting it into the statement is safe.
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"));
        let _ = admin.close().await;
        created?;
        let url = POSTGRES_ADMIN_URL
            .rsplit_once('/')
            .map(|(server, _)| format!("{server}/{name}"))
            .context("POSTGRES_ADMIN_URL has no database path")?;
        Ok(TestDb { url, name })
    }

    /// Drops the database, closing whatever connections are still open to it.
    pub async fn drop(self) -> anyhow::Result<()> {
        let admin = admin().await?;
        // `WITH (FORCE)` ends connections of subgraphs that were dropped but whose pools have
        // not finished closing yet.
        let dropped = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("DROP DATABASE {}", self.name));
        let _ = admin.close().await;
        dropped?;
        Ok(())
    }
}

/// One short-lived connection to the maintenance database.
async fn admin() -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(POSTGRES_ADMIN_URL);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to {POSTGRES_ADMIN_URL}"))
}
