//! The sans-IO core of one media shard: the str0m peers it owns, stage routing, forwarding.
//!
//! A shard never reads the clock, spawns, or touches sockets. Input comes in through
//! `handle_*` methods with the current time; everything to do comes out of
//! [`ShardCore::poll_output`]: datagrams to send, messages for other shards, events for the
//! control plane, and when to call [`ShardCore::handle_timeout`] next.
//!
//! Media flow: a publisher's RTP packet (str0m RTP mode) becomes one [`MediaPacket`] whose
//! payload is shared (`Arc<[u8]>`). It is dispatched to the local subscribers that show its
//! source and, when there are other shards, broadcast to them as the same `Arc`. Each
//! subscriber track runs a [`Forwarder`] that picks its source/layer and rewrites
//! sequence numbers and timestamps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::sync::oneshot;
use tracing::{debug, info, trace};

use crate::api::{
    ChannelClass, LOSSY_MAX_BUFFERED, ParticipantId, PatchOutcome, RoomId, SessionAnswer,
    SessionId, SfuError, SfuEvent, SubscribeTarget,
};
use crate::bridge::{BridgeMedia, MAX_RTP_PAYLOAD, Payload, packetize_h264, sps_profile_level_id};
use crate::config::SfuConfig;
use crate::forward::{Forwarder, PacketMeta, SourceKey, Verdict};
use crate::health::{
    BridgeInfo, HealthMeter, Observed, Protocol as IngestProtocol, PublisherHealth,
};
use crate::keyframe::is_keyframe_start;
use crate::tap::{TAP_BUDGET_BPS, TapPacket};

/// How long a session may take to connect before it is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Period of housekeeping: simulcast layer choice, layer expiry, deferred keyframe requests.
const TICK: Duration = Duration::from_millis(250);
/// A simulcast layer not seen for this long is considered gone.
const LAYER_EXPIRY: Duration = Duration::from_secs(2);
/// Longest time subscribers' output is held back waiting for the rest of a video frame
/// (frame-level batching: a frame's packets to one viewer leave in one GSO `sendmsg`). The
/// decoder needs the whole frame anyway, so holding until the frame's last packet (RTP marker)
/// costs no picture latency; the cap bounds it when the marker is lost or the publisher paces
/// a large keyframe.
const FRAME_HOLD: Duration = Duration::from_millis(10);
/// Timeout cycles one `drive` runs for a peer whose str0m timeout is already due.
const MAX_IMMEDIATE_CYCLES: usize = 64;
/// A str0m timeout this close to now counts as due (its pacer asks for "now + 1 µs").
const IMMEDIATE_SLACK: Duration = Duration::from_micros(50);
/// Media from another shard older than this is dropped, not forwarded late.
const MAX_REMOTE_AGE: Duration = Duration::from_millis(500);
/// Largest data-channel message passed to the control plane, bytes.
const MAX_CHANNEL_MESSAGE: usize = 64 * 1024;

/// The codec identity of a packet, used to find the subscriber's payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecKey {
    /// The codec.
    pub codec: Codec,
    /// H.264 `profile-level-id` (RFC 6184 §8.1), when known.
    pub profile: Option<u32>,
}

/// One publisher RTP packet, shared between all shards and subscribers.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    /// Room of the publisher.
    pub room: RoomId,
    /// Publisher and simulcast layer.
    pub source: SourceKey,
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec of the payload.
    pub codec: CodecKey,
    /// Extended sequence number of the publisher's stream.
    pub seq: u64,
    /// RTP timestamp, clock-rate ticks.
    pub rtp_time: u32,
    /// RTP marker bit (end of frame for video).
    pub marker: bool,
    /// First packet of a keyframe (video) — true for all audio.
    pub switch_point: bool,
    /// RTP payload, shared.
    pub payload: Arc<[u8]>,
    /// When the SFU received it.
    pub arrival: Instant,
    /// The publisher session it came from (see [`PacketMeta::epoch`]).
    pub epoch: u64,
}

/// Messages between shards.
#[derive(Debug, Clone)]
pub enum ShardMsg {
    /// A publisher's packet for subscribers on other shards.
    Media(Arc<MediaPacket>),
    /// A subscriber on another shard wants a keyframe from a publisher.
    KeyframeRequest {
        /// Which publisher.
        participant: ParticipantId,
        /// Which simulcast layer.
        rid: Option<Rid>,
        /// PLI or FIR.
        kind: KeyframeRequestKind,
    },
}

/// Where the i-th video and i-th audio m-line of an offer sit (by mid), in SDP order.
#[derive(Debug, Clone, Default)]
pub struct MidLayout {
    /// Video m-line mids in order.
    pub video: Vec<Mid>,
    /// Audio m-line mids in order.
    pub audio: Vec<Mid>,
}

impl MidLayout {
    /// Reads m-line kinds and mids from SDP text (RFC 8866 §5.14, RFC 9143 `a=mid`).
    pub fn from_sdp(sdp: &str) -> MidLayout {
        let mut layout = MidLayout::default();
        let mut kind: Option<MediaKind> = None;
        for line in sdp.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("m=") {
                kind = if rest.starts_with("video") {
                    Some(MediaKind::Video)
                } else if rest.starts_with("audio") {
                    Some(MediaKind::Audio)
                } else {
                    None
                };
            } else if let Some(mid) = line.strip_prefix("a=mid:") {
                match kind.take() {
                    Some(MediaKind::Video) => layout.video.push(Mid::from(mid)),
                    Some(MediaKind::Audio) => layout.audio.push(Mid::from(mid)),
                    None => {}
                }
            }
        }
        layout
    }
}

/// A command from the control plane.
#[derive(Debug)]
pub enum ShardCommand {
    /// Accept a WHIP offer.
    Publish {
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<SessionAnswer, SfuError>>,
    },
    /// Accept a WHEP offer.
    Subscribe {
        session: SessionId,
        room: RoomId,
        target: SubscribeTarget,
        offer: SdpOffer,
        layout: MidLayout,
        reply: oneshot::Sender<Result<SessionAnswer, SfuError>>,
    },
    /// Trickled remote candidates.
    Patch {
        session: SessionId,
        /// `a=ice-ufrag` of the fragment, if any.
        ufrag: Option<String>,
        candidates: Vec<Candidate>,
        reply: oneshot::Sender<Result<PatchOutcome, SfuError>>,
    },
    /// End a session.
    Close {
        session: SessionId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// End any publisher session of this participant (a new one replaces it).
    DropParticipant { participant: ParticipantId },
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
    /// A publisher session's health; `None` when it is not a publisher of this shard.
    PublisherHealth {
        session: SessionId,
        reply: oneshot::Sender<Result<Option<PublisherHealth>, SfuError>>,
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
    /// Start a stage tap of `room` (see [`crate::tap`]).
    OpenTap {
        id: u64,
        room: RoomId,
        tx: tokio::sync::mpsc::Sender<TapPacket>,
    },
    /// Stop a tap.
    CloseTap { id: u64 },
    /// A tap's reader lost packets of `slot`: ask its source for a keyframe.
    TapKeyframe { id: u64, slot: usize },
}

/// What the shard wants done.
#[derive(Debug)]
pub enum ShardOutput {
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
    /// Nothing more to do before this instant (call `handle_timeout` then).
    Timeout(Instant),
}

/// Counters of a shard, for metrics and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardStats {
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets written to subscriber tracks.
    pub rtp_forwarded: u64,
    /// Datagrams (and ICE-TCP frames) dropped: unparseable or from an unknown address and
    /// not STUN.
    pub datagrams_dropped: u64,
    /// Packets for an ICE-TCP address with no connection (it closed) that were not sent.
    pub tcp_unrouted: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Peers dropped because str0m returned an error or panicked.
    pub peers_failed: u64,
    /// Media from other shards dropped because it waited longer than `MAX_REMOTE_AGE`.
    pub stale_dropped: u64,
    /// Lossy data-channel frames dropped because the SCTP buffer was full.
    pub lossy_dropped: u64,
    /// Packets for stage taps dropped because the reader's queue was full.
    pub tap_dropped: u64,
}

#[derive(Debug, Default)]
struct RoomState {
    stage: Vec<Option<ParticipantId>>,
    frame: Option<Bytes>,
    subscribers: Vec<usize>,
}

#[derive(Debug)]
struct Peer {
    session: SessionId,
    room: RoomId,
    rtc: Rtc,
    created: Instant,
    next_timeout: Instant,
    connected: bool,
    /// The entry this peer has in `ShardCore::timers`, if any.
    scheduled: Option<Instant>,
    /// The latest time given to `rtc` (inputs to str0m must not go back in time).
    last_input: Instant,
    /// Remote addresses this peer's traffic came from, UDP and ICE-TCP.
    addrs: Vec<(Protocol, SocketAddr)>,
    /// The remote `a=ice-ufrag` from the offer, to tell trickle from ICE restart.
    remote_ufrag: Option<String>,
    role: Role,
}

impl Peer {
    /// A peer that has not connected yet; its first timeout is now.
    fn new(
        session: SessionId,
        room: RoomId,
        rtc: Rtc,
        remote_ufrag: Option<String>,
        now: Instant,
        role: Role,
    ) -> Peer {
        Peer {
            session,
            room,
            rtc,
            created: now,
            next_timeout: now,
            connected: false,
            scheduled: None,
            last_input: now,
            addrs: Vec::new(),
            remote_ufrag,
            role,
        }
    }

