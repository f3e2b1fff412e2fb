//! The PostgreSQL backend of the [`Store`](super::Store) (PostgreSQL ≥ 15): one sqlx pool over
//! a `postgres://` URL, migrated at connect from `gateway/migrations/postgres/` (the SQLite
//! schema in PostgreSQL types: `BIGSERIAL`/`BIGINT` ids and times, `BOOLEAN` flags, `BYTEA`
//! sticker pictures, `DOUBLE PRECISION` coordinates; same versions as the SQLite files, and
//! sqlx's advisory lock lets several nodes start at once). One module per area, each
//! expanding the queries both backends share ([`super::sql`]), so semantics match SQLite's:
//! the same transactions, unique violations (SQLSTATE 23505) → `Conflict`.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreError;

mod interaction;
mod recordings;
mod rooms;
mod schedule;

/// Connections per node.
const MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a free connection (or a first connect) before `Db(PoolTimedOut)`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL database; cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and runs the
    /// migrations. Errors: `Db` (bad URL, unreachable, authentication), `Migrate`.
    pub(crate) async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool (`venue migrate` writes the tables through it).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool (waits for connections to finish).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
