//! Whether this node takes new work, for `GET /readyz` (load balancers) and the registry's
//! `draining` flag. Single-node mode has it too: starting → serving when the HTTP listener
//! starts accepting; only a cluster node's drain ([`crate::cluster::drain`]) makes it draining.
//!
//! Phases only move forward: starting → serving → draining (draining is final: the process
//! exits after it). [`Readiness::subscribe`] tells of each change (the heartbeat announces it
//! at once rather than at its next beat).

use std::sync::Arc;

use tokio::sync::watch;

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

/// Shared phase; cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<watch::Sender<Phase>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(watch::Sender::new(Phase::Starting)))
    }
}

impl Readiness {
    /// A node that is starting.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Tells of every phase change from now on.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.0.subscribe()
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
        self.0.send_if_modified(|p| {
            let starting = *p == Phase::Starting;
            if starting {
                *p = Phase::Serving;
            }
            starting
        });
    }

    /// → draining, for good. Returns whether this call started it (false: already draining).
    pub fn set_draining(&self) -> bool {
        self.0.send_if_modified(|p| {
            let first = *p != Phase::Draining;
            *p = Phase::Draining;
            first
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let r = Readiness::new();
        let changes = r.subscribe();
        assert_eq!(r.phase(), Phase::Starting);
        assert!(!r.is_ready());
        r.set_serving();
        assert!(r.is_ready());
        assert!(r.set_draining());
        assert!(!r.set_draining());
        assert!(changes.has_changed().unwrap());
        r.set_serving();
        assert_eq!(r.phase(), Phase::Draining);
        assert!(!r.is_ready() && r.is_draining());
    }
}
