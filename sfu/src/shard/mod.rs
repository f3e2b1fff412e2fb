//! The sans-IO core of one media shard, split the way the field thinks of an SFU: rooms
//! (stage, state frame, data channels) → participants (publisher ingress, subscriber outputs,
//! bridges, taps) → tracks → forwarders.
//!
//! [`ShardCore`] never reads the clock, spawns, or touches a socket or a channel (str0m's
//! contract): [`ShardCore::handle_input`] takes an [`Input`] with the current time, and
//! [`ShardCore::poll_output`] says what to do: datagrams to send, messages for other shards,
//! events for the control plane, replies to commands, packets for stage taps, and when to
//! come back with [`Input::Timeout`]. The shell (`crate::shell`) does the IO.
//!
//! Its owned parts, one file each:
//! - `peer.rs` — the peer table: str0m peers by remote address (UDP, ICE-TCP) and session,
//!   their timers and pending output, and [`peer::feed_peer`], the one `catch_unwind`;
//! - `publisher.rs` — publisher ingress: streams, keyframe-request throttling per layer,
//!   health hooks; `layers.rs` the simulcast layers seen and their bitrates;
//! - `subscriber.rs` — subscriber outputs: a forwarder per (slot, kind), payload-type mapping,
//!   layer choice, data channels;
//! - `room.rs` — stage and state frame per room; `bridge.rs` — non-WebRTC publishers;
//!   `tap.rs` — stage taps;
//! - `relay.rs` — the edge side of an origin → edge relay: one full-ICE str0m peer whose
//!   packets become [`MediaPacket`]s of one participant per origin stage slot (the origin
//!   side is a subscriber with [`SubscribeTarget::Relay`]).
//!
//! Media flow: a publisher's RTP packet (str0m RTP mode) becomes one [`MediaPacket`] whose
//! payload is shared (`Arc<[u8]>`). It is dispatched to the local subscribers that show its
//! source and, when there are other shards, broadcast to them as the same `Arc`. Each
//! subscriber track runs a `Forwarder` that picks its source/layer and rewrites sequence
//! numbers and timestamps.

#![deny(clippy::disallowed_methods)]

mod bridge;
mod candidates;
mod layers;
mod media;
mod messages;
mod peer;
mod publisher;
pub mod relay;
mod room;
mod routing;
mod stats;
mod subscriber;
mod tap;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::net::Protocol;
use str0m::{Candidate, Event, IceConnectionState};
use tracing::{debug, info, trace};

pub use candidates::{candidate_addrs, is_advertised_ipv6};
pub use media::{CodecKey, MediaPacket, ShardMsg, codec_config};
pub use messages::{Command, Input, Output, Reply, RequestId, TapId, TapPacket};
pub use stats::ShardStats;
pub use tap::TAP_BUDGET_BPS;

use crate::api::{
    ChannelClass, ParticipantId, PatchOutcome, RoomId, SessionAnswer, SessionId, SfuError,
    SfuEvent, SubscribeTarget,
};
use crate::bridge::BridgeMedia;
use crate::config::SfuConfig;
use crate::forward::SourceKey;
use crate::health::PublisherHealth;
use crate::offer::Offer;
use bridge::Bridges;
use peer::{LocalAddrs, Peer, PeerTable, Polled, Received, Role, accept_offer};
use publisher::Publisher;
use routing::{Effects, Routing};
use subscriber::Subscriber;

/// How long a session may take to connect before it is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Period of housekeeping: simulcast layer choice, layer expiry, deferred keyframe requests.
const TICK: Duration = Duration::from_millis(250);
/// Longest time subscribers' output is held back waiting for the rest of a video frame
/// (frame-level batching: a frame's packets to one viewer leave in one GSO `sendmsg`). The
/// decoder needs the whole frame anyway, so holding until the frame's last packet (RTP marker)
/// costs no picture latency; the cap bounds it when the marker is lost or the publisher paces
/// a large keyframe.
const FRAME_HOLD: Duration = Duration::from_millis(10);
/// Media from another shard older than this is dropped, not forwarded late.
const MAX_REMOTE_AGE: Duration = Duration::from_millis(500);

