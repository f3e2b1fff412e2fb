//! The living room across nodes (issue 11 item 6): the node-to-node transport of the room
//! hubs and the hub-owner lease. The room logic is in [`crate::hub::remote`].
//!
//! **One owner per room**, held through the lease `hub:{room id}` ([`HubLink::lease`]: TTL
//! [`LEADER_TTL`], tried every TTL/3, so another node owns the room at most TTL + TTL/3 ≈ 8 s
//! after the owner died). The owner runs the real [`crate::hub::RoomHub`]; every node (the
//! owner included) is an *edge* for its own clients.
//!
//! **Transport: Redis pub/sub, two channels per room**, `venue:hub:{room}:in` (edges → owner:
//! joins, client frames, leaves, admin requests) and `venue:hub:{room}:out` (owner → edges:
//! the per-tick frames, encoded once on the owner and published once, single sends, closes,
//! replies, a heartbeat). Why not node-to-node HTTP/WebSockets under `/internal`:
//! - *latency*: one Redis hop each way (a PUBLISH is fanned out by Redis to every
//!   subscribed node), about the same as a direct socket on a LAN, with no connection mesh
//!   to keep between N nodes and nothing to re-dial when the owner moves;
//! - *ordering*: each node publishes from one task on one connection, awaiting each
//!   PUBLISH, and Redis delivers a connection's messages to a subscriber in publish order:
//!   a client's inputs reach the owner in order and the owner's frames reach every edge in
//!   tick order;
//! - *loss*: pub/sub is at-most-once; messages are lost while a node is disconnected from
//!   Redis. After a resubscription the edges re-announce their clients (idempotent joins),
//!   and the owner's heartbeat every [`HEARTBEAT`] carries its fencing token, so an edge that
//!   missed a takeover notices it within a second and re-announces too.
//!
//! Every message is an [`Envelope`] sealed with the cluster secret ([`NodeAuth::seal`]):
//! JSON, frames in base64. It carries the sender's node id and, from an owner, its tenure
//! ([`OwnerTerm`]: the lease's fencing token and holder token): edges follow a new tenure
//! with a higher fencing token at once (and re-announce their clients to it), drop an older
//! owner's frames, and follow any other tenure once their owner has been silent for a few
//! seconds (Redis restarted empty, the fencing counter started again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::auth::NodeAuth;
use super::leader::LEADER_TTL;
use super::lease::Lease;
use crate::config::Secret;
use crate::config::cluster::NodeId;
use crate::hub::settings::RoomSettings;
use crate::hub::{Class, Moderation, ModerationError, Transport, UserInfo};
use crate::metrics::ClusterMetrics;

/// How often an owner announces itself on its room's `:out` channel, and an edge with
/// clients tells the owner it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An edge not heard from for this long is gone: the owner drops its clients.
pub const EDGE_TIMEOUT: Duration = Duration::from_secs(6);
/// Messages queued for publishing before new ones are dropped.
const OUT_QUEUE: usize = 16_384;
/// Messages queued for one room's actor before new ones are dropped.
const ROOM_QUEUE: usize = 8192;

/// The `:in` channel of room `room` (edges → owner).
pub fn channel_in(room: i64) -> String {
    format!("venue:hub:{room}:in")
}

/// The `:out` channel of room `room` (owner → edges).
pub fn channel_out(room: i64) -> String {
    format!("venue:hub:{room}:out")
}

/// Bytes as base64 in JSON.
mod b64 {
    use super::{B64, Bytes, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = <&str>::deserialize(d)?;
        B64.decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// An admin request an edge forwards to the owner (the admin API or console on any node).
/// Counters ([`crate::hub::HubStats`]) are not forwarded: each node reports its own clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Request {
    Settings,
    PutSettings { settings: RoomSettings },
    Moderate { action: Moderation },
    Users,
}

/// The owner's answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Reply {
    Settings {
        settings: RoomSettings,
    },
    PutSettings {
        result: Result<RoomSettings, String>,
    },
    Moderate {
        result: Result<(), ModerationError>,
    },
    Users {
        users: Vec<UserInfo>,
    },
}

