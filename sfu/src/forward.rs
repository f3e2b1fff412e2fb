//! The per-(subscriber, slot, kind) forwarder: chooses which source packets go out on one
//! outgoing track and rewrites sequence numbers and RTP timestamps so the subscriber sees one
//! continuous stream across source and simulcast-layer switches (no renegotiation).
//!
//! Sans-IO: time is a parameter; no allocation per packet.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use crate::api::ParticipantId;

/// A source of one outgoing track: a publisher and (for video) one simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// The publisher.
    pub participant: ParticipantId,
    /// Simulcast layer (RFC 8853 RID); `None` for a stream without simulcast, and for audio.
    pub rid: Option<Rid>,
}

/// What one incoming packet looks like to a forwarder.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    /// Where it came from.
    pub source: SourceKey,
    /// Extended (64-bit, rollover-counted) RTP sequence number of the source stream.
    pub seq: u64,
    /// RTP timestamp in clock-rate ticks.
    pub rtp_time: u32,
    /// First packet of a keyframe (video) — a switch point. Always true for audio.
    pub switch_point: bool,
    /// Arrival time at the SFU.
    pub arrival: Instant,
    /// The publisher session the packet came from. A new session of the same publisher (a
    /// reconnect) restarts sequence numbers and timestamps, so it is switched to like a new
    /// source: on its first keyframe.
    pub epoch: u64,
}

/// Rewritten header fields of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number (ROC 0 at start).
    pub seq: u64,
    /// Outgoing RTP timestamp, clock-rate ticks.
    pub rtp_time: u32,
}

/// Decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not for this track (other source / layer, or waiting for a keyframe).
    Drop,
    /// Forward with the rewritten fields.
    Forward(Rewritten),
    /// Forward; this packet completed a switch to the pending source.
    Switched(Rewritten),
}

/// Rewriting state of one outgoing track. See the module docs.
#[derive(Debug)]
pub struct Forwarder {
    clock_rate: u32,
    current: Option<SourceKey>,
    pending: Option<SourceKey>,
    /// Added (wrapping) to the source's extended sequence number.
    seq_offset: u64,
    /// Added (wrapping) to the source's RTP timestamp.
    ts_offset: u32,
    /// Highest sequence number sent so far (extended), if any.
    last_seq: Option<u64>,
    last_ts: u32,
    last_at: Option<Instant>,
    /// Publisher session of the current source.
    epoch: u64,
}

impl Forwarder {
    /// A forwarder for a track with `clock_rate` Hz (90000 video, 48000 Opus), forwarding
    /// nothing yet.
    pub fn new(clock_rate: u32) -> Self {
        Forwarder {
            clock_rate,
            current: None,
            pending: None,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: None,
            last_ts: 0,
            last_at: None,
            epoch: 0,
        }
    }

    /// The source currently forwarded.
    pub fn current(&self) -> Option<SourceKey> {
        self.current
    }

    /// The source waiting for its switch point, if any.
    pub fn pending(&self) -> Option<SourceKey> {
        self.pending
    }

    /// What the track should show next: the pending source if a switch is under way, else the
    /// current one.
    pub fn target(&self) -> Option<SourceKey> {
        self.pending.or(self.current)
    }

    /// Asks for `source` (or nothing). Switching happens on the new source's next switch point;
    /// until then the current source keeps flowing. `None` stops forwarding at once.
    /// Returns true if a switch is now pending (the caller should request a keyframe).
    pub fn set_target(&mut self, source: Option<SourceKey>) -> bool {
        match source {
            None => {
                self.current = None;
                self.pending = None;
                false
            }
            Some(s) if self.current == Some(s) => {
                self.pending = None;
                false
            }
            Some(s) => {
                self.pending = Some(s);
                true
            }
        }
    }

    /// Decides about one packet and rewrites its header fields.
    pub fn on_packet(&mut self, p: &PacketMeta) -> Verdict {
        if self.pending == Some(p.source) && p.switch_point {
            self.switch_to(p);
            return Verdict::Switched(self.rewrite(p));
        }
        if self.current == Some(p.source) {
            if p.epoch != self.epoch {
                // Same publisher, new session: wait for its keyframe like for a new source.
                self.pending.get_or_insert(p.source);
                return Verdict::Drop;
            }
            return Verdict::Forward(self.rewrite(p));
        }
        Verdict::Drop
    }

    fn switch_to(&mut self, p: &PacketMeta) {
        self.current = self.pending.take();
        self.epoch = p.epoch;
        let (next_seq, next_ts) = match (self.last_seq, self.last_at) {
            (Some(seq), Some(at)) => {
                let gap = p
                    .arrival
                    .saturating_duration_since(at)
                    .max(Duration::from_millis(1));
                let ticks =
                    (gap.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000) as u32;
                (seq.wrapping_add(1), self.last_ts.wrapping_add(ticks.max(1)))
            }
            // First source: start at the source's own low 15 bits so the ROC stays 0.
            _ => (p.seq & 0x7fff, p.rtp_time),
        };
        self.seq_offset = next_seq.wrapping_sub(p.seq);
        self.ts_offset = next_ts.wrapping_sub(p.rtp_time);
    }

