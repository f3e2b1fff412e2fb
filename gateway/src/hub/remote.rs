//! A room's hub in cluster mode (issue 11 item 6, DESIGN §7): one actor per room per node,
//! the **edge** for this node's clients and, while this node holds the room's owner lease,
//! also its **owner** ([`super::owner`]: the real [`super::RoomHub`], ticks, limits, names,
//! moderation, history). The transport between nodes (Redis pub/sub, two channels per room,
//! and why) is [`crate::cluster::hubs`].
//!
//! As an edge the actor keeps its clients' send sides (WebSocket queues, data-channel
//! sessions) exactly as the single-node shell does ([`super::shell`]), forwards their inputs
//! to the owner (`Join` with the client's first frame, its hello; then `Frame`, `Bad`,
//! `Gone`) and carries out what the owner sends back: a per-tick `Broadcast` (the bytes the
//! owner encoded, once for the whole cluster) goes into every local WebSocket queue and out
//! as one data-channel broadcast per shard; `Send` and `Close` go to one local client. Admin
//! requests (settings, moderation, users, stats) from this node's API are forwarded with a
//! request id and answered by the owner, after the change is stored.
//!
//! When this node owns the room its own clients skip Redis: their inputs go straight into
//! the owner, and the owner's outputs for them are delivered directly.
//!
//! Failover: when the owner dies its lease expires and another node takes it (≤ about 8 s);
//! the new owner rebuilds the room from the store (chat history, board, bans, mutes, stars,
//! settings) and announces itself with a higher fencing token; every edge then re-sends the
//! `Join` (first frame) of each of its clients, so names and users come back, each client
//! getting a fresh `Hello` and `Snapshot`. An edge that joins late or missed the announcement
//! learns of the owner from its heartbeat, every second.
//!
//! Single-node mode never gets here ([`super::shell::spawn`] runs the local hub).

// An IO shell: it reads the clock and runs timers.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use venue_proto::v1;
use venue_sfu::{ChannelClass, RoomId, SessionId};

use super::owner::Owner;
use super::settings::RoomSettings;
use super::shell::{
    DC_CLOSE_GRACE, HUB_QUEUE, HubDeps, HubHandle, HubInput, Peer, changed_or_pending, next_conn,
};
use super::{
    Class, ConnId, HubStats, Input, IpHash, ModerationError, Output, Transport, UserInfo,
    too_slow_notice,
};
use crate::cluster::Cluster;
use crate::cluster::hubs::{
    HEARTBEAT, HubLink, HubWire, Incoming, OwnerTerm, Reply, Request, channel_in, channel_out,
};
use crate::store::Room;

