//! The hub owner's side of a room in cluster mode ([`super::remote`] runs it): the real
//! [`RoomHub`] of the room, rebuilt from the store when this node takes the owner lease,
//! and the map between the core's connections and the clients of every edge node.
//!
//! A client is identified cluster-wide by (edge node id, the edge's connection number). The
//! core sees only its own [`ConnId`]s, one per such pair, so its rate limits, names, bans and
//! mutes hold for the whole cluster. An edge not heard from for
//! [`EDGE_TIMEOUT`](crate::cluster::hubs::EDGE_TIMEOUT) is gone: its clients leave the room.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::shell::{HubDeps, PERSIST_QUEUE, PersistJob, next_conn, now, persister};
use super::{ConnId, Input, IpHash, Moderation, PersistOp, RoomHub};
use crate::cluster::hubs::{EDGE_TIMEOUT, HubWire, OwnerTerm, Reply, Request};
use crate::store::{Room, StoreError};

/// A client of an edge: (node id, the edge's connection number).
pub(super) type EdgeConn = (String, u64);

/// The owner's state of one room.
pub(super) struct Owner {
    pub(super) core: RoomHub,
    /// This node's tenure as the room's owner.
    pub(super) term: OwnerTerm,
    by_edge: HashMap<EdgeConn, ConnId>,
    edge_of: HashMap<ConnId, EdgeConn>,
    last_seen: HashMap<String, Instant>,
    persist: mpsc::Sender<PersistJob>,
    pending_persist: Vec<PersistOp>,
    barriers: Vec<Box<dyn FnOnce() + Send>>,
}

impl Owner {
    /// Loads room `room`'s interaction state (chat history, board, bans, mutes, stars,
    /// settings) from the store and starts its persistence task. Errors: the store failed.
    pub(super) async fn start(
        room: &Room,
        deps: &HubDeps,
        term: OwnerTerm,
    ) -> Result<Owner, StoreError> {
        let loaded = deps
            .store
            .load_interaction(
                room.id,
                deps.config.board_size,
                deps.config.chat_history,
                now().wall_ms,
            )
            .await?;
        let core = RoomHub::new(
            &room.name,
            &room.title,
            deps.config.clone(),
            deps.admin_digest,
            loaded,
        );
        let (persist, rx) = mpsc::channel(PERSIST_QUEUE);
        tokio::spawn(persister(deps.store.clone(), room.id, rx));
        Ok(Owner {
            core,
            term,
            by_edge: HashMap::new(),
            edge_of: HashMap::new(),
            last_seen: HashMap::new(),
            persist,
            pending_persist: Vec::new(),
            barriers: Vec::new(),
        })
    }

    /// The edge client behind core connection `conn`.
    pub(super) fn edge_of(&self, conn: ConnId) -> Option<&EdgeConn> {
        self.edge_of.get(&conn)
    }

    /// The core forgot `conn` (it closed it).
    pub(super) fn closed(&mut self, conn: ConnId) -> Option<EdgeConn> {
        let edge = self.edge_of.remove(&conn)?;
        self.by_edge.remove(&edge);
        Some(edge)
    }

