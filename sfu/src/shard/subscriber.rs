//! Subscriber outputs: what a shard keeps per WHEP viewer (or admin preview) — one outgoing
//! track per (stage slot, kind) with its [`Forwarder`] and payload-type mapping, the
//! simulcast layer choice against the viewer's bandwidth estimate, and its `venue` data
//! channels.

use bytes::Bytes;
use str0m::Rtc;
use str0m::bwe::Bitrate;
use str0m::channel::{ChannelData, ChannelId};
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use tracing::debug;

use super::layers::Layers;
use super::media::{CodecKey, MediaPacket, clock_hz};
use super::stats::ShardStats;
use crate::api::{ChannelClass, LOSSY_MAX_BUFFERED, ParticipantId, RELAY_LAYERS, SubscribeTarget};
use crate::forward::{Forwarder, PacketMeta, SourceKey, Verdict};
use crate::offer::MidLayout;

/// Largest data-channel message passed to the control plane, bytes.
const MAX_CHANNEL_MESSAGE: usize = 64 * 1024;

/// One outgoing track of a subscriber: stage slot `slot`'s audio or video on m-line `mid`.
#[derive(Debug)]
struct TrackOut {
    slot: usize,
    kind: MediaKind,
    /// Simulcast layer index on a relay's video m-line (0 otherwise).
    layer: usize,
    mid: Mid,
    ssrc: Option<Ssrc>,
    fwd: Forwarder,
    /// CodecKey → our payload type on this m-line.
    pts: Vec<(CodecKey, Pt)>,
}

/// The WHEP side of one subscriber session.
#[derive(Debug)]
pub struct Subscriber {
    pub target: SubscribeTarget,
    tracks: Vec<TrackOut>,
    /// The reliable `venue` channel.
    channel: Option<ChannelId>,
    /// The unreliable `venue-lossy` channel.
    lossy_channel: Option<ChannelId>,
    /// Latest egress bandwidth estimate (TWCC).
    pub bwe: Bitrate,
}

impl Subscriber {
    /// A subscriber whose `rtc` has accepted its offer: the i-th video and i-th audio m-line
    /// of `layout` carry slot i (only slot 0 for a participant preview). Forwarded media
    /// leaves unpaced: the publisher already paces it, and a pacer here queues video behind
    /// its estimate (seconds of delay under load). The TWCC estimate is still made and drives
    /// the simulcast layer choice.
    pub fn new(
        target: SubscribeTarget,
        rtc: &mut Rtc,
        layout: &MidLayout,
        max_slots: usize,
        initial_bwe: Bitrate,
    ) -> Subscriber {
        let slots = match target {
            SubscribeTarget::Stage | SubscribeTarget::Relay => max_slots,
            SubscribeTarget::Participant(_) => 1,
        };
        // A relay carries every simulcast layer of a slot, one video m-line each.
        let video_layers = match target {
            SubscribeTarget::Relay => RELAY_LAYERS,
            _ => 1,
        };
        let mut tracks = Vec::new();
        for (kind, mids, per_slot) in [
            (MediaKind::Video, &layout.video, video_layers),
            (MediaKind::Audio, &layout.audio, 1),
        ] {
            for (i, mid) in mids.iter().take(slots * per_slot).enumerate() {
                let (slot, layer) = (i / per_slot, i % per_slot);
                let ssrc = rtc.direct_api().stream_tx_by_mid(*mid, None).map(|s| {
                    s.set_unpaced(true);
                    s.ssrc()
                });
                tracks.push(TrackOut {
                    slot,
                    kind,
                    layer,
                    mid: *mid,
                    ssrc,
                    fwd: Forwarder::new(clock_hz(kind)),
                    pts: Vec::new(),
                });
            }
        }
        Subscriber {
            target,
            tracks,
            channel: None,
            lossy_channel: None,
            bwe: initial_bwe,
        }
    }

    /// Writes `pkt` to every track of its kind whose forwarder takes it (rewritten sequence
    /// number and timestamp, the payload shared, not copied). Returns the packets written.
    #[inline]
    pub fn forward(&mut self, rtc: &mut Rtc, pkt: &MediaPacket, meta: &PacketMeta) -> u64 {
        let mut written = 0;
        for t in self.tracks.iter_mut().filter(|t| t.kind == pkt.kind) {
            let rw = match t.fwd.on_packet(meta) {
                Verdict::Drop => continue,
                Verdict::Forward(rw) | Verdict::Switched(rw) => rw,
            };
            let pt = match t.pts.iter().find(|(k, _)| *k == pkt.codec) {
                Some((_, pt)) => *pt,
                None => match out_pt(rtc, t.mid, pkt.codec) {
                    Some(pt) => {
                        t.pts.push((pkt.codec, pt));
                        pt
                    }
                    None => continue,
                },
            };
            let Some(ssrc) = t.ssrc else { continue };
            let mut api = rtc.direct_api();
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
            written += 1;
        }
        written
    }

    /// The source shown on the track of m-line `mid` (for a viewer's PLI/FIR).
    pub fn source_of(&self, mid: Mid) -> Option<SourceKey> {
        self.tracks
            .iter()
            .find(|t| t.mid == mid)
            .and_then(|t| t.fwd.target())
    }

