//! The IO shell of a room's hub: one tokio task (actor) per room owns the [`RoomHub`], its
//! tick timer and the connections' send sides; a second task per room writes the hub's
//! [`PersistOp`]s to the store in order.
//!
//! Inputs arrive on one bounded `mpsc` ([`HubHandle`]) from the WebSocket handlers, from the
//! state actor (SFU data-channel events, stage changes) and from the admin API. Outputs go:
//! - to WebSocket clients: into each client's bounded queue ([`WsClient`]), drained by that
//!   client's writer task. The [`QueuePolicy`] decides per frame: lossy frames only while the
//!   queue is short, reliable ones until it is full, then the client is closed with
//!   `NOTICE_CODE_TOO_SLOW`. The actor never awaits a client.
//! - to data-channel clients: `SfuHandle::send_channel` / `broadcast_channel` (the SFU drops
//!   lossy frames for viewers whose SCTP buffer is backed up) and `SfuHandle::close`.
//!
//! A broadcast is one `Bytes` pushed into every WebSocket queue and one SFU command per shard.
//!
//! When a cluster node drains ([`crate::cluster::drain`]), the `moving` notice in [`HubDeps`]
//! turns `Some`: the actor sends `ServerMessage{moving}` once to every client it has (one
//! reliable frame per WebSocket queue, one data-channel broadcast), and to each client that
//! connects afterwards.

// The hub's IO shell reads the clock and hands it to the sans-IO `RoomHub`.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use venue_proto::v1;
use venue_sfu::{ChannelClass, RoomId, SessionId, SfuHandle};

use super::settings::RoomSettings;
use super::{
    Admit, Class, ConnId, HubConfig, HubStats, Input, IpHash, Moderation, ModerationError, Now,
    Output, PersistOp, QueuePolicy, RoomHub, Transport, UserInfo, too_slow_notice,
};
use crate::store::{Room, Store, StoreError};

/// Depth of a hub's input queue.
pub const HUB_QUEUE: usize = 8192;
/// Depth of a hub's persistence queue (batches of ops).
pub(super) const PERSIST_QUEUE: usize = 4096;
/// How long a data-channel client gets to receive its closing notice before its session ends.
pub(super) const DC_CLOSE_GRACE: Duration = Duration::from_millis(300);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_conn() -> ConnId {
    ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed))
}

/// Current time as the hub takes it.
pub fn now() -> Now {
    Now {
        at: Instant::now(),
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    }
}

/// What every room's hub needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct HubDeps {
    pub store: Store,
    pub sfu: SfuHandle,
    pub config: HubConfig,
    pub queue: QueuePolicy,
    /// SHA-256 of the admin token.
    pub admin_digest: [u8; 32],
    /// Salt of the IP hashes (kept in the data dir so bans survive restarts; derived from the
    /// cluster secret in cluster mode).
    pub ip_salt: Arc<[u8; 32]>,
    /// The node's drain notice ([`crate::cluster::drain::Drain::subscribe`]): `Some` once the
    /// node drains; never in single-node mode.
    pub moving: watch::Receiver<Option<crate::cluster::drain::Moving>>,
    /// Cluster mode: the room's hub runs on its owner node and this node is an edge for its
    /// own clients ([`super::remote`]). `None` (single-node mode): the hub is always local.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The send side of one WebSocket client, owned by the hub actor.
#[derive(Debug)]
pub struct WsClient {
    pub(super) queue: mpsc::Sender<Bytes>,
    pub(super) kill: oneshot::Sender<Bytes>,
}

/// What the WebSocket handler holds for its connection.
#[derive(Debug)]
pub struct WsSession {
    pub conn: ConnId,
    /// Frames to write, in order.
    pub queue: mpsc::Receiver<Bytes>,
    /// Fires with a final notice frame when the hub closes the connection.
    pub kill: oneshot::Receiver<Bytes>,
}

