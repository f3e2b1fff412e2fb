//! The node registry in Redis: who is in the cluster, how loaded, and whether it takes work.
//!
//! Every [`HEARTBEAT`] a node writes `SET venue:node:{id} <sealed json> PX 6000` and adds its
//! id to the set `venue:nodes`; a node that stops (crash, `kill -9`, network split) is gone
//! when its key expires, [`TTL`] after its last heartbeat. [`Registry::nodes`] reads the set
//! and the keys (`SMEMBERS` + `MGET`), drops ids whose key expired from the set, and returns
//! the live nodes whose registration verifies with the cluster's key
//! ([`crate::cluster::auth::NodeAuth::seal`]); registrations signed with another cluster
//! secret, malformed ones and ones of an incompatible protocol version are listed apart (and
//! logged by the heartbeat once per node).
//!
//! A node announces [`CLUSTER_PROTOCOL_VERSION`]; nodes coexist when their major versions are
//! equal (minor versions add optional fields only: unknown fields are ignored). At start
//! ([`check_joinable`]) a node refuses a cluster whose live nodes speak another major version
//! or are all signed with another secret.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, NodeAuth};
use super::readiness::Readiness;
use super::{ClusterError, unix_ms};
use crate::config::cluster::NodeId;
use crate::metrics::ClusterMetrics;

/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a registration lives without a new heartbeat.
pub const TTL: Duration = Duration::from_secs(6);
/// The set of node ids (members may have expired: their keys decide).
pub const NODES_KEY: &str = "venue:nodes";

/// The Redis key of node `id`'s registration.
pub fn node_key(id: &str) -> String {
    format!("venue:node:{id}")
}

/// A cluster protocol version: what nodes say to each other (registry records, bus messages,
/// internal routes). Equal majors are compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

impl ProtocolVersion {
    /// Whether a node speaking `self` can work with one speaking `other`.
    pub fn compatible(self, other: ProtocolVersion) -> bool {
        self.major == other.major
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version this build speaks.
pub const CLUSTER_PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };

/// A node's load, as its heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// This process's CPU over the last sampled second, percent of all cores (`None`: not
    /// measured, e.g. `hls.max_cpu_percent = 0` or no `/proc`).
    pub cpu_percent: Option<f32>,
    /// WHEP viewer sessions connected.
    pub webrtc_viewers: u64,
    /// Media plane UDP egress, bit/s over the last ≥ 1 s (`None` before two samples).
    pub egress_bps: Option<u64>,
    /// Relay sessions, both sides (from other nodes and to them).
    pub relays: u64,
    /// Per room this node serves: its WebRTC viewers here and whether this node has the
    /// room's stage media (a relay from an origin, or a publisher of it here). Placement
    /// prefers nodes that have it. Absent in a 1.0 heartbeat (empty).
    #[serde(default)]
    pub rooms: Vec<RoomLoad>,
}

/// One room's load on a node, in [`Load::rooms`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomLoad {
    /// The room's store id.
    pub room: i64,
    /// WebRTC viewers of the room on this node (registered WHEP sessions).
    pub viewers: u64,
    /// This node has the room's stage media (relayed in or published here).
    pub media: bool,
}

/// One node's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    /// Base URL of the node's HTTP for other nodes (no trailing slash).
    pub internal_url: String,
    pub protocol: ProtocolVersion,
    /// When the node started, ms since the epoch.
    pub started_at_ms: u64,
    /// When this heartbeat was written, ms since the epoch (the node's clock).
    pub sent_at_ms: u64,
    /// The node accepts requests (`/readyz` would say 200).
    pub ready: bool,
    /// The node drains: placement skips it.
    pub draining: bool,
    /// How viewers reach the node (`http.public_url`, else its internal URL), no trailing
    /// slash. Absent in a 1.0 heartbeat (then the internal URL is used).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The node's WebRTC viewer limit (`cluster.max_viewers`, 0: none).
    #[serde(default)]
    pub max_viewers: u64,
    pub load: Load,
}

/// What [`Registry::nodes`] found.
#[derive(Debug, Clone, Default)]
pub struct NodesView {
    /// Live nodes with a verified registration of a compatible version, by id.
    pub live: Vec<NodeInfo>,
    /// Live nodes of another major version: (id, version).
    pub incompatible: Vec<(String, ProtocolVersion)>,
    /// Registrations refused: (id from the key, why), e.g. signed with another secret.
    pub rejected: Vec<(String, AuthError)>,
}

/// The first fields of a registration, read before the rest so that a node of another major
/// version (whose record may look different) is still recognised.
#[derive(Deserialize)]
struct Head {
    node_id: String,
    protocol: ProtocolVersion,
}

