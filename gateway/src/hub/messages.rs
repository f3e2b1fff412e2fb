//! What goes in and out of a room's [`RoomHub`](super::RoomHub): its inputs, the outputs the
//! shell carries out, the delivery class of a frame and the hub's counters.

use bytes::Bytes;
use venue_proto::v1;

use super::participants::{ConnId, IpHash, Transport};
use super::records::PersistOp;

/// Which delivery a frame needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Ordered and never dropped (closing the client instead when it cannot keep up).
    Reliable,
    /// May be dropped when the client is behind (cursors, fireworks).
    Lossy,
}

/// What the hub wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One frame to one connection.
    Send {
        conn: ConnId,
        class: Class,
        frame: Bytes,
    },
    /// The same frame to every connection of the room.
    Broadcast { class: Class, frame: Bytes },
    /// Send `notice` (an encoded `ServerMessage`) and close. The hub has forgotten `conn`.
    Close { conn: ConnId, notice: Bytes },
    /// Write to the store.
    Persist(PersistOp),
}

/// An input of the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A new connection (before its hello). `ip`: the hashed peer address, if known.
    Connect {
        conn: ConnId,
        transport: Transport,
        ip: Option<IpHash>,
    },
    /// One client frame (an encoded `ClientMessage`).
    Frame { conn: ConnId, data: Bytes },
    /// A frame the transport could not pass on (e.g. a WebSocket text frame).
    BadFrame { conn: ConnId, reason: &'static str },
    /// The connection is gone.
    Disconnect { conn: ConnId },
    /// Time to send the batches.
    Tick,
    /// The room's stage changed (from the state actor).
    Stage(v1::StageState),
}

/// Counters of a hub (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubStats {
    /// Client frames received.
    pub frames_in: u64,
    /// Oversized, undecodable or out-of-place frames dropped.
    pub bad_frames: u64,
    /// Commands dropped by rate limits.
    pub rate_limited: u64,
    /// Commands with NaN coordinates dropped.
    pub nan_dropped: u64,
    /// Connections closed for repeated offences.
    pub closed_for_offences: u64,
    /// Batches broadcast (reliable + lossy).
    pub batches: u64,
    /// Users (connections that said hello) now — a gauge.
    pub users: u64,
}
