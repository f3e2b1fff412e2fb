//! Venue's media plane: a selective forwarding unit on str0m.
//!
//! Contract: the gateway drives it only through [`SfuHandle`] (bounded command channels,
//! `oneshot` replies) and hears back through [`SfuEvent`]s. The SFU knows nothing of HTTP or
//! the store. Protocol logic lives in sans-IO cores that take time as a parameter; only
//! `shell` does IO (one thread and one UDP socket per shard).

pub mod api;
pub mod config;

pub use api::*;
pub use config::SfuConfig;

use bytes::Bytes;

/// Thread-safe, cloneable handle to the running media plane.
#[derive(Clone, Debug)]
pub struct SfuHandle {
    _private: (),
}

impl SfuHandle {
    /// Binds one UDP socket per shard and starts the shard threads.
    /// Returns the handle and the event stream. Errors: [`SfuError::Io`] when binding fails.
    pub fn start(
        config: SfuConfig,
    ) -> Result<(SfuHandle, tokio::sync::mpsc::Receiver<SfuEvent>), SfuError> {
        let _ = config;
        Err(SfuError::Stopped)
    }

    /// Accepts a WHIP publisher's offer (RFC 9725 §4.2) for `participant` in `room`. An
    /// existing session of the same participant is closed first (reconnect replaces).
    pub async fn publish(
        &self,
        room: RoomId,
        participant: ParticipantId,
        offer_sdp: &str,
    ) -> Result<SessionAnswer, SfuError> {
        let _ = (room, participant, offer_sdp);
        Err(SfuError::Stopped)
    }

    /// Accepts a WHEP viewer's recvonly offer.
    pub async fn subscribe(
        &self,
        room: RoomId,
        target: SubscribeTarget,
        offer_sdp: &str,
    ) -> Result<SessionAnswer, SfuError> {
        let _ = (room, target, offer_sdp);
        Err(SfuError::Stopped)
    }

    /// Applies a trickle-ICE SDP fragment (RFC 8840 / RFC 9725 §4.3.1).
    pub async fn patch(&self, session: SessionId, fragment: &str) -> Result<PatchOutcome, SfuError> {
        let _ = (session, fragment);
        Err(SfuError::Stopped)
    }

    /// Ends a session. Errors: [`SfuError::UnknownSession`].
    pub async fn close(&self, session: SessionId) -> Result<(), SfuError> {
        let _ = session;
        Err(SfuError::Stopped)
    }

    /// Routes publishers to a room's stage slots: `slots[i]` is shown on slot i
    /// (`slots.len() <= max_slots`, missing entries are empty).
    pub async fn set_stage(&self, room: RoomId, slots: Vec<Option<ParticipantId>>) -> Result<(), SfuError> {
        let _ = (room, slots);
        Err(SfuError::Stopped)
    }

    /// Sets the room's state frame (an encoded `venue.v1.ServerMessage`): sent now to every
    /// subscriber's open `venue` channel in the room, and to each new one when it opens.
    pub async fn set_room_state(&self, room: RoomId, frame: Bytes) -> Result<(), SfuError> {
        let _ = (room, frame);
        Err(SfuError::Stopped)
    }

    /// Local addresses of the shards.
    pub fn addrs(&self) -> MediaAddrs {
        MediaAddrs { shards: Vec::new() }
    }

    /// Stage slots per room (K).
    pub fn max_slots(&self) -> usize {
        4
    }
}
