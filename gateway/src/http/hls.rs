//! LL-HLS over HTTP: the routes that serve the running programs ([`HlsPrograms`]) from
//! memory (draft-pantos-hls-rfc8216bis-17, "8216bis"; the packager is
//! [`venue_sfu::egress::hls`]).
//!
//! - `GET /hls/{room}/index.m3u8[?_HLS_msn=M[&_HLS_part=P]][&_HLS_skip=YES|v2]` — the media
//!   playlist (`application/vnd.apple.mpegurl`). With `_HLS_msn` the request is a blocking
//!   reload (§6.2.5.2): held until segment M (part P) is published, then answered at once;
//!   400 when it is too far ahead (`_HLS_msn` more than two segments past the last, a part past
//!   the Advance Part Limit, `_HLS_part` alone, malformed numbers); 503 + `Retry-After` when
//!   it does not come within the blocking timeout (3 × target duration by default, §6.2.5.2
//!   "three times the Target Duration"). A plain request is held the same way until the first
//!   part exists. Each playlist request of an existing room is recorded
//!   ([`HlsPrograms::last_watched`]); when the room has no program yet the request waits up to
//!   the blocking timeout for one to start, then 404.
//! - `GET /hls/{room}/init-{run}.mp4` (`video/mp4`), `seg{msn}.m4s` and `part{msn}.{part}.m4s`
//!   (`video/iso.segment`) — from memory. A part not yet published but within the Advance Part
//!   Limit (the preload hint, §4.4.5.3 / §6.2.6) is held until it is; otherwise, or on timeout,
//!   404.
//! - Caching (Apple "Enabling Low-Latency HLS", CDN section): blocking playlist responses
//!   `public, max-age=1` (their URL names the part; a CDN collapses identical requests),
//!   plain playlists `no-cache`, init/segments/parts `public, max-age=31536000, immutable`
//!   (their URLs are never reused: media sequence numbers grow with the wall clock across
//!   program restarts, see [`HlsPrograms::start`]), errors `no-store`.
//! - CORS: `Access-Control-Allow-Origin: *` on every answer; `OPTIONS` answers the preflight.
//! - Cluster mode (issue 11 item 8): a room is composed on its program node only
//!   ([`crate::media::program_node`]); the other nodes forward `GET`/`HEAD` of its playlist
//!   and media to that node's [`INTERNAL_PREFIX`] routes, query included, and relay the
//!   answer (status, body, `Content-Type`, `Cache-Control`, `Retry-After`): the same URL
//!   answers the same on every node. 502/504/503 when the program node is unreachable, slow,
//!   or not known yet (`forward_to_program_node`).
//! - 404 for unknown rooms, rooms without a running program, and media outside the window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use venue_sfu::egress::hls::{PlaylistAnswer, PlaylistQuery};

use super::error::ApiError;
use super::forward;
use crate::cluster::proxy::NodeClient;
use crate::media::hls_programs::HlsPrograms;
use crate::media::program_node::{LocateError, ProgramNode, ProgramNodes};
use crate::rooms::StateHandle;

/// `Content-Type` of playlists (8216bis §4).
pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of the init segment.
pub const INIT_TYPE: &str = "video/mp4";
/// `Content-Type` of media segments and parts (ISO BMFF media segment, RFC 6381 registry).
pub const SEGMENT_TYPE: &str = "video/iso.segment";
/// `Cache-Control` of init segments, segments and parts: their URLs are never reused.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of blocking playlist responses (the query names the part).
pub const CACHE_BLOCKING: &str = "public, max-age=1";
/// `Cache-Control` of the plain playlist (always the live edge).
pub const CACHE_PLAIN: &str = "no-cache";
/// `Cache-Control` of errors (a 404 for a part that comes later must not stick in a cache).
pub const CACHE_ERROR: &str = "no-store";

/// What a playlist request needs: the programs, and the room state to tell an unknown room
/// (404 at once) from a room whose program has not started yet.
#[derive(Debug)]
pub struct PlaylistDeps {
    pub hls: HlsPrograms,
    pub rooms: StateHandle,
}

