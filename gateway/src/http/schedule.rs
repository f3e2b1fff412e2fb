//! The schedule API: events cut into slots, bookings of artists, and the public lineup.
//!
//! Times are RFC 3339 (any offset in, UTC with `Z` out, whole seconds); everything is stored
//! in UTC. An event's slots are `[start + k·slot, start + (k+1)·slot)`; when `slot_minutes`
//! does not divide the event, the **last slot is shorter** (it ends at the event's end).
//!
//! Admin (`Authorization: Bearer <admin token>`; errors `{"error": "..."}`):
//! - `GET /api/admin/rooms/{room}/events` → 200 `[event]` (bookings with their private fields)
//! - `POST /api/admin/rooms/{room}/events` `{title, start, end, slot_minutes, public_signup?}`
//!   → 201 `event`. 400: end not after start, slot_minutes not 1..=1440, more than 1000 slots
//!   or 31 days, bad title or time.
//! - `PUT /api/admin/rooms/{room}/events/{id}` (same body; move / resize) → 200 `event`. The
//!   bookings move with `start` (they keep their place in the lineup); 409 when one would then
//!   not start on a slot or not end inside the event (at a slot boundary or the end) or would
//!   overlap another event's booking (nothing changes). 404 no such event.
//! - `DELETE /api/admin/rooms/{room}/events/{id}` → 204 (its bookings go; their streamers stay,
//!   slot-bound, so their keys no longer open).
//! - `POST /api/admin/rooms/{room}/events/{id}/bookings` `{slot_start, slots?: 1, artist_name,
//!   description?, location?, timezone, email?, streamer_id?}` → 201 `{booking, stream_key,
//!   whip_url, rtmp_url, merged}` (`rtmp_url` with a new key and RTMP on, else null). `slot_start` must be a slot start; `slots` contiguous slots are booked
//!   (400 past the event's end); `timezone` is IANA (`Europe/Berlin`). Without `streamer_id` a
//!   streamer named `artist_name` is created and `stream_key` is its key, **shown this once**;
//!   with `streamer_id` that streamer of the room is booked, its key unchanged (`stream_key:
//!   null`, `artist_name` may be empty: the streamer's name), and a booking contiguous with one
//!   of the same streamer in this event merges into it (`merged: true`, one window). 409 the
//!   slots overlap a booking in the room. A booked streamer is slot-bound from then on: its key
//!   works from `[schedule] grace_before_s` before one of its windows to the window's end, and
//!   its live session is ended `grace_after_s` after the window closes (see [`crate::schedule`]).
//! - `PUT /api/admin/rooms/{room}/events/{id}/bookings/{booking}` `{slot_start, slots?: 1}` →
//!   200 `booking`: moves and/or resizes the booking to `slots` slots from `slot_start` (400
//!   not a slot start or past the event's end, 409 overlap with another booking in the room,
//!   404 no such booking). Landing next to another booking of the same streamer in this event
//!   merges them into this one (its id and fields stay). A live session now outside every
//!   window of its streamer is ended at once, as on delete.
//! - `DELETE /api/admin/rooms/{room}/events/{id}/bookings/{booking}` → 204 (a live session of
//!   that streamer outside any remaining window is ended at once).
//!
//! Public (no auth):
//! - `GET /api/rooms/{room}/schedule` → 200 `{room, events: [event]}`: each event's contiguous
//!   slots in time order, free (`booking: null`) or taken. Never shows emails, keys or streamer
//!   ids.
//! - `POST /api/rooms/{room}/events/{id}/signup` (same body as a booking, no `streamer_id`) →
//!   201 `{booking, stream_key, whip_url, rtmp_url, merged: false}`, only when the event has
//!   `public_signup: true` (404 otherwise); 429 over 5 sign-ups per minute per client IP.
//!
//! `event` = `{id, title, start, end, slot_minutes, public_signup, slots: [{start, end,
//! booking}]}`; `booking` = `{id, artist_name, description, location, timezone, start, end,
//! local_start, local_end, live}` (+ `streamer_id`, `email` for admins), where `local_*` is the
//! window in the artist's time zone (RFC 3339 with that zone's offset at that instant, so a
//! booking across a DST change shows two different offsets).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{base_url, json_body};
use super::rooms::stored as room;
use crate::ids::{BookingId, EventId, StreamerId};
use crate::schedule::rfc3339;
use crate::store::Room;
use crate::store::schedule::{Booking, BookingSpec, Event, EventSpec};

