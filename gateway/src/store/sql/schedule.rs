//! The schedule (migration 0005): events and bookings, slot-bound streamers.
//! Overlaps and merges are decided inside the transaction that writes them.
//!
//! The SQL is the same on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT` upserts,
//! `TRUE`/`FALSE`): [`schedule_sql!`] expands it, with its row types, inside each backend's
//! `schedule` module (`store/sqlite/schedule.rs`, `store/postgres/schedule.rs`).

/// Expands to this area's row types and `impl $store { … }` (the queries) in the calling
/// backend module; `$store` is the backend's store (with a `pool`), `$conn` its connection type.
macro_rules! schedule_sql {
    ($store:ident, $conn:ty) => {
        use super::rooms::insert_streamer;
        use super::$store;
        use crate::store::sql::streamer_columns;
        use crate::ids::{BookingId, EventId, RoomId, StreamerId};
        use crate::store::schedule::{
            BookedWindow, Booking, BookingCreated, BookingSpec, Event, EventSpec, check_text,
        };
        use crate::store::{
            MAX_STREAMER_NAME_CHARS, StoreError, StreamKey, Streamer, hash_key, now_unix, streamer_name,
        };

        /// The id and artist of a booking in the way.
        #[derive(sqlx::FromRow)]
        struct Overlap {
            id: BookingId,
            artist_name: String,
        }

        /// A streamer row with its `slot_bound` flag.
        #[derive(sqlx::FromRow)]
        struct KeyRow {
            #[sqlx(flatten)]
            streamer: Streamer,
            slot_bound: bool,
        }

        macro_rules! event_columns {
            () => {
                "id, room_id, title, start_at, end_at, slot_seconds, public_signup, created_at"
            };
        }
        macro_rules! booking_columns {
            () => {
                "id, event_id, streamer_id, start_at, end_at, artist_name, description, location, \
                 timezone, email, created_at"
            };
        }

        impl $store {
            pub(crate) async fn create_event(
                &self,
                room_id: RoomId,
                spec: &EventSpec,
                created_at: i64,
            ) -> Result<Event, StoreError> {
                Ok(sqlx::query_as::<_, Event>(concat!(
                    "INSERT INTO events (room_id, title, start_at, end_at, slot_seconds, public_signup, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                    event_columns!()
                ))
                .bind(room_id)
                .bind(spec.title.trim())
                .bind(spec.start_at)
                .bind(spec.end_at)
                .bind(spec.slot_seconds)
                .bind(spec.public_signup)
                .bind(created_at)
                .fetch_one(&self.pool)
                .await?)
            }

            pub(crate) async fn events(&self, room_id: RoomId) -> Result<Vec<Event>, StoreError> {
                Ok(sqlx::query_as::<_, Event>(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE room_id = $1 ORDER BY start_at, id"
                ))
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn event(
                &self,
                room_id: RoomId,
                id: EventId,
            ) -> Result<Option<Event>, StoreError> {
                Ok(sqlx::query_as::<_, Event>(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE room_id = $1 AND id = $2"
                ))
                .bind(room_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            pub(crate) async fn update_event(
                &self,
                room_id: RoomId,
                id: EventId,
                spec: &EventSpec,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let Some(old) = sqlx::query_as::<_, Event>(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE room_id = $1 AND id = $2"
                ))
                .bind(room_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                let delta = spec.start_at - old.start_at;
                let event = sqlx::query_as::<_, Event>(concat!(
                    "UPDATE events SET title = $1, start_at = $2, end_at = $3, slot_seconds = $4, \
                     public_signup = $5 WHERE id = $6 RETURNING ",
                    event_columns!()
                ))
                .bind(spec.title.trim())
                .bind(spec.start_at)
                .bind(spec.end_at)
                .bind(spec.slot_seconds)
                .bind(spec.public_signup)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let bookings = sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 ORDER BY start_at"
                ))
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                for b in &bookings {
                    let (start, end) = (b.start_at + delta, b.end_at + delta);
                    let fits = event.on_grid(start)
                        && end <= event.end_at
                        && (end == event.end_at || (end - event.start_at) % event.slot_seconds == 0);
                    if !fits {
                        return Err(StoreError::Conflict(format!(
                            "booking {} ({}) would not fit the new slots; move or delete it first",
                            b.id, b.artist_name
                        )));
                    }
                    if let Some(other) = sqlx::query_scalar::<_, BookingId>(
                        "SELECT b.id FROM bookings b JOIN events e ON e.id = b.event_id \
                         WHERE e.room_id = $1 AND b.event_id != $2 AND b.start_at < $3 AND b.end_at > $4 LIMIT 1",
                    )
                    .bind(room_id)
                    .bind(id)
                    .bind(end)
                    .bind(start)
                    .fetch_optional(&mut *tx)
                    .await?
                    {
                        return Err(StoreError::Conflict(format!(
                            "booking {} would overlap booking {other} of another event",
                            b.id
                        )));
                    }
                }
                if delta != 0 {
                    sqlx::query(
                        "UPDATE bookings SET start_at = start_at + $1, end_at = end_at + $2 WHERE event_id = $3",
                    )
                    .bind(delta)
                    .bind(delta)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Some(event))
            }

            pub(crate) async fn delete_event(
                &self,
                room_id: RoomId,
                id: EventId,
            ) -> Result<bool, StoreError> {
                Ok(
                    sqlx::query("DELETE FROM events WHERE room_id = $1 AND id = $2")
                        .bind(room_id)
                        .bind(id)
                        .execute(&self.pool)
                        .await?
                        .rows_affected()
                        > 0,
                )
            }

            pub(crate) async fn bookings(&self, event_id: EventId) -> Result<Vec<Booking>, StoreError> {
                Ok(sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 ORDER BY start_at"
                ))
                .bind(event_id)
                .fetch_all(&self.pool)
                .await?)
            }

            /// Books `[start, end)` of `event` (checked against its grid by the caller) in one
            /// transaction: the overlap check, the streamer (found or created), the merge.
            pub(crate) async fn create_booking(
                &self,
                event: &Event,
                spec: &BookingSpec,
                start: i64,
                end: i64,
            ) -> Result<BookingCreated, StoreError> {
                let mut tx = self.pool.begin().await?;
                if let Some(Overlap {
                    id: other,
                    artist_name: name,
                }) = sqlx::query_as::<_, Overlap>(
                    "SELECT b.id, b.artist_name FROM bookings b JOIN events e ON e.id = b.event_id \
                     WHERE e.room_id = $1 AND b.start_at < $2 AND b.end_at > $3 LIMIT 1",
                )
                .bind(event.room_id)
                .bind(end)
                .bind(start)
                .fetch_optional(&mut *tx)
                .await?
                {
                    return Err(StoreError::Conflict(format!(
                        "these slots overlap booking {other} ({name})"
                    )));
                }
                let mut key = None;
                let streamer = match spec.streamer_id {
                    Some(id) => sqlx::query_as::<_, Streamer>(concat!(
                        "SELECT ",
                        streamer_columns!(),
                        " FROM streamers WHERE room_id = $1 AND id = $2"
                    ))
                    .bind(event.room_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::Invalid(format!("no streamer {id} in this room")))?,
                    None => {
                        let name = streamer_name("artist_name", &spec.artist_name)?;
                        let k = StreamKey::generate();
                        let s = insert_streamer(
                            &mut *tx,
                            event.room_id,
                            name,
                            &hash_key(k.expose()),
                            now_unix(),
                        )
                        .await?;
                        key = Some(k);
                        s
                    }
                };
                let artist_name = match spec.artist_name.trim() {
                    "" => streamer.name.clone(),
                    name => name.to_owned(),
                };
                check_text("artist_name", &artist_name, MAX_STREAMER_NAME_CHARS)?;
                sqlx::query("UPDATE streamers SET slot_bound = TRUE WHERE id = $1")
                    .bind(streamer.id)
                    .execute(&mut *tx)
                    .await?;
                let before = sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 AND streamer_id = $2 AND end_at = $3"
                ))
                .bind(event.id)
                .bind(streamer.id)
                .bind(start)
                .fetch_optional(&mut *tx)
                .await?;
                let after = sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 AND streamer_id = $2 AND start_at = $3"
                ))
                .bind(event.id)
                .bind(streamer.id)
                .bind(end)
                .fetch_optional(&mut *tx)
                .await?;
                let merged = before.is_some() || after.is_some();
                // Merging keeps the oldest booking (its description, location, email) and stretches it
                // over the new slots and the other neighbour, which is deleted.
                let (keep, other) = match (before, after) {
                    (Some(b), Some(a)) if a.id < b.id => (Some(a), Some(b)),
                    (Some(b), a) => (Some(b), a),
                    (None, a) => (a, None),
                };
                let booking =
                    match keep {
                        Some(k) => {
                            let (mut start_at, mut end_at) = (start.min(k.start_at), end.max(k.end_at));
                            if let Some(o) = other {
                                start_at = start_at.min(o.start_at);
                                end_at = end_at.max(o.end_at);
                                sqlx::query("DELETE FROM bookings WHERE id = $1")
                                    .bind(o.id)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            sqlx::query_as::<_, Booking>(concat!(
                                "UPDATE bookings SET start_at = $1, end_at = $2 WHERE id = $3 RETURNING ",
                                booking_columns!()
                            ))
                            .bind(start_at)
                            .bind(end_at)
                            .bind(k.id)
                            .fetch_one(&mut *tx)
                            .await?
                        }
                        None => sqlx::query_as::<_, Booking>(concat!(
                            "INSERT INTO bookings (event_id, streamer_id, start_at, end_at, artist_name, \
                             description, location, timezone, email, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
                            booking_columns!()
                        ))
                        .bind(event.id)
                        .bind(streamer.id)
                        .bind(start)
                        .bind(end)
                        .bind(&artist_name)
                        .bind(spec.description.trim())
                        .bind(spec.location.trim())
                        .bind(&spec.timezone)
                        .bind(spec.email.as_deref())
                        .bind(now_unix())
                        .fetch_one(&mut *tx)
                        .await?,
                    };
                tx.commit().await?;
                Ok(BookingCreated {
                    booking,
                    key,
                    merged,
                })
            }

            pub(crate) async fn delete_booking(
                &self,
                event_id: EventId,
                id: BookingId,
            ) -> Result<bool, StoreError> {
                Ok(
                    sqlx::query("DELETE FROM bookings WHERE event_id = $1 AND id = $2")
                        .bind(event_id)
                        .bind(id)
                        .execute(&self.pool)
                        .await?
                        .rows_affected()
                        > 0,
                )
            }

            /// Moves booking `id` of `event` to `[start, end)` (checked against its grid by the
            /// caller) in one transaction: the overlap check, the merge with neighbours.
            pub(crate) async fn move_booking(
                &self,
                event: &Event,
                id: BookingId,
                start: i64,
                end: i64,
            ) -> Result<Option<(Booking, bool)>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let Some(old) = sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 AND id = $2"
                ))
                .bind(event.id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                if let Some(Overlap {
                    id: other,
                    artist_name: name,
                }) = sqlx::query_as::<_, Overlap>(
                    "SELECT b.id, b.artist_name FROM bookings b JOIN events e ON e.id = b.event_id \
                     WHERE e.room_id = $1 AND b.id != $2 AND b.start_at < $3 AND b.end_at > $4 LIMIT 1",
                )
                .bind(event.room_id)
                .bind(id)
                .bind(end)
                .bind(start)
                .fetch_optional(&mut *tx)
                .await?
                {
                    return Err(StoreError::Conflict(format!(
                        "these slots overlap booking {other} ({name})"
                    )));
                }
                let neighbours = sqlx::query_as::<_, Booking>(concat!(
                    "SELECT ",
                    booking_columns!(),
                    " FROM bookings WHERE event_id = $1 AND streamer_id = $2 AND id != $3 \
                     AND (end_at = $4 OR start_at = $5)"
                ))
                .bind(event.id)
                .bind(old.streamer_id)
                .bind(id)
                .bind(start)
                .bind(end)
                .fetch_all(&mut *tx)
                .await?;
                let (mut start_at, mut end_at) = (start, end);
                for n in &neighbours {
                    start_at = start_at.min(n.start_at);
                    end_at = end_at.max(n.end_at);
                    sqlx::query("DELETE FROM bookings WHERE id = $1")
                        .bind(n.id)
                        .execute(&mut *tx)
                        .await?;
                }
                let booking = sqlx::query_as::<_, Booking>(concat!(
                    "UPDATE bookings SET start_at = $1, end_at = $2 WHERE id = $3 RETURNING ",
                    booking_columns!()
                ))
                .bind(start_at)
                .bind(end_at)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some((booking, !neighbours.is_empty())))
            }

            /// The streamer whose key hashes to `key_hash`, whether it is slot-bound, and its
            /// booked windows `[start, end)` (unmerged, any order).
            pub(crate) async fn key_access(
                &self,
                key_hash: &str,
            ) -> Result<Option<(Streamer, bool, Vec<(i64, i64)>)>, StoreError> {
                let Some(row) = sqlx::query_as::<_, KeyRow>(concat!(
                    "SELECT ",
                    streamer_columns!(),
                    ", slot_bound FROM streamers WHERE key_hash = $1"
                ))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                let windows = sqlx::query_as::<_, (i64, i64)>(
                    "SELECT start_at, end_at FROM bookings WHERE streamer_id = $1",
                )
                .bind(row.streamer.id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some((row.streamer, row.slot_bound, windows)))
            }

            pub(crate) async fn streamers_outside_windows(
                &self,
                now: i64,
                grace_before: i64,
                grace_after: i64,
            ) -> Result<Vec<(RoomId, StreamerId)>, StoreError> {
                Ok(sqlx::query_as::<_, (RoomId, StreamerId)>(
                    "SELECT s.room_id, s.id FROM streamers s WHERE s.slot_bound = TRUE AND NOT EXISTS \
                     (SELECT 1 FROM bookings b WHERE b.streamer_id = s.id \
                      AND b.start_at - $1 <= $2 AND $3 < b.end_at + $4) ORDER BY s.id",
                )
                .bind(grace_before)
                .bind(now)
                .bind(now)
                .bind(grace_after)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn windows_between(
                &self,
                since: i64,
                now: i64,
            ) -> Result<Vec<BookedWindow>, StoreError> {
                Ok(sqlx::query_as::<_, BookedWindow>(
                    "SELECT b.id AS booking_id, b.event_id, e.room_id, r.name AS room, b.streamer_id, \
                     b.artist_name, b.start_at, b.end_at FROM bookings b \
                     JOIN events e ON e.id = b.event_id JOIN rooms r ON r.id = e.room_id \
                     WHERE b.start_at <= $1 AND b.end_at > $2 ORDER BY b.start_at, b.id",
                )
                .bind(now)
                .bind(since)
                .fetch_all(&self.pool)
                .await?)
            }

            pub(crate) async fn next_window_edge_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT MIN(x) FROM (SELECT MIN(start_at) AS x FROM bookings WHERE start_at > $1 \
                     UNION ALL SELECT MIN(end_at) FROM bookings WHERE end_at > $2) AS edges",
                )
                .bind(t)
                .bind(t)
                .fetch_one(&self.pool)
                .await?)
            }

            pub(crate) async fn next_window_end_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT MIN(end_at) FROM bookings WHERE end_at > $1",
                )
                .bind(t)
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}
pub(crate) use schedule_sql;