pub(super) enum HubInput {
    WsConnect {
        conn: ConnId,
        ip: Option<IpAddr>,
        client: WsClient,
    },
    WsFrame {
        conn: ConnId,
        data: Bytes,
    },
    WsBad {
        conn: ConnId,
        reason: &'static str,
    },
    WsClosed {
        conn: ConnId,
    },
    DcOpen {
        session: SessionId,
        remote: Option<SocketAddr>,
    },
    DcFrame {
        session: SessionId,
        data: Bytes,
    },
    DcDown {
        session: SessionId,
    },
    Stage(v1::StageState),
    GetSettings {
        reply: oneshot::Sender<RoomSettings>,
    },
    PutSettings {
        settings: RoomSettings,
        reply: oneshot::Sender<Result<RoomSettings, String>>,
    },
    Moderate {
        action: Moderation,
        reply: oneshot::Sender<Result<(), ModerationError>>,
    },
    Users {
        reply: oneshot::Sender<Vec<UserInfo>>,
    },
    Stats {
        reply: oneshot::Sender<HubStats>,
    },
}

/// The hub actor stopped (the process is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the room's interaction hub stopped")]
pub struct HubStopped;

/// Cloneable handle to one room's hub actor.
#[derive(Clone, Debug)]
pub struct HubHandle {
    pub(super) tx: mpsc::Sender<HubInput>,
}

impl std::fmt::Debug for HubInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubInput")
    }
}

impl HubHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> HubInput,
    ) -> Result<T, HubStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| HubStopped)?;
        rx.await.map_err(|_| HubStopped)
    }

    /// Registers a WebSocket client from `ip` whose queue holds `capacity` frames.
    pub async fn ws_connect(
        &self,
        ip: Option<IpAddr>,
        capacity: usize,
    ) -> Result<WsSession, HubStopped> {
        let (queue_tx, queue) = mpsc::channel(capacity.max(1));
        let (kill_tx, kill) = oneshot::channel();
        let conn = next_conn();
        self.tx
            .send(HubInput::WsConnect {
                conn,
                ip,
                client: WsClient {
                    queue: queue_tx,
                    kill: kill_tx,
                },
            })
            .await
            .map_err(|_| HubStopped)?;
        Ok(WsSession { conn, queue, kill })
    }

    /// A binary frame from a WebSocket client (waits while the hub's queue is full: the
    /// client's TCP window closes, which is the back-pressure we want).
    pub async fn ws_frame(&self, conn: ConnId, data: Bytes) -> Result<(), HubStopped> {
        self.tx
            .send(HubInput::WsFrame { conn, data })
            .await
            .map_err(|_| HubStopped)
    }

    /// A frame the WebSocket handler rejected (text, …): counted as an offence.
    pub async fn ws_bad(&self, conn: ConnId, reason: &'static str) -> Result<(), HubStopped> {
        self.tx
            .send(HubInput::WsBad { conn, reason })
            .await
            .map_err(|_| HubStopped)
    }

    /// The WebSocket client is gone.
    pub async fn ws_closed(&self, conn: ConnId) {
        let _ = self.tx.send(HubInput::WsClosed { conn }).await;
    }

    /// A viewer's `venue` data channel opened.
    pub async fn dc_open(&self, session: SessionId, remote: Option<SocketAddr>) {
        let _ = self.tx.send(HubInput::DcOpen { session, remote }).await;
    }

    /// A data-channel frame; dropped (false) when the hub's queue is full, so the state actor
    /// never waits on a hub.
    pub fn dc_frame(&self, session: SessionId, data: Bytes) -> bool {
        self.tx
            .try_send(HubInput::DcFrame { session, data })
            .is_ok()
    }

    /// A viewer session ended.
    pub async fn dc_down(&self, session: SessionId) {
        let _ = self.tx.send(HubInput::DcDown { session }).await;
    }

    /// The room's stage changed.
    pub async fn stage(&self, stage: v1::StageState) {
        let _ = self.tx.send(HubInput::Stage(stage)).await;
    }

    /// The room's settings.
    pub async fn settings(&self) -> Result<RoomSettings, HubStopped> {
        self.ask(|reply| HubInput::GetSettings { reply }).await
    }

    /// Replaces the settings; answers once they are stored. `Err(Ok(reason))`: invalid.
    pub async fn put_settings(
        &self,
        settings: RoomSettings,
    ) -> Result<Result<RoomSettings, String>, HubStopped> {
        self.ask(|reply| HubInput::PutSettings { settings, reply })
            .await
    }

    /// Applies a moderation action; answers once it is stored.
    pub async fn moderate(
        &self,
        action: Moderation,
    ) -> Result<Result<(), ModerationError>, HubStopped> {
        self.ask(|reply| HubInput::Moderate { action, reply }).await
    }

    /// Joined users, by id.
    pub async fn users(&self) -> Result<Vec<UserInfo>, HubStopped> {
        self.ask(|reply| HubInput::Users { reply }).await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<HubStats, HubStopped> {
        self.ask(|reply| HubInput::Stats { reply }).await
    }
}

