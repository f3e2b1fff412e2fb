//! [`Core`], the state actor's sans-IO model: rooms with their stage and viewers, sessions,
//! live publishers. It takes events, commands and the time as input and returns [`Effect`]s
//! (SFU calls, webhooks) that the actor ([`super::actor`]) performs. It never blocks or awaits.

// A sans-IO core: it takes the time as a parameter and never reads the clock (DESIGN §2).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use venue_sfu::{ParticipantId, SessionId, SfuEvent};

pub use super::effect::{Effect, PublishNotice};
use super::relays::{RelayAction, Relays};
use super::room::RoomEntry;
use super::session::{SessionInfo, SessionKind};
use super::view::{RoomView, Stats, stage_frame};
use crate::ids::{RoomId, StreamerId};
use crate::store::Room;

/// The actor's state, sans IO.
#[derive(Debug)]
pub struct Core {
    max_slots: usize,
    revision: u64,
    rooms: HashMap<RoomId, RoomEntry>,
    names: HashMap<String, RoomId>,
    sessions: HashMap<SessionId, SessionInfo>,
    /// Publisher sessions the gateway registered, per streamer, oldest first: the last is the
    /// streamer's active session, the one its stage slots and previews show.
    publishers: HashMap<StreamerId, Vec<(SessionId, ParticipantId)>>,
    /// Publisher sessions that are up (the SFU said `PublisherUp`), per streamer.
    live: HashMap<StreamerId, HashSet<SessionId>>,
    /// `PublisherUp`s that overtook the registration of their session (an RTMP bridge is up
    /// at once): applied when the session registers.
    early_up: HashSet<SessionId>,
    /// Publisher sessions announced with `Effect::PublishStarted` and not yet stopped: each
    /// gets exactly one `PublishStopped`, whichever path ends it.
    announced: HashMap<SessionId, PublishNotice>,
    /// Stage streamers live on other nodes and the relays from them (cluster mode).
    relays: Relays,
    /// Rooms whose program (LL-HLS, recording) this node composes: they need the stage's
    /// media like a viewer does.
    programs: HashSet<RoomId>,
}

impl Core {
    /// An empty core. `revision_base` seeds the frame revision (the shell uses wall-clock
    /// milliseconds so revisions keep growing across restarts).
    pub fn new(max_slots: usize, revision_base: u64) -> Core {
        Core {
            max_slots,
            revision: revision_base,
            rooms: HashMap::new(),
            names: HashMap::new(),
            sessions: HashMap::new(),
            publishers: HashMap::new(),
            live: HashMap::new(),
            early_up: HashSet::new(),
            announced: HashMap::new(),
            relays: Relays::default(),
            programs: HashSet::new(),
        }
    }

    /// Stage slots per room.
    pub fn max_slots(&self) -> usize {
        self.max_slots
    }

    /// The name of room `id`.
    pub fn room_name(&self, id: RoomId) -> Option<&str> {
        self.rooms.get(&id).map(|r| r.name.as_str())
    }

    /// The id of the room called `name`.
    pub fn room_id(&self, name: &str) -> Option<RoomId> {
        self.names.get(name).copied()
    }

    /// Adds (or replaces) a room with its stage; `slots[i]` = (streamer id, name).
    pub fn load_room(
        &mut self,
        room: &Room,
        layout: u32,
        slots: Vec<Option<(StreamerId, String)>>,
        now: Instant,
    ) -> Vec<Effect> {
        let id = room.id;
        let viewers = self
            .rooms
            .remove(&id)
            .map(|r| r.viewers)
            .unwrap_or_default();
        self.names.insert(room.name.clone(), id);
        self.rooms.insert(
            id,
            RoomEntry::new(room, layout, slots, self.max_slots, viewers),
        );
        let mut effects = vec![self.stage_effect(id)];
        effects.extend(self.push(id, now));
        effects
    }

    /// Sets a room's stage (already validated and stored).
    pub fn set_stage(
        &mut self,
        room_id: RoomId,
        layout: u32,
        slots: Vec<Option<(StreamerId, String)>>,
        now: Instant,
    ) -> Vec<Effect> {
        let max = self.max_slots;
        let Some(entry) = self.rooms.get_mut(&room_id) else {
            return Vec::new();
        };
        entry.set_stage(layout, slots, max);
        let mut effects = vec![self.stage_effect(room_id)];
        effects.extend(self.push(room_id, now));
        effects
    }

