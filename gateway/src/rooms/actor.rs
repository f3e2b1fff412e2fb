//! The state actor's IO: one task owns the [`Core`], the SFU's event stream, the rooms'
//! interaction hubs and what it announces on the [`Bus`]; [`StateHandle`] talks to it over a bounded
//! `mpsc` of [`Command`]s carrying `oneshot` replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::{broadcast, mpsc, oneshot};
use venue_proto::v1;
use venue_sfu::{SessionId, SfuEvent, SfuHandle};

use super::StateError;
use super::cluster::ClusterLink;
use super::core::{Core, Effect, PublishNotice};
use super::session::SessionInfo;
use super::view::{RoomView, Stats};
use crate::bus::{Announcement, Bus, RoomChange};
use crate::hub::shell::{HubDeps, HubHandle};
use crate::ids::{RoomId, StreamerId};
use crate::store::{Room, Stage, Store};
use crate::webhooks::{Event, PublishData};

pub(super) enum Command {
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
        reply: oneshot::Sender<Result<Room, StateError>>,
    },
    PutStage {
        room_id: RoomId,
        stage: Stage,
        reply: oneshot::Sender<Result<RoomView, StateError>>,
    },
    DeleteStreamer {
        room_id: RoomId,
        id: StreamerId,
        reply: oneshot::Sender<Result<bool, StateError>>,
    },
    View {
        name: String,
        reply: oneshot::Sender<Option<RoomView>>,
    },
    Live {
        ids: Vec<StreamerId>,
        reply: oneshot::Sender<Vec<bool>>,
    },
    LiveSessions {
        ids: Vec<StreamerId>,
        reply: oneshot::Sender<Vec<Vec<SessionId>>>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    WebrtcViewers {
        room_id: RoomId,
        reply: oneshot::Sender<usize>,
    },
    Hub {
        name: String,
        reply: oneshot::Sender<Option<(RoomId, HubHandle)>>,
    },
    SetTitle {
        room_id: RoomId,
        title: String,
        reply: oneshot::Sender<()>,
    },
    Hubs {
        reply: oneshot::Sender<Vec<HubHandle>>,
    },
    ClosePublishers {
        streamers: Vec<(RoomId, StreamerId)>,
        reply: oneshot::Sender<usize>,
    },
    /// Cluster mode ([`super::cluster`]): owners of `room`'s stage streamers on other nodes.
    Owners {
        room: RoomId,
        owners: Vec<(StreamerId, Option<String>)>,
    },
    RelayOpened {
        room: RoomId,
        origin: String,
        session: SessionId,
        participants: Vec<venue_sfu::ParticipantId>,
    },
    RelayFailed {
        room: RoomId,
        origin: String,
    },
    Program {
        room_id: RoomId,
        running: bool,
    },
}

/// Cloneable handle to the state actor.
#[derive(Clone, Debug)]
pub struct StateHandle {
    tx: mpsc::Sender<Command>,
    bus: Arc<dyn Bus>,
}

/// A [`StateHandle`] that does not keep the actor running (background tasks).
#[derive(Clone, Debug)]
pub struct WeakStateHandle {
    tx: mpsc::WeakSender<Command>,
    bus: Arc<dyn Bus>,
}

impl WeakStateHandle {
    /// The handle, while the actor runs.
    pub fn upgrade(&self) -> Option<StateHandle> {
        self.tx.upgrade().map(|tx| StateHandle {
            tx,
            bus: self.bus.clone(),
        })
    }
}

fn stopped() -> StateError {
    StateError::Stopped
}

impl StateHandle {
    /// A weak handle.
    pub fn downgrade(&self) -> WeakStateHandle {
        WeakStateHandle {
            tx: self.tx.downgrade(),
            bus: self.bus.clone(),
        }
    }

