//! Rooms, streamers and stage slots in SQLite: the shared queries of [`crate::store::sql::rooms`].

crate::store::sql::rooms::rooms_sql!(SqliteStore, sqlx::SqliteConnection);
