//! Live room state: who is on stage, who is live, how many viewers, which WHIP/WHEP sessions
//! exist. Owned by one actor task; HTTP handlers talk to it through [`StateHandle`]
//! (bounded `mpsc` + `oneshot`), the SFU through its [`SfuEvent`] stream.
//!
//! Contract:
//! - [`Core`] is sans-IO: it takes events, commands and the time as input and returns
//!   [`Effect`]s (SFU calls) that the shell ([`run`]) performs. It never blocks or awaits.
//! - Live-ness is keyed by session: a streamer is live while at least one of its publisher
//!   sessions is up, so the `PublisherDown` of a replaced session does not mark the streamer
//!   offline while its new session is up.
//! - Every change of stage, title or live state pushes a new `StageState` frame to the room
//!   (via `SfuHandle::set_room_state`) at once; viewer-count changes at most once per second.
//! - Stage writes go through the actor, so store, SFU and frames see them in one order.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use venue_proto::v1;
use venue_sfu::{ParticipantId, RoomId, SessionId, SfuEvent, SfuHandle};

use crate::error::ApiError;
use crate::hub::shell::{HubDeps, HubHandle};
use crate::store::{Room, Stage, Store};
use crate::webhooks::{Event, PublishData, Webhooks};

/// Shortest interval between two frames caused by viewer-count changes alone.
pub const VIEWER_COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// How a publisher reaches the server (`"whip"` / `"rtmp"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// WebRTC-HTTP ingest (RFC 9725), from a browser or OBS.
    Whip,
    /// RTMP ingest (`rtmp://host/live/<stream key>`), bridged into the SFU.
    Rtmp,
}

/// What kind of session a WHIP/WHEP resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A publisher of this streamer, over this protocol (a WHIP resource or an RTMP bridge).
    Publisher(ParticipantId, Protocol),
    /// A WHEP viewer of the room's stage.
    Viewer,
    /// An admin's live preview of one streamer (not counted as a viewer).
    Preview(ParticipantId),
}

/// A session the gateway created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub room: RoomId,
    pub kind: SessionKind,
    /// The strong ETag (with quotes) handed out in the 201.
    pub etag: String,
}

/// One stage slot as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotView {
    pub index: u32,
    pub streamer_id: Option<i64>,
    pub name: Option<String>,
    pub live: bool,
}

/// A room as shown to clients (`GET /api/rooms/{room}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub title: String,
    pub layout: u32,
    pub max_slots: usize,
    /// Always `max_slots` long.
    pub slots: Vec<SlotView>,
    pub viewer_count: usize,
}

/// Totals for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub rooms: usize,
    pub sessions: usize,
    pub publishers_live: usize,
    pub viewers: usize,
}

/// A publisher session that started or stopped (for webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishNotice {
    pub room_id: i64,
    /// The room's name ("" if the room is unknown).
    pub room: String,
    pub streamer: i64,
    pub session: SessionId,
    pub protocol: Protocol,
}

/// An SFU call (or a webhook) the shell must make.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    SetStage(RoomId, Vec<Option<ParticipantId>>),
    RoomState(RoomId, Bytes),
    Close(SessionId),
    /// A publisher session was registered: `publish.started`.
    PublishStarted(PublishNotice),
    /// A registered publisher session ended: `publish.stopped`.
    PublishStopped(PublishNotice),
}

#[derive(Debug)]
struct RoomEntry {
    name: String,
    title: String,
    layout: u32,
    /// `max_slots` long: (streamer id, name).
    slots: Vec<Option<(i64, String)>>,
    viewers: HashSet<SessionId>,
    last_push: Option<Instant>,
    viewers_dirty: bool,
}

