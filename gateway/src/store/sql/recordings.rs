//! Recordings (migrations 0006, 0007), and the bookings that name a set.
//!
//! The SQL is the same on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT` upserts,
//! `TRUE`/`FALSE`): [`recordings_sql!`] expands it, with its row types, inside each backend's
//! `recordings` module (`store/sqlite/recordings.rs`, `store/postgres/recordings.rs`).

/// Expands to this area's row types and `impl $store { … }` (the queries) in the calling
/// backend module; `$store` is the backend's store (with a `pool`), `$conn` its connection type.
macro_rules! recordings_sql {
    ($store:ident, $conn:ty) => {
        use super::$store;
        use crate::store::sql::is_unique_violation;
        use crate::ids::{RecordingId, RoomId, StreamerId};
        use crate::store::StoreError;
        use crate::store::recordings::{BookingWindow, NewRecording, Recording};

        /// The columns of a [`Recording`] row, in its field order.
        macro_rules! columns {
            () => {
                "id, room_id, streamer_id, booking_id, artist, file, start_ms, end_ms, duration_ms, bytes, node"
            };
        }

        impl $store {
            pub(crate) async fn create_recording(
                &self,
                new: &NewRecording,
                node: Option<&str>,
            ) -> Result<Recording, StoreError> {
                let result = sqlx::query_as::<_, Recording>(concat!(
                    "INSERT INTO recordings (room_id, streamer_id, booking_id, artist, file, start_ms, node) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                    columns!()
                ))
                .bind(new.room_id)
                .bind(new.streamer_id)
                .bind(new.booking_id)
                .bind(&new.artist)
                .bind(&new.file)
                .bind(new.start_ms)
                .bind(node)
                .fetch_one(&self.pool)
                .await;
                match result {
                    Ok(r) => Ok(r),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                        "recording file {:?} exists",
                        new.file
                    ))),
                    Err(e) => Err(e.into()),
                }
            }

            pub(crate) async fn finish_recording(
                &self,
                id: RecordingId,
                end_ms: i64,
                duration_ms: i64,
                bytes: i64,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE recordings SET end_ms = $1, duration_ms = $2, bytes = $3 WHERE id = $4")
                    .bind(end_ms)
                    .bind(duration_ms)
                    .bind(bytes)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(crate) async fn recordings(&self, room_id: RoomId) -> Result<Vec<Recording>, StoreError> {
                Ok(sqlx::query_as::<_, Recording>(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM recordings WHERE room_id = $1 ORDER BY start_ms DESC, id DESC"
                ))
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn recording(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
                Ok(sqlx::query_as::<_, Recording>(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM recordings WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            pub(crate) async fn unfinished_recordings(&self) -> Result<Vec<Recording>, StoreError> {
                Ok(sqlx::query_as::<_, Recording>(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM recordings WHERE end_ms IS NULL ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn unfinished_recordings_of(&self, node: &str) -> Result<Vec<Recording>, StoreError> {
                Ok(sqlx::query_as::<_, Recording>(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM recordings WHERE end_ms IS NULL AND node = $1 ORDER BY id"
                ))
                .bind(node)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn delete_recording(&self, id: RecordingId) -> Result<bool, StoreError> {
                Ok(sqlx::query("DELETE FROM recordings WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            pub(crate) async fn streamer_bookings_between(
                &self,
                room_id: RoomId,
                streamer_id: StreamerId,
                from: i64,
                to: i64,
            ) -> Result<Vec<BookingWindow>, StoreError> {
                Ok(sqlx::query_as::<_, BookingWindow>(
                    "SELECT b.id AS booking_id, b.artist_name, b.start_at, b.end_at FROM bookings b \
                     JOIN events e ON e.id = b.event_id \
                     WHERE e.room_id = $1 AND b.streamer_id = $2 AND b.start_at < $3 AND b.end_at > $4 \
                     ORDER BY b.start_at, b.id",
                )
                .bind(room_id)
                .bind(streamer_id)
                .bind(to)
                .bind(from)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
pub(crate) use recordings_sql;