    /// Sessions the gateway ends (a booked window closed, the streamer was deleted or replaced)
    /// as they are closed in the media plane: lets a connection that owns a session (RTMP)
    /// hang up at once instead of polling. Subscribe before creating the session; on
    /// `RecvError::Lagged` check [`StateHandle::session`].
    pub fn closed_sessions(&self) -> broadcast::Receiver<SessionId> {
        self.bus.closed_sessions()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, StateError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Registers a session the SFU accepted.
    pub async fn session_created(
        &self,
        session: SessionId,
        info: SessionInfo,
    ) -> Result<(), StateError> {
        self.tx
            .send(Command::SessionCreated { session, info })
            .await
            .map_err(|_| stopped())
    }

    /// Forgets a session closed through its resource URL.
    pub async fn session_closed(&self, session: SessionId) -> Result<(), StateError> {
        self.tx
            .send(Command::SessionClosed { session })
            .await
            .map_err(|_| stopped())
    }

    /// The session registered under `session`.
    pub async fn session(&self, session: SessionId) -> Result<Option<SessionInfo>, StateError> {
        self.ask(|reply| Command::Session { session, reply }).await
    }

    /// Creates a room (store, SFU, frame). Errors: 400 bad name, 409 taken.
    pub async fn create_room(
        &self,
        name: String,
        title: Option<String>,
    ) -> Result<Room, StateError> {
        self.ask(|reply| Command::CreateRoom { name, title, reply })
            .await?
    }

    /// Validates, stores and applies a room's stage. Errors: 400 with the reason.
    pub async fn put_stage(&self, room_id: RoomId, stage: Stage) -> Result<RoomView, StateError> {
        self.ask(|reply| Command::PutStage {
            room_id,
            stage,
            reply,
        })
        .await?
    }

    /// Deletes a streamer, closing its sessions and emptying its slots. `false`: no such streamer.
    pub async fn delete_streamer(
        &self,
        room_id: RoomId,
        id: StreamerId,
    ) -> Result<bool, StateError> {
        self.ask(|reply| Command::DeleteStreamer { room_id, id, reply })
            .await?
    }

    /// The room called `name`.
    pub async fn view(&self, name: &str) -> Result<Option<RoomView>, StateError> {
        let name = name.to_owned();
        self.ask(|reply| Command::View { name, reply }).await
    }

    /// Live state of each streamer id, in order.
    pub async fn live(&self, ids: Vec<StreamerId>) -> Result<Vec<bool>, StateError> {
        self.ask(|reply| Command::Live { ids, reply }).await
    }

    /// The live publisher sessions of each streamer id, in order (empty when offline).
    pub async fn live_sessions(
        &self,
        ids: Vec<StreamerId>,
    ) -> Result<Vec<Vec<SessionId>>, StateError> {
        self.ask(|reply| Command::LiveSessions { ids, reply }).await
    }

    /// WebRTC viewers of room `room_id` (see [`Core::webrtc_viewers`]).
    pub async fn webrtc_viewers(&self, room_id: RoomId) -> Result<usize, StateError> {
        self.ask(|reply| Command::WebrtcViewers { room_id, reply })
            .await
    }

    /// Totals for metrics.
    pub async fn stats(&self) -> Result<Stats, StateError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// The interaction hub of the room called `name`.
    pub async fn hub(&self, name: &str) -> Result<Option<HubHandle>, StateError> {
        Ok(self.room_hub(name).await?.map(|(_, hub)| hub))
    }

    /// The store id and interaction hub of the room called `name`.
    pub async fn room_hub(&self, name: &str) -> Result<Option<(RoomId, HubHandle)>, StateError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Hub { name, reply }).await
    }

    /// This node composes room `room_id`'s program (`running`) or stopped (the program
    /// supervisor): in cluster mode it needs the stage's media relayed like a viewer does.
    pub async fn set_program(&self, room_id: RoomId, running: bool) -> Result<(), StateError> {
        self.tx
            .send(Command::Program { room_id, running })
            .await
            .map_err(|_| stopped())
    }

    /// A room's title changed (already stored by the settings): updates the stage frame.
    pub async fn set_title(&self, room_id: RoomId, title: String) -> Result<(), StateError> {
        self.ask(|reply| Command::SetTitle {
            room_id,
            title,
            reply,
        })
        .await
    }

    /// Closes every publisher session of each `(room id, streamer id)` (a booked window
    /// closed); returns how many sessions were closed.
    pub async fn close_publishers(
        &self,
        streamers: Vec<(RoomId, StreamerId)>,
    ) -> Result<usize, StateError> {
        self.ask(|reply| Command::ClosePublishers { streamers, reply })
            .await
    }

    /// Every room's hub (metrics).
    pub async fn hubs(&self) -> Result<Vec<HubHandle>, StateError> {
        self.ask(|reply| Command::Hubs { reply }).await
    }
}

