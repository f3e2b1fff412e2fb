//! Admin API under `/api/admin`, behind `Authorization: Bearer <admin token>` (compared in
//! constant time). JSON in and out; errors are `{"error": "..."}`.
//!
//! - `GET  /api/admin/rooms` → `[room]`; `POST` `{name, title?}` → 201 room (409 taken, 400 bad name)
//! - `GET  /api/admin/rooms/{room}/streamers` → `[{id, name, live, created_at, sticker_set,
//!   health}]` where `sticker_set` is the streamer's own sticker set id or `null`, and `health`
//!   the live publisher's health (shape below) or `null` when offline
//! - `GET /api/admin/rooms/{room}/streamers/{id}/health` → 200 the health, or `null` when the
//!   streamer is offline; 404 no such room or streamer. Health (issue 4 item 7), measured by the
//!   SFU on the media it receives (`venue_sfu::health::PublisherHealth`):
//!   `{protocol: "whip"|"rtmp", video: [{rid, codec, profile_level_id, width, height, fps,
//!   bitrate_bps, keyframe_interval_s}], audio: {codec, channels, sample_rate_hz, bitrate_bps,
//!   source: {codec, channels, sample_rate_hz}|null}|null, packet_loss, b_frames, warnings}` —
//!   `codec` `"H.264"`/`"VP8"`/`"Opus"`…, `profile_level_id` six hex digits (RFC 6184 §8.1) or
//!   `null`, `width`/`height` pixels or `null` until a keyframe was seen, `fps` pictures/s and
//!   `bitrate_bps` bit/s over the last 4 s, `keyframe_interval_s` seconds between the last two
//!   keyframes or `null`, `source` the RTMP audio before transcoding, `packet_loss` the fraction
//!   (0..1) lost on the way in over the last 2 s, `b_frames` true when the stream has B-frames,
//!   `warnings` human-readable problems with their fix (B-frames: the OBS setting to change)
//! - `POST /api/admin/rooms/{room}/streamers` `{name}` → 201 `{id, name, stream_key, whip_url,
//!   rtmp_url, created_at}` (`rtmp_url` on `[rtmp] listen`'s port, null with RTMP off); the key
//!   is shown this once only
//! - `DELETE /api/admin/rooms/{room}/streamers/{id}` → 204 (closes its sessions, empties its slots)
//! - `PUT /api/admin/rooms/{room}/streamers/{id}` `{sticker_set: "<set id>" | null}` → 200
//!   `{id, name, live, created_at, sticker_set}`: the streamer's own sticker set ("switch the
//!   sticker set per artist"); `null` clears it. 400 no such set (ids as in
//!   `GET /api/admin/sticker-sets`) or a bad body, 404 no such streamer in the room. Changes
//!   nothing on stage by itself: the set is applied at the next stage change (below).
//! - `GET|PUT /api/admin/rooms/{room}/stage` `{layout: 1..=9, slots: [id|null…]}` → 200 room view.
//!   After a `PUT`, if the streamer on slot 0 has a sticker set that is not already the room's
//!   active one, the room switches to it exactly as `PUT /api/admin/rooms/{room}/settings
//!   {sticker_set}` would (stored before the 200; clients get `Event.settings` within one
//!   tick). A streamer without a set leaves the room's set as it is. Should that switch fail
//!   (the set has gone), the stage change stands and the failure is logged.
//! - `POST /api/admin/rooms/{room}/streamers/{id}/whep` → admin live preview (WHEP, 201)
//!
//! `created_at` is Unix time in seconds.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use venue_sfu::SessionId;
use venue_sfu::health::PublisherHealth;

use super::AppState;
use super::error::{ApiError, TextError};
use super::extract::{base_url, json_body, require_content_type, sdp_offer};
use super::interaction::{SettingsPatch, apply_settings, sticker_set};
use super::rooms::stored as room;
use super::session::{self, SDP};
use crate::config::rtmp_url;
use crate::ids::StreamerId;
use crate::rooms::{RoomView, SessionKind};
use crate::store::{Room, Stage, Streamer};