/// One hub message. Connection numbers (`conn`) are the edge's own: a client is identified
/// cluster-wide by (edge node id, `conn`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum HubWire {
    // Edge → owner (`:in`).
    /// A client's first frame (its hello), with what the owner needs to admit it. Sent again
    /// to every new owner; an owner ignores a join it already has.
    Join {
        conn: u64,
        transport: Transport,
        /// [`crate::hub::IpHash`] in hex.
        ip: Option<String>,
        #[serde(with = "b64")]
        first: Bytes,
    },
    /// A later client frame.
    Frame {
        conn: u64,
        #[serde(with = "b64")]
        data: Bytes,
    },
    /// A frame the transport refused (counted as an offence).
    Bad { conn: u64, reason: String },
    /// The client left.
    Gone { conn: u64 },
    /// The edge is alive (it has announced clients).
    Alive,
    /// An admin request; answered by [`HubWire::Reply`] to this node.
    Request { id: u64, request: Request },
    // Owner → edges (`:out`).
    /// The owner's heartbeat.
    Owner,
    /// A frame for every client of the room, on every node.
    Broadcast {
        class: Class,
        #[serde(with = "b64")]
        frame: Bytes,
    },
    /// A frame for one client of node `to`.
    Send {
        to: String,
        conn: u64,
        class: Class,
        #[serde(with = "b64")]
        frame: Bytes,
    },
    /// Send `notice` to a client of node `to`, then close it.
    Close {
        to: String,
        conn: u64,
        #[serde(with = "b64")]
        notice: Bytes,
    },
    /// The answer to node `to`'s request `id`.
    Reply { to: String, id: u64, reply: Reply },
}

/// One owner's tenure of a room: its lease's fencing token and the lease holder's token
/// (unique per acquisition, so two tenures differ even when Redis lost its data and the
/// fencing counter started again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerTerm {
    pub fence: u64,
    pub token: String,
}

/// A hub message as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's node id.
    pub node: String,
    /// The sender's tenure as the room's owner; `None` from an edge.
    pub term: Option<OwnerTerm>,
    /// µs since the epoch (the sender's clock).
    pub sent_us: u64,
    pub msg: HubWire,
}

/// What a room's actor receives.
#[derive(Debug)]
pub enum Incoming {
    Message(Box<Envelope>),
    /// The node's subscription was re-established after a Redis disconnect: messages may
    /// have been lost; edges re-announce their clients.
    Resync,
}

type Routes = Arc<Mutex<HashMap<String, mpsc::Sender<Incoming>>>>;

/// The node's hub transport: one subscriber connection for every room's channels, one
/// publishing task. Cheap to share (`Arc`).
pub struct HubLink {
    node: NodeId,
    auth: NodeAuth,
    conn: ConnectionManager,
    sub: ConnectionManager,
    out: mpsc::Sender<(String, String)>,
    routes: Routes,
    metrics: ClusterMetrics,
}

impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl HubLink {
    /// Opens the subscriber connection to `url` and starts the receiving, publishing and
    /// keep-alive tasks (returned, for the cluster to abort). `conn` is the node's command
    /// connection. Errors: Redis unreachable now.
    pub async fn start(
        url: &Secret,
        conn: ConnectionManager,
        auth: NodeAuth,
        metrics: ClusterMetrics,
    ) -> Result<(Arc<HubLink>, Vec<AbortHandle>), redis::RedisError> {
        let (push_tx, push_rx) = mpsc::channel::<PushInfo>(ROOM_QUEUE);
        let sender = move |info: PushInfo| push_tx.try_send(info).map_err(|_| ());
        let sub = super::connect(url, Some(Box::new(sender))).await?;
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let routes: Routes = Arc::default();
        let link = Arc::new(HubLink {
            node: auth.node().clone(),
            auth: auth.clone(),
            conn: conn.clone(),
            sub: sub.clone(),
            out,
            routes: routes.clone(),
            metrics: metrics.clone(),
        });
        let tasks = vec![
            tokio::spawn(receive(auth, routes, push_rx, metrics.clone())).abort_handle(),
            tokio::spawn(publish(conn, out_rx, metrics)).abort_handle(),
            tokio::spawn(keepalive(sub)).abort_handle(),
        ];
        Ok((link, tasks))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        self.node.as_str()
    }

    /// Subscribes to `channel` and routes its messages to `to`. Errors: Redis.
    pub async fn subscribe(
        &self,
        channel: String,
        to: mpsc::Sender<Incoming>,
    ) -> Result<(), redis::RedisError> {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(channel.clone(), to);
        }
        let mut sub = self.sub.clone();
        sub.subscribe(channel).await
    }

    /// Stops listening to `channel`. Errors: Redis.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), redis::RedisError> {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(channel);
        }
        let mut sub = self.sub.clone();
        sub.unsubscribe(channel).await
    }

    /// Publishes `msg` on `channel` as this node, as the owner in `term` (`None` from an
    /// edge). Never waits: dropped (and logged) when the publishing queue is full.
    pub fn send(&self, channel: String, term: Option<&OwnerTerm>, msg: HubWire) {
        let envelope = Envelope {
            node: self.node.to_string(),
            term: term.cloned(),
            sent_us: super::unix_us(),
            msg,
        };
        let Ok(json) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.out.try_send((channel, self.auth.seal(&json))).is_err() {
            self.metrics.hub_dropped.inc();
            tracing::warn!("hub link: publishing queue full, message dropped");
        }
    }

    /// Counts a room this node starts (`true`) or stops (`false`) owning.
    pub fn owns(&self, owning: bool) {
        if owning {
            self.metrics.hubs_owned.inc();
        } else {
            self.metrics.hubs_owned.dec();
        }
    }

    /// Competes for the owner lease of room `room` until the returned task is aborted: the
    /// receiver holds the tenure while this node owns the room, `None` otherwise (and when
    /// the task ended).
    pub fn lease(&self, room: i64) -> (watch::Receiver<Option<OwnerTerm>>, AbortHandle) {
        let (tx, rx) = watch::channel(None);
        let conn = self.conn.clone();
        let node = self.node.clone();
        let name = format!("hub:{room}");
        let task = tokio::spawn(async move {
            let retry = LEADER_TTL / 3;
            loop {
                match Lease::acquire(&conn, &name, &node, LEADER_TTL).await {
                    Ok(Some(lease)) => {
                        tracing::info!(lease = %name, fence = lease.fence(), "this node owns the room's hub");
                        let _ = tx.send(Some(OwnerTerm {
                            fence: lease.fence(),
                            token: lease.token().to_owned(),
                        }));
                        let (mut held, renewing) = lease.keep();
                        // Renewal stops with this task, also when this task is aborted.
                        let renewing = AbortOnDrop(renewing.abort_handle());
                        while *held.borrow() {
                            if held.changed().await.is_err() {
                                break;
                            }
                        }
                        drop(renewing);
                        let _ = tx.send(None);
                        tracing::info!(lease = %name, "this node no longer owns the room's hub");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(lease = %name, error = %e, "hub lease not acquired"),
                }
                tokio::time::sleep(retry).await;
            }
        });
        (rx, task.abort_handle())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes what [`HubLink::send`] queued, in order, on one connection.
async fn publish(
    mut conn: ConnectionManager,
    mut rx: mpsc::Receiver<(String, String)>,
    metrics: ClusterMetrics,
) {
    let mut failing = false;
    while let Some((channel, sealed)) = rx.recv().await {
        let result: Result<(), _> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(sealed)
            .exec_async(&mut conn)
            .await;
        match result {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                metrics.hub_dropped.inc();
                tracing::warn!(error = %e, "hub link: PUBLISH failed, messages dropped until Redis is back");
                failing = true;
            }
            Err(_) => metrics.hub_dropped.inc(),
        }
    }
}

/// Pings the subscriber connection so that a dead socket is noticed and re-dialled.
async fn keepalive(mut sub: ConnectionManager) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _: Result<(), _> = redis::cmd("PING").exec_async(&mut sub).await;
    }
}

