//! The peer table: the str0m peers (`Rtc`s) a shard owns, found by remote address (UDP and
//! ICE-TCP) and by session, with their timers and the set of peers that have output waiting.
//!
//! str0m is fed bytes from the network: every call into a peer's `Rtc` goes through
//! [`feed_peer`], the one place with `catch_unwind`, so a panic in one participant's code drops
//! that participant, not the shard.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::net::Receive;
use str0m::net::{Protocol, TcpType};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Event, Input as RtcInput, Output as RtcOutput, Rtc, RtcConfig};
use tracing::{debug, info, trace};

use super::media::MediaPacket;
use super::media::codec_config;
use super::messages::Output;
use super::publisher::Publisher;
use super::relay::RelayIngress;
use super::stats::ShardStats;
use super::subscriber::Subscriber;
use crate::api::{ChannelClass, RoomId, SessionId, SfuError, SfuEvent};
use crate::config::SfuConfig;
use crate::health::PublisherHealth;

/// Timeout cycles one poll runs for a peer whose str0m timeout is already due.
const MAX_IMMEDIATE_CYCLES: usize = 64;
/// A str0m timeout this close to now counts as due (its pacer asks for "now + 1 µs").
const IMMEDIATE_SLACK: Duration = Duration::from_micros(50);

/// One WebRTC session of the shard: a WHIP publisher or a WHEP subscriber.
#[derive(Debug)]
pub struct Peer {
    pub session: SessionId,
    pub room: RoomId,
    pub rtc: Rtc,
    pub created: Instant,
    pub next_timeout: Instant,
    pub connected: bool,
    /// The entry this peer has in `PeerTable::timers`, if any.
    scheduled: Option<Instant>,
    /// The latest time given to `rtc` (inputs to str0m must not go back in time).
    last_input: Instant,
    /// Remote addresses this peer's traffic came from, UDP and ICE-TCP.
    pub addrs: Vec<(Protocol, SocketAddr)>,
    /// The remote `a=ice-ufrag` from the offer, to tell trickle from ICE restart.
    remote_ufrag: Option<String>,
    pub role: Role,
}

/// What a peer does in its room.
#[derive(Debug)]
pub enum Role {
    Publisher(Publisher),
    Subscriber(Subscriber),
    /// The edge side of an origin → edge relay (see `relay.rs`).
    Relay(RelayIngress),
}

/// What became of a datagram or ICE-TCP frame ([`PeerTable::receive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Not for any peer (unknown sender and not STUN, or unusable): drop and count it.
    Dropped,
    /// Peer `idx`'s str0m failed on it: drop the peer.
    Failed(usize),
    /// Fed to peer `idx`: drive it.
    Fed(usize),
}

impl Peer {
    /// ICE and DTLS completed: marks the peer connected and returns the event that says so
    /// (`PublisherUp`, `SubscriberUp` or `RelayUp`).
    pub fn connected(&mut self) -> SfuEvent {
        self.connected = true;
        let (room, session) = (self.room, self.session);
        match &self.role {
            Role::Publisher(p) => {
                info!(%session, participant = p.participant.0, "publisher connected");
                SfuEvent::PublisherUp {
                    room,
                    participant: p.participant,
                    session,
                }
            }
            Role::Relay(_) => {
                info!(%session, "relay connected (edge)");
                SfuEvent::RelayUp { room, session }
            }
            Role::Subscriber(_) => SfuEvent::SubscriberUp { room, session },
        }
    }

    /// A publisher's or relay's incoming RTP packet as a [`MediaPacket`] for the forwarders
    /// (counted in `stats.rtp_in`); `None` for subscribers and packets not forwarded.
    pub fn media_packet(
        &mut self,
        pkt: RtpPacket,
        now: Instant,
        stats: &mut ShardStats,
    ) -> Option<MediaPacket> {
        let (room, session) = (self.room, self.session);
        let m = match &mut self.role {
            Role::Publisher(p) => p.media_packet(&mut self.rtc, room, session, pkt, now),
            Role::Relay(r) => r.media_packet(&mut self.rtc, room, session, pkt, now),
            Role::Subscriber(_) => return None,
        };
        stats.rtp_in += 1;
        m
    }

