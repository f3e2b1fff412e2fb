//! Persistence of the schedule (migration `0005_schedule.sql`): events and bookings.
//!
//! Times are Unix seconds, UTC. An event's slots are `[start + k·slot, start + (k+1)·slot)`,
//! the last one cut at the event's end (so it may be shorter). A booking covers one or more
//! contiguous slots; bookings of one room never overlap (checked in the same transaction as
//! the insert). Booking a streamer makes it *slot-bound* (`streamers.slot_bound`): from then on
//! its key works only in its booked windows. Contiguous bookings of the same streamer in one
//! event are stored as one row, so one booking is one window.

use std::str::FromStr;

use crate::ids::{BookingId, EventId, RoomId, StreamerId};

use super::{MAX_TITLE_CHARS, Store, StoreError, StreamKey, Streamer, hash_key, now_unix};

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
    pub id: EventId,
    pub room_id: RoomId,
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

    /// The window `[start, end)` (Unix seconds) of `slots` contiguous slots from
    /// `slot_start`, the last one cut at the event's end. Errors: `Invalid` when `slot_start`
    /// is not a slot start or the event has fewer slots from there.
    pub(crate) fn window(&self, slot_start: i64, slots: u32) -> Result<(i64, i64), StoreError> {
        if !self.on_grid(slot_start) {
            return Err(StoreError::Invalid(
                "slot_start must be the start of one of the event's slots".into(),
            ));
        }
        let span = self.slot_seconds.saturating_mul(i64::from(slots));
        let end = slot_start.saturating_add(span);
        if end - self.slot_seconds >= self.end_at {
            return Err(StoreError::Invalid(format!(
                "the event has fewer than {slots} slots from slot_start"
            )));
        }
        Ok((slot_start, end.min(self.end_at)))
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
    pub id: BookingId,
    pub event_id: EventId,
    pub streamer_id: StreamerId,
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
    pub streamer_id: Option<StreamerId>,
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
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub room_id: RoomId,
    /// The room's name.
    pub room: String,
    pub streamer_id: StreamerId,
    pub artist_name: String,
    /// Unix seconds, UTC.
    pub start_at: i64,
    /// Unix seconds, UTC; after `start_at`.
    pub end_at: i64,
}

/// `text` is at most `max` chars, none a control char but `\n`. Errors: `Invalid` naming `what`.
pub(crate) fn check_text(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
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
    pub async fn create_event(
        &self,
        room_id: RoomId,
        spec: &EventSpec,
    ) -> Result<Event, StoreError> {
        spec.validate()?;
        backend!(self, db => db.create_event(room_id, spec, now_unix()).await)
    }

    /// Events of a room, by start.
    pub async fn events(&self, room_id: RoomId) -> Result<Vec<Event>, StoreError> {
        backend!(self, db => db.events(room_id).await)
    }

    /// Event `id` of `room_id`, if any.
    pub async fn event(&self, room_id: RoomId, id: EventId) -> Result<Option<Event>, StoreError> {
        backend!(self, db => db.event(room_id, id).await)
    }

    /// Moves and/or resizes event `id`: its bookings move by the change of `start` (they keep
    /// their place in the lineup) and must then still start on a slot boundary and end inside
    /// the event, at a slot boundary or the event's end, without overlapping another event's
    /// bookings. `None`: no such event. Errors: `Invalid` (bad spec), `Conflict` (a booking
    /// would not fit; nothing is changed).
    pub async fn update_event(
        &self,
        room_id: RoomId,
        id: EventId,
        spec: &EventSpec,
    ) -> Result<Option<Event>, StoreError> {
        spec.validate()?;
        backend!(self, db => db.update_event(room_id, id, spec).await)
    }

    /// Deletes event `id` of `room_id` and its bookings. Returns whether it existed.
    pub async fn delete_event(&self, room_id: RoomId, id: EventId) -> Result<bool, StoreError> {
        backend!(self, db => db.delete_event(room_id, id).await)
    }

    /// Bookings of event `event_id`, by start.
    pub async fn bookings(&self, event_id: EventId) -> Result<Vec<Booking>, StoreError> {
        backend!(self, db => db.bookings(event_id).await)
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
        let (start, end) = event.window(spec.slot_start, spec.slots)?;
        backend!(self, db => db.create_booking(event, spec, start, end).await)
    }

    /// Deletes booking `id` of event `event_id` (its streamer stays, slot-bound). Returns
    /// whether it existed.
    pub async fn delete_booking(
        &self,
        event_id: EventId,
        id: BookingId,
    ) -> Result<bool, StoreError> {
        backend!(self, db => db.delete_booking(event_id, id).await)
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
        id: BookingId,
        slot_start: i64,
        slots: u32,
    ) -> Result<Option<(Booking, bool)>, StoreError> {
        if slots == 0 {
            return Err(StoreError::Invalid("slots must be at least 1".into()));
        }
        let (start, end) = event.window(slot_start, slots)?;
        backend!(self, db => db.move_booking(event, id, start, end).await)
    }

    /// The streamer of `key` with its windows, if the key is known.
    pub async fn key_access(&self, key: &str) -> Result<Option<KeyAccess>, StoreError> {
        let found = backend!(self, db => db.key_access(&hash_key(key)).await)?;
        Ok(found.map(|(streamer, slot_bound, windows)| KeyAccess {
            streamer,
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
    ) -> Result<Vec<(RoomId, StreamerId)>, StoreError> {
        backend!(self, db => db.streamers_outside_windows(now, grace_before, grace_after).await)
    }

    /// Windows with `start_at ≤ now` and `end_at > since` (Unix seconds), by start: those in
    /// progress at `now` and those that ended after `since`.
    pub async fn windows_between(
        &self,
        since: i64,
        now: i64,
    ) -> Result<Vec<BookedWindow>, StoreError> {
        backend!(self, db => db.windows_between(since, now).await)
    }

    /// The earliest booking start or end after `t` (Unix seconds), if any.
    pub async fn next_window_edge_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
        backend!(self, db => db.next_window_edge_after(t).await)
    }

    /// The earliest booking end after `t` (Unix seconds), if any.
    pub async fn next_window_end_after(&self, t: i64) -> Result<Option<i64>, StoreError> {
        backend!(self, db => db.next_window_end_after(t).await)
    }
}
