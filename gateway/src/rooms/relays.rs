//! The edge side of origin → edge relays, sans IO (issue 11 item 4; part of [`super::Core`]).
//!
//! In cluster mode a stage streamer may be live on another node (its *origin*, the owner of
//! its tracks, [`crate::cluster::tracks`]). [`Relays`] keeps who owns which remote streamer
//! and one relay per (room, origin) that this node's viewers need:
//! - [`Relays::plan`] takes the (room, origin) pairs wanted now and says which relays to open
//!   and which to close: a relay no longer wanted is closed after [`RELAY_IDLE`] (a viewer
//!   rejoining within that time finds it still open); a failed one is retried after
//!   [`RELAY_RETRY`].
//! - An open relay carries, per origin stage slot i, one participant (`participants[i]`);
//!   since the stage is the same on every node, this node's slot i shows that participant
//!   when its streamer is owned by the relay's origin ([`Relays::participant`]). A stage switch
//!   on the origin switches the relay's stream there, so this node's viewers switch without a
//!   renegotiation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use venue_sfu::{ParticipantId, SessionId};

use crate::ids::{RoomId, StreamerId};

/// How long a relay stays open after its last viewer left.
pub const RELAY_IDLE: Duration = Duration::from_secs(60);
/// Wait before retrying a relay that failed to open or went down.
pub const RELAY_RETRY: Duration = Duration::from_secs(2);

/// A relay to open or close (the core turns them into effects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAction {
    Open { room: RoomId, origin: String },
    Close(SessionId),
}

#[derive(Debug)]
enum State {
    /// The offer is out; waiting for [`Relays::opened`] / [`Relays::failed`].
    Opening,
    Up {
        session: SessionId,
        participants: Vec<ParticipantId>,
    },
    Failed {
        retry_at: Instant,
    },
}

#[derive(Debug)]
struct Relay {
    state: State,
    /// Since when nobody wants this relay.
    idle_since: Option<Instant>,
}

/// Remote owners and relays of one node. See the module docs.
#[derive(Debug, Default)]
pub struct Relays {
    /// Streamers live on another node → that node's id.
    remote: HashMap<StreamerId, String>,
    relays: BTreeMap<(RoomId, String), Relay>,
}

impl Relays {
    /// Records streamer `id`'s owner on another node (`None`: not live elsewhere). Returns
    /// whether it changed.
    pub fn set_owner(&mut self, id: StreamerId, owner: Option<String>) -> bool {
        match owner {
            Some(o) => self.remote.insert(id, o.clone()).is_none_or(|old| old != o),
            None => self.remote.remove(&id).is_some(),
        }
    }

    /// The other node streamer `id` is live on.
    pub fn owner(&self, id: StreamerId) -> Option<&str> {
        self.remote.get(&id).map(String::as_str)
    }

    /// The participant showing stage slot `slot` of `room` when its streamer `id` is live on
    /// another node whose relay to this node is open.
    pub fn participant(&self, room: RoomId, slot: usize, id: StreamerId) -> Option<ParticipantId> {
        let origin = self.remote.get(&id)?;
        match &self.relays.get(&(room, origin.clone()))?.state {
            State::Up { participants, .. } => participants.get(slot).copied(),
            _ => None,
        }
    }

    /// Relays to open and close now, given the (room, origin) pairs this node's viewers
    /// need (`wanted`).
    pub fn plan(&mut self, wanted: &BTreeSet<(RoomId, String)>, now: Instant) -> Vec<RelayAction> {
        let mut actions = Vec::new();
        for key in wanted {
            let relay = self.relays.entry(key.clone()).or_insert_with(|| {
                actions.push(RelayAction::Open {
                    room: key.0,
                    origin: key.1.clone(),
                });
                Relay {
                    state: State::Opening,
                    idle_since: None,
                }
            });
            relay.idle_since = None;
            if let State::Failed { retry_at } = relay.state
                && now >= retry_at
            {
                relay.state = State::Opening;
                actions.push(RelayAction::Open {
                    room: key.0,
                    origin: key.1.clone(),
                });
            }
        }
        let mut closed = Vec::new();
        for (key, relay) in &mut self.relays {
            if wanted.contains(key) {
                continue;
            }
            let since = *relay.idle_since.get_or_insert(now);
            let give_up = matches!(relay.state, State::Failed { .. });
            if give_up || now.duration_since(since) >= RELAY_IDLE {
                closed.push(key.clone());
            }
        }
        for key in closed {
            if let Some(Relay {
                state: State::Up { session, .. },
                ..
            }) = self.relays.remove(&key)
            {
                actions.push(RelayAction::Close(session));
            }
            // An `Opening` one is closed when its answer comes back (`opened` finds no entry).
        }
        actions
    }

    /// The relay (room, origin) is up as `session` with `participants`. `Some(session)` when
    /// nobody wants it any more: close it.
    pub fn opened(
        &mut self,
        room: RoomId,
        origin: String,
        session: SessionId,
        participants: Vec<ParticipantId>,
    ) -> Option<SessionId> {
        match self.relays.get_mut(&(room, origin)) {
            Some(relay) if matches!(relay.state, State::Opening) => {
                relay.state = State::Up {
                    session,
                    participants,
                };
                None
            }
            _ => Some(session),
        }
    }

    /// Opening the relay (room, origin) failed: retried after [`RELAY_RETRY`] if still wanted.
    pub fn failed(&mut self, room: RoomId, origin: String, now: Instant) {
        if let Some(relay) = self.relays.get_mut(&(room, origin)) {
            relay.state = State::Failed {
                retry_at: now + RELAY_RETRY,
            };
        }
    }

    /// Relay `session` went down (the SFU's `RelayDown`): its room, if it was one of ours.
    pub fn down(&mut self, session: SessionId, now: Instant) -> Option<RoomId> {
        let (key, relay) = self
            .relays
            .iter_mut()
            .find(|(_, r)| matches!(r.state, State::Up { session: s, .. } if s == session))?;
        relay.state = State::Failed {
            retry_at: now + RELAY_RETRY,
        };
        Some(key.0)
    }

    /// Whether a relay of `room` is up.
    pub fn has_media(&self, room: RoomId) -> bool {
        self.relays
            .iter()
            .any(|((r, _), relay)| *r == room && matches!(relay.state, State::Up { .. }))
    }

    /// Relays up now.
    pub fn up(&self) -> usize {
        self.relays
            .values()
            .filter(|r| matches!(r.state, State::Up { .. }))
            .count()
    }
}
