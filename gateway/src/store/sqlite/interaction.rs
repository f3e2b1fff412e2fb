//! The living room in SQLite: the shared queries of [`crate::store::sql::interaction`].

crate::store::sql::interaction::interaction_sql!(SqliteStore, sqlx::SqliteConnection);