    /// Sets a room's title (already stored); pushes a new state frame.
    pub fn set_title(&mut self, room_id: RoomId, title: &str, now: Instant) -> Vec<Effect> {
        let Some(entry) = self.rooms.get_mut(&room_id) else {
            return Vec::new();
        };
        if entry.title == title {
            return Vec::new();
        }
        entry.title = title.to_owned();
        self.push(room_id, now)
    }

    /// Closes the publisher sessions of `streamer` (and with `previews` its admin previews):
    /// the streamer goes offline; a new state frame is pushed when it was live on stage. The
    /// path shared by deleting a streamer and by a booked window closing (schedule).
    pub fn close_streamer_sessions(
        &mut self,
        room_id: RoomId,
        streamer: StreamerId,
        previews: bool,
        now: Instant,
    ) -> Vec<Effect> {
        let (mut effects, was_live) = self.close_sessions(room_id, streamer, previews);
        if was_live && self.on_stage(room_id, streamer) {
            effects.extend(self.push(room_id, now));
        }
        effects
    }

    /// Removes and returns (as `Effect::Close`) the sessions of `streamer`, and the stage and
    /// preview changes that follow; whether it was live.
    fn close_sessions(
        &mut self,
        room: RoomId,
        streamer: StreamerId,
        previews: bool,
    ) -> (Vec<Effect>, bool) {
        let mut closed: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, info)| match info.kind {
                SessionKind::Publisher { streamer: s, .. } => s == streamer,
                SessionKind::Preview(s) => previews && s == streamer,
                SessionKind::Viewer | SessionKind::Relay => false,
            })
            .map(|(s, _)| *s)
            .collect();
        closed.sort_by_key(|s| s.0);
        for s in &closed {
            self.sessions.remove(s);
            self.early_up.remove(s);
        }
        let mut effects: Vec<Effect> = Vec::with_capacity(closed.len());
        for s in closed {
            effects.push(Effect::Close(s));
            effects.extend(self.unannounce(s));
        }
        let had_publisher = self
            .publishers
            .remove(&streamer)
            .is_some_and(|p| !p.is_empty());
        if had_publisher {
            effects.extend(self.active_changed(streamer));
        }
        let was_live = self.live.remove(&streamer).is_some_and(|s| !s.is_empty());
        if was_live {
            effects.push(Effect::LiveChanged {
                room,
                streamer,
                live: false,
            });
        }
        (effects, was_live)
    }

    /// A streamer was deleted: close its sessions, take it off the stage.
    pub fn remove_streamer(
        &mut self,
        room_id: RoomId,
        streamer: StreamerId,
        now: Instant,
    ) -> Vec<Effect> {
        let stage_changed = self
            .rooms
            .get_mut(&room_id)
            .is_some_and(|r| r.remove_streamer(streamer));
        let (mut effects, was_live) = self.close_sessions(room_id, streamer, true);
        if stage_changed {
            effects.push(self.stage_effect(room_id));
        }
        if stage_changed || was_live {
            effects.extend(self.push(room_id, now));
        }
        effects
    }

    /// The gateway created a session (after the SFU accepted its offer). A publisher session
    /// becomes its streamer's active one and replaces the streamer's older sessions (closed);
    /// a preview is pointed at its streamer's active session.
    pub fn session_created(
        &mut self,
        session: SessionId,
        info: SessionInfo,
        now: Instant,
    ) -> Vec<Effect> {
        let room = info.room;
        let kind = info.kind;
        let mut effects = Vec::new();
        if let SessionKind::Publisher {
            streamer, protocol, ..
        } = kind
            && !self.announced.contains_key(&session)
        {
            let notice = PublishNotice {
                room_id: room,
                room: self
                    .rooms
                    .get(&room)
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                streamer,
                session,
                protocol,
            };
            self.announced.insert(session, notice.clone());
            effects.push(Effect::PublishStarted(notice));
        }
        self.sessions.insert(session, info);
        match kind {
            SessionKind::Publisher {
                streamer,
                participant,
                ..
            } => {
                effects.extend(self.publisher_registered(room, streamer, participant, session, now))
            }
            SessionKind::Preview(_) | SessionKind::Relay => {
                if let SessionKind::Preview(streamer) = kind {
                    effects.push(Effect::Retarget(session, self.active_participant(streamer)));
                }
                // Its SubscriberUp may have come first: it is not a viewer.
                if self
                    .rooms
                    .get_mut(&room)
                    .is_some_and(|r| r.viewers.remove(&session))
                {
                    effects.extend(self.viewers_changed(room, now));
                }
            }
            // Relays for the stage open while the viewer's ICE runs.
            SessionKind::Viewer => effects.extend(self.plan_relays(now)),
        }
        effects
    }

    /// A registered publisher session of `streamer` becomes its active one: older sessions
    /// are closed, stage slots and previews follow, the room hears when it went live.
    fn publisher_registered(
        &mut self,
        room: RoomId,
        streamer: StreamerId,
        participant: ParticipantId,
        session: SessionId,
        now: Instant,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let list = self.publishers.entry(streamer).or_default();
        if list.iter().any(|(s, _)| *s == session) {
            return effects;
        }
        let older: Vec<SessionId> = list.drain(..).map(|(s, _)| s).collect();
        list.push((session, participant));
        let was_live = self.is_live_here(streamer);
        // An older session stays in `live` until the SFU reports it down, so a reconnecting
        // streamer does not flicker offline while both are up.
        for s in older {
            self.sessions.remove(&s);
            self.early_up.remove(&s);
            effects.push(Effect::Close(s));
            effects.extend(self.unannounce(s));
        }
        if self.early_up.remove(&session) {
            self.live.entry(streamer).or_default().insert(session);
        }
        effects.extend(self.active_changed(streamer));
        if was_live != self.is_live_here(streamer) {
            effects.push(Effect::LiveChanged {
                room,
                streamer,
                live: true,
            });
            if self.on_stage(room, streamer) {
                effects.extend(self.push(room, now));
            }
        }
        effects
    }

    /// Forgets an announced publisher session: its `PublishStopped`, once.
    fn unannounce(&mut self, session: SessionId) -> Option<Effect> {
        self.announced.remove(&session).map(Effect::PublishStopped)
    }

    /// The session was closed through its resource URL.
    pub fn session_closed(&mut self, session: SessionId, now: Instant) -> Vec<Effect> {
        let Some(info) = self.sessions.remove(&session) else {
            return Vec::new();
        };
        match info.kind {
            SessionKind::Publisher { streamer, .. } => {
                self.publisher_ended(info.room, streamer, session, now)
            }
            SessionKind::Viewer => self.subscriber_down(info.room, session, now),
            SessionKind::Preview(_) | SessionKind::Relay => Vec::new(),
        }
    }

    /// The session registered under `session`, if any.
    pub fn session(&self, session: SessionId) -> Option<&SessionInfo> {
        self.sessions.get(&session)
    }

    /// Applies an event of the media plane.
    pub fn on_event(&mut self, event: SfuEvent, now: Instant) -> Vec<Effect> {
        match event {
            SfuEvent::PublisherUp { room, session, .. } => {
                let room = RoomId::from(room);
                let Some(SessionKind::Publisher { streamer, .. }) =
                    self.sessions.get(&session).map(|i| i.kind)
                else {
                    // The gateway registers the session right after the SFU accepted it;
                    // an event that overtakes that is applied then.
                    self.early_up.insert(session);
                    return Vec::new();
                };
                let set = self.live.entry(streamer).or_default();
                let was_live = !set.is_empty();
                set.insert(session);
                if was_live {
                    return Vec::new();
                }
                let mut effects = vec![Effect::LiveChanged {
                    room,
                    streamer,
                    live: true,
                }];
                if self.on_stage(room, streamer) {
                    effects.extend(self.push(room, now));
                }
                effects
            }
            SfuEvent::PublisherDown { room, session, .. } => {
                self.early_up.remove(&session);
                let streamer = match self.sessions.remove(&session).map(|i| i.kind) {
                    Some(SessionKind::Publisher { streamer, .. }) => Some(streamer),
                    // A session the gateway already replaced or closed may still be live.
                    _ => self
                        .live
                        .iter()
                        .find(|(_, set)| set.contains(&session))
                        .map(|(s, _)| *s),
                };
                match streamer {
                    Some(streamer) => self.publisher_ended(room.into(), streamer, session, now),
                    None => self.unannounce(session).into_iter().collect(),
                }
            }
            SfuEvent::SubscriberUp { room, session } => {
                if matches!(
                    self.sessions.get(&session),
                    Some(SessionInfo {
                        kind: SessionKind::Preview(_) | SessionKind::Relay,
                        ..
                    })
                ) {
                    return Vec::new();
                }
                let id = RoomId::from(room);
                if self
                    .rooms
                    .get_mut(&id)
                    .is_some_and(|r| r.viewers.insert(session))
                {
                    return self.viewers_changed(id, now);
                }
                Vec::new()
            }
            SfuEvent::SubscriberDown { room, session } => {
                self.sessions.remove(&session);
                self.subscriber_down(room.into(), session, now)
            }
            SfuEvent::RelayDown { session, .. } => match self.relays.down(session, now) {
                Some(room) => vec![self.stage_effect(room)],
                None => Vec::new(),
            },
            SfuEvent::ChannelMessage {
                room,
                session,
                data,
            } => {
                tracing::trace!(room = room.0, %session, len = data.len(), "channel message ignored");
                Vec::new()
            }
            other => {
                tracing::debug!(?other, "unhandled SFU event");
                Vec::new()
            }
        }
    }

    /// Flushes viewer counts that were held back by the 1/s limit.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let due: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.due(now))
            .map(|(id, _)| *id)
            .collect();
        let mut effects: Vec<Effect> = due.into_iter().flat_map(|id| self.push(id, now)).collect();
        effects.extend(self.plan_relays(now));
        effects
    }

    /// The room called `name`.
    pub fn view(&self, name: &str) -> Option<RoomView> {
        let id = *self.names.get(name)?;
        let r = self.rooms.get(&id)?;
        Some(r.view(id, self.max_slots, |s| self.is_live(s)))
    }

    /// The publisher sessions of streamer `id` that are up (usually one; two for a moment
    /// while a new session replaces the old).
    pub fn live_sessions(&self, id: StreamerId) -> Vec<SessionId> {
        self.live
            .get(&id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The streamers of `room` with a publisher session registered on this node, sorted.
    pub fn publishing_streamers(&self, room: RoomId) -> Vec<StreamerId> {
        let mut ids: Vec<StreamerId> = self
            .sessions
            .values()
            .filter_map(|i| match i.kind {
                SessionKind::Publisher { streamer, .. } if i.room == room => Some(streamer),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether streamer `id` is live: a publisher session up on this node, or (cluster mode)
    /// on another node.
    pub fn is_live(&self, id: StreamerId) -> bool {
        self.is_live_here(id) || self.relays.owner(id).is_some()
    }

    /// Whether streamer `id` has a publisher session up on this node.
    pub fn is_live_here(&self, id: StreamerId) -> bool {
        self.live.get(&id).is_some_and(|s| !s.is_empty())
    }

    /// The streamers live on this node (cluster mode: the tracks this node owns).
    pub fn live_here(&self) -> Vec<StreamerId> {
        let mut ids: Vec<StreamerId> = self
            .live
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Each room's stage streamers (cluster mode: whose owners to look up).
    pub fn stage_streamers(&self) -> Vec<(RoomId, Vec<StreamerId>)> {
        self.rooms
            .iter()
            .map(|(id, r)| (*id, r.streamers().collect()))
            .collect()
    }

    /// Cluster mode: the owner of each stage streamer of `room` other than this node (`None`:
    /// offline elsewhere), as read from Redis. The room's slots showing those streamers, its
    /// live flags and the relays this node needs follow.
    pub fn set_owners(
        &mut self,
        room: RoomId,
        owners: Vec<(StreamerId, Option<String>)>,
        now: Instant,
    ) -> Vec<Effect> {
        let before = self.view_live(room);
        let mut changed = false;
        for (id, owner) in owners {
            changed |= self.relays.set_owner(id, owner);
        }
        if !changed {
            return Vec::new();
        }
        let mut effects = self.plan_relays(now);
        effects.push(self.stage_effect(room));
        if self.view_live(room) != before {
            effects.extend(self.push(room, now));
        }
        effects
    }

    /// The relay of `room` from `origin` opened as `session` with one participant per origin
    /// stage slot: the slots it carries show it.
    pub fn relay_opened(
        &mut self,
        room: RoomId,
        origin: String,
        session: SessionId,
        participants: Vec<ParticipantId>,
    ) -> Vec<Effect> {
        match self.relays.opened(room, origin, session, participants) {
            Some(unwanted) => vec![Effect::Close(unwanted)],
            None => vec![self.stage_effect(room)],
        }
    }

    /// This node composes `room`'s program (`running`) or stopped: a program needs the
    /// stage's media from other nodes as a viewer does.
    pub fn set_program(&mut self, room: RoomId, running: bool, now: Instant) -> Vec<Effect> {
        let changed = if running {
            self.programs.insert(room)
        } else {
            self.programs.remove(&room)
        };
        if changed {
            self.plan_relays(now)
        } else {
            Vec::new()
        }
    }

    /// Opening the relay of `room` from `origin` failed (retried while still needed).
    pub fn relay_failed(&mut self, room: RoomId, origin: String, now: Instant) {
        self.relays.failed(room, origin, now);
    }

    /// The relays to open or close now: one per (room, origin) for each room with WebRTC
    /// viewers on this node (or its program composed here) and a stage streamer live only on
    /// `origin`.
    fn plan_relays(&mut self, now: Instant) -> Vec<Effect> {
        let mut wanted = BTreeSet::new();
        for (id, r) in &self.rooms {
            if self.webrtc_viewers(*id) == 0 && !self.programs.contains(id) {
                continue;
            }
            for s in r.streamers() {
                if let Some(origin) = self.relays.owner(s)
                    && !self.is_live_here(s)
                {
                    wanted.insert((*id, origin.to_owned()));
                }
            }
        }
        self.relays
            .plan(&wanted, now)
            .into_iter()
            .map(|a| match a {
                RelayAction::Open { room, origin } => Effect::OpenRelay { room, origin },
                RelayAction::Close(session) => Effect::Close(session),
            })
            .collect()
    }

    /// The live flags of `room`'s slots.
    fn view_live(&self, room: RoomId) -> Vec<bool> {
        self.rooms
            .get(&room)
            .map_or_else(Vec::new, |r| r.live_flags(|s| self.is_live(s)))
    }

    /// The media-plane id of streamer `id`'s active publisher session (the newest the
    /// gateway registered), if it has one.
    pub fn active_participant(&self, id: StreamerId) -> Option<ParticipantId> {
        self.publishers.get(&id)?.last().map(|(_, p)| *p)
    }

    /// WebRTC viewers of room `id` for the overflow decision: its viewer sessions that the
    /// gateway registered (from the WHEP answer on, before ICE completes) together with those the
    /// SFU reported up. Admin previews are not counted. O(sessions).
    pub fn webrtc_viewers(&self, id: RoomId) -> usize {
        let registered = self
            .sessions
            .values()
            .filter(|s| s.room == id && matches!(s.kind, SessionKind::Viewer))
            .count();
        let unregistered = self.rooms.get(&id).map_or(0, |r| {
            r.viewers
                .iter()
                .filter(|s| !self.sessions.contains_key(s))
                .count()
        });
        registered + unregistered
    }

    /// Totals for metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            rooms: self.rooms.len(),
            sessions: self.sessions.len(),
            publishers_live: self.live.values().filter(|s| !s.is_empty()).count(),
            relays_in: self.relays.up(),
            relays_out: self
                .sessions
                .values()
                .filter(|s| s.kind == SessionKind::Relay)
                .count(),
            room_loads: self
                .rooms
                .iter()
                .map(|(id, r)| {
                    let media =
                        self.relays.has_media(*id) || r.streamers().any(|s| self.is_live_here(s));
                    (*id, self.webrtc_viewers(*id), media)
                })
                .collect(),
            viewers: self.rooms.values().map(|r| r.viewers.len()).sum(),
        }
    }

    fn on_stage(&self, room: RoomId, streamer: StreamerId) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|r| r.has_streamer(streamer))
    }

    /// A publisher session of `streamer` ended (SFU event or resource DELETE): its
    /// `PublishStopped`, the next active session for its slots and previews, and a new frame
    /// when the streamer went offline on stage.
    fn publisher_ended(
        &mut self,
        room: RoomId,
        streamer: StreamerId,
        session: SessionId,
        now: Instant,
    ) -> Vec<Effect> {
        let mut effects: Vec<Effect> = self.unannounce(session).into_iter().collect();
        if let Some(list) = self.publishers.get_mut(&streamer) {
            let was_active = list.last().is_some_and(|(s, _)| *s == session);
            list.retain(|(s, _)| *s != session);
            if list.is_empty() {
                self.publishers.remove(&streamer);
            }
            if was_active {
                effects.extend(self.active_changed(streamer));
            }
        }
        let Some(set) = self.live.get_mut(&streamer) else {
            return effects;
        };
        let removed = set.remove(&session);
        let now_offline = set.is_empty();
        if now_offline {
            self.live.remove(&streamer);
        }
        if removed && now_offline {
            effects.push(Effect::LiveChanged {
                room,
                streamer,
                live: false,
            });
            if self.on_stage(room, streamer) {
                effects.extend(self.push(room, now));
            }
        }
        effects
    }

    /// `streamer`'s active publisher session changed: the stages showing it and its admin
    /// previews follow (`SetStage` per room with the streamer on a slot, `Retarget` per preview).
    fn active_changed(&self, streamer: StreamerId) -> Vec<Effect> {
        let mut rooms: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.has_streamer(streamer))
            .map(|(id, _)| *id)
            .collect();
        rooms.sort();
        let mut previews: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, i)| i.kind == SessionKind::Preview(streamer))
            .map(|(s, _)| *s)
            .collect();
        previews.sort_by_key(|s| s.0);
        let active = self.active_participant(streamer);
        let mut effects: Vec<Effect> = rooms.into_iter().map(|r| self.stage_effect(r)).collect();
        effects.extend(previews.into_iter().map(|s| Effect::Retarget(s, active)));
        effects
    }

    fn subscriber_down(&mut self, room: RoomId, session: SessionId, now: Instant) -> Vec<Effect> {
        if self
            .rooms
            .get_mut(&room)
            .is_some_and(|r| r.viewers.remove(&session))
        {
            return self.viewers_changed(room, now);
        }
        Vec::new()
    }

    fn viewers_changed(&mut self, id: RoomId, now: Instant) -> Vec<Effect> {
        let Some(r) = self.rooms.get_mut(&id) else {
            return Vec::new();
        };
        if r.viewers_changed(now) {
            self.push(id, now)
        } else {
            Vec::new()
        }
    }

    fn stage_effect(&self, id: RoomId) -> Effect {
        let slots = self
            .rooms
            .get(&id)
            .map(|r| {
                r.stage(|i, s| {
                    self.active_participant(s)
                        .or_else(|| self.relays.participant(id, i, s))
                })
            })
            .unwrap_or_default();
        Effect::SetStage(id.into(), slots)
    }

    /// Encodes the room's `StageState` frame.
    fn push(&mut self, id: RoomId, now: Instant) -> Vec<Effect> {
        self.revision += 1;
        let revision = self.revision;
        let Some(view) = self.rooms.get(&id).and_then(|r| self.view(&r.name)) else {
            return Vec::new();
        };
        let frame = stage_frame(&view, revision);
        if let Some(r) = self.rooms.get_mut(&id) {
            r.pushed(now);
        }
        vec![Effect::RoomState(id.into(), frame)]
    }
}

/// A fresh media-plane id for a new publisher session (random, so ids from several nodes do
/// not collide): a streamer's sessions each have their own.
pub fn new_participant() -> ParticipantId {
    ParticipantId(rand::random())
}

#[cfg(test)]
// Tests may read the clock; the core may not.
#[allow(clippy::disallowed_methods)]
#[path = "../tests/state.rs"]
mod tests;
