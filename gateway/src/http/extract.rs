//! What handlers read from a request: bearer tokens (RFC 6750 §2.1), the admin check, JSON
//! and SDP bodies (64 KiB limit, [`MAX_SDP_BYTES`]), content types, session ids of resource
//! URLs, this server's base URL and the client's IP behind trusted proxies.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use venue_sfu::{Offer, SessionId};

use super::AppState;
use super::error::ApiError;

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

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// SHA-256 of the admin token, what [`AppState`] keeps.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Middleware: 401 unless the bearer token is the admin token.
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let ok = bearer(req.headers())
        .is_some_and(|t| bool::from(token_digest(t).ct_eq(&app.settings.admin_token_digest)));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized("missing or wrong admin token").into_response()
    }
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
/// when it is empty, not SDP (RFC 8866 §5), has no `m=` line, or the SDP parser refuses it).
pub fn sdp_offer(body: Result<Bytes, BytesRejection>) -> Result<Offer, ApiError> {
    let text = body_text(body, "SDP offer")?;
    Offer::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Parses the session segment of a resource URL; 404 when it is not one.
pub fn session_id(s: &str) -> Result<SessionId, ApiError> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound("no such session".into()));
    }
    s.parse()
        .map_err(|_| ApiError::NotFound("no such session".into()))
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

/// The client's IP: `peer`, unless `peer` is a trusted proxy, in which case the rightmost
/// address of `X-Forwarded-For` (all such headers, in order) that is not a trusted proxy;
/// `peer` again when the header is missing or malformed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
#[path = "../tests/extract.rs"]
mod tests;
