//! Persistence of the schedule (migration `0005_schedule.sql`): events and bookings.
//!
//! Times are Unix seconds, UTC. An event's slots are `[start + k·slot, start + (k+1)·slot)`,
//! the last one cut at the event's end (so it may be shorter). A booking covers one or more
//! contiguous slots; bookings of one room never overlap (checked in the same transaction as
//! the insert). Booking a streamer makes it *slot-bound* (`streamers.slot_bound`): from then on
//! its key works only in its booked windows. Contiguous bookings of the same streamer in one
//! event are stored as one row, so one booking is one window.

use std::str::FromStr;

use super::Store;
use super::{
    MAX_STREAMER_NAME_CHARS, MAX_TITLE_CHARS, StoreError, StreamKey, Streamer, hash_key, now_unix,
};

/// Longest booking description, in chars.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest booking location, in chars.
pub const MAX_LOCATION_CHARS: usize = 200;
/// Longest email address, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Shortest and longest slot, seconds (1 minute, 24 hours).
pub const SLOT_SECONDS: std::ops::RangeInclusive<i64> = 60..=86_400;
/// Longest event, seconds (31 days).
pub const MAX_EVENT_SECONDS: i64 = 31 * 86_400;
/// Most slots in one event.
pub const MAX_SLOTS: i64 = 1000;

/// An event: a room's lineup from `start_at` to `end_at`, cut into slots.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub room_id: i64,
    pub title: String,
    /// Unix seconds, UTC.
    pub start_at: i64,
    /// Unix seconds, UTC; after `start_at`.
    pub end_at: i64,
    /// Slot length, seconds; the last slot may be shorter.
    pub slot_seconds: i64,
    /// Whether artists may book themselves (`POST /api/rooms/{room}/events/{id}/signup`).
    pub public_signup: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl Event {
    /// The slots `[start, end)` in time order.
    pub fn slots(&self) -> Vec<(i64, i64)> {
        let step = self.slot_seconds.max(1);
        let mut slots = Vec::new();
        let mut t = self.start_at;
        while t < self.end_at {
            let end = t.saturating_add(step).min(self.end_at);
            slots.push((t, end));
            t = end;
        }
        slots
    }

    /// Whether `t` is the start of one of the slots.
    pub fn on_grid(&self, t: i64) -> bool {
        t >= self.start_at && t < self.end_at && (t - self.start_at) % self.slot_seconds.max(1) == 0
    }
}

/// What an admin sets on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub title: String,
    pub start_at: i64,
    pub end_at: i64,
    pub slot_seconds: i64,
    pub public_signup: bool,
}

impl EventSpec {
    fn validate(&self) -> Result<(), StoreError> {
        let chars = self.title.trim().chars().count();
        if chars == 0 || chars > MAX_TITLE_CHARS {
            return Err(StoreError::Invalid(format!(
                "title must be 1-{MAX_TITLE_CHARS} characters"
            )));
        }
        if self.end_at <= self.start_at {
            return Err(StoreError::Invalid("end must be after start".into()));
        }
        if self.end_at - self.start_at > MAX_EVENT_SECONDS {
            return Err(StoreError::Invalid("an event lasts at most 31 days".into()));
        }
        if !SLOT_SECONDS.contains(&self.slot_seconds) {
            return Err(StoreError::Invalid("slot_minutes must be 1..=1440".into()));
        }
        let slots = (self.end_at - self.start_at + self.slot_seconds - 1) / self.slot_seconds;
        if slots > MAX_SLOTS {
            return Err(StoreError::Invalid(format!(
                "an event has at most {MAX_SLOTS} slots, this one would have {slots}"
            )));
        }
        Ok(())
    }
}

/// A booking: one artist's window of contiguous slots in an event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Booking {
    pub id: i64,
    pub event_id: i64,
    pub streamer_id: i64,
    /// Unix seconds, UTC: the window's start (a slot start).
    pub start_at: i64,
    /// Unix seconds, UTC: the window's end.
    pub end_at: i64,
    pub artist_name: String,
    pub description: String,
    pub location: String,
    /// IANA time zone of the artist (`Europe/Berlin`).
    pub timezone: String,
    /// Never shown publicly.
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A booking request (admin or public sign-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingSpec {
    /// Unix seconds: must be a slot start of the event.
    pub slot_start: i64,
    /// Contiguous slots, ≥ 1.
    pub slots: u32,
    /// Empty: the reused streamer's name.
    pub artist_name: String,
    pub description: String,
    pub location: String,
    pub timezone: String,
    pub email: Option<String>,
    /// Book an existing streamer of the room (its key stays the same) instead of creating one.
    pub streamer_id: Option<i64>,
}

/// A created (or merged) booking; `key` is set when a streamer was created for it.
#[derive(Debug)]
pub struct BookingCreated {
    pub booking: Booking,
    pub key: Option<StreamKey>,
    /// Whether the booking was merged into contiguous ones of the same streamer.
    pub merged: bool,
}

/// What the store knows about a stream key's windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAccess {
    pub streamer: Streamer,
    /// Booked at least once: the key works only in `windows` (plus grace).
    pub slot_bound: bool,
    /// The streamer's windows `[start, end)`, Unix seconds, in time order, contiguous and
    /// overlapping ones merged.
    pub windows: Vec<(i64, i64)>,
}