/// The actor's state, sans IO.
#[derive(Debug)]
pub struct Core {
    max_slots: usize,
    revision: u64,
    rooms: HashMap<i64, RoomEntry>,
    names: HashMap<String, i64>,
    sessions: HashMap<SessionId, SessionInfo>,
    /// Publisher sessions that are up, per streamer.
    live: HashMap<ParticipantId, HashSet<SessionId>>,
    /// Publisher sessions announced with `Effect::PublishStarted` and not yet stopped: each
    /// gets exactly one `PublishStopped`, whichever path ends it.
    announced: HashMap<SessionId, PublishNotice>,
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
            live: HashMap::new(),
            announced: HashMap::new(),
        }
    }

    /// Adds (or replaces) a room with its stage; `slots[i]` = (streamer id, name).
    pub fn load_room(
        &mut self,
        room: &Room,
        layout: u32,
        slots: Vec<Option<(i64, String)>>,
        now: Instant,
    ) -> Vec<Effect> {
        let mut slots = slots;
        slots.resize(self.max_slots, None);
        let viewers = self
            .rooms
            .remove(&room.id)
            .map(|r| r.viewers)
            .unwrap_or_default();
        self.names.insert(room.name.clone(), room.id);
        self.rooms.insert(
            room.id,
            RoomEntry {
                name: room.name.clone(),
                title: room.title.clone(),
                layout,
                slots,
                viewers,
                last_push: None,
                viewers_dirty: false,
            },
        );
        let mut effects = vec![self.stage_effect(room.id)];
        effects.extend(self.push(room.id, now));
        effects
    }

    /// Sets a room's stage (already validated and stored).
    pub fn set_stage(
        &mut self,
        room_id: i64,
        layout: u32,
        slots: Vec<Option<(i64, String)>>,
        now: Instant,
    ) -> Vec<Effect> {
        let max = self.max_slots;
        let Some(entry) = self.rooms.get_mut(&room_id) else {
            return Vec::new();
        };
        entry.layout = layout;
        entry.slots = slots;
        entry.slots.resize(max, None);
        let mut effects = vec![self.stage_effect(room_id)];
        effects.extend(self.push(room_id, now));
        effects
    }

    /// Sets a room's title (already stored); pushes a new state frame.
    pub fn set_title(&mut self, room_id: i64, title: &str, now: Instant) -> Vec<Effect> {
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
        room_id: i64,
        streamer: i64,
        previews: bool,
        now: Instant,
    ) -> Vec<Effect> {
        let (mut effects, was_live) = self.close_sessions(streamer, previews);
        if was_live && self.on_stage(RoomId(room_id as u64), participant(streamer)) {
            effects.extend(self.push(room_id, now));
        }
        effects
    }

    /// Removes and returns (as `Effect::Close`) the sessions of `streamer`; whether it was live.
    fn close_sessions(&mut self, streamer: i64, previews: bool) -> (Vec<Effect>, bool) {
        let participant = participant(streamer);
        let mut closed: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, info)| match info.kind {
                SessionKind::Publisher(p, _) => p == participant,
                SessionKind::Preview(p) => previews && p == participant,
                SessionKind::Viewer => false,
            })
            .map(|(s, _)| *s)
            .collect();
        closed.sort_by_key(|s| s.0);
        for s in &closed {
            self.sessions.remove(s);
        }
        let mut effects: Vec<Effect> = Vec::with_capacity(closed.len());
        for s in closed {
            effects.push(Effect::Close(s));
            effects.extend(self.unannounce(s));
        }
        let was_live = self
            .live
            .remove(&participant)
            .is_some_and(|s| !s.is_empty());
        (effects, was_live)
    }

    /// A streamer was deleted: close its sessions, take it off the stage.
    pub fn remove_streamer(&mut self, room_id: i64, streamer: i64, now: Instant) -> Vec<Effect> {
        let (mut effects, was_live) = self.close_sessions(streamer, true);
        let mut stage_changed = false;
        if let Some(entry) = self.rooms.get_mut(&room_id) {
            for slot in entry.slots.iter_mut() {
                if slot.as_ref().is_some_and(|(id, _)| *id == streamer) {
                    *slot = None;
                    stage_changed = true;
                }
            }
        }
        if stage_changed {
            effects.push(self.stage_effect(room_id));
        }
        if stage_changed || was_live {
            effects.extend(self.push(room_id, now));
        }
        effects
    }

    /// The gateway created a session (after the SFU accepted its offer).
    pub fn session_created(
        &mut self,
        session: SessionId,
        info: SessionInfo,
        now: Instant,
    ) -> Vec<Effect> {
        let room = info.room;
        let preview = matches!(info.kind, SessionKind::Preview(_));
        let mut effects = Vec::new();
        if let SessionKind::Publisher(p, protocol) = info.kind
            && !self.announced.contains_key(&session)
        {
            let notice = PublishNotice {
                room_id: room.0 as i64,
                room: self
                    .rooms
                    .get(&(room.0 as i64))
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                streamer: p.0 as i64,
                session,
                protocol,
            };
            self.announced.insert(session, notice.clone());
            effects.push(Effect::PublishStarted(notice));
        }
        self.sessions.insert(session, info);
        // A preview's SubscriberUp may have come first: it is not a viewer.
        if preview
            && self
                .rooms
                .get_mut(&(room.0 as i64))
                .is_some_and(|r| r.viewers.remove(&session))
        {
            effects.extend(self.viewers_changed(room.0 as i64, now));
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
            SessionKind::Publisher(p, _) => {
                let mut effects: Vec<Effect> = self.unannounce(session).into_iter().collect();
                effects.extend(self.publisher_down(info.room, p, session, now));
                effects
            }
            SessionKind::Viewer => self.subscriber_down(info.room, session, now),
            SessionKind::Preview(_) => Vec::new(),
        }
    }

    /// The session registered under `session`, if any.
    pub fn session(&self, session: SessionId) -> Option<&SessionInfo> {
        self.sessions.get(&session)
    }

    /// Applies an event of the media plane.
    pub fn on_event(&mut self, event: SfuEvent, now: Instant) -> Vec<Effect> {
        match event {
            SfuEvent::PublisherUp {
                room,
                participant,
                session,
            } => {
                // The gateway registers the session (with its protocol) right after the SFU
                // accepted it; this placeholder only covers an event that overtakes that.
                self.sessions.entry(session).or_insert_with(|| SessionInfo {
                    room,
                    kind: SessionKind::Publisher(participant, Protocol::Whip),
                    etag: String::new(),
                });
                let set = self.live.entry(participant).or_default();
                let was_live = !set.is_empty();
                set.insert(session);
                if !was_live && self.on_stage(room, participant) {
                    return self.push(room.0 as i64, now);
                }
                Vec::new()
            }
            SfuEvent::PublisherDown {
                room,
                participant,
                session,
            } => {
                self.sessions.remove(&session);
                let mut effects: Vec<Effect> = self.unannounce(session).into_iter().collect();
                effects.extend(self.publisher_down(room, participant, session, now));
                effects
            }
            SfuEvent::SubscriberUp { room, session } => {
                if matches!(
                    self.sessions.get(&session),
                    Some(SessionInfo {
                        kind: SessionKind::Preview(_),
                        ..
                    })
                ) {
                    return Vec::new();
                }
                let id = room.0 as i64;
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
                self.subscriber_down(room, session, now)
            }
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
        let due: Vec<i64> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                r.viewers_dirty
                    && r.last_push
                        .is_none_or(|t| now.duration_since(t) >= VIEWER_COUNT_INTERVAL)
            })
            .map(|(id, _)| *id)
            .collect();
        due.into_iter().flat_map(|id| self.push(id, now)).collect()
    }

    /// The room called `name`.
    pub fn view(&self, name: &str) -> Option<RoomView> {
        let id = *self.names.get(name)?;
        let r = self.rooms.get(&id)?;
        Some(RoomView {
            id,
            name: r.name.clone(),
            title: r.title.clone(),
            layout: r.layout,
            max_slots: self.max_slots,
            slots: r
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| SlotView {
                    index: i as u32,
                    streamer_id: s.as_ref().map(|(id, _)| *id),
                    name: s.as_ref().map(|(_, n)| n.clone()),
                    live: s.as_ref().is_some_and(|(id, _)| self.is_live(*id)),
                })
                .collect(),
            viewer_count: r.viewers.len(),
        })
    }

    /// The publisher sessions of streamer `id` that are up (usually one; two for a moment
    /// while a new session replaces the old).
    pub fn live_sessions(&self, id: i64) -> Vec<SessionId> {
        self.live
            .get(&participant(id))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether streamer `id` has a publisher session up.
    pub fn is_live(&self, id: i64) -> bool {
        self.live
            .get(&participant(id))
            .is_some_and(|s| !s.is_empty())
    }

    /// WebRTC viewers of room `id` for the overflow decision: its viewer sessions that the
    /// gateway registered (from the WHEP answer on, before ICE completes) together with those the
    /// SFU reported up. Admin previews are not counted. O(sessions).
    pub fn webrtc_viewers(&self, id: i64) -> usize {
        let registered = self
            .sessions
            .values()
            .filter(|s| s.room.0 as i64 == id && matches!(s.kind, SessionKind::Viewer))
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
            viewers: self.rooms.values().map(|r| r.viewers.len()).sum(),
        }
    }

    fn on_stage(&self, room: RoomId, p: ParticipantId) -> bool {
        self.rooms.get(&(room.0 as i64)).is_some_and(|r| {
            r.slots
                .iter()
                .flatten()
                .any(|(id, _)| participant(*id) == p)
        })
    }

    fn publisher_down(
        &mut self,
        room: RoomId,
        p: ParticipantId,
        session: SessionId,
        now: Instant,
    ) -> Vec<Effect> {
        let Some(set) = self.live.get_mut(&p) else {
            return Vec::new();
        };
        let removed = set.remove(&session);
        let now_offline = set.is_empty();
        if now_offline {
            self.live.remove(&p);
        }
        if removed && now_offline && self.on_stage(room, p) {
            return self.push(room.0 as i64, now);
        }
        Vec::new()
    }

    fn subscriber_down(&mut self, room: RoomId, session: SessionId, now: Instant) -> Vec<Effect> {
        let id = room.0 as i64;
        if self
            .rooms
            .get_mut(&id)
            .is_some_and(|r| r.viewers.remove(&session))
        {
            return self.viewers_changed(id, now);
        }
        Vec::new()
    }

    fn viewers_changed(&mut self, id: i64, now: Instant) -> Vec<Effect> {
        let Some(r) = self.rooms.get_mut(&id) else {
            return Vec::new();
        };
        if r.last_push
            .is_none_or(|t| now.duration_since(t) >= VIEWER_COUNT_INTERVAL)
        {
            self.push(id, now)
        } else {
            r.viewers_dirty = true;
            Vec::new()
        }
    }

    fn stage_effect(&self, id: i64) -> Effect {
        let slots = self
            .rooms
            .get(&id)
            .map(|r| {
                r.slots
                    .iter()
                    .map(|s| s.as_ref().map(|(id, _)| participant(*id)))
                    .collect()
            })
            .unwrap_or_default();
        Effect::SetStage(RoomId(id as u64), slots)
    }

    /// Encodes the room's `StageState` frame.
    fn push(&mut self, id: i64, now: Instant) -> Vec<Effect> {
        self.revision += 1;
        let revision = self.revision;
        let Some(view) = self.rooms.get(&id).and_then(|r| self.view(&r.name)) else {
            return Vec::new();
        };
        let frame = stage_frame(&view, revision);
        if let Some(r) = self.rooms.get_mut(&id) {
            r.last_push = Some(now);
            r.viewers_dirty = false;
        }
        vec![Effect::RoomState(RoomId(id as u64), frame)]
    }
}