/// The `/hls` routes, with CORS on every answer, mergeable into a router of any state. Their
/// handlers get only what they use as state — media the [`HlsPrograms`] (one `Arc`),
/// playlists an `Arc<PlaylistDeps>` — because axum clones a router's state for every request,
/// and cloning the whole `AppState` (a dozen `Arc`s and channel senders) was a visible share
/// of the server's CPU under load (BENCHMARKS.md, "LL-HLS serving").
///
/// `forwarding` (cluster mode): requests for a room composed on another node are forwarded
/// to it ([`Forwarding`]); `None` (single-node mode): every room is served from here.
pub fn routes<S>(hls: HlsPrograms, rooms: StateHandle, forwarding: Option<Forwarding>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let local = local_routes("/hls", hls, rooms);
    let routes = match forwarding {
        Some(f) => local.layer(middleware::from_fn_with_state(
            Arc::new(f),
            forward_to_program_node,
        )),
        None => local,
    };
    routes.layer(middleware::from_fn(cors))
}

/// `{prefix}/{room}/index.m3u8` and `{prefix}/{room}/{file}` served from this node's
/// programs (no CORS, no forwarding).
fn local_routes<S>(prefix: &str, hls: HlsPrograms, rooms: StateHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let playlists = Router::new()
        .route(
            &format!("{prefix}/{{room}}/index.m3u8"),
            get(playlist).options(preflight),
        )
        .with_state(Arc::new(PlaylistDeps {
            hls: hls.clone(),
            rooms,
        }));
    let media_files = Router::new()
        .route(
            &format!("{prefix}/{{room}}/{{file}}"),
            get(media).options(preflight),
        )
        .with_state(hls);
    playlists.merge(media_files)
}

// ---- Cluster mode: the program node serves, the others forward (issue 11 item 8) ----

/// The prefix of the program node's own routes: `GET /internal/hls/{room}/...` answers
/// exactly as `GET /hls/{room}/...` does on that node (same bodies, `Content-Type`,
/// `Cache-Control`, `Retry-After`, blocking reloads), never forwarded again; behind
/// `require_node` ([`crate::http::internal`]).
pub const INTERNAL_PREFIX: &str = "/internal/hls";

/// The internal routes (see [`INTERNAL_PREFIX`]).
pub fn internal_routes<S>(hls: HlsPrograms, rooms: StateHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    local_routes(INTERNAL_PREFIX, hls, rooms)
}

/// What the forwarding layer of `/hls` uses (cluster mode).
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Who composes each room ([`ProgramNodes::locate`]).
    pub program: ProgramNodes,
    /// Signed calls to the other nodes.
    pub client: NodeClient,
    /// This node's programs (their blocking timeout bounds a forwarded request).
    pub hls: HlsPrograms,
    /// The rooms (an unknown room is answered here: 404).
    pub rooms: StateHandle,
}

impl Forwarding {
    /// The longest a forwarded request may take: a program node may first wait for the
    /// program to start, then hold a blocking reload, each up to the blocking timeout; plus
    /// 5 s of slack for the network.
    fn timeout(&self) -> Duration {
        self.hls.block_timeout(None) * 2 + Duration::from_secs(5)
    }
}