/// A booked window with its room, as the slot timer sees it (one booking row: contiguous
/// slots of one artist in one event are one row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookedWindow {
    pub booking_id: i64,
    pub event_id: i64,
    pub room_id: i64,
    /// The room's name.
    pub room: String,
    pub streamer_id: i64,
    pub artist_name: String,
    /// Unix seconds, UTC.
    pub start_at: i64,
    /// Unix seconds, UTC; after `start_at`.
    pub end_at: i64,
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

fn check_text(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::Invalid(format!(
            "{what} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

impl BookingSpec {
    fn validate(&self) -> Result<(), StoreError> {
        if self.slots == 0 {
            return Err(StoreError::Invalid("slots must be at least 1".into()));
        }
        check_text("description", &self.description, MAX_DESCRIPTION_CHARS)?;
        check_text("location", &self.location, MAX_LOCATION_CHARS)?;
        if chrono_tz::Tz::from_str(&self.timezone).is_err() {
            return Err(StoreError::Invalid(format!(
                "timezone must be an IANA time zone such as Europe/Berlin, got {:?}",
                self.timezone
            )));
        }
        if let Some(email) = &self.email {
            let ok = email.len() <= MAX_EMAIL_BYTES
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && !email.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(StoreError::Invalid(format!(
                    "email must look like name@example.org (at most {MAX_EMAIL_BYTES} bytes)"
                )));
            }
        }
        Ok(())
    }
}

/// Merges `[start, end)` windows sorted by start: overlapping or touching ones become one.
pub fn merge_windows(mut windows: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    windows.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(windows.len());
    for (start, end) in windows {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

impl Store {
    /// Creates an event in `room_id`. Errors: `Invalid` with the reason.
    pub async fn create_event(&self, room_id: i64, spec: &EventSpec) -> Result<Event, StoreError> {
        spec.validate()?;
        Ok(sqlx::query_as::<_, Event>(concat!(
            "INSERT INTO events (room_id, title, start_at, end_at, slot_seconds, public_signup, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ",
            event_columns!()
        ))
        .bind(room_id)
        .bind(spec.title.trim())
        .bind(spec.start_at)
        .bind(spec.end_at)
        .bind(spec.slot_seconds)
        .bind(spec.public_signup)
        .bind(now_unix())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Events of a room, by start.
    pub async fn events(&self, room_id: i64) -> Result<Vec<Event>, StoreError> {
        Ok(sqlx::query_as::<_, Event>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = ? ORDER BY start_at, id"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Event `id` of `room_id`, if any.
    pub async fn event(&self, room_id: i64, id: i64) -> Result<Option<Event>, StoreError> {
        Ok(sqlx::query_as::<_, Event>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = ? AND id = ?"
        ))
        .bind(room_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Moves and/or resizes event `id`: its bookings move by the change of `start` (they keep
    /// their place in the lineup) and must then still start on a slot boundary and end inside
    /// the event, at a slot boundary or the event's end, without overlapping another event's
    /// bookings. `None`: no such event. Errors: `Invalid` (bad spec), `Conflict` (a booking
    /// would not fit; nothing is changed).
    pub async fn update_event(
        &self,
        room_id: i64,
        id: i64,
        spec: &EventSpec,
    ) -> Result<Option<Event>, StoreError> {
        spec.validate()?;
        let mut tx = self.pool.begin().await?;
        let Some(old) = sqlx::query_as::<_, Event>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = ? AND id = ?"
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
            "UPDATE events SET title = ?, start_at = ?, end_at = ?, slot_seconds = ?, \
             public_signup = ? WHERE id = ? RETURNING ",
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
            " FROM bookings WHERE event_id = ? ORDER BY start_at"
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
            if let Some(other) = sqlx::query_scalar::<_, i64>(
                "SELECT b.id FROM bookings b JOIN events e ON e.id = b.event_id \
                 WHERE e.room_id = ? AND b.event_id != ? AND b.start_at < ? AND b.end_at > ? LIMIT 1",
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
                "UPDATE bookings SET start_at = start_at + ?, end_at = end_at + ? WHERE event_id = ?",
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

    /// Deletes event `id` of `room_id` and its bookings. Returns whether it existed.
    pub async fn delete_event(&self, room_id: i64, id: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM events WHERE room_id = ? AND id = ?")
                .bind(room_id)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Bookings of event `event_id`, by start.
    pub async fn bookings(&self, event_id: i64) -> Result<Vec<Booking>, StoreError> {
        Ok(sqlx::query_as::<_, Booking>(concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE event_id = ? ORDER BY start_at"
        ))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Books slots of `event` (of room `event.room_id`) for an artist: creates a streamer
    /// (returning its key) or reuses `spec.streamer_id`, marks it slot-bound, and merges the
    /// new window with contiguous bookings of the same streamer in this event. Errors:
    /// `Invalid` (not a slot start, past the event's end, bad fields, unknown streamer),
    /// `Conflict` (overlaps a booking in the room).
    pub async fn create_booking(
        &self,
        event: &Event,
        spec: &BookingSpec,
    ) -> Result<BookingCreated, StoreError> {
        spec.validate()?;
        if !event.on_grid(spec.slot_start) {
            return Err(StoreError::Invalid(
                "slot_start must be the start of one of the event's slots".into(),
            ));
        }
        let span = event.slot_seconds.saturating_mul(i64::from(spec.slots));
        if spec.slot_start + span - event.slot_seconds >= event.end_at {
            return Err(StoreError::Invalid(format!(
                "the event has fewer than {} slots from slot_start",
                spec.slots
            )));
        }
        let (start, end) = (spec.slot_start, (spec.slot_start + span).min(event.end_at));
        let mut tx = self.pool.begin().await?;
        if let Some((other, name)) = sqlx::query_as::<_, (i64, String)>(
            "SELECT b.id, b.artist_name FROM bookings b JOIN events e ON e.id = b.event_id \
             WHERE e.room_id = ? AND b.start_at < ? AND b.end_at > ? LIMIT 1",
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
            Some(id) => sqlx::query_as::<_, Streamer>(
                "SELECT id, room_id, name, created_at, sticker_set FROM streamers \
                 WHERE room_id = ? AND id = ?",
            )
            .bind(event.room_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no streamer {id} in this room")))?,
            None => {
                let name = spec.artist_name.trim();
                let chars = name.chars().count();
                if chars == 0
                    || chars > MAX_STREAMER_NAME_CHARS
                    || name.chars().any(char::is_control)
                {
                    return Err(StoreError::Invalid(format!(
                        "artist_name must be 1-{MAX_STREAMER_NAME_CHARS} printable characters"
                    )));
                }
                let k = StreamKey::generate();
                let s = sqlx::query_as::<_, Streamer>(
                    "INSERT INTO streamers (room_id, name, key_hash, created_at) \
                     VALUES (?, ?, ?, ?) RETURNING id, room_id, name, created_at, sticker_set",
                )
                .bind(event.room_id)
                .bind(name)
                .bind(hash_key(k.expose()))
                .bind(now_unix())
                .fetch_one(&mut *tx)
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
        sqlx::query("UPDATE streamers SET slot_bound = 1 WHERE id = ?")
            .bind(streamer.id)
            .execute(&mut *tx)
            .await?;
        let before = sqlx::query_as::<_, Booking>(concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE event_id = ? AND streamer_id = ? AND end_at = ?"
        ))
        .bind(event.id)
        .bind(streamer.id)
        .bind(start)
        .fetch_optional(&mut *tx)
        .await?;
        let after = sqlx::query_as::<_, Booking>(concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE event_id = ? AND streamer_id = ? AND start_at = ?"
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
                        sqlx::query("DELETE FROM bookings WHERE id = ?")
                            .bind(o.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query_as::<_, Booking>(concat!(
                        "UPDATE bookings SET start_at = ?, end_at = ? WHERE id = ? RETURNING ",
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
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
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

    /// Deletes booking `id` of event `event_id` (its streamer stays, slot-bound). Returns
    /// whether it existed.
    pub async fn delete_booking(&self, event_id: i64, id: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM bookings WHERE event_id = ? AND id = ?")
                .bind(event_id)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Moves and/or resizes booking `id` of `event` to `slots` contiguous slots from
    /// `slot_start` (the same rules as [`Store::create_booking`]: a slot start, not past the
    /// event's end, no overlap with another booking in the room). A moved booking contiguous
    /// with another of the same streamer in this event merges with it: the moved booking keeps
    /// its id and fields and stretches over the neighbour, which is deleted. Returns the
    /// booking and whether it merged; `None`: no such booking. Errors: `Invalid`, `Conflict`
    /// (nothing is changed).
    pub async fn move_booking(
        &self,
        event: &Event,
        id: i64,
        slot_start: i64,
        slots: u32,
    ) -> Result<Option<(Booking, bool)>, StoreError> {
        if slots == 0 {
            return Err(StoreError::Invalid("slots must be at least 1".into()));
        }
        if !event.on_grid(slot_start) {
            return Err(StoreError::Invalid(
                "slot_start must be the start of one of the event's slots".into(),
            ));
        }
        let span = event.slot_seconds.saturating_mul(i64::from(slots));
        if slot_start.saturating_add(span) - event.slot_seconds >= event.end_at {
            return Err(StoreError::Invalid(format!(
                "the event has fewer than {slots} slots from slot_start"
            )));
        }
        let (start, end) = (slot_start, (slot_start + span).min(event.end_at));
        let mut tx = self.pool.begin().await?;
        let Some(old) = sqlx::query_as::<_, Booking>(concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE event_id = ? AND id = ?"
        ))
        .bind(event.id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        if let Some((other, name)) = sqlx::query_as::<_, (i64, String)>(
            "SELECT b.id, b.artist_name FROM bookings b JOIN events e ON e.id = b.event_id \
             WHERE e.room_id = ? AND b.id != ? AND b.start_at < ? AND b.end_at > ? LIMIT 1",
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
            " FROM bookings WHERE event_id = ? AND streamer_id = ? AND id != ? \
             AND (end_at = ? OR start_at = ?)"
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
            sqlx::query("DELETE FROM bookings WHERE id = ?")
                .bind(n.id)
                .execute(&mut *tx)
                .await?;
        }
        let booking = sqlx::query_as::<_, Booking>(concat!(
            "UPDATE bookings SET start_at = ?, end_at = ? WHERE id = ? RETURNING ",
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

    /// The streamer of `key` with its windows, if the key is known.
    pub async fn key_access(&self, key: &str) -> Result<Option<KeyAccess>, StoreError> {
        let Some((id, room_id, name, created_at, sticker_set, slot_bound)) =
            sqlx::query_as::<_, (i64, i64, String, i64, Option<String>, bool)>(
                "SELECT id, room_id, name, created_at, sticker_set, slot_bound FROM streamers \
                 WHERE key_hash = ?",
            )
            .bind(hash_key(key))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let windows = sqlx::query_as::<_, (i64, i64)>(
            "SELECT start_at, end_at FROM bookings WHERE streamer_id = ?",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(KeyAccess {
            streamer: Streamer {
                id,
                room_id,
                name,
                created_at,
                sticker_set,
            },
            slot_bound,
            windows: merge_windows(windows),
        }))
    }

    /// `(room id, streamer id)` of every slot-bound streamer whose sessions may not be up at
    /// `now` (Unix seconds): no booking with `start - grace_before ≤ now < end + grace_after`.
    pub async fn streamers_outside_windows(
        &self,
        now: i64,
        grace_before: i64,
        grace_after: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as::<_, (i64, i64)>(
            "SELECT s.room_id, s.id FROM streamers s WHERE s.slot_bound = 1 AND NOT EXISTS \
             (SELECT 1 FROM bookings b WHERE b.streamer_id = s.id \
              AND b.start_at - ? <= ? AND ? < b.end_at + ?) ORDER BY s.id",
        )
        .bind(grace_before)
        .bind(now)
        .bind(now)
        .bind(grace_after)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Windows with `start_at ≤ now` and `end_at > since` (Unix seconds), by start: those in
    /// progress at `now` and those that ended after `since`.
    pub async fn windows_between(
        &self,
        since: i64,
        now: i64,
    ) -> Result<Vec<BookedWindow>, StoreError> {
        Ok(sqlx::query_as::<_, BookedWindow>(
            "SELECT b.id AS booking_id, b.event_id, e.room_id, r.name AS room, b.streamer_id, \
             b.artist_name, b.start_at, b.end_at FROM bookings b \
             JOIN events e ON e.id = b.event_id JOIN rooms r ON r.id = e.room_id \
             WHERE b.start_at <= ? AND b.end_at > ? ORDER BY b.start_at, b.id",
        )
        .bind(now)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The earliest booking start or end after `t` (Unix seconds), if any.
    pub async fn next_window_edge_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(x) FROM (SELECT MIN(start_at) AS x FROM bookings WHERE start_at > ? \
             UNION ALL SELECT MIN(end_at) FROM bookings WHERE end_at > ?)",
        )
        .bind(t)
        .bind(t)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The earliest booking end after `t` (Unix seconds), if any.
    pub async fn next_window_end_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(end_at) FROM bookings WHERE end_at > ?",
        )
        .bind(t)
        .fetch_one(&self.pool)
        .await?)
    }
}
