//! Recordings in SQLite: the shared queries of [`crate::store::sql::recordings`].

crate::store::sql::recordings::recordings_sql!(SqliteStore, sqlx::SqliteConnection);
