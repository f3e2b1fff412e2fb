//! The vocabulary of the SFU's public interface: ids (`Copy` newtypes), the answer to an
//! offer, the events the control plane hears, and the errors of [`crate::SfuHandle`]. Nothing
//! here touches HTTP.

use std::net::SocketAddr;

use bytes::Bytes;

/// A room, as numbered by the gateway's store. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u64);

/// A publishing participant (for Venue: the streamer id from the store). Stage slots refer to
/// publishers by this id. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// One WebRTC session (a WHIP publisher or a WHEP subscriber), unique for the life of the
/// process. The low 8 bits name the shard that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// Index of the shard that owns this session.
    pub fn shard(self) -> usize {
        (self.0 & 0xff) as usize
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(SessionId)
    }
}

/// What a subscriber (WHEP viewer) receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeTarget {
    /// The room's stage: the i-th video and i-th audio m-line carry stage slot i.
    Stage,
    /// One publisher directly (admin preview): the first video/audio pair carries it; `None`
    /// shows nothing until [`crate::SfuHandle::retarget`] names one.
    Participant(Option<ParticipantId>),
    /// An edge node's relay session (origin side of an origin → edge relay, see
    /// [`crate::SfuHandle::open_relay`]): per stage slot i, the i-th audio m-line carries
    /// slot i's audio and video m-lines `i * RELAY_LAYERS + L` carry its simulcast layer L
    /// (layers in RID order; `None`, a publisher without simulcast, is layer 0). Every layer
    /// seen is forwarded (no bandwidth-based choice: relays run inside the operator's network).
    Relay,
}

/// Video m-lines per stage slot on a relay session: simulcast layers carried per slot.
pub const RELAY_LAYERS: usize = 3;

/// An edge's relay session towards an origin, as [`crate::SfuHandle::open_relay`] made it.
#[derive(Debug, Clone)]
pub struct RelayOffer {
    /// The edge's relay session (give it to [`crate::SfuHandle::relay_answer`] and
    /// [`crate::SfuHandle::close`]).
    pub session: SessionId,
    /// The SDP offer (RFC 8866) for the origin's `subscribe(room, SubscribeTarget::Relay, …)`:
    /// recvonly, `max_slots` audio m-lines and `max_slots * RELAY_LAYERS` video m-lines, with
    /// the edge shard's host candidates; the edge is the controlling ICE agent (RFC 8445 §6.1.1).
    pub offer_sdp: String,
    /// The participant the edge shows for each origin stage slot (`participants[i]` carries
    /// slot i, with video layers as RIDs `"0"`, `"1"`, `"2"`): put them on the edge's stage
    /// with [`crate::SfuHandle::set_stage`].
    pub participants: Vec<ParticipantId>,
}

/// The answer to an accepted offer.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// The new session.
    pub session: SessionId,
    /// SDP answer (RFC 8866) holding every server host candidate (ICE-lite, RFC 8445 §2.5).
    pub answer_sdp: String,
    /// The ICE username fragment of our side, for the WHIP/WHEP ETag.
    pub ice_ufrag: String,
}

/// Result of a trickle-ICE PATCH (RFC 9725 §4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Candidates were added (or there were none); answer 204.
    Trickled,
}

/// Something that happened in the media plane, for the control plane.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SfuEvent {
    /// A publisher's ICE+DTLS connected and it is sending media.
    PublisherUp {
        room: RoomId,
        participant: ParticipantId,
        session: SessionId,
    },
    /// A publisher session ended (closed, replaced, timed out).
    PublisherDown {
        room: RoomId,
        participant: ParticipantId,
        session: SessionId,
    },
    /// An edge's relay session to an origin connected (ICE + DTLS): media of its
    /// participants follows.
    RelayUp { room: RoomId, session: SessionId },
    /// An edge's relay session ended (closed, failed, timed out): its participants are gone.
    RelayDown { room: RoomId, session: SessionId },
    /// A subscriber connected.
    SubscriberUp { room: RoomId, session: SessionId },
    /// A subscriber session ended.
    SubscriberDown { room: RoomId, session: SessionId },
    /// A subscriber's reliable `venue` data channel opened: a new interaction client.
    /// `remote` is the peer's address as ICE saw it (for per-IP limits and bans).
    ChannelOpen {
        room: RoomId,
        session: SessionId,
        remote: Option<SocketAddr>,
    },
    /// A message a subscriber sent on its `venue` or `venue-lossy` data channel (raw protobuf
    /// bytes, at most 64 KiB; larger ones are dropped by the SFU).
    ChannelMessage {
        room: RoomId,
        session: SessionId,
        data: Bytes,
    },
}

/// Which data channel a frame goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelClass {
    /// `venue`: reliable, ordered (chat, stickers, snapshots, admin events).
    Reliable,
    /// `venue-lossy`: unreliable, unordered, `maxRetransmits: 0` (cursors, fireworks). Falls back
    /// to the reliable channel when the client has no lossy channel. Dropped (and counted) when
    /// the SCTP send buffer already holds more than [`LOSSY_MAX_BUFFERED`] bytes: lossy data
    /// still queues under SCTP congestion, and late cursors are worthless.
    Lossy,
}

/// Bytes buffered in a session's SCTP association above which lossy frames are dropped.
pub const LOSSY_MAX_BUFFERED: usize = 64 * 1024;

/// Errors of the SFU handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP offer could not be parsed or accepted; the string says why (→ HTTP 400).
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// The offer is valid SDP but asks for something we do not do (→ HTTP 400/422).
    #[error("unsupported offer: {0}")]
    Unsupported(String),
    /// The relay's SDP answer could not be parsed or does not match the offer, or the session
    /// is not a relay waiting for its answer; the string says why.
    #[error("bad SDP answer: {0}")]
    BadAnswer(String),
    /// The trickle-ICE fragment is malformed (→ HTTP 400).
    #[error("bad SDP fragment: {0}")]
    BadFragment(String),
    /// The fragment asks for an ICE restart, which Venue does not support (→ HTTP 422).
    #[error("ICE restart is not supported; start a new session")]
    IceRestartUnsupported,
    /// No such session (→ HTTP 404).
    #[error("unknown session")]
    UnknownSession,
    /// A shard's command queue is full (→ HTTP 503).
    #[error("media plane overloaded")]
    Overloaded,
    /// The media plane has stopped (→ HTTP 503).
    #[error("media plane stopped")]
    Stopped,
    /// Binding sockets or starting threads failed at start-up.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Addresses the media plane listens on, one UDP socket per shard.
#[derive(Debug, Clone)]
pub struct MediaAddrs {
    /// Local socket address of each shard, in shard order.
    pub shards: Vec<SocketAddr>,
}
