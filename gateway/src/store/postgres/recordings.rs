//! Recordings in PostgreSQL: the shared queries of [`crate::store::sql::recordings`].

crate::store::sql::recordings::recordings_sql!(PgStore, sqlx::PgConnection);
