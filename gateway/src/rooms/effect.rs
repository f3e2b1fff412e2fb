//! What the state core ([`super::Core`]) asks its shell to do: [`Effect`]s (SFU calls,
//! webhooks, cluster claims and relays) and the [`PublishNotice`] of the `publish.*` webhooks.

use bytes::Bytes;
use venue_sfu::{ParticipantId, SessionId};

use crate::ids::{RoomId, StreamerId};
use crate::webhooks::Protocol;

/// A publisher session that started or stopped (for webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishNotice {
    pub room_id: RoomId,
    /// The room's name ("" if the room is unknown).
    pub room: String,
    pub streamer: StreamerId,
    pub session: SessionId,
    pub protocol: Protocol,
}

/// An SFU call (or a webhook) the shell must make.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    SetStage(venue_sfu::RoomId, Vec<Option<ParticipantId>>),
    /// Point an admin preview at the streamer's active publisher session (or none).
    Retarget(SessionId, Option<ParticipantId>),
    RoomState(venue_sfu::RoomId, Bytes),
    Close(SessionId),
    /// A publisher session was registered: `publish.started`.
    PublishStarted(PublishNotice),
    /// A registered publisher session ended: `publish.stopped`.
    PublishStopped(PublishNotice),
    /// Streamer `streamer` of `room` went live on this node (`live`) or offline here: in
    /// cluster mode this node claims (or releases) its tracks and tells the other nodes.
    LiveChanged {
        room: RoomId,
        streamer: StreamerId,
        live: bool,
    },
    /// Open a relay of `room` from node `origin` (cluster mode): the shell answers with
    /// [`Core::relay_opened`] or [`Core::relay_failed`].
    OpenRelay {
        room: RoomId,
        origin: String,
    },
}