    fn rewrite(&mut self, p: &PacketMeta) -> Rewritten {
        let seq = p.seq.wrapping_add(self.seq_offset);
        let rtp_time = p.rtp_time.wrapping_add(self.ts_offset);
        if self.last_seq.is_none_or(|last| seq > last) {
            self.last_seq = Some(seq);
            self.last_ts = rtp_time;
            self.last_at = Some(p.arrival);
        }
        Rewritten { seq, rtp_time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u64, rid: Option<&str>) -> SourceKey {
        SourceKey {
            participant: ParticipantId(p),
            rid: rid.map(Rid::from),
        }
    }

    fn pkt(source: SourceKey, seq: u64, ts: u32, key: bool, at: Instant) -> PacketMeta {
        PacketMeta {
            source,
            seq,
            rtp_time: ts,
            switch_point: key,
            arrival: at,
            epoch: 1,
        }
    }

    #[test]
    fn waits_for_keyframe_then_forwards() {
        let t0 = Instant::now();
        let a = key(1, None);
        let mut f = Forwarder::new(90_000);
        assert!(f.set_target(Some(a)));
        assert_eq!(f.on_packet(&pkt(a, 100, 1000, false, t0)), Verdict::Drop);
        let Verdict::Switched(r) = f.on_packet(&pkt(a, 101, 4000, true, t0)) else {
            panic!()
        };
        assert_eq!(
            r,
            Rewritten {
                seq: 101,
                rtp_time: 4000
            }
        );
        assert_eq!(
            f.on_packet(&pkt(a, 102, 4000, false, t0)),
            Verdict::Forward(Rewritten {
                seq: 102,
                rtp_time: 4000
            })
        );
    }

    #[test]
    fn switch_keeps_sequence_and_time_continuous() {
        let t0 = Instant::now();
        let (a, b) = (key(1, None), key(2, None));
        let mut f = Forwarder::new(90_000);
        f.set_target(Some(a));
        f.on_packet(&pkt(a, 500, 10_000, true, t0));
        f.on_packet(&pkt(a, 501, 10_000, false, t0));
        // Switch to b: a keeps flowing until b's keyframe.
        assert!(f.set_target(Some(b)));
        assert_eq!(f.on_packet(&pkt(b, 9000, 777, false, t0)), Verdict::Drop);
        let t1 = t0 + Duration::from_millis(33);
        assert!(matches!(
            f.on_packet(&pkt(a, 502, 13_000, true, t1)),
            Verdict::Forward(_)
        ));
        let t2 = t0 + Duration::from_millis(66);
        let Verdict::Switched(r) = f.on_packet(&pkt(b, 9001, 50_000, true, t2)) else {
            panic!()
        };
        assert_eq!(r.seq, 503);
        assert_eq!(r.rtp_time, 13_000 + 33 * 90);
        // a no longer forwarded, b continues contiguous.
        assert_eq!(f.on_packet(&pkt(a, 503, 16_000, false, t2)), Verdict::Drop);
        assert_eq!(
            f.on_packet(&pkt(b, 9002, 53_000, false, t2)),
            Verdict::Forward(Rewritten {
                seq: 504,
                rtp_time: 13_000 + 33 * 90 + 3000
            })
        );
    }

    #[test]
    fn wraps_without_panicking() {
        let t0 = Instant::now();
        let (a, b) = (key(1, None), key(2, None));
        let mut f = Forwarder::new(48_000);
        f.set_target(Some(a));
        f.on_packet(&pkt(a, 10, u32::MAX - 10, true, t0));
        f.set_target(Some(b));
        let Verdict::Switched(r) =
            f.on_packet(&pkt(b, u64::MAX, 5, true, t0 + Duration::from_millis(20)))
        else {
            panic!()
        };
        assert_eq!(r.seq, 11);
        assert_eq!(r.rtp_time, (u32::MAX - 10).wrapping_add(960));
    }

    #[test]
    fn clearing_target_stops_at_once() {
        let t0 = Instant::now();
        let a = key(1, None);
        let mut f = Forwarder::new(90_000);
        f.set_target(Some(a));
        f.on_packet(&pkt(a, 1, 1, true, t0));
        f.set_target(None);
        assert_eq!(f.on_packet(&pkt(a, 2, 1, true, t0)), Verdict::Drop);
    }

    #[test]
    fn new_publisher_session_waits_for_its_keyframe() {
        let t0 = Instant::now();
        let a = key(1, None);
        let mut f = Forwarder::new(90_000);
        f.set_target(Some(a));
        f.on_packet(&pkt(a, 100, 1000, true, t0));
        f.on_packet(&pkt(a, 101, 1000, false, t0));
        // Reconnected publisher: random new sequence numbers, new epoch.
        let mut p = pkt(a, 40_000, 9, false, t0 + Duration::from_millis(40));
        p.epoch = 2;
        assert_eq!(f.on_packet(&p), Verdict::Drop);
        assert_eq!(
            f.pending(),
            Some(a),
            "a switch is pending (the caller asks for a keyframe)"
        );
        p.seq = 40_001;
        p.switch_point = true;
        let Verdict::Switched(r) = f.on_packet(&p) else {
            panic!()
        };
        assert_eq!(r.seq, 102, "continues after the old session");
    }
}
