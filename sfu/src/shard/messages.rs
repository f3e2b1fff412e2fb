//! What goes into a shard core and what comes out of it (str0m's sans-IO contract):
//! [`Input`] with the current time to [`super::ShardCore::handle_input`], [`Output`] from
//! [`super::ShardCore::poll_output`].
//!
//! Command replies and stage-tap packets are outputs like datagrams: a command that wants an
//! answer carries a [`RequestId`] and the core answers with [`Output::Reply`]; a tap's packets
//! come out as [`Output::Tap`]. The shell (`crate::shell`) holds the reply senders by request
//! id and the tap channels by [`TapId`], and delivers them. No channel type appears here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use str0m::Candidate;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::net::Protocol;

use super::media::ShardMsg;
use crate::api::{
    ChannelClass, ParticipantId, PatchOutcome, RoomId, SessionAnswer, SessionId, SfuError,
    SfuEvent, SubscribeTarget,
};
use crate::bridge::BridgeMedia;
use crate::health::{BridgeInfo, PublisherHealth};
use crate::offer::Offer;

/// Names one command that waits for a [`Reply`]; chosen by the caller, echoed in
/// [`Output::Reply`]. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Names one stage tap (see `crate::tap`), unique in the process. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapId(pub u64);

/// One input to a shard core. Addresses are plain IPv4 or IPv6 (never IPv4-mapped: the shell
/// un-maps `::ffff:a.b.c.d`).
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram from the shard's UDP socket. `destination_ip` is its own destination
    /// (`IP_PKTINFO`) when the shell knows it. Unknown senders are matched by STUN only.
    Datagram {
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &'a [u8],
    },
    /// One RFC 4571 frame (without its length prefix) from the ICE-TCP connection whose remote
    /// address is `source` (RFC 6544). As for datagrams, only a STUN request a session accepts
    /// ties a new connection to that session. The shell must send
    /// [`Input::TcpClosed`] when the connection ends.
    TcpFrame {
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &'a [u8],
    },
    /// The ICE-TCP connection from `source` is gone: its address is forgotten, and packets a
    /// session still has for it are dropped (counted in `ShardStats::tcp_unrouted`). A new
    /// connection from the same address must start with STUN.
    TcpClosed { source: SocketAddr },
    /// A message from another shard.
    Remote(ShardMsg),
    /// A command from the control plane.
    Command(Command),
    /// Time has passed: drive every peer whose timeout is due, and housekeeping.
    Timeout,
}

/// A command from the control plane. Those with a `request` are answered by one
/// [`Output::Reply`] with that id.
#[derive(Debug)]
pub enum Command {
    /// Accept a WHIP offer; replies [`Reply::Answer`].
    Publish {
        request: RequestId,
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
        /// Boxed: an offer is large next to the other commands (and inputs).
        offer: Box<Offer>,
    },
    /// Accept a WHEP offer; replies [`Reply::Answer`].
    Subscribe {
        request: RequestId,
        session: SessionId,
        room: RoomId,
        target: SubscribeTarget,
        offer: Box<Offer>,
    },
    /// Open an edge relay session in `room` towards an origin: makes the offer; replies
    /// [`Reply::RelayOffer`]. `participants[i]` is the edge's participant for origin slot i.
    OpenRelay {
        request: RequestId,
        session: SessionId,
        room: RoomId,
        participants: Vec<ParticipantId>,
    },
    /// The origin's answer to a relay offer; replies [`Reply::RelayAnswered`].
    RelayAnswer {
        request: RequestId,
        session: SessionId,
        /// Boxed: an answer is large next to the other commands.
        answer: Box<SdpAnswer>,
    },
    /// Trickled remote candidates; replies [`Reply::Patched`].
    Patch {
        request: RequestId,
        session: SessionId,
        /// `a=ice-ufrag` of the fragment, if any.
        ufrag: Option<String>,
        candidates: Vec<Candidate>,
    },
    /// End a session; replies [`Reply::Closed`].
    Close {
        request: RequestId,
        session: SessionId,
    },
    /// End any publisher session of this participant (a new one replaces it).
    DropParticipant { participant: ParticipantId },
    /// Point a one-publisher subscriber (admin preview) at `participant`.
    Retarget {
        session: SessionId,
        participant: Option<ParticipantId>,
    },
    /// A bridge publisher (not WebRTC) comes up: frames follow as `BridgeMedia`.
    BridgeOpen {
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
    },
    /// One frame of a bridge publisher.
    BridgeMedia {
        session: SessionId,
        media: BridgeMedia,
    },
    /// What a bridge knows about its source (for health).
    BridgeInfo {
        session: SessionId,
        info: BridgeInfo,
    },
    /// A publisher session's health; replies [`Reply::Health`] (`None` when it is not a
    /// publisher of this shard).
    PublisherHealth {
        request: RequestId,
        session: SessionId,
    },
    /// Route publishers to stage slots.
    SetStage {
        room: RoomId,
        slots: Vec<Option<ParticipantId>>,
    },
    /// The room's state frame for `venue` data channels.
    SetRoomState { room: RoomId, frame: Bytes },
    /// One frame to one subscriber's data channel.
    SendChannel {
        session: SessionId,
        class: ChannelClass,
        frame: Bytes,
    },
    /// One frame to every subscriber of a room with an open channel.
    BroadcastChannel {
        room: RoomId,
        class: ChannelClass,
        frame: Bytes,
    },
    /// Start a stage tap of `room`: its packets come out as [`Output::Tap`].
    OpenTap { tap: TapId, room: RoomId },
    /// Stop a tap.
    CloseTap { tap: TapId },
    /// A tap's reader lost packets of `slot`: ask its source for a keyframe.
    TapKeyframe { tap: TapId, slot: usize },
}