    /// The time to give this peer's `Rtc` for an input at `now`: never earlier than the last.
    fn clock(&mut self, now: Instant) -> Instant {
        self.last_input = self.last_input.max(now);
        self.last_input
    }
}

#[derive(Debug)]
enum Role {
    Publisher(Publisher),
    Subscriber(Subscriber),
}

/// A publisher fed by a bridge instead of a WebRTC peer.
#[derive(Debug)]
struct Bridge {
    room: RoomId,
    participant: ParticipantId,
    /// Next extended sequence numbers of its video and audio streams.
    video_seq: u64,
    audio_seq: u64,
    /// H.264 `profile-level-id` from the latest SPS.
    profile: Option<u32>,
    /// Streamer health of this session.
    health: HealthMeter,
}

#[derive(Debug)]
struct Publisher {
    participant: ParticipantId,
    /// ssrc → (kind, rid) for incoming streams, learnt from str0m.
    streams: Vec<(Ssrc, MediaKind, Mid, Option<Rid>)>,
    /// Payload type → codec, from the negotiated parameters.
    codecs: Vec<(Pt, CodecKey, u32)>,
    /// Last keyframe request sent per layer.
    last_keyframe_request: Vec<(Option<Rid>, Instant)>,
    /// Requests held back by the throttle, sent when it allows.
    deferred_keyframe_requests: Vec<(Option<Rid>, KeyframeRequestKind)>,
    /// Streamer health of this session (boxed: it is large next to `Subscriber`).
    health: Box<HealthMeter>,
}

#[derive(Debug)]
struct Subscriber {
    target: SubscribeTarget,
    tracks: Vec<TrackOut>,
    /// The reliable `venue` channel.
    channel: Option<ChannelId>,
    /// The unreliable `venue-lossy` channel.
    lossy_channel: Option<ChannelId>,
    bwe: Bitrate,
}

#[derive(Debug)]
struct TrackOut {
    slot: usize,
    kind: MediaKind,
    mid: Mid,
    ssrc: Option<Ssrc>,
    fwd: Forwarder,
    /// CodecKey → our payload type on this m-line.
    pts: Vec<(CodecKey, Pt)>,
}

/// A stage tap (see [`crate::tap`]): forwarders per slot, like a subscriber's tracks.
#[derive(Debug)]
struct Tap {
    room: RoomId,
    tracks: Vec<TapTrack>,
    tx: tokio::sync::mpsc::Sender<TapPacket>,
}

#[derive(Debug)]
struct TapTrack {
    slot: usize,
    kind: MediaKind,
    fwd: Forwarder,
}

#[derive(Debug)]
struct LayerSeen {
    participant: ParticipantId,
    rid: Option<Rid>,
    last_seen: Instant,
    window_start: Instant,
    window_bytes: u64,
    bitrate_bps: u64,
}

/// One shard's state. See the module docs.
pub struct ShardCore {
    index: usize,
    config: SfuConfig,
    candidates: Vec<SocketAddr>,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    /// Peer by remote UDP address.
    by_addr: HashMap<SocketAddr, usize>,
    /// Peer by remote address of an open ICE-TCP connection.
    by_tcp: HashMap<SocketAddr, usize>,
    by_session: HashMap<SessionId, usize>,
    publishers: HashMap<ParticipantId, usize>,
    /// Bridge publishers (RTMP ingest and other non-WebRTC sources) by session.
    bridges: HashMap<SessionId, Bridge>,
    payload_scratch: Vec<Payload>,
    rooms: HashMap<RoomId, RoomState>,
    layers: Vec<LayerSeen>,
    out: VecDeque<ShardOutput>,
    /// Peer timeouts, earliest first; entries whose instant is not the peer's `scheduled` are
    /// stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    dirty: Vec<usize>,
    /// `is_dirty[i]`: peer i is in `dirty` (keeps marking O(1)).
    is_dirty: Vec<bool>,
    events_scratch: Vec<Event>,
    media_scratch: Vec<MediaPacket>,
    next_tick: Instant,
    /// Time of the latest input.
    now: Instant,
    /// While set and in the future, dirty subscribers wait for the rest of a video frame.
    hold_until: Option<Instant>,
    stats: ShardStats,
    multi_shard: bool,
    /// Stage taps by id.
    taps: HashMap<u64, Tap>,
}

impl std::fmt::Debug for ShardCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCore")
            .field("index", &self.index)
            .field("stats", &self.stats)
            .finish()
    }
}

/// The codecs Venue negotiates: H.264 (packetization-mode 1: constrained baseline, baseline,
/// main, high), VP8, and Opus stereo at music bitrates (RFC 7587 §6.1 `stereo=1;
/// sprop-stereo=1`, no DTX, in-band FEC).
pub fn codec_config() -> CodecConfig {
    let mut c = CodecConfig::new_with_defaults();
    c.clear();
    c.add_h264(108.into(), Some(109.into()), true, 0x42e01f);
    c.add_h264(127.into(), Some(121.into()), true, 0x42001f);
    c.add_h264(123.into(), Some(119.into()), true, 0x4d001f);
    c.add_h264(114.into(), Some(115.into()), true, 0x64001f);
    c.add_config(
        96.into(),
        Some(97.into()),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    c.add_config(
        111.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            stereo: Some(true),
            sprop_stereo: Some(true),
            use_dtx: Some(false),
            ..Default::default()
        },
    );
    c
}

fn rtc_config(config: &SfuConfig, subscriber: bool) -> RtcConfig {
    let mut rc = RtcConfig::new().set_ice_lite(true).set_rtp_mode(true);
    *rc.codec_config() = codec_config();
    if subscriber {
        rc = rc.enable_bwe(Some(Bitrate::bps(config.initial_bitrate_bps)));
    }
    rc
}

