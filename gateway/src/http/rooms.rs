//! Public room information: `GET /api/rooms/{room}` → `{name, title, layout, max_slots,
//! slots: [{index, streamer_id|null, name|null, live}], viewer_count}` (slots always
//! `max_slots` long), and the join decision `GET /api/rooms/{room}/join` ([`join`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::overflow::{Cause, Decision, JoinMode};
use crate::rooms::RoomView;
use crate::store::Room;

/// `GET /api/rooms/{room}` (and `GET /api/admin/rooms/{room}/stage`) → the room view.
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(view(&app, &name).await?))
}

/// The live view of the room called `name`; 404 `no room "name"`.
pub(crate) async fn view(app: &AppState, name: &str) -> Result<RoomView, ApiError> {
    app.state
        .view(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

/// The stored room called `name`; 404 `no room "name"`.
pub(crate) async fn stored(app: &AppState, name: &str) -> Result<Room, ApiError> {
    app.store
        .room_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

/// The answer of `GET /api/rooms/{room}/join`.
#[derive(Debug, Clone, Serialize)]
pub struct JoinAnswer {
    /// `webrtc` (WHEP at `whep_url`, room events over its data channels) or `hls` (the
    /// LL-HLS program at `hls_url`, room events over the WebSocket at `ws_url`).
    pub mode: JoinMode,
    /// For people: why this mode.
    pub reason: String,
    /// `capacity` or `cpu` in HLS mode, else null.
    pub cause: Option<Cause>,
    /// WebRTC viewers of the room now, and its limit (`hls.max_webrtc_viewers`).
    pub webrtc_viewers: usize,
    pub max_webrtc_viewers: usize,
    /// Relative URLs of the three ways in.
    pub hls_url: String,
    pub whep_url: String,
    pub ws_url: String,
}

impl JoinAnswer {
    /// The answer for room `name` under `decision`.
    pub fn new(name: &str, decision: Decision) -> JoinAnswer {
        JoinAnswer {
            mode: decision.mode,
            reason: decision.reason,
            cause: decision.cause,
            webrtc_viewers: decision.webrtc_viewers,
            max_webrtc_viewers: decision.max_webrtc_viewers,
            hls_url: format!("/hls/{name}/index.m3u8"),
            whep_url: format!("/api/whep/{name}"),
            ws_url: format!("/api/rooms/{name}/ws"),
        }
    }
}

/// `GET /api/rooms/{room}/join` → 200 [`JoinAnswer`] (`Cache-Control: no-store`: it changes
/// with every viewer), 404 unknown room. The rule is [`crate::overflow`]'s: `hls` at the
/// room's WebRTC capacity or while the server is overloaded, else `webrtc`. Advice only: WHEP
/// enforces the same rule with 503.
pub async fn join(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let room = view(&app, &name).await?;
    let decision = app.overflow.decide(&app.state, room.id).await?;
    let mut res = Json(JoinAnswer::new(&room.name, decision)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
