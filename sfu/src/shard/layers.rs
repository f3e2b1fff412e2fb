//! Simulcast layers seen from the publishers (RFC 8853 RIDs) and their measured bitrates,
//! for the layer choice of subscribers and taps.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use super::media::MediaPacket;
use crate::api::ParticipantId;

/// A simulcast layer not seen for this long is considered gone.
const LAYER_EXPIRY: Duration = Duration::from_secs(2);
/// Bitrate measurement window.
const WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct LayerSeen {
    participant: ParticipantId,
    rid: Option<Rid>,
    last_seen: Instant,
    window_start: Instant,
    window_bytes: u64,
    /// Smoothed bitrate, bit/s.
    bitrate_bps: u64,
}

/// The video layers of every publisher whose packets this shard sees.
#[derive(Debug, Default)]
pub struct Layers {
    seen: Vec<LayerSeen>,
}

impl Layers {
    /// Counts one video packet (payload + 12 bytes of RTP header) towards its layer's bitrate.
    /// Returns true when the layer is new (the choice changes for everyone watching it).
    #[inline]
    pub fn note(&mut self, pkt: &MediaPacket, now: Instant) -> bool {
        let len = pkt.payload.len() as u64 + 12;
        let known = self
            .seen
            .iter_mut()
            .find(|l| l.participant == pkt.source.participant && l.rid == pkt.source.rid);
        match known {
            Some(l) => {
                l.last_seen = now;
                l.window_bytes += len;
                let span = now.saturating_duration_since(l.window_start);
                if span >= WINDOW {
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
                false
            }
            None => {
                self.seen.push(LayerSeen {
                    participant: pkt.source.participant,
                    rid: pkt.source.rid,
                    last_seen: now,
                    window_start: now,
                    window_bytes: len,
                    bitrate_bps: 0,
                });
                true
            }
        }
    }

    /// Forgets layers not seen for `LAYER_EXPIRY` (2 s).
    pub fn expire(&mut self, now: Instant) {
        self.seen
            .retain(|l| now.saturating_duration_since(l.last_seen) < LAYER_EXPIRY);
    }

    /// Layer `n` of `participant`'s video for a relay m-line: the layers seen, in RID order
    /// (`None`, no simulcast, first). `None` when it has no `n`-th layer (yet).
    pub fn nth(&self, participant: ParticipantId, n: usize) -> Option<Option<Rid>> {
        let mut rids: Vec<Option<Rid>> = self
            .seen
            .iter()
            .filter(|l| l.participant == participant)
            .map(|l| l.rid)
            .collect();
        rids.sort_by(|a, b| a.as_deref().cmp(&b.as_deref()));
        rids.get(n).copied()
    }

    /// Chooses the simulcast layer of `participant` for a budget in bit/s: the highest layer
    /// whose measured bitrate fits, else the lowest. `None` when no video was seen yet.
    pub fn choose(&self, participant: ParticipantId, budget_bps: u64) -> Option<Option<Rid>> {
        let mut layers: Vec<&LayerSeen> = self
            .seen
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
}
