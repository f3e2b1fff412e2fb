//! Admin API of the living room, behind the admin token like the rest of `/api/admin`.
//!
//! - `GET /api/admin/rooms/{room}/settings` → `{title, now_playing, background_color,
//!   mode, sticker_set, slow_mode_s}`, where `mode` is `"everything" | "chat_only" |
//!   "stickers_off" | "quiet"`, `sticker_set` a set id, `slow_mode_s` seconds (0 = off).
//! - `PUT /api/admin/rooms/{room}/settings` with any subset of those fields (missing = unchanged)
//!   → 200 with the new settings once stored; clients get `Event.settings` within one tick.
//!   400 with the reason: title 1–200 chars, now_playing ≤ 200, colour `#rrggbb`,
//!   slow_mode_s ≤ 3600, an unknown mode or sticker set.
//! - `GET /api/admin/rooms/{room}/users` → `{user_count, users: [{id, display_name, starred,
//!   admin, muted_until_ms, transport: "websocket" | "data_channel"}]}`.
//! - `POST /api/admin/rooms/{room}/moderation` `{action, user_id?, message_id?, duration_s?,
//!   reason?}` → 204 once stored. `action`: `mute` (user_id, duration_s 1..=604800; 0 unmutes),
//!   `kick` (user_id, reason?), `ban` (user_id, duration_s 0 = until lifted, reason?), `star` /
//!   `unstar` (user_id), `delete_message` (message_id), `clear_chat`, `clear_stickers`,
//!   `slow_mode` (duration_s = interval, 0 = off). 404 unknown user or message, 400 otherwise.
//! - `GET /api/admin/sticker-sets` → `[{id, name, stickers: [{id, url, label}]}]` (`default`
//!   first); `PUT /api/admin/sticker-sets/{id}` `{name, stickers}` creates or replaces a set
//!   whose images are same-origin URLs.
//! - `PUT /api/admin/sticker-sets/{set}/images/{sticker}` with the picture as the body
//!   (`Content-Type` `image/png`, `image/webp`, `image/gif` or `image/svg+xml`, at most
//!   256 KiB, checked against the file's own signature) → 200 `{url}` where `url` is
//!   `/stickers/custom/{set}/{sticker}`, to use in the set's definition. 415 other types or a
//!   body that is not that type, 413 too large, 400 bad ids. Served publicly by
//!   [`sticker_image`] with `nosniff` and a sandboxing CSP (an SVG cannot run script there).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::json_body;
use crate::hub::settings::{Mode, RoomSettings, StickerDef, StickerSet};
use crate::hub::shell::{HubHandle, HubStopped};
use crate::hub::{Moderation, ModerationError, UserInfo};
use crate::ids::RoomId;