/// The `ServerMessage::Stage` frame of a room view.
pub fn stage_frame(view: &RoomView, revision: u64) -> Bytes {
    let msg = v1::ServerMessage {
        body: Some(v1::server_message::Body::Stage(v1::StageState {
            title: view.title.clone(),
            layout: view.layout,
            slots: view
                .slots
                .iter()
                .map(|s| v1::StageSlot {
                    index: s.index,
                    streamer_id: s.streamer_id.map(|id| id as u64).unwrap_or(0),
                    name: s.name.clone().unwrap_or_default(),
                    live: s.live,
                })
                .collect(),
            revision,
            viewer_count: u32::try_from(view.viewer_count).unwrap_or(u32::MAX),
        })),
    };
    Bytes::from(venue_proto::encode_server(&msg))
}

/// A streamer's participant id in the SFU.
pub fn participant(streamer: i64) -> ParticipantId {
    ParticipantId(streamer as u64)
}

enum Command {
    SessionCreated {
        session: SessionId,
        info: SessionInfo,
    },
    SessionClosed {
        session: SessionId,
    },
    Session {
        session: SessionId,
        reply: oneshot::Sender<Option<SessionInfo>>,
    },
    CreateRoom {
        name: String,
        title: Option<String>,
        reply: oneshot::Sender<Result<Room, ApiError>>,
    },
    PutStage {
        room_id: i64,
        stage: Stage,
        reply: oneshot::Sender<Result<RoomView, ApiError>>,
    },
    DeleteStreamer {
        room_id: i64,
        id: i64,
        reply: oneshot::Sender<Result<bool, ApiError>>,
    },
    View {
        name: String,
        reply: oneshot::Sender<Option<RoomView>>,
    },
    Live {
        ids: Vec<i64>,
        reply: oneshot::Sender<Vec<bool>>,
    },
    LiveSessions {
        ids: Vec<i64>,
        reply: oneshot::Sender<Vec<Vec<SessionId>>>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    WebrtcViewers {
        room_id: i64,
        reply: oneshot::Sender<usize>,
    },
    Hub {
        name: String,
        reply: oneshot::Sender<Option<(i64, HubHandle)>>,
    },
    SetTitle {
        room_id: i64,
        title: String,
        reply: oneshot::Sender<()>,
    },
    Hubs {
        reply: oneshot::Sender<Vec<HubHandle>>,
    },
    ClosePublishers {
        streamers: Vec<(i64, i64)>,
        reply: oneshot::Sender<usize>,
    },
}

/// Cloneable handle to the state actor.
#[derive(Clone, Debug)]
pub struct StateHandle {
    tx: mpsc::Sender<Command>,
    closed: broadcast::Sender<SessionId>,
}

/// A [`StateHandle`] that does not keep the actor running (background tasks).
#[derive(Clone, Debug)]
pub struct WeakStateHandle {
    tx: mpsc::WeakSender<Command>,
    closed: broadcast::Sender<SessionId>,
}

impl WeakStateHandle {
    /// The handle, while the actor runs.
    pub fn upgrade(&self) -> Option<StateHandle> {
        self.tx.upgrade().map(|tx| StateHandle {
            tx,
            closed: self.closed.clone(),
        })
    }
}

fn stopped() -> ApiError {
    ApiError::Internal("state actor stopped".into())
}

impl StateHandle {
    /// A weak handle.
    pub fn downgrade(&self) -> WeakStateHandle {
        WeakStateHandle {
            tx: self.tx.downgrade(),
            closed: self.closed.clone(),
        }
    }