/// Reads and writes registrations.
#[derive(Clone)]
pub struct Registry {
    conn: ConnectionManager,
    auth: NodeAuth,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("node", self.auth.node())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The registry on `conn`, sealing with `auth`.
    pub fn new(conn: ConnectionManager, auth: NodeAuth) -> Registry {
        Registry { conn, auth }
    }

    /// Writes `info` for [`TTL`] and adds its id to [`NODES_KEY`]. Errors: Redis.
    pub async fn announce(&self, info: &NodeInfo) -> Result<(), redis::RedisError> {
        let json = serde_json::to_string(info).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "serializing the registration",
                e.to_string(),
            ))
        })?;
        let sealed = self.auth.seal(&json);
        let ttl_ms = u64::try_from(TTL.as_millis()).unwrap_or(6000);
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("SET")
            .arg(node_key(&info.node_id))
            .arg(sealed)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(NODES_KEY)
            .arg(&info.node_id)
            .ignore()
            .exec_async(&mut conn)
            .await
    }

    /// Removes this node's registration now (a clean exit). Errors: Redis.
    pub async fn withdraw(&self) -> Result<(), redis::RedisError> {
        let id = self.auth.node().as_str();
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("DEL")
            .arg(node_key(id))
            .ignore()
            .cmd("SREM")
            .arg(NODES_KEY)
            .arg(id)
            .ignore()
            .exec_async(&mut conn)
            .await
    }

    /// The live nodes. Ids in [`NODES_KEY`] whose key has expired are removed from it.
    /// Errors: Redis.
    pub async fn nodes(&self) -> Result<NodesView, redis::RedisError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(NODES_KEY)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(NodesView::default());
        }
        let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut view = NodesView::default();
        let mut gone = Vec::new();
        for (id, value) in ids.into_iter().zip(values) {
            match value {
                None => gone.push(id),
                Some(sealed) => self.classify(id, &sealed, &mut view),
            }
        }
        if !gone.is_empty() {
            // Best effort: the next listing retries.
            let _: Result<(), _> = redis::cmd("SREM")
                .arg(NODES_KEY)
                .arg(&gone)
                .exec_async(&mut conn)
                .await;
        }
        view.live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(view)
    }

    fn classify(&self, id: String, sealed: &str, view: &mut NodesView) {
        let json = match self.auth.open(sealed) {
            Ok(json) => json,
            Err(e) => return view.rejected.push((id, e)),
        };
        let Ok(head) = serde_json::from_str::<Head>(json) else {
            return view.rejected.push((id, AuthError::Malformed));
        };
        if head.node_id != id {
            return view.rejected.push((id, AuthError::Malformed));
        }
        if !CLUSTER_PROTOCOL_VERSION.compatible(head.protocol) {
            return view.incompatible.push((head.node_id, head.protocol));
        }
        match serde_json::from_str::<NodeInfo>(json) {
            Ok(info) => view.live.push(info),
            Err(_) => view.rejected.push((id, AuthError::Malformed)),
        }
    }
}

/// Whether node `me` (at `my_url`) may join the cluster seen in `view`. Errors:
/// [`ClusterError::Incompatible`] (a live node speaks another major version),
/// [`ClusterError::SecretMismatch`] (live nodes exist but none verifies with this node's
/// secret), [`ClusterError::NodeIdInUse`] (a live node at another URL has this id).
pub fn check_joinable(view: &NodesView, me: &NodeId, my_url: &str) -> Result<(), ClusterError> {
    if let Some((node, theirs)) = view.incompatible.first() {
        return Err(ClusterError::Incompatible {
            node: node.clone(),
            theirs: *theirs,
            ours: CLUSTER_PROTOCOL_VERSION,
        });
    }
    let others = view
        .live
        .iter()
        .filter(|n| n.node_id != me.as_str())
        .count();
    let foreign: Vec<String> = view
        .rejected
        .iter()
        .filter(|(_, e)| *e == AuthError::BadSignature)
        .map(|(id, _)| id.clone())
        .collect();
    if others == 0 && !foreign.is_empty() {
        return Err(ClusterError::SecretMismatch { nodes: foreign });
    }
    if let Some(twin) = view
        .live
        .iter()
        .find(|n| n.node_id == me.as_str() && n.internal_url != my_url)
    {
        return Err(ClusterError::NodeIdInUse {
            node: me.to_string(),
            url: twin.internal_url.clone(),
        });
    }
    Ok(())
}

/// Reads this node's load for its heartbeat.
pub type LoadFn = Arc<dyn Fn() -> BoxFuture<'static, Load> + Send + Sync>;

