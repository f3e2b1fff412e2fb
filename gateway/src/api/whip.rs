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
use venue_sfu::{PatchOutcome, RoomId};

use super::{
    SDP, SDPFRAG, bearer, body_text, check_if_match, created, etag, require_content_type,
    sdp_offer, session_id,
};
use crate::AppState;
use crate::error::{ApiError, TextError};
use crate::state::{Protocol, SessionInfo, SessionKind, participant};

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
    let room = RoomId(streamer.room_id as u64);
    let p = participant(streamer.id);
    let answer = app.sfu.publish(room, p, offer).await?;
    let tag = etag(&answer);
    tracing::info!(room = streamer.room_id, streamer = streamer.id, session = %answer.session, "WHIP publisher session created");
    app.state
        .session_created(
            answer.session,
            SessionInfo {
                room,
                kind: SessionKind::Publisher(p, Protocol::Whip),
                etag: tag.clone(),
            },
        )
        .await?;
    // A window may have closed while the SFU answered: the timer re-checks.
    app.schedule.changed();
    Ok(created(
        format!("/api/whip/{}", answer.session),
        &tag,
        answer.answer_sdp,
        &app.ice,
        answer.session,
    )?)
}

async fn publisher_session(
    app: &AppState,
    session: &str,
) -> Result<(venue_sfu::SessionId, SessionInfo), ApiError> {
    let id = session_id(session)?;
    match app.state.session(id).await? {
        Some(info) if matches!(info.kind, SessionKind::Publisher(..)) => Ok((id, info)),
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
    patch_session(&app, id, &info, &headers, body).await
}

/// Shared by WHIP and WHEP: If-Match, content type, fragment, SFU.
pub(crate) async fn patch_session(
    app: &AppState,
    id: venue_sfu::SessionId,
    info: &SessionInfo,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, TextError> {
    check_if_match(headers, &info.etag)?;
    require_content_type(headers, SDPFRAG)?;
    let fragment = body_text(body, "SDP fragment")?;
    match app.sfu.patch(id, &fragment).await? {
        PatchOutcome::Trickled => Ok(StatusCode::NO_CONTENT),
    }
}

/// Shared by WHIP and WHEP: ends the session → 200; 404 when the SFU no longer has it.
pub(crate) async fn delete_session(
    app: &AppState,
    id: venue_sfu::SessionId,
) -> Result<StatusCode, TextError> {
    let result = app.sfu.close(id).await;
    if matches!(result, Ok(()) | Err(venue_sfu::SfuError::UnknownSession)) {
        app.state.session_closed(id).await?;
    }
    result?;
    tracing::info!(session = %id, "session deleted");
    Ok(StatusCode::OK)
}

/// `DELETE /api/whip/{session}` (RFC 9725 §4.2): 200.
pub async fn delete(
    State(app): State<AppState>,
    Path(session): Path<String>,
) -> Result<StatusCode, TextError> {
    let (id, _) = publisher_session(&app, &session).await?;
    delete_session(&app, id).await
}
