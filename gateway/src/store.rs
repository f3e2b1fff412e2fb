//! Persistent state in SQLite (`data_dir/venue.db`, WAL): rooms, streamers, stage slots,
//! the living room (`store/interaction.rs`) and the schedule ([`schedule`]).
//!
//! Contract: stream keys are never stored, only their SHA-256 (hex); a key is shown to the
//! admin once, when the streamer is created. Every write that touches several rows runs in one
//! transaction. Input validation (room names, layouts, stage slots) happens here, so a caller
//! cannot persist an invalid stage. Queries are runtime queries (no compile-time database).

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod interaction;
pub mod recordings;
pub mod schedule;

/// The room that exists on first start.
pub const DEFAULT_ROOM: &str = "main";
/// Title of the default room.
pub const DEFAULT_ROOM_TITLE: &str = "Main stage";
/// Longest room title, in chars.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest streamer name, in chars.
pub const MAX_STREAMER_NAME_CHARS: usize = 64;

/// A room (one stage, its viewers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Room {
    pub id: i64,
    /// 1–64 chars of `[a-z0-9-]`, unique.
    pub name: String,
    pub title: String,
    /// Tiles shown side by side, 1..=9.
    pub layout: i64,
    /// Unix time, seconds.
    pub created_at: i64,
}

/// A streamer: someone allowed to publish into one room with a stream key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Streamer {
    pub id: i64,
    pub room_id: i64,
    pub name: String,
    /// Unix time, seconds.
    pub created_at: i64,
    /// Id of the streamer's own sticker set, made the room's active set when an admin puts
    /// the streamer on slot 0; `None` leaves the room's set alone.
    pub sticker_set: Option<String>,
}

/// A room's stored stage: layout and which streamer is on which slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Tiles shown side by side, 1..=9.
    pub layout: u32,
    /// `slots[i]` = streamer on slot i; always `max_slots` long when read.
    pub slots: Vec<Option<i64>>,
}

/// A freshly generated stream key: 32 random bytes, URL-safe base64 without padding.
/// `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    /// A new random key (OS-seeded CSPRNG).
    pub fn generate() -> StreamKey {
        let bytes: [u8; 32] = rand::random();
        StreamKey(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
    /// The key itself, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(***)")
    }
}

