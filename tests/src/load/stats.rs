//! Statistics: nearest-rank percentiles and RTP loss from sequence-number gaps.

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(n - 1);
    sorted.get(idx).copied()
}

/// Width of the duplicate / reorder window, in sequence numbers.
const WINDOW: u64 = 128;

/// Counts RTP loss of one SSRC from gaps in its 16-bit sequence numbers (RFC 3550 §A.3
/// style extension across wraparound).
///
/// The first packet seen sets the base. `expected = highest − base + 1`; a packet arriving
/// out of order within the last [`WINDOW`] sequence numbers fills its gap, duplicates are
/// ignored, and older stragglers are counted in [`SeqLoss::late`] only.
#[derive(Debug, Clone, Default)]
pub struct SeqLoss {
    started: bool,
    base: u64,
    highest: u64,
    /// Bit i set = sequence number `highest - i` received.
    window: u128,
    received: u64,
    duplicates: u64,
    late: u64,
}

impl SeqLoss {
    /// A counter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a received 16-bit RTP sequence number.
    pub fn record(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            // Start well above zero so that reordered packets before the first one extend
            // below it without underflow.
            let ext = (1u64 << 32) + u64::from(seq);
            self.base = ext;
            self.highest = ext;
            self.window = 1;
            self.received = 1;
            return;
        }
        // Signed distance from the highest seen, modulo 2^16.
        let delta = seq.wrapping_sub(self.highest as u16) as i16;
        let ext = (self.highest as i64 + i64::from(delta)) as u64;
        if ext > self.highest {
            let shift = ext - self.highest;
            self.window = if shift >= WINDOW {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.highest = ext;
            self.received += 1;
        } else {
            let back = self.highest - ext;
            if ext < self.base || back >= WINDOW {
                self.late += 1;
            } else if self.window & (1u128 << back) != 0 {
                self.duplicates += 1;
            } else {
                self.window |= 1u128 << back;
                self.received += 1;
            }
        }
    }

    /// Sequence numbers expected from the first to the highest received.
    pub fn expected(&self) -> u64 {
        if self.started {
            self.highest - self.base + 1
        } else {
            0
        }
    }

    /// Distinct sequence numbers received within the expected range.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Expected but never received.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Packets seen twice.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets too old to place (before the base or behind the reorder window).
    pub fn late(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 51.0), Some(3));
    }

    #[test]
    fn no_loss_in_order() {
        let mut l = SeqLoss::new();
        for s in 100..200u16 {
            l.record(s);
        }
        assert_eq!(l.expected(), 100);
        assert_eq!(l.lost(), 0);
    }

    #[test]
    fn gaps_are_lost() {
        let mut l = SeqLoss::new();
        for s in [1u16, 2, 3, 6, 7, 10] {
            l.record(s);
        }
        assert_eq!(l.expected(), 10);
        assert_eq!(l.received(), 6);
        assert_eq!(l.lost(), 4);
    }

    #[test]
    fn wraparound_is_continuous() {
        let mut l = SeqLoss::new();
        for s in 65530..=65535u16 {
            l.record(s);
        }
        for s in 0..10u16 {
            if s != 3 {
                l.record(s);
            }
        }
        assert_eq!(l.expected(), 16);
        assert_eq!(l.lost(), 1);
    }

    #[test]
    fn many_wraps() {
        let mut l = SeqLoss::new();
        let mut s: u16 = 40000;
        for i in 0..300_000u32 {
            if i % 1000 != 999 {
                l.record(s);
            }
            s = s.wrapping_add(1);
        }
        // The last packet (i = 299_999) is dropped too, so it is not "expected".
        assert_eq!(l.expected(), 299_999);
        assert_eq!(l.lost(), 299);
    }

    #[test]
    fn reorder_fills_gap_and_duplicates_ignored() {
        let mut l = SeqLoss::new();
        for s in [65534u16, 0, 1, 65535, 1, 2] {
            l.record(s);
        }
        assert_eq!(l.expected(), 5);
        assert_eq!(l.lost(), 0);
        assert_eq!(l.duplicates(), 1);
    }

    #[test]
    fn stragglers_before_base_are_late() {
        let mut l = SeqLoss::new();
        l.record(10);
        l.record(9);
        l.record(11);
        assert_eq!(l.expected(), 2);
        assert_eq!(l.lost(), 0);
        assert_eq!(l.late(), 1);
    }

    #[test]
    fn big_jump_clears_window() {
        let mut l = SeqLoss::new();
        l.record(0);
        l.record(1000);
        l.record(999);
        assert_eq!(l.expected(), 1001);
        assert_eq!(l.received(), 3);
        assert_eq!(l.lost(), 998);
    }
}
