//! The schedule in PostgreSQL: the shared queries of [`crate::store::sql::schedule`].

crate::store::sql::schedule::schedule_sql!(PgStore, sqlx::PgConnection);
