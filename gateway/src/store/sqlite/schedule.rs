//! The schedule in SQLite: the shared queries of [`crate::store::sql::schedule`].

crate::store::sql::schedule::schedule_sql!(SqliteStore, sqlx::SqliteConnection);
