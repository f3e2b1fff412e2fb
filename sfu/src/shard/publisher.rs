//! Publisher ingress: what a shard keeps per WHIP publisher (its streams and payload types,
//! keyframe-request throttling per simulcast layer, streamer health) and the index of local
//! publishers by participant. A publisher's RTP packet becomes one [`MediaPacket`] here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{RtpPacket, Ssrc};
use tracing::trace;

use super::layers::Layers;
use super::media::negotiated_codecs;
use super::media::{CodecKey, MediaPacket};
use crate::api::{ParticipantId, RoomId, SessionId};
use crate::forward::SourceKey;
use crate::health::{HealthMeter, Protocol as IngestProtocol, PublisherHealth};
use crate::keyframe::is_keyframe_start;

/// The WHIP side of one publisher session.
#[derive(Debug)]
pub struct Publisher {
    pub participant: ParticipantId,
    /// ssrc → (kind, mid, rid) for incoming streams, learnt from str0m.
    streams: Vec<(Ssrc, MediaKind, Mid, Option<Rid>)>,
    /// Payload type → (codec, clock rate in Hz), from the negotiated parameters.
    codecs: Vec<(Pt, CodecKey, u32)>,
    /// Last keyframe request sent per layer.
    last_keyframe_request: Vec<(Option<Rid>, Instant)>,
    /// Requests held back by the throttle, sent when it allows.
    deferred_keyframe_requests: Vec<(Option<Rid>, KeyframeRequestKind)>,
    /// Streamer health of this session (boxed: it is large next to `Subscriber`).
    health: Box<HealthMeter>,
}

impl Publisher {
    /// A publisher whose `rtc` has accepted its offer (the negotiated payload types are read
    /// from it).
    pub fn new(participant: ParticipantId, rtc: &Rtc) -> Publisher {
        let codecs = negotiated_codecs(rtc);
        Publisher {
            participant,
            streams: Vec::new(),
            codecs,
            last_keyframe_request: Vec::new(),
            deferred_keyframe_requests: Vec::new(),
            health: Box::new(HealthMeter::new(IngestProtocol::Whip)),
        }
    }

    /// Turns one of this publisher's RTP packets into a [`MediaPacket`], learning stream
    /// identities from `rtc`, and feeds health. `None` for a packet of a second m-line of a
    /// kind, or of an unknown stream or payload type.
    #[inline]
    pub fn media_packet(
        &mut self,
        rtc: &mut Rtc,
        room: RoomId,
        session: SessionId,
        pkt: RtpPacket,
        now: Instant,
    ) -> Option<MediaPacket> {
        let ssrc = pkt.header.ssrc;
        let known = self
            .streams
            .iter()
            .find(|s| s.0 == ssrc)
            .map(|s| (s.1, s.2, s.3));
        let (kind, mid, rid) = match known {
            Some(k) => k,
            None => {
                let (mid, rid) = {
                    let mut api = rtc.direct_api();
                    let s = api.stream_rx(&ssrc)?;
                    (s.mid(), s.rid())
                };
                let kind = rtc.media(mid)?.kind();
                self.streams.push((ssrc, kind, mid, rid));
                (kind, mid, rid)
            }
        };
        // Only the first m-line of each kind is the publisher's track.
        let first_of_kind = self.streams.iter().find(|s| s.1 == kind).map(|s| s.2);
        if first_of_kind != Some(mid) {
            return None;
        }
        let (codec, clock) = self
            .codecs
            .iter()
            .find(|c| c.0 == pkt.header.payload_type)
            .map(|c| (c.1, c.2))?;
        let switch_point = match kind {
            MediaKind::Audio => true,
            MediaKind::Video => is_keyframe_start(codec.codec, &pkt.payload),
        };
        let m = MediaPacket {
            room,
            source: SourceKey {
                participant: self.participant,
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
            epoch: session.0,
        };
        self.health.observe(now, &m.observed(clock));
        Some(m)
    }

    /// Sends a PLI/FIR to layer `rid` through `rtc`, at most once per `interval` per layer; a
    /// throttled request is deferred (see [`Publisher::take_deferred`]), not lost. Returns
    /// whether a request went out.
    pub fn request_keyframe(
        &mut self,
        rtc: &mut Rtc,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        now: Instant,
        interval: Duration,
    ) -> bool {
        let last = self
            .last_keyframe_request
            .iter_mut()
            .find(|(r, _)| *r == rid);
        let allowed = match &last {
            Some((_, at)) => now.saturating_duration_since(*at) >= interval,
            None => true,
        };
        if !allowed {
            if !self
                .deferred_keyframe_requests
                .iter()
                .any(|(r, _)| *r == rid)
            {
                self.deferred_keyframe_requests.push((rid, kind));
            }
            return false;
        }
        match last {
            Some(l) => l.1 = now,
            None => self.last_keyframe_request.push((rid, now)),
        }
        let mid = self
            .streams
            .iter()
            .find(|s| s.1 == MediaKind::Video)
            .map(|s| s.2);
        let mid = mid.or_else(|| {
            rtc.direct_api()
                .stream_rx_by_mid(Mid::from("0"), None)
                .map(|s| s.mid())
        });
        let Some(mid) = mid else { return false };
        match rtc.direct_api().stream_rx_by_mid(mid, rid) {
            Some(rx) => {
                rx.request_keyframe(kind);
                trace!(participant = self.participant.0, ?rid, "keyframe requested");
                true
            }
            None => false,
        }
    }

    /// The keyframe requests the throttle held back, to try again.
    pub fn take_deferred(&mut self) -> Vec<(Option<Rid>, KeyframeRequestKind)> {
        std::mem::take(&mut self.deferred_keyframe_requests)
    }

    /// This session's health at `now`.
    pub fn health(&self, now: Instant) -> PublisherHealth {
        self.health.snapshot(now)
    }
}

/// The shard's WebRTC publishers by participant (one session each; a new one replaces it),
/// and the simulcast layers seen from all publishers (WHIP, bridges, other shards').
#[derive(Debug, Default)]
pub struct Publishers {
    by_participant: HashMap<ParticipantId, usize>,
    pub layers: Layers,
}

impl Publishers {
    /// The peer index of `participant`'s publisher session on this shard.
    #[inline]
    pub fn get(&self, participant: ParticipantId) -> Option<usize> {
        self.by_participant.get(&participant).copied()
    }

    /// Records peer `idx` as `participant`'s publisher.
    pub fn insert(&mut self, participant: ParticipantId, idx: usize) {
        self.by_participant.insert(participant, idx);
    }

    /// Forgets `participant`'s publisher if it is still peer `idx`.
    pub fn remove(&mut self, participant: ParticipantId, idx: usize) {
        if self.get(participant) == Some(idx) {
            self.by_participant.remove(&participant);
        }
    }

    /// Peer indices of every publisher.
    pub fn indices(&self) -> Vec<usize> {
        self.by_participant.values().copied().collect()
    }
}