impl ShardCore {
    /// A shard numbered `index` (`< shard_count`) whose socket is reached at each of
    /// `candidates` (the host candidates it advertises).
    pub fn new(
        index: usize,
        shard_count: usize,
        config: SfuConfig,
        candidates: Vec<SocketAddr>,
        now: Instant,
    ) -> ShardCore {
        ShardCore {
            index,
            config,
            candidates,
            peers: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            by_tcp: HashMap::new(),
            by_session: HashMap::new(),
            publishers: HashMap::new(),
            bridges: HashMap::new(),
            payload_scratch: Vec::new(),
            rooms: HashMap::new(),
            layers: Vec::new(),
            out: VecDeque::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            is_dirty: Vec::new(),
            events_scratch: Vec::new(),
            media_scratch: Vec::new(),
            next_tick: now + TICK,
            now,
            hold_until: None,
            stats: ShardStats::default(),
            multi_shard: shard_count > 1,
            taps: HashMap::new(),
        }
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Counters so far.
    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    /// Number of live peers.
    pub fn peer_count(&self) -> usize {
        self.by_session.len()
    }

    /// Next thing to do. Call until it returns `Timeout`.
    ///
    /// Subscribers that media was written to since the last call are polled here, once per
    /// batch of input rather than once per packet (per-viewer batching): feed a batch of
    /// datagrams, then poll.
    pub fn poll_output(&mut self) -> ShardOutput {
        let held = self.hold_until.filter(|t| self.now < *t);
        if held.is_none() {
            self.hold_until = None;
            if self.out.is_empty() && !self.dirty.is_empty() {
                self.drain_dirty(self.now);
            }
        }
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut t = match self.timers.peek() {
            Some(Reverse((t, _))) => self.next_tick.min(*t),
            None => self.next_tick,
        };
        if let Some(h) = held {
            t = t.min(h);
        }
        ShardOutput::Timeout(t)
    }

    /// Makes sure peer `idx` has a timer entry no later than its `next_timeout`.
    fn schedule(&mut self, idx: usize) {
        let Some(Some(p)) = self.peers.get_mut(idx) else {
            return;
        };
        if p.scheduled.is_none_or(|s| p.next_timeout < s) {
            p.scheduled = Some(p.next_timeout);
            self.timers.push(Reverse((p.next_timeout, idx)));
        }
    }

    /// The local address a datagram from `source` arrived at, for str0m's candidate matching.
    /// `destination_ip` is the datagram's own destination (`IP_PKTINFO`) when the shell knows
    /// it; it is used when it is one of our candidates. Otherwise (no pktinfo, or 1:1 NAT where
    /// we advertise the public IP) the advertised candidate of the sender's IP family and scope
    /// is taken (loopback for loopback).
    fn local_addr_for(
        &self,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
    ) -> Option<SocketAddr> {
        if let Some(ip) = destination_ip
            && let Some(c) = self.candidates.iter().find(|c| c.ip() == ip)
        {
            return Some(*c);
        }
        let same = self.candidates.iter().find(|c| c.ip() == source.ip());
        let scoped = self.candidates.iter().find(|c| {
            c.is_ipv4() == source.is_ipv4() && c.ip().is_loopback() == source.ip().is_loopback()
        });
        let family = self
            .candidates
            .iter()
            .find(|c| c.is_ipv4() == source.is_ipv4());
        same.or(scoped).or(family).copied()
    }

    /// One datagram from the shard's socket. Unknown senders are only matched by STUN
    /// (`Rtc::accepts`); anything else from them is dropped and counted. `source` and
    /// `destination_ip` are plain IPv4 or IPv6 (the shell un-maps `::ffff:a.b.c.d`).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &[u8],
    ) {
        self.receive(now, Protocol::Udp, source, destination_ip, contents);
    }

