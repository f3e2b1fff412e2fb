//! The living room (migrations 0002, 0003): settings, chat, the sticker board,
//! sticker sets and pictures, bans, mutes and stars. Ids and times are stored as `INTEGER`
//! / `BIGINT` (`i64`); the hub's `u64`s convert saturating (a negative stored value reads as 0).
//!
//! The SQL is the same on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT` upserts,
//! `TRUE`/`FALSE`): [`interaction_sql!`] expands it, with its row types, inside each backend's
//! `interaction` module (`store/sqlite/interaction.rs`, `store/postgres/interaction.rs`).

/// Expands to this area's row types and `impl $store { … }` (the queries) in the calling
/// backend module; `$store` is the backend's store (with a `pool`), `$conn` its connection type.
macro_rules! interaction_sql {
    ($store:ident, $conn:ty) => {
        use super::$store;
        use crate::hub::{
            BanRecord, ChatRecord, IpHash, Loaded, MuteRecord, PersistOp, StarRecord, StickerRecord,
        };
        use crate::ids::RoomId;
        use crate::store::StoreError;
        use crate::store::interaction::{StoredSettings, StoredStickerSet};

        fn ip_text(ip: Option<&IpHash>) -> String {
            ip.map(IpHash::to_hex).unwrap_or_default()
        }

        fn u(v: i64) -> u64 {
            u64::try_from(v).unwrap_or(0)
        }

        fn i(v: u64) -> i64 {
            i64::try_from(v).unwrap_or(i64::MAX)
        }

        /// One row of `room_settings` with the room's title.
        #[derive(sqlx::FromRow)]
        struct SettingsRow {
            title: String,
            now_playing: String,
            background_color: String,
            mode: String,
            sticker_set: String,
            slow_mode_s: i64,
        }

        /// One row of `chat_messages`.
        #[derive(sqlx::FromRow)]
        struct ChatRow {
            id: i64,
            user_id: i64,
            display_name: String,
            text: String,
            sent_ms: i64,
            starred: bool,
            admin: bool,
        }

        impl From<ChatRow> for ChatRecord {
            fn from(r: ChatRow) -> ChatRecord {
                ChatRecord {
                    id: u(r.id),
                    user_id: u(r.user_id),
                    display_name: r.display_name,
                    text: r.text,
                    sent_ms: u(r.sent_ms),
                    starred: r.starred,
                    admin: r.admin,
                }
            }
        }

        /// One row of `stickers` (coordinates stored as `REAL`).
        #[derive(sqlx::FromRow)]
        struct StickerRow {
            id: i64,
            sticker_id: String,
            x: f64,
            y: f64,
            rotation_deg: f64,
            scale: f64,
            user_id: i64,
            placed_ms: i64,
        }

        impl From<StickerRow> for StickerRecord {
            fn from(r: StickerRow) -> StickerRecord {
                StickerRecord {
                    id: u(r.id),
                    sticker_id: r.sticker_id,
                    x: r.x as f32,
                    y: r.y as f32,
                    rotation_deg: r.rotation_deg as f32,
                    scale: r.scale as f32,
                    user_id: u(r.user_id),
                    placed_ms: u(r.placed_ms),
                }
            }
        }

        /// One row of `bans`.
        #[derive(sqlx::FromRow)]
        struct BanRow {
            ip_hash: String,
            until_ms: i64,
            reason: String,
        }

        /// One row of `mutes`.
        #[derive(sqlx::FromRow)]
        struct MuteRow {
            ip_hash: String,
            name_key: String,
            until_ms: i64,
        }

        /// One row of `stars`.
        #[derive(sqlx::FromRow)]
        struct StarRow {
            ip_hash: String,
            name_key: String,
        }

        /// The largest ids of a room's chat or board (`None` when empty).
        #[derive(sqlx::FromRow)]
        struct MaxIds {
            max_id: Option<i64>,
            max_user: Option<i64>,
        }

        /// The sticker picture of one sticker.
        #[derive(sqlx::FromRow)]
        struct ImageRow {
            content_type: String,
            data: Vec<u8>,
        }

        impl $store {
            pub(crate) async fn sticker_set(
                &self,
                id: &str,
            ) -> Result<Option<StoredStickerSet>, StoreError> {
                Ok(sqlx::query_as::<_, StoredStickerSet>(
                    "SELECT id, name, stickers FROM sticker_sets WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            /// Every stored set, by id.
            pub(crate) async fn sticker_sets(&self) -> Result<Vec<StoredStickerSet>, StoreError> {
                Ok(sqlx::query_as::<_, StoredStickerSet>(
                    "SELECT id, name, stickers FROM sticker_sets ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn put_sticker_set(&self, set: &StoredStickerSet) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sticker_sets (id, name, stickers) VALUES ($1, $2, $3) \
                     ON CONFLICT(id) DO UPDATE SET name = excluded.name, stickers = excluded.stickers",
                )
                .bind(&set.id)
                .bind(&set.name)
                .bind(&set.stickers)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn put_sticker_image(
                &self,
                set_id: &str,
                sticker_id: &str,
                content_type: &str,
                data: &[u8],
                updated_at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sticker_images (set_id, sticker_id, content_type, data, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT(set_id, sticker_id) DO UPDATE SET \
                     content_type = excluded.content_type, data = excluded.data, updated_at = excluded.updated_at",
                )
                .bind(set_id)
                .bind(sticker_id)
                .bind(content_type)
                .bind(data)
                .bind(updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn sticker_image(
                &self,
                set_id: &str,
                sticker_id: &str,
            ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
                Ok(sqlx::query_as::<_, ImageRow>(
                    "SELECT content_type, data FROM sticker_images WHERE set_id = $1 AND sticker_id = $2",
                )
                .bind(set_id)
                .bind(sticker_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| (r.content_type, r.data)))
            }

            /// What [`Store::load_interaction`](crate::store::Store::load_interaction) needs, with
            /// `Loaded::settings` left `None` and the stored settings beside it.
            pub(crate) async fn load_interaction(
                &self,
                room_id: RoomId,
                board_size: usize,
                chat_history: usize,
                wall_ms: u64,
            ) -> Result<(Loaded, Option<StoredSettings>), StoreError> {
                let settings = sqlx::query_as::<_, SettingsRow>(
                    "SELECT COALESCE(r.title, '') AS title, s.now_playing AS now_playing, \
                     s.background_color AS background_color, s.mode AS mode, \
                     s.sticker_set AS sticker_set, s.slow_mode_s AS slow_mode_s \
                     FROM room_settings s LEFT JOIN rooms r ON r.id = s.room_id WHERE s.room_id = $1",
                )
                .bind(room_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| StoredSettings {
                    title: r.title,
                    now_playing: r.now_playing,
                    background_color: r.background_color,
                    mode: r.mode,
                    sticker_set: r.sticker_set,
                    slow_mode_s: r.slow_mode_s,
                });
                let limit = i64::try_from(chat_history).unwrap_or(i64::MAX);
                let mut chat: Vec<ChatRecord> = sqlx::query_as::<_, ChatRow>(
                    "SELECT id, user_id, display_name, text, sent_ms, starred, admin FROM chat_messages \
                     WHERE room_id = $1 AND deleted = FALSE ORDER BY id DESC LIMIT $2",
                )
                .bind(room_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(ChatRecord::from)
                .collect();
                chat.reverse();
                let limit = i64::try_from(board_size).unwrap_or(i64::MAX);
                let mut stickers: Vec<StickerRecord> = sqlx::query_as::<_, StickerRow>(
                    "SELECT id, sticker_id, x, y, rotation_deg, scale, user_id, placed_ms FROM stickers \
                     WHERE room_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(room_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(StickerRecord::from)
                .collect();
                stickers.reverse();
                let now = i(wall_ms);
                let bans = sqlx::query_as::<_, BanRow>(
                    "SELECT ip_hash, until_ms, reason FROM bans \
                     WHERE room_id = $1 AND (until_ms = 0 OR until_ms > $2)",
                )
                .bind(room_id)
                .bind(now)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .filter_map(|r| {
                    Some(BanRecord {
                        ip_hash: IpHash::from_hex(&r.ip_hash)?,
                        until_ms: u(r.until_ms),
                        reason: r.reason,
                    })
                })
                .collect();
                let mutes = sqlx::query_as::<_, MuteRow>(
                    "SELECT ip_hash, name_key, until_ms FROM mutes WHERE room_id = $1 AND until_ms > $2",
                )
                .bind(room_id)
                .bind(now)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r| MuteRecord {
                    ip_hash: IpHash::from_hex(&r.ip_hash),
                    name_key: r.name_key,
                    until_ms: u(r.until_ms),
                })
                .collect();
                let stars =
                    sqlx::query_as::<_, StarRow>("SELECT ip_hash, name_key FROM stars WHERE room_id = $1")
                        .bind(room_id)
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(|r| StarRecord {
                            ip_hash: IpHash::from_hex(&r.ip_hash),
                            name_key: r.name_key,
                            starred: true,
                        })
                        .collect();
                let chat_ids = sqlx::query_as::<_, MaxIds>(
                    "SELECT MAX(id) AS max_id, MAX(user_id) AS max_user FROM chat_messages \
                     WHERE room_id = $1",
                )
                .bind(room_id)
                .fetch_one(&self.pool)
                .await?;
                let sticker_ids = sqlx::query_as::<_, MaxIds>(
                    "SELECT MAX(id) AS max_id, MAX(user_id) AS max_user FROM stickers WHERE room_id = $1",
                )
                .bind(room_id)
                .fetch_one(&self.pool)
                .await?;
                let loaded = Loaded {
                    settings: None,
                    chat,
                    stickers,
                    bans,
                    mutes,
                    stars,
                    max_user_id: u(chat_ids
                        .max_user
                        .unwrap_or(0)
                        .max(sticker_ids.max_user.unwrap_or(0))),
                    max_chat_id: u(chat_ids.max_id.unwrap_or(0)),
                    max_sticker_id: u(sticker_ids.max_id.unwrap_or(0)),
                };
                Ok((loaded, settings))
            }

            /// Writes `ops` in order, in one transaction.
            pub(crate) async fn apply_interaction(
                &self,
                room_id: RoomId,
                ops: &[PersistOp],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for op in ops {
                    match op {
                        PersistOp::Chat(m) => {
                            sqlx::query(
                                "INSERT INTO chat_messages \
                                 (room_id, id, user_id, display_name, text, sent_ms, starred, admin) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                                 ON CONFLICT (room_id, id) DO UPDATE SET user_id = excluded.user_id, \
                                 display_name = excluded.display_name, text = excluded.text, \
                                 sent_ms = excluded.sent_ms, starred = excluded.starred, \
                                 admin = excluded.admin, deleted = FALSE",
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
                                "UPDATE chat_messages SET deleted = TRUE WHERE room_id = $1 AND id = $2",
                            )
                            .bind(room_id)
                            .bind(i(*id))
                            .execute(&mut *tx)
                            .await?;
                        }
                        PersistOp::ClearChat => {
                            sqlx::query("UPDATE chat_messages SET deleted = TRUE WHERE room_id = $1")
                                .bind(room_id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        PersistOp::Sticker(s) => {
                            sqlx::query(
                                "INSERT INTO stickers (room_id, id, sticker_id, x, y, rotation_deg, scale, \
                                 user_id, placed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                                 ON CONFLICT (room_id, id) DO UPDATE SET sticker_id = excluded.sticker_id, \
                                 x = excluded.x, y = excluded.y, rotation_deg = excluded.rotation_deg, \
                                 scale = excluded.scale, user_id = excluded.user_id, \
                                 placed_ms = excluded.placed_ms",
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
                                sqlx::query("DELETE FROM stickers WHERE room_id = $1 AND id = $2")
                                    .bind(room_id)
                                    .bind(i(*id))
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        PersistOp::ClearStickers => {
                            sqlx::query("DELETE FROM stickers WHERE room_id = $1")
                                .bind(room_id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        PersistOp::Ban(b) => {
                            sqlx::query(
                                "INSERT INTO bans (room_id, ip_hash, until_ms, reason) VALUES ($1, $2, $3, $4)",
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
                                    "DELETE FROM mutes WHERE room_id = $1 AND ip_hash = $2 AND name_key = $3",
                                )
                                .bind(room_id)
                                .bind(ip_text(m.ip_hash.as_ref()))
                                .bind(&m.name_key)
                                .execute(&mut *tx)
                                .await?;
                            } else {
                                sqlx::query(
                                    "INSERT INTO mutes (room_id, ip_hash, name_key, until_ms) \
                                     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, ip_hash, name_key) \
                                     DO UPDATE SET until_ms = excluded.until_ms",
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
                                "INSERT INTO stars (room_id, ip_hash, name_key) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING"
                            } else {
                                "DELETE FROM stars WHERE room_id = $1 AND ip_hash = $2 AND name_key = $3"
                            };
                            sqlx::query(sql)
                                .bind(room_id)
                                .bind(ip_text(s.ip_hash.as_ref()))
                                .bind(&s.name_key)
                                .execute(&mut *tx)
                                .await?;
                        }
                        PersistOp::Settings(s) => {
                            sqlx::query("UPDATE rooms SET title = $1 WHERE id = $2")
                                .bind(&s.title)
                                .bind(room_id)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(
                                "INSERT INTO room_settings (room_id, now_playing, background_color, mode, \
                                 sticker_set, slow_mode_s) VALUES ($1, $2, $3, $4, $5, $6) \
                                 ON CONFLICT (room_id) DO UPDATE SET now_playing = excluded.now_playing, \
                                 background_color = excluded.background_color, mode = excluded.mode, \
                                 sticker_set = excluded.sticker_set, slow_mode_s = excluded.slow_mode_s",
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
    };
}
pub(crate) use interaction_sql;