async fn streamer(app: &AppState, room: &Room, id: &str) -> Result<Streamer, ApiError> {
    let not_found = || ApiError::NotFound(format!("no streamer {id:?} in room {:?}", room.name));
    let id: StreamerId = id.parse().map_err(|_| not_found())?;
    app.store.streamer(room.id, id).await?.ok_or_else(not_found)
}

/// `GET /api/admin/rooms`.
pub async fn list_rooms(State(app): State<AppState>) -> Result<Json<Vec<Room>>, ApiError> {
    Ok(Json(app.store.rooms().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    title: Option<String>,
}

/// `POST /api/admin/rooms` `{name, title?}` → 201.
pub async fn create_room(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let new: NewRoom = json_body(body)?;
    let room = app.state.create_room(new.name, new.title).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// One streamer in the admin list.
#[derive(Serialize)]
pub struct StreamerItem {
    pub id: StreamerId,
    pub name: String,
    pub live: bool,
    pub created_at: i64,
    /// The streamer's own sticker set id, if any.
    pub sticker_set: Option<String>,
    /// The live publisher's health (see the module docs); `null` when offline.
    pub health: Option<PublisherHealth>,
}

impl StreamerItem {
    fn new(s: Streamer, live: bool) -> StreamerItem {
        StreamerItem {
            id: s.id,
            name: s.name,
            live,
            created_at: s.created_at,
            sticker_set: s.sticker_set,
            health: None,
        }
    }
}

/// The health of the first of `sessions` the SFU still has as a publisher. An SFU that is
/// overloaded or stopping gives `None` (logged): health is informational and must not fail
/// the streamer list.
async fn health_of(app: &AppState, sessions: &[SessionId]) -> Option<PublisherHealth> {
    for &session in sessions {
        match app.sfu.publisher_health(session).await {
            Ok(Some(h)) => return Some(h),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(%session, error = %e, "publisher health unavailable");
            }
        }
    }
    None
}

/// `GET /api/admin/rooms/{room}/streamers`.
pub async fn list_streamers(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<StreamerItem>>, ApiError> {
    let room = room(&app, &name).await?;
    let streamers = app.store.streamers(room.id).await?;
    let sessions = app
        .state
        .live_sessions(streamers.iter().map(|s| s.id).collect())
        .await?;
    let mut items = Vec::with_capacity(streamers.len());
    for (s, sessions) in streamers
        .into_iter()
        .zip(sessions.into_iter().chain(std::iter::repeat(Vec::new())))
    {
        let mut item = StreamerItem::new(s, !sessions.is_empty());
        item.health = health_of(&app, &sessions).await;
        items.push(item);
    }
    Ok(Json(items))
}

/// `GET /api/admin/rooms/{room}/streamers/{id}/health` → 200 the live publisher's health (shape
/// in the module docs) or `null` when the streamer is offline; 404 no such room or streamer.
pub async fn streamer_health(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Option<PublisherHealth>>, ApiError> {
    let room = room(&app, &name).await?;
    let s = streamer(&app, &room, &id).await?;
    let sessions = app
        .state
        .live_sessions(vec![s.id])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(Json(health_of(&app, &sessions).await))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStreamer {
    name: String,
}

/// A created streamer, with its key (shown once).
#[derive(Serialize)]
pub struct CreatedStreamer {
    pub id: StreamerId,
    pub name: String,
    pub stream_key: String,
    pub whip_url: String,
    /// `null` when RTMP ingest is off.
    pub rtmp_url: Option<String>,
    pub created_at: i64,
}

/// `POST /api/admin/rooms/{room}/streamers` `{name}` → 201 with the stream key.
pub async fn create_streamer(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedStreamer>), ApiError> {
    let room = room(&app, &name).await?;
    let new: NewStreamer = json_body(body)?;
    let (s, key) = app.store.create_streamer(room.id, &new.name).await?;
    let base = base_url(app.settings.public_url.as_deref(), &headers);
    tracing::info!(room = %room.name, streamer = s.id.0, "streamer created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedStreamer {
            id: s.id,
            name: s.name,
            whip_url: format!("{base}/api/whip"),
            rtmp_url: rtmp_url(&app.settings.rtmp, &base, key.expose()),
            stream_key: key.expose().to_owned(),
            created_at: s.created_at,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutStreamer {
    /// Required; `null` clears the set.
    #[serde(deserialize_with = "required_nullable")]
    sticker_set: Option<String>,
}

/// A field that must be present but may be `null`.
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// `PUT /api/admin/rooms/{room}/streamers/{id}` `{sticker_set: id | null}` → 200 the streamer.
pub async fn put_streamer(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StreamerItem>, ApiError> {
    let room = room(&app, &name).await?;
    let s = streamer(&app, &room, &id).await?;
    let put: PutStreamer = json_body(body)?;
    if let Some(set) = &put.sticker_set {
        sticker_set(&app, set).await?;
    }
    let s = app
        .store
        .set_streamer_sticker_set(room.id, s.id, put.sticker_set.as_deref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no streamer {id:?} in room {name:?}")))?;
    let live = app
        .state
        .live(vec![s.id])
        .await?
        .first()
        .copied()
        .unwrap_or(false);
    tracing::info!(room = %room.name, streamer = s.id.0, sticker_set = ?s.sticker_set, "streamer sticker set");
    Ok(Json(StreamerItem::new(s, live)))
}

/// `DELETE /api/admin/rooms/{room}/streamers/{id}` → 204.
pub async fn delete_streamer(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = room(&app, &name).await?;
    let s = streamer(&app, &room, &id).await?;
    if app.state.delete_streamer(room.id, s.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no streamer {id:?} in room {name:?}"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutStage {
    layout: u32,
    #[serde(default)]
    slots: Vec<Option<StreamerId>>,
}

/// `PUT /api/admin/rooms/{room}/stage` `{layout, slots}` → 200 room view; 400 with the reason.
pub async fn put_stage(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RoomView>, ApiError> {
    let room = room(&app, &name).await?;
    let put: PutStage = json_body(body)?;
    let slot0_before = app
        .state
        .view(&name)
        .await?
        .and_then(|v| v.slots.first().and_then(|s| s.streamer_id));
    let view = app
        .state
        .put_stage(
            room.id,
            Stage {
                layout: put.layout,
                slots: put.slots,
            },
        )
        .await?;
    // Only a new artist on slot 0 switches the set: a layout change keeps an admin's choice.
    if view.slots.first().and_then(|s| s.streamer_id) != slot0_before {
        follow_slot0_sticker_set(&app, &room, &view).await;
    }
    Ok(Json(view))
}

/// After a stage change that put a different streamer on slot 0: makes that streamer's sticker
/// set, if it has one, the room's active set, through the same path as the settings API. Failures are logged: the
/// stage change itself has happened.
async fn follow_slot0_sticker_set(app: &AppState, room: &Room, view: &RoomView) {
    let Some(id) = view.slots.first().and_then(|s| s.streamer_id) else {
        return;
    };
    let result = async {
        let Some(set) = app
            .store
            .streamer(room.id, id)
            .await?
            .and_then(|s| s.sticker_set)
        else {
            return Ok(false);
        };
        let Some((room_id, hub)) = app.state.room_hub(&room.name).await? else {
            return Ok(false);
        };
        if hub.settings().await?.sticker_set.id == set {
            return Ok(false);
        }
        let patch = SettingsPatch {
            sticker_set: Some(set),
            ..SettingsPatch::default()
        };
        apply_settings(app, room_id, &hub, patch).await?;
        Ok::<_, ApiError>(true)
    }
    .await;
    match result {
        Ok(true) => {
            tracing::info!(room = %room.name, streamer = id.0, "sticker set follows slot 0");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(room = %room.name, streamer = id.0, error = %e, "could not switch to slot 0's sticker set");
        }
    }
}

/// `POST /api/admin/rooms/{room}/streamers/{id}/whep`: live preview of one streamer (WHEP).
pub async fn preview(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, TextError> {
    let room = room(&app, &name).await?;
    let s = streamer(&app, &room, &id).await?;
    require_content_type(&headers, SDP)?;
    let offer = sdp_offer(body)?;
    let resource = format!("/api/whep/{}", room.name);
    let kind = SessionKind::Preview(s.id);
    let (_, response) = session::create(&app, room.id, kind, offer, &resource).await?;
    Ok(response)
}
