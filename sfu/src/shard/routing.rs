//! Stage routing: which publisher layer each subscriber track and each tap shows, the
//! forwarding of one packet to them, and keyframe requests to publishers (local and
//! throttled per layer, or broadcast to the other shards).
//!
//! [`Routing`] owns the rooms, the publisher index with its simulcast layers, and the taps;
//! the peers it writes to belong to the [`PeerTable`], given to each call with the
//! [`Effects`] (output queue and counters).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};

use bytes::Bytes;
use tracing::{debug, info};

use super::media::{MediaPacket, ShardMsg};
use super::messages::{Output, TapId};
use super::peer::{Peer, PeerTable, Role};
use super::publisher::Publishers;
use super::room::Rooms;
use super::stats::ShardStats;
use super::tap::Taps;
use crate::api::{ChannelClass, ParticipantId, RoomId, SfuEvent, SubscribeTarget};
use crate::forward::SourceKey;

/// What the core hands to the shell, and its counters.
#[derive(Debug, Default)]
pub struct Effects {
    pub out: VecDeque<Output>,
    pub stats: ShardStats,
}

/// See the module docs.
#[derive(Debug)]
pub struct Routing {
    pub rooms: Rooms,
    pub publishers: Publishers,
    pub taps: Taps,
    /// Other shards exist: media and keyframe requests are broadcast to them.
    multi_shard: bool,
    /// Minimum interval between keyframe requests to one publisher layer.
    keyframe_interval: Duration,
    max_slots: usize,
}

impl Routing {
    /// Routing for a shard of a media plane with `multi_shard` shards or one.
    pub fn new(multi_shard: bool, keyframe_interval: Duration, max_slots: usize) -> Routing {
        Routing {
            rooms: Rooms::default(),
            publishers: Publishers::default(),
            taps: Taps::default(),
            multi_shard,
            keyframe_interval,
            max_slots,
        }
    }

    /// Sends one publisher packet to every local subscriber track (and tap) that shows its
    /// source.
    #[inline]
    pub fn dispatch(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        pkt: &MediaPacket,
        now: Instant,
    ) {
        if pkt.kind == MediaKind::Video && self.publishers.layers.note(pkt, now) {
            // A new layer changes the choice for everyone watching this publisher.
            self.refresh_room(peers, fx, pkt.room, now);
        }
        let Some(room) = self.rooms.get(pkt.room) else {
            return;
        };
        let meta = pkt.meta();
        for &idx in &room.subscribers {
            let Some(Peer {
                rtc,
                connected: true,
                role: Role::Subscriber(sub),
                ..
            }) = peers.get_mut(idx)
            else {
                continue;
            };
            let written = sub.forward(rtc, pkt, &meta);
            if written > 0 {
                fx.stats.rtp_forwarded += written;
                peers.mark_dirty(idx);
            }
        }
        if !self.taps.is_empty() {
            self.taps.dispatch(pkt, &meta, &mut fx.out);
        }
    }

    /// Routes publishers to `room`'s stage slots; its viewers and taps follow.
    pub fn set_stage(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        room: RoomId,
        slots: Vec<Option<ParticipantId>>,
        now: Instant,
    ) {
        self.rooms.entry(room).stage = slots;
        self.refresh_room(peers, fx, room, now);
        self.refresh_taps(peers, fx, now);
    }

    /// Opens stage tap `tap` of `room`.
    pub fn open_tap(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        tap: TapId,
        room: RoomId,
        now: Instant,
    ) {
        info!(tap = tap.0, room = room.0, "stage tap opened");
        self.rooms.entry(room);
        self.taps.open(tap, room, self.max_slots);
        self.refresh_taps(peers, fx, now);
    }

