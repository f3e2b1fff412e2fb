//! Which node composes a room's program (issue 11 item 8): the **program node**.
//!
//! Single-node mode: always this node. Cluster mode: the holder of the lease
//! `program:{room}` ([`crate::cluster::leader::Leadership`], TTL
//! [`crate::cluster::leader::LEADER_TTL`] = 6 s): every node competes for the lease of every
//! room the program supervisor looks at, one wins; when it dies (stops renewing) another takes
//! over within TTL + TTL/3 ≈ 8 s and composes from then on. Only the program node composes
//! the room's program (LL-HLS and recordings, [`crate::media::program`]); the other nodes
//! proxy `/hls/{room}/...` to it (`http::hls`, `/internal/hls/...`).
//!
//! **The one place** that says "this node composes room X" is [`ProgramNodes::composes`]
//! (now) and [`ProgramNodes::watch`] (a `watch` of it, for whoever must act when it changes:
//! e.g. opening relays for the stage slots published on other nodes). Everything else asks
//! these two.
//!
//! [`ProgramNodes::locate`] answers the proxying nodes: this node, or another node's id and
//! internal URL (the lease holder as Redis names it, looked up in the node registry; cached
//! for [`LOCATE_CACHE`] so a busy edge does not ask Redis for every part).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::cluster::leader::Leadership;
use crate::cluster::lease::Lease;
use crate::metrics::ClusterMetrics;

/// How long a located program node is reused before Redis is asked again.
pub const LOCATE_CACHE: Duration = Duration::from_secs(1);

/// The lease name of room `room`'s program node.
pub fn lease_name(room: &str) -> String {
    format!("program:{room}")
}

/// Where a room's program is composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramNode {
    /// Here: serve from this node's [`crate::media::hls_programs::HlsPrograms`].
    Local,
    /// On node `node_id`, reachable at `internal_url` (no trailing slash).
    Remote {
        node_id: String,
        internal_url: String,
    },
}

/// Why the program node of a room is not known now. Messages are for HTTP clients and logs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocateError {
    /// Nobody holds the lease (between a crash and the takeover, ≤ ~8 s).
    #[error("no node composes the program of room {0:?} right now (a node is taking over)")]
    NoHolder(String),
    /// The holder is not in the node registry (dead, or its registration expired first).
    #[error("the program node {node} of room {room:?} is not a live node of the cluster")]
    NotLive { room: String, node: String },
    /// Redis failed.
    #[error("cluster Redis: {0}")]
    Redis(String),
}

struct Clustered {
    cluster: Arc<Cluster>,
    /// `program_rooms` is set to the rooms this node composes.
    metrics: ClusterMetrics,
    /// Room → this node's contest for its lease (started on first use, kept while the node runs).
    contests: Mutex<HashMap<String, Leadership>>,
    /// Room → (when located, where).
    located: Mutex<HashMap<String, (Instant, ProgramNode)>>,
}

/// The program node decision of every room; cheap to clone (see the module docs).
#[derive(Clone)]
pub struct ProgramNodes {
    inner: Option<Arc<Clustered>>,
}

impl std::fmt::Debug for ProgramNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramNodes")
            .field("cluster", &self.inner.is_some())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProgramNodes {
    /// Single-node mode: this node composes every room.
    pub fn single() -> ProgramNodes {
        ProgramNodes { inner: None }
    }

    /// Cluster mode: one program node per room, by lease; `metrics.program_rooms` counts
    /// the rooms this node composes (updated on each [`ProgramNodes::composes`]).
    pub fn cluster(cluster: Arc<Cluster>, metrics: ClusterMetrics) -> ProgramNodes {
        ProgramNodes {
            inner: Some(Arc::new(Clustered {
                cluster,
                metrics,
                contests: Mutex::default(),
                located: Mutex::default(),
            })),
        }
    }

    /// Whether this is cluster mode (other nodes may compose).
    pub fn is_cluster(&self) -> bool {
        self.inner.is_some()
    }

    fn contest(c: &Clustered, room: &str) -> Leadership {
        let mut contests = lock(&c.contests);
        let leadership = contests
            .entry(room.to_owned())
            .or_insert_with(|| c.cluster.leadership(&lease_name(room)))
            .clone();
        let composing = contests.values().filter(|l| l.leads()).count();
        c.metrics
            .program_rooms
            .set(i64::try_from(composing).unwrap_or(i64::MAX));
        leadership
    }

    /// Whether this node composes room `room` now. Cluster mode: the first call for a room
    /// starts this node's contest for its lease (so it says `false` until the lease is won,
    /// a few milliseconds when it is free).
    pub fn composes(&self, room: &str) -> bool {
        match &self.inner {
            None => true,
            Some(c) => Self::contest(c, room).leads(),
        }
    }

    /// A receiver of [`ProgramNodes::composes`] for room `room`: it changes when this node
    /// becomes or stops being the room's program node (always `true` in single-node mode).
    pub fn watch(&self, room: &str) -> watch::Receiver<bool> {
        match &self.inner {
            None => Leadership::always().subscribe(),
            Some(c) => Self::contest(c, room).subscribe(),
        }
    }

    /// Where room `room`'s program is composed: [`ProgramNode::Local`] when this node
    /// composes it (always in single-node mode), else the lease holder's id and internal URL.
    /// Starts no contest (the name may come from a URL: only the supervisor's rooms are
    /// contested). Errors: [`LocateError`].
    pub async fn locate(&self, room: &str) -> Result<ProgramNode, LocateError> {
        let Some(c) = &self.inner else {
            return Ok(ProgramNode::Local);
        };
        if lock(&c.contests).get(room).is_some_and(Leadership::leads) {
            return Ok(ProgramNode::Local);
        }
        if let Some((at, node)) = lock(&c.located).get(room)
            && at.elapsed() < LOCATE_CACHE
        {
            return Ok(node.clone());
        }
        let holder = Lease::holder(c.cluster.redis(), &lease_name(room))
            .await
            .map_err(|e| LocateError::Redis(e.to_string()))?
            .ok_or_else(|| LocateError::NoHolder(room.to_owned()))?;
        // The token is `node/random`; node ids may not contain '/', but split at the last one.
        let node_id = holder.rsplit_once('/').map_or(holder.as_str(), |(n, _)| n);
        let node = if node_id == c.cluster.settings().node_id.as_str() {
            // Won a moment ago: the contest's watch says so at once.
            ProgramNode::Local
        } else {
            let nodes = c
                .cluster
                .nodes()
                .await
                .map_err(|e| LocateError::Redis(e.to_string()))?;
            let info = nodes
                .live
                .into_iter()
                .find(|n| n.node_id == node_id)
                .ok_or_else(|| LocateError::NotLive {
                    room: room.to_owned(),
                    node: node_id.to_owned(),
                })?;
            ProgramNode::Remote {
                node_id: info.node_id,
                internal_url: info.internal_url.trim_end_matches('/').to_owned(),
            }
        };
        lock(&c.located).insert(room.to_owned(), (Instant::now(), node.clone()));
        Ok(node)
    }

    /// Forgets the located program node of `room` (a proxied call to it failed).
    pub fn forget(&self, room: &str) {
        if let Some(c) = &self.inner {
            lock(&c.located).remove(room);
        }
    }

    /// The cluster, in cluster mode (node-to-node auth, the registry).
    pub fn cluster_handle(&self) -> Option<&Arc<Cluster>> {
        self.inner.as_ref().map(|c| &c.cluster)
    }
}
