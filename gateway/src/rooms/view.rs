//! A room as clients see it ([`RoomView`], `GET /api/rooms/{room}`), its `StageState`
//! frame (the protobuf sent over data channels and WebSockets), and the totals for `/metrics`.

use bytes::Bytes;
use serde::Serialize;
use venue_proto::v1;

use crate::ids::{RoomId, StreamerId};

/// One stage slot as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotView {
    pub index: u32,
    pub streamer_id: Option<StreamerId>,
    pub name: Option<String>,
    pub live: bool,
}

/// A room as shown to clients (`GET /api/rooms/{room}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    #[serde(skip)]
    pub id: RoomId,
    pub name: String,
    pub title: String,
    pub layout: u32,
    pub max_slots: usize,
    /// Always `max_slots` long.
    pub slots: Vec<SlotView>,
    pub viewer_count: usize,
}

/// Totals for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub rooms: usize,
    pub sessions: usize,
    pub publishers_live: usize,
    pub viewers: usize,
    /// Cluster mode: relays from other nodes open on this node (edge side).
    pub relays_in: usize,
    /// Cluster mode: other nodes' relays of this node's stages (origin side).
    pub relays_out: usize,
    /// Per room: (room, WebRTC viewers here, whether this node has its stage media: a relay
    /// in or a stage streamer live here). For placement.
    pub room_loads: Vec<(RoomId, usize, bool)>,
}

/// The `ServerMessage::Stage` frame of a room view.
pub fn stage_frame(view: &RoomView, revision: u64) -> Bytes {
    let msg = v1::ServerMessage {
        body: Some(v1::server_message::Body::Stage(v1::StageState {
            title: view.title.clone(),
            layout: view.layout,
            slots: view
                .slots
                .iter()
                .map(|s| v1::StageSlot {
                    index: s.index,
                    streamer_id: s.streamer_id.map(|id| id.0 as u64).unwrap_or(0),
                    name: s.name.clone().unwrap_or_default(),
                    live: s.live,
                })
                .collect(),
            revision,
            viewer_count: u32::try_from(view.viewer_count).unwrap_or(u32::MAX),
        })),
    };
    Bytes::from(venue_proto::encode_server(&msg))
}