impl From<HubStopped> for ApiError {
    fn from(e: HubStopped) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<ModerationError> for ApiError {
    fn from(e: ModerationError) -> Self {
        match e {
            ModerationError::NoSuchUser(_) | ModerationError::NoSuchMessage(_) => {
                ApiError::NotFound(e.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

async fn hub(app: &AppState, name: &str) -> Result<(RoomId, HubHandle), ApiError> {
    app.state
        .room_hub(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

/// Room settings as the admin API shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingsView {
    pub title: String,
    pub now_playing: String,
    pub background_color: String,
    pub mode: Mode,
    /// Id of the active sticker set.
    pub sticker_set: String,
    pub slow_mode_s: u32,
}

impl From<&RoomSettings> for SettingsView {
    fn from(s: &RoomSettings) -> Self {
        SettingsView {
            title: s.title.clone(),
            now_playing: s.now_playing.clone(),
            background_color: s.background_color.clone(),
            mode: s.mode,
            sticker_set: s.sticker_set.id.clone(),
            slow_mode_s: s.slow_mode_s,
        }
    }
}

/// `GET /api/admin/rooms/{room}/settings`.
pub async fn get_settings(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SettingsView>, ApiError> {
    let (_, hub) = hub(&app, &name).await?;
    Ok(Json(SettingsView::from(&hub.settings().await?)))
}

/// A partial change of room settings (missing = unchanged): the body of `PUT settings`, and
/// what a stage change makes of slot 0's streamer's sticker set ([`super::admin::put_stage`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub title: Option<String>,
    pub now_playing: Option<String>,
    pub background_color: Option<String>,
    pub mode: Option<String>,
    /// A set id; 400 if there is no such set.
    pub sticker_set: Option<String>,
    pub slow_mode_s: Option<u32>,
}

/// `PUT /api/admin/rooms/{room}/settings` (partial) → 200 new settings; 400 with the reason.
pub async fn put_settings(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettingsView>, ApiError> {
    let (room_id, hub) = hub(&app, &name).await?;
    let patch: SettingsPatch = json_body(body)?;
    let settings = apply_settings(&app, room_id, &hub, patch).await?;
    tracing::info!(room = %name, "room settings changed");
    Ok(Json(SettingsView::from(&settings)))
}

/// Applies `patch` to the settings of room `room_id` (whose hub is `hub`): validates it,
/// stores it, and has the hub send `Event.settings` to its clients within one tick; answers
/// once stored. The one way settings change (the settings API and stage changes both use it).
/// Errors: 400 with the reason, 503 hub stopped, 500 store.
pub async fn apply_settings(
    app: &AppState,
    room_id: RoomId,
    hub: &HubHandle,
    patch: SettingsPatch,
) -> Result<RoomSettings, ApiError> {
    let mut settings = hub.settings().await?;
    if let Some(title) = patch.title {
        settings.title = title.trim().to_owned();
    }
    if let Some(v) = patch.now_playing {
        settings.now_playing = v.trim().to_owned();
    }
    if let Some(v) = patch.background_color {
        settings.background_color = v.trim().to_ascii_lowercase();
    }
    if let Some(v) = patch.mode {
        settings.mode = Mode::parse(&v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "mode must be \"everything\", \"chat_only\", \"stickers_off\" or \"quiet\", got {v:?}"
            ))
        })?;
    }
    if let Some(id) = patch.sticker_set {
        settings.sticker_set = sticker_set(app, &id).await?;
    }
    if let Some(v) = patch.slow_mode_s {
        settings.slow_mode_s = v;
    }
    let settings = hub
        .put_settings(settings)
        .await?
        .map_err(ApiError::BadRequest)?;
    app.state.set_title(room_id, settings.title.clone()).await?;
    Ok(settings)
}

/// The sticker set `id`; 400 if there is none.
pub async fn sticker_set(app: &AppState, id: &str) -> Result<StickerSet, ApiError> {
    app.store
        .sticker_set(id)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("no sticker set {id:?}")))
}

/// The user list of a room.
#[derive(Debug, Serialize)]
pub struct UsersView {
    pub user_count: usize,
    pub users: Vec<UserInfo>,
}

/// `GET /api/admin/rooms/{room}/users`.
pub async fn users(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UsersView>, ApiError> {
    let (_, hub) = hub(&app, &name).await?;
    let users = hub.users().await?;
    Ok(Json(UsersView {
        user_count: users.len(),
        users,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerationBody {
    action: String,
    user_id: Option<u64>,
    message_id: Option<u64>,
    duration_s: Option<u32>,
    reason: Option<String>,
}

impl TryFrom<ModerationBody> for Moderation {
    type Error = ApiError;

    fn try_from(b: ModerationBody) -> Result<Moderation, ApiError> {
        let user = || {
            b.user_id
                .ok_or_else(|| ApiError::BadRequest(format!("{} needs user_id", b.action)))
        };
        let reason = b.reason.clone().unwrap_or_default();
        if reason.chars().count() > 200 {
            return Err(ApiError::BadRequest(
                "reason must be at most 200 characters".into(),
            ));
        }
        Ok(match b.action.as_str() {
            "mute" => Moderation::Mute {
                user_id: user()?,
                duration_s: b.duration_s.ok_or_else(|| {
                    ApiError::BadRequest("mute needs duration_s (0 unmutes)".into())
                })?,
            },
            "kick" => Moderation::Kick {
                user_id: user()?,
                reason,
            },
            "ban" => Moderation::Ban {
                user_id: user()?,
                duration_s: b.duration_s.unwrap_or(0),
                reason,
            },
            "star" | "unstar" => Moderation::Star {
                user_id: user()?,
                starred: b.action == "star",
            },
            "delete_message" => Moderation::DeleteMessage {
                message_id: b.message_id.ok_or_else(|| {
                    ApiError::BadRequest("delete_message needs message_id".into())
                })?,
            },
            "clear_chat" => Moderation::ClearChat,
            "clear_stickers" => Moderation::ClearStickers,
            "slow_mode" => Moderation::SlowMode {
                interval_s: b.duration_s.unwrap_or(0),
            },
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown action {other:?}; one of mute, kick, ban, star, unstar, \
                     delete_message, clear_chat, clear_stickers, slow_mode"
                )));
            }
        })
    }
}

/// `POST /api/admin/rooms/{room}/moderation` → 204.
pub async fn moderate(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (_, hub) = hub(&app, &name).await?;
    let body: ModerationBody = json_body(body)?;
    let action = Moderation::try_from(body)?;
    let what = format!("{action:?}");
    hub.moderate(action).await??;
    tracing::info!(room = %name, action = %what, "moderation");
    Ok(StatusCode::NO_CONTENT)
}

/// Largest uploaded sticker picture, bytes.
pub const MAX_STICKER_IMAGE_BYTES: usize = 256 * 1024;

/// Image types accepted for sticker pictures, with a check of the file's own signature.
fn sniff_image(content_type: &str, data: &[u8]) -> bool {
    match content_type {
        "image/png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/gif" => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        "image/webp" => {
            data.len() > 12 && data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP")
        }
        "image/svg+xml" => {
            let head =
                String::from_utf8_lossy(data.get(..data.len().min(1024)).unwrap_or_default())
                    .to_ascii_lowercase();
            let head = head.trim_start_matches('\u{feff}').trim_start();
            (head.starts_with("<svg") || head.starts_with("<?xml")) && head.contains("<svg")
        }
        _ => false,
    }
}

/// A set or sticker id in an upload path: 1–64 chars of `[a-z0-9_-]`.
fn valid_image_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[derive(Serialize)]
pub struct UploadedSticker {
    /// Same-origin URL of the stored picture.
    pub url: String,
}

/// `PUT /api/admin/sticker-sets/{set}/images/{sticker}`: stores one sticker picture (see the
/// module docs for types and limits).
pub async fn put_sticker_image(
    State(app): State<AppState>,
    Path((set, sticker)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UploadedSticker>, ApiError> {
    if !valid_image_id(&set) || !valid_image_id(&sticker) {
        return Err(ApiError::BadRequest(
            "set and sticker ids are 1–64 chars of a-z, 0-9, - and _".into(),
        ));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let data = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(MAX_STICKER_IMAGE_BYTES),
        _ => ApiError::BadRequest(format!("could not read the body: {}", r.body_text())),
    })?;
    if data.len() > MAX_STICKER_IMAGE_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_STICKER_IMAGE_BYTES));
    }
    if !sniff_image(&content_type, &data) {
        return Err(ApiError::UnsupportedMediaType(
            "image/png, image/webp, image/gif or image/svg+xml, and the body must be that type",
        ));
    }
    app.store
        .put_sticker_image(&set, &sticker, &content_type, &data)
        .await?;
    Ok(Json(UploadedSticker {
        url: format!("/stickers/custom/{set}/{sticker}"),
    }))
}

/// `GET /stickers/custom/{set}/{sticker}`: an uploaded sticker picture, 404 if none.
pub async fn sticker_image(
    State(app): State<AppState>,
    Path((set, sticker)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Some((content_type, data)) = app.store.sticker_image(&set, &sticker).await? else {
        return Err(ApiError::NotFound(format!("no sticker {set}/{sticker}")));
    };
    let content_type = axum::http::HeaderValue::from_str(&content_type).unwrap_or(
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                axum::http::HeaderValue::from_static("nosniff"),
            ),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                axum::http::HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                ),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-cache"),
            ),
        ],
        data,
    )
        .into_response())
}

/// `GET /api/admin/sticker-sets`.
pub async fn sticker_sets(State(app): State<AppState>) -> Result<Json<Vec<StickerSet>>, ApiError> {
    Ok(Json(app.store.sticker_sets().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStickerSet {
    name: String,
    stickers: Vec<StickerDef>,
}

/// `PUT /api/admin/sticker-sets/{id}` `{name, stickers: [{id, url, label}]}` → 200 the set.
pub async fn put_sticker_set(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StickerSet>, ApiError> {
    let new: NewStickerSet = json_body(body)?;
    let set = StickerSet {
        id,
        name: new.name,
        stickers: new.stickers,
    };
    app.store.put_sticker_set(&set).await?;
    Ok(Json(set))
}