/// Middleware on `/hls` (cluster mode): a `GET`/`HEAD` of a room whose program node is
/// another node is forwarded to `{its internal_url}/internal/hls/{room}/{file}?{query}` (the
/// query passed through: `_HLS_msn`, `_HLS_part`, `_HLS_skip`), and its answer relayed
/// ([`forward::relay`]: status, `Content-Type`, `Cache-Control`… and the body streamed), so
/// that a CDN in front of any node sees the same answers. Errors: 503 + `Retry-After: 1`
/// while no node holds the room's program (a takeover) or Redis fails, 502 when the program
/// node is not live or unreachable, 504 when it does not answer within the blocking timeouts;
/// a room without a program node that does not exist is answered here (404).
async fn forward_to_program_node(
    State(f): State<Arc<Forwarding>>,
    req: Request,
    next: Next,
) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    // `/hls/{room}/{file}`: the room as it is in the path (room names need no escaping).
    let Some((room, _file)) = req
        .uri()
        .path()
        .strip_prefix("/hls/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return next.run(req).await;
    };
    let room = room.to_owned();
    match f.program.locate(&room).await {
        Ok(ProgramNode::Local) => next.run(req).await,
        Ok(ProgramNode::Remote {
            node_id,
            internal_url,
        }) => {
            let path_and_query = req
                .uri()
                .path_and_query()
                .map_or(req.uri().path(), |p| p.as_str());
            let url = format!("{internal_url}/internal{path_and_query}");
            let what = format!("the program of room {room:?} (composed on node {node_id})");
            match f
                .client
                .send(
                    &node_id,
                    req.method().clone(),
                    &url,
                    axum::http::HeaderMap::new(),
                    Some(f.timeout()),
                )
                .await
            {
                Ok(answer) => forward::relay(answer),
                Err(e) => {
                    f.program.forget(&room);
                    forward::failed(&e, &what)
                }
            }
        }
        Err(e @ LocateError::NoHolder(_)) => match f.rooms.view(&room).await {
            Ok(Some(_)) => forward::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            // Unknown room (404), or the state actor's error: the local handler says it.
            _ => next.run(req).await,
        },
        Err(e @ LocateError::NotLive { .. }) => {
            f.program.forget(&room);
            forward::text(StatusCode::BAD_GATEWAY, e.to_string())
        }
        Err(e) => forward::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn cors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// `OPTIONS`: the CORS preflight.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "Range, Cache-Control"),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE_ERROR),
        ],
        format!("{}\n", message.into()),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Parses the delivery directives (8216bis §6.2.5). Errors: a malformed number.
fn parse_query(raw: Option<&str>) -> Result<PlaylistQuery, String> {
    let mut query = PlaylistQuery::default();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => {
                query.msn =
                    Some(value.parse().map_err(|_| {
                        format!("_HLS_msn must be a decimal integer, got {value:?}")
                    })?);
            }
            "_HLS_part" => {
                query.part =
                    Some(value.parse().map_err(|_| {
                        format!("_HLS_part must be a decimal integer, got {value:?}")
                    })?);
            }
            "_HLS_skip" => query.skip = value == "YES" || value == "v2",
            _ => {}
        }
    }
    Ok(query)
}

/// `GET /hls/{room}/index.m3u8` — see the module docs.
pub async fn playlist(
    State(deps): State<Arc<PlaylistDeps>>,
    Path(room): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match parse_query(raw.as_deref()) {
        Ok(q) => q,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let hls = &deps.hls;
    let program = match hls.get(&room) {
        Some(p) => p,
        None => {
            match deps.rooms.view(&room).await {
                Ok(Some(_)) => {}
                Ok(None) => return error(StatusCode::NOT_FOUND, format!("no room {room:?}")),
                Err(e) => {
                    let e = ApiError::from(e);
                    return error(e.status(), e.public_message());
                }
            }
            hls.watched(&room, Instant::now());
            match hls.wait_program(&room).await {
                Some(p) => p,
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no program is running in room {room:?}"),
                    );
                }
            }
        }
    };
    hls.watched(&room, Instant::now());
    let deadline = tokio::time::Instant::now() + hls.block_timeout(Some(&program));
    let mut changes = program.subscribe();
    loop {
        changes.mark_unchanged();
        match program.with(|p| p.playlist(query)) {
            PlaylistAnswer::Ready(text) => {
                let cache = if query.msn.is_some() {
                    CACHE_BLOCKING
                } else {
                    CACHE_PLAIN
                };
                return (
                    [
                        (header::CONTENT_TYPE, PLAYLIST_TYPE),
                        (header::CACHE_CONTROL, cache),
                    ],
                    text,
                )
                    .into_response();
            }
            PlaylistAnswer::BadRequest(reason) => return error(StatusCode::BAD_REQUEST, reason),
            PlaylistAnswer::NotYet => {}
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the program is gone (its sender dropped).
            _ => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested segment or part was not published in time",
                );
            }
        }
    }
}

/// What a media file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaFile {
    Init(u64),
    Segment(u64),
    Part(u64, u32),
}