    /// A peer that has not connected yet; its first timeout is now.
    pub fn new(
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

    /// Adds trickled remote candidates (RFC 8840). A fragment `ufrag` that differs from the
    /// offer's is an ICE restart: [`SfuError::IceRestartUnsupported`], nothing added.
    pub fn trickle(
        &mut self,
        ufrag: Option<&str>,
        candidates: Vec<Candidate>,
    ) -> Result<(), SfuError> {
        if ufrag.is_some_and(|u| self.remote_ufrag.as_deref() != Some(u)) {
            return Err(SfuError::IceRestartUnsupported);
        }
        for c in candidates {
            self.rtc.add_remote_candidate(c);
        }
        Ok(())
    }

    /// The time to give this peer's `Rtc` for an input at `now`: never earlier than the last.
    pub fn clock(&mut self, now: Instant) -> Instant {
        self.last_input = self.last_input.max(now);
        self.last_input
    }
}

/// Runs `f` on `peer` (a [`Peer`], or the `Rtc` about to become one while it accepts its
/// offer) under `catch_unwind`: the one place the shard calls into str0m with input from the
/// network. `Err` when it panicked (the caller drops the peer and counts it).
#[inline]
pub fn feed_peer<P, R>(peer: &mut P, f: impl FnOnce(&mut P) -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(|| f(peer)))
}

/// Has `rtc` accept an SDP offer (RFC 8829 §5.3); returns the answer's SDP and our ICE
/// ufrag. Errors: [`SfuError::BadOffer`] when str0m refuses it (or panics on it).
pub fn accept_offer(rtc: &mut Rtc, offer: SdpOffer) -> Result<(String, String), SfuError> {
    match feed_peer(rtc, |rtc| rtc.sdp_api().accept_offer(offer)) {
        Ok(Ok(answer)) => {
            let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
            Ok((answer.to_sdp_string(), ufrag))
        }
        Ok(Err(e)) => Err(SfuError::BadOffer(e.to_string())),
        Err(_) => Err(SfuError::BadOffer("offer could not be processed".into())),
    }
}

/// How polling a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// It has nothing more to do before its `next_timeout`.
    Alive,
    /// It failed or disconnected; `panicked` when str0m panicked.
    Dead { panicked: bool },
    /// No such peer.
    Gone,
}

/// The peers of a shard and how to find them. See the module docs.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    /// Peer by remote UDP address.
    by_addr: HashMap<SocketAddr, usize>,
    /// Peer by remote address of an open ICE-TCP connection.
    by_tcp: HashMap<SocketAddr, usize>,
    by_session: HashMap<SessionId, usize>,
    /// Peer timeouts, earliest first; entries whose instant is not the peer's `scheduled` are
    /// stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Peers with output waiting (media written, channel data), polled once per batch.
    dirty: Vec<usize>,
    /// `is_dirty[i]`: peer i is in `dirty` (keeps marking O(1)).
    is_dirty: Vec<bool>,
}

impl PeerTable {
    /// Number of live peers.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// Peer `idx`, if it is live.
    #[inline]
    pub fn get(&self, idx: usize) -> Option<&Peer> {
        self.peers.get(idx).and_then(Option::as_ref)
    }

    /// Peer `idx`, if it is live.
    #[inline]
    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Peer> {
        self.peers.get_mut(idx).and_then(Option::as_mut)
    }

    /// The index of a session's peer.
    pub fn by_session(&self, session: SessionId) -> Option<usize> {
        self.by_session.get(&session).copied()
    }

