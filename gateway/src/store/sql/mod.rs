//! The SQL both backends run, one module per area: [`rooms`] (rooms, streamers, stage),
//! [`interaction`] (the living room), [`schedule`] (events, bookings, slot-bound keys) and
//! [`recordings`]. Each holds a macro that expands the area's row types and queries
//! (`impl Store { … }` over `self.pool`) inside a backend's module of the same name, so SQLite
//! (`store/sqlite/`) and PostgreSQL (`store/postgres/`) share one text of every query.
//!
//! The dialect both accept: `$N` placeholders (numbered in the order of the binds), upserts as
//! `INSERT … ON CONFLICT (…) DO UPDATE` / `DO NOTHING`, booleans as `TRUE` / `FALSE`, an alias
//! on every subquery in `FROM`, `RETURNING`. Ids and times are 64-bit integers on both (SQLite
//! `INTEGER`, PostgreSQL `BIGINT`); what differs (types in the migrations, connecting,
//! pragmas) stays in the backend modules.

pub(crate) mod interaction;
pub(crate) mod recordings;
pub(crate) mod rooms;
pub(crate) mod schedule;

/// The columns of a [`Streamer`](super::Streamer) row, in its field order.
macro_rules! streamer_columns {
    () => {
        "id, room_id, name, created_at, sticker_set"
    };
}
pub(crate) use streamer_columns;

/// Whether `e` is a unique-constraint violation (SQLite `SQLITE_CONSTRAINT_UNIQUE`,
/// PostgreSQL SQLSTATE 23505): the store answers `Conflict`.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
