//! The cluster's event bus: [`RedisBus`] implements [`Bus`] over Redis pub/sub on
//! [`CHANNEL`].
//!
//! - What crosses nodes: [`Announcement::RoomChanged`] (receivers re-read the room from the
//!   database). Webhook events and closed sessions stay on the node where they happened
//!   (a webhook is delivered once, by that node; session ids name this node's media plane), as
//!   with [`LocalBus`], which the Redis bus wraps.
//! - A message is JSON ([`Envelope`]: sender's node id, send time in µs since the epoch, the
//!   [`WireMessage`]), sealed with the cluster's node key ([`NodeAuth::seal`]); messages that
//!   do not verify (another cluster secret) or parse are dropped and counted
//!   (`venue_cluster_bus_rejected_total`), unknown kinds of a newer minor version ignored.
//! - The sender applies its own message locally at once, and ignores its echo from Redis: no
//!   message is applied twice on a node.
//! - [`Bus::publish`] never blocks: messages go into a bounded queue ([`QUEUE`]) drained by a
//!   publishing task; a full queue or a failed `PUBLISH` drops the message, counted in
//!   `venue_cluster_bus_dropped_total`.
//! - Pub/sub loses what is published while a subscriber is disconnected: the subscriber
//!   connection (RESP3, a `ConnectionManager` that reconnects and re-subscribes by itself,
//!   kept awake by a PING every [`KEEPALIVE`]) emits [`RoomChange::Resync`] once it is
//!   subscribed again, and so does a local receive queue that overflowed.
//! - Latency (publish on one node → receive on another, the two clocks) is observed into
//!   `venue_cluster_bus_lag_seconds`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;
use venue_sfu::SessionId;

use super::auth::NodeAuth;
use super::unix_us;
use crate::bus::{Announcement, Bus, LocalBus, RoomChange};
use crate::config::Secret;
use crate::config::cluster::NodeId;
use crate::ids::RoomId;
use crate::metrics::ClusterMetrics;

/// The Redis pub/sub channel of the bus.
pub const CHANNEL: &str = "venue:bus";
/// Outgoing messages queued before new ones are dropped.
pub const QUEUE: usize = 1024;
/// Incoming pushes queued before they are dropped (then: a resync).
pub const RECEIVE_QUEUE: usize = 4096;
/// How often the subscriber connection is pinged (a dead connection is noticed, and a
/// reconnect that gave up is retried, within this).
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// What crosses nodes. Tagged JSON: `{"kind":"room_changed","room":3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireMessage {
    /// [`Announcement::RoomChanged`].
    RoomChanged { room: RoomId },
}

/// One bus message as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's node id.
    pub node: String,
    /// When it was published, µs since the epoch (the sender's clock).
    pub sent_us: u64,
    /// The message; kept as JSON until read so that an unknown kind (a newer minor version)
    /// is skipped, not rejected.
    pub msg: serde_json::Value,
}

/// The Redis bus of one node.
pub struct RedisBus {
    node: NodeId,
    auth: NodeAuth,
    local: LocalBus,
    out: mpsc::Sender<String>,
    metrics: ClusterMetrics,
    tasks: Vec<AbortHandle>,
    /// The node's command connection (claims).
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RedisBus {
    /// Subscribes to [`CHANNEL`] on a connection of its own to `url` and starts the
    /// publishing, receiving and keep-alive tasks. `publish` is the node's command connection,
    /// `local` the in-process bus this one wraps. Errors: Redis unreachable at start.
    pub async fn start(
        url: &Secret,
        publish: ConnectionManager,
        auth: NodeAuth,
        local: LocalBus,
        metrics: ClusterMetrics,
    ) -> Result<Arc<RedisBus>, redis::RedisError> {
        let (push_tx, push_rx) = mpsc::channel::<PushInfo>(RECEIVE_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        let sender = move |info: PushInfo| {
            push_tx.try_send(info).map_err(|_| {
                flag.store(true, Ordering::Release);
            })
        };
        let mut sub = super::connect(url, Some(Box::new(sender))).await?;
        sub.subscribe(CHANNEL).await?;
        let (out, out_rx) = mpsc::channel(QUEUE);
        let receiver = Receiver {
            node: auth.node().clone(),
            auth: auth.clone(),
            local: local.clone(),
            metrics: metrics.clone(),
            overflowed,
        };
        let tasks = vec![
            tokio::spawn(receiver.run(push_rx)).abort_handle(),
            tokio::spawn(publisher(publish.clone(), out_rx, metrics.clone())).abort_handle(),
            tokio::spawn(keepalive(sub)).abort_handle(),
        ];
        Ok(Arc::new(RedisBus {
            node: auth.node().clone(),
            auth,
            local,
            out,
            metrics,
            tasks,
            conn: publish,
        }))
    }

    /// Stops the bus's tasks (this node leaves or dies; tests).
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    fn send(&self, msg: &WireMessage) {
        let envelope = serde_json::json!({
            "node": self.node.as_str(),
            "sent_us": unix_us(),
            "msg": msg,
        });
        let sealed = self.auth.seal(&envelope.to_string());
        if self.out.try_send(sealed).is_err() {
            self.metrics.bus_dropped.inc();
        }
    }
}

impl Bus for RedisBus {
    fn publish(&self, announcement: Announcement) {
        match announcement {
            Announcement::RoomChanged { room } => {
                self.local.room_changed(RoomChange::Room(room));
                self.send(&WireMessage::RoomChanged { room });
            }
            other => self.local.publish(other),
        }
    }

    fn wants_webhooks(&self) -> bool {
        self.local.wants_webhooks()
    }

    fn closed_sessions(&self) -> broadcast::Receiver<SessionId> {
        self.local.closed_sessions()
    }

    fn room_changes(&self) -> broadcast::Receiver<RoomChange> {
        self.local.room_changes()
    }

    /// `SET venue:once:{key} <node> NX PX 1 day`: the first node wins. When Redis cannot be
    /// reached the claim is granted (a duplicate announcement beats a lost one).
    fn claim_once(&self, key: String) -> BoxFuture<'static, bool> {
        let mut conn = self.conn.clone();
        let node = self.node.to_string();
        Box::pin(async move {
            let set: Result<Option<String>, redis::RedisError> = redis::cmd("SET")
                .arg(format!("venue:once:{key}"))
                .arg(node)
                .arg("NX")
                .arg("PX")
                .arg(CLAIM_TTL_MS)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(won) => won.is_some(),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "claim not checked (Redis): announcing anyway");
                    true
                }
            }
        })
    }
}

