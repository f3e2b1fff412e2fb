//! The seam where the gateway's actors announce things to each other: the state actor
//! (`publish.*`, sessions it ended), the schedule timer (`slot.*`), and whoever acts on them
//! (the webhook dispatcher, RTMP connections). An announcement is a typed message
//! ([`Announcement`]) published without waiting through a [`Bus`]; [`LocalBus`] carries it
//! over in-process channels. The networked bus of cluster mode
//! ([`crate::cluster::bus::RedisBus`]) implements [`Bus`] the same way and nothing else
//! changes: it carries [`Announcement::RoomChanged`] to the other nodes and tells subscribers
//! of [`Bus::room_changes`] to re-read everything ([`RoomChange::Resync`]) after a Redis
//! reconnect.
//!
//! Contract: [`Bus::publish`] never blocks or awaits; a full queue drops the message (counted
//! by the receiving side, see [`crate::webhooks::WebhookStats`], or
//! `venue_cluster_bus_dropped_total` for the Redis bus).

use std::fmt::Debug;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;
use venue_sfu::SessionId;

use crate::ids::RoomId;
use crate::webhooks::{Event, Webhooks};

/// Closed-session notices buffered per subscriber before it lags.
pub const CLOSED_CAPACITY: usize = 64;
/// Room changes buffered per subscriber before it lags (then: re-read everything).
pub const ROOM_CHANGES_CAPACITY: usize = 1024;

/// What one actor announces to the others.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// A webhook event: `publish.started` / `publish.stopped` (state actor), `slot.started` /
    /// `slot.ended` (schedule timer).
    Webhook(Event),
    /// The gateway ended this session in the media plane (a booked window closed, the
    /// streamer was deleted or replaced): the connection that owns it (RTMP) hangs up.
    SessionClosed(SessionId),
    /// A room's stored state (stage, layout, settings) changed: every node re-reads the room
    /// from the database. In single-node mode only local subscribers hear it.
    RoomChanged { room: RoomId },
}

/// What subscribers of [`Bus::room_changes`] receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomChange {
    /// Re-read this room from the database.
    Room(RoomId),
    /// Messages may have been lost (a Redis reconnect, or this receiver lagged): re-read
    /// every room.
    Resync,
}

/// Carries [`Announcement`]s between the gateway's actors. Cheap to share (`Arc<dyn Bus>`).
pub trait Bus: Send + Sync + Debug + 'static {
    /// Publishes `announcement`; never waits.
    fn publish(&self, announcement: Announcement);
    /// Whether anyone receives webhook announcements (emitters skip building them otherwise).
    fn wants_webhooks(&self) -> bool;
    /// The [`Announcement::SessionClosed`] sessions from now on. On
    /// `RecvError::Lagged` ask the state actor whether a session still exists.
    fn closed_sessions(&self) -> broadcast::Receiver<SessionId>;
    /// [`RoomChange`]s from now on: rooms changed on this node or (cluster mode) another one.
    /// On `RecvError::Lagged` treat it as [`RoomChange::Resync`].
    fn room_changes(&self) -> broadcast::Receiver<RoomChange>;
    /// Claims `key` once, cluster-wide: resolves `true` on exactly one node per key (always
    /// `true` in single-node mode). For announcements every node computes but that must go
    /// out once, such as the slot webhooks (each node's schedule timer sees the same edges).
    fn claim_once(&self, key: String) -> BoxFuture<'static, bool>;
}

/// The in-process bus: webhook events go into the [`Webhooks`] queue, closed sessions to a
/// `broadcast` channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    webhooks: Webhooks,
    closed: broadcast::Sender<SessionId>,
    rooms: broadcast::Sender<RoomChange>,
}

impl LocalBus {
    /// A bus delivering webhook events to `webhooks`.
    pub fn new(webhooks: Webhooks) -> LocalBus {
        let (closed, _) = broadcast::channel(CLOSED_CAPACITY);
        let (rooms, _) = broadcast::channel(ROOM_CHANGES_CAPACITY);
        LocalBus {
            webhooks,
            closed,
            rooms,
        }
    }

    /// [`LocalBus::new`] behind the [`Bus`] trait.
    pub fn shared(webhooks: Webhooks) -> Arc<dyn Bus> {
        Arc::new(LocalBus::new(webhooks))
    }
}

impl Bus for LocalBus {
    fn publish(&self, announcement: Announcement) {
        match announcement {
            Announcement::Webhook(event) => self.webhooks.emit(event),
            Announcement::SessionClosed(session) => {
                // No subscriber (no RTMP connection) is not an error.
                let _ = self.closed.send(session);
            }
            Announcement::RoomChanged { room } => self.room_changed(RoomChange::Room(room)),
        }
    }

    fn wants_webhooks(&self) -> bool {
        self.webhooks.enabled()
    }

    fn closed_sessions(&self) -> broadcast::Receiver<SessionId> {
        self.closed.subscribe()
    }

    fn claim_once(&self, _key: String) -> BoxFuture<'static, bool> {
        Box::pin(std::future::ready(true))
    }

    fn room_changes(&self) -> broadcast::Receiver<RoomChange> {
        self.rooms.subscribe()
    }
}

impl LocalBus {
    /// Tells this process's [`Bus::room_changes`] subscribers (none is not an error).
    pub fn room_changed(&self, change: RoomChange) {
        let _ = self.rooms.send(change);
    }
}
