//! Persistence of the living room (migration `0002_interaction.sql`): room settings, chat
//! history (deleted messages are flagged, not removed), the sticker board, sticker sets and
//! moderation records (bans by hashed IP, mutes and stars by hashed IP + name key).
//!
//! The hub never calls the store: its shell loads a room with [`Store::load_interaction`] at
//! start and writes the hub's [`PersistOp`]s with [`Store::apply_interaction`], one
//! transaction per batch. A room's title lives in `rooms.title`; settings write it too.

use super::{Store, StoreError, now_unix};
use crate::hub::settings::{DEFAULT_STICKER_SET, Mode, RoomSettings, StickerDef, StickerSet};
use crate::hub::{
    BanRecord, ChatRecord, IpHash, Loaded, MuteRecord, PersistOp, StarRecord, StickerRecord,
};

type ChatRow = (i64, i64, String, String, i64, bool, bool);
type StickerRow = (i64, String, f64, f64, f64, f64, i64, i64);

fn ip_text(ip: Option<&IpHash>) -> String {
    ip.map(IpHash::to_hex).unwrap_or_default()
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// The sticker set `id`: the built-in `default`, or one stored with
    /// [`Store::put_sticker_set`].
    pub async fn sticker_set(&self, id: &str) -> Result<Option<StickerSet>, StoreError> {
        if id == DEFAULT_STICKER_SET {
            return Ok(Some(StickerSet::default_set()));
        }
        let row = sqlx::query_as::<_, (String, String)>(
            "SELECT name, stickers FROM sticker_sets WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(name, stickers)| {
            let stickers: Vec<StickerDef> = serde_json::from_str(&stickers).ok()?;
            Some(StickerSet {
                id: id.to_owned(),
                name,
                stickers,
            })
        }))
    }

    /// Every sticker set, `default` first.
    pub async fn sticker_sets(&self) -> Result<Vec<StickerSet>, StoreError> {
        let ids = sqlx::query_scalar::<_, String>("SELECT id FROM sticker_sets ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut sets = vec![StickerSet::default_set()];
        for id in ids {
            if let Some(set) = self.sticker_set(&id).await? {
                sets.push(set);
            }
        }
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
        sqlx::query(
            "INSERT INTO sticker_sets (id, name, stickers) VALUES (?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, stickers = excluded.stickers",
        )
        .bind(&set.id)
        .bind(&set.name)
        .bind(stickers)
        .execute(&self.pool)
        .await?;
        Ok(())
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
        sqlx::query(
            "INSERT INTO sticker_images (set_id, sticker_id, content_type, data, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT(set_id, sticker_id) DO UPDATE SET \
             content_type = excluded.content_type, data = excluded.data, updated_at = excluded.updated_at",
        )
        .bind(set_id)
        .bind(sticker_id)
        .bind(content_type)
        .bind(data)
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One uploaded sticker picture: `(content_type, bytes)`, or `None`.
    pub async fn sticker_image(
        &self,
        set_id: &str,
        sticker_id: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query_as::<_, (String, Vec<u8>)>(
            "SELECT content_type, data FROM sticker_images WHERE set_id = ? AND sticker_id = ?",
        )
        .bind(set_id)
        .bind(sticker_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Everything the hub of `room_id` starts from: settings (None when never set), the
    /// newest `chat_history` undeleted messages and `board_size` stickers (oldest first),
    /// live bans and mutes (as of `wall_ms`), stars, and the largest ids used.
    pub async fn load_interaction(
        &self,
        room_id: i64,
        board_size: usize,
        chat_history: usize,
        wall_ms: u64,
    ) -> Result<Loaded, StoreError> {
        let title = sqlx::query_scalar::<_, String>("SELECT title FROM rooms WHERE id = ?")
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or_default();
        let row = sqlx::query_as::<_, (String, String, String, String, i64)>(
            "SELECT now_playing, background_color, mode, sticker_set, slow_mode_s \
             FROM room_settings WHERE room_id = ?",
        )
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        let settings = match row {
            Some((now_playing, background_color, mode, set, slow)) => Some(RoomSettings {
                title,
                now_playing,
                background_color,
                mode: Mode::parse(&mode).unwrap_or_default(),
                sticker_set: self
                    .sticker_set(&set)
                    .await?
                    .unwrap_or_else(StickerSet::default_set),
                slow_mode_s: u32::try_from(slow).unwrap_or(0),
            }),
            None => None,
        };
        let limit = i64::try_from(chat_history).unwrap_or(i64::MAX);
        let mut chat: Vec<ChatRecord> = sqlx::query_as::<_, ChatRow>(
            "SELECT id, user_id, display_name, text, sent_ms, starred, admin FROM chat_messages \
             WHERE room_id = ? AND deleted = 0 ORDER BY id DESC LIMIT ?",
        )
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(
            |(id, user_id, display_name, text, sent_ms, starred, admin)| ChatRecord {
                id: u(id),
                user_id: u(user_id),
                display_name,
                text,
                sent_ms: u(sent_ms),
                starred,
                admin,
            },
        )
        .collect();
        chat.reverse();
        let limit = i64::try_from(board_size).unwrap_or(i64::MAX);
        let mut stickers: Vec<StickerRecord> = sqlx::query_as::<_, StickerRow>(
            "SELECT id, sticker_id, x, y, rotation_deg, scale, user_id, placed_ms FROM stickers \
             WHERE room_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(
            |(id, sticker_id, x, y, rotation_deg, scale, user_id, placed_ms)| StickerRecord {
                id: u(id),
                sticker_id,
                x: x as f32,
                y: y as f32,
                rotation_deg: rotation_deg as f32,
                scale: scale as f32,
                user_id: u(user_id),
                placed_ms: u(placed_ms),
            },
        )
        .collect();
        stickers.reverse();
        let now = i(wall_ms);
        let bans = sqlx::query_as::<_, (String, i64, String)>(
            "SELECT ip_hash, until_ms, reason FROM bans \
             WHERE room_id = ? AND (until_ms = 0 OR until_ms > ?)",
        )
        .bind(room_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .filter_map(|(ip, until, reason)| {
            Some(BanRecord {
                ip_hash: IpHash::from_hex(&ip)?,
                until_ms: u(until),
                reason,
            })
        })
        .collect();
        let mutes = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT ip_hash, name_key, until_ms FROM mutes WHERE room_id = ? AND until_ms > ?",
        )
        .bind(room_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(ip, name_key, until)| MuteRecord {
            ip_hash: IpHash::from_hex(&ip),
            name_key,
            until_ms: u(until),
        })
        .collect();
        let stars = sqlx::query_as::<_, (String, String)>(
            "SELECT ip_hash, name_key FROM stars WHERE room_id = ?",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(ip, name_key)| StarRecord {
            ip_hash: IpHash::from_hex(&ip),
            name_key,
            starred: true,
        })
        .collect();
        let (max_chat_id, max_chat_user) = sqlx::query_as::<_, (Option<i64>, Option<i64>)>(
            "SELECT MAX(id), MAX(user_id) FROM chat_messages WHERE room_id = ?",
        )
        .bind(room_id)
        .fetch_one(&self.pool)
        .await?;
        let (max_sticker_id, max_sticker_user) = sqlx::query_as::<_, (Option<i64>, Option<i64>)>(
            "SELECT MAX(id), MAX(user_id) FROM stickers WHERE room_id = ?",
        )
        .bind(room_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Loaded {
            settings,
            chat,
            stickers,
            bans,
            mutes,
            stars,
            max_user_id: u(max_chat_user
                .unwrap_or(0)
                .max(max_sticker_user.unwrap_or(0))),
            max_chat_id: u(max_chat_id.unwrap_or(0)),
            max_sticker_id: u(max_sticker_id.unwrap_or(0)),
        })
    }

    /// Writes a batch of hub changes of `room_id` in one transaction.
    pub async fn apply_interaction(
        &self,
        room_id: i64,
        ops: &[PersistOp],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for op in ops {
            match op {
                PersistOp::Chat(m) => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO chat_messages \
                         (room_id, id, user_id, display_name, text, sent_ms, starred, admin) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(room_id)
                    .bind(i(m.id))
                    .bind(i(m.user_id))
                    .bind(&m.display_name)
                    .bind(&m.text)
                    .bind(i(m.sent_ms))
                    .bind(m.starred)
                    .bind(m.admin)
                    .execute(&mut *tx)
                    .await?;
                }
                PersistOp::DeleteChat(id) => {
                    sqlx::query(
                        "UPDATE chat_messages SET deleted = 1 WHERE room_id = ? AND id = ?",
                    )
                    .bind(room_id)
                    .bind(i(*id))
                    .execute(&mut *tx)
                    .await?;
                }
                PersistOp::ClearChat => {
                    sqlx::query("UPDATE chat_messages SET deleted = 1 WHERE room_id = ?")
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                }
                PersistOp::Sticker(s) => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO stickers (room_id, id, sticker_id, x, y, \
                         rotation_deg, scale, user_id, placed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(room_id)
                    .bind(i(s.id))
                    .bind(&s.sticker_id)
                    .bind(f64::from(s.x))
                    .bind(f64::from(s.y))
                    .bind(f64::from(s.rotation_deg))
                    .bind(f64::from(s.scale))
                    .bind(i(s.user_id))
                    .bind(i(s.placed_ms))
                    .execute(&mut *tx)
                    .await?;
                }
                PersistOp::ExpireStickers(ids) => {
                    for id in ids {
                        sqlx::query("DELETE FROM stickers WHERE room_id = ? AND id = ?")
                            .bind(room_id)
                            .bind(i(*id))
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                PersistOp::ClearStickers => {
                    sqlx::query("DELETE FROM stickers WHERE room_id = ?")
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                }
                PersistOp::Ban(b) => {
                    sqlx::query(
                        "INSERT INTO bans (room_id, ip_hash, until_ms, reason) VALUES (?, ?, ?, ?)",
                    )
                    .bind(room_id)
                    .bind(b.ip_hash.to_hex())
                    .bind(i(b.until_ms))
                    .bind(&b.reason)
                    .execute(&mut *tx)
                    .await?;
                }
                PersistOp::Mute(m) => {
                    if m.until_ms == 0 {
                        sqlx::query(
                            "DELETE FROM mutes WHERE room_id = ? AND ip_hash = ? AND name_key = ?",
                        )
                        .bind(room_id)
                        .bind(ip_text(m.ip_hash.as_ref()))
                        .bind(&m.name_key)
                        .execute(&mut *tx)
                        .await?;
                    } else {
                        sqlx::query(
                            "INSERT OR REPLACE INTO mutes (room_id, ip_hash, name_key, until_ms) \
                             VALUES (?, ?, ?, ?)",
                        )
                        .bind(room_id)
                        .bind(ip_text(m.ip_hash.as_ref()))
                        .bind(&m.name_key)
                        .bind(i(m.until_ms))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                PersistOp::Star(s) => {
                    let sql = if s.starred {
                        "INSERT OR IGNORE INTO stars (room_id, ip_hash, name_key) VALUES (?, ?, ?)"
                    } else {
                        "DELETE FROM stars WHERE room_id = ? AND ip_hash = ? AND name_key = ?"
                    };
                    sqlx::query(sql)
                        .bind(room_id)
                        .bind(ip_text(s.ip_hash.as_ref()))
                        .bind(&s.name_key)
                        .execute(&mut *tx)
                        .await?;
                }
                PersistOp::Settings(s) => {
                    sqlx::query("UPDATE rooms SET title = ? WHERE id = ?")
                        .bind(&s.title)
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT OR REPLACE INTO room_settings (room_id, now_playing, \
                         background_color, mode, sticker_set, slow_mode_s) VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(room_id)
                    .bind(&s.now_playing)
                    .bind(&s.background_color)
                    .bind(s.mode.as_str())
                    .bind(&s.sticker_set.id)
                    .bind(i64::from(s.slow_mode_s))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
