//! Whether this node takes new work, for `GET /readyz` (load balancers) and the registry's
//! `draining` flag. Single-node mode has it too: starting → serving when the HTTP listener
//! starts accepting; only a cluster node's drain ([`crate::cluster::drain`]) makes it draining.
//!
//! Phases only move forward: starting → serving → draining (draining is final: the process
//! exits after it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// The phase of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Built, listeners not accepting yet: not ready.
    Starting,
    /// Accepting and serving: ready.
    Serving,
    /// Leaving (cluster mode, SIGTERM): not ready, sessions move elsewhere.
    Draining,
}

/// Shared phase; cheap to clone (one atomic).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// A node that is starting.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            STARTING => Phase::Starting,
            SERVING => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Serving
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.phase() == Phase::Draining
    }

    /// Starting → serving (the listener accepts). No effect once draining.
    pub fn set_serving(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, SERVING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// → draining, for good. Returns whether this call started it (false: already draining).
    pub fn set_draining(&self) -> bool {
        self.0.swap(DRAINING, Ordering::AcqRel) != DRAINING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let r = Readiness::new();
        assert_eq!(r.phase(), Phase::Starting);
        assert!(!r.is_ready());
        r.set_serving();
        assert!(r.is_ready());
        assert!(r.set_draining());
        assert!(!r.set_draining());
        r.set_serving();
        assert_eq!(r.phase(), Phase::Draining);
        assert!(!r.is_ready() && r.is_draining());
    }
}
