//! `GET /api/ice-servers` and the ICE `Link` headers of WHIP/WHEP answers (RFC 9725 §4.6):
//! the HTTP side of [`crate::ice::IceServers`].

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::ice::{IceServers, IceServersAnswer, random_id};

/// `GET /api/ice-servers` → 200 [`IceServersAnswer`], `Cache-Control: no-store` (fresh
/// credentials, a new id each time). Public: the credentials only reach Venue's own media
/// addresses (the TURN server's peer policy) and expire.
pub async fn get(State(app): State<AppState>) -> Response {
    let answer = IceServersAnswer {
        ice_servers: app.ice.issue(&random_id(), SystemTime::now()),
        ttl_s: app.ice.ttl_s(),
    };
    let mut res = Json(answer).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Appends one `Link` header per URI for credential id `id` (RFC 9725 §4.6). Values that
/// cannot be header values (a URI with control characters from the config) are skipped.
pub fn add_link_headers(ice: &IceServers, headers: &mut HeaderMap, id: &str, now: SystemTime) {
    for value in ice.link_values(id, now) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::LINK, v);
        }
    }
}
