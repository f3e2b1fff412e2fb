//! Persistent state behind one interface: rooms, streamers, stage slots, the living room
//! (`store/interaction.rs`), the schedule ([`schedule`]) and recordings
//! ([`recordings`]).
//!
//! [`Store`] is the handle every caller holds (cheap to clone). It checks the input (room
//! names, titles, layouts, stage slots, event and booking specs) and hands the work to the
//! backend in use, a [`Backend`] chosen by `[database] url` ([`DatabaseUrl`]): SQLite
//! (`data_dir/venue.db` by default, WAL, migrations in `gateway/migrations/sqlite/`, see
//! `store/sqlite/`) or PostgreSQL (`postgres://…`, migrations in
//! `gateway/migrations/postgres/`, see `store/postgres/`). Both run the same SQL
//! (`store/sql/`, one module per area); callers do not know which one they talk to.
//! [`copy`] moves a venue from SQLite to PostgreSQL (`venue migrate`).
//!
//! Contract: stream keys are never stored, only their SHA-256 (hex); a key is shown to the
//! admin once, when the streamer is created. Every write that touches several rows runs in one
//! transaction. Input validation happens here, so a caller cannot persist an invalid stage.
//! Queries are runtime queries (no compile-time database); rows map to types with
//! `#[derive(sqlx::FromRow)]`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::{RoomId, StreamerId};

/// Runs `$call` with `$db` bound to the backend of `$store` (one arm per backend).
macro_rules! backend {
    ($store:expr, $db:ident => $call:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($db) => $call,
            $crate::store::Backend::Postgres($db) => $call,
        }
    };
}

pub mod copy;
mod interaction;
mod postgres;
pub mod recordings;
pub mod schedule;
mod sql;
mod sqlite;

use self::postgres::PgStore;
use self::sqlite::SqliteStore;

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
    pub id: RoomId,
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
    pub id: StreamerId,
    pub room_id: RoomId,
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
    pub slots: Vec<Option<StreamerId>>,
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

/// The database a [`Store`] talks to. One variant per backend; [`Store`]'s methods dispatch
/// on it, so adding one touches `store/` only.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    /// SQLite through sqlx (the single-node default).
    Sqlite(SqliteStore),
    /// PostgreSQL through sqlx (cluster mode).
    Postgres(PgStore),
}

/// Where the database is: the parsed `[database] url` (`VENUE_DATABASE_URL`).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (relative to the working directory; `sqlite:///abs/path` for an
    /// absolute one), or `data_dir/venue.db` when no URL is set.
    Sqlite(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to sqlx as is (user, password, host, port,
    /// database, `?sslmode=` …).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses a database URL. Errors: `Invalid` naming the schemes that work (the message
    /// never repeats the URL: it may hold a password).
    pub fn parse(url: &str) -> Result<DatabaseUrl, StoreError> {
        let url = url.trim();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if path.is_empty() {
                return Err(StoreError::Invalid(
                    "database url sqlite:// needs a file path, e.g. sqlite://venue-data/venue.db"
                        .into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        Err(StoreError::Invalid(
            "database url must start with sqlite:// or postgres:// (e.g. \
             postgres://venue:secret@127.0.0.1:5432/venue)"
                .into(),
        ))
    }

    /// `url` parsed, or `data_dir/venue.db` when `None`.
    pub fn or_default(url: Option<&str>, data_dir: &Path) -> Result<DatabaseUrl, StoreError> {
        match url {
            Some(url) => DatabaseUrl::parse(url),
            None => Ok(DatabaseUrl::Sqlite(data_dir.join("venue.db"))),
        }
    }
}

/// Prints the URL with the password replaced by `***` (safe to log).
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => match reqwest::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://(unparsable)"),
            },
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

/// Now, Unix seconds (0 if the clock is before 1970).
fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `name` trimmed, if it is 1–[`MAX_STREAMER_NAME_CHARS`] printable chars. Errors: `Invalid`,
/// naming `field` ("streamer name", "artist_name").
fn streamer_name<'a>(field: &str, name: &'a str) -> Result<&'a str, StoreError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_STREAMER_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{field} must be 1-{MAX_STREAMER_NAME_CHARS} printable characters"
        )));
    }
    Ok(name)
}

