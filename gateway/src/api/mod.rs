//! HTTP API: WHIP (RFC 9725), WHEP (draft-ietf-wish-whep), admin and public room endpoints,
//! the schedule ([`schedule`]).
//!
//! Shared request helpers live here: bearer tokens, content types, the 64 KiB SDP body
//! limit, the pre-check of SDP offers, ETag / `If-Match`, CORS for the WHIP/WHEP resources,
//! and the URLs handed to streamers.

pub mod admin;
pub mod hls;
pub mod interaction;
pub mod recordings;
pub mod rooms;
pub mod schedule;
pub mod whep;
pub mod whip;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use venue_sfu::{Offer, SessionAnswer, SessionId};

use crate::error::ApiError;

/// Parses a JSON request body. Errors: 400 with the reason (unreadable body, invalid JSON,
/// unknown or missing fields).
pub(crate) fn json_body<T: for<'de> serde::Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body
        .map_err(|r| ApiError::BadRequest(format!("could not read the body: {}", r.body_text())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Largest SDP offer or trickle-ICE fragment accepted, bytes (413 above).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
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
/// `rtmp://<host>:<port>/live/<key>` (the RTMP URL a streamer puts in OBS) for base URL
/// `base` (its host) and `[rtmp]` (its listen port), or `None` when RTMP ingest is off.
pub fn rtmp_url(rtmp: &crate::config::RtmpConfig, base: &str, key: &str) -> Option<String> {
    rtmp.enabled.then(|| {
        format!(
            "rtmp://{}:{}/live/{key}",
            url_host(base),
            rtmp.listen.port()
        )
    })
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 415 unless the request's media type (parameters ignored) is `expected`.
pub fn require_content_type(headers: &HeaderMap, expected: &'static str) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(expected))
    }
}

/// The buffered body as UTF-8 text; 413 over [`MAX_SDP_BYTES`], 400 when not UTF-8.
pub fn body_text(body: Result<Bytes, BytesRejection>, what: &str) -> Result<String, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_SDP_BYTES)
        } else {
            ApiError::BadRequest(format!("could not read the {what}: {}", r.body_text()))
        }
    })?;
    if bytes.len() > MAX_SDP_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_SDP_BYTES));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest(format!("the {what} is not UTF-8")))
}

/// Reads an SDP offer and parses it, once, into a [`venue_sfu::Offer`] (400 with the reason
/// when it is empty, not SDP, has no `m=` line, or the SDP parser refuses it).
pub fn sdp_offer(body: Result<Bytes, BytesRejection>) -> Result<Offer, ApiError> {
    let text = body_text(body, "SDP offer")?;
    Offer::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))
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

/// Parses the session segment of a resource URL; 404 when it is not one.
pub fn session_id(s: &str) -> Result<SessionId, ApiError> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound("no such session".into()));
    }
    s.parse()
        .map_err(|_| ApiError::NotFound("no such session".into()))
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
    ice.add_link_headers(
        res.headers_mut(),
        &session.to_string(),
        std::time::SystemTime::now(),
    );
    Ok(res)
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

/// Base URL of this server as clients reach it: `public_url`, else `http://` + `Host`.
pub fn base_url(public_url: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = public_url {
        return url.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost:8080");
    format!("http://{host}")
}

/// The host of a base URL, without scheme, port or path (`[v6]` kept in brackets).
pub fn url_host(base: &str) -> &str {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|i| authority.get(..=i))
            .unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

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

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://venue.example.org"), "venue.example.org");
        assert_eq!(url_host("http://localhost:8080/x"), "localhost");
        assert_eq!(url_host("http://[::1]:8080"), "[::1]");
        assert_eq!(url_host("http://u@h:1"), "h");
    }

    #[test]
    fn session_ids_must_be_16_hex_digits() {
        assert!(session_id("00000000000000ff").is_ok());
        assert!(session_id("ff").is_err());
        assert!(session_id("+000000000000000").is_err());
        assert!(session_id("zzzzzzzzzzzzzzzz").is_err());
        assert!(session_id("ééééééééé").is_err());
    }
}