fn parse_file(name: &str) -> Option<MediaFile> {
    if let Some(run) = name
        .strip_prefix("init-")
        .and_then(|s| s.strip_suffix(".mp4"))
    {
        return run.parse().ok().map(MediaFile::Init);
    }
    if let Some(msn) = name
        .strip_prefix("seg")
        .and_then(|s| s.strip_suffix(".m4s"))
    {
        return msn.parse().ok().map(MediaFile::Segment);
    }
    let rest = name.strip_prefix("part")?.strip_suffix(".m4s")?;
    let (msn, part) = rest.split_once('.')?;
    Some(MediaFile::Part(msn.parse().ok()?, part.parse().ok()?))
}

/// The answer for media bytes. The hot path of a mirror's misses and of direct viewers: the
/// body is the packager's shared `Bytes` (no copy) and the header values are static (no
/// allocation; `(HeaderName, &str)` pairs would copy and re-validate each value).
fn media_response(content_type: &'static str, data: Bytes) -> Response {
    let mut response = Response::new(Body::from(data));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_IMMUTABLE),
    );
    response
}

/// `GET /hls/{room}/{file}`: init segment, segment or part — see the module docs. Takes the
/// registry alone as state (one `Arc` clone per request rather than the whole `AppState`).
pub async fn media(
    State(hls): State<HlsPrograms>,
    Path((room, file)): Path<(String, String)>,
) -> Response {
    let Some(program) = hls.get(&room) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no program is running in room {room:?}"),
        );
    };
    let not_found = || error(StatusCode::NOT_FOUND, format!("no {file} in room {room:?}"));
    match parse_file(&file) {
        None => not_found(),
        Some(MediaFile::Init(run)) => {
            match program.with(|p| (p.config().first_msn == run).then(|| p.init()).flatten()) {
                Some(data) => media_response(INIT_TYPE, data),
                None => not_found(),
            }
        }
        Some(MediaFile::Segment(msn)) => match program.with(|p| p.segment(msn)) {
            Some(data) => media_response(SEGMENT_TYPE, data),
            None => not_found(),
        },
        Some(MediaFile::Part(msn, part)) => {
            // Fast path: a published part is answered under one packager lock, without
            // subscribing to the generation or reading the blocking timeout.
            match program.with(|p| p.part(msn, part).ok_or_else(|| p.part_is_coming(msn, part))) {
                Ok(data) => return media_response(SEGMENT_TYPE, data),
                Err(false) => return not_found(),
                Err(true) => {}
            }
            let deadline = tokio::time::Instant::now() + hls.block_timeout(Some(&program));
            let mut changes = program.subscribe();
            loop {
                changes.mark_unchanged();
                let (data, coming) =
                    program.with(|p| (p.part(msn, part), p.part_is_coming(msn, part)));
                if let Some(data) = data {
                    return media_response(SEGMENT_TYPE, data);
                }
                if !coming {
                    return not_found();
                }
                match tokio::time::timeout_at(deadline, changes.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return not_found(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file("init-12.mp4"), Some(MediaFile::Init(12)));
        assert_eq!(parse_file("seg7.m4s"), Some(MediaFile::Segment(7)));
        assert_eq!(parse_file("part7.3.m4s"), Some(MediaFile::Part(7, 3)));
        for bad in [
            "init.mp4",
            "seg.m4s",
            "seg-1.m4s",
            "part7.m4s",
            "part7.x.m4s",
            "part99999999999999999999.0.m4s",
            "index.m3u8",
            "seg7.mp4",
        ] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn delivery_directives() {
        assert_eq!(parse_query(None), Ok(PlaylistQuery::default()));
        assert_eq!(
            parse_query(Some("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&x=1")),
            Ok(PlaylistQuery {
                msn: Some(5),
                part: Some(2),
                skip: true
            })
        );
        assert_eq!(parse_query(Some("_HLS_skip=v2")).map(|q| q.skip), Ok(true));
        assert_eq!(parse_query(Some("_HLS_skip=NO")).map(|q| q.skip), Ok(false));
        assert!(parse_query(Some("_HLS_msn=-1")).is_err());
        assert!(parse_query(Some("_HLS_part=abc&_HLS_msn=1")).is_err());
    }
}