    /// Points every track at what `stage` shows on its slot (the simulcast layer that fits
    /// 90 % of the bandwidth estimate shared by the slots in use); pushes the sources that
    /// need a keyframe onto `requests`.
    pub fn retarget(
        &mut self,
        stage: &[Option<ParticipantId>],
        layers: &Layers,
        requests: &mut Vec<SourceKey>,
    ) {
        let n_video = self
            .tracks
            .iter()
            .filter(|t| t.kind == MediaKind::Video)
            .count();
        let active = stage
            .iter()
            .take(n_video)
            .filter(|s| s.is_some())
            .count()
            .max(1) as u64;
        let budget = self.bwe.as_u64() * 9 / 10 / active;
        let relay = self.target == SubscribeTarget::Relay;
        for t in &mut self.tracks {
            let key = if relay {
                relay_source(stage, t.slot, t.kind, t.layer, layers)
            } else {
                wanted_source(stage, t.slot, t.kind, &t.fwd, layers, budget)
            };
            retarget(&mut t.fwd, t.kind, key, requests);
        }
    }

    /// Video sources some track still waits to switch to (pushed once each onto `waiting`).
    pub fn pending_video(&self, waiting: &mut Vec<SourceKey>) {
        for t in self.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
            if let Some(p) = t.fwd.pending()
                && !waiting.contains(&p)
            {
                waiting.push(p);
            }
        }
    }

    /// A data channel opened; returns true when it is the reliable `venue` channel (a new
    /// interaction client). `venue-lossy` is remembered; other labels are ignored.
    pub fn channel_opened(&mut self, id: ChannelId, label: &str) -> bool {
        match label {
            "venue" => {
                self.channel = Some(id);
                true
            }
            "venue-lossy" => {
                self.lossy_channel = Some(id);
                false
            }
            _ => false,
        }
    }

    /// Whether `id` is one of this subscriber's `venue` channels.
    pub fn owns_channel(&self, id: ChannelId) -> bool {
        self.channel == Some(id) || self.lossy_channel == Some(id)
    }

    /// A message on one of this subscriber's channels, for the control plane; `None` (drop
    /// and count it) when it came on another channel or is over [`MAX_CHANNEL_MESSAGE`] bytes.
    pub fn channel_message(&self, d: ChannelData) -> Option<Bytes> {
        (self.owns_channel(d.id) && d.data.len() <= MAX_CHANNEL_MESSAGE)
            .then(|| Bytes::from(d.data))
    }

    /// Writes one frame to the channel of `class` (lossy falls back to reliable when there is
    /// no lossy channel; lossy frames are dropped, counted, when more than
    /// [`LOSSY_MAX_BUFFERED`] bytes wait in SCTP).
    pub fn send_frame(
        &self,
        rtc: &mut Rtc,
        class: ChannelClass,
        frame: &[u8],
        stats: &mut ShardStats,
    ) {
        let id = match class {
            ChannelClass::Reliable => self.channel,
            ChannelClass::Lossy => self.lossy_channel.or(self.channel),
        };
        let Some(id) = id else { return };
        let Some(mut ch) = rtc.channel(id) else {
            return;
        };
        if class == ChannelClass::Lossy && ch.buffered_amount() > LOSSY_MAX_BUFFERED {
            stats.lossy_dropped += 1;
            return;
        }
        if let Err(e) = ch.write(true, frame) {
            debug!(error = %e, "data channel write failed");
        }
    }
}

/// The source a track of stage slot `slot` should show: the slot's publisher; for video the
/// simulcast layer [`Layers::choose`] picks for `budget_bps`, or, before any of its video was
/// seen, the layer `fwd` already has. `None` for an empty slot. Shared by subscribers and taps.
pub fn wanted_source(
    stage: &[Option<ParticipantId>],
    slot: usize,
    kind: MediaKind,
    fwd: &Forwarder,
    layers: &Layers,
    budget_bps: u64,
) -> Option<SourceKey> {
    let participant = stage.get(slot).copied().flatten()?;
    let rid = match kind {
        MediaKind::Audio => None,
        MediaKind::Video => match layers.choose(participant, budget_bps) {
            Some(rid) => rid,
            // Nothing seen yet: keep what we have (or wait).
            None => fwd.target().and_then(|k| k.rid),
        },
    };
    Some(SourceKey { participant, rid })
}

/// The source a relay m-line of stage slot `slot` carries: the slot's audio, or its video
/// layer `layer` in RID order ([`Layers::nth`]); before any of its video was seen, layer 0 is
/// the stream without simulcast. `None` for an empty slot or a layer it does not have.
fn relay_source(
    stage: &[Option<ParticipantId>],
    slot: usize,
    kind: MediaKind,
    layer: usize,
    layers: &Layers,
) -> Option<SourceKey> {
    let participant = stage.get(slot).copied().flatten()?;
    let rid = match kind {
        MediaKind::Audio => None,
        MediaKind::Video => match layers.nth(participant, layer) {
            Some(rid) => rid,
            None if layer == 0 => None,
            None => return None,
        },
    };
    Some(SourceKey { participant, rid })
}

/// Points `fwd` at `key` unless it already shows it; pushes `key` onto `requests` when a video
/// track now waits for its keyframe. Returns false when nothing changed.
pub fn retarget(
    fwd: &mut Forwarder,
    kind: MediaKind,
    key: Option<SourceKey>,
    requests: &mut Vec<SourceKey>,
) -> bool {
    if fwd.target() == key && fwd.current().is_some() {
        return false;
    }
    let pending = fwd.set_target(key);
    if (pending || fwd.current().is_none())
        && kind == MediaKind::Video
        && let Some(k) = key
    {
        requests.push(k);
    }
    true
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
