//! Persistence of the living room (migration `0002_interaction.sql`): room settings, chat
//! history (deleted messages are flagged, not removed), the sticker board, sticker sets and
//! moderation records (bans by hashed IP, mutes and stars by hashed IP + name key).
//!
//! The hub never calls the store: its shell loads a room with [`Store::load_interaction`] at
//! start and writes the hub's [`PersistOp`]s with [`Store::apply_interaction`], one
//! transaction per batch. A room's title lives in `rooms.title`; settings write it too.

use super::{Store, StoreError, now_unix};
use crate::hub::settings::{DEFAULT_STICKER_SET, Mode, RoomSettings, StickerDef, StickerSet};
use crate::hub::{Loaded, PersistOp};
use crate::ids::RoomId;

/// A room's settings as a backend stores them: the sticker set by id, the mode by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSettings {
    pub title: String,
    pub now_playing: String,
    pub background_color: String,
    /// [`Mode::as_str`]; an unknown one reads as the default mode.
    pub mode: String,
    /// A sticker set id; an unknown one reads as the built-in set.
    pub sticker_set: String,
    /// Seconds.
    pub slow_mode_s: i64,
}

/// A stored sticker set: its stickers as the JSON array [`Store::put_sticker_set`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct StoredStickerSet {
    pub id: String,
    pub name: String,
    /// JSON array of [`StickerDef`].
    pub stickers: String,
}

impl StoredStickerSet {
    /// The set, `None` when its JSON no longer parses.
    fn parse(self) -> Option<StickerSet> {
        let stickers: Vec<StickerDef> = serde_json::from_str(&self.stickers).ok()?;
        Some(StickerSet {
            id: self.id,
            name: self.name,
            stickers,
        })
    }
}

impl Store {
    /// The sticker set `id`: the built-in `default`, or one stored with
    /// [`Store::put_sticker_set`].
    pub async fn sticker_set(&self, id: &str) -> Result<Option<StickerSet>, StoreError> {
        if id == DEFAULT_STICKER_SET {
            return Ok(Some(StickerSet::default_set()));
        }
        let stored = backend!(self, db => db.sticker_set(id).await)?;
        Ok(stored.and_then(StoredStickerSet::parse))
    }

    /// Every sticker set, `default` first, then the stored ones by id.
    pub async fn sticker_sets(&self) -> Result<Vec<StickerSet>, StoreError> {
        let stored = backend!(self, db => db.sticker_sets().await)?;
        let mut sets = vec![StickerSet::default_set()];
        sets.extend(stored.into_iter().filter_map(StoredStickerSet::parse));
        Ok(sets)
    }

    /// Creates or replaces a sticker set (not `default`). Errors: `Invalid` with the reason.
    pub async fn put_sticker_set(&self, set: &StickerSet) -> Result<(), StoreError> {
        set.validate().map_err(StoreError::Invalid)?;
        if set.id == DEFAULT_STICKER_SET {
            return Err(StoreError::Invalid(
                "the default sticker set is built in and cannot be replaced".into(),
            ));
        }
        let stickers =
            serde_json::to_string(&set.stickers).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let stored = StoredStickerSet {
            id: set.id.clone(),
            name: set.name.clone(),
            stickers,
        };
        backend!(self, db => db.put_sticker_set(&stored).await)
    }

    /// Stores (or replaces) one sticker picture of set `set_id`. The caller has checked the
    /// content type and size.
    pub async fn put_sticker_image(
        &self,
        set_id: &str,
        sticker_id: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        backend!(self, db => db.put_sticker_image(set_id, sticker_id, content_type, data, now_unix()).await)
    }

    /// One uploaded sticker picture: `(content_type, bytes)`, or `None`.
    pub async fn sticker_image(
        &self,
        set_id: &str,
        sticker_id: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        backend!(self, db => db.sticker_image(set_id, sticker_id).await)
    }

    /// Everything the hub of `room_id` starts from: settings (None when never set), the
    /// newest `chat_history` undeleted messages and `board_size` stickers (oldest first),
    /// live bans and mutes (as of `wall_ms`, Unix milliseconds), stars, and the largest ids
    /// used.
    pub async fn load_interaction(
        &self,
        room_id: RoomId,
        board_size: usize,
        chat_history: usize,
        wall_ms: u64,
    ) -> Result<Loaded, StoreError> {
        let (mut loaded, stored) = backend!(self, db => db.load_interaction(room_id, board_size, chat_history, wall_ms).await)?;
        loaded.settings = match stored {
            Some(s) => Some(RoomSettings {
                title: s.title,
                now_playing: s.now_playing,
                background_color: s.background_color,
                mode: Mode::parse(&s.mode).unwrap_or_default(),
                sticker_set: self
                    .sticker_set(&s.sticker_set)
                    .await?
                    .unwrap_or_else(StickerSet::default_set),
                slow_mode_s: u32::try_from(s.slow_mode_s).unwrap_or(0),
            }),
            None => None,
        };
        Ok(loaded)
    }

    /// Writes a batch of hub changes of `room_id` in one transaction.
    pub async fn apply_interaction(
        &self,
        room_id: RoomId,
        ops: &[PersistOp],
    ) -> Result<(), StoreError> {
        backend!(self, db => db.apply_interaction(room_id, ops).await)
    }
}
