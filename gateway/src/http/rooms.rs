//! Public room information: `GET /api/rooms/{room}` → `{name, title, layout, max_slots,
//! slots: [{index, streamer_id|null, name|null, live}], viewer_count}` (slots always
//! `max_slots` long), and the join decision `GET /api/rooms/{room}/join` ([`join`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::cluster::placement::{Choice, Limits, choose};
use crate::cluster::registry::NodeInfo;
use crate::overflow::{Cause, Decision, JoinMode};
use crate::rooms::RoomView;
use crate::store::Room;

/// `GET /api/rooms/{room}` (and `GET /api/admin/rooms/{room}/stage`) → the room view.
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(view(&app, &name).await?))
}

/// The live view of the room called `name`; 404 `no room "name"`.
pub(crate) async fn view(app: &AppState, name: &str) -> Result<RoomView, ApiError> {
    app.state
        .view(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

/// The stored room called `name`; 404 `no room "name"`.
pub(crate) async fn stored(app: &AppState, name: &str) -> Result<Room, ApiError> {
    app.store
        .room_by_name(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}

/// The answer of `GET /api/rooms/{room}/join`.
#[derive(Debug, Clone, Serialize)]
pub struct JoinAnswer {
    /// `webrtc` (WHEP at `whep_url`, room events over its data channels) or `hls` (the
    /// LL-HLS program at `hls_url`, room events over the WebSocket at `ws_url`).
    pub mode: JoinMode,
    /// For people: why this mode.
    pub reason: String,
    /// `capacity` or `cpu` in HLS mode, else null.
    pub cause: Option<Cause>,
    /// WebRTC viewers of the room now, and its limit (`hls.max_webrtc_viewers`).
    pub webrtc_viewers: usize,
    pub max_webrtc_viewers: usize,
    /// The three ways in: relative URLs on this node, absolute ones on the node chosen for
    /// the viewer (cluster mode, [`crate::cluster::placement`]); the HLS program is served by
    /// every node, so `hls_url` stays relative.
    pub hls_url: String,
    pub whep_url: String,
    pub ws_url: String,
    /// Cluster mode: the id of the node whose URLs these are; absent in single-node mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl JoinAnswer {
    /// The answer for room `name` under `decision`.
    pub fn new(name: &str, decision: Decision) -> JoinAnswer {
        JoinAnswer {
            mode: decision.mode,
            reason: decision.reason,
            cause: decision.cause,
            webrtc_viewers: decision.webrtc_viewers,
            max_webrtc_viewers: decision.max_webrtc_viewers,
            hls_url: format!("/hls/{name}/index.m3u8"),
            whep_url: format!("/api/whep/{name}"),
            ws_url: format!("/api/rooms/{name}/ws"),
            node: None,
        }
    }

    /// The answer placing the viewer on `node` (cluster mode): its WHEP and WebSocket URLs
    /// absolute on the node's public URL.
    pub fn on(mut self, node: &str, public_url: Option<&str>) -> JoinAnswer {
        if let Some(base) = public_url {
            self.whep_url = format!("{base}{}", self.whep_url);
            let ws_base = base
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1);
            self.ws_url = format!("{ws_base}{}", self.ws_url);
        }
        self.node = Some(node.to_owned());
        self
    }
}

/// Where a new viewer of `room` watches: the overflow decision and, in cluster mode when
/// another node is chosen ([`crate::cluster::placement::choose`]), that node. Single-node
/// mode (or a Redis that cannot be read: this node decides alone) is the local rule.
/// Errors: a stopped state actor.
pub(crate) async fn place(
    app: &AppState,
    room: crate::ids::RoomId,
) -> Result<(Decision, Option<NodeInfo>), ApiError> {
    let local = app.overflow.decide(&app.state, room).await?;
    let Some(cluster) = &app.cluster else {
        return Ok((local, None));
    };
    let others = match cluster.nodes().await {
        Ok(view) => view.live,
        Err(e) => {
            tracing::warn!(error = %e, "placement: the registry cannot be read; deciding alone");
            return Ok((local, None));
        }
    };
    let me = cluster.current().await;
    let config = app.overflow.config();
    let limits = Limits {
        room_viewers: config.max_webrtc_viewers as u64,
        cpu_percent: config.max_cpu_percent,
    };
    let total: u64 = std::iter::once(&me)
        .chain(others.iter().filter(|n| n.node_id != me.node_id))
        .flat_map(|n| n.load.rooms.iter().filter(|r| r.room == room.0))
        .map(|r| r.viewers)
        .sum();
    let viewers = usize::try_from(total).unwrap_or(usize::MAX);
    let hls = |cause: Cause, reason: String| Decision {
        mode: JoinMode::Hls,
        cause: Some(cause),
        reason,
        webrtc_viewers: viewers,
        max_webrtc_viewers: config.max_webrtc_viewers,
        cpu_percent: local.cpu_percent,
    };
    Ok(match choose(&me, &others, room.0, limits) {
        Choice::Here => (
            Decision {
                webrtc_viewers: viewers.max(local.webrtc_viewers),
                ..local
            },
            None,
        ),
        Choice::Node(node) => (
            Decision {
                mode: JoinMode::Webrtc,
                cause: None,
                reason: format!(
                    "this server is full: watching on node {} ({viewers} of {} WebRTC places in                      this room are taken)",
                    node.node_id, config.max_webrtc_viewers
                ),
                webrtc_viewers: viewers,
                max_webrtc_viewers: config.max_webrtc_viewers,
                cpu_percent: local.cpu_percent,
            },
            Some(node),
        ),
        Choice::Hls(Cause::Capacity) if viewers >= config.max_webrtc_viewers => (
            hls(
                Cause::Capacity,
                format!(
                    "this room is at its WebRTC capacity ({viewers} of {} viewers): watching the                      HLS program (a few seconds behind)",
                    config.max_webrtc_viewers
                ),
            ),
            None,
        ),
        Choice::Hls(Cause::Capacity) => (
            hls(
                Cause::Capacity,
                "every server of this venue is full: watching the HLS program (a few seconds                  behind)"
                    .into(),
            ),
            None,
        ),
        Choice::Hls(cause) => (
            hls(
                cause,
                "every server of this venue is busy: watching the HLS program (a few seconds                  behind)"
                    .into(),
            ),
            None,
        ),
    })
}

/// `GET /api/rooms/{room}/join` → 200 [`JoinAnswer`] (`Cache-Control: no-store`: it changes
/// with every viewer), 404 unknown room. The rule is [`crate::overflow`]'s: `hls` at the
/// room's WebRTC capacity or while the server is overloaded, else `webrtc`. Advice only: WHEP
/// enforces the same rule with 503.
pub async fn join(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let room = view(&app, &name).await?;
    let (decision, node) = place(&app, room.id).await?;
    let mut answer = JoinAnswer::new(&room.name, decision);
    if let Some(cluster) = &app.cluster {
        answer = match &node {
            Some(n) => answer.on(
                &n.node_id,
                Some(n.public_url.as_deref().unwrap_or(&n.internal_url)),
            ),
            None => answer.on(cluster.settings().node_id.as_str(), None),
        };
    }
    let mut res = Json(answer).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