/// An owner not heard from for this long is gone: an owner with a lower fencing token is
/// followed then (Redis restarted without persistence: the lease's counter started again).
const OWNER_SILENCE: Duration = Duration::from_secs(3);
/// How long an admin request forwarded to the owner may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts room `room`'s clustered hub actor on this node: subscribes to the room's `:out`
/// channel and competes for its owner lease.
pub async fn spawn(room: &Room, deps: HubDeps, cluster: Arc<Cluster>) -> HubHandle {
    let (tx, rx) = mpsc::channel(HUB_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(HUB_QUEUE);
    let link = cluster.hubs().clone();
    if let Err(e) = link.subscribe(channel_out(room.id.0), in_tx.clone()).await {
        tracing::warn!(room = %room.name, error = %e, "hub: could not subscribe to the room's owner channel");
    }
    let lease = cluster.hub_lease(room.id.0);
    let actor = Edge {
        room: room.clone(),
        sfu_room: RoomId(u64::try_from(room.id.0).unwrap_or(0)),
        me: link.node().to_owned(),
        deps,
        link,
        clients: HashMap::new(),
        sessions: HashMap::new(),
        owner_term: None,
        owner_heard: Instant::now(),
        owning: None,
        in_tx,
        stage: None,
        pending: HashMap::new(),
        next_request: 1,
        moving: None,
        frames_in: 0,
    };
    tokio::spawn(actor.run(rx, in_rx, lease));
    HubHandle { tx }
}

/// A local client.
struct Client {
    peer: Peer,
    transport: Transport,
    ip: Option<IpHash>,
    /// Its first frame (the hello), re-sent to each new owner.
    first: Option<Bytes>,
}

/// A local admin request waiting for its answer.
enum Pending {
    Settings(oneshot::Sender<RoomSettings>),
    PutSettings(oneshot::Sender<Result<RoomSettings, String>>),
    Moderate(oneshot::Sender<Result<(), ModerationError>>),
    Users(oneshot::Sender<Vec<UserInfo>>),
}

impl Pending {
    fn resolve(self, reply: Reply) {
        let _ = match (self, reply) {
            (Pending::Settings(tx), Reply::Settings { settings }) => tx.send(settings).is_ok(),
            (Pending::PutSettings(tx), Reply::PutSettings { result }) => tx.send(result).is_ok(),
            (Pending::Moderate(tx), Reply::Moderate { result }) => tx.send(result).is_ok(),
            (Pending::Users(tx), Reply::Users { users }) => tx.send(users).is_ok(),
            // A mismatched answer: the sender is dropped, the caller sees the hub stopped.
            _ => false,
        };
    }
}

struct Edge {
    room: Room,
    sfu_room: RoomId,
    me: String,
    deps: HubDeps,
    link: Arc<HubLink>,
    clients: HashMap<ConnId, Client>,
    sessions: HashMap<SessionId, ConnId>,
    /// The tenure of the owner this edge follows (`None`: none heard of yet).
    owner_term: Option<OwnerTerm>,
    /// When that owner was last heard from.
    owner_heard: Instant,
    owning: Option<Owner>,
    in_tx: mpsc::Sender<Incoming>,
    /// The room's stage as the state actor last gave it (for a new owner's core).
    stage: Option<v1::StageState>,
    pending: HashMap<u64, (Instant, Pending)>,
    next_request: u64,
    /// The encoded moving notice once the node drains.
    moving: Option<Bytes>,
    /// Frames received from this node's clients.
    frames_in: u64,
}

impl Edge {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<HubInput>,
        mut wire: mpsc::Receiver<Incoming>,
        mut lease: watch::Receiver<Option<OwnerTerm>>,
    ) {
        let mut ticker = tokio::time::interval(self.deps.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut moving = Some(self.deps.moving.clone());
        let mut leasing = true;
        loop {
            tokio::select! {
                _ = ticker.tick(), if self.owning.is_some() => {
                    if let Some(owner) = &mut self.owning {
                        owner.core.handle(super::shell::now(), Input::Tick);
                    }
                }
                _ = beat.tick() => self.heartbeat(),
                changed = lease.changed(), if leasing => {
                    let term = if changed.is_ok() { lease.borrow_and_update().clone() } else {
                        // The contest ended (the cluster stopped): not the owner any more.
                        leasing = false;
                        None
                    };
                    self.lease_changed(term).await;
                }
                changed = changed_or_pending(&mut moving) => match changed {
                    Some(notice) => self.start_moving(notice).await,
                    None => moving = None,
                },
                msg = wire.recv() => {
                    let Some(msg) = msg else { break };
                    self.incoming(msg).await;
                }
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    self.local(input).await;
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(input) => self.local(input).await,
                            Err(_) => break,
                        }
                    }
                }
            }
            self.flush_owner().await;
        }
    }

    /// Every second: the owner announces itself and drops dead edges; an edge with clients
    /// says it is alive; forwarded requests that got no answer are given up.
    fn heartbeat(&mut self) {
        if let Some(owner) = &mut self.owning {
            owner.sweep(&self.me);
            self.link.send(
                channel_out(self.room.id.0),
                Some(&owner.term),
                HubWire::Owner,
            );
        } else if self.clients.values().any(|c| c.first.is_some()) {
            self.link
                .send(channel_in(self.room.id.0), None, HubWire::Alive);
        }
        let now = Instant::now();
        self.pending
            .retain(|_, (since, _)| now.saturating_duration_since(*since) < REQUEST_TIMEOUT);
    }

    async fn lease_changed(&mut self, term: Option<OwnerTerm>) {
        match (term, self.owning.is_some()) {
            (Some(term), false) => {
                if let Err(e) = self
                    .link
                    .subscribe(channel_in(self.room.id.0), self.in_tx.clone())
                    .await
                {
                    tracing::warn!(room = %self.room.name, error = %e, "hub owner: could not subscribe to the room's input channel");
                }
                let mut owner = match Owner::start(&self.room, &self.deps, term.clone()).await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(room = %self.room.name, error = %e, "hub owner: loading the room failed");
                        return;
                    }
                };
                if let Some(stage) = self.stage.clone() {
                    owner.core.handle(super::shell::now(), Input::Stage(stage));
                }
                tracing::info!(room = %self.room.name, fence = term.fence, "this node runs the room's hub");
                self.link
                    .send(channel_out(self.room.id.0), Some(&term), HubWire::Owner);
                self.owning = Some(owner);
                self.link.owns(true);
                self.owner_term = Some(term);
                self.owner_heard = Instant::now();
                self.announce_all();
            }
            (None, true) => {
                tracing::info!(room = %self.room.name, "this node no longer runs the room's hub");
                self.owning = None;
                self.link.owns(false);
                let _ = self.link.unsubscribe(&channel_in(self.room.id.0)).await;
            }
            _ => {}
        }
    }

    /// Sends a message to the owner: directly when it is this node, else over Redis.
    fn forward(&mut self, msg: HubWire) {
        match &mut self.owning {
            Some(owner) => {
                if let Some((id, request)) = owner.wire(&self.me, msg) {
                    let me = self.me.clone();
                    self.answer(me, id, request);
                }
            }
            None => self.link.send(channel_in(self.room.id.0), None, msg),
        }
    }

    /// Re-sends every local client's join (to a new owner).
    fn announce_all(&mut self) {
        let joins: Vec<HubWire> = self
            .clients
            .iter()
            .filter_map(|(conn, c)| {
                c.first.clone().map(|first| HubWire::Join {
                    conn: conn.0,
                    transport: c.transport,
                    ip: c.ip.map(|ip| ip.to_hex()),
                    first,
                })
            })
            .collect();
        for join in joins {
            self.forward(join);
        }
    }

    async fn local(&mut self, input: HubInput) {
        match input {
            HubInput::WsConnect { conn, ip, client } => {
                let ip = ip.map(|ip| IpHash::of(ip, &self.deps.ip_salt[..]));
                self.add(conn, Peer::Ws(client), Transport::WebSocket, ip)
                    .await;
            }
            HubInput::WsFrame { conn, data } => self.frame(conn, data),
            HubInput::WsBad { conn, reason } => self.forward(HubWire::Bad {
                conn: conn.0,
                reason: reason.to_owned(),
            }),
            HubInput::WsClosed { conn } => self.gone(conn),
            HubInput::DcOpen { session, remote } => self.dc_open(session, remote).await,
            HubInput::DcFrame { session, data } => {
                if let Some(conn) = self.sessions.get(&session).copied() {
                    self.frame(conn, data);
                }
            }
            HubInput::DcDown { session } => {
                if let Some(conn) = self.sessions.remove(&session) {
                    self.gone(conn);
                }
            }
            HubInput::Stage(stage) => {
                self.stage = Some(stage.clone());
                if let Some(owner) = &mut self.owning {
                    owner.core.handle(super::shell::now(), Input::Stage(stage));
                }
            }
            HubInput::GetSettings { reply } => {
                self.ask(Request::Settings, Pending::Settings(reply))
            }
            HubInput::PutSettings { settings, reply } => self.ask(
                Request::PutSettings { settings },
                Pending::PutSettings(reply),
            ),
            HubInput::Moderate { action, reply } => {
                self.ask(Request::Moderate { action }, Pending::Moderate(reply))
            }
            HubInput::Users { reply } => self.ask(Request::Users, Pending::Users(reply)),
            HubInput::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }

    async fn add(&mut self, conn: ConnId, peer: Peer, transport: Transport, ip: Option<IpHash>) {
        self.clients.insert(
            conn,
            Client {
                peer,
                transport,
                ip,
                first: None,
            },
        );
        if self.moving.is_some() {
            self.moving_to(conn).await;
        }
    }

    async fn dc_open(&mut self, session: SessionId, remote: Option<SocketAddr>) {
        if let Some(old) = self.sessions.remove(&session) {
            self.gone(old);
        }
        let conn = next_conn();
        let ip = remote.map(|a| IpHash::of(a.ip(), &self.deps.ip_salt[..]));
        self.sessions.insert(session, conn);
        self.add(conn, Peer::Dc(session), Transport::DataChannel, ip)
            .await;
    }

    fn frame(&mut self, conn: ConnId, data: Bytes) {
        self.frames_in += 1;
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let msg = if client.first.is_none() {
            client.first = Some(data.clone());
            HubWire::Join {
                conn: conn.0,
                transport: client.transport,
                ip: client.ip.map(|ip| ip.to_hex()),
                first: data,
            }
        } else {
            HubWire::Frame { conn: conn.0, data }
        };
        self.forward(msg);
    }

    /// A local client left.
    fn gone(&mut self, conn: ConnId) {
        if let Some(client) = self.clients.remove(&conn)
            && client.first.is_some()
        {
            self.forward(HubWire::Gone { conn: conn.0 });
        }
    }

    /// This node's counters: `users` are its clients that sent a first frame (joined or
    /// joining) and `frames_in` the frames they sent, so that the sums over nodes are the
    /// room's (and a draining node waits for its own clients only); the owner node adds the
    /// core's other counters (bad frames, rate limited, batches, …), kept once per room.
    fn stats(&self) -> HubStats {
        let mut stats = self
            .owning
            .as_ref()
            .map(|o| o.core.stats())
            .unwrap_or_default();
        stats.users = self.clients.values().filter(|c| c.first.is_some()).count() as u64;
        stats.frames_in = self.frames_in;
        stats
    }

    /// Forwards an admin request to the owner (this node or another).
    fn ask(&mut self, request: Request, pending: Pending) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, (Instant::now(), pending));
        self.forward(HubWire::Request { id, request });
    }

    /// The owner (this node) answers request `id` of node `to`; changes are answered once
    /// stored.
    fn answer(&mut self, to: String, id: u64, request: Request) {
        let Some(owner) = &mut self.owning else {
            return;
        };
        let (reply, stored_first) = owner.request(request);
        let term = owner.term.clone();
        if to == self.me {
            let Some((_, pending)) = self.pending.remove(&id) else {
                return;
            };
            if stored_first {
                owner.after_persisted(Box::new(move || pending.resolve(reply)));
            } else {
                pending.resolve(reply);
            }
        } else {
            let link = self.link.clone();
            let channel = channel_out(self.room.id.0);
            let send = move || link.send(channel, Some(&term), HubWire::Reply { to, id, reply });
            if stored_first {
                owner.after_persisted(Box::new(send));
            } else {
                send();
            }
        }
    }

    async fn incoming(&mut self, msg: Incoming) {
        let envelope = match msg {
            Incoming::Resync => {
                if self.owning.is_none() {
                    self.announce_all();
                }
                return;
            }
            Incoming::Message(e) => *e,
        };
        match envelope.msg {
            HubWire::Join { .. }
            | HubWire::Frame { .. }
            | HubWire::Bad { .. }
            | HubWire::Gone { .. }
            | HubWire::Alive
            | HubWire::Request { .. } => {
                let from = envelope.node;
                let Some(owner) = &mut self.owning else {
                    return;
                };
                if let Some((id, request)) = owner.wire(&from, envelope.msg) {
                    self.answer(from, id, request);
                }
                return;
            }
            _ => {}
        }
        if self.owning.is_some() {
            return; // this node's clients are served by its own core
        }
        let Some(term) = envelope.term else {
            return; // owner messages come from an owner
        };
        if self.owner_term.as_ref() != Some(&term) {
            let newer = self
                .owner_term
                .as_ref()
                .is_none_or(|t| term.fence > t.fence);
            if !newer && self.owner_heard.elapsed() < OWNER_SILENCE {
                return; // a former owner's
            }
            tracing::info!(room = %self.room.name, owner = %envelope.node, fence = term.fence, "the room's hub has a new owner: re-announcing clients");
            self.owner_term = Some(term);
            self.announce_all();
        }
        self.owner_heard = Instant::now();
        match envelope.msg {
            HubWire::Broadcast { class, frame } => self.broadcast(class, frame).await,
            HubWire::Send {
                to,
                conn,
                class,
                frame,
            } if to == self.me => self.send(ConnId(conn), class, frame).await,
            HubWire::Close { to, conn, notice } if to == self.me => {
                self.close(ConnId(conn), notice).await
            }
            HubWire::Reply { to, id, reply } if to == self.me => {
                if let Some((_, pending)) = self.pending.remove(&id) {
                    pending.resolve(reply);
                }
            }
            _ => {}
        }
    }

    /// Carries out the owner core's outputs: local clients directly, others over Redis.
    async fn flush_owner(&mut self) {
        let mut local = Vec::new();
        let Some(owner) = &mut self.owning else {
            return;
        };
        let out = channel_out(self.room.id.0);
        while let Some(output) = owner.core.poll_output() {
            match output {
                Output::Send { conn, class, frame } => match owner.edge_of(conn) {
                    Some((node, c)) if *node == self.me => local.push(Output::Send {
                        conn: ConnId(*c),
                        class,
                        frame,
                    }),
                    Some((node, c)) => {
                        let msg = HubWire::Send {
                            to: node.clone(),
                            conn: *c,
                            class,
                            frame,
                        };
                        self.link.send(out.clone(), Some(&owner.term), msg);
                    }
                    None => {}
                },
                Output::Broadcast { class, frame } => {
                    self.link.send(
                        out.clone(),
                        Some(&owner.term),
                        HubWire::Broadcast {
                            class,
                            frame: frame.clone(),
                        },
                    );
                    local.push(Output::Broadcast { class, frame });
                }
                Output::Close { conn, notice } => match owner.closed(conn) {
                    Some((node, c)) if node == self.me => local.push(Output::Close {
                        conn: ConnId(c),
                        notice,
                    }),
                    Some((node, c)) => {
                        let msg = HubWire::Close {
                            to: node,
                            conn: c,
                            notice,
                        };
                        self.link.send(out.clone(), Some(&owner.term), msg);
                    }
                    None => {}
                },
                Output::Persist(op) => owner.persist(op),
            }
        }
        owner.flush_persist();
        for output in local {
            match output {
                Output::Send { conn, class, frame } => self.send(conn, class, frame).await,
                Output::Broadcast { class, frame } => self.broadcast(class, frame).await,
                Output::Close { conn, notice } => self.close(conn, notice).await,
                Output::Persist(_) => {}
            }
        }
    }

    async fn send(&mut self, conn: ConnId, class: Class, frame: Bytes) {
        let peer = self.clients.get(&conn).map(|c| &c.peer);
        if super::shell::send_to(&self.deps, peer, class, frame).await {
            self.too_slow(conn);
        }
    }

    async fn broadcast(&mut self, class: Class, frame: Bytes) {
        let peers = self.clients.iter().map(|(conn, c)| (conn, &c.peer));
        let slow = super::shell::fan_out(&self.deps, self.sfu_room, peers, class, frame).await;
        for conn in slow {
            self.too_slow(conn);
        }
    }

    /// Sends `notice` to a local client and closes it (the owner has forgotten it).
    async fn close(&mut self, conn: ConnId, notice: Bytes) {
        match self.clients.remove(&conn).map(|c| c.peer) {
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
        }
    }

    /// Closes a WebSocket client that cannot keep up, and tells the owner.
    fn too_slow(&mut self, conn: ConnId) {
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        if let Peer::Ws(ws) = client.peer {
            tracing::info!(
                room = self.sfu_room.0,
                conn = conn.0,
                "closing a client that is too slow"
            );
            let _ = ws.kill.send(too_slow_notice());
        }
        if client.first.is_some() {
            self.forward(HubWire::Gone { conn: conn.0 });
        }
    }

    /// The node drains: the moving notice to every local client, and to later ones.
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
        self.broadcast(Class::Reliable, frame).await;
    }

    async fn moving_to(&mut self, conn: ConnId) {
        if let Some(frame) = self.moving.clone() {
            self.send(conn, Class::Reliable, frame).await;
        }
    }
}
