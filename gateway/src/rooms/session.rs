//! The sessions the gateway created: WHIP publishers, RTMP bridges, WHEP viewers and admin
//! previews, as the state actor keeps them.

use venue_sfu::ParticipantId;

use crate::ids::{RoomId, StreamerId};

use crate::webhooks::Protocol;

/// What kind of session a WHIP/WHEP resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A publisher session of `streamer` over `protocol` (a WHIP resource or an RTMP bridge);
    /// `participant` is this session's own id in the media plane (fresh per session, see
    /// [`super::new_participant`]), so a streamer can have two sessions at once.
    Publisher {
        streamer: StreamerId,
        participant: ParticipantId,
        protocol: Protocol,
    },
    /// A WHEP viewer of the room's stage.
    Viewer,
    /// An admin's live preview of one streamer (not counted as a viewer); it follows the
    /// streamer's active publisher session.
    Preview(StreamerId),
    /// Cluster mode: another node's relay of this room's stage (`POST /internal/relay/{room}`,
    /// [`crate::cluster::tracks`]); not counted as a viewer.
    Relay,
}

/// A session the gateway created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub room: RoomId,
    pub kind: SessionKind,
    /// The strong ETag (with quotes) handed out in the 201.
    pub etag: String,
}
