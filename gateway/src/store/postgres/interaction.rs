//! The living room in PostgreSQL: the shared queries of [`crate::store::sql::interaction`].

crate::store::sql::interaction::interaction_sql!(PgStore, sqlx::PgConnection);