    /// Sessions the gateway ends (a booked window closed, the streamer was deleted or replaced)
    /// as they are closed in the media plane: lets a connection that owns a session (RTMP)
    /// hang up at once instead of polling. Subscribe before creating the session; on
    /// `RecvError::Lagged` check [`StateHandle::session`].
    pub fn closed_sessions(&self) -> broadcast::Receiver<SessionId> {
        self.closed.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Registers a session the SFU accepted.
    pub async fn session_created(
        &self,
        session: SessionId,
        info: SessionInfo,
    ) -> Result<(), ApiError> {
        self.tx
            .send(Command::SessionCreated { session, info })
            .await
            .map_err(|_| stopped())
    }

    /// Forgets a session closed through its resource URL.
    pub async fn session_closed(&self, session: SessionId) -> Result<(), ApiError> {
        self.tx
            .send(Command::SessionClosed { session })
            .await
            .map_err(|_| stopped())
    }

    /// The session registered under `session`.
    pub async fn session(&self, session: SessionId) -> Result<Option<SessionInfo>, ApiError> {
        self.ask(|reply| Command::Session { session, reply }).await
    }

    /// Creates a room (store, SFU, frame). Errors: 400 bad name, 409 taken.
    pub async fn create_room(&self, name: String, title: Option<String>) -> Result<Room, ApiError> {
        self.ask(|reply| Command::CreateRoom { name, title, reply })
            .await?
    }

    /// Validates, stores and applies a room's stage. Errors: 400 with the reason.
    pub async fn put_stage(&self, room_id: i64, stage: Stage) -> Result<RoomView, ApiError> {
        self.ask(|reply| Command::PutStage {
            room_id,
            stage,
            reply,
        })
        .await?
    }

    /// Deletes a streamer, closing its sessions and emptying its slots. `false`: no such streamer.
    pub async fn delete_streamer(&self, room_id: i64, id: i64) -> Result<bool, ApiError> {
        self.ask(|reply| Command::DeleteStreamer { room_id, id, reply })
            .await?
    }

    /// The room called `name`.
    pub async fn view(&self, name: &str) -> Result<Option<RoomView>, ApiError> {
        let name = name.to_owned();
        self.ask(|reply| Command::View { name, reply }).await
    }

    /// Live state of each streamer id, in order.
    pub async fn live(&self, ids: Vec<i64>) -> Result<Vec<bool>, ApiError> {
        self.ask(|reply| Command::Live { ids, reply }).await
    }

    /// The live publisher sessions of each streamer id, in order (empty when offline).
    pub async fn live_sessions(&self, ids: Vec<i64>) -> Result<Vec<Vec<SessionId>>, ApiError> {
        self.ask(|reply| Command::LiveSessions { ids, reply }).await
    }

    /// WebRTC viewers of room `room_id` (see [`Core::webrtc_viewers`]).
    pub async fn webrtc_viewers(&self, room_id: i64) -> Result<usize, ApiError> {
        self.ask(|reply| Command::WebrtcViewers { room_id, reply })
            .await
    }

    /// Totals for metrics.
    pub async fn stats(&self) -> Result<Stats, ApiError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// The interaction hub of the room called `name`.
    pub async fn hub(&self, name: &str) -> Result<Option<HubHandle>, ApiError> {
        Ok(self.room_hub(name).await?.map(|(_, hub)| hub))
    }

    /// The store id and interaction hub of the room called `name`.
    pub async fn room_hub(&self, name: &str) -> Result<Option<(i64, HubHandle)>, ApiError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Hub { name, reply }).await
    }