    /// Applies an edge's message from node `from`. A request is returned for the caller to
    /// answer ([`Owner::request`]); messages meant for edges are ignored.
    pub(super) fn wire(&mut self, from: &str, msg: HubWire) -> Option<(u64, Request)> {
        let t = now();
        self.last_seen.insert(from.to_owned(), t.at);
        let key = |conn: u64| (from.to_owned(), conn);
        match msg {
            HubWire::Join {
                conn,
                transport,
                ip,
                first,
            } => {
                if self.by_edge.contains_key(&key(conn)) {
                    return None;
                }
                let id = next_conn();
                self.by_edge.insert(key(conn), id);
                self.edge_of.insert(id, key(conn));
                let ip = ip.as_deref().and_then(IpHash::from_hex);
                self.core.handle(
                    t,
                    Input::Connect {
                        conn: id,
                        transport,
                        ip,
                    },
                );
                self.core.handle(
                    t,
                    Input::Frame {
                        conn: id,
                        data: first,
                    },
                );
            }
            HubWire::Frame { conn, data } => {
                if let Some(id) = self.by_edge.get(&key(conn)).copied() {
                    self.core.handle(t, Input::Frame { conn: id, data });
                }
            }
            HubWire::Bad { conn, reason } => {
                if let Some(id) = self.by_edge.get(&key(conn)).copied() {
                    tracing::debug!(%from, conn, %reason, "bad frame at an edge");
                    let reason = "a frame the transport could not pass on (send binary protobuf)";
                    self.core.handle(t, Input::BadFrame { conn: id, reason });
                }
            }
            HubWire::Gone { conn } => {
                if let Some(id) = self.by_edge.remove(&key(conn)) {
                    self.edge_of.remove(&id);
                    self.core.handle(t, Input::Disconnect { conn: id });
                }
            }
            HubWire::Request { id, request } => return Some((id, request)),
            _ => {}
        }
        None
    }

    /// Answers an admin request. The `bool` says whether the answer must wait until what the
    /// request changed is stored.
    pub(super) fn request(&mut self, request: Request) -> (Reply, bool) {
        match request {
            Request::Settings => (
                Reply::Settings {
                    settings: self.core.settings().clone(),
                },
                false,
            ),
            Request::PutSettings { settings } => {
                let result = self
                    .core
                    .set_settings(settings)
                    .map(|()| self.core.settings().clone());
                let stored = result.is_ok();
                (Reply::PutSettings { result }, stored)
            }
            Request::Moderate { action } => self.moderate(action),
            Request::Users => (
                Reply::Users {
                    users: self.core.users(),
                },
                false,
            ),
        }
    }

    fn moderate(&mut self, action: Moderation) -> (Reply, bool) {
        let result = self.core.moderate(now(), action);
        let stored = result.is_ok();
        (Reply::Moderate { result }, stored)
    }

    /// Drops the clients of edges not heard from for [`EDGE_TIMEOUT`] (never `me`'s).
    pub(super) fn sweep(&mut self, me: &str) {
        let t = now();
        let gone: Vec<String> = self
            .last_seen
            .iter()
            .filter(|(node, seen)| {
                node.as_str() != me && t.at.saturating_duration_since(**seen) >= EDGE_TIMEOUT
            })
            .map(|(node, _)| node.clone())
            .collect();
        for node in gone {
            self.last_seen.remove(&node);
            let conns: Vec<(EdgeConn, ConnId)> = self
                .by_edge
                .iter()
                .filter(|((n, _), _)| *n == node)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            tracing::info!(%node, clients = conns.len(), "edge gone: its clients leave the room");
            for (key, id) in conns {
                self.by_edge.remove(&key);
                self.edge_of.remove(&id);
                self.core.handle(t, Input::Disconnect { conn: id });
            }
        }
    }

    /// Queues a store write asked for by the core.
    pub(super) fn persist(&mut self, op: PersistOp) {
        self.pending_persist.push(op);
    }

    /// Runs `done` once everything the core has asked to persist so far is stored (the
    /// barrier is queued behind those ops at the next [`Owner::flush_persist`]).
    pub(super) fn after_persisted(&mut self, done: Box<dyn FnOnce() + Send>) {
        self.barriers.push(done);
    }

    /// Hands the queued writes, then the waiting barriers, to the persistence task.
    pub(super) fn flush_persist(&mut self) {
        if !self.pending_persist.is_empty() {
            let ops = std::mem::take(&mut self.pending_persist);
            let lost = ops.len();
            if self.persist.try_send(PersistJob::Ops(ops)).is_err() {
                tracing::error!(lost, "persistence queue full; changes not stored");
            }
        }
        for done in std::mem::take(&mut self.barriers) {
            let (tx, rx) = oneshot::channel();
            if self.persist.try_send(PersistJob::Barrier(tx)).is_err() {
                tracing::error!("persistence queue full");
            }
            tokio::spawn(async move {
                let _ = rx.await;
                done();
            });
        }
    }
}
