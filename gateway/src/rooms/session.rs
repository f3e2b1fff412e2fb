//! The sessions the gateway created: WHIP publishers, RTMP bridges, WHEP viewers and admin
//! previews, as the state actor keeps them.

use venue_sfu::ParticipantId;

use crate::ids::RoomId;

use crate::webhooks::Protocol;

/// What kind of session a WHIP/WHEP resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A publisher of this streamer, over this protocol (a WHIP resource or an RTMP bridge).
    Publisher(ParticipantId, Protocol),
    /// A WHEP viewer of the room's stage.
    Viewer,
    /// An admin's live preview of one streamer (not counted as a viewer).
    Preview(ParticipantId),
}

/// A session the gateway created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub room: RoomId,
    pub kind: SessionKind,
    /// The strong ETag (with quotes) handed out in the 201.
    pub etag: String,
}