struct Shell {
    core: Core,
    store: Store,
    sfu: SfuHandle,
    hub_deps: HubDeps,
    /// Interaction hub of each room, by store id.
    hubs: HashMap<RoomId, HubHandle>,
    /// `publish.*` webhooks and the sessions the gateway closed ([`StateHandle::closed_sessions`]).
    bus: Arc<dyn Bus>,
    /// Streamer name of each announced publisher session (a deleted streamer's
    /// `publish.stopped` still carries it).
    publisher_names: HashMap<SessionId, String>,
    /// Cluster mode: track owners and relays.
    cluster: Option<ClusterLink>,
    /// Until when owner lookups may miss live streamers: after a Redis reconnect (a
    /// restarted Redis has lost every claim until each origin's next refresh), "nobody owns
    /// it" is not believed for [`crate::cluster::tracks::OWNER_TTL`].
    owners_unsure_until: Option<Instant>,
}

impl Shell {
    /// Emits `publish.started` / `publish.stopped` (never waits on the delivery).
    async fn publish_webhook(&mut self, started: bool, notice: PublishNotice) {
        if !self.bus.wants_webhooks() {
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
        self.bus.publish(Announcement::Webhook(Event::publish(
            started,
            notice.room,
            PublishData {
                streamer_id: notice.streamer,
                streamer_name: name,
                session_id: notice.session.to_string(),
                protocol: notice.protocol,
            },
            chrono::Utc::now(),
        )));
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
                Effect::Retarget(session, participant) => {
                    match self.sfu.retarget(session, participant) {
                        Err(venue_sfu::SfuError::UnknownSession) => Ok(()),
                        other => other,
                    }
                }
                Effect::RoomState(room, frame) => {
                    // The hub sends the stage as `Event.stage` to its clients (WebSocket ones
                    // have no other way to get it); the frame is our own encoding.
                    if let Some(hub) = self.hubs.get(&RoomId::from(room))
                        && let Ok(v1::ServerMessage {
                            body: Some(v1::server_message::Body::Stage(stage)),
                        }) = v1::ServerMessage::decode(frame.clone())
                    {
                        hub.stage(stage).await;
                    }
                    self.sfu.set_room_state(room, frame).await
                }
                Effect::LiveChanged {
                    room,
                    streamer,
                    live,
                } => {
                    if let Some(link) = &self.cluster {
                        link.live_changed(self.bus.clone(), room, streamer, live);
                    }
                    Ok(())
                }
                Effect::OpenRelay { room, origin } => {
                    if let Some(link) = &self.cluster {
                        link.open_relay(self.sfu.clone(), room, origin);
                    }
                    Ok(())
                }
                Effect::Close(session) => {
                    self.bus.publish(Announcement::SessionClosed(session));
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
        room_id: RoomId,
        slots: &[Option<StreamerId>],
    ) -> Result<Vec<Option<(StreamerId, String)>>, StateError> {
        let names: HashMap<StreamerId, String> = self
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

    async fn load_room(&mut self, room: &Room) -> Result<(), StateError> {
        let id = room.id;
        if !self.hubs.contains_key(&id) {
            let hub = crate::hub::shell::spawn(room, self.hub_deps.clone()).await?;
            self.hubs.insert(id, hub);
        }
        let stage = self.store.stage(room.id, self.core.max_slots()).await?;
        let slots = self.slots_with_names(id, &stage.slots).await?;
        let effects = self
            .core
            .load_room(room, stage.layout, slots, Instant::now());
        self.apply(effects).await;
        Ok(())
    }

    /// Re-reads room `id` from the database after a change announced on the bus (this node's
    /// or, in cluster mode, another's): a room this node does not know is loaded; a known
    /// room's stage and title are applied when they differ from what it shows (so the echo of
    /// this node's own change does nothing).
    async fn reload_room(&mut self, id: RoomId) -> Result<(), StateError> {
        let Some(room) = self.store.rooms().await?.into_iter().find(|r| r.id == id) else {
            return Ok(());
        };
        self.reload(&room).await
    }

    async fn reload(&mut self, room: &Room) -> Result<(), StateError> {
        let Some(current) = self.core.view(&room.name) else {
            return self.load_room(room).await;
        };
        let now = Instant::now();
        let stage = self.store.stage(room.id, self.core.max_slots()).await?;
        let same = current.layout == stage.layout
            && current
                .slots
                .iter()
                .map(|s| s.streamer_id)
                .eq(stage.slots.iter().copied());
        if !same {
            let slots = self.slots_with_names(room.id, &stage.slots).await?;
            let effects = self.core.set_stage(room.id, stage.layout, slots, now);
            self.apply(effects).await;
            tracing::info!(room = %room.name, layout = stage.layout, "stage changed elsewhere: applied");
        }
        let effects = self.core.set_title(room.id, &room.title, now);
        self.apply(effects).await;
        // A streamer deleted on another node: its sessions here end too.
        let publishing = self.core.publishing_streamers(room.id);
        if !publishing.is_empty() {
            let known: std::collections::HashSet<StreamerId> = self
                .store
                .streamers(room.id)
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect();
            for id in publishing.into_iter().filter(|id| !known.contains(id)) {
                let effects = self.core.remove_streamer(room.id, id, now);
                self.apply(effects).await;
                tracing::info!(
                    streamer = id.0,
                    "streamer deleted elsewhere: its sessions here ended"
                );
            }
        }
        Ok(())
    }

    /// Re-reads every room (after a bus reconnect, when announcements may have been lost).
    async fn resync(&mut self) -> Result<(), StateError> {
        for room in self.store.rooms().await? {
            self.reload(&room).await?;
        }
        Ok(())
    }

    async fn room_change(&mut self, change: RoomChange) {
        let result = match change {
            RoomChange::Room(id) => self.reload_room(id).await,
            RoomChange::Resync => self.resync().await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?change, "could not re-read a changed room");
        }
        // Who is live where may have changed with it.
        if change == RoomChange::Resync {
            self.owners_unsure_until = Some(Instant::now() + crate::cluster::tracks::OWNER_TTL);
        }
        if let Some(link) = &self.cluster {
            let rooms = self.core.stage_streamers();
            match change {
                RoomChange::Room(id) => {
                    link.look_up_later(rooms.into_iter().filter(|(r, _)| *r == id).collect())
                }
                // A restarted Redis lost this node's claims too: claim again at once.
                RoomChange::Resync => link.refresh(self.core.live_here(), rooms),
            }
        }
    }

    /// Tells every node (this one included) that room `id`'s stored state changed.
    fn announce_change(&self, id: RoomId) {
        self.bus.publish(Announcement::RoomChanged { room: id });
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
                    self.announce_change(room.id);
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
                    self.store.set_stage(room_id, &stage, self.core.max_slots()).await?;
                    let slots = self.slots_with_names(room_id, &stage.slots).await?;
                    let effects = self.core.set_stage(room_id, stage.layout, slots, now);
                    self.apply(effects).await;
                    self.announce_change(room_id);
                    let name = self.core.room_name(room_id).unwrap_or_default().to_owned();
                    tracing::info!(room = %name, layout = stage.layout, slots = ?stage.slots, "stage set");
                    self.core.view(&name).ok_or_else(|| StateError::NoSuchRoom)
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
                        self.announce_change(room_id);
                        tracing::info!(streamer = id.0, "streamer deleted");
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
                    .room_id(&name)
                    .and_then(|id| self.hubs.get(&id).map(|h| (id, h.clone())));
                let _ = reply.send(hub);
            }
            Command::SetTitle {
                room_id,
                title,
                reply,
            } => {
                let effects = self.core.set_title(room_id, &title, now);
                self.apply(effects).await;
                self.announce_change(room_id);
                let _ = reply.send(());
            }
            Command::Hubs { reply } => {
                let _ = reply.send(self.hubs.values().cloned().collect());
            }
            Command::Owners { room, mut owners } => {
                if self.owners_unsure_until.is_some_and(|t| now < t) {
                    owners.retain(|(_, owner)| owner.is_some());
                }
                let effects = self.core.set_owners(room, owners, now);
                self.apply(effects).await;
            }
            Command::RelayOpened {
                room,
                origin,
                session,
                participants,
            } => {
                let effects = self.core.relay_opened(room, origin, session, participants);
                self.apply(effects).await;
            }
            Command::RelayFailed { room, origin } => self.core.relay_failed(room, origin, now),
            Command::Program { room_id, running } => {
                let effects = self.core.set_program(room_id, running, now);
                self.apply(effects).await;
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
                            streamer = streamer.0,
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
                if let Some(hub) = self.hubs.get(&RoomId::from(*room)) {
                    hub.dc_open(*session, *remote).await;
                }
            }
            SfuEvent::ChannelMessage {
                room,
                session,
                data,
            } => {
                if let Some(hub) = self.hubs.get(&RoomId::from(*room))
                    && !hub.dc_frame(*session, data.clone())
                {
                    tracing::debug!(room = room.0, %session, "hub queue full; data-channel frame dropped");
                }
            }
            SfuEvent::SubscriberDown { room, session } => {
                if let Some(hub) = self.hubs.get(&RoomId::from(*room)) {
                    hub.dc_down(*session).await;
                }
            }
            _ => {}
        }
    }
}