/// How long a [`Bus::claim_once`] key is kept in Redis, ms (one day: longer than any edit of a
/// past booking could make its edge come again).
const CLAIM_TTL_MS: u64 = 24 * 3600 * 1000;

/// Publishes what [`RedisBus::send`] queued, in order.
async fn publisher(
    mut conn: ConnectionManager,
    mut rx: mpsc::Receiver<String>,
    metrics: ClusterMetrics,
) {
    let mut failing = false;
    while let Some(sealed) = rx.recv().await {
        let result: Result<(), _> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(sealed)
            .exec_async(&mut conn)
            .await;
        match result {
            Ok(()) if failing => {
                tracing::info!("cluster bus publishing again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                metrics.bus_dropped.inc();
                if !failing {
                    tracing::warn!(error = %e, "cluster bus: PUBLISH failed, messages dropped until Redis is back");
                    failing = true;
                }
            }
        }
    }
}

/// Pings the subscriber connection so that its manager notices a dead socket and keeps
/// reconnecting (a reconnect that ran out of retries is started again by the next command).
async fn keepalive(mut sub: ConnectionManager) {
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _: Result<(), _> = redis::cmd("PING").exec_async(&mut sub).await;
    }
}

struct Receiver {
    node: NodeId,
    auth: NodeAuth,
    local: LocalBus,
    metrics: ClusterMetrics,
    /// Set when the push queue was full: something was lost.
    overflowed: Arc<AtomicBool>,
}

impl Receiver {
    async fn run(self, mut rx: mpsc::Receiver<PushInfo>) {
        let mut disconnected = false;
        let mut warned: std::collections::HashSet<String> = Default::default();
        while let Some(push) = rx.recv().await {
            if self.overflowed.swap(false, Ordering::AcqRel) {
                tracing::warn!("cluster bus: receive queue overflowed; resync");
                self.local.room_changed(RoomChange::Resync);
            }
            match push.kind {
                PushKind::Disconnection => {
                    if !disconnected {
                        tracing::warn!("cluster bus: Redis connection lost; reconnecting");
                    }
                    disconnected = true;
                }
                PushKind::Subscribe if disconnected => {
                    disconnected = false;
                    tracing::info!("cluster bus: subscribed again after a Redis reconnect; resync");
                    self.local.room_changed(RoomChange::Resync);
                }
                PushKind::Message => {
                    let payload = match push.data.get(1) {
                        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
                        _ => None,
                    };
                    match payload {
                        Some(sealed) => self.message(sealed, &mut warned),
                        None => self.metrics.bus_rejected.inc(),
                    }
                }
                _ => {}
            }
        }
    }

    fn message(&self, sealed: &str, warned: &mut std::collections::HashSet<String>) {
        let envelope = match self
            .auth
            .open(sealed)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_str::<Envelope>(json).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(why) => {
                self.metrics.bus_rejected.inc();
                if warned.insert(why.clone()) {
                    tracing::warn!(reason = %why, "cluster bus: message dropped");
                }
                return;
            }
        };
        if envelope.node == self.node.as_str() {
            return;
        }
        let lag_us = unix_us().saturating_sub(envelope.sent_us);
        self.metrics.bus_lag.observe(lag_us as f64 / 1e6);
        match serde_json::from_value::<WireMessage>(envelope.msg) {
            Ok(WireMessage::RoomChanged { room }) => {
                self.local.room_changed(RoomChange::Room(room));
            }
            Err(e) => {
                tracing::debug!(node = %envelope.node, error = %e, "cluster bus: unknown message kind skipped");
            }
        }
    }
}
