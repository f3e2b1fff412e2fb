//! Rooms, streamers and stage slots in PostgreSQL: the shared queries of [`crate::store::sql::rooms`].

crate::store::sql::rooms::rooms_sql!(PgStore, sqlx::PgConnection);