pub(super) enum Peer {
    Ws(WsClient),
    Dc(SessionId),
}

/// Sends `frame` to one client (`peer`; `None`: gone): into its WebSocket queue, or on its
/// data channel. Returns whether it is a WebSocket client too slow to keep (the caller closes
/// it).
pub(super) async fn send_to(
    deps: &HubDeps,
    peer: Option<&Peer>,
    class: Class,
    frame: Bytes,
) -> bool {
    match peer {
        Some(Peer::Ws(client)) => deliver(&deps.queue, client, class, frame) == Admit::Close,
        Some(Peer::Dc(session)) => {
            let session = *session;
            if let Err(e) = deps
                .sfu
                .send_channel(session, channel_class(class), frame)
                .await
            {
                tracing::debug!(%session, error = %e, "data-channel send failed");
            }
            false
        }
        None => false,
    }
}

/// Sends one tick frame to every client of a room on this node: into each WebSocket client's
/// queue, and once to the room's data channels (`SfuHandle::broadcast_channel`) when any
/// client is on one. Returns the WebSocket clients too slow to keep (the caller closes them).
pub(super) async fn fan_out<'a>(
    deps: &HubDeps,
    room: venue_sfu::RoomId,
    peers: impl Iterator<Item = (&'a ConnId, &'a Peer)>,
    class: Class,
    frame: Bytes,
) -> Vec<ConnId> {
    let mut slow = Vec::new();
    let mut any_dc = false;
    for (conn, peer) in peers {
        match peer {
            Peer::Ws(ws) => {
                if deliver(&deps.queue, ws, class, frame.clone()) == Admit::Close {
                    slow.push(*conn);
                }
            }
            Peer::Dc(_) => any_dc = true,
        }
    }
    if any_dc
        && let Err(e) = deps
            .sfu
            .broadcast_channel(room, channel_class(class), frame)
            .await
    {
        tracing::debug!(room = room.0, error = %e, "data-channel broadcast failed");
    }
    slow
}

pub(super) enum PersistJob {
    Ops(Vec<PersistOp>),
    Barrier(oneshot::Sender<()>),
}

struct Actor {
    core: RoomHub,
    room: RoomId,
    deps: HubDeps,
    peers: HashMap<ConnId, Peer>,
    sessions: HashMap<SessionId, ConnId>,
    pending_persist: Vec<PersistOp>,
    persist: mpsc::Sender<PersistJob>,
    barriers: Vec<Box<dyn FnOnce() + Send>>,
    /// The encoded moving notice once the node drains (sent to clients that join later).
    moving: Option<Bytes>,
    /// Clients that joined while draining, to be sent the moving notice on the next flush.
    joined: Vec<ConnId>,
}

