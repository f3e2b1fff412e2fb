//! Cluster mode: many `venue` processes on Redis (coordination, events) and PostgreSQL (what
//! must last), DESIGN.md §7 and issue 11. Unset `[cluster] redis_url` (the default) is
//! single-node mode: nothing here runs except [`readiness`] (`GET /readyz`), and the node
//! behaves as it always did.
//!
//! One file per concern:
//! - [`config`]: `[cluster]` (`redis_url`, `node_id`, `internal_url`, `secret`,
//!   `drain_timeout_s`) and [`config::check_cluster_database`] (cluster mode needs PostgreSQL);
//! - [`secrets`]: the cluster's secrets (identical on every node; derived ones by HKDF);
//! - [`auth`]: node-to-node authentication (internal calls, sealed registrations and bus
//!   messages);
//! - [`registry`]: the node registry (heartbeat with load, live nodes, protocol versions);
//! - [`bus`]: [`bus::RedisBus`], the [`crate::bus::Bus`] over Redis pub/sub;
//! - [`tracks`]: who owns a live streamer's tracks, relay requests to the origin;
//! - [`hubs`]: the living room across nodes (hub-owner lease, edge ⇄ owner pub/sub);
//! - [`lease`]: one owner per name (hub owner, program node, timers) with fencing tokens;
//!   [`leader`] keeps competing for one and says whether this node leads the job;
//! - [`placement`]: which node a new WebRTC viewer watches on;
//! - [`proxy`]: node-to-node HTTP forwarding (HLS programs, recording files);
//! - [`readiness`] and [`drain`]: `/readyz`, and leaving the cluster on SIGTERM.
//!
//! [`Cluster::start`] joins: it connects to Redis, refuses a cluster it cannot join (another
//! major protocol version, another secret, its node id used elsewhere:
//! [`registry::check_joinable`]), announces the node, and starts the heartbeat and the bus.
//!
//! The database check runs in [`crate::config::Config::validate`] (the `venue` binary's
//! path). [`crate::build_app`] does not re-validate its `Config`, which is how the cluster
//! tests (`gateway/tests/cluster_*.rs`) run nodes on SQLite until the PostgreSQL store lands.

pub mod auth;
pub mod bus;
pub mod drain;
pub mod hubs;
pub mod leader;
pub mod lease;
pub mod placement;
pub mod proxy;
pub mod readiness;
pub mod registry;
pub mod secrets;
pub mod tracks;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::AbortHandle;

use self::auth::NodeAuth;
use self::bus::RedisBus;
use self::readiness::Readiness;
use self::registry::{
    CLUSTER_PROTOCOL_VERSION, Heartbeat, Load, LoadFn, NodeInfo, NodesView, ProtocolVersion,
    Registry,
};
use self::secrets::ClusterSecrets;
use self::tracks::Tracks;
use crate::bus::{Bus, LocalBus};
use crate::config::Secret;
use crate::config::cluster::ClusterSettings;
use crate::metrics::ClusterMetrics;

/// Why a node cannot join its cluster. Messages are for the operator; none holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("cluster Redis (cluster.redis_url): {0}")]
    Redis(#[from] redis::RedisError),
    #[error(
        "node {node} of this cluster speaks cluster protocol {theirs}, this node {ours}: \
         major versions differ, so they cannot work together. Upgrade or downgrade this node \
         to a version speaking {}.x (rolling upgrades work within one major version)",
        theirs.major
    )]
    Incompatible {
        node: String,
        theirs: ProtocolVersion,
        ours: ProtocolVersion,
    },
    #[error(
        "the live nodes of this cluster ({}) are signed with another cluster secret: set \
         cluster.secret (VENUE_CLUSTER_SECRET) to the cluster's",
        nodes.join(", ")
    )]
    SecretMismatch { nodes: Vec<String> },
    #[error(
        "cluster.node_id {node} is used by a live node at {url}: give each node its own id \
         (or leave node_id unset to use the one generated in the data dir)"
    )]
    NodeIdInUse { node: String, url: String },
}

