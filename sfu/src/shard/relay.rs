//! Relay ingress: the edge side of an origin → edge relay (one str0m session per (origin
//! node, room), DTLS-SRTP over UDP). The edge makes the offer (the controlling ICE agent, RFC
//! 8445 §6.1.1): per origin stage slot i one recvonly audio m-line and [`RELAY_LAYERS`]
//! recvonly video m-lines, one per simulcast layer. The origin answers as a
//! [`crate::SubscribeTarget::Relay`] subscriber whose forwarders keep sequence numbers and
//! timestamps continuous across its stage switches, so the edge sees one stream per m-line.
//!
//! Each packet of (slot i, layer L) becomes a [`MediaPacket`] of
//! `SourceKey { participant: participants[i], rid: "L" }` (audio: `rid: None`), dispatched
//! like a local publisher's. Keyframe requests for those sources go upstream as PLI/FIR on
//! the matching m-line, throttled per (participant, layer) like a publisher's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{RtpPacket, Ssrc};
use tracing::trace;

use super::media::{CodecKey, MediaPacket, negotiated_codecs};
use super::peer::{LocalAddrs, Peer, PeerTable, Role};
use super::publisher::Publishers;
use crate::api::{ParticipantId, RELAY_LAYERS, RoomId, SessionId, SfuError};
use crate::forward::SourceKey;
use crate::keyframe::is_keyframe_start;

/// Media packets received over relays (edge side) by this process, all media planes
/// together; read with [`relayed_packets`].
static RELAYED_IN: AtomicU64 = AtomicU64::new(0);

/// RTP media packets this process received over origin → edge relays since it started (all
/// its media planes together: one per process outside tests). For the
/// `venue_cluster_relayed_packets_total` metric.
pub fn relayed_packets() -> u64 {
    RELAYED_IN.load(Ordering::Relaxed)
}

/// Opens the edge side of a relay `(session, room)`: a full-ICE peer in `peers` whose offer
/// has one audio and [`RELAY_LAYERS`] video m-lines per entry of `participants`, each
/// participant indexed in `publishers` as a publisher of this peer. Returns the peer's index
/// and the offer's SDP. Errors: [`SfuError`] from building the offer.
pub fn open(
    peers: &mut PeerTable,
    publishers: &mut Publishers,
    local: &LocalAddrs,
    now: Instant,
    (session, room): (SessionId, RoomId),
    participants: Vec<ParticipantId>,
) -> Result<(usize, String), SfuError> {
    let mut rtc = local.new_relay_rtc(now);
    let (ingress, offer) = RelayIngress::new(&mut rtc, participants)?;
    let ids = ingress.participants().to_vec();
    let peer = Peer::new(session, room, rtc, None, now, Role::Relay(ingress));
    let idx = peers.insert(peer);
    for p in ids {
        publishers.insert(p, idx);
    }
    Ok((idx, offer))
}

/// The RID the edge gives relay video layer `layer` (`"0"`, `"1"`, `"2"`).
pub fn layer_rid(layer: usize) -> Rid {
    Rid::from(match layer {
        0 => "0",
        1 => "1",
        _ => "2",
    })
}

/// One m-line of the relay: what it carries.
#[derive(Debug, Clone, Copy)]
struct Line {
    mid: Mid,
    slot: usize,
    kind: MediaKind,
    layer: usize,
}

/// The edge side of one relay session. See the module docs.
#[derive(Debug)]
pub struct RelayIngress {
    /// The edge's participant for each origin stage slot.
    participants: Vec<ParticipantId>,
    lines: Vec<Line>,
    /// The offer, until the origin's answer arrives.
    pending: Option<SdpPendingOffer>,
    /// Payload type → codec, from the negotiated parameters.
    /// Payload type → codec and clock rate (Hz), as negotiated.
    codecs: Vec<(Pt, CodecKey, u32)>,
    /// ssrc → index into `lines`, learnt from str0m.
    streams: Vec<(Ssrc, usize)>,
    /// Last keyframe request per (participant, layer).
    last_keyframe_request: Vec<(SourceKey, Instant)>,
    /// Requests held back by the throttle.
    deferred: Vec<(SourceKey, KeyframeRequestKind)>,
}

impl RelayIngress {
    /// Adds the relay's m-lines to `rtc` (one audio and [`RELAY_LAYERS`] video per entry of
    /// `participants`, all recvonly) and makes the offer. Returns the ingress and the offer's
    /// SDP. Errors: [`SfuError::Unsupported`] when str0m makes no offer.
    pub fn new(
        rtc: &mut Rtc,
        participants: Vec<ParticipantId>,
    ) -> Result<(RelayIngress, String), SfuError> {
        let mut api = rtc.sdp_api();
        let mut lines = Vec::with_capacity(participants.len() * (1 + RELAY_LAYERS));
        for slot in 0..participants.len() {
            let mid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            lines.push(Line {
                mid,
                slot,
                kind: MediaKind::Audio,
                layer: 0,
            });
            for layer in 0..RELAY_LAYERS {
                let mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
                lines.push(Line {
                    mid,
                    slot,
                    kind: MediaKind::Video,
                    layer,
                });
            }
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| SfuError::Unsupported("no relay offer was made".into()))?;
        let ingress = RelayIngress {
            participants,
            lines,
            pending: Some(pending),
            codecs: Vec::new(),
            streams: Vec::new(),
            last_keyframe_request: Vec::new(),
            deferred: Vec::new(),
        };
        Ok((ingress, offer.to_sdp_string()))
    }

