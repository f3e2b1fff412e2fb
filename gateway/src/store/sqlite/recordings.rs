//! Recordings in SQLite (migration 0006), and the bookings that name a set.

use super::{SqliteStore, is_unique_violation};
use crate::ids::{RecordingId, RoomId, StreamerId};
use crate::store::StoreError;
use crate::store::recordings::{BookingWindow, NewRecording, Recording};

/// The columns of a [`Recording`] row, in its field order.
macro_rules! columns {
    () => {
        "id, room_id, streamer_id, booking_id, artist, file, start_ms, end_ms, duration_ms, bytes"
    };
}

impl SqliteStore {
    pub(crate) async fn create_recording(
        &self,
        new: &NewRecording,
    ) -> Result<Recording, StoreError> {
        let result = sqlx::query_as::<_, Recording>(concat!(
            "INSERT INTO recordings (room_id, streamer_id, booking_id, artist, file, start_ms) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
            columns!()
        ))
        .bind(new.room_id)
        .bind(new.streamer_id)
        .bind(new.booking_id)
        .bind(&new.artist)
        .bind(&new.file)
        .bind(new.start_ms)
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
        sqlx::query("UPDATE recordings SET end_ms = ?, duration_ms = ?, bytes = ? WHERE id = ?")
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
            " FROM recordings WHERE room_id = ? ORDER BY start_ms DESC, id DESC"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub(crate) async fn recording(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE id = ?"
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

    pub(crate) async fn delete_recording(&self, id: RecordingId) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM recordings WHERE id = ?")
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
             WHERE e.room_id = ? AND b.streamer_id = ? AND b.start_at < ? AND b.end_at > ? \
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