/// Milliseconds since the epoch (0 before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds since the epoch (0 before 1970).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The reconnect policy of every Redis connection: RESP3, retries from 100 ms doubling to 1 s,
/// 2 s connect and response timeouts (a command never hangs on a dead Redis).
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
        .set_number_of_retries(6)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

/// A self-reconnecting RESP3 connection to `url` with `config` ([`manager_config`], maybe
/// with a push sender). Errors: a bad URL, Redis unreachable now.
pub async fn connect_with(
    url: &Secret,
    config: ConnectionManagerConfig,
) -> Result<ConnectionManager, redis::RedisError> {
    let info = url.expose().into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    client.get_connection_manager_with_config(config).await
}

/// Where a connection delivers its pushes (pub/sub messages, disconnections); must not block.
/// `Err(())`: the push was dropped.
pub type PushFn = Box<dyn Fn(redis::PushInfo) -> Result<(), ()> + Send + Sync>;

/// [`connect_with`] the default policy, delivering pushes (pub/sub) to `push` and
/// re-subscribing after reconnects when there is one.
pub async fn connect(
    url: &Secret,
    push: Option<PushFn>,
) -> Result<ConnectionManager, redis::RedisError> {
    let mut config = manager_config();
    if let Some(push) = push {
        config = config.set_push_sender(push).set_automatic_resubscription();
    }
    connect_with(url, config).await
}

/// What [`Cluster::start`] needs from the node.
pub struct ClusterDeps {
    /// The in-process bus the Redis bus wraps (webhooks, closed sessions, room changes).
    pub local: LocalBus,
    pub metrics: ClusterMetrics,
    pub readiness: Readiness,
    /// Reads the node's load for each heartbeat.
    pub load: LoadFn,
}