impl Store {
    /// Opens (creating if needed) the SQLite database `data_dir/venue.db`, runs the migrations
    /// and makes sure room `main` exists.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let store = Store {
            backend: Backend::Sqlite(SqliteStore::open(data_dir).await?),
        };
        store.ensure_default_room().await?;
        Ok(store)
    }

    /// Opens the database `url` (see [`DatabaseUrl`]; `None`: `data_dir/venue.db`, as
    /// [`Store::open`]): a SQLite file is created if needed, a PostgreSQL database must exist.
    /// Runs the backend's migrations and makes sure room `main` exists. Errors: `Invalid`
    /// (bad URL), `Io`, `Db` (cannot connect), `Migrate`.
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        let backend = match DatabaseUrl::or_default(url, data_dir)? {
            DatabaseUrl::Sqlite(_) if url.is_none() => {
                Backend::Sqlite(SqliteStore::open(data_dir).await?)
            }
            DatabaseUrl::Sqlite(path) => {
                Backend::Sqlite(SqliteStore::open_file(&path, true).await?)
            }
            DatabaseUrl::Postgres(url) => Backend::Postgres(PgStore::connect(&url).await?),
        };
        let store = Store { backend };
        store.ensure_default_room().await?;
        Ok(store)
    }

    /// Which backend this store talks to: `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Creates room `main` unless it exists (a concurrent creator's `Conflict` is fine).
    async fn ensure_default_room(&self) -> Result<(), StoreError> {
        if self.room_by_name(DEFAULT_ROOM).await?.is_none() {
            match self
                .create_room(DEFAULT_ROOM, Some(DEFAULT_ROOM_TITLE))
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        backend!(self, db => db.close().await)
    }

    /// All rooms, by id.
    pub async fn rooms(&self) -> Result<Vec<Room>, StoreError> {
        backend!(self, db => db.rooms().await)
    }

    /// The room called `name`, if any.
    pub async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        backend!(self, db => db.room_by_name(name).await)
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
        backend!(self, db => db.create_room(name, title, now_unix()).await)
    }

    /// Creates a streamer in `room_id` with a fresh stream key; returns both. The key is not
    /// stored, only its hash. Errors: `Invalid` (name not 1–64 chars).
    pub async fn create_streamer(
        &self,
        room_id: RoomId,
        name: &str,
    ) -> Result<(Streamer, StreamKey), StoreError> {
        let name = streamer_name("streamer name", name)?;
        let key = StreamKey::generate();
        let streamer = backend!(self, db => db.create_streamer(room_id, name, &hash_key(key.expose()), now_unix()).await)?;
        Ok((streamer, key))
    }

    /// Streamers of a room, by id.
    pub async fn streamers(&self, room_id: RoomId) -> Result<Vec<Streamer>, StoreError> {
        backend!(self, db => db.streamers(room_id).await)
    }

    /// The streamer whose key is `key`, if any (looked up by hash).
    pub async fn streamer_by_key(&self, key: &str) -> Result<Option<Streamer>, StoreError> {
        backend!(self, db => db.streamer_by_key_hash(&hash_key(key)).await)
    }

    /// Streamer `id` of room `room_id`, if any.
    pub async fn streamer(
        &self,
        room_id: RoomId,
        id: StreamerId,
    ) -> Result<Option<Streamer>, StoreError> {
        backend!(self, db => db.streamer(room_id, id).await)
    }

    /// Sets (or with `None` clears) the sticker set of streamer `id` of `room_id`; the caller
    /// checks that the set exists. Returns the updated streamer, `None` if there is no such one.
    pub async fn set_streamer_sticker_set(
        &self,
        room_id: RoomId,
        id: StreamerId,
        sticker_set: Option<&str>,
    ) -> Result<Option<Streamer>, StoreError> {
        backend!(self, db => db.set_streamer_sticker_set(room_id, id, sticker_set).await)
    }

    /// The stored key hash of streamer `id` (tests, audits).
    pub async fn key_hash(&self, id: StreamerId) -> Result<Option<String>, StoreError> {
        backend!(self, db => db.key_hash(id).await)
    }

    /// Deletes streamer `id` of `room_id` and takes it off the stage. Returns whether it existed.
    pub async fn delete_streamer(
        &self,
        room_id: RoomId,
        id: StreamerId,
    ) -> Result<bool, StoreError> {
        backend!(self, db => db.delete_streamer(room_id, id).await)
    }

    /// The stage of `room_id`, `max_slots` long (layout 1 for an unknown room).
    pub async fn stage(&self, room_id: RoomId, max_slots: usize) -> Result<Stage, StoreError> {
        backend!(self, db => db.stage(room_id, max_slots).await)
    }

    /// Replaces the stage of `room_id`. Checks: layout 1..=9; at most `max_slots` slots; every
    /// id a streamer of this room; no streamer twice. Errors: `Invalid` with the reason.
    pub async fn set_stage(
        &self,
        room_id: RoomId,
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
        backend!(self, db => db.set_stage(room_id, stage, &seen).await)
    }
}

#[cfg(test)]
#[path = "../tests/store_db.rs"]
pub(crate) mod test_db;

#[cfg(test)]
#[path = "../tests/store.rs"]
mod tests;

#[cfg(test)]
#[path = "../tests/store_areas.rs"]
mod area_tests;
