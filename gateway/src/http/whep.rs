//! WHEP (draft-ietf-wish-whep): `POST /api/whep/{room}` creates a viewer session of the room's
//! stage (the i-th video and i-th audio m-line carry stage slot i); `PATCH`/`DELETE
//! /api/whep/{room}/{session}` trickle and end it. No authentication. Same error rules as WHIP.
//!
//! Admission: a new viewer is refused with 503 + `Retry-After` and a JSON body pointing at
//! the HLS program when the room is at `hls.max_webrtc_viewers` or the server is overloaded
//! ([`crate::overflow`]); admin previews (`/api/admin/.../whep`) are not subject to it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use venue_sfu::SessionId;

use super::AppState;
use super::error::{ApiError, TextError};
use super::extract::{require_content_type, sdp_offer, session_id};
use super::rooms::JoinAnswer;
use super::session::{self, SDP};
use crate::overflow::{self, JoinMode};
use crate::rooms::{SessionInfo, SessionKind};

/// `POST /api/whep/{room}`: 201 + `Location: /api/whep/{room}/{session}` + `ETag` + answer;
/// 503 + `Retry-After` + `application/json` [`JoinAnswer`] (`mode: "hls"`, the reason, the
/// HLS URL; `error` holds the reason too) when the room is full or the server overloaded.
pub async fn post(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, TextError> {
    let room = app
        .store
        .room_by_name(&room)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such room".into()))?;
    require_content_type(&headers, SDP)?;
    let offer = sdp_offer(body)?;
    let (decision, node) = super::rooms::place(&app, room.id).await?;
    if let Some(node) = node {
        // Cluster mode, this node full: the chosen node takes the offer (RFC 9110 §15.4.8).
        let base = node.public_url.as_deref().unwrap_or(&node.internal_url);
        // Room names are a-z, 0-9 and '-' (store::valid_room_name): no encoding needed.
        let target = format!("{base}/api/whep/{}", room.name);
        tracing::info!(room = %room.name, node = %node.node_id, "WHEP viewer redirected to another node");
        let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    if decision.mode == JoinMode::Hls {
        tracing::info!(room = %room.name, reason = %decision.reason, "WHEP viewer refused: overflow to HLS");
        app.overflow.note_refused();
        return Ok(refused(JoinAnswer::new(&room.name, decision)));
    }
    let resource = format!("/api/whep/{}", room.name);
    let (session, response) =
        session::create(&app, room.id, SessionKind::Viewer, offer, &resource).await?;
    tracing::info!(room = %room.name, %session, "WHEP viewer session created");
    Ok(response)
}

/// 503 of a refused viewer: `Retry-After` ([`overflow::RETRY_AFTER_S`]) and the join answer with
/// an `error` field (the reason) like every JSON error of the API.
fn refused(answer: JoinAnswer) -> Response {
    let mut body = serde_json::to_value(&answer).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("error".into(), answer.reason.clone().into());
    }
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::RETRY_AFTER,
        HeaderValue::from(overflow::RETRY_AFTER_S),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A viewer or preview session of room `room`; 404 otherwise.
async fn viewer_session(
    app: &AppState,
    room: &str,
    session: &str,
) -> Result<(SessionId, SessionInfo), ApiError> {
    let id = session_id(session)?;
    let room = app
        .store
        .room_by_name(room)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such room".into()))?;
    match app.state.session(id).await? {
        Some(info)
            if info.room == room.id
                && matches!(info.kind, SessionKind::Viewer | SessionKind::Preview(_)) =>
        {
            Ok((id, info))
        }
        _ => Err(ApiError::NotFound("no such WHEP session".into())),
    }
}

/// `PATCH /api/whep/{room}/{session}`: trickle ICE → 204; ICE restart → 422.
pub async fn patch(
    State(app): State<AppState>,
    Path((room, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, TextError> {
    let (id, info) = viewer_session(&app, &room, &session).await?;
    session::patch(&app, id, &info, &headers, body).await
}

/// `DELETE /api/whep/{room}/{session}`: 200.
pub async fn delete(
    State(app): State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Result<StatusCode, TextError> {
    let (id, _) = viewer_session(&app, &room, &session).await?;
    session::delete(&app, id).await
}
