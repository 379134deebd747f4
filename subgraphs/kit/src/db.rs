//! Connecting to a subgraph's database and running its migrations.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::metrics::{Metrics, Pool};

/// Opens a connection pool to `url` whose statements are counted in `metrics` under `pool`.
///
/// SQLite URLs get their parent directory created, so the default `./data/<name>.db` works on a
/// fresh checkout.
pub async fn connect(
    url: &str,
    metrics: &Metrics,
    pool: Pool,
) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|err| DbErr::Custom(format!("creating {}: {err}", dir.display())))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(match pool {
            Pool::Requests => 16,
            Pool::Background => 2,
        });
    let mut db = Database::connect(options).await?;
    let metrics = metrics.clone();
    db.set_metric_callback(move |info| {
        metrics.observe_statement(pool, info.elapsed, info.failed);
    });
    Ok(db)
}

/// Runs every pending migration of `M`, logging one line per step.
pub async fn migrate<M: MigratorTrait>(
    db: &DatabaseConnection,
    subgraph: &str,
) -> Result<(), DbErr> {
    let pending = M::get_pending_migrations(db).await?;
    if pending.is_empty() {
        tracing::info!(subgraph, "database schema is up to date");
        return Ok(());
    }
    for migration in &pending {
        tracing::info!(subgraph, migration = migration.name(), "applying migration");
    }
    M::up(db, None).await?;
    tracing::info!(subgraph, applied = pending.len(), "migrations applied");
    Ok(())
}

/// The file path of a SQLite URL, or `None` for other databases and in-memory SQLite.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_path_strips_scheme_and_query() {
        assert_eq!(
            sqlite_path("sqlite://./data/a.db?mode=rwc"),
            Some("./data/a.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/x"), None);
    }
}
