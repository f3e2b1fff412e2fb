//! The backends a store test runs on: each test runs once on SQLite (a fresh temp dir) and
//! once on PostgreSQL (a fresh database of the test binary's throwaway server,
//! [`venue_tests::postgres::Postgres::shared`]; a missing PostgreSQL fails the test with a
//! message saying how to install it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use venue_tests::postgres::Postgres;

use super::Store;

/// Where one run of a store test keeps its data.
pub(crate) enum Db {
    /// `dir/venue.db`.
    Sqlite(tempfile::TempDir),
    /// A database of the shared server; `dir` is the (unused) data dir.
    Postgres { url: String, dir: tempfile::TempDir },
}

impl Db {
    /// A fresh SQLite store and a fresh PostgreSQL database, in that order.
    pub(crate) fn both() -> [Db; 2] {
        [Db::sqlite(), Db::postgres()]
    }

    /// A fresh SQLite store's dir.
    pub(crate) fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    /// A fresh PostgreSQL database.
    pub(crate) fn postgres() -> Db {
        let url = Postgres::shared()
            .create_database()
            .expect("create a database");
        Db::Postgres {
            url,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `"sqlite"` or `"postgres"`, for assertion messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    /// The database URL `Store::connect` takes (`None`: SQLite in the data dir).
    pub(crate) fn url(&self) -> Option<&str> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres { url, .. } => Some(url),
        }
    }

    /// The data dir.
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Db::Sqlite(dir) | Db::Postgres { dir, .. } => dir.path(),
        }
    }

    /// Opens the store (SQLite through `Store::open`, as `venue` with no `[database]`).
    pub(crate) async fn open(&self) -> Store {
        let store = match self {
            Db::Sqlite(dir) => Store::open(dir.path()).await,
            Db::Postgres { url, dir } => Store::connect(Some(url), dir.path()).await,
        };
        let store = store.expect("open the store");
        assert_eq!(store.backend_name(), self.name());
        store
    }
}