/// Loads room `room`'s interaction state from the store and starts its hub actor and
/// persistence task. Errors: the store failed.
pub async fn spawn(room: &Room, deps: HubDeps) -> Result<HubHandle, StoreError> {
    if let Some(cluster) = deps.cluster.clone() {
        return Ok(super::remote::spawn(room, deps, cluster).await);
    }
    let t = now();
    let loaded = deps
        .store
        .load_interaction(
            room.id,
            deps.config.board_size,
            deps.config.chat_history,
            t.wall_ms,
        )
        .await?;
    let core = RoomHub::new(
        &room.name,
        &room.title,
        deps.config.clone(),
        deps.admin_digest,
        loaded,
    );
    let (persist_tx, persist_rx) = mpsc::channel(PERSIST_QUEUE);
    tokio::spawn(persister(deps.store.clone(), room.id, persist_rx));
    let (tx, rx) = mpsc::channel(HUB_QUEUE);
    let actor = Actor {
        core,
        room: RoomId(u64::try_from(room.id.0).unwrap_or(0)),
        deps,
        peers: HashMap::new(),
        sessions: HashMap::new(),
        pending_persist: Vec::new(),
        persist: persist_tx,
        barriers: Vec::new(),
        moving: None,
        joined: Vec::new(),
    };
    tokio::spawn(actor.run(rx, room.name.clone()));
    Ok(HubHandle { tx })
}