/// This node's membership in its cluster; shared as `Arc<Cluster>`.
pub struct Cluster {
    settings: ClusterSettings,
    secrets: ClusterSecrets,
    auth: NodeAuth,
    conn: ConnectionManager,
    registry: Registry,
    bus: Arc<RedisBus>,
    hubs: Arc<hubs::HubLink>,
    beat: Arc<Heartbeat>,
    heartbeat: AbortHandle,
    tracks: Tracks,
    /// Other cluster tasks (leadership contests), aborted when the cluster stops.
    tasks: std::sync::Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.settings.node_id)
            .field("internal_url", &self.settings.internal_url)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster on `settings.redis_url`: connects, checks that the cluster can be
    /// joined ([`registry::check_joinable`]), announces this node, starts the heartbeat and
    /// the bus. Errors: [`ClusterError`].
    pub async fn start(
        settings: ClusterSettings,
        deps: ClusterDeps,
    ) -> Result<Cluster, ClusterError> {
        let secrets = ClusterSecrets::derive(&settings.secret);
        let auth = NodeAuth::new(secrets.node_auth, settings.node_id.clone());
        let conn = connect(&settings.redis_url, None).await?;
        let registry = Registry::new(conn.clone(), auth.clone());
        let view = registry.nodes().await?;
        registry::check_joinable(&view, &settings.node_id, &settings.internal_url)?;
        let bus = RedisBus::start(
            &settings.redis_url,
            conn.clone(),
            auth.clone(),
            deps.local,
            deps.metrics.clone(),
        )
        .await?;
        let (hub_link, hub_tasks) = hubs::HubLink::start(
            &settings.redis_url,
            conn.clone(),
            auth.clone(),
            deps.metrics.clone(),
        )
        .await?;
        let beat = Arc::new(Heartbeat {
            registry: registry.clone(),
            template: NodeInfo {
                node_id: settings.node_id.to_string(),
                internal_url: settings.internal_url.clone(),
                protocol: CLUSTER_PROTOCOL_VERSION,
                started_at_ms: unix_ms(),
                sent_at_ms: 0,
                ready: false,
                draining: false,
                public_url: Some(settings.public_url.clone()),
                max_viewers: settings.max_viewers,
                load: Load::default(),
            },
            readiness: deps.readiness,
            load: deps.load,
            metrics: deps.metrics,
        });
        // The first announcement before start returns: the others see this node at once.
        registry.announce(&beat.current().await).await?;
        let heartbeat = tokio::spawn(beat.clone().run()).abort_handle();
        tracing::info!(
            node = %settings.node_id,
            internal_url = %settings.internal_url,
            protocol = %CLUSTER_PROTOCOL_VERSION,
            live_nodes = view.live.len(),
            "joined the cluster"
        );
        let tracks = Tracks::new(conn.clone(), auth.clone(), registry.clone());
        Ok(Cluster {
            settings,
            secrets,
            auth,
            conn,
            tracks,
            registry,
            bus,
            hubs: hub_link,
            beat,
            heartbeat,
            tasks: std::sync::Mutex::new(hub_tasks),
        })
    }

    /// This node's registration as its next heartbeat would write it.
    pub async fn current(&self) -> NodeInfo {
        self.beat.current().await
    }

    /// This node's settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The keys derived from the cluster secret.
    pub fn secrets(&self) -> &ClusterSecrets {
        &self.secrets
    }

    /// Node-to-node authentication of this node.
    pub fn auth(&self) -> &NodeAuth {
        &self.auth
    }

    /// The node's command connection (leases, registry).
    pub fn redis(&self) -> &ConnectionManager {
        &self.conn
    }

    /// Track ownership and relay requests ([`tracks`]).
    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Redis bus.
    pub fn redis_bus(&self) -> &Arc<RedisBus> {
        &self.bus
    }

    /// The Redis bus behind the [`Bus`] trait.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// The hub transport (the living room across nodes).
    pub fn hubs(&self) -> &Arc<hubs::HubLink> {
        &self.hubs
    }

    /// Competes for the hub-owner lease of room `room` ([`hubs::HubLink::lease`]); the task
    /// ends when the cluster stops (then the receiver says `None`).
    pub fn hub_lease(&self, room: i64) -> tokio::sync::watch::Receiver<Option<hubs::OwnerTerm>> {
        let (rx, task) = self.hubs.lease(room);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
        rx
    }

    /// The live nodes now. Errors: Redis.
    pub async fn nodes(&self) -> Result<NodesView, redis::RedisError> {
        self.registry.nodes().await
    }

    /// Whether this node leads job `name` from now on (see [`leader::Leadership`]); the
    /// competing task ends when the cluster stops.
    pub fn leadership(&self, name: &str) -> leader::Leadership {
        let (leadership, task) = leader::Leadership::spawn(
            self.conn.clone(),
            name,
            self.settings.node_id.clone(),
            leader::LEADER_TTL,
        );
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task.abort_handle());
        }
        leadership
    }

    /// Leaves cleanly (end of a drain): stops the heartbeat and the bus and removes the
    /// registration, so the others see this node gone at once.
    pub async fn leave(&self) {
        self.heartbeat.abort();
        self.bus.stop();
        if let Ok(tasks) = self.tasks.lock() {
            tasks.iter().for_each(AbortHandle::abort);
        }
        if let Err(e) = self.registry.withdraw().await {
            tracing::warn!(error = %e, "could not remove this node's registration (it expires by itself)");
        }
    }

    /// Stops every cluster task without a goodbye, as a crash would (tests of failure
    /// detection): the registration expires after its TTL.
    pub fn halt(&self) {
        self.heartbeat.abort();
        self.bus.stop();
        if let Ok(tasks) = self.tasks.lock() {
            tasks.iter().for_each(AbortHandle::abort);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.halt();
    }
}