    /// The edge's participants, one per origin stage slot.
    pub fn participants(&self) -> &[ParticipantId] {
        &self.participants
    }

    /// The pending offer, to accept the answer against; `None` once answered.
    /// Applies the origin's `answer` to `rtc` (this relay's peer). Errors:
    /// [`SfuError::BadAnswer`] — already answered, or str0m refuses it (the caller then
    /// closes the relay).
    pub fn accept_answer(
        &mut self,
        rtc: &mut Rtc,
        answer: str0m::change::SdpAnswer,
    ) -> Result<(), SfuError> {
        let Some(pending) = self.take_pending() else {
            return Err(SfuError::BadAnswer("the relay was already answered".into()));
        };
        match super::peer::feed_peer(rtc, |rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            Ok(Ok(())) => {
                self.answered(rtc);
                Ok(())
            }
            Ok(Err(e)) => Err(SfuError::BadAnswer(e.to_string())),
            Err(_) => Err(SfuError::BadAnswer("answer could not be processed".into())),
        }
    }

    pub fn take_pending(&mut self) -> Option<SdpPendingOffer> {
        self.pending.take()
    }

    /// Reads the negotiated payload types from `rtc` once the answer is accepted.
    pub fn answered(&mut self, rtc: &Rtc) {
        self.codecs = negotiated_codecs(rtc);
    }

    /// Turns one relayed RTP packet into a [`MediaPacket`] of the slot's participant and
    /// layer. `None` for an unknown stream or payload type.
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
        let line = match self.streams.iter().find(|s| s.0 == ssrc) {
            Some(s) => s.1,
            None => {
                let mid = rtc.direct_api().stream_rx(&ssrc)?.mid();
                let i = self.lines.iter().position(|l| l.mid == mid)?;
                self.streams.push((ssrc, i));
                i
            }
        };
        let line = *self.lines.get(line)?;
        let participant = *self.participants.get(line.slot)?;
        let codec = self
            .codecs
            .iter()
            .find(|c| c.0 == pkt.header.payload_type)
            .map(|c| c.1)?;
        let (rid, switch_point) = match line.kind {
            MediaKind::Audio => (None, true),
            MediaKind::Video => (
                Some(layer_rid(line.layer)),
                is_keyframe_start(codec.codec, &pkt.payload),
            ),
        };
        RELAYED_IN.fetch_add(1, Ordering::Relaxed);
        Some(MediaPacket {
            room,
            source: SourceKey { participant, rid },
            kind: line.kind,
            codec,
            seq: *pkt.seq_no,
            rtp_time: pkt.header.timestamp,
            marker: pkt.header.marker,
            switch_point,
            payload: pkt.payload,
            arrival: now,
            epoch: session.0,
        })
    }

    /// Sends a PLI/FIR upstream on the m-line of `src` (one of this relay's participants), at
    /// most once per `interval` per (participant, layer); a throttled request is deferred
    /// (see [`RelayIngress::take_deferred`]), not lost. Returns whether a request went out.
    pub fn request_keyframe(
        &mut self,
        rtc: &mut Rtc,
        src: SourceKey,
        kind: KeyframeRequestKind,
        now: Instant,
        interval: Duration,
    ) -> bool {
        let Some(slot) = self.participants.iter().position(|p| *p == src.participant) else {
            return false;
        };
        let layer = match src.rid {
            None => 0,
            Some(rid) => match (0..RELAY_LAYERS).find(|l| layer_rid(*l) == rid) {
                Some(l) => l,
                None => return false,
            },
        };
        let last = self
            .last_keyframe_request
            .iter_mut()
            .find(|(k, _)| *k == src);
        if let Some((_, at)) = &last
            && now.saturating_duration_since(*at) < interval
        {
            if !self.deferred.iter().any(|(k, _)| *k == src) {
                self.deferred.push((src, kind));
            }
            return false;
        }
        match last {
            Some(l) => l.1 = now,
            None => self.last_keyframe_request.push((src, now)),
        }
        let Some(mid) = self
            .lines
            .iter()
            .find(|l| l.slot == slot && l.kind == MediaKind::Video && l.layer == layer)
            .map(|l| l.mid)
        else {
            return false;
        };
        match rtc.direct_api().stream_rx_by_mid(mid, None) {
            Some(rx) => {
                rx.request_keyframe(kind);
                trace!(
                    participant = src.participant.0,
                    layer, "keyframe requested upstream"
                );
                true
            }
            None => false,
        }
    }

    /// The keyframe requests the throttle held back, to try again.
    pub fn take_deferred(&mut self) -> Vec<(SourceKey, KeyframeRequestKind)> {
        std::mem::take(&mut self.deferred)
    }
}