/// Loads every room from the store, pushes its stage and state frame into the SFU, and
/// spawns the actor; `publish.*` webhooks and closed sessions go out on `bus`. Returns once
/// the initial state is loaded.
pub async fn spawn(
    store: Store,
    sfu: SfuHandle,
    mut events: mpsc::Receiver<SfuEvent>,
    hub_deps: HubDeps,
    bus: Arc<dyn Bus>,
    tracks: Option<crate::cluster::tracks::Tracks>,
) -> Result<StateHandle, StateError> {
    let revision_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut shell = Shell {
        core: Core::new(sfu.max_slots(), revision_base),
        store,
        sfu,
        hub_deps,
        hubs: HashMap::new(),
        bus: bus.clone(),
        publisher_names: HashMap::new(),
        cluster: None,
        owners_unsure_until: None,
    };
    let (tx, mut rx) = mpsc::channel::<Command>(256);
    shell.cluster = tracks.map(|t| ClusterLink::new(t, tx.downgrade()));
    for room in shell.store.rooms().await? {
        shell.load_room(&room).await?;
    }
    let mut changes = bus.room_changes();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(crate::cluster::tracks::REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        let mut changes_open = true;
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
                change = changes.recv(), if changes_open => match change {
                    Ok(change) => shell.room_change(change).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        shell.room_change(RoomChange::Resync).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => changes_open = false,
                },
                _ = ticker.tick() => {
                    let effects = shell.core.tick(Instant::now());
                    shell.apply(effects).await;
                }
                _ = refresh.tick(), if shell.cluster.is_some() => {
                    if let Some(link) = &shell.cluster {
                        link.refresh(shell.core.live_here(), shell.core.stage_streamers());
                    }
                }
            }
        }
        tracing::debug!("state actor stopped");
    });
    Ok(StateHandle { tx, bus })
}