    /// A room's title changed (already stored by the settings): updates the stage frame.
    pub async fn set_title(&self, room_id: i64, title: String) -> Result<(), ApiError> {
        self.ask(|reply| Command::SetTitle {
            room_id,
            title,
            reply,
        })
        .await
    }

    /// Closes every publisher session of each `(room id, streamer id)` (a booked window
    /// closed); returns how many sessions were closed.
    pub async fn close_publishers(&self, streamers: Vec<(i64, i64)>) -> Result<usize, ApiError> {
        self.ask(|reply| Command::ClosePublishers { streamers, reply })
            .await
    }

    /// Every room's hub (metrics).
    pub async fn hubs(&self) -> Result<Vec<HubHandle>, ApiError> {
        self.ask(|reply| Command::Hubs { reply }).await
    }
}

struct Shell {
    core: Core,
    store: Store,
    sfu: SfuHandle,
    hub_deps: HubDeps,
    /// Interaction hub of each room, by store id.
    hubs: HashMap<i64, HubHandle>,
    /// `publish.*` webhooks.
    webhooks: Webhooks,
    /// Streamer name of each announced publisher session (a deleted streamer's
    /// `publish.stopped` still carries it).
    publisher_names: HashMap<SessionId, String>,
    /// Sessions closed by the gateway ([`StateHandle::closed_sessions`]).
    closed: broadcast::Sender<SessionId>,
}