/// Routes pushes to the rooms' actors by channel; tells every room after a resubscription.
async fn receive(
    auth: NodeAuth,
    routes: Routes,
    mut rx: mpsc::Receiver<PushInfo>,
    metrics: ClusterMetrics,
) {
    let mut disconnected = false;
    while let Some(push) = rx.recv().await {
        match push.kind {
            PushKind::Disconnection => disconnected = true,
            PushKind::Subscribe if disconnected => {
                disconnected = false;
                let targets: Vec<_> = match routes.lock() {
                    Ok(r) => r.values().cloned().collect(),
                    Err(_) => Vec::new(),
                };
                for to in targets {
                    let _ = to.try_send(Incoming::Resync);
                }
            }
            PushKind::Message => {
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (push.data.first(), push.data.get(1))
                else {
                    continue;
                };
                let (Ok(channel), Ok(payload)) =
                    (std::str::from_utf8(channel), std::str::from_utf8(payload))
                else {
                    continue;
                };
                let envelope =
                    match auth
                        .open(payload)
                        .map_err(|e| e.to_string())
                        .and_then(|json| {
                            serde_json::from_str::<Envelope>(json).map_err(|e| e.to_string())
                        }) {
                        Ok(e) => e,
                        Err(why) => {
                            tracing::debug!(%channel, reason = %why, "hub link: message dropped");
                            continue;
                        }
                    };
                if envelope.node == auth.node().as_str() {
                    continue;
                }
                let to = routes.lock().ok().and_then(|r| r.get(channel).cloned());
                if let Some(to) = to
                    && to.try_send(Incoming::Message(Box::new(envelope))).is_err()
                {
                    metrics.hub_dropped.inc();
                    tracing::warn!(%channel, "hub link: room queue full, message dropped");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Moderation;

    fn auth(key: u8, node: &str) -> NodeAuth {
        NodeAuth::new([key; 32], NodeId::parse(node).unwrap())
    }

    fn sealed(auth: &NodeAuth, msg: HubWire) -> String {
        let envelope = Envelope {
            node: auth.node().to_string(),
            term: Some(OwnerTerm {
                fence: 7,
                token: "node-a/1".into(),
            }),
            sent_us: 1,
            msg,
        };
        auth.seal(&serde_json::to_string(&envelope).unwrap())
    }

    fn open(auth: &NodeAuth, sealed: &str) -> Result<Envelope, String> {
        let json = auth.open(sealed).map_err(|e| e.to_string())?;
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn frames_and_requests_cross_as_sealed_json_with_base64_bytes() {
        let a = auth(1, "node-a");
        let frame = Bytes::from_static(&[0, 1, 2, 250, 255]);
        let s = sealed(
            &a,
            HubWire::Broadcast {
                class: Class::Lossy,
                frame: frame.clone(),
            },
        );
        assert!(s.contains("\"t\":\"broadcast\""), "{s}");
        let e = open(&auth(1, "node-b"), &s).unwrap();
        assert_eq!((e.node.as_str(), e.term.unwrap().fence), ("node-a", 7));
        match e.msg {
            HubWire::Broadcast { class, frame: got } => {
                assert_eq!((class, got), (Class::Lossy, frame));
            }
            other => panic!("{other:?}"),
        }
        let s = sealed(
            &a,
            HubWire::Request {
                id: 3,
                request: Request::Moderate {
                    action: Moderation::Ban {
                        user_id: 4,
                        duration_s: 0,
                        reason: "spam".into(),
                    },
                },
            },
        );
        match open(&a, &s).unwrap().msg {
            HubWire::Request {
                id: 3,
                request: Request::Moderate { action },
            } => assert!(matches!(action, Moderation::Ban { user_id: 4, .. })),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_secret_or_bad_bytes_are_refused_not_panicked_on() {
        let a = auth(1, "node-a");
        let s = sealed(&a, HubWire::Owner);
        assert!(open(&auth(2, "node-b"), &s).is_err());
        let bad = a.seal(
            r#"{"node":"x","term":null,"sent_us":0,"msg":{"t":"frame","conn":1,"data":"%%%"}}"#,
        );
        assert!(open(&a, &bad).is_err());
        let unknown = a.seal(r#"{"node":"x","term":null,"sent_us":0,"msg":{"t":"nope"}}"#);
        assert!(open(&a, &unknown).is_err());
        assert_eq!(channel_in(3), "venue:hub:3:in");
        assert_eq!(channel_out(3), "venue:hub:3:out");
    }
}