    /// Forgets removed peer `idx` (its publisher, subscriber or relay entries) and returns the
    /// event that announces its end.
    pub fn forget_peer(&mut self, idx: usize, peer: &Peer, why: &str) -> SfuEvent {
        let (room, session) = (peer.room, peer.session);
        match &peer.role {
            Role::Publisher(p) => {
                self.publishers.remove(p.participant, idx);
                info!(%session, participant = p.participant.0, why, "publisher session ended");
                SfuEvent::PublisherDown {
                    room,
                    participant: p.participant,
                    session,
                }
            }
            Role::Subscriber(_) => {
                self.rooms.remove_subscriber(room, idx);
                debug!(%session, why, "subscriber session ended");
                SfuEvent::SubscriberDown { room, session }
            }
            Role::Relay(r) => {
                for p in r.participants() {
                    self.publishers.remove(*p, idx);
                }
                info!(%session, why, "relay session ended (edge)");
                SfuEvent::RelayDown { room, session }
            }
        }
    }

    /// Keeps `frame` as `room`'s state frame (sent to every subscriber whose channel opens
    /// later) and sends it to the room's subscribers now.
    pub fn set_room_state(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        room: RoomId,
        frame: Bytes,
    ) {
        self.rooms.entry(room).frame = Some(frame.clone());
        self.broadcast_frame(peers, fx, room, ChannelClass::Reliable, &frame);
    }

    /// Sends `frame` on the data channel of `class` of every subscriber of `room`.
    pub fn broadcast_frame(
        &self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        room: RoomId,
        class: ChannelClass,
        frame: &[u8],
    ) {
        for idx in self.rooms.subscribers(room) {
            peers.send_frame(idx, class, frame, &mut fx.stats);
        }
    }

    /// Closes stage tap `tap` (nothing when it is not open).
    pub fn close_tap(&mut self, tap: TapId) {
        if self.taps.close(tap) {
            info!(tap = tap.0, "stage tap closed");
        }
    }

    /// Asks for a keyframe of what tap `tap` shows on `slot` (a PLI to its publisher).
    pub fn tap_keyframe(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        tap: TapId,
        slot: usize,
        now: Instant,
    ) {
        if let Some(src) = self.taps.video_source(tap, slot) {
            self.request_keyframe(peers, fx, src, KeyframeRequestKind::Pli, now);
        }
    }

    /// Re-chooses what every subscriber of `room` shows.
    pub fn refresh_room(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        room: RoomId,
        now: Instant,
    ) {
        for idx in self.rooms.subscribers(room) {
            self.refresh_targets(peers, fx, idx, now);
        }
    }

    /// Recomputes what each of a subscriber's tracks should show (stage + layer choice), and
    /// requests keyframes for new targets.
    pub fn refresh_targets(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        idx: usize,
        now: Instant,
    ) {
        let Some(Peer {
            room,
            connected: true,
            role: Role::Subscriber(s),
            ..
        }) = peers.get_mut(idx)
        else {
            return;
        };
        let stage = match s.target {
            SubscribeTarget::Stage | SubscribeTarget::Relay => self.rooms.stage(*room),
            SubscribeTarget::Participant(p) => vec![p],
        };
        let mut requests = Vec::new();
        s.retarget(&stage, &self.publishers.layers, &mut requests);
        for k in requests {
            self.request_keyframe(peers, fx, k, KeyframeRequestKind::Pli, now);
        }
    }

    /// Points one-publisher subscriber `idx` (admin preview) at `participant`; nothing for a
    /// stage subscriber.
    pub fn retarget_participant(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        idx: usize,
        participant: Option<ParticipantId>,
        now: Instant,
    ) {
        if let Some(Peer {
            role: Role::Subscriber(s),
            ..
        }) = peers.get_mut(idx)
            && let SubscribeTarget::Participant(p) = &mut s.target
        {
            *p = participant;
            self.refresh_targets(peers, fx, idx, now);
        }
    }