impl Shell {
    /// Emits `publish.started` / `publish.stopped` (never waits on the delivery).
    async fn publish_webhook(&mut self, started: bool, notice: PublishNotice) {
        if !self.webhooks.enabled() {
            return;
        }
        let name = if started {
            None
        } else {
            self.publisher_names.remove(&notice.session)
        };
        let name = match name {
            Some(name) => name,
            None => match self.store.streamer(notice.room_id, notice.streamer).await {
                Ok(Some(s)) => s.name,
                Ok(None) => String::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "streamer name for a webhook");
                    String::new()
                }
            },
        };
        if started {
            self.publisher_names.insert(notice.session, name.clone());
        }
        self.webhooks.emit(Event::publish(
            started,
            notice.room,
            PublishData {
                streamer_id: notice.streamer,
                streamer_name: name,
                session_id: notice.session.to_string(),
                protocol: notice.protocol,
            },
            chrono::Utc::now(),
        ));
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            let result = match effect {
                Effect::PublishStarted(notice) => {
                    self.publish_webhook(true, notice).await;
                    Ok(())
                }
                Effect::PublishStopped(notice) => {
                    self.publish_webhook(false, notice).await;
                    Ok(())
                }
                Effect::SetStage(room, slots) => self.sfu.set_stage(room, slots).await,
                Effect::RoomState(room, frame) => {
                    // The hub sends the stage as `Event.stage` to its clients (WebSocket ones
                    // have no other way to get it); the frame is our own encoding.
                    if let Some(hub) = self.hubs.get(&(room.0 as i64))
                        && let Ok(v1::ServerMessage {
                            body: Some(v1::server_message::Body::Stage(stage)),
                        }) = v1::ServerMessage::decode(frame.clone())
                    {
                        hub.stage(stage).await;
                    }
                    self.sfu.set_room_state(room, frame).await
                }
                Effect::Close(session) => {
                    let _ = self.closed.send(session);
                    match self.sfu.close(session).await {
                        Err(venue_sfu::SfuError::UnknownSession) => Ok(()),
                        other => other,
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "media plane call failed");
            }
        }
    }

    async fn slots_with_names(
        &self,
        room_id: i64,
        slots: &[Option<i64>],
    ) -> Result<Vec<Option<(i64, String)>>, ApiError> {
        let names: HashMap<i64, String> = self
            .store
            .streamers(room_id)
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        Ok(slots
            .iter()
            .map(|s| s.and_then(|id| names.get(&id).map(|n| (id, n.clone()))))
            .collect())
    }

    async fn load_room(&mut self, room: &Room) -> Result<(), ApiError> {
        if !self.hubs.contains_key(&room.id) {
            let hub = crate::hub::shell::spawn(room, self.hub_deps.clone()).await?;
            self.hubs.insert(room.id, hub);
        }
        let stage = self.store.stage(room.id, self.core.max_slots).await?;
        let slots = self.slots_with_names(room.id, &stage.slots).await?;
        let effects = self
            .core
            .load_room(room, stage.layout, slots, Instant::now());
        self.apply(effects).await;
        Ok(())
    }

    async fn handle(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::SessionCreated { session, info } => {
                let effects = self.core.session_created(session, info, now);
                self.apply(effects).await;
            }
            Command::SessionClosed { session } => {
                let effects = self.core.session_closed(session, now);
                self.apply(effects).await;
            }
            Command::Session { session, reply } => {
                let _ = reply.send(self.core.session(session).cloned());
            }
            Command::CreateRoom { name, title, reply } => {
                let result = async {
                    let room = self.store.create_room(&name, title.as_deref()).await?;
                    self.load_room(&room).await?;
                    tracing::info!(room = %room.name, "room created");
                    Ok(room)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::PutStage {
                room_id,
                stage,
                reply,
            } => {
                let result = async {
                    self.store.set_stage(room_id, &stage, self.core.max_slots).await?;
                    let slots = self.slots_with_names(room_id, &stage.slots).await?;
                    let effects = self.core.set_stage(room_id, stage.layout, slots, now);
                    self.apply(effects).await;
                    let name = self.core.rooms.get(&room_id).map(|r| r.name.clone()).unwrap_or_default();
                    tracing::info!(room = %name, layout = stage.layout, slots = ?stage.slots, "stage set");
                    self.core.view(&name).ok_or_else(|| ApiError::NotFound("no such room".into()))
                }
                .await;
                let _ = reply.send(result);
            }
            Command::DeleteStreamer { room_id, id, reply } => {
                let result = async {
                    let deleted = self.store.delete_streamer(room_id, id).await?;
                    if deleted {
                        let effects = self.core.remove_streamer(room_id, id, now);
                        self.apply(effects).await;
                        tracing::info!(streamer = id, "streamer deleted");
                    }
                    Ok(deleted)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::View { name, reply } => {
                let _ = reply.send(self.core.view(&name));
            }
            Command::WebrtcViewers { room_id, reply } => {
                let _ = reply.send(self.core.webrtc_viewers(room_id));
            }
            Command::Live { ids, reply } => {
                let _ = reply.send(ids.iter().map(|id| self.core.is_live(*id)).collect());
            }
            Command::LiveSessions { ids, reply } => {
                let _ = reply.send(ids.iter().map(|id| self.core.live_sessions(*id)).collect());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.core.stats());
            }
            Command::Hub { name, reply } => {
                let hub = self
                    .core
                    .names
                    .get(&name)
                    .and_then(|id| self.hubs.get(id).map(|h| (*id, h.clone())));
                let _ = reply.send(hub);
            }
            Command::SetTitle {
                room_id,
                title,
                reply,
            } => {
                let effects = self.core.set_title(room_id, &title, now);
                self.apply(effects).await;
                let _ = reply.send(());
            }
            Command::Hubs { reply } => {
                let _ = reply.send(self.hubs.values().cloned().collect());
            }
            Command::ClosePublishers { streamers, reply } => {
                let mut closed = 0;
                for (room_id, streamer) in streamers {
                    let effects = self
                        .core
                        .close_streamer_sessions(room_id, streamer, false, now);
                    let n = effects
                        .iter()
                        .filter(|e| matches!(e, Effect::Close(_)))
                        .count();
                    if n > 0 {
                        tracing::info!(
                            streamer,
                            sessions = n,
                            "booked window closed: publisher sessions ended"
                        );
                    }
                    closed += n;
                    self.apply(effects).await;
                }
                let _ = reply.send(closed);
            }
        }
    }

    /// Passes the data-channel side of an SFU event to the room's hub.
    async fn to_hub(&self, event: &SfuEvent) {
        match event {
            SfuEvent::ChannelOpen {
                room,
                session,
                remote,
            } => {
                if let Some(hub) = self.hubs.get(&(room.0 as i64)) {
                    hub.dc_open(*session, *remote).await;
                }
            }
            SfuEvent::ChannelMessage {
                room,
                session,
                data,
            } => {
                if let Some(hub) = self.hubs.get(&(room.0 as i64))
                    && !hub.dc_frame(*session, data.clone())
                {
                    tracing::debug!(room = room.0, %session, "hub queue full; data-channel frame dropped");
                }
            }
            SfuEvent::SubscriberDown { room, session } => {
                if let Some(hub) = self.hubs.get(&(room.0 as i64)) {
                    hub.dc_down(*session).await;
                }
            }
            _ => {}
        }
    }
}

/// Loads every room from the store, pushes its stage and state frame into the SFU, and
/// spawns the actor. Returns once the initial state is loaded.
pub async fn spawn(
    store: Store,
    sfu: SfuHandle,
    mut events: mpsc::Receiver<SfuEvent>,
    hub_deps: HubDeps,
    webhooks: Webhooks,
) -> Result<StateHandle, ApiError> {
    let revision_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (closed, _) = broadcast::channel(64);
    let mut shell = Shell {
        core: Core::new(sfu.max_slots(), revision_base),
        store,
        sfu,
        hub_deps,
        hubs: HashMap::new(),
        webhooks,
        publisher_names: HashMap::new(),
        closed: closed.clone(),
    };
    for room in shell.store.rooms().await? {
        shell.load_room(&room).await?;
    }
    let (tx, mut rx) = mpsc::channel::<Command>(256);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => shell.handle(cmd).await,
                    None => break,
                },
                event = events.recv(), if events_open => match event {
                    Some(event) => {
                        shell.to_hub(&event).await;
                        if matches!(event, SfuEvent::ChannelMessage { .. }) {
                            continue;
                        }
                        let effects = shell.core.on_event(event, Instant::now());
                        shell.apply(effects).await;
                    }
                    None => events_open = false,
                },
                _ = ticker.tick() => {
                    let effects = shell.core.tick(Instant::now());
                    shell.apply(effects).await;
                }
            }
        }
        tracing::debug!("state actor stopped");
    });
    Ok(StateHandle { tx, closed })
}

#[cfg(test)]
#[path = "tests/state.rs"]
mod tests;