pub(super) async fn persister(
    store: Store,
    room_id: crate::ids::RoomId,
    mut rx: mpsc::Receiver<PersistJob>,
) {
    while let Some(job) = rx.recv().await {
        let mut ops = Vec::new();
        let mut barriers = Vec::new();
        let mut next = Some(job);
        // Merge what is already queued into one transaction.
        while let Some(job) = next.take() {
            match job {
                PersistJob::Ops(more) => ops.extend(more),
                PersistJob::Barrier(b) => barriers.push(b),
            }
            if ops.len() < 1024 {
                next = rx.try_recv().ok();
            }
        }
        if !ops.is_empty()
            && let Err(e) = store.apply_interaction(room_id, &ops).await
        {
            tracing::error!(room_id = room_id.0, error = %e, ops = ops.len(), "persisting interaction changes failed");
        }
        for b in barriers {
            let _ = b.send(());
        }
    }
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<HubInput>, name: String) {
        let mut ticker = tokio::time::interval(self.core.tick_period());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::debug!(room = %name, "interaction hub started");
        let mut moving = Some(self.deps.moving.clone());
        // A hub started while the node already drains.
        let notice = moving
            .as_mut()
            .and_then(|rx| rx.borrow_and_update().clone());
        if notice.is_some() {
            self.start_moving(notice).await;
        }
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.core.handle(now(), Input::Tick);
                }
                changed = changed_or_pending(&mut moving) => {
                    match changed {
                        Some(notice) => self.start_moving(notice).await,
                        // The drain switch is gone (process ending): stop listening to it.
                        None => moving = None,
                    }
                }
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    self.input(input);
                    // Take what is queued already before flushing (bounded, so ticks stay on time).
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(input) => self.input(input),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.flush().await;
        }
        tracing::debug!(room = %name, "interaction hub stopped");
    }

    fn input(&mut self, input: HubInput) {
        let t = now();
        match input {
            HubInput::WsConnect { conn, ip, client } => {
                let ip = ip.map(|ip| IpHash::of(ip, &self.deps.ip_salt[..]));
                self.peers.insert(conn, Peer::Ws(client));
                if self.moving.is_some() {
                    self.joined.push(conn);
                }
                self.core.handle(
                    t,
                    Input::Connect {
                        conn,
                        transport: Transport::WebSocket,
                        ip,
                    },
                );
            }
            HubInput::WsFrame { conn, data } => self.core.handle(t, Input::Frame { conn, data }),
            HubInput::WsBad { conn, reason } => {
                self.core.handle(t, Input::BadFrame { conn, reason })
            }
            HubInput::WsClosed { conn } => {
                self.peers.remove(&conn);
                self.core.handle(t, Input::Disconnect { conn });
            }
            HubInput::DcOpen { session, remote } => {
                if let Some(old) = self.sessions.remove(&session) {
                    self.peers.remove(&old);
                    self.core.handle(t, Input::Disconnect { conn: old });
                }
                let conn = next_conn();
                let ip = remote.map(|a| IpHash::of(a.ip(), &self.deps.ip_salt[..]));
                self.sessions.insert(session, conn);
                self.peers.insert(conn, Peer::Dc(session));
                if self.moving.is_some() {
                    self.joined.push(conn);
                }
                self.core.handle(
                    t,
                    Input::Connect {
                        conn,
                        transport: Transport::DataChannel,
                        ip,
                    },
                );
            }
            HubInput::DcFrame { session, data } => {
                if let Some(conn) = self.sessions.get(&session).copied() {
                    self.core.handle(t, Input::Frame { conn, data });
                }
            }
            HubInput::DcDown { session } => {
                if let Some(conn) = self.sessions.remove(&session) {
                    self.peers.remove(&conn);
                    self.core.handle(t, Input::Disconnect { conn });
                }
            }
            HubInput::Stage(stage) => self.core.handle(t, Input::Stage(stage)),
            HubInput::GetSettings { reply } => {
                let _ = reply.send(self.core.settings().clone());
            }
            HubInput::PutSettings { settings, reply } => match self.core.set_settings(settings) {
                Ok(()) => {
                    let settings = self.core.settings().clone();
                    self.after_persisted(move || {
                        let _ = reply.send(Ok(settings));
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            HubInput::Moderate { action, reply } => match self.core.moderate(t, action) {
                Ok(()) => self.after_persisted(move || {
                    let _ = reply.send(Ok(()));
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            HubInput::Users { reply } => {
                let _ = reply.send(self.core.users());
            }
            HubInput::Stats { reply } => {
                let _ = reply.send(self.core.stats());
            }
        }
    }

    /// The node drains: sends the moving notice to every client once, and keeps it for those
    /// that join later.
    async fn start_moving(&mut self, notice: Option<crate::cluster::drain::Moving>) {
        let Some(notice) = notice else { return };
        if self.moving.is_some() {
            return;
        }
        let frame = super::codec::encode(
            v1::server_message::Body::Moving(v1::Moving {
                reason: notice.reason,
                deadline_ms: notice.deadline_ms,
            }),
            self.deps.config.deflate_threshold,
        );
        self.moving = Some(frame.clone());
        let mut any_dc = false;
        let mut ws = 0usize;
        for peer in self.peers.values() {
            match peer {
                Peer::Ws(client) => {
                    // Not closing a slow client here: it is leaving anyway.
                    let _ = deliver(&self.deps.queue, client, Class::Reliable, frame.clone());
                    ws += 1;
                }
                Peer::Dc(_) => any_dc = true,
            }
        }
        if any_dc
            && let Err(e) = self
                .deps
                .sfu
                .broadcast_channel(self.room, ChannelClass::Reliable, frame)
                .await
        {
            tracing::debug!(room = self.room.0, error = %e, "moving notice: data-channel broadcast failed");
        }
        tracing::info!(
            room = self.room.0,
            websocket = ws,
            data_channels = any_dc,
            "told the room's clients to move"
        );
    }

    /// A client joined while the node drains: it gets the moving notice too.
    async fn moving_to(&mut self, conn: ConnId) {
        let Some(frame) = &self.moving else { return };
        match self.peers.get(&conn) {
            Some(Peer::Ws(client)) => {
                let _ = deliver(&self.deps.queue, client, Class::Reliable, frame.clone());
            }
            Some(Peer::Dc(session)) => {
                let _ = self
                    .deps
                    .sfu
                    .send_channel(*session, ChannelClass::Reliable, frame.clone())
                    .await;
            }
            None => {}
        }
    }

    /// Runs `done` once everything the core has asked to persist so far is stored (the
    /// barrier is queued behind those ops at the end of this flush).
    fn after_persisted(&mut self, done: impl FnOnce() + Send + 'static) {
        self.barriers.push(Box::new(done));
    }

    fn send_persist(&mut self) {
        if self.pending_persist.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.pending_persist);
        if let Err(e) = self.persist.try_send(PersistJob::Ops(ops)) {
            let lost = match &e {
                mpsc::error::TrySendError::Full(PersistJob::Ops(ops))
                | mpsc::error::TrySendError::Closed(PersistJob::Ops(ops)) => ops.len(),
                _ => 0,
            };
            tracing::error!(
                room = self.room.0,
                lost,
                "persistence queue full; changes not stored"
            );
        }
    }

    /// Performs the core's outputs.
    async fn flush(&mut self) {
        for conn in std::mem::take(&mut self.joined) {
            self.moving_to(conn).await;
        }
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { conn, class, frame } => {
                    if send_to(&self.deps, self.peers.get(&conn), class, frame).await {
                        self.too_slow(conn);
                    }
                }
                Output::Broadcast { class, frame } => {
                    let slow =
                        fan_out(&self.deps, self.room, self.peers.iter(), class, frame).await;
                    for conn in slow {
                        self.too_slow(conn);
                    }
                }
                Output::Close { conn, notice } => match self.peers.remove(&conn) {
                    Some(Peer::Ws(client)) => {
                        let _ = client.kill.send(notice);
                    }
                    Some(Peer::Dc(session)) => {
                        self.sessions.remove(&session);
                        let sfu = self.deps.sfu.clone();
                        let _ = sfu
                            .send_channel(session, ChannelClass::Reliable, notice)
                            .await;
                        tokio::spawn(async move {
                            tokio::time::sleep(DC_CLOSE_GRACE).await;
                            let _ = sfu.close(session).await;
                        });
                    }
                    None => {}
                },
                Output::Persist(op) => self.pending_persist.push(op),
            }
        }
        self.send_persist();
        for done in std::mem::take(&mut self.barriers) {
            let (tx, rx) = oneshot::channel();
            if self.persist.try_send(PersistJob::Barrier(tx)).is_err() {
                tracing::error!(room = self.room.0, "persistence queue full");
            }
            tokio::spawn(async move {
                let _ = rx.await;
                done();
            });
        }
    }

    /// Closes a WebSocket client that cannot keep up.
    fn too_slow(&mut self, conn: ConnId) {
        if let Some(Peer::Ws(client)) = self.peers.remove(&conn) {
            tracing::info!(
                room = self.room.0,
                conn = conn.0,
                "closing a client that is too slow"
            );
            let _ = client.kill.send(too_slow_notice());
        }
        self.core.handle(now(), Input::Disconnect { conn });
    }
}

/// The next value of the drain notice; `None` when its sender is gone. Pending forever when
/// there is no receiver (stopped listening).
pub(super) async fn changed_or_pending(
    rx: &mut Option<watch::Receiver<Option<crate::cluster::drain::Moving>>>,
) -> Option<Option<crate::cluster::drain::Moving>> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// Applies the slow-client policy to one frame for one WebSocket client: never waits.
/// Returns what happened; `Admit::Close` means the caller must close the client.
pub(super) fn deliver(
    policy: &QueuePolicy,
    client: &WsClient,
    class: Class,
    frame: Bytes,
) -> Admit {
    let queued = client
        .queue
        .max_capacity()
        .saturating_sub(client.queue.capacity());
    match policy.admit(queued, class) {
        Admit::Enqueue => match client.queue.try_send(frame) {
            Ok(()) => Admit::Enqueue,
            Err(mpsc::error::TrySendError::Full(_)) if class == Class::Reliable => Admit::Close,
            // Lossy and full, or the writer is gone (its reader reports the close).
            Err(_) => Admit::Drop,
        },
        other => other,
    }
}

pub(super) fn channel_class(class: Class) -> ChannelClass {
    match class {
        Class::Reliable => ChannelClass::Reliable,
        Class::Lossy => ChannelClass::Lossy,
    }
}

#[cfg(test)]
#[path = "../tests/shell.rs"]
mod tests;