    /// One RFC 4571 frame (without its length prefix) from the ICE-TCP connection whose remote
    /// address is `source` and local IP `destination_ip` (RFC 6544). As for datagrams, only a
    /// STUN request that a session accepts ties a new connection to that session; anything
    /// else from an unknown connection is dropped and counted. The shell must call
    /// [`ShardCore::handle_tcp_closed`] when the connection ends.
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &[u8],
    ) {
        self.receive(now, Protocol::Tcp, source, destination_ip, contents);
    }

    /// The ICE-TCP connection from `source` is gone: its address is forgotten, and packets a
    /// session still has for it are dropped (counted in [`ShardStats::tcp_unrouted`]) rather
    /// than handed to the shell. A new connection from the same address must start with STUN.
    pub fn handle_tcp_closed(&mut self, now: Instant, source: SocketAddr) {
        self.now = now;
        let Some(idx) = self.by_tcp.remove(&source) else {
            return;
        };
        if let Some(Some(p)) = self.peers.get_mut(idx) {
            p.addrs.retain(|a| *a != (Protocol::Tcp, source));
            trace!(session = %p.session, %source, "ICE-TCP connection closed");
        }
    }

    /// Whether an ICE-TCP connection from `source` is tied to a session.
    pub fn has_tcp_peer(&self, source: SocketAddr) -> bool {
        self.by_tcp.contains_key(&source)
    }

    #[inline]
    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &[u8],
    ) {
        self.now = now;
        let Some(destination) = self.local_addr_for(source, destination_ip) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, contents) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        let by_addr = if proto == Protocol::Udp {
            &mut self.by_addr
        } else {
            &mut self.by_tcp
        };
        let idx = match by_addr.get(&source) {
            Some(&idx) => Some(idx),
            None => {
                // RFC 7983 §7: STUN is first byte 0..=3. Only STUN may introduce a new address.
                let is_stun = contents.first().is_some_and(|b| *b <= 3);
                if !is_stun {
                    None
                } else {
                    let found = self
                        .peers
                        .iter()
                        .enumerate()
                        .find(|(_, p)| p.as_ref().is_some_and(|p| p.rtc.accepts(&input)))
                        .map(|(i, _)| i);
                    if let Some(i) = found {
                        by_addr.insert(source, i);
                        if let Some(Some(p)) = self.peers.get_mut(i) {
                            p.addrs.push((proto, source));
                        }
                    }
                    found
                }
            }
        };
        let Some(idx) = idx else {
            self.stats.datagrams_dropped += 1;
            trace!(%source, "datagram from unknown address dropped");
            return;
        };
        let ok = match self.peers.get_mut(idx) {
            Some(Some(p)) => {
                let input = match input {
                    Input::Receive(_, r) => Input::Receive(p.clock(now), r),
                    other => other,
                };
                let r = catch_unwind(AssertUnwindSafe(|| p.rtc.handle_input(input)));
                matches!(r, Ok(Ok(())))
            }
            _ => false,
        };
        if !ok {
            self.stats.peers_failed += 1;
            self.remove_peer(idx, "input error");
            return;
        }
        self.drive(idx, now);
    }

    /// A message from another shard.
    pub fn handle_remote(&mut self, now: Instant, msg: ShardMsg) {
        self.now = now;
        match msg {
            ShardMsg::Media(pkt) => {
                // A shard that fell this far behind drops media rather than deliver it late.
                if now.saturating_duration_since(pkt.arrival) > MAX_REMOTE_AGE {
                    self.stats.stale_dropped += 1;
                    return;
                }
                self.dispatch(&pkt, now);
            }
            ShardMsg::KeyframeRequest {
                participant,
                rid,
                kind,
            } => {
                if let Some(&idx) = self.publishers.get(&participant) {
                    self.request_keyframe_local(idx, rid, kind, now);
                    self.drive(idx, now);
                }
            }
        }
    }

    /// Time has passed: drive every peer whose timeout is due, and housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(&Reverse((t, idx))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let held = self.hold_until.filter(|h| now < *h);
            let dirty = self.is_dirty.get(idx).copied().unwrap_or(false);
            let ok = match self.peers.get_mut(idx) {
                Some(Some(p)) if p.scheduled == Some(t) => {
                    p.scheduled = None;
                    if let (Some(h), true) = (held, dirty) {
                        // Mid-frame: this subscriber's queued packets wait for the rest of
                        // the frame (FRAME_HOLD); so does its timer, by at most that long.
                        p.scheduled = Some(h);
                        self.timers.push(Reverse((h, idx)));
                        continue;
                    }
                    if p.next_timeout > now {
                        // Its timeout moved later since this entry was made.
                        self.schedule(idx);
                        continue;
                    }
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let at = p.clock(now);
                        p.rtc.handle_input(Input::Timeout(at))
                    }));
                    matches!(r, Ok(Ok(())))
                }
                // Stale entry.
                _ => continue,
            };
            if !ok {
                self.stats.peers_failed += 1;
                self.remove_peer(idx, "timeout error");
                continue;
            }
            self.drive(idx, now);
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.housekeeping(now);
        }
    }

    /// A command from the control plane.
    pub fn handle_command(&mut self, now: Instant, cmd: ShardCommand) {
        self.now = now;
        match cmd {
            ShardCommand::Publish {
                session,
                room,
                participant,
                offer,
                reply,
            } => {
                let r = self.add_publisher(now, session, room, participant, offer);
                let _ = reply.send(r);
            }
            ShardCommand::Subscribe {
                session,
                room,
                target,
                offer,
                layout,
                reply,
            } => {
                let r = self.add_subscriber(now, session, room, target, offer, layout);
                let _ = reply.send(r);
            }
            ShardCommand::Patch {
                session,
                ufrag,
                candidates,
                reply,
            } => {
                let r = match self.by_session.get(&session).copied() {
                    Some(idx) => {
                        let restart = match (&ufrag, self.peers.get(idx)) {
                            (Some(u), Some(Some(p))) => {
                                p.remote_ufrag.as_deref() != Some(u.as_str())
                            }
                            _ => false,
                        };
                        if restart {
                            let _ = reply.send(Err(SfuError::IceRestartUnsupported));
                            return;
                        }
                        if let Some(Some(p)) = self.peers.get_mut(idx) {
                            for c in candidates {
                                p.rtc.add_remote_candidate(c);
                            }
                        }
                        self.drive(idx, now);
                        Ok(PatchOutcome::Trickled)
                    }
                    None => Err(SfuError::UnknownSession),
                };
                let _ = reply.send(r);
            }
            ShardCommand::BridgeOpen {
                session,
                room,
                participant,
            } => {
                self.open_bridge(session, room, participant);
            }
            ShardCommand::BridgeMedia { session, media } => {
                self.bridge_media(now, session, media);
            }
            ShardCommand::BridgeInfo { session, info } => {
                if let Some(b) = self.bridges.get_mut(&session) {
                    b.health.set_info(info);
                }
            }
            ShardCommand::PublisherHealth { session, reply } => {
                let _ = reply.send(Ok(self.publisher_health(session, now)));
            }
            ShardCommand::Close { session, reply } => {
                if self.close_bridge(session, "closed by request") {
                    let _ = reply.send(Ok(()));
                    self.drain_dirty(now);
                    return;
                }
                let r = match self.by_session.get(&session).copied() {
                    Some(idx) => {
                        self.remove_peer(idx, "closed by request");
                        Ok(())
                    }
                    None => Err(SfuError::UnknownSession),
                };
                let _ = reply.send(r);
            }
            ShardCommand::DropParticipant { participant } => {
                if let Some(idx) = self.publishers.get(&participant).copied() {
                    self.remove_peer(idx, "replaced by a new session");
                }
                self.close_bridges_of(participant);
            }
            ShardCommand::SetStage { room, slots } => {
                let r = self.rooms.entry(room).or_default();
                r.stage = slots;
                let subs = r.subscribers.clone();
                for idx in subs {
                    self.refresh_targets(idx, now);
                }
                self.refresh_taps(now);
            }
            ShardCommand::OpenTap { id, room, tx } => {
                self.rooms.entry(room).or_default();
                let mut tracks = Vec::new();
                for slot in 0..self.config.max_slots {
                    tracks.push(TapTrack {
                        slot,
                        kind: MediaKind::Video,
                        fwd: Forwarder::new(90_000),
                    });
                    tracks.push(TapTrack {
                        slot,
                        kind: MediaKind::Audio,
                        fwd: Forwarder::new(48_000),
                    });
                }
                self.taps.insert(id, Tap { room, tracks, tx });
                info!(
                    shard = self.index,
                    tap = id,
                    room = room.0,
                    "stage tap opened"
                );
                self.refresh_taps(now);
            }
            ShardCommand::CloseTap { id } => {
                if self.taps.remove(&id).is_some() {
                    info!(shard = self.index, tap = id, "stage tap closed");
                }
            }
            ShardCommand::TapKeyframe { id, slot } => {
                let src = self.taps.get(&id).and_then(|t| {
                    t.tracks
                        .iter()
                        .find(|t| t.slot == slot && t.kind == MediaKind::Video)
                        .and_then(|t| t.fwd.target())
                });
                if let Some(src) = src {
                    self.request_keyframe(src, KeyframeRequestKind::Pli, now);
                }
            }
            ShardCommand::SetRoomState { room, frame } => {
                let r = self.rooms.entry(room).or_default();
                r.frame = Some(frame.clone());
                let subs = r.subscribers.clone();
                for idx in subs {
                    self.send_frame(idx, ChannelClass::Reliable, &frame);
                    self.mark_dirty(idx);
                }
            }
            ShardCommand::SendChannel {
                session,
                class,
                frame,
            } => {
                if let Some(idx) = self.by_session.get(&session).copied() {
                    self.send_frame(idx, class, &frame);
                    self.mark_dirty(idx);
                }
            }
            ShardCommand::BroadcastChannel { room, class, frame } => {
                let subs = self
                    .rooms
                    .get(&room)
                    .map(|r| r.subscribers.clone())
                    .unwrap_or_default();
                for idx in subs {
                    self.send_frame(idx, class, &frame);
                    self.mark_dirty(idx);
                }
            }
        }
        self.drain_dirty(now);
    }

    /// A new peer with a UDP host candidate per candidate address and, with `ice_tcp`, a
    /// passive TCP host candidate (RFC 6544 §4.5) on the same address and port. str0m gives
    /// TCP host candidates a lower type preference than UDP (90 vs 126), so a browser that can
    /// use UDP does.
    fn new_rtc(&self, now: Instant, subscriber: bool) -> Rtc {
        let mut rtc = rtc_config(&self.config, subscriber).build(now);
        for addr in &self.candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        if self.config.ice_tcp {
            for addr in &self.candidates {
                let c = Candidate::builder()
                    .tcp()
                    .host(*addr)
                    .tcptype(TcpType::Passive)
                    .build();
                if let Ok(c) = c {
                    rtc.add_local_candidate(c);
                }
            }
        }
        rtc
    }

    fn insert_peer(&mut self, peer: Peer) -> usize {
        let session = peer.session;
        let idx = match self.free.pop() {
            Some(i) => {
                self.peers[i] = Some(peer);
                i
            }
            None => {
                self.peers.push(Some(peer));
                self.peers.len() - 1
            }
        };
        self.by_session.insert(session, idx);
        idx
    }

    fn answer(rtc: &mut Rtc, offer: SdpOffer) -> Result<(String, String), SfuError> {
        let r = catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)));
        match r {
            Ok(Ok(answer)) => {
                let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
                Ok((answer.to_sdp_string(), ufrag))
            }
            Ok(Err(e)) => Err(SfuError::BadOffer(e.to_string())),
            Err(_) => Err(SfuError::BadOffer("offer could not be processed".into())),
        }
    }

    fn add_publisher(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
        offer: SdpOffer,
    ) -> Result<SessionAnswer, SfuError> {
        if let Some(old) = self.publishers.get(&participant).copied() {
            self.remove_peer(old, "replaced by a new session");
        }
        let remote_ufrag = offer_ufrag(&offer);
        let mut rtc = self.new_rtc(now, false);
        let (answer_sdp, ice_ufrag) = Self::answer(&mut rtc, offer)?;
        let codecs = rtc
            .codec_config()
            .params()
            .iter()
            .map(|p| {
                let spec = p.spec();
                (
                    p.pt(),
                    CodecKey {
                        codec: spec.codec,
                        profile: spec.format.profile_level_id,
                    },
                    spec.clock_rate.get(),
                )
            })
            .collect();
        let peer = Peer::new(
            session,
            room,
            rtc,
            remote_ufrag,
            now,
            Role::Publisher(Publisher {
                participant,
                streams: Vec::new(),
                codecs,
                last_keyframe_request: Vec::new(),
                deferred_keyframe_requests: Vec::new(),
                health: Box::new(HealthMeter::new(IngestProtocol::Whip)),
            }),
        );
        let idx = self.insert_peer(peer);
        self.publishers.insert(participant, idx);
        info!(shard = self.index, %session, room = room.0, participant = participant.0, "publisher session created");
        self.drive(idx, now);
        Ok(SessionAnswer {
            session,
            answer_sdp,
            ice_ufrag,
        })
    }

    fn add_subscriber(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        target: SubscribeTarget,
        offer: SdpOffer,
        layout: MidLayout,
    ) -> Result<SessionAnswer, SfuError> {
        let remote_ufrag = offer_ufrag(&offer);
        let mut rtc = self.new_rtc(now, true);
        let (answer_sdp, ice_ufrag) = Self::answer(&mut rtc, offer)?;
        let slots = match target {
            SubscribeTarget::Stage => self.config.max_slots,
            SubscribeTarget::Participant(_) => 1,
        };
        let mut tracks = Vec::new();
        for (kind, mids, clock) in [
            (MediaKind::Video, &layout.video, 90_000),
            (MediaKind::Audio, &layout.audio, 48_000),
        ] {
            for (slot, mid) in mids.iter().take(slots).enumerate() {
                // Forwarded media leaves at once: the publisher already paces it, and a pacer
                // here queues video behind its estimate (seconds of delay under load). The
                // TWCC estimate is still made and drives the simulcast layer choice.
                let ssrc = rtc.direct_api().stream_tx_by_mid(*mid, None).map(|s| {
                    s.set_unpaced(true);
                    s.ssrc()
                });
                tracks.push(TrackOut {
                    slot,
                    kind,
                    mid: *mid,
                    ssrc,
                    fwd: Forwarder::new(clock),
                    pts: Vec::new(),
                });
            }
        }
        let peer = Peer::new(
            session,
            room,
            rtc,
            remote_ufrag,
            now,
            Role::Subscriber(Subscriber {
                target,
                tracks,
                channel: None,
                lossy_channel: None,
                bwe: Bitrate::bps(self.config.initial_bitrate_bps),
            }),
        );
        let idx = self.insert_peer(peer);
        self.rooms.entry(room).or_default().subscribers.push(idx);
        debug!(shard = self.index, %session, room = room.0, "subscriber session created");
        self.drive(idx, now);
        Ok(SessionAnswer {
            session,
            answer_sdp,
            ice_ufrag,
        })
    }

    fn remove_peer(&mut self, idx: usize, why: &str) {
        let Some(mut peer) = self.peers.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        self.by_session.remove(&peer.session);
        for (proto, a) in &peer.addrs {
            if *proto == Protocol::Udp {
                self.by_addr.remove(a);
            } else {
                self.by_tcp.remove(a);
            }
        }
        peer.rtc.disconnect();
        match &peer.role {
            Role::Publisher(p) => {
                if self.publishers.get(&p.participant) == Some(&idx) {
                    self.publishers.remove(&p.participant);
                }
                info!(shard = self.index, session = %peer.session, participant = p.participant.0, why, "publisher session ended");
                self.out
                    .push_back(ShardOutput::Event(SfuEvent::PublisherDown {
                        room: peer.room,
                        participant: p.participant,
                        session: peer.session,
                    }));
            }
            Role::Subscriber(_) => {
                if let Some(r) = self.rooms.get_mut(&peer.room) {
                    r.subscribers.retain(|&i| i != idx);
                }
                debug!(shard = self.index, session = %peer.session, why, "subscriber session ended");
                self.out
                    .push_back(ShardOutput::Event(SfuEvent::SubscriberDown {
                        room: peer.room,
                        session: peer.session,
                    }));
            }
        }
    }

    /// Polls one peer until it has nothing more, handling its events.
    fn drive(&mut self, idx: usize, now: Instant) {
        let mut events = std::mem::take(&mut self.events_scratch);
        let Self {
            peers,
            out,
            by_tcp,
            stats,
            ..
        } = self;
        let Some(Some(peer)) = peers.get_mut(idx) else {
            self.events_scratch = events;
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            // str0m's pacer hands out one queued packet per timeout cycle and asks to be woken
            // at once for the next: run those cycles here, so a frame's packets leave in one
            // drive (and one GSO batch) instead of one shell wake-up each. Bounded.
            let mut immediate_cycles = 0;
            loop {
                match peer.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        // Nothing goes to an ICE-TCP connection that has closed (str0m may
                        // still have it as the selected pair until consent runs out).
                        if t.proto != Protocol::Udp && !by_tcp.contains_key(&t.destination) {
                            stats.tcp_unrouted += 1;
                            continue;
                        }
                        out.push_back(ShardOutput::Transmit {
                            proto: t.proto,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.into(),
                        })
                    }
                    Ok(Output::Event(e)) => events.push(e),
                    Ok(Output::Timeout(t)) => {
                        if t <= now + IMMEDIATE_SLACK && immediate_cycles < MAX_IMMEDIATE_CYCLES {
                            immediate_cycles += 1;
                            let at = peer.clock(t.max(now));
                            if peer.rtc.handle_input(Input::Timeout(at)).is_err() {
                                return false;
                            }
                            continue;
                        }
                        peer.next_timeout = t;
                        return true;
                    }
                    Err(e) => {
                        debug!(error = %e, "peer failed");
                        return false;
                    }
                }
            }
        }));
        let alive = matches!(result, Ok(true)) && peer.rtc.is_alive();
        for e in events.drain(..) {
            self.on_event(idx, e, now);
        }
        self.events_scratch = events;
        if !alive {
            if result.is_err() {
                self.stats.peers_failed += 1;
            }
            self.remove_peer(idx, "connection closed");
            return;
        }
        self.schedule(idx);
        // Media collected from a publisher goes out after the poll loop.
        if !self.media_scratch.is_empty() {
            let mut media = std::mem::take(&mut self.media_scratch);
            for pkt in media.drain(..) {
                self.emit_media(pkt, now);
            }
            self.media_scratch = media;
        }
    }

    /// Sends one packet of a local publisher (WebRTC or bridge) to the local subscribers and,
    /// as the same `Arc`, to the other shards.
    fn emit_media(&mut self, pkt: MediaPacket, now: Instant) {
        if self.multi_shard {
            let shared = Arc::new(pkt);
            self.dispatch(&shared, now);
            self.out
                .push_back(ShardOutput::Broadcast(ShardMsg::Media(shared)));
        } else {
            self.dispatch(&pkt, now);
        }
    }

    fn open_bridge(&mut self, session: SessionId, room: RoomId, participant: ParticipantId) {
        if let Some(old) = self.publishers.get(&participant).copied() {
            self.remove_peer(old, "replaced by a new session");
        }
        self.close_bridges_of(participant);
        self.bridges.insert(
            session,
            Bridge {
                room,
                participant,
                video_seq: 1,
                audio_seq: 1,
                profile: None,
                // Bridges are RTMP ingest today; `BridgeHandle::set_info` says otherwise.
                health: HealthMeter::new(IngestProtocol::Rtmp),
            },
        );
        info!(shard = self.index, %session, participant = participant.0, "bridge publisher up");
        self.out
            .push_back(ShardOutput::Event(SfuEvent::PublisherUp {
                room,
                participant,
                session,
            }));
        self.refresh_room(room, self.now);
    }

    fn close_bridge(&mut self, session: SessionId, why: &str) -> bool {
        let Some(b) = self.bridges.remove(&session) else {
            return false;
        };
        info!(shard = self.index, %session, participant = b.participant.0, why, "bridge publisher down");
        self.out
            .push_back(ShardOutput::Event(SfuEvent::PublisherDown {
                room: b.room,
                participant: b.participant,
                session,
            }));
        true
    }

    fn close_bridges_of(&mut self, participant: ParticipantId) {
        let old: Vec<SessionId> = self
            .bridges
            .iter()
            .filter(|(_, b)| b.participant == participant)
            .map(|(s, _)| *s)
            .collect();
        for s in old {
            self.close_bridge(s, "replaced by a new session");
        }
    }

    /// Packetizes one bridge frame (RFC 6184 for H.264, as is for Opus) and forwards it like a
    /// WebRTC publisher's packets.
    fn bridge_media(&mut self, now: Instant, session: SessionId, media: BridgeMedia) {
        let Some(b) = self.bridges.get_mut(&session) else {
            return;
        };
        let (room, participant) = (b.room, b.participant);
        let epoch = session.0;
        let mut packets = Vec::new();
        match media {
            BridgeMedia::Video(frame) => {
                if let Some(p) = frame
                    .parameter_sets
                    .iter()
                    .find_map(|n| sps_profile_level_id(n))
                {
                    b.profile = Some(p);
                }
                let mut payloads = std::mem::take(&mut self.payload_scratch);
                packetize_h264(&frame, MAX_RTP_PAYLOAD, &mut payloads);
                for p in payloads.drain(..) {
                    let switch_point = is_keyframe_start(Codec::H264, &p.data);
                    packets.push(MediaPacket {
                        room,
                        source: SourceKey {
                            participant,
                            rid: None,
                        },
                        kind: MediaKind::Video,
                        codec: CodecKey {
                            codec: Codec::H264,
                            profile: b.profile,
                        },
                        seq: b.video_seq,
                        rtp_time: frame.pts_90k as u32,
                        marker: p.marker,
                        switch_point,
                        payload: Arc::from(p.data),
                        arrival: now,
                        epoch,
                    });
                    b.video_seq += 1;
                }
                self.payload_scratch = payloads;
            }
            BridgeMedia::Audio(frame) => {
                packets.push(MediaPacket {
                    room,
                    source: SourceKey {
                        participant,
                        rid: None,
                    },
                    kind: MediaKind::Audio,
                    codec: CodecKey {
                        codec: Codec::Opus,
                        profile: None,
                    },
                    seq: b.audio_seq,
                    rtp_time: frame.ts_48k as u32,
                    marker: false,
                    switch_point: true,
                    payload: Arc::from(frame.data.as_ref()),
                    arrival: now,
                    epoch,
                });
                b.audio_seq += 1;
            }
        }
        for pkt in &packets {
            let clock_hz = match pkt.kind {
                MediaKind::Video => 90_000,
                MediaKind::Audio => 48_000,
            };
            b.health.observe(now, &observed(pkt, clock_hz));
        }
        self.stats.rtp_in += packets.len() as u64;
        for pkt in packets {
            self.emit_media(pkt, now);
        }
    }

    fn mark_dirty(&mut self, idx: usize) {
        if self.is_dirty.len() <= idx {
            self.is_dirty.resize(idx + 1, false);
        }
        if let Some(flag) = self.is_dirty.get_mut(idx).filter(|f| !**f) {
            *flag = true;
            self.dirty.push(idx);
        }
    }

    fn drain_dirty(&mut self, now: Instant) {
        while let Some(idx) = self.dirty.pop() {
            if let Some(f) = self.is_dirty.get_mut(idx) {
                *f = false;
            }
            self.drive(idx, now);
        }
    }

    fn on_event(&mut self, idx: usize, event: Event, now: Instant) {
        let Some(Some(peer)) = self.peers.get_mut(idx) else {
            return;
        };
        match event {
            Event::Connected => {
                peer.connected = true;
                let (room, session) = (peer.room, peer.session);
                match &peer.role {
                    Role::Publisher(p) => {
                        info!(shard = self.index, %session, participant = p.participant.0, "publisher connected");
                        let participant = p.participant;
                        self.out
                            .push_back(ShardOutput::Event(SfuEvent::PublisherUp {
                                room,
                                participant,
                                session,
                            }));
                        // Subscribers waiting for this publisher need a keyframe now.
                        self.refresh_room(room, now);
                    }
                    Role::Subscriber(_) => {
                        self.out
                            .push_back(ShardOutput::Event(SfuEvent::SubscriberUp {
                                room,
                                session,
                            }));
                        self.refresh_targets(idx, now);
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                peer.rtc.disconnect();
            }
            Event::RtpPacket(pkt) => {
                if let Role::Publisher(_) = peer.role {
                    self.stats.rtp_in += 1;
                    if let Some(m) = Self::media_packet(peer, pkt, now) {
                        self.media_scratch.push(m);
                    }
                }
            }
            Event::KeyframeRequest(req) => {
                if let Role::Subscriber(s) = &peer.role {
                    let source = s
                        .tracks
                        .iter()
                        .find(|t| t.mid == req.mid)
                        .and_then(|t| t.fwd.target());
                    if let Some(src) = source {
                        self.request_keyframe(src, req.kind, now);
                    }
                }
            }
            Event::ChannelOpen(id, label) => {
                if let Role::Subscriber(s) = &mut peer.role {
                    match label.as_str() {
                        "venue" => {
                            s.channel = Some(id);
                            let remote = peer.addrs.first().map(|(_, a)| *a);
                            self.out
                                .push_back(ShardOutput::Event(SfuEvent::ChannelOpen {
                                    room: peer.room,
                                    session: peer.session,
                                    remote,
                                }));
                            let frame = self.rooms.get(&peer.room).and_then(|r| r.frame.clone());
                            if let Some(f) = frame {
                                self.send_frame(idx, ChannelClass::Reliable, &f);
                                self.mark_dirty(idx);
                            }
                        }
                        "venue-lossy" => s.lossy_channel = Some(id),
                        _ => {}
                    }
                }
            }
            Event::ChannelData(d) => {
                if let Role::Subscriber(s) = &peer.role {
                    let ours = s.channel == Some(d.id) || s.lossy_channel == Some(d.id);
                    if ours && d.data.len() <= MAX_CHANNEL_MESSAGE {
                        self.out
                            .push_back(ShardOutput::Event(SfuEvent::ChannelMessage {
                                room: peer.room,
                                session: peer.session,
                                data: Bytes::from(d.data),
                            }));
                    } else {
                        self.stats.datagrams_dropped += 1;
                    }
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Role::Subscriber(s) = &mut peer.role {
                    s.bwe = estimate;
                }
            }
            _ => {}
        }
    }

    /// Turns a publisher's RTP packet into a [`MediaPacket`], learning stream identities.
    fn media_packet(peer: &mut Peer, pkt: RtpPacket, now: Instant) -> Option<MediaPacket> {
        let Role::Publisher(p) = &mut peer.role else {
            return None;
        };
        let ssrc = pkt.header.ssrc;
        let known = p
            .streams
            .iter()
            .find(|s| s.0 == ssrc)
            .map(|s| (s.1, s.2, s.3));
        let (kind, mid, rid) = match known {
            Some(k) => k,
            None => {
                let (mid, rid) = {
                    let mut api = peer.rtc.direct_api();
                    let s = api.stream_rx(&ssrc)?;
                    (s.mid(), s.rid())
                };
                let kind = peer.rtc.media(mid)?.kind();
                p.streams.push((ssrc, kind, mid, rid));
                (kind, mid, rid)
            }
        };
        // Only the first m-line of each kind is the publisher's track.
        let first_of_kind = p.streams.iter().find(|s| s.1 == kind).map(|s| s.2);
        if first_of_kind != Some(mid) {
            return None;
        }
        let (codec, clock) = p
            .codecs
            .iter()
            .find(|c| c.0 == pkt.header.payload_type)
            .map(|c| (c.1, c.2))?;
        let switch_point = match kind {
            MediaKind::Audio => true,
            MediaKind::Video => is_keyframe_start(codec.codec, &pkt.payload),
        };
        let m = MediaPacket {
            room: peer.room,
            source: SourceKey {
                participant: p.participant,
                rid,
            },
            kind,
            codec,
            seq: *pkt.seq_no,
            rtp_time: pkt.header.timestamp,
            marker: pkt.header.marker,
            switch_point,
            payload: pkt.payload,
            arrival: now,
            epoch: peer.session.0,
        };
        p.health.observe(now, &observed(&m, clock));
        Some(m)
    }

    /// The health of a publisher session on this shard (WHIP peer or bridge) at `now`; `None`
    /// for unknown sessions and subscribers.
    pub fn publisher_health(&self, session: SessionId, now: Instant) -> Option<PublisherHealth> {
        if let Some(b) = self.bridges.get(&session) {
            return Some(b.health.snapshot(now));
        }
        let idx = *self.by_session.get(&session)?;
        match self.peers.get(idx) {
            Some(Some(Peer {
                role: Role::Publisher(p),
                ..
            })) => Some(p.health.snapshot(now)),
            _ => None,
        }
    }

    /// Sends one publisher packet to every local subscriber track that shows its source.
    fn dispatch(&mut self, pkt: &MediaPacket, now: Instant) {
        if pkt.kind == MediaKind::Video {
            self.note_layer(pkt, now);
        }
        // Frame-level batching (see FRAME_HOLD): hold until the frame's last packet.
        if pkt.kind == MediaKind::Video && !pkt.marker {
            self.hold_until.get_or_insert(now + FRAME_HOLD);
        } else {
            self.hold_until = None;
        }
        let Some(room) = self.rooms.get(&pkt.room) else {
            return;
        };
        let meta = PacketMeta {
            source: pkt.source,
            seq: pkt.seq,
            rtp_time: pkt.rtp_time,
            switch_point: pkt.switch_point,
            arrival: pkt.arrival,
            epoch: pkt.epoch,
        };
        for &idx in &room.subscribers {
            let Some(Some(peer)) = self.peers.get_mut(idx) else {
                continue;
            };
            if !peer.connected {
                continue;
            }
            let Role::Subscriber(sub) = &mut peer.role else {
                continue;
            };
            let mut wrote = false;
            for t in sub.tracks.iter_mut().filter(|t| t.kind == pkt.kind) {
                let rw = match t.fwd.on_packet(&meta) {
                    Verdict::Drop => continue,
                    Verdict::Forward(rw) | Verdict::Switched(rw) => rw,
                };
                let pt = match t.pts.iter().find(|(k, _)| *k == pkt.codec) {
                    Some((_, pt)) => *pt,
                    None => match out_pt(&peer.rtc, t.mid, pkt.codec) {
                        Some(pt) => {
                            t.pts.push((pkt.codec, pt));
                            pt
                        }
                        None => continue,
                    },
                };
                let Some(ssrc) = t.ssrc else { continue };
                let mut api = peer.rtc.direct_api();
                let Some(tx) = api.stream_tx(&ssrc) else {
                    continue;
                };
                let write = RtpWrite::new(
                    pt,
                    SeqNo::from(rw.seq),
                    rw.rtp_time,
                    pkt.arrival,
                    pkt.payload.clone(),
                )
                .marker(pkt.marker)
                .nackable(pkt.kind == MediaKind::Video);
                tx.write_rtp(write);
                wrote = true;
                self.stats.rtp_forwarded += 1;
            }
            if wrote {
                // Inline `mark_dirty`: `self.rooms` is borrowed here.
                if self.is_dirty.len() <= idx {
                    self.is_dirty.resize(idx + 1, false);
                }
                if let Some(flag) = self.is_dirty.get_mut(idx).filter(|f| !**f) {
                    *flag = true;
                    self.dirty.push(idx);
                }
            }
        }
        if !self.taps.is_empty() {
            self.dispatch_taps(pkt, &meta);
        }
    }

    /// Hands `pkt` to the room's stage taps (see [`crate::tap`]).
    fn dispatch_taps(&mut self, pkt: &MediaPacket, meta: &PacketMeta) {
        for tap in self.taps.values_mut().filter(|t| t.room == pkt.room) {
            for t in tap.tracks.iter_mut().filter(|t| t.kind == pkt.kind) {
                let rw = match t.fwd.on_packet(meta) {
                    Verdict::Drop => continue,
                    Verdict::Forward(rw) | Verdict::Switched(rw) => rw,
                };
                let out = TapPacket {
                    slot: t.slot,
                    kind: pkt.kind,
                    codec: pkt.codec.codec,
                    seq: rw.seq,
                    rtp_time: rw.rtp_time,
                    marker: pkt.marker,
                    payload: pkt.payload.clone(),
                };
                if tap.tx.try_send(out).is_err() {
                    self.stats.tap_dropped += 1;
                }
            }
        }
    }

    /// Points every tap's forwarders at the stage's sources (layer by [`TAP_BUDGET_BPS`] ÷
    /// slots in use) and asks new video sources for keyframes.
    fn refresh_taps(&mut self, now: Instant) {
        let mut requests = Vec::new();
        let ids: Vec<u64> = self.taps.keys().copied().collect();
        for id in ids {
            let Some(room) = self.taps.get(&id).map(|t| t.room) else {
                continue;
            };
            let stage = self
                .rooms
                .get(&room)
                .map(|r| r.stage.clone())
                .unwrap_or_default();
            let active = stage.iter().filter(|s| s.is_some()).count().max(1) as u64;
            let budget = TAP_BUDGET_BPS / active;
            let wanted: Vec<Option<SourceKey>> = match self.taps.get(&id) {
                Some(tap) => tap
                    .tracks
                    .iter()
                    .map(|t| match (stage.get(t.slot).copied().flatten(), t.kind) {
                        (None, _) => None,
                        (Some(p), MediaKind::Audio) => Some(SourceKey {
                            participant: p,
                            rid: None,
                        }),
                        (Some(p), _) => Some(SourceKey {
                            participant: p,
                            rid: match self.choose_layer(p, budget) {
                                Some(rid) => rid,
                                None => t.fwd.target().and_then(|k| k.rid),
                            },
                        }),
                    })
                    .collect(),
                None => continue,
            };
            if let Some(tap) = self.taps.get_mut(&id) {
                for (t, key) in tap.tracks.iter_mut().zip(wanted) {
                    if t.fwd.target() == key && t.fwd.current().is_some() {
                        if t.kind == MediaKind::Video
                            && let Some(p) = t.fwd.pending()
                        {
                            requests.push(p);
                        }
                        continue;
                    }
                    let pending = t.fwd.set_target(key);
                    if (pending || t.fwd.current().is_none())
                        && t.kind == MediaKind::Video
                        && let Some(k) = key
                    {
                        requests.push(k);
                    }
                }
            }
        }
        requests.dedup();
        for k in requests {
            self.request_keyframe(k, KeyframeRequestKind::Pli, now);
        }
    }

    fn note_layer(&mut self, pkt: &MediaPacket, now: Instant) {
        let len = pkt.payload.len() as u64 + 12;
        let known = self
            .layers
            .iter_mut()
            .find(|l| l.participant == pkt.source.participant && l.rid == pkt.source.rid);
        match known {
            Some(l) => {
                l.last_seen = now;
                l.window_bytes += len;
                let span = now.saturating_duration_since(l.window_start);
                if span >= Duration::from_millis(500) {
                    let sample = l.window_bytes * 8 * 1000 / (span.as_millis().max(1) as u64);
                    // Smoothed (EWMA, weight 0.3 per 500 ms window): a burst of keyframes on a
                    // low layer must not make it look like the high one.
                    l.bitrate_bps = if l.bitrate_bps == 0 {
                        sample
                    } else {
                        (l.bitrate_bps * 7 + sample * 3) / 10
                    };
                    l.window_start = now;
                    l.window_bytes = 0;
                }
            }
            None => {
                self.layers.push(LayerSeen {
                    participant: pkt.source.participant,
                    rid: pkt.source.rid,
                    last_seen: now,
                    window_start: now,
                    window_bytes: len,
                    bitrate_bps: 0,
                });
                // A new layer changes the choice for everyone watching this publisher.
                self.refresh_room(pkt.room, now);
            }
        }
    }

    fn refresh_room(&mut self, room: RoomId, now: Instant) {
        let subs = match self.rooms.get(&room) {
            Some(r) => r.subscribers.clone(),
            None => return,
        };
        for idx in subs {
            self.refresh_targets(idx, now);
        }
    }

    /// Chooses the simulcast layer of `participant` for a budget in bit/s: the highest layer
    /// whose measured bitrate fits, else the lowest. `None` when no video was seen yet.
    fn choose_layer(&self, participant: ParticipantId, budget_bps: u64) -> Option<Option<Rid>> {
        let mut layers: Vec<&LayerSeen> = self
            .layers
            .iter()
            .filter(|l| l.participant == participant)
            .collect();
        if layers.is_empty() {
            return None;
        }
        layers.sort_by_key(|l| l.bitrate_bps);
        let fitting = layers.iter().rev().find(|l| l.bitrate_bps <= budget_bps);
        Some(fitting.or(layers.first()).map(|l| l.rid).unwrap_or(None))
    }

    /// Recomputes what each of a subscriber's tracks should show (stage + layer choice), and
    /// requests keyframes for new targets.
    fn refresh_targets(&mut self, idx: usize, now: Instant) {
        let (room, target, bwe, n_video) = match self.peers.get(idx) {
            Some(Some(Peer {
                room,
                connected: true,
                role: Role::Subscriber(s),
                ..
            })) => (
                *room,
                s.target,
                s.bwe,
                s.tracks
                    .iter()
                    .filter(|t| t.kind == MediaKind::Video)
                    .count(),
            ),
            _ => return,
        };
        let stage: Vec<Option<ParticipantId>> = match target {
            SubscribeTarget::Stage => self
                .rooms
                .get(&room)
                .map(|r| r.stage.clone())
                .unwrap_or_default(),
            SubscribeTarget::Participant(p) => vec![Some(p)],
        };
        let active = stage
            .iter()
            .take(n_video)
            .filter(|s| s.is_some())
            .count()
            .max(1) as u64;
        let budget = bwe.as_u64() * 9 / 10 / active;
        let mut wanted: Vec<(usize, Option<SourceKey>)> = Vec::new();
        if let Some(Some(Peer {
            role: Role::Subscriber(s),
            ..
        })) = self.peers.get(idx)
        {
            for (ti, t) in s.tracks.iter().enumerate() {
                let src = stage.get(t.slot).copied().flatten();
                let key = match (src, t.kind) {
                    (None, _) => None,
                    (Some(p), MediaKind::Audio) => Some(SourceKey {
                        participant: p,
                        rid: None,
                    }),
                    (Some(p), MediaKind::Video) => match self.choose_layer(p, budget) {
                        Some(rid) => Some(SourceKey {
                            participant: p,
                            rid,
                        }),
                        // Nothing seen yet: keep what we have (or wait).
                        None => Some(SourceKey {
                            participant: p,
                            rid: t.fwd.target().and_then(|k| k.rid),
                        }),
                    },
                };
                wanted.push((ti, key));
            }
        }
        let mut requests = Vec::new();
        if let Some(Some(Peer {
            role: Role::Subscriber(s),
            ..
        })) = self.peers.get_mut(idx)
        {
            for (ti, key) in wanted {
                let Some(t) = s.tracks.get_mut(ti) else {
                    continue;
                };
                if t.fwd.target() == key && t.fwd.current().is_some() {
                    continue;
                }
                let pending = t.fwd.set_target(key);
                if (pending || t.fwd.current().is_none())
                    && t.kind == MediaKind::Video
                    && let Some(k) = key
                {
                    requests.push(k);
                }
            }
        }
        for k in requests {
            self.request_keyframe(k, KeyframeRequestKind::Pli, now);
        }
    }

    fn request_keyframe(&mut self, src: SourceKey, kind: KeyframeRequestKind, now: Instant) {
        match self.publishers.get(&src.participant).copied() {
            Some(idx) => {
                self.request_keyframe_local(idx, src.rid, kind, now);
                self.mark_dirty(idx);
            }
            None if self.multi_shard => {
                self.out
                    .push_back(ShardOutput::Broadcast(ShardMsg::KeyframeRequest {
                        participant: src.participant,
                        rid: src.rid,
                        kind,
                    }));
            }
            None => {}
        }
    }

    /// Sends a PLI/FIR to a local publisher's layer, throttled per layer
    /// (`keyframe_request_interval_ms`); a throttled request is deferred, not lost.
    fn request_keyframe_local(
        &mut self,
        idx: usize,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let interval = self.config.keyframe_request_interval();
        let Some(Some(peer)) = self.peers.get_mut(idx) else {
            return;
        };
        let Role::Publisher(p) = &mut peer.role else {
            return;
        };
        let last = p.last_keyframe_request.iter_mut().find(|(r, _)| *r == rid);
        let allowed = match &last {
            Some((_, at)) => now.saturating_duration_since(*at) >= interval,
            None => true,
        };
        if !allowed {
            if !p.deferred_keyframe_requests.iter().any(|(r, _)| *r == rid) {
                p.deferred_keyframe_requests.push((rid, kind));
            }
            return;
        }
        match last {
            Some(l) => l.1 = now,
            None => p.last_keyframe_request.push((rid, now)),
        }
        let mid = p
            .streams
            .iter()
            .find(|s| s.1 == MediaKind::Video)
            .map(|s| s.2);
        let mid = mid.or_else(|| {
            peer.rtc
                .direct_api()
                .stream_rx_by_mid(Mid::from("0"), None)
                .map(|s| s.mid())
        });
        let Some(mid) = mid else { return };
        if let Some(rx) = peer.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(kind);
            self.stats.keyframe_requests += 1;
            trace!(participant = p.participant.0, ?rid, "keyframe requested");
        }
    }

    /// Writes one frame to a subscriber's channel of `class` (lossy falls back to reliable
    /// when there is no lossy channel; lossy frames are dropped when SCTP is backed up).
    fn send_frame(&mut self, idx: usize, class: ChannelClass, frame: &[u8]) {
        let Some(Some(peer)) = self.peers.get_mut(idx) else {
            return;
        };
        let Role::Subscriber(s) = &peer.role else {
            return;
        };
        let id = match class {
            ChannelClass::Reliable => s.channel,
            ChannelClass::Lossy => s.lossy_channel.or(s.channel),
        };
        let Some(id) = id else { return };
        let Some(mut ch) = peer.rtc.channel(id) else {
            return;
        };
        if class == ChannelClass::Lossy && ch.buffered_amount() > LOSSY_MAX_BUFFERED {
            self.stats.lossy_dropped += 1;
            return;
        }
        if let Err(e) = ch.write(true, frame) {
            debug!(error = %e, "data channel write failed");
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        // Connect timeout.
        let stale: Vec<usize> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .filter(|p| {
                        !p.connected && now.saturating_duration_since(p.created) > CONNECT_TIMEOUT
                    })
                    .map(|_| i)
            })
            .collect();
        for idx in stale {
            self.remove_peer(idx, "did not connect in time");
        }
        // Deferred keyframe requests.
        let pubs: Vec<usize> = self.publishers.values().copied().collect();
        for idx in pubs {
            let deferred = match self.peers.get_mut(idx) {
                Some(Some(Peer {
                    role: Role::Publisher(p),
                    ..
                })) => std::mem::take(&mut p.deferred_keyframe_requests),
                _ => continue,
            };
            if deferred.is_empty() {
                continue;
            }
            for (rid, kind) in deferred {
                self.request_keyframe_local(idx, rid, kind, now);
            }
            self.mark_dirty(idx);
        }
        // Layers gone quiet.
        let before = self.layers.len();
        self.layers
            .retain(|l| now.saturating_duration_since(l.last_seen) < LAYER_EXPIRY);
        let layers_changed = self.layers.len() != before;
        // Re-choose simulcast layers against fresh bandwidth estimates.
        let subs: Vec<usize> = self
            .rooms
            .values()
            .flat_map(|r| r.subscribers.iter().copied())
            .collect();
        let _ = layers_changed;
        for &idx in &subs {
            self.refresh_targets(idx, now);
        }
        // Switches still waiting for a keyframe ask again: encoders (Chrome's simulcast
        // encoders among them) sometimes ignore a PLI, and a pending switch must not wait
        // for the next natural keyframe. One request per source per tick, throttled per layer.
        let mut waiting: Vec<SourceKey> = Vec::new();
        for &idx in &subs {
            if let Some(Some(Peer {
                role: Role::Subscriber(s),
                ..
            })) = self.peers.get(idx)
            {
                for t in s.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                    if let Some(p) = t.fwd.pending()
                        && !waiting.contains(&p)
                    {
                        waiting.push(p);
                    }
                }
            }
        }
        for src in waiting {
            self.request_keyframe(src, KeyframeRequestKind::Pli, now);
        }
        if !self.taps.is_empty() {
            self.refresh_taps(now);
        }
    }
}

