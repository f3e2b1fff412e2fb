//! The seam where the gateway's actors announce things to each other: the state actor
//! (`publish.*`, sessions it ended), the schedule timer (`slot.*`), and whoever acts on them
//! (the webhook dispatcher, RTMP connections). An announcement is a typed message
//! ([`Announcement`]) published without waiting through a [`Bus`]; [`LocalBus`] carries it
//! over in-process channels. A networked bus (cluster mode) implements [`Bus`] the same way
//! and nothing else changes.
//!
//! Contract: [`Bus::publish`] never blocks or awaits; a full queue drops the message (counted
//! by the receiving side, see [`crate::webhooks::WebhookStats`]).

use std::fmt::Debug;
use std::sync::Arc;

use tokio::sync::broadcast;
use venue_sfu::SessionId;

use crate::webhooks::{Event, Webhooks};

/// Closed-session notices buffered per subscriber before it lags.
pub const CLOSED_CAPACITY: usize = 64;

/// What one actor announces to the others.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// A webhook event: `publish.started` / `publish.stopped` (state actor), `slot.started` /
    /// `slot.ended` (schedule timer).
    Webhook(Event),
    /// The gateway ended this session in the media plane (a booked window closed, the
    /// streamer was deleted or replaced): the connection that owns it (RTMP) hangs up.
    SessionClosed(SessionId),
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
}

/// The in-process bus: webhook events go into the [`Webhooks`] queue, closed sessions to a
/// `broadcast` channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    webhooks: Webhooks,
    closed: broadcast::Sender<SessionId>,
}

impl LocalBus {
    /// A bus delivering webhook events to `webhooks`.
    pub fn new(webhooks: Webhooks) -> LocalBus {
        let (closed, _) = broadcast::channel(CLOSED_CAPACITY);
        LocalBus { webhooks, closed }
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
        }
    }

    fn wants_webhooks(&self) -> bool {
        self.webhooks.enabled()
    }

    fn closed_sessions(&self) -> broadcast::Receiver<SessionId> {
        self.closed.subscribe()
    }
}
