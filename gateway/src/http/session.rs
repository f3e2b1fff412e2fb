//! What WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) resources share: creating a session
//! from an offer (the SFU call, the state actor's registration, the 201 with `Location`,
//! strong `ETag`, ICE `Link` headers and the SDP answer), trickle ICE and ICE restart
//! (`PATCH`), ending a session (`DELETE`), `If-Match`, `OPTIONS` and CORS.
//!
//! WHIP publishers ([`super::whip`]), WHEP viewers ([`super::whep`]) and admin previews
//! ([`super::admin::preview`]) differ only in the [`SessionKind`] they ask for.

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use venue_sfu::{Offer, PatchOutcome, SessionAnswer, SessionId, SubscribeTarget};

use super::AppState;
use super::error::{ApiError, TextError};
use super::extract::{body_text, require_content_type};
use crate::ids::RoomId;
use crate::rooms::{SessionInfo, SessionKind};

/// `application/sdp` (RFC 9725 §4.2).
pub const SDP: &str = "application/sdp";
/// `application/trickle-ice-sdpfrag` (RFC 8840).
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// Headers a browser may read from WHIP/WHEP responses.
pub const EXPOSE_HEADERS: &str = "Location, ETag, Link, Accept-Post";
/// Methods allowed cross-origin on WHIP/WHEP resources.
pub const ALLOW_METHODS: &str = "POST, PATCH, DELETE, OPTIONS";
/// Request headers allowed cross-origin on WHIP/WHEP resources.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match";

/// Creates a session of `kind` in `room` from `offer`: the SFU answers (publisher: ingest;
/// viewer: the room's stage; preview: one streamer), the state actor registers the session,
/// and the 201 ([`created`]) carries `Location: {resource}/{session}`. Returns the new
/// session's id with the response. Errors: the SFU's (400 bad offer, 503 overloaded) and a
/// stopped state actor (500).
pub(crate) async fn create(
    app: &AppState,
    room: RoomId,
    kind: SessionKind,
    offer: Offer,
    resource: &str,
) -> Result<(SessionId, Response), TextError> {
    let answer = match kind {
        SessionKind::Publisher { participant, .. } => {
            app.sfu.publish(room.into(), participant, offer).await?
        }
        SessionKind::Viewer => {
            app.sfu
                .subscribe(room.into(), SubscribeTarget::Stage, offer)
                .await?
        }
        SessionKind::Preview(_) => {
            app.sfu
                .subscribe(room.into(), SubscribeTarget::Participant(None), offer)
                .await?
        }
        SessionKind::Relay => {
            app.sfu
                .subscribe(room.into(), SubscribeTarget::Relay, offer)
                .await?
        }
    };
    let tag = etag(&answer);
    app.state
        .session_created(
            answer.session,
            SessionInfo {
                room,
                kind,
                etag: tag.clone(),
            },
        )
        .await?;
    let response = created(
        format!("{resource}/{}", answer.session),
        &tag,
        answer.answer_sdp,
        &app.ice,
        answer.session,
    )?;
    Ok((answer.session, response))
}

/// The strong ETag of a session (RFC 9110 §8.8.3): its ICE ufrag, or its id.
pub fn etag(answer: &SessionAnswer) -> String {
    let ufrag = &answer.ice_ufrag;
    let usable = !ufrag.is_empty() && ufrag.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    if usable {
        format!("\"{ufrag}\"")
    } else {
        format!("\"{}\"", answer.session)
    }
}

/// 412 unless `If-Match` is absent, `*`, or lists `etag` (strong comparison, RFC 9110 §13.1.1).
pub fn check_if_match(headers: &HeaderMap, etag: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value.to_str().map_err(|_| ApiError::PreconditionFailed)?;
    if value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
    {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

/// The 201 of an accepted offer: `Location`, strong `ETag`, `application/sdp` answer, and one
/// `Link: <turn:…>; rel="ice-server"` per TURN URI with credentials for `session` (RFC 9725
/// §4.6) when a TURN server is configured.
pub fn created(
    location: String,
    etag: &str,
    answer_sdp: String,
    ice: &crate::ice::IceServers,
    session: SessionId,
) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&location)
        .map_err(|e| ApiError::Internal(format!("location: {e}")))?;
    let etag = HeaderValue::from_str(etag).map_err(|e| ApiError::Internal(format!("etag: {e}")))?;
    let mut res = (
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::ETAG, etag),
            (header::CONTENT_TYPE, HeaderValue::from_static(SDP)),
        ],
        answer_sdp,
    )
        .into_response();
    super::ice::add_link_headers(
        ice,
        res.headers_mut(),
        &session.to_string(),
        std::time::SystemTime::now(),
    );
    Ok(res)
}

/// `PATCH` of a WHIP or WHEP session (RFC 9725 §4.3.1): If-Match, content type, fragment,
/// SFU; trickle ICE → 204, ICE restart → 422.
pub(crate) async fn patch(
    app: &AppState,
    id: SessionId,
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

/// `DELETE` of a WHIP or WHEP session: ends it → 200; 404 when the SFU no longer has it.
pub(crate) async fn delete(app: &AppState, id: SessionId) -> Result<StatusCode, TextError> {
    let result = app.sfu.close(id).await;
    if matches!(result, Ok(()) | Err(venue_sfu::SfuError::UnknownSession)) {
        app.state.session_closed(id).await?;
    }
    result?;
    tracing::info!(session = %id, "session deleted");
    Ok(StatusCode::OK)
}

/// `OPTIONS` on a WHIP/WHEP endpoint: 204 + `Accept-Post: application/sdp` (CORS added by
/// [`cors`]).
pub async fn options_endpoint() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::HeaderName::from_static("accept-post"), SDP)],
    )
        .into_response()
}

/// `OPTIONS` on a WHIP/WHEP session resource: 204 (CORS added by [`cors`]).
pub async fn options_resource() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// CORS for WHIP/WHEP: any origin; preflights are answered by the `OPTIONS` handlers.
pub async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_is_strong() {
        let mut h = HeaderMap::new();
        assert!(check_if_match(&h, "\"a\"").is_ok());
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"a\""));
        assert!(check_if_match(&h, "\"a\"").is_ok());
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"b\", \"a\""));
        assert!(check_if_match(&h, "\"a\"").is_ok());
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert!(check_if_match(&h, "\"a\"").is_ok());
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"a\""));
        assert!(check_if_match(&h, "\"a\"").is_err());
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"b\""));
        assert!(check_if_match(&h, "\"a\"").is_err());
    }
}