/// A load reader that reports nothing (tests, tools).
pub fn no_load() -> LoadFn {
    Arc::new(|| Box::pin(async { Load::default() }))
}

/// What the heartbeat task needs.
pub struct Heartbeat {
    pub registry: Registry,
    /// The registration's fixed fields (id, URL, version, start time).
    pub template: NodeInfo,
    pub readiness: Readiness,
    pub load: LoadFn,
    pub metrics: ClusterMetrics,
}

impl Heartbeat {
    /// This node's registration now.
    pub async fn current(&self) -> NodeInfo {
        let mut info = self.template.clone();
        info.load = (self.load)().await;
        info.ready = self.readiness.is_ready();
        info.draining = self.readiness.is_draining();
        info.sent_at_ms = unix_ms();
        info
    }

    /// Announces this node every [`HEARTBEAT`] and at once when its readiness changes
    /// (serving, draining), and updates `venue_cluster_nodes`, forever (abort the task to
    /// stop). Redis errors are logged when they start and when they end; refused
    /// registrations of other nodes once per node.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut phase = Some(self.readiness.subscribe());
        let mut failing = false;
        let mut reported: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = async {
                    match &mut phase {
                        Some(rx) => rx.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if !changed {
                        phase = None;
                    }
                }
            }
            let info = self.current().await;
            let result = match self.registry.announce(&info).await {
                Ok(()) => self.registry.nodes().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(view) => {
                    if failing {
                        tracing::info!("cluster registry reachable again");
                        failing = false;
                    }
                    self.metrics
                        .nodes
                        .set(i64::try_from(view.live.len()).unwrap_or(i64::MAX));
                    for (id, why) in &view.rejected {
                        if reported.insert(format!("rejected {id}")) {
                            tracing::warn!(node = %id, reason = %why, "ignoring a node's registration");
                        }
                    }
                    for (id, version) in &view.incompatible {
                        if reported.insert(format!("incompatible {id}")) {
                            tracing::warn!(
                                node = %id,
                                theirs = %version,
                                ours = %CLUSTER_PROTOCOL_VERSION,
                                "ignoring a node of an incompatible cluster protocol version"
                            );
                        }
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot reach the cluster registry (Redis); retrying every 2 s");
                        failing = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, url: &str) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            internal_url: url.into(),
            protocol: CLUSTER_PROTOCOL_VERSION,
            started_at_ms: 1,
            sent_at_ms: 2,
            ready: true,
            draining: false,
            public_url: None,
            max_viewers: 0,
            load: Load::default(),
        }
    }

    #[test]
    fn joining_needs_a_compatible_version_the_same_secret_and_a_free_id() {
        let me = NodeId::parse("a").unwrap();
        assert!(check_joinable(&NodesView::default(), &me, "http://a").is_ok());
        let view = NodesView {
            incompatible: vec![("b".into(), ProtocolVersion { major: 2, minor: 0 })],
            ..Default::default()
        };
        let e = check_joinable(&view, &me, "http://a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2.0")
                && e.contains(&CLUSTER_PROTOCOL_VERSION.to_string())
                && e.contains('b'),
            "{e}"
        );
        let view = NodesView {
            rejected: vec![("b".into(), AuthError::BadSignature)],
            ..Default::default()
        };
        let e = check_joinable(&view, &me, "http://a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("VENUE_CLUSTER_SECRET"), "{e}");
        // Some nodes verify: the stranger is ignored (and logged), not fatal.
        let view = NodesView {
            live: vec![info("c", "http://c")],
            rejected: vec![("b".into(), AuthError::BadSignature)],
            ..Default::default()
        };
        assert!(check_joinable(&view, &me, "http://a").is_ok());
        // Our own earlier registration (restart within the TTL) is fine; a twin elsewhere not.
        let view = NodesView {
            live: vec![info("a", "http://a")],
            ..Default::default()
        };
        assert!(check_joinable(&view, &me, "http://a").is_ok());
        let e = check_joinable(&view, &me, "http://elsewhere")
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_id"), "{e}");
    }

    #[test]
    fn minor_versions_coexist_and_unknown_fields_are_ignored() {
        let v = |major, minor| ProtocolVersion { major, minor };
        assert!(v(1, 0).compatible(v(1, 7)));
        assert!(!v(1, 0).compatible(v(2, 0)));
        let mut json = serde_json::to_value(info("a", "http://a")).unwrap();
        json["protocol"]["minor"] = 3.into();
        json["future_field"] = "x".into();
        let parsed: NodeInfo = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.protocol, v(1, 3));
    }
}
