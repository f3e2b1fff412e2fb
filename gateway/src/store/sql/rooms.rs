//! Rooms, streamers and stage slots (migrations 0001, 0004).
//!
//! The SQL is the same on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT` upserts,
//! `TRUE`/`FALSE`): [`rooms_sql!`] expands it, with its row types, inside each backend's
//! `rooms` module (`store/sqlite/rooms.rs`, `store/postgres/rooms.rs`).

/// Expands to this area's row types and `impl $store { … }` (the queries) in the calling
/// backend module; `$store` is the backend's store (with a `pool`), `$conn` its connection type.
macro_rules! rooms_sql {
    ($store:ident, $conn:ty) => {
        use std::collections::HashSet;

        use super::$store;
        use crate::store::sql::{is_unique_violation, streamer_columns};
        use crate::ids::{RoomId, StreamerId};
        use crate::store::{Room, Stage, StoreError, Streamer};

        /// One row of `stage_slots`.
        #[derive(sqlx::FromRow)]
        struct SlotRow {
            slot_index: i64,
            streamer_id: Option<StreamerId>,
        }

        /// Inserts a streamer of `room_id` with the hash of its key (`created_at`: Unix seconds).
        /// Shared by `create_streamer` and the booking that creates one.
        pub(super) async fn insert_streamer(
            conn: &mut $conn,
            room_id: RoomId,
            name: &str,
            key_hash: &str,
            created_at: i64,
        ) -> Result<Streamer, sqlx::Error> {
            sqlx::query_as::<_, Streamer>(concat!(
                "INSERT INTO streamers (room_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4) \
                 RETURNING ",
                streamer_columns!()
            ))
            .bind(room_id)
            .bind(name)
            .bind(key_hash)
            .bind(created_at)
            .fetch_one(conn)
            .await
        }

        impl $store {
            pub(crate) async fn rooms(&self) -> Result<Vec<Room>, StoreError> {
                Ok(sqlx::query_as::<_, Room>(
                    "SELECT id, name, title, layout, created_at FROM rooms ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
                Ok(sqlx::query_as::<_, Room>(
                    "SELECT id, name, title, layout, created_at FROM rooms WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            /// Errors: `Conflict` (name taken), `Db`.
            pub(crate) async fn create_room(
                &self,
                name: &str,
                title: &str,
                created_at: i64,
            ) -> Result<Room, StoreError> {
                let result = sqlx::query_as::<_, Room>(
                    "INSERT INTO rooms (name, title, layout, created_at) VALUES ($1, $2, 1, $3) \
                     RETURNING id, name, title, layout, created_at",
                )
                .bind(name)
                .bind(title)
                .bind(created_at)
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

            pub(crate) async fn create_streamer(
                &self,
                room_id: RoomId,
                name: &str,
                key_hash: &str,
                created_at: i64,
            ) -> Result<Streamer, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Ok(insert_streamer(&mut conn, room_id, name, key_hash, created_at).await?)
            }

            pub(crate) async fn streamers(&self, room_id: RoomId) -> Result<Vec<Streamer>, StoreError> {
                Ok(sqlx::query_as::<_, Streamer>(concat!(
                    "SELECT ",
                    streamer_columns!(),
                    " FROM streamers WHERE room_id = $1 ORDER BY id"
                ))
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn streamer_by_key_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<Streamer>, StoreError> {
                Ok(sqlx::query_as::<_, Streamer>(concat!(
                    "SELECT ",
                    streamer_columns!(),
                    " FROM streamers WHERE key_hash = $1"
                ))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            pub(crate) async fn streamer(
                &self,
                room_id: RoomId,
                id: StreamerId,
            ) -> Result<Option<Streamer>, StoreError> {
                Ok(sqlx::query_as::<_, Streamer>(concat!(
                    "SELECT ",
                    streamer_columns!(),
                    " FROM streamers WHERE room_id = $1 AND id = $2"
                ))
                .bind(room_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            pub(crate) async fn set_streamer_sticker_set(
                &self,
                room_id: RoomId,
                id: StreamerId,
                sticker_set: Option<&str>,
            ) -> Result<Option<Streamer>, StoreError> {
                Ok(sqlx::query_as::<_, Streamer>(concat!(
                    "UPDATE streamers SET sticker_set = $1 WHERE room_id = $2 AND id = $3 RETURNING ",
                    streamer_columns!()
                ))
                .bind(sticker_set)
                .bind(room_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            pub(crate) async fn key_hash(&self, id: StreamerId) -> Result<Option<String>, StoreError> {
                Ok(
                    sqlx::query_scalar::<_, String>("SELECT key_hash FROM streamers WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            /// Takes the streamer off the stage and deletes it, in one transaction.
            pub(crate) async fn delete_streamer(
                &self,
                room_id: RoomId,
                id: StreamerId,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE stage_slots SET streamer_id = NULL WHERE room_id = $1 AND streamer_id = $2",
                )
                .bind(room_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query("DELETE FROM streamers WHERE room_id = $1 AND id = $2")
                    .bind(room_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted > 0)
            }

            pub(crate) async fn stage(
                &self,
                room_id: RoomId,
                max_slots: usize,
            ) -> Result<Stage, StoreError> {
                let layout = sqlx::query_scalar::<_, i64>("SELECT layout FROM rooms WHERE id = $1")
                    .bind(room_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(1);
                let rows = sqlx::query_as::<_, SlotRow>(
                    "SELECT slot_index, streamer_id FROM stage_slots WHERE room_id = $1 ORDER BY slot_index",
                )
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?;
                let mut slots = vec![None; max_slots];
                for row in rows {
                    if let Some(slot) = usize::try_from(row.slot_index)
                        .ok()
                        .and_then(|i| slots.get_mut(i))
                    {
                        *slot = row.streamer_id;
                    }
                }
                Ok(Stage {
                    layout: u32::try_from(layout.clamp(1, 9)).unwrap_or(1),
                    slots,
                })
            }

            /// Writes a validated stage; `streamers` (the ids on it) must all be streamers of
            /// `room_id`, checked in the same transaction. Errors: `Invalid` naming the stranger.
            pub(crate) async fn set_stage(
                &self,
                room_id: RoomId,
                stage: &Stage,
                streamers: &HashSet<StreamerId>,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for id in streamers {
                    let found = sqlx::query_scalar::<_, StreamerId>(
                        "SELECT id FROM streamers WHERE room_id = $1 AND id = $2",
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
                sqlx::query("UPDATE rooms SET layout = $1 WHERE id = $2")
                    .bind(i64::from(stage.layout))
                    .bind(room_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM stage_slots WHERE room_id = $1")
                    .bind(room_id)
                    .execute(&mut *tx)
                    .await?;
                for (index, streamer) in stage.slots.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO stage_slots (room_id, slot_index, streamer_id) VALUES ($1, $2, $3)",
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
    };
}
pub(crate) use rooms_sql;