    /// Points every tap at its room's stage and asks new video sources for keyframes.
    pub fn refresh_taps(&mut self, peers: &mut PeerTable, fx: &mut Effects, now: Instant) {
        let rooms = &self.rooms;
        let requests = self
            .taps
            .retarget(|room| rooms.stage(room), &self.publishers.layers);
        for k in requests {
            self.request_keyframe(peers, fx, k, KeyframeRequestKind::Pli, now);
        }
    }

    /// Asks `src` for a keyframe: its local publisher (throttled), or the other shards.
    pub fn request_keyframe(
        &mut self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        src: SourceKey,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        match self.publishers.get(src.participant) {
            Some(idx) => {
                self.request_keyframe_local(peers, fx, idx, src, kind, now);
                peers.mark_dirty(idx);
            }
            None if self.multi_shard => {
                fx.out
                    .push_back(Output::Broadcast(ShardMsg::KeyframeRequest {
                        participant: src.participant,
                        rid: src.rid,
                        kind,
                    }));
            }
            None => {}
        }
    }

    /// Sends a PLI/FIR to local publisher `idx`'s layer of `src` (or, for an edge's relay
    /// peer, upstream on the m-line of `src`), throttled per layer
    /// (`keyframe_request_interval_ms`); a throttled request is deferred, not lost.
    pub fn request_keyframe_local(
        &self,
        peers: &mut PeerTable,
        fx: &mut Effects,
        idx: usize,
        src: SourceKey,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let sent = match peers.get_mut(idx) {
            Some(Peer {
                rtc,
                role: Role::Publisher(p),
                ..
            }) => p.request_keyframe(rtc, src.rid, kind, now, self.keyframe_interval),
            Some(Peer {
                rtc,
                role: Role::Relay(r),
                ..
            }) => r.request_keyframe(rtc, src, kind, now, self.keyframe_interval),
            _ => false,
        };
        if sent {
            fx.stats.keyframe_requests += 1;
        }
    }

    /// Every tick: deferred keyframe requests go out, quiet layers are forgotten, layers are
    /// re-chosen against fresh bandwidth estimates, and pending switches ask again.
    pub fn housekeeping(&mut self, peers: &mut PeerTable, fx: &mut Effects, now: Instant) {
        let mut indices = self.publishers.indices();
        // A relay peer is the publisher of several participants.
        indices.sort_unstable();
        indices.dedup();
        for idx in indices {
            let deferred: Vec<(SourceKey, KeyframeRequestKind)> = match peers.get_mut(idx) {
                Some(Peer {
                    role: Role::Publisher(p),
                    ..
                }) => {
                    let participant = p.participant;
                    p.take_deferred()
                        .into_iter()
                        .map(|(rid, kind)| (SourceKey { participant, rid }, kind))
                        .collect()
                }
                Some(Peer {
                    role: Role::Relay(r),
                    ..
                }) => r.take_deferred(),
                _ => continue,
            };
            if deferred.is_empty() {
                continue;
            }
            for (src, kind) in deferred {
                self.request_keyframe_local(peers, fx, idx, src, kind, now);
            }
            peers.mark_dirty(idx);
        }
        self.publishers.layers.expire(now);
        let subs = self.rooms.all_subscribers();
        for &idx in &subs {
            self.refresh_targets(peers, fx, idx, now);
        }
        // Switches still waiting for a keyframe ask again: encoders (Chrome's simulcast
        // encoders among them) sometimes ignore a PLI, and a pending switch must not wait
        // for the next natural keyframe. One request per source per tick, throttled per layer.
        let mut waiting: Vec<SourceKey> = Vec::new();
        for &idx in &subs {
            if let Some(Peer {
                role: Role::Subscriber(s),
                ..
            }) = peers.get(idx)
            {
                s.pending_video(&mut waiting);
            }
        }
        for src in waiting {
            self.request_keyframe(peers, fx, src, KeyframeRequestKind::Pli, now);
        }
        if !self.taps.is_empty() {
            self.refresh_taps(peers, fx, now);
        }
    }
}
