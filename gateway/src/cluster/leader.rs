//! Leadership: one node of the cluster does a job that must happen once cluster-wide (the
//! slot webhooks today; the program node and hub owners next), held through a [`Lease`]
//! named after the job.
//!
//! [`Leadership::spawn`] runs a task that tries to acquire the lease every TTL/3 while it is
//! not held, keeps (renews) it while held, and publishes "this node leads" on a `watch`
//! channel. A node that stops renewing (crash, Redis partition) loses the lease after its TTL
//! and another node takes over at its next try: a handover takes at most TTL + TTL/3. During a
//! partition both may briefly think they lead; what they do must tolerate that (a duplicate
//! webhook is possible then, a lost one is not).

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::Lease;
use crate::config::cluster::NodeId;

/// Lease TTL of a job's leadership.
pub const LEADER_TTL: Duration = Duration::from_secs(6);

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether this node leads a job; cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    leads: watch::Receiver<bool>,
    /// Single-node mode: leads for good.
    always: bool,
}

impl Leadership {
    /// Always the leader: single-node mode, where every job is this node's.
    pub fn always() -> Leadership {
        let (tx, leads) = watch::channel(true);
        // Keep the value: a receiver whose sender is gone still reads the last value.
        drop(tx);
        Leadership {
            leads,
            always: true,
        }
    }

    /// Competes for lease `name` as `node` on `conn` (TTL `ttl`) until the returned task is
    /// aborted.
    pub fn spawn(
        conn: ConnectionManager,
        name: &str,
        node: NodeId,
        ttl: Duration,
    ) -> (Leadership, JoinHandle<()>) {
        let (tx, leads) = watch::channel(false);
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let retry = (ttl / 3).max(Duration::from_millis(10));
            loop {
                match Lease::acquire(&conn, &name, &node, ttl).await {
                    Ok(Some(lease)) => {
                        tracing::info!(lease = %name, "this node leads");
                        let _ = tx.send(true);
                        let (mut held, renewing) = lease.keep();
                        // Renewal stops with this task, also when this task is aborted.
                        let _renewing = AbortOnDrop(renewing);
                        while *held.borrow() {
                            if held.changed().await.is_err() {
                                break;
                            }
                        }
                        let _ = tx.send(false);
                        tracing::info!(lease = %name, "this node no longer leads");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(lease = %name, error = %e, "lease not acquired"),
                }
                tokio::time::sleep(retry).await;
            }
        });
        (
            Leadership {
                leads,
                always: false,
            },
            task,
        )
    }

    /// Whether this node leads now. `false` once the competing task has ended (the cluster
    /// stopped: [`super::Cluster::leave`] or [`super::Cluster::halt`]), whatever it said last.
    pub fn leads(&self) -> bool {
        self.always || (*self.leads.borrow() && self.leads.has_changed().is_ok())
    }

    /// A receiver of "this node leads", which changes when leadership is won or lost (its
    /// `changed()` fails once the competing task has ended).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leads.clone()
    }
}
