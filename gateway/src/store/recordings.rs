//! Persistence of recordings (migration `0006_recordings.sql`): one row per recorded set,
//! so the list survives restarts. Times are Unix milliseconds, UTC.

use serde::Serialize;

use super::{Store, StoreError};

/// One recorded set (a file in `data_dir/recordings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Recording {
    pub id: i64,
    pub room_id: i64,
    /// The streamer that was live on stage slot 0.
    pub streamer_id: i64,
    /// The booking the set was named after, if a booked window covered its start.
    pub booking_id: Option<i64>,
    /// The booking's artist name, else the streamer's name.
    pub artist: String,
    /// File name inside `data_dir/recordings` (no directories).
    pub file: String,
    /// Unix milliseconds, UTC: when the set started.
    pub start_ms: i64,
    /// Unix milliseconds, UTC: when it ended; `None` while recording.
    pub end_ms: Option<i64>,
    /// Media written, milliseconds (0 while recording: see the in-memory progress).
    pub duration_ms: i64,
    /// File size, bytes (0 while recording).
    pub bytes: i64,
}

/// What a new recording row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub room_id: i64,
    pub streamer_id: i64,
    pub booking_id: Option<i64>,
    pub artist: String,
    pub file: String,
    pub start_ms: i64,
}

/// A booking of one streamer in one room, as the set-naming rule sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingWindow {
    pub booking_id: i64,
    pub artist_name: String,
    /// Unix seconds, UTC.
    pub start_at: i64,
    /// Unix seconds, UTC.
    pub end_at: i64,
}

macro_rules! columns {
    () => {
        "id, room_id, streamer_id, booking_id, artist, file, start_ms, end_ms, duration_ms, bytes"
    };
}

impl Store {
    /// Inserts a recording in progress (`end_ms` NULL). Errors: `Conflict` when `file` is
    /// taken, `Db`.
    pub async fn create_recording(&self, new: &NewRecording) -> Result<Recording, StoreError> {
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
            Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "recording file {:?} exists",
                new.file
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks recording `id` finished: end time (Unix ms), media duration (ms), file size.
    pub async fn finish_recording(
        &self,
        id: i64,
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

    /// Recordings of room `room_id`, newest first.
    pub async fn recordings(&self, room_id: i64) -> Result<Vec<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE room_id = ? ORDER BY start_ms DESC, id DESC"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Recording `id`, if any.
    pub async fn recording(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Recordings without an end (in progress, or cut off by a stop of the server).
    pub async fn unfinished_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE end_ms IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes the row of recording `id`. Returns whether it existed.
    pub async fn delete_recording(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM recordings WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// Bookings of `streamer_id` in room `room_id` whose window `[start_at, end_at)` (Unix
    /// seconds) overlaps `[from, to)`, by start.
    pub async fn streamer_bookings_between(
        &self,
        room_id: i64,
        streamer_id: i64,
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