use crate::schedule::SIGNUPS_PER_MINUTE;

async fn event(app: &AppState, room: &Room, id: &str) -> Result<Event, ApiError> {
    let not_found = || ApiError::NotFound(format!("no event {id:?} in room {:?}", room.name));
    let id: EventId = id.parse().map_err(|_| not_found())?;
    app.store.event(room.id, id).await?.ok_or_else(not_found)
}

fn parse_time(field: &str, value: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.timestamp())
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "{field} must be RFC 3339 with an offset (2026-11-21T21:00:00Z), got {value:?}: {e}"
            ))
        })
}

fn local_time(unix: i64, tz: &str) -> String {
    let utc = DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default();
    match chrono_tz::Tz::from_str(tz) {
        Ok(tz) => utc
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        Err(_) => rfc3339(unix),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    title: String,
    start: String,
    end: String,
    slot_minutes: u32,
    #[serde(default)]
    public_signup: bool,
}

impl EventBody {
    fn spec(&self) -> Result<EventSpec, ApiError> {
        Ok(EventSpec {
            title: self.title.clone(),
            start_at: parse_time("start", &self.start)?,
            end_at: parse_time("end", &self.end)?,
            slot_seconds: i64::from(self.slot_minutes) * 60,
            public_signup: self.public_signup,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookingBody {
    slot_start: String,
    #[serde(default = "one")]
    slots: u32,
    #[serde(default)]
    artist_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    location: String,
    timezone: String,
    email: Option<String>,
    streamer_id: Option<StreamerId>,
}

fn one() -> u32 {
    1
}

impl BookingBody {
    fn spec(self) -> Result<BookingSpec, ApiError> {
        Ok(BookingSpec {
            slot_start: parse_time("slot_start", &self.slot_start)?,
            slots: self.slots,
            artist_name: self.artist_name,
            description: self.description,
            location: self.location,
            timezone: self.timezone,
            email: self.email.filter(|e| !e.trim().is_empty()),
            streamer_id: self.streamer_id,
        })
    }
}

/// Fields only admins see.
#[derive(Serialize)]
pub struct PrivateFields {
    pub streamer_id: StreamerId,
    pub email: Option<String>,
}

/// A booking as shown in the API.
#[derive(Serialize)]
pub struct BookingView {
    pub id: BookingId,
    pub artist_name: String,
    pub description: String,
    pub location: String,
    pub timezone: String,
    /// RFC 3339, UTC.
    pub start: String,
    /// RFC 3339, UTC.
    pub end: String,
    /// RFC 3339 in `timezone`.
    pub local_start: String,
    /// RFC 3339 in `timezone`.
    pub local_end: String,
    /// Whether the artist is publishing now.
    pub live: bool,
    #[serde(flatten)]
    pub private: Option<PrivateFields>,
}

impl BookingView {
    fn new(b: &Booking, live: bool, private: bool) -> BookingView {
        BookingView {
            id: b.id,
            artist_name: b.artist_name.clone(),
            description: b.description.clone(),
            location: b.location.clone(),
            timezone: b.timezone.clone(),
            start: rfc3339(b.start_at),
            end: rfc3339(b.end_at),
            local_start: local_time(b.start_at, &b.timezone),
            local_end: local_time(b.end_at, &b.timezone),
            live,
            private: private.then(|| PrivateFields {
                streamer_id: b.streamer_id,
                email: b.email.clone(),
            }),
        }
    }
}

/// One slot of an event: free (`booking: null`) or taken.
#[derive(Serialize)]
pub struct SlotView {
    pub start: String,
    pub end: String,
    pub booking: Option<Arc<BookingView>>,
}

/// An event with its slots.
#[derive(Serialize)]
pub struct EventView {
    pub id: EventId,
    pub title: String,
    pub start: String,
    pub end: String,
    pub slot_minutes: i64,
    pub public_signup: bool,
    pub slots: Vec<SlotView>,
}

async fn event_view(app: &AppState, e: &Event, private: bool) -> Result<EventView, ApiError> {
    let bookings = app.store.bookings(e.id).await?;
    let live = app
        .state
        .live(bookings.iter().map(|b| b.streamer_id).collect())
        .await?;
    let views: Vec<(i64, i64, Arc<BookingView>)> = bookings
        .iter()
        .zip(live.into_iter().chain(std::iter::repeat(false)))
        .map(|(b, live)| {
            (
                b.start_at,
                b.end_at,
                Arc::new(BookingView::new(b, live, private)),
            )
        })
        .collect();
    let slots = e
        .slots()
        .into_iter()
        .map(|(start, end)| SlotView {
            start: rfc3339(start),
            end: rfc3339(end),
            booking: views
                .iter()
                .find(|(bs, be, _)| *bs <= start && start < *be)
                .map(|(_, _, v)| v.clone()),
        })
        .collect();
    Ok(EventView {
        id: e.id,
        title: e.title.clone(),
        start: rfc3339(e.start_at),
        end: rfc3339(e.end_at),
        slot_minutes: e.slot_seconds / 60,
        public_signup: e.public_signup,
        slots,
    })
}

/// `GET /api/admin/rooms/{room}/events` → `[event]` with private booking fields.
pub async fn list_events(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let room = room(&app, &name).await?;
    let mut views = Vec::new();
    for e in app.store.events(room.id).await? {
        views.push(event_view(&app, &e, true).await?);
    }
    Ok(Json(views))
}

/// `POST /api/admin/rooms/{room}/events` → 201 `event`.
pub async fn create_event(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EventView>), ApiError> {
    let room = room(&app, &name).await?;
    let body: EventBody = json_body(body)?;
    let e = app.store.create_event(room.id, &body.spec()?).await?;
    tracing::info!(room = %room.name, event = e.id.0, "event created");
    Ok((StatusCode::CREATED, Json(event_view(&app, &e, true).await?)))
}

/// `PUT /api/admin/rooms/{room}/events/{id}` → 200 `event` (move / resize).
pub async fn put_event(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EventView>, ApiError> {
    let room = room(&app, &name).await?;
    let old = event(&app, &room, &id).await?;
    let body: EventBody = json_body(body)?;
    let e = app
        .store
        .update_event(room.id, old.id, &body.spec()?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id:?} in room {name:?}")))?;
    app.schedule.changed();
    tracing::info!(room = %room.name, event = e.id.0, "event updated");
    Ok(Json(event_view(&app, &e, true).await?))
}

/// `DELETE /api/admin/rooms/{room}/events/{id}` → 204.
pub async fn delete_event(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = room(&app, &name).await?;
    let e = event(&app, &room, &id).await?;
    if !app.store.delete_event(room.id, e.id).await? {
        return Err(ApiError::NotFound(format!(
            "no event {id:?} in room {name:?}"
        )));
    }
    app.schedule.changed();
    tracing::info!(room = %room.name, event = e.id.0, "event deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A created booking; `stream_key` only when a streamer was created for it (shown once).
#[derive(Serialize)]
pub struct CreatedBooking {
    pub booking: BookingView,
    pub stream_key: Option<String>,
    pub whip_url: String,
    /// The RTMP URL with the new key (`null` without a new key or with RTMP off).
    pub rtmp_url: Option<String>,
    pub merged: bool,
}

async fn book(
    app: &AppState,
    e: &Event,
    spec: &BookingSpec,
    headers: &HeaderMap,
    private: bool,
) -> Result<(StatusCode, Json<CreatedBooking>), ApiError> {
    let created = app.store.create_booking(e, spec).await?;
    app.schedule.changed();
    let b = &created.booking;
    tracing::info!(
        event = e.id.0,
        booking = b.id.0,
        streamer = b.streamer_id.0,
        merged = created.merged,
        "booking created"
    );
    let base = base_url(app.settings.public_url.as_deref(), headers);
    Ok((
        StatusCode::CREATED,
        Json(CreatedBooking {
            booking: BookingView::new(b, false, private),
            rtmp_url: created
                .key
                .as_ref()
                .and_then(|k| crate::config::rtmp_url(&app.settings.rtmp, &base, k.expose())),
            stream_key: created.key.map(|k| k.expose().to_owned()),
            whip_url: format!("{base}/api/whip"),
            merged: created.merged,
        }),
    ))
}

/// `POST /api/admin/rooms/{room}/events/{id}/bookings` → 201 `{booking, stream_key, whip_url,
/// merged}`.
pub async fn create_booking(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedBooking>), ApiError> {
    let room = room(&app, &name).await?;
    let e = event(&app, &room, &id).await?;
    let body: BookingBody = json_body(body)?;
    book(&app, &e, &body.spec()?, &headers, true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    slot_start: String,
    #[serde(default = "one")]
    slots: u32,
}

/// `PUT /api/admin/rooms/{room}/events/{id}/bookings/{booking}` `{slot_start, slots?}` → 200
/// `booking` (moved / resized; merged with a contiguous booking of the same streamer).
pub async fn put_booking(
    State(app): State<AppState>,
    Path((name, id, booking)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BookingView>, ApiError> {
    let room = room(&app, &name).await?;
    let e = event(&app, &room, &id).await?;
    let not_found = || ApiError::NotFound(format!("no booking {booking:?} in event {}", e.id));
    let booking_id: BookingId = booking.parse().map_err(|_| not_found())?;
    let body: MoveBody = json_body(body)?;
    let slot_start = parse_time("slot_start", &body.slot_start)?;
    let (b, merged) = app
        .store
        .move_booking(&e, booking_id, slot_start, body.slots)
        .await?
        .ok_or_else(not_found)?;
    app.schedule.changed();
    tracing::info!(event = e.id.0, booking = b.id.0, merged, "booking moved");
    let live = app
        .state
        .live(vec![b.streamer_id])
        .await?
        .first()
        .copied()
        .unwrap_or(false);
    Ok(Json(BookingView::new(&b, live, true)))
}

/// `DELETE /api/admin/rooms/{room}/events/{id}/bookings/{booking}` → 204.
pub async fn delete_booking(
    State(app): State<AppState>,
    Path((name, id, booking)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = room(&app, &name).await?;
    let e = event(&app, &room, &id).await?;
    let not_found = || ApiError::NotFound(format!("no booking {booking:?} in event {}", e.id));
    let booking_id: BookingId = booking.parse().map_err(|_| not_found())?;
    if !app.store.delete_booking(e.id, booking_id).await? {
        return Err(not_found());
    }
    app.schedule.changed();
    tracing::info!(event = e.id.0, booking = booking_id.0, "booking deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The public schedule of a room.
#[derive(Serialize)]
pub struct PublicSchedule {
    pub room: String,
    pub events: Vec<EventView>,
}

/// `GET /api/rooms/{room}/schedule` → `{room, events}` without emails, keys or streamer ids.
pub async fn public_schedule(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PublicSchedule>, ApiError> {
    let room = room(&app, &name).await?;
    let mut events = Vec::new();
    for e in app.store.events(room.id).await? {
        events.push(event_view(&app, &e, false).await?);
    }
    Ok(Json(PublicSchedule {
        room: room.name,
        events,
    }))
}

/// `POST /api/rooms/{room}/events/{id}/signup` → 201 when the event allows public sign-up.
pub async fn signup(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedBooking>), ApiError> {
    let room = room(&app, &name).await?;
    let e = event(&app, &room, &id).await?;
    if !e.public_signup {
        return Err(ApiError::NotFound(format!(
            "event {} does not take public sign-ups",
            e.id
        )));
    }
    let ip = peer.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |axum::Extension(ConnectInfo(a))| {
            super::extract::client_ip(a.ip(), &headers, &app.settings.trusted_proxies)
        },
    );
    if !app.schedule.signup_allowed(ip) {
        return Err(ApiError::TooManyRequests(format!(
            "at most {SIGNUPS_PER_MINUTE} sign-ups per minute; try again later"
        )));
    }
    let body: BookingBody = json_body(body)?;
    if body.streamer_id.is_some() {
        return Err(ApiError::BadRequest(
            "streamer_id is not accepted in a public sign-up".into(),
        ));
    }
    book(&app, &e, &body.spec()?, &headers, false).await
}