impl Command {
    /// The request this command answers, if it is one that replies.
    pub fn request(&self) -> Option<RequestId> {
        match self {
            Command::Publish { request, .. }
            | Command::Subscribe { request, .. }
            | Command::Patch { request, .. }
            | Command::OpenRelay { request, .. }
            | Command::RelayAnswer { request, .. }
            | Command::Close { request, .. }
            | Command::PublisherHealth { request, .. } => Some(*request),
            _ => None,
        }
    }
}

/// The answer to a command with a [`RequestId`].
#[derive(Debug)]
pub enum Reply {
    /// To `Publish` and `Subscribe`.
    Answer(Result<SessionAnswer, SfuError>),
    /// To `Patch`.
    Patched(Result<PatchOutcome, SfuError>),
    /// To `Close`.
    Closed(Result<(), SfuError>),
    /// To `PublisherHealth`.
    Health(Option<PublisherHealth>),
    /// To `OpenRelay`: the offer's SDP.
    RelayOffer(Result<String, SfuError>),
    /// To `RelayAnswer`.
    RelayAnswered(Result<(), SfuError>),
}

impl Reply {
    /// The answer to `Publish`/`Subscribe`; `None` for another kind of reply.
    pub fn into_answer(self) -> Option<Result<SessionAnswer, SfuError>> {
        match self {
            Reply::Answer(r) => Some(r),
            _ => None,
        }
    }

    /// The answer to `Patch`; `None` for another kind of reply.
    pub fn into_patched(self) -> Option<Result<PatchOutcome, SfuError>> {
        match self {
            Reply::Patched(r) => Some(r),
            _ => None,
        }
    }

    /// The answer to `Close`; `None` for another kind of reply.
    pub fn into_closed(self) -> Option<Result<(), SfuError>> {
        match self {
            Reply::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// The answer to `OpenRelay`; `None` for another kind of reply.
    pub fn into_relay_offer(self) -> Option<Result<String, SfuError>> {
        match self {
            Reply::RelayOffer(r) => Some(r),
            _ => None,
        }
    }

    /// The answer to `RelayAnswer`; `None` for another kind of reply.
    pub fn into_relay_answered(self) -> Option<Result<(), SfuError>> {
        match self {
            Reply::RelayAnswered(r) => Some(r),
            _ => None,
        }
    }

    /// The answer to `PublisherHealth` (never an error); `None` for another kind of reply.
    pub fn into_health(self) -> Option<Result<Option<PublisherHealth>, SfuError>> {
        match self {
            Reply::Health(h) => Some(Ok(h)),
            _ => None,
        }
    }
}

/// One packet of a stage slot as the tap forwards it.
#[derive(Debug, Clone)]
pub struct TapPacket {
    /// Stage slot (0-based).
    pub slot: usize,
    /// Audio or video.
    pub kind: MediaKind,
    /// The payload's codec (H.264, VP8, Opus).
    pub codec: Codec,
    /// Sequence number, continuous per slot and kind across source switches.
    pub seq: u64,
    /// RTP timestamp (90 kHz video, 48 kHz Opus), continuous per slot across switches.
    pub rtp_time: u32,
    /// RTP marker: last packet of a picture (video).
    pub marker: bool,
    /// The RTP payload, shared with the other subscribers.
    pub payload: Arc<[u8]>,
}

/// What the shard wants done.
#[derive(Debug)]
pub enum Output {
    /// Send a packet: a UDP datagram (`proto` = [`Protocol::Udp`]) from the shard's socket, or
    /// one RFC 4571 frame (`proto` = [`Protocol::Tcp`]) on the ICE-TCP connection whose remote
    /// address is `destination`. Addresses are plain IPv4 or IPv6 (never IPv4-mapped).
    Transmit {
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// Send a message to every other shard.
    Broadcast(ShardMsg),
    /// Tell the control plane.
    Event(SfuEvent),
    /// The answer to the command that carried `request` (boxed: a health snapshot is large
    /// next to a transmit).
    Reply {
        request: RequestId,
        reply: Box<Reply>,
    },
    /// One packet for the reader of stage tap `tap` (dropped and counted by the shell when
    /// the reader's queue is full).
    Tap { tap: TapId, packet: TapPacket },
    /// Nothing more to do before this instant (give it [`Input::Timeout`] then).
    Timeout(Instant),
}
