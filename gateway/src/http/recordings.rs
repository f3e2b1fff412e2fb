//! Recordings of artists' sets over HTTP ([`crate::media::recording`]).
//!
//! Admin (behind the admin bearer token):
//! - `GET /api/admin/rooms/{room}/recordings` → 200 `[{id, artist, streamer_id, booking_id,
//!   start, end, duration_s, bytes, recording, file, download_url, signed_url}]`, newest first:
//!   `start`/`end` RFC 3339 UTC (`end` `null` while recording), `duration_s` seconds of media
//!   in the file and `bytes` its size (both growing while `recording` is true),
//!   `download_url` the admin route below, `signed_url` the same file for a plain browser link
//!   (works for an hour). 404 no such room.
//! - `GET /api/admin/recordings/{id}` → the file: `video/mp4`, `Content-Disposition:
//!   attachment`, streamed from disk; a single `Range: bytes=…` is answered 206 with
//!   `Content-Range` (416 when unsatisfiable). A recording in progress is served as far as it
//!   is written. 404 no such recording.
//! - `DELETE /api/admin/recordings/{id}` → 204 (file and row gone); 404 unknown; 409 while it
//!   is being recorded.
//!
//! Public: `GET /api/recordings/{id}/file?expires=<unix s>&sig=<hex>` → the file as above when
//! `sig` is the HMAC-SHA256 (keyed with the admin token's digest) of `"{id}.{expires}"` and
//! `expires` is not past; 403 otherwise.
//!
//! Cluster mode (issue 11 item 8): the list comes from the shared store on any node; a
//! download (either route) or a delete of a recording whose file another node holds is
//! forwarded to that node's `/internal/recordings/{id}[/file]` (the `Range` header passed, the
//! answer's status, headers and body relayed as they come: same bytes). 502 when that node is
//! not live or unreachable, 504 when it does not answer in time.

use std::time::SystemTime;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::ids::RecordingId;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::AppState;
use super::error::ApiError;
use super::forward;
use crate::media::recording::RecordingJson;
use crate::store::StoreError;

/// Bytes read from disk per chunk of a download.
const CHUNK: usize = 64 * 1024;

/// `GET /api/admin/rooms/{room}/recordings`.
pub async fn list(
    State(app): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<Vec<RecordingJson>>, ApiError> {
    let room = app
        .store
        .room_by_name(&room)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {room:?}")))?;
    Ok(Json(app.recordings.list(room.id).await?))
}

/// `GET /api/admin/recordings/{id}`.
pub async fn download(
    State(app): State<AppState>,
    Path(id): Path<RecordingId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&app, id, &headers).await
}

/// `DELETE /api/admin/recordings/{id}`.
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<RecordingId>,
) -> Result<Response, ApiError> {
    if let Some(row) = app.recordings.get(id).await?
        && let Some(node) = app.recordings.elsewhere(&row)
    {
        let node = node.to_owned();
        return Ok(forward_to(
            &app,
            &node,
            Method::DELETE,
            &format!("/internal/recordings/{id}"),
            HeaderMap::new(),
            &format!("recording {id}"),
        )
        .await);
    }
    delete_here(&app, id).await.map(IntoResponse::into_response)
}

/// `DELETE /internal/recordings/{id}` (cluster mode, behind `require_node`): as the admin
/// route, for a file in this node's data dir.
pub async fn internal_delete(
    State(app): State<AppState>,
    Path(id): Path<RecordingId>,
) -> Result<StatusCode, ApiError> {
    delete_here(&app, id).await
}

async fn delete_here(app: &AppState, id: RecordingId) -> Result<StatusCode, ApiError> {
    match app.recordings.delete(id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::NotFound(format!("no recording {id}"))),
        Err(StoreError::Conflict(m)) => Err(ApiError::Conflict(m)),
        Err(e) => Err(e.into()),
    }
}

/// Query of a signed download URL.
#[derive(Debug, Deserialize)]
pub struct Signed {
    expires: i64,
    sig: String,
}

/// `GET /api/recordings/{id}/file?expires=&sig=`.
pub async fn signed_download(
    State(app): State<AppState>,
    Path(id): Path<RecordingId>,
    Query(q): Query<Signed>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !app
        .recordings
        .verify(id, q.expires, &q.sig, SystemTime::now())
    {
        return Ok((
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "this download link is wrong or has expired; reload the console"})),
        )
            .into_response());
    }
    serve(&app, id, &headers).await
}

/// A single byte range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `len`-byte file:
/// `Some(Ok((start, end_inclusive)))`, `Some(Err(()))` unsatisfiable, `None` no (usable) range
/// (multiple ranges, other units: the whole file, RFC 9110 §14.2 allows ignoring it).
pub fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

/// `GET /internal/recordings/{id}/file` (cluster mode, behind `require_node`): the file from
/// this node's data dir, as the admin route serves it (`Range` honoured), never forwarded.
pub async fn internal_file(
    State(app): State<AppState>,
    Path(id): Path<RecordingId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = app
        .recordings
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recording {id}")))?;
    serve_here(&app, &row, &headers).await
}

/// Forwards `method path` to node `node` (its internal URL from the registry) and relays the
/// answer; `what` names the thing for error messages.
async fn forward_to(
    app: &AppState,
    node: &str,
    method: Method,
    path: &str,
    headers: HeaderMap,
    what: &str,
) -> Response {
    let (Some(cluster), Some(client)) = (&app.cluster, &app.node_client) else {
        return forward::text(
            StatusCode::BAD_GATEWAY,
            format!("{what} is held by node {node}, and this node is not in a cluster"),
        );
    };
    let url = match cluster.nodes().await {
        Ok(view) => view
            .live
            .into_iter()
            .find(|n| n.node_id == node)
            .map(|n| format!("{}{path}", n.internal_url.trim_end_matches('/'))),
        Err(e) => {
            return forward::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cluster Redis: {e}"),
            );
        }
    };
    let Some(url) = url else {
        return forward::text(
            StatusCode::BAD_GATEWAY,
            format!("{what} is held by node {node}, which is not a live node of the cluster"),
        );
    };
    match client.send(node, method, &url, headers, None).await {
        Ok(answer) => forward::relay(answer),
        Err(e) => forward::failed(&e, what),
    }
}

async fn serve(app: &AppState, id: RecordingId, headers: &HeaderMap) -> Result<Response, ApiError> {
    let row = app
        .recordings
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recording {id}")))?;
    if let Some(node) = app.recordings.elsewhere(&row) {
        let mut pass = HeaderMap::new();
        if let Some(range) = headers.get(header::RANGE) {
            pass.insert(header::RANGE, range.clone());
        }
        return Ok(forward_to(
            app,
            node,
            Method::GET,
            &format!("/internal/recordings/{id}/file"),
            pass,
            &format!("recording {id}"),
        )
        .await);
    }
    serve_here(app, &row, headers).await
}

/// Streams `row`'s file from this node's data dir (see the module docs).
async fn serve_here(
    app: &AppState,
    row: &crate::store::recordings::Recording,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let id = row.id;
    let path = app.recordings.path(row);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!(
                "the file of recording {id} is gone"
            )));
        }
        Err(e) => return Err(ApiError::Internal(format!("opening {}: {e}", row.file))),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("stat {}: {e}", row.file)))?
        .len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(format!("seek {}: {e}", row.file)))?;
    }
    let reader = file.take(count);
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; CHUNK];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    // File names are [a-z0-9-] plus the extension: safe to quote as is.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", row.file)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(res)
}
