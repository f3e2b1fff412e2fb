//! A cluster node's drain (SIGTERM in cluster mode): leave placement, tell the pages to move,
//! exit when no session remains or after the drain timeout.
//!
//! [`Drain::run`]:
//! 1. [`Readiness`] → draining: `GET /readyz` answers 503 and the next heartbeat carries
//!    `draining` (placement skips the node, [`crate::cluster::registry`]);
//! 2. the [`Moving`] notice is published on a `watch` channel every room's hub listens to
//!    ([`crate::hub::shell::HubDeps::moving`]): each hub sends `ServerMessage{moving}` once to
//!    every WebSocket and data-channel client it has, and to any that joins later;
//! 3. it polls `remaining()` (WebRTC sessions + interaction clients) every [`POLL`] and returns
//!    when it reaches 0 or the timeout passes. The caller then stops serving and exits.
//!
//! Single-node mode never drains: SIGTERM stops the process as before.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::readiness::Readiness;

/// How often a drain counts the sessions left.
pub const POLL: Duration = Duration::from_millis(250);

/// What the pages are told when their node drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moving {
    /// For people.
    pub reason: String,
    /// When the node exits at the latest, ms since the epoch.
    pub deadline_ms: u64,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Sessions still there at the end (0 unless it timed out).
    pub remaining: usize,
    /// Whether the timeout ended it.
    pub timed_out: bool,
    /// How long it took.
    pub took: Duration,
}

/// The drain switch of a node; cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain {
    readiness: Readiness,
    moving: watch::Sender<Option<Moving>>,
}

impl Drain {
    /// A node's drain switch over its `readiness`.
    pub fn new(readiness: Readiness) -> Drain {
        let (moving, _) = watch::channel(None);
        Drain { readiness, moving }
    }

    /// The node's readiness.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The moving notice (`None` until a drain begins), for the hubs.
    pub fn subscribe(&self) -> watch::Receiver<Option<Moving>> {
        self.moving.subscribe()
    }

    /// Starts draining: readiness → draining and the moving notice out. `wall_ms` is now (ms
    /// since the epoch), `timeout` the drain timeout. Returns false when already draining.
    pub fn begin(&self, wall_ms: u64, timeout: Duration) -> bool {
        if !self.readiness.set_draining() {
            return false;
        }
        let deadline_ms =
            wall_ms.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self.moving.send_replace(Some(Moving {
            reason: "this server is leaving the cluster: reconnect to another one".into(),
            deadline_ms,
        }));
        true
    }

    /// Drains: [`Drain::begin`], then waits until `remaining()` (sessions and clients left on
    /// this node) is 0, or `timeout`.
    pub async fn run<F, Fut>(&self, timeout: Duration, mut remaining: F) -> DrainOutcome
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = usize>,
    {
        let start = Instant::now();
        self.begin(super::unix_ms(), timeout);
        tracing::info!(
            timeout_s = timeout.as_secs(),
            "draining: leaving placement, pages told to move"
        );
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = remaining().await;
            if left == 0 {
                return DrainOutcome {
                    remaining: 0,
                    timed_out: false,
                    took: start.elapsed(),
                };
            }
            if tokio::time::Instant::now() + POLL > deadline {
                tokio::time::sleep_until(deadline).await;
                let left = remaining().await;
                return DrainOutcome {
                    remaining: left,
                    timed_out: left > 0,
                    took: start.elapsed(),
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_drain_flips_readiness_tells_the_hubs_and_ends_when_sessions_are_gone() {
        let readiness = Readiness::new();
        readiness.set_serving();
        let drain = Drain::new(readiness.clone());
        let mut hub = drain.subscribe();
        assert!(hub.borrow().is_none());
        let left = Arc::new(AtomicUsize::new(3));
        let counter = left.clone();
        let d = drain.clone();
        let run = tokio::spawn(async move {
            d.run(Duration::from_secs(30), || {
                let n = counter.load(Ordering::Relaxed);
                async move { n }
            })
            .await
        });
        hub.changed().await.unwrap();
        let moving = hub.borrow().clone().unwrap();
        assert!(moving.deadline_ms > 0);
        assert!(readiness.is_draining());
        left.store(0, Ordering::Relaxed);
        let out = run.await.unwrap();
        assert!(!out.timed_out && out.remaining == 0, "{out:?}");
        assert!(out.took < Duration::from_secs(1));
        assert!(!drain.begin(0, Duration::from_secs(1)), "once");
    }

    #[tokio::test]
    async fn a_drain_gives_up_at_its_timeout() {
        let drain = Drain::new(Readiness::new());
        let out = drain.run(Duration::from_millis(600), || async { 1 }).await;
        assert!(out.timed_out && out.remaining == 1, "{out:?}");
        assert!(out.took >= Duration::from_millis(600), "{out:?}");
    }
}