/// What the health meter needs of a packet (borrowed, no copy).
fn observed(pkt: &MediaPacket, clock_hz: u32) -> Observed<'_> {
    Observed {
        kind: pkt.kind,
        rid: pkt.source.rid,
        codec: pkt.codec.codec,
        profile: pkt.codec.profile,
        clock_hz,
        seq: pkt.seq,
        rtp_time: pkt.rtp_time,
        payload: &pkt.payload,
        keyframe_start: pkt.switch_point && pkt.kind == MediaKind::Video,
    }
}

fn offer_ufrag(offer: &SdpOffer) -> Option<String> {
    offer.to_sdp_string().lines().find_map(|l| {
        l.trim_end()
            .strip_prefix("a=ice-ufrag:")
            .map(str::to_string)
    })
}

/// Finds the payload type on a subscriber's m-line for a codec: same codec, and for H.264 the
/// same `profile-level-id` when the subscriber offered it, else any H.264 with
/// packetization-mode 1.
fn out_pt(rtc: &Rtc, mid: Mid, key: CodecKey) -> Option<Pt> {
    let media = rtc.media(mid)?;
    let remote = media.remote_pts();
    let params = rtc.codec_config().params();
    let candidates = params
        .iter()
        .filter(|p| remote.contains(&p.pt()) && p.spec().codec == key.codec);
    let mut best: Option<Pt> = None;
    for p in candidates {
        let spec = p.spec();
        if key.codec == Codec::H264 && spec.format.packetization_mode != Some(1) {
            continue;
        }
        if spec.format.profile_level_id == key.profile {
            return Some(p.pt());
        }
        best.get_or_insert(p.pt());
    }
    best
}

