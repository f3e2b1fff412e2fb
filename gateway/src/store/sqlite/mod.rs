//! The SQLite backend of the [`Store`](super::Store): one sqlx pool over one database file
//! (`data_dir/venue.db` by default, or the path of a `sqlite://PATH` URL; WAL, foreign keys
//! on, 5 s busy timeout), migrated at open from `gateway/migrations/sqlite/` (embedded by
//! `sqlx::migrate!`; a file's version and checksum must never change once released). One
//! module per area (`rooms`, `interaction`, `schedule`, `recordings`), each expanding the
//! queries both backends share ([`super::sql`]). Input has been validated by the `Store`
//! before it gets here; what needs the data (a streamer of this room, overlapping bookings) is
//! checked inside the transaction that writes.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;

mod interaction;
mod recordings;
mod rooms;
mod schedule;

/// The SQLite database; cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/venue.db` and runs the migrations. Errors: `Io`
    /// (data dir), `Db`, `Migrate`.
    pub(crate) async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        SqliteStore::open_file(&data_dir.join("venue.db"), true).await
    }

    /// Opens the database file `path` (created with its parent directory when `create`; else
    /// it must exist) and runs the migrations. Errors: `Invalid` (no such file), `Io`, `Db`,
    /// `Migrate`.
    pub(crate) async fn open_file(path: &Path, create: bool) -> Result<SqliteStore, StoreError> {
        if create {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
        } else if !path.is_file() {
            return Err(StoreError::Invalid(format!(
                "no SQLite database at {}",
                path.display()
            )));
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The pool (`venue migrate` reads the tables through it).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool (waits for connections to finish).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
