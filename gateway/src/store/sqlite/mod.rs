//! The SQLite backend of the [`Store`](super::Store): one sqlx pool over `data_dir/venue.db`
//! (WAL, foreign keys on, 5 s busy timeout), migrated at open from `gateway/migrations/sqlite/`
//! (embedded by `sqlx::migrate!`; a file's version and checksum must never change once
//! released). One module per area: `rooms` (rooms, streamers, stage), `interaction`,
//! `schedule`, `recordings`. Input has been validated by the `Store` before it gets here;
//! what needs the data (a streamer of this room, overlapping bookings) is checked here, inside
//! the transaction that writes.

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

/// The columns of a [`Streamer`](super::Streamer) row, in its field order.
macro_rules! streamer_columns {
    () => {
        "id, room_id, name, created_at, sticker_set"
    };
}
pub(crate) use streamer_columns;

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/venue.db` and runs the migrations. Errors: `Io`
    /// (data dir), `Db`, `Migrate`.
    pub(crate) async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("venue.db");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
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

    /// Closes the pool (waits for connections to finish).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