/// Host candidate addresses for a shard socket on `port`: the configured IPs (public IP /
/// 1:1 NAT mapping), else the bind IP when specific, else the local interface addresses the
/// socket can be reached at: every IPv4 one (loopback included) and, when the socket is
/// dual-stack (`bind_ip` = `::`), every global or unique-local IPv6 one (see
/// [`is_advertised_ipv6`]). IPv4-mapped addresses are listed as IPv4; duplicates are dropped.
pub fn candidate_addrs(config: &SfuConfig, port: u16, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let ips: Vec<IpAddr> = if !config.candidate_ips.is_empty() {
        config.candidate_ips.clone()
    } else if !config.bind_ip.is_unspecified() {
        vec![config.bind_ip]
    } else {
        let dual_stack = config.bind_ip.is_ipv6();
        interfaces
            .iter()
            .map(|ip| ip.to_canonical())
            .filter(|ip| match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => dual_stack && is_advertised_ipv6(v6),
            })
            .collect()
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        let addr = SocketAddr::new(ip.to_canonical(), port);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Whether an interface's IPv6 address is worth a default candidate: global unicast or
/// unique-local (`fc00::/7`, RFC 4193); not loopback, link-local (`fe80::/10`, needs a scope
/// id a candidate cannot carry), multicast, unspecified or IPv4-mapped.
pub fn is_advertised_ipv6(ip: &std::net::Ipv6Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unicast_link_local()
        || ip.to_ipv4_mapped().is_some())
}

#[cfg(test)]
#[path = "tests/shard.rs"]
mod tests;
