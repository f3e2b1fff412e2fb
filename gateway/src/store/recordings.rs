//! Persistence of recordings (migrations `0006_recordings.sql`, `0007_recording_node.sql`):
//! one row per recorded set, so the list survives restarts. Times are Unix milliseconds, UTC.
//! In cluster mode each row names the node holding the file (`node`), so any node lists
//! every recording and forwards a download to that node.

use serde::Serialize;

use super::{Store, StoreError};
use crate::ids::{BookingId, RecordingId, RoomId, StreamerId};

/// One recorded set (a file in `data_dir/recordings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Recording {
    pub id: RecordingId,
    pub room_id: RoomId,
    /// The streamer that was live on stage slot 0.
    pub streamer_id: StreamerId,
    /// The booking the set was named after, if a booked window covered its start.
    pub booking_id: Option<BookingId>,
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
    /// Cluster mode: the id of the node whose data dir holds the file; `None` when written
    /// by a single-node venue.
    pub node: Option<String>,
}

/// What a new recording row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub room_id: RoomId,
    pub streamer_id: StreamerId,
    pub booking_id: Option<BookingId>,
    pub artist: String,
    pub file: String,
    pub start_ms: i64,
}

/// A booking of one streamer in one room, as the set-naming rule sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingWindow {
    pub booking_id: BookingId,
    pub artist_name: String,
    /// Unix seconds, UTC.
    pub start_at: i64,
    /// Unix seconds, UTC.
    pub end_at: i64,
}

impl Store {
    /// Inserts a recording in progress (`end_ms` NULL). Errors: `Conflict` when `file` is
    /// taken, `Db`.
    pub async fn create_recording(&self, new: &NewRecording) -> Result<Recording, StoreError> {
        backend!(self, db => db.create_recording(new, None).await)
    }

    /// [`Store::create_recording`] of a file held by cluster node `node` (`None`: single-node).
    pub async fn create_recording_on(
        &self,
        new: &NewRecording,
        node: Option<&str>,
    ) -> Result<Recording, StoreError> {
        backend!(self, db => db.create_recording(new, node).await)
    }

    /// Marks recording `id` finished: end time (Unix ms), media duration (ms), file size
    /// (bytes).
    pub async fn finish_recording(
        &self,
        id: RecordingId,
        end_ms: i64,
        duration_ms: i64,
        bytes: i64,
    ) -> Result<(), StoreError> {
        backend!(self, db => db.finish_recording(id, end_ms, duration_ms, bytes).await)
    }

    /// Recordings of room `room_id`, newest first.
    pub async fn recordings(&self, room_id: RoomId) -> Result<Vec<Recording>, StoreError> {
        backend!(self, db => db.recordings(room_id).await)
    }

    /// Recording `id`, if any.
    pub async fn recording(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        backend!(self, db => db.recording(id).await)
    }

    /// Recordings without an end (in progress, or cut off by a stop of the server).
    pub async fn unfinished_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        backend!(self, db => db.unfinished_recordings().await)
    }

    /// [`Store::unfinished_recordings`] whose file cluster node `node` holds.
    pub async fn unfinished_recordings_of(&self, node: &str) -> Result<Vec<Recording>, StoreError> {
        backend!(self, db => db.unfinished_recordings_of(node).await)
    }

    /// Deletes the row of recording `id`. Returns whether it existed.
    pub async fn delete_recording(&self, id: RecordingId) -> Result<bool, StoreError> {
        backend!(self, db => db.delete_recording(id).await)
    }

    /// Bookings of `streamer_id` in room `room_id` whose window `[start_at, end_at)` (Unix
    /// seconds) overlaps `[from, to)`, by start.
    pub async fn streamer_bookings_between(
        &self,
        room_id: RoomId,
        streamer_id: StreamerId,
        from: i64,
        to: i64,
    ) -> Result<Vec<BookingWindow>, StoreError> {
        backend!(self, db => db.streamer_bookings_between(room_id, streamer_id, from, to).await)
    }
}
