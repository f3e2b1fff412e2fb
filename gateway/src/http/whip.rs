//! WHIP (RFC 9725): `POST /api/whip` creates a publisher session for the streamer whose stream
//! key is the bearer token; `PATCH`/`DELETE /api/whip/{session}` trickle and end it.
//!
//! Errors are `text/plain`: 401 (+ `WWW-Authenticate: Bearer`) missing or unknown key, or a
//! slot-bound key outside its booked window with the reason ("this key opens at
//! 2026-11-21T20:55:00Z"; see [`crate::schedule`]), 415
//! wrong content type, 413 body over 64 KiB, 400 malformed SDP, 404 unknown session, 412
//! `If-Match` mismatch, 422 ICE restart, 503 media plane unavailable.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use venue_sfu::SessionId;

use super::AppState;
use super::error::{ApiError, TextError};
use super::extract::{bearer, require_content_type, sdp_offer, session_id};
use super::session::{self, SDP};
use crate::rooms::{SessionInfo, SessionKind, new_participant};
use crate::webhooks::Protocol;

/// `POST /api/whip` (RFC 9725 §4.2): 201 + `Location` + `ETag` + SDP answer.
pub async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, TextError> {
    let key = bearer(&headers).ok_or(ApiError::Unauthorized(
        "missing Authorization: Bearer <stream key>",
    ))?;
    let streamer = app.schedule.authorize(&app.store, key).await?;
    require_content_type(&headers, SDP)?;
    let offer = sdp_offer(body)?;
    let kind = SessionKind::Publisher {
        streamer: streamer.id,
        participant: new_participant(),
        protocol: Protocol::Whip,
    };
    let (session, response) =
        session::create(&app, streamer.room_id, kind, offer, "/api/whip").await?;
    tracing::info!(room = streamer.room_id.0, streamer = streamer.id.0, %session, "WHIP publisher session created");
    // A window may have closed while the SFU answered: the timer re-checks.
    app.schedule.changed();
    Ok(response)
}

async fn publisher_session(
    app: &AppState,
    session: &str,
) -> Result<(SessionId, SessionInfo), ApiError> {
    let id = session_id(session)?;
    match app.state.session(id).await? {
        Some(info) if matches!(info.kind, SessionKind::Publisher { .. }) => Ok((id, info)),
        _ => Err(ApiError::NotFound("no such WHIP session".into())),
    }
}

/// `PATCH /api/whip/{session}` (RFC 9725 §4.3.1): trickle ICE → 204; ICE restart → 422.
pub async fn patch(
    State(app): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, TextError> {
    let (id, info) = publisher_session(&app, &session).await?;
    session::patch(&app, id, &info, &headers, body).await
}

/// `DELETE /api/whip/{session}` (RFC 9725 §4.2): 200.
pub async fn delete(
    State(app): State<AppState>,
    Path(session): Path<String>,
) -> Result<StatusCode, TextError> {
    let (id, _) = publisher_session(&app, &session).await?;
    session::delete(&app, id).await
}