/// One shard's state. See the module docs.
pub struct ShardCore {
    index: usize,
    config: SfuConfig,
    multi_shard: bool,
    /// The host candidates this shard advertises.
    local: LocalAddrs,
    peers: PeerTable,
    /// Rooms, publishers and their layers, taps: who sees what.
    routing: Routing,
    bridges: Bridges,
    /// The output queue and counters.
    fx: Effects,
    /// Reused buffers: a peer's str0m events, and media collected while polling a peer.
    events_scratch: Vec<Event>,
    media_scratch: Vec<MediaPacket>,
    next_tick: Instant,
    /// Time of the latest input.
    now: Instant,
    /// While set and in the future, dirty subscribers wait for the rest of a video frame.
    hold_until: Option<Instant>,
}

impl std::fmt::Debug for ShardCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCore")
            .field("index", &self.index)
            .field("stats", &self.fx.stats)
            .finish()
    }
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
            multi_shard: shard_count > 1,
            local: LocalAddrs::new(candidates),
            peers: PeerTable::default(),
            routing: Routing::new(
                shard_count > 1,
                config.keyframe_request_interval(),
                config.max_slots,
            ),
            bridges: Bridges::default(),
            fx: Effects::default(),
            events_scratch: Vec::new(),
            media_scratch: Vec::new(),
            next_tick: now + TICK,
            now,
            hold_until: None,
            config,
        }
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Counters so far.
    pub fn stats(&self) -> ShardStats {
        self.fx.stats
    }

    /// Number of live peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether an ICE-TCP connection from `source` is tied to a session.
    pub fn has_tcp_peer(&self, source: SocketAddr) -> bool {
        self.peers.has_tcp(source)
    }

    /// Takes one input at `now` (see [`Input`]); then call [`ShardCore::poll_output`] until it
    /// returns [`Output::Timeout`].
    #[inline]
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = now;
        match input {
            Input::Datagram {
                source,
                destination_ip,
                contents,
            } => self.receive(now, Protocol::Udp, source, destination_ip, contents),
            Input::TcpFrame {
                source,
                destination_ip,
                contents,
            } => self.receive(now, Protocol::Tcp, source, destination_ip, contents),
            Input::TcpClosed { source } => {
                if let Some(p) = self.peers.tcp_closed(source) {
                    trace!(session = %p.session, %source, "ICE-TCP connection closed");
                }
            }
            Input::Remote(msg) => self.remote(now, msg),
            Input::Command(cmd) => self.command(now, cmd),
            Input::Timeout => self.timeout(now),
        }
    }

    /// Next thing to do. Call until it returns [`Output::Timeout`].
    ///
    /// Subscribers that media was written to since the last call are polled here, once per
    /// batch of input rather than once per packet (per-viewer batching): feed a batch of
    /// datagrams, then poll.
    pub fn poll_output(&mut self) -> Output {
        let held = self.hold_until.filter(|t| self.now < *t);
        if held.is_none() {
            self.hold_until = None;
            if self.fx.out.is_empty() && self.peers.any_dirty() {
                self.drain_dirty(self.now);
            }
        }
        if let Some(o) = self.fx.out.pop_front() {
            return o;
        }
        let mut t = match self.peers.next_timer() {
            Some(t) => self.next_tick.min(t),
            None => self.next_tick,
        };
        if let Some(h) = held {
            t = t.min(h);
        }
        Output::Timeout(t)
    }

    /// The health of a publisher session on this shard (WHIP peer or bridge) at `now`; `None`
    /// for unknown sessions and subscribers.
    pub fn publisher_health(&self, session: SessionId, now: Instant) -> Option<PublisherHealth> {
        self.bridges
            .health(session, now)
            .or_else(|| self.peers.publisher_health(session, now))
    }

    /// A datagram or ICE-TCP frame. Unknown senders are only matched by STUN
    /// (`Rtc::accepts`); anything else from them is dropped and counted.
    #[inline]
    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &[u8],
    ) {
        match self
            .peers
            .receive(&self.local, now, proto, source, destination_ip, contents)
        {
            Received::Dropped => self.fx.stats.datagrams_dropped += 1,
            Received::Failed(idx) => {
                self.fx.stats.peers_failed += 1;
                self.remove_peer(idx, "input error");
            }
            Received::Fed(idx) => self.drive(idx, now),
        }
    }

    /// A message from another shard.
    fn remote(&mut self, now: Instant, msg: ShardMsg) {
        match msg {
            ShardMsg::Media(pkt) => {
                // A shard that fell this far behind drops media rather than deliver it late.
                if now.saturating_duration_since(pkt.arrival) > MAX_REMOTE_AGE {
                    self.fx.stats.stale_dropped += 1;
                    return;
                }
                self.dispatch(&pkt, now);
            }
            ShardMsg::KeyframeRequest {
                participant,
                rid,
                kind,
            } => {
                if let Some(idx) = self.routing.publishers.get(participant) {
                    self.routing.request_keyframe_local(
                        &mut self.peers,
                        &mut self.fx,
                        idx,
                        SourceKey { participant, rid },
                        kind,
                        now,
                    );
                    self.drive(idx, now);
                }
            }
        }
    }

    /// Drives every peer whose timeout is due, and housekeeping.
    fn timeout(&mut self, now: Instant) {
        loop {
            let held = self.hold_until.filter(|h| now < *h);
            let Some(idx) = self.peers.next_due(now, held) else {
                break;
            };
            let Some(ok) = self.peers.feed_timeout(idx, now) else {
                continue;
            };
            if !ok {
                self.fx.stats.peers_failed += 1;
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

    /// A command from the control plane: one small method each.
    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Publish {
                request,
                session,
                room,
                participant,
                offer,
            } => {
                let r = self.publish(now, session, room, participant, offer);
                self.reply(request, Reply::Answer(r));
            }
            Command::Subscribe {
                request,
                session,
                room,
                target,
                offer,
            } => {
                let r = self.subscribe(now, session, room, target, offer);
                self.reply(request, Reply::Answer(r));
            }
            Command::Patch {
                request,
                session,
                ufrag,
                candidates,
            } => {
                let r = self.patch(now, session, ufrag, candidates);
                self.reply(request, Reply::Patched(r));
            }
            Command::OpenRelay {
                request,
                session,
                room,
                participants,
            } => {
                let r = self.open_relay(now, session, room, participants);
                self.reply(request, Reply::RelayOffer(r));
            }
            Command::RelayAnswer {
                request,
                session,
                answer,
            } => {
                let r = self.relay_answer(now, session, *answer);
                self.reply(request, Reply::RelayAnswered(r));
            }
            Command::Close { request, session } => {
                let r = self.close(session);
                self.reply(request, Reply::Closed(r));
            }
            Command::PublisherHealth { request, session } => {
                let h = self.publisher_health(session, now);
                self.reply(request, Reply::Health(h));
            }
            Command::DropParticipant { participant } => self.drop_participant(participant),
            Command::Retarget {
                session,
                participant,
            } => {
                if let Some(idx) = self.peers.by_session(session) {
                    self.routing.retarget_participant(
                        &mut self.peers,
                        &mut self.fx,
                        idx,
                        participant,
                        now,
                    );
                }
            }
            Command::BridgeOpen {
                session,
                room,
                participant,
            } => self.open_bridge(now, session, room, participant),
            Command::BridgeMedia { session, media } => self.bridge_media(now, session, media),
            Command::BridgeInfo { session, info } => self.bridges.set_info(session, info),
            Command::SetStage { room, slots } => {
                self.routing
                    .set_stage(&mut self.peers, &mut self.fx, room, slots, now);
            }
            Command::SetRoomState { room, frame } => {
                self.routing
                    .set_room_state(&mut self.peers, &mut self.fx, room, frame);
            }
            Command::SendChannel {
                session,
                class,
                frame,
            } => {
                if let Some(idx) = self.peers.by_session(session) {
                    self.peers
                        .send_frame(idx, class, &frame, &mut self.fx.stats);
                }
            }
            Command::BroadcastChannel { room, class, frame } => {
                self.routing
                    .broadcast_frame(&mut self.peers, &mut self.fx, room, class, &frame);
            }
            Command::OpenTap { tap, room } => {
                self.routing
                    .open_tap(&mut self.peers, &mut self.fx, tap, room, now);
            }
            Command::CloseTap { tap } => self.routing.close_tap(tap),
            Command::TapKeyframe { tap, slot } => {
                self.routing
                    .tap_keyframe(&mut self.peers, &mut self.fx, tap, slot, now);
            }
        }
        self.drain_dirty(now);
    }

    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.fx.out.push_back(Output::Reply {
            request,
            reply: Box::new(reply),
        });
    }

    fn event(&mut self, event: SfuEvent) {
        self.fx.out.push_back(Output::Event(event));
    }

    /// Accepts a WHIP offer: a new publisher session of `participant` (replacing its old one).
    fn publish(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
        offer: Box<Offer>,
    ) -> Result<SessionAnswer, SfuError> {
        if let Some(old) = self.routing.publishers.get(participant) {
            self.remove_peer(old, "replaced by a new session");
        }
        let (idx, answer) = self.add_peer(now, session, room, offer, false, |rtc, _| {
            Role::Publisher(Publisher::new(participant, rtc))
        })?;
        self.routing.publishers.insert(participant, idx);
        info!(shard = self.index, %session, room = room.0, participant = participant.0, "publisher session created");
        self.drive(idx, now);
        Ok(answer)
    }

    /// Accepts a WHEP offer: a new subscriber session in `room`.
    fn subscribe(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        target: SubscribeTarget,
        offer: Box<Offer>,
    ) -> Result<SessionAnswer, SfuError> {
        let (max_slots, bwe) = (self.config.max_slots, self.config.initial_bitrate_bps);
        let (idx, answer) = self.add_peer(now, session, room, offer, true, |rtc, layout| {
            Role::Subscriber(Subscriber::new(
                target,
                rtc,
                layout,
                max_slots,
                Bitrate::bps(bwe),
            ))
        })?;
        self.routing.rooms.entry(room).subscribers.push(idx);
        debug!(shard = self.index, %session, room = room.0, "subscriber session created");
        self.drive(idx, now);
        Ok(answer)
    }

    /// Opens the edge side of a relay in `room`: a full-ICE peer whose offer has one audio and
    /// `RELAY_LAYERS` video m-lines per entry of `participants` (see `relay.rs`); each
    /// participant is indexed as a publisher of this peer. Returns the offer's SDP.
    fn open_relay(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        participants: Vec<ParticipantId>,
    ) -> Result<String, SfuError> {
        let (idx, offer) = relay::open(
            &mut self.peers,
            &mut self.routing.publishers,
            &self.local,
            now,
            (session, room),
            participants,
        )?;
        info!(shard = self.index, %session, room = room.0, "relay session opened (edge)");
        self.drive(idx, now);
        Ok(offer)
    }

    /// Completes an edge relay with the origin's answer. Errors: [`SfuError::UnknownSession`],
    /// [`SfuError::BadAnswer`] (not a relay, already answered, or str0m refuses the answer:
    /// then the relay session is closed).
    fn relay_answer(
        &mut self,
        now: Instant,
        session: SessionId,
        answer: str0m::change::SdpAnswer,
    ) -> Result<(), SfuError> {
        let idx = self
            .peers
            .by_session(session)
            .ok_or(SfuError::UnknownSession)?;
        let Some(Peer {
            rtc,
            role: Role::Relay(relay),
            ..
        }) = self.peers.get_mut(idx)
        else {
            return Err(SfuError::BadAnswer("not a relay session".into()));
        };
        let result = relay.accept_answer(rtc, answer);
        match &result {
            Ok(()) => self.drive(idx, now),
            Err(e) => {
                debug!(shard = self.index, %session, error = %e, "relay answer refused");
                self.remove_peer(idx, "bad relay answer");
            }
        }
        result
    }

    /// A new peer that has accepted `offer`, its role made from its `Rtc` once negotiated.
    fn add_peer(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        offer: Box<Offer>,
        subscriber: bool,
        role: impl FnOnce(&mut str0m::Rtc, &crate::offer::MidLayout) -> Role,
    ) -> Result<(usize, SessionAnswer), SfuError> {
        let mut rtc = self.local.new_rtc(&self.config, now, subscriber);
        let Offer {
            sdp,
            layout,
            ice_ufrag: remote_ufrag,
            ..
        } = *offer;
        let (answer_sdp, ice_ufrag) = accept_offer(&mut rtc, sdp)?;
        let role = role(&mut rtc, &layout);
        let peer = Peer::new(session, room, rtc, remote_ufrag, now, role);
        let answer = SessionAnswer {
            session,
            answer_sdp,
            ice_ufrag,
        };
        Ok((self.peers.insert(peer), answer))
    }

    /// Adds trickled candidates; a different ufrag is an ICE restart, which is refused.
    fn patch(
        &mut self,
        now: Instant,
        session: SessionId,
        ufrag: Option<String>,
        candidates: Vec<Candidate>,
    ) -> Result<PatchOutcome, SfuError> {
        let idx = self
            .peers
            .by_session(session)
            .ok_or(SfuError::UnknownSession)?;
        if let Some(p) = self.peers.get_mut(idx) {
            p.trickle(ufrag.as_deref(), candidates)?;
        }
        self.drive(idx, now);
        Ok(PatchOutcome::Trickled)
    }

    /// Ends a bridge or peer session.
    fn close(&mut self, session: SessionId) -> Result<(), SfuError> {
        if self
            .bridges
            .close(session, "closed by request", &mut self.fx.out)
        {
            return Ok(());
        }
        let idx = self
            .peers
            .by_session(session)
            .ok_or(SfuError::UnknownSession)?;
        self.remove_peer(idx, "closed by request");
        Ok(())
    }

    /// Ends any publisher session of `participant` on this shard (a new one replaces it).
    fn drop_participant(&mut self, participant: ParticipantId) {
        if let Some(idx) = self.routing.publishers.get(participant) {
            self.remove_peer(idx, "replaced by a new session");
        }
        for s in self.bridges.sessions_of(participant) {
            self.bridges
                .close(s, "replaced by a new session", &mut self.fx.out);
        }
    }

    fn remove_peer(&mut self, idx: usize, why: &str) {
        let Some(mut peer) = self.peers.remove(idx) else {
            return;
        };
        peer.rtc.disconnect();
        let event = self.routing.forget_peer(idx, &peer, why);
        self.fx.out.push_back(Output::Event(event));
    }

    /// Polls one peer until it has nothing more, handling its events; then forwards the media
    /// it brought.
    fn drive(&mut self, idx: usize, now: Instant) {
        let mut events = std::mem::take(&mut self.events_scratch);
        let polled = self
            .peers
            .poll(idx, now, &mut self.fx.out, &mut events, &mut self.fx.stats);
        for e in events.drain(..) {
            self.on_event(idx, e, now);
        }
        self.events_scratch = events;
        match polled {
            Polled::Gone => return,
            Polled::Dead { panicked } => {
                if panicked {
                    self.fx.stats.peers_failed += 1;
                }
                self.remove_peer(idx, "connection closed");
                return;
            }
            Polled::Alive => self.peers.schedule(idx),
        }
        // Media collected from a publisher goes out after the poll loop.
        if !self.media_scratch.is_empty() {
            let mut media = std::mem::take(&mut self.media_scratch);
            for pkt in media.drain(..) {
                self.emit_media(pkt, now);
            }
            self.media_scratch = media;
        }
    }

    fn drain_dirty(&mut self, now: Instant) {
        while let Some(idx) = self.peers.pop_dirty() {
            self.drive(idx, now);
        }
    }

    fn on_event(&mut self, idx: usize, event: Event, now: Instant) {
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        let (room, session) = (peer.room, peer.session);
        match event {
            Event::Connected => {
                let up = peer.connected();
                let subscriber = matches!(up, SfuEvent::SubscriberUp { .. });
                self.event(up);
                if subscriber {
                    self.routing
                        .refresh_targets(&mut self.peers, &mut self.fx, idx, now);
                } else {
                    // Subscribers waiting for this source need a keyframe now.
                    self.routing
                        .refresh_room(&mut self.peers, &mut self.fx, room, now);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                peer.rtc.disconnect();
            }
            Event::RtpPacket(pkt) => {
                if let Some(m) = peer.media_packet(pkt, now, &mut self.fx.stats) {
                    self.media_scratch.push(m);
                }
            }
            Event::KeyframeRequest(req) => {
                if let Role::Subscriber(s) = &peer.role
                    && let Some(src) = s.source_of(req.mid)
                {
                    self.request_keyframe(src, req.kind, now);
                }
            }
            Event::ChannelOpen(id, label) => {
                if let Role::Subscriber(s) = &mut peer.role
                    && s.channel_opened(id, &label)
                {
                    let remote = peer.addrs.first().map(|(_, a)| *a);
                    self.event(SfuEvent::ChannelOpen {
                        room,
                        session,
                        remote,
                    });
                    let frame = self.routing.rooms.get(room).and_then(|r| r.frame.clone());
                    if let Some(f) = frame {
                        self.peers
                            .send_frame(idx, ChannelClass::Reliable, &f, &mut self.fx.stats);
                    }
                }
            }
            Event::ChannelData(d) => {
                if let Role::Subscriber(s) = &peer.role {
                    match s.channel_message(d) {
                        Some(data) => self.event(SfuEvent::ChannelMessage {
                            room,
                            session,
                            data,
                        }),
                        None => self.fx.stats.datagrams_dropped += 1,
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

    /// Sends one packet of a local publisher (WebRTC or bridge) to the local subscribers and,
    /// as the same `Arc`, to the other shards.
    fn emit_media(&mut self, pkt: MediaPacket, now: Instant) {
        if self.multi_shard {
            let shared = Arc::new(pkt);
            self.dispatch(&shared, now);
            self.fx
                .out
                .push_back(Output::Broadcast(ShardMsg::Media(shared)));
        } else {
            self.dispatch(&pkt, now);
        }
    }

    fn open_bridge(
        &mut self,
        now: Instant,
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
    ) {
        self.drop_participant(participant);
        self.bridges
            .open(session, room, participant, &mut self.fx.out);
        self.routing
            .refresh_room(&mut self.peers, &mut self.fx, room, now);
    }

    /// Packetizes one bridge frame and forwards it like a WebRTC publisher's packets.
    fn bridge_media(&mut self, now: Instant, session: SessionId, media: BridgeMedia) {
        let mut packets = std::mem::take(&mut self.media_scratch);
        self.bridges.packetize(session, media, now, &mut packets);
        self.fx.stats.rtp_in += packets.len() as u64;
        for pkt in packets.drain(..) {
            self.emit_media(pkt, now);
        }
        self.media_scratch = packets;
    }

    /// Once per tick: sessions that did not connect in time are dropped; routing's
    /// housekeeping.
    fn housekeeping(&mut self, now: Instant) {
        for idx in self.peers.unconnected_since(now, CONNECT_TIMEOUT) {
            self.remove_peer(idx, "did not connect in time");
        }
        self.routing
            .housekeeping(&mut self.peers, &mut self.fx, now);
    }

    /// Forwards one publisher packet to the local subscribers and taps; a video frame's
    /// packets are held for the frame's last one (see FRAME_HOLD).
    fn dispatch(&mut self, pkt: &MediaPacket, now: Instant) {
        if pkt.kind == MediaKind::Video && !pkt.marker {
            self.hold_until.get_or_insert(now + FRAME_HOLD);
        } else {
            self.hold_until = None;
        }
        self.routing
            .dispatch(&mut self.peers, &mut self.fx, pkt, now);
    }

    fn request_keyframe(&mut self, src: SourceKey, kind: KeyframeRequestKind, now: Instant) {
        self.routing
            .request_keyframe(&mut self.peers, &mut self.fx, src, kind, now);
    }
}

#[cfg(test)]
#[path = "../tests/shard.rs"]
mod tests;