/// SHA-256 of a stream key, lowercase hex: what the store keeps.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `name` is a valid room name: 1–64 chars of `[a-z0-9-]`.
pub fn valid_room_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The input is invalid; the string says why (→ 400).
    #[error("{0}")]
    Invalid(String),
    /// A unique name is taken (→ 409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed (→ 500).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Running migrations failed (start-up).
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating the data directory failed (start-up).
    #[error("data dir: {0}")]
    Io(#[from] std::io::Error),
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Opens (creating if needed) `data_dir/venue.db`, runs the migrations and makes sure room
    /// `main` exists.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("venue.db");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store { pool };
        if store.room_by_name(DEFAULT_ROOM).await?.is_none() {
            match store
                .create_room(DEFAULT_ROOM, Some(DEFAULT_ROOM_TITLE))
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(store)
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// All rooms, by id.
    pub async fn rooms(&self) -> Result<Vec<Room>, StoreError> {
        Ok(sqlx::query_as::<_, Room>(
            "SELECT id, name, title, layout, created_at FROM rooms ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The room called `name`, if any.
    pub async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        Ok(sqlx::query_as::<_, Room>(
            "SELECT id, name, title, layout, created_at FROM rooms WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Creates a room. `title` defaults to the name. Errors: `Invalid` (bad name or title),
    /// `Conflict` (name taken).
    pub async fn create_room(&self, name: &str, title: Option<&str>) -> Result<Room, StoreError> {
        if !valid_room_name(name) {
            return Err(StoreError::Invalid(format!(
                "room name must be 1-64 characters of a-z, 0-9 and '-', got {name:?}"
            )));
        }
        let title = title
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(name);
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(StoreError::Invalid(format!(
                "title must be at most {MAX_TITLE_CHARS} characters"
            )));
        }
        let result = sqlx::query_as::<_, Room>(
            "INSERT INTO rooms (name, title, layout, created_at) VALUES (?, ?, 1, ?) \
             RETURNING id, name, title, layout, created_at",
        )
        .bind(name)
        .bind(title)
        .bind(now_unix())
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(room) => Ok(room),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "room {name:?} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a streamer in `room_id` with a fresh stream key; returns both. The key is not
    /// stored, only its hash. Errors: `Invalid` (name not 1–64 chars).
    pub async fn create_streamer(
        &self,
        room_id: i64,
        name: &str,
    ) -> Result<(Streamer, StreamKey), StoreError> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_STREAMER_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(format!(
                "streamer name must be 1-{MAX_STREAMER_NAME_CHARS} printable characters"
            )));
        }
        let key = StreamKey::generate();
        let streamer = sqlx::query_as::<_, Streamer>(
            "INSERT INTO streamers (room_id, name, key_hash, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, room_id, name, created_at, sticker_set",
        )
        .bind(room_id)
        .bind(name)
        .bind(hash_key(key.expose()))
        .bind(now_unix())
        .fetch_one(&self.pool)
        .await?;
        Ok((streamer, key))
    }

    /// Streamers of a room, by id.
    pub async fn streamers(&self, room_id: i64) -> Result<Vec<Streamer>, StoreError> {
        Ok(sqlx::query_as::<_, Streamer>(
            "SELECT id, room_id, name, created_at, sticker_set FROM streamers WHERE room_id = ? ORDER BY id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The streamer whose key is `key`, if any (looked up by hash).
    pub async fn streamer_by_key(&self, key: &str) -> Result<Option<Streamer>, StoreError> {
        Ok(sqlx::query_as::<_, Streamer>(
            "SELECT id, room_id, name, created_at, sticker_set FROM streamers WHERE key_hash = ?",
        )
        .bind(hash_key(key))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Streamer `id` of room `room_id`, if any.
    pub async fn streamer(&self, room_id: i64, id: i64) -> Result<Option<Streamer>, StoreError> {
        Ok(sqlx::query_as::<_, Streamer>(
            "SELECT id, room_id, name, created_at, sticker_set FROM streamers WHERE room_id = ? AND id = ?",
        )
        .bind(room_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sets (or with `None` clears) the sticker set of streamer `id` of `room_id`; the caller
    /// checks that the set exists. Returns the updated streamer, `None` if there is no such one.
    pub async fn set_streamer_sticker_set(
        &self,
        room_id: i64,
        id: i64,
        sticker_set: Option<&str>,
    ) -> Result<Option<Streamer>, StoreError> {
        Ok(sqlx::query_as::<_, Streamer>(
            "UPDATE streamers SET sticker_set = ? WHERE room_id = ? AND id = ? \
             RETURNING id, room_id, name, created_at, sticker_set",
        )
        .bind(sticker_set)
        .bind(room_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The stored key hash of streamer `id` (tests, audits).
    pub async fn key_hash(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, String>("SELECT key_hash FROM streamers WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Deletes streamer `id` of `room_id` and takes it off the stage. Returns whether it existed.
    pub async fn delete_streamer(&self, room_id: i64, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE stage_slots SET streamer_id = NULL WHERE room_id = ? AND streamer_id = ?",
        )
        .bind(room_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM streamers WHERE room_id = ? AND id = ?")
            .bind(room_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// The stage of `room_id`, `max_slots` long.
    pub async fn stage(&self, room_id: i64, max_slots: usize) -> Result<Stage, StoreError> {
        let layout = sqlx::query_scalar::<_, i64>("SELECT layout FROM rooms WHERE id = ?")
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or(1);
        let rows = sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT slot_index, streamer_id FROM stage_slots WHERE room_id = ? ORDER BY slot_index",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        let mut slots = vec![None; max_slots];
        for (index, streamer) in rows {
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
                *slot = streamer;
            }
        }
        Ok(Stage {
            layout: u32::try_from(layout.clamp(1, 9)).unwrap_or(1),
            slots,
        })
    }

    /// Replaces the stage of `room_id`. Checks: layout 1..=9; at most `max_slots` slots; every
    /// id a streamer of this room; no streamer twice. Errors: `Invalid` with the reason.
    pub async fn set_stage(
        &self,
        room_id: i64,
        stage: &Stage,
        max_slots: usize,
    ) -> Result<(), StoreError> {
        if !(1..=9).contains(&stage.layout) {
            return Err(StoreError::Invalid(format!(
                "layout must be 1..=9, got {}",
                stage.layout
            )));
        }
        if stage.slots.len() > max_slots {
            return Err(StoreError::Invalid(format!(
                "at most {max_slots} slots, got {}",
                stage.slots.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for id in stage.slots.iter().flatten() {
            if !seen.insert(*id) {
                return Err(StoreError::Invalid(format!(
                    "streamer {id} appears on more than one slot"
                )));
            }
        }
        let mut tx = self.pool.begin().await?;
        for id in &seen {
            let found = sqlx::query_scalar::<_, i64>(
                "SELECT id FROM streamers WHERE room_id = ? AND id = ?",
            )
            .bind(room_id)
            .bind(*id)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(StoreError::Invalid(format!(
                    "streamer {id} is not a streamer of this room"
                )));
            }
        }
        sqlx::query("UPDATE rooms SET layout = ? WHERE id = ?")
            .bind(i64::from(stage.layout))
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM stage_slots WHERE room_id = ?")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        for (index, streamer) in stage.slots.iter().enumerate() {
            sqlx::query(
                "INSERT INTO stage_slots (room_id, slot_index, streamer_id) VALUES (?, ?, ?)",
            )
            .bind(room_id)
            .bind(index as i64)
            .bind(*streamer)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/store.rs"]
mod tests;