    /// Live peers with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Peer)> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// Adds a peer; returns its index.
    pub fn insert(&mut self, peer: Peer) -> usize {
        let session = peer.session;
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.peers.get_mut(i) {
                    *slot = Some(peer);
                }
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

    /// Takes peer `idx` out, forgetting its session and addresses.
    pub fn remove(&mut self, idx: usize) -> Option<Peer> {
        let peer = self.peers.get_mut(idx).and_then(Option::take)?;
        self.free.push(idx);
        self.by_session.remove(&peer.session);
        for (proto, a) in &peer.addrs {
            if *proto == Protocol::Udp {
                self.by_addr.remove(a);
            } else {
                self.by_tcp.remove(a);
            }
        }
        Some(peer)
    }

    /// The peer that traffic from `source` over `proto` belongs to. An unknown address is
    /// tied to the peer whose `Rtc` accepts `input`, and only when `is_stun` (RFC 7983 §7:
    /// only STUN may introduce a new address).
    #[inline]
    pub fn route(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        is_stun: bool,
        input: &RtcInput<'_>,
    ) -> Option<usize> {
        let by_addr = if proto == Protocol::Udp {
            &mut self.by_addr
        } else {
            &mut self.by_tcp
        };
        if let Some(&idx) = by_addr.get(&source) {
            return Some(idx);
        }
        if !is_stun {
            return None;
        }
        let found = self
            .peers
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.rtc.accepts(input)))?;
        by_addr.insert(source, found);
        if let Some(Some(p)) = self.peers.get_mut(found) {
            p.addrs.push((proto, source));
        }
        Some(found)
    }

    /// Forgets the ICE-TCP connection from `source`; returns the peer it was tied to.
    pub fn tcp_closed(&mut self, source: SocketAddr) -> Option<&Peer> {
        let idx = self.by_tcp.remove(&source)?;
        let p = self.get_mut(idx)?;
        p.addrs.retain(|a| *a != (Protocol::Tcp, source));
        Some(&*p)
    }

    /// Peers that have not connected within `timeout` of their creation.
    pub fn unconnected_since(&self, now: Instant, timeout: Duration) -> Vec<usize> {
        self.iter()
            .filter(|(_, p)| !p.connected && now.saturating_duration_since(p.created) > timeout)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether an ICE-TCP connection from `source` is tied to a session.
    pub fn has_tcp(&self, source: SocketAddr) -> bool {
        self.by_tcp.contains_key(&source)
    }

    /// Makes sure peer `idx` has a timer entry no later than its `next_timeout`.
    pub fn schedule(&mut self, idx: usize) {
        let Some(Some(p)) = self.peers.get_mut(idx) else {
            return;
        };
        if p.scheduled.is_none_or(|s| p.next_timeout < s) {
            p.scheduled = Some(p.next_timeout);
            self.timers.push(Reverse((p.next_timeout, idx)));
        }
    }

    /// The earliest peer timer, if any.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// The next peer whose timeout is due at `now`, its timer entry consumed. Stale entries
    /// are skipped; a peer whose timeout moved later is rescheduled; while `held` (frame
    /// hold, see `FRAME_HOLD`) a peer with queued output waits until then.
    pub fn next_due(&mut self, now: Instant, held: Option<Instant>) -> Option<usize> {
        while let Some(&Reverse((t, idx))) = self.timers.peek() {
            if t > now {
                return None;
            }
            self.timers.pop();
            let dirty = self.is_dirty.get(idx).copied().unwrap_or(false);
            let Some(Some(p)) = self.peers.get_mut(idx) else {
                continue;
            };
            if p.scheduled != Some(t) {
                continue;
            }
            p.scheduled = None;
            if let (Some(h), true) = (held, dirty) {
                // Mid-frame: this subscriber's queued packets wait for the rest of the frame
                // (FRAME_HOLD); so does its timer, by at most that long.
                p.scheduled = Some(h);
                self.timers.push(Reverse((h, idx)));
                continue;
            }
            if p.next_timeout > now {
                // Its timeout moved later since this entry was made.
                self.schedule(idx);
                continue;
            }
            return Some(idx);
        }
        None
    }

    /// Routes a datagram or ICE-TCP frame to its peer and feeds it. Unknown senders are only
    /// matched by STUN (`Rtc::accepts`, RFC 7983 §7: first byte 0..=3); anything else from
    /// them is [`Received::Dropped`].
    pub fn receive(
        &mut self,
        local: &LocalAddrs,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination_ip: Option<IpAddr>,
        contents: &[u8],
    ) -> Received {
        let Some(destination) = local.local_addr_for(source, destination_ip) else {
            return Received::Dropped;
        };
        let Ok(receive) = Receive::new(proto, source, destination, contents) else {
            return Received::Dropped;
        };
        let input = RtcInput::Receive(now, receive);
        let is_stun = contents.first().is_some_and(|b| *b <= 3);
        let Some(idx) = self.route(proto, source, is_stun, &input) else {
            trace!(%source, "datagram from unknown address dropped");
            return Received::Dropped;
        };
        let ok = match self.get_mut(idx) {
            Some(p) => {
                let input = match input {
                    RtcInput::Receive(_, r) => RtcInput::Receive(p.clock(now), r),
                    other => other,
                };
                matches!(feed_peer(p, |p| p.rtc.handle_input(input)), Ok(Ok(())))
            }
            None => false,
        };
        if ok {
            Received::Fed(idx)
        } else {
            Received::Failed(idx)
        }
    }

    /// Feeds peer `idx` its timeout at `now`; `Some(false)` when str0m failed (drop the
    /// peer), `None` for a free index.
    pub fn feed_timeout(&mut self, idx: usize, now: Instant) -> Option<bool> {
        let p = self.get_mut(idx)?;
        Some(matches!(
            feed_peer(p, |p| {
                let at = p.clock(now);
                p.rtc.handle_input(RtcInput::Timeout(at))
            }),
            Ok(Ok(()))
        ))
    }

    /// The health of publisher session `session` at `now`; `None` for others.
    pub fn publisher_health(&self, session: SessionId, now: Instant) -> Option<PublisherHealth> {
        match self.get(self.by_session(session)?) {
            Some(Peer {
                role: Role::Publisher(p),
                ..
            }) => Some(p.health(now)),
            _ => None,
        }
    }

    /// Writes one frame to subscriber `idx`'s data channel of `class`; it leaves with the
    /// peer's next poll. Nothing for a publisher or a free index.
    pub fn send_frame(
        &mut self,
        idx: usize,
        class: ChannelClass,
        frame: &[u8],
        stats: &mut ShardStats,
    ) {
        if let Some(Peer {
            rtc,
            role: Role::Subscriber(s),
            ..
        }) = self.get_mut(idx)
        {
            s.send_frame(rtc, class, frame, stats);
        }
        self.mark_dirty(idx);
    }

    /// Marks peer `idx` as having output to poll.
    #[inline]
    pub fn mark_dirty(&mut self, idx: usize) {
        if self.is_dirty.len() <= idx {
            self.is_dirty.resize(idx + 1, false);
        }
        if let Some(flag) = self.is_dirty.get_mut(idx).filter(|f| !**f) {
            *flag = true;
            self.dirty.push(idx);
        }
    }

    /// Whether any peer has output to poll.
    pub fn any_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Takes one peer with output to poll.
    pub fn pop_dirty(&mut self) -> Option<usize> {
        let idx = self.dirty.pop()?;
        if let Some(f) = self.is_dirty.get_mut(idx) {
            *f = false;
        }
        Some(idx)
    }

    /// Polls peer `idx` until it has nothing more: transmits go to `out` (not those for an
    /// ICE-TCP connection that has closed: counted), events to `events`.
    pub fn poll(
        &mut self,
        idx: usize,
        now: Instant,
        out: &mut VecDeque<Output>,
        events: &mut Vec<Event>,
        stats: &mut ShardStats,
    ) -> Polled {
        let Self { peers, by_tcp, .. } = self;
        let Some(Some(peer)) = peers.get_mut(idx) else {
            return Polled::Gone;
        };
        let result = feed_peer(peer, |peer| {
            // str0m's pacer hands out one queued packet per timeout cycle and asks to be woken
            // at once for the next: run those cycles here, so a frame's packets leave in one
            // poll (and one GSO batch) instead of one shell wake-up each. Bounded.
            let mut immediate_cycles = 0;
            loop {
                match peer.rtc.poll_output() {
                    Ok(RtcOutput::Transmit(t)) => {
                        // Nothing goes to an ICE-TCP connection that has closed (str0m may
                        // still have it as the selected pair until consent runs out).
                        if t.proto != Protocol::Udp && !by_tcp.contains_key(&t.destination) {
                            stats.tcp_unrouted += 1;
                            continue;
                        }
                        out.push_back(Output::Transmit {
                            proto: t.proto,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.into(),
                        })
                    }
                    Ok(RtcOutput::Event(e)) => events.push(e),
                    Ok(RtcOutput::Timeout(t)) => {
                        if t <= now + IMMEDIATE_SLACK && immediate_cycles < MAX_IMMEDIATE_CYCLES {
                            immediate_cycles += 1;
                            let at = peer.clock(t.max(now));
                            if peer.rtc.handle_input(RtcInput::Timeout(at)).is_err() {
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
        });
        match result {
            Ok(true) if peer.rtc.is_alive() => Polled::Alive,
            Ok(_) => Polled::Dead { panicked: false },
            Err(_) => Polled::Dead { panicked: true },
        }
    }
}

/// The local side of a shard: the host candidates it advertises.
#[derive(Debug)]
pub struct LocalAddrs {
    candidates: Vec<SocketAddr>,
}

impl LocalAddrs {
    /// A shard whose socket is reached at each of `candidates`.
    pub fn new(candidates: Vec<SocketAddr>) -> LocalAddrs {
        LocalAddrs { candidates }
    }

    /// The local address a datagram from `source` arrived at, for str0m's candidate
    /// matching. `destination_ip` is the datagram's own destination (`IP_PKTINFO`) when the
    /// shell knows it; it is used when it is one of our candidates. Otherwise (no pktinfo, or
    /// 1:1 NAT where we advertise the public IP) the advertised candidate of the sender's IP
    /// family and scope is taken (loopback for loopback).
    pub fn local_addr_for(
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

    /// A new `Rtc` (ICE-lite, RTP mode, Venue's codecs; BWE for a subscriber) with a UDP host
    /// candidate per candidate address and, with `ice_tcp`, a passive TCP host candidate (RFC
    /// 6544 §4.5) on the same address and port. str0m gives TCP host candidates a lower type
    /// preference than UDP (90 vs 126), so a browser that can use UDP does.
    pub fn new_rtc(&self, config: &SfuConfig, now: Instant, subscriber: bool) -> Rtc {
        let mut rc = RtcConfig::new().set_ice_lite(true).set_rtp_mode(true);
        *rc.codec_config() = codec_config();
        if subscriber {
            rc = rc.enable_bwe(Some(Bitrate::bps(config.initial_bitrate_bps)));
        }
        let mut rtc = rc.build(now);
        for addr in &self.candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        if config.ice_tcp {
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

    /// A new `Rtc` for the edge side of a relay: a full ICE agent (it offers, so it is the
    /// controlling side, RFC 8445 §6.1.1, and sends the connectivity checks to the ICE-lite
    /// origin), RTP mode, Venue's codecs, a UDP host candidate per candidate address.
    pub fn new_relay_rtc(&self, now: Instant) -> Rtc {
        let mut rc = RtcConfig::new().set_rtp_mode(true);
        *rc.codec_config() = codec_config();
        let mut rtc = rc.build(now);
        for addr in &self.candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        rtc
    }
}
