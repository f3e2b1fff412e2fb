//! Admin API under `/api/admin`, behind `Authorization: Bearer <admin token>` (compared in
//! constant time). JSON in and out; errors are `{"error": "..."}`.
//!
//! - `GET  /api/admin/rooms` → `[room]`; `POST` `{name, title?}` → 201 room (409 taken, 400 bad name)
//! - `GET  /api/admin/rooms/{room}/streamers` → `[{id, name, live, created_at}]`
//! - `POST /api/admin/rooms/{room}/streamers` `{name}` → 201 `{id, name, stream_key, whip_url,
//!   rtmp_url, created_at}`; the key is shown this once only
//! - `DELETE /api/admin/rooms/{room}/streamers/{id}` → 204 (closes its sessions, empties its slots)
//! - `GET|PUT /api/admin/rooms/{room}/stage` `{layout: 1..=9, slots: [id|null…]}` → 200 room view
//! - `POST /api/admin/rooms/{room}/streamers/{id}/whep` → admin live preview (WHEP, 201)
//!
//! `created_at` is Unix time in seconds.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use venue_sfu::{RoomId, SubscribeTarget};

use super::json_body;
use super::{
    RTMP_PORT, SDP, base_url, bearer, created, etag, require_content_type, sdp_offer, url_host,
};
use crate::AppState;
use crate::error::{ApiError, TextError};
use crate::state::{RoomView, SessionInfo, SessionKind, participant};
use crate::store::{Room, Stage, Streamer};

/// SHA-256 of the admin token, what [`AppState`] keeps.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Middleware: 401 unless the bearer token is the admin token.
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let ok = bearer(req.headers())
        .is_some_and(|t| bool::from(token_digest(t).ct_eq(&app.admin_token_digest)));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized("missing or wrong admin token").into_response()
    }
}

async fn room(app: &AppState, name: &str) -> Result<Room, ApiError> {
    app.store
        .room_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

async fn streamer(app: &AppState, room: &Room, id: &str) -> Result<Streamer, ApiError> {
    let not_found = || ApiError::NotFound(format!("no streamer {id:?} in room {:?}", room.name));
    let id: i64 = id.parse().map_err(|_| not_found())?;
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
    pub id: i64,
    pub name: String,
    pub live: bool,
    pub created_at: i64,
}

/// `GET /api/admin/rooms/{room}/streamers`.
pub async fn list_streamers(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<StreamerItem>>, ApiError> {
    let room = room(&app, &name).await?;
    let streamers = app.store.streamers(room.id).await?;
    let live = app
        .state
        .live(streamers.iter().map(|s| s.id).collect())
        .await?;
    Ok(Json(
        streamers
            .into_iter()
            .zip(live.into_iter().chain(std::iter::repeat(false)))
            .map(|(s, live)| StreamerItem {
                id: s.id,
                name: s.name,
                live,
                created_at: s.created_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStreamer {
    name: String,
}

/// A created streamer, with its key (shown once).
#[derive(Serialize)]
pub struct CreatedStreamer {
    pub id: i64,
    pub name: String,
    pub stream_key: String,
    pub whip_url: String,
    pub rtmp_url: String,
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
    let base = base_url(app.public_url.as_deref(), &headers);
    tracing::info!(room = %room.name, streamer = s.id, "streamer created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedStreamer {
            id: s.id,
            name: s.name,
            whip_url: format!("{base}/api/whip"),
            rtmp_url: format!(
                "rtmp://{}:{RTMP_PORT}/live/{}",
                url_host(&base),
                key.expose()
            ),
            stream_key: key.expose().to_owned(),
            created_at: s.created_at,
        }),
    ))
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

/// `GET /api/admin/rooms/{room}/stage` → room view.
pub async fn get_stage(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    app.state
        .view(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutStage {
    layout: u32,
    #[serde(default)]
    slots: Vec<Option<i64>>,
}

/// `PUT /api/admin/rooms/{room}/stage` `{layout, slots}` → 200 room view; 400 with the reason.
pub async fn put_stage(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RoomView>, ApiError> {
    let room = room(&app, &name).await?;
    let put: PutStage = json_body(body)?;
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
    Ok(Json(view))
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
    let room_id = RoomId(room.id as u64);
    let p = participant(s.id);
    let answer = app
        .sfu
        .subscribe(room_id, SubscribeTarget::Participant(p), &offer)
        .await?;
    let tag = etag(&answer);
    app.state
        .session_created(
            answer.session,
            SessionInfo {
                room: room_id,
                kind: SessionKind::Preview(p),
                etag: tag.clone(),
            },
        )
        .await?;
    Ok(created(
        format!("/api/whep/{}/{}", room.name, answer.session),
        &tag,
        answer.answer_sdp,
    )?)
}
