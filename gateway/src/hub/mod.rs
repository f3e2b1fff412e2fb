//! The room interaction hub ("living room", issue 3): cursors, stickers, fireworks, chat,
//! users and moderation of one room.
//!
//! [`RoomHub`] is **sans-IO** and transport-agnostic: connections are opaque [`ConnId`]s, time
//! is an input ([`Now`]: a monotonic `Instant` for limits and ticks, wall-clock milliseconds
//! for timestamps), and everything it wants done comes out of [`RoomHub::poll_output`] as an
//! [`Output`]: send a frame to one connection, broadcast one frame to every connection,
//! close a connection with a notice, or persist a change. The shell ([`shell`]) owns the
//! sockets, the tick timer and the store.
//!
//! Tick (default 50 ms, [`HubConfig::tick`]): everything that happened since the last tick goes
//! out in at most two frames, each encoded once and sent to every client as the same bytes:
//! a reliable `EventBatch` (joins and leaves, chat, stickers, deletes, settings, stage) and a
//! lossy `EventBatch` (the latest cursor of each user that moved, fireworks). Late joiners get
//! `Hello` at once and a `Snapshot` at the next tick, taken after that tick's batch: a client
//! ignores batches whose tick is not above its snapshot's (a data-channel client also gets the
//! room's broadcast batches from the moment its channel opens, before its hello). Frames above
//! [`HubConfig::deflate_threshold`] bytes go out deflate-raw compressed.
//!
//! Limits: client frames over 16 KiB or undecodable are dropped and counted; after
//! [`HubConfig::max_offences`] within [`HubConfig::offence_window`] the connection is closed
//! with `NOTICE_CODE_BAD_MESSAGE`. Commands are rate-limited per connection and per hashed IP
//! ([`limits`]); excess is dropped and counted, and the client is told once per burst.
//! Identities for persisted moderation are (hashed IP, name key): a mute or a star follows a
//! person who reconnects with the same name from the same address; a ban follows the address.
//!
//! Layout: [`RoomHub`] (this file) takes the inputs and decides; it holds owned parts, each
//! with its own state and methods: `participants` (connections, user ids, names, the joined
//! count), `moderation` (the actions and the bans, mutes and stars in force), `recent` (the
//! sticker board and chat history), `batch` (what the next tick sends, encoded once). The
//! shapes it exchanges with the store are in `records`, its tunables in `config`, the shells'
//! slow-client policy in `queue`, the wire codec in [`codec`], and the IO in [`shell`]; in
//! cluster mode [`remote`] (edge) and `owner` run the room across nodes.

// A sans-IO core: it takes the time as a parameter and never reads the clock (DESIGN §2).
#![deny(clippy::disallowed_methods)]

mod batch;
pub mod codec;
mod config;
pub mod limits;
mod messages;
mod moderation;
pub mod names;
mod owner;
mod participants;
mod queue;
mod recent;
mod records;
pub mod remote;
pub mod settings;
pub mod shell;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use venue_proto::v1;
use venue_proto::v1::NoticeCode;
use venue_proto::v1::event::Kind as EventKind;
use venue_proto::v1::server_message::Body as ServerBody;

use self::batch::Batcher;
use self::codec::{Command, FrameError, notice};
use self::limits::{Kind, Limits, Verdict};
use self::participants::{Granted, Participants};
use self::recent::Recent;
use self::settings::RoomSettings;

pub use self::config::{HubConfig, Now};
pub use self::messages::{Class, HubStats, Input, Output};
use self::moderation::Sanctions;
pub use self::moderation::{MAX_MUTE_S, Moderation, ModerationError};
pub use self::participants::{ConnId, IpHash, Transport, UserInfo};
pub use self::queue::{Admit, QueuePolicy, too_slow_notice};
pub use self::records::{
    BanRecord, ChatRecord, Loaded, MuteRecord, PersistOp, StarRecord, StickerRecord,
};

/// The sans-IO interaction state of one room. See the module doc. Its parts: the people
/// ([`Participants`]), the sanctions in force ([`Sanctions`]), the sticker board and
/// the chat history ([`Recent`]) and what the next tick sends ([`Batcher`]).
#[derive(Debug)]
pub struct RoomHub {
    config: HubConfig,
    room: String,
    admin_digest: [u8; 32],
    limits: Limits,
    people: Participants,
    sanctions: Sanctions,
    /// The sticker board.
    board: Recent<StickerRecord>,
    /// The chat history.
    chat: Recent<ChatRecord>,
    settings: RoomSettings,
    stage: Option<v1::StageState>,
    batch: Batcher,
    outputs: VecDeque<Output>,
    stats: HubStats,
    last_cleanup: Option<Instant>,
}

impl RoomHub {
    /// A hub for room `room` (its name, for `Hello`), with the state the store had.
    /// `admin_digest` is the SHA-256 of the admin token; `title` is used when no settings are
    /// stored yet.
    pub fn new(
        room: &str,
        title: &str,
        config: HubConfig,
        admin_digest: [u8; 32],
        loaded: Loaded,
    ) -> RoomHub {
        RoomHub {
            limits: Limits::new(config.limits),
            room: room.to_owned(),
            admin_digest,
            people: Participants::new(loaded.max_user_id),
            sanctions: Sanctions::new(loaded.bans, loaded.mutes, loaded.stars),
            board: Recent::new(loaded.stickers, loaded.max_sticker_id, config.board_size),
            chat: Recent::new(loaded.chat, loaded.max_chat_id, config.chat_history),
            settings: loaded
                .settings
                .unwrap_or_else(|| RoomSettings::with_title(title)),
            stage: None,
            batch: Batcher::new(config.deflate_threshold),
            outputs: VecDeque::new(),
            stats: HubStats::default(),
            last_cleanup: None,
            config,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The room's current settings.
    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            users: self.people.joined() as u64,
            ..self.stats
        }
    }

    /// Connections that said hello.
    pub fn user_count(&self) -> usize {
        self.people.joined()
    }

    /// Connections, joined or not.
    pub fn conn_count(&self) -> usize {
        self.people.len()
    }

    /// The tick period.
    pub fn tick_period(&self) -> Duration {
        self.config.tick
    }

    /// Every joined user, by id.
    pub fn users(&self) -> Vec<UserInfo> {
        self.people.users()
    }

    /// Applies one input.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.limits.advance(now.at);
        match input {
            Input::Connect {
                conn,
                transport,
                ip,
            } => self.connect(now, conn, transport, ip),
            Input::Frame { conn, data } => self.frame(now, conn, &data),
            Input::BadFrame { conn, reason } => self.offence(now, conn, reason),
            Input::Disconnect { conn } => {
                self.forget(conn);
            }
            Input::Tick => self.tick(now),
            Input::Stage(stage) => {
                if self
                    .stage
                    .as_ref()
                    .is_none_or(|s| stage.revision >= s.revision)
                {
                    self.stage = Some(stage.clone());
                    self.batch.event(EventKind::Stage(stage));
                }
            }
        }
    }

    /// Replaces the room settings (validated). Clients get `Event.settings` at the next tick.
    /// Errors: the reason, for a 400.
    pub fn set_settings(&mut self, settings: RoomSettings) -> Result<(), String> {
        settings.validate()?;
        if settings != self.settings {
            self.settings = settings;
            self.settings_changed();
        }
        Ok(())
    }

    fn settings_changed(&mut self) {
        self.batch
            .event(EventKind::Settings(self.settings.to_proto()));
        self.persist(PersistOp::Settings(self.settings.clone()));
    }

    fn persist(&mut self, op: PersistOp) {
        self.outputs.push_back(Output::Persist(op));
    }

    fn send(&mut self, conn: ConnId, body: ServerBody) {
        let frame = self.batch.encode(body);
        self.outputs.push_back(Output::Send {
            conn,
            class: Class::Reliable,
            frame,
        });
    }

    fn tell(&mut self, conn: ConnId, code: NoticeCode, text: impl Into<String>, until_ms: u64) {
        self.send(conn, notice(code, text, until_ms));
    }

    fn close(&mut self, conn: ConnId, code: NoticeCode, text: impl Into<String>, until_ms: u64) {
        if self.forget(conn) {
            let notice = self.batch.encode(notice(code, text, until_ms));
            self.outputs.push_back(Output::Close { conn, notice });
        }
    }

    /// Removes a connection; returns whether it existed.
    fn forget(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.people.remove(id) else {
            return false;
        };
        self.batch.forget_cursor(conn.user_id);
        if conn.joined && conn.name.is_some() {
            self.batch.event(EventKind::UserLeft(conn.user_id));
        }
        true
    }

    fn connect(&mut self, now: Now, conn: ConnId, transport: Transport, ip: Option<IpHash>) {
        if self.people.contains(conn) {
            return;
        }
        if let Some(until) = self.sanctions.banned_until(ip.as_ref(), now.wall_ms) {
            let notice = self.batch.encode(notice(
                NoticeCode::Banned,
                "you are banned from this room",
                until,
            ));
            self.outputs.push_back(Output::Close { conn, notice });
            return;
        }
        self.people.add(conn, transport, ip, self.limits.conn());
    }

    /// Counts a bad frame; closes the connection after too many.
    fn offence(&mut self, now: Now, id: ConnId, reason: &str) {
        self.stats.bad_frames += 1;
        let (max, window) = (self.config.max_offences, self.config.offence_window);
        let Some(conn) = self.people.get_mut(id) else {
            return;
        };
        if conn.offences.record(now.at, max, window) {
            self.stats.closed_for_offences += 1;
            self.close(id, NoticeCode::BadMessage, "too many bad frames", 0);
        } else if conn.offences.count() == 1 {
            self.tell(id, NoticeCode::BadMessage, reason.to_owned(), 0);
        }
    }
    fn frame(&mut self, now: Now, id: ConnId, data: &[u8]) {
        self.stats.frames_in += 1;
        let Some(joined) = self.people.get(id).map(|c| c.joined) else {
            return;
        };
        let command = match codec::decode(data) {
            Ok(c) => c,
            Err(FrameError::NotANumber) => {
                self.stats.nan_dropped += 1;
                return;
            }
            Err(FrameError::TooLarge(_)) => {
                return self.offence(now, id, "frame over 16 KiB dropped");
            }
            Err(e) => return self.offence(now, id, &e.to_string()),
        };
        match command {
            Command::Hello {
                protocol_version,
                display_name,
                admin_token,
            } => {
                if joined {
                    return self.offence(now, id, "hello sent twice");
                }
                self.hello(now, id, protocol_version, &display_name, &admin_token);
            }
            _ if !joined => self.offence(now, id, "the first frame must be a hello"),
            Command::Cursor { x, y } => self.cursor(id, x, y),
            Command::Sticker {
                sticker_id,
                x,
                y,
                rotation_deg,
                scale,
            } => self.sticker(
                now,
                id,
                StickerRecord {
                    id: 0,
                    sticker_id,
                    x,
                    y,
                    rotation_deg,
                    scale,
                    user_id: 0,
                    placed_ms: now.wall_ms,
                },
            ),
            Command::Firework { x, y, hue } => self.firework(id, x, y, hue),
            Command::Chat { text } => self.chat(now, id, &text),
            Command::Admin(action) => {
                if !self.people.get(id).is_some_and(|c| c.admin) {
                    return self.tell(
                        id,
                        NoticeCode::NotAllowed,
                        "admin commands need the admin token",
                        0,
                    );
                }
                if let Err(e) = self.moderate(now, action) {
                    self.tell(id, NoticeCode::NotAllowed, e.to_string(), 0);
                }
            }
        }
    }

    fn hello(&mut self, now: Now, id: ConnId, version: u32, wanted: &str, token: &str) {
        if version != venue_proto::PROTOCOL_VERSION {
            return self.close(
                id,
                NoticeCode::UnsupportedVersion,
                format!(
                    "protocol version {version} is not supported; this server speaks {} — reload the page",
                    venue_proto::PROTOCOL_VERSION
                ),
                0,
            );
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let admin = !token.is_empty() && bool::from(digest.ct_eq(&self.admin_digest));
        let mut rejected = None;
        let mut wanted_name = None;
        if !wanted.trim().is_empty() {
            match names::normalize_name(wanted) {
                Ok(name) => {
                    let key = names::name_key(&name);
                    if self.people.name_taken(&key) {
                        rejected = Some(names::NameError::Taken.to_string());
                    } else {
                        wanted_name = Some((name, key));
                    }
                }
                Err(e) => rejected = Some(e.to_string()),
            }
        }
        let tick_ms = u32::try_from(self.config.tick.as_millis()).unwrap_or(u32::MAX);
        let Some(ip) = self.people.get(id).map(|c| c.ip) else {
            return;
        };
        let granted = wanted_name.map(|(name, name_key)| {
            let identity = (ip, name_key.clone());
            Granted {
                name,
                name_key,
                muted_until_ms: self.sanctions.muted_until(&identity, now.wall_ms),
                starred: self.sanctions.starred(&identity),
            }
        });
        let Some(conn) = self.people.join(id, admin, granted) else {
            return;
        };
        let hello = v1::Hello {
            protocol_version: venue_proto::PROTOCOL_VERSION,
            room: self.room.clone(),
            user_id: conn.user_id,
            display_name: conn.name.clone().unwrap_or_default(),
            admin,
            tick_ms,
        };
        let joined_event = conn.name.is_some().then(|| conn.user());
        self.send(id, ServerBody::Hello(hello));
        if let Some(reason) = rejected {
            self.tell(id, NoticeCode::NameRejected, reason, 0);
        }
        if let Some(user) = joined_event {
            self.batch.event(EventKind::UserJoined(user));
        }
        self.batch.await_snapshot(id);
    }

    /// Rate limit; on refusal tells the client once per burst. Returns whether to go on.
    fn allow(&mut self, id: ConnId, kind: Kind) -> bool {
        let Some(conn) = self.people.get_mut(id) else {
            return false;
        };
        match self.limits.check(&mut conn.limits, conn.ip.as_ref(), kind) {
            Verdict::Allowed => true,
            Verdict::Limited { notify } => {
                self.stats.rate_limited += 1;
                if notify {
                    self.tell(
                        id,
                        NoticeCode::RateLimited,
                        format!("slow down: {kind:?} commands over the rate limit are dropped"),
                        0,
                    );
                }
                false
            }
        }
    }

    fn may(&self, id: ConnId, allowed_by_mode: bool) -> bool {
        allowed_by_mode || self.people.get(id).is_some_and(|c| c.admin)
    }

    fn cursor(&mut self, id: ConnId, x: f32, y: f32) {
        if !self.may(id, self.settings.mode.motion()) || !self.allow(id, Kind::Cursor) {
            return;
        }
        if let Some(user) = self.people.get(id).map(|c| c.user_id) {
            self.batch.cursor(user, x, y);
        }
    }

    fn firework(&mut self, id: ConnId, x: f32, y: f32, hue: u32) {
        if !self.may(id, self.settings.mode.motion()) {
            return self.tell(
                id,
                NoticeCode::NotAllowed,
                "fireworks are off in this room",
                0,
            );
        }
        if !self.allow(id, Kind::Firework) {
            return;
        }
        if let Some(user_id) = self.people.get(id).map(|c| c.user_id) {
            self.batch
                .lossy_event(EventKind::Firework(v1::Firework { user_id, x, y, hue }));
        }
    }

    fn sticker(&mut self, now: Now, id: ConnId, mut sticker: StickerRecord) {
        if !self.may(id, self.settings.mode.stickers()) {
            return self.tell(
                id,
                NoticeCode::NotAllowed,
                "stickers are off in this room",
                0,
            );
        }
        if !self.allow(id, Kind::Sticker) {
            return;
        }
        if !self.settings.sticker_set.contains(&sticker.sticker_id) {
            return self.tell(
                id,
                NoticeCode::BadMessage,
                format!(
                    "no sticker {:?} in the active set {:?}",
                    sticker.sticker_id, self.settings.sticker_set.id
                ),
                0,
            );
        }
        let Some(user_id) = self.people.get(id).map(|c| c.user_id) else {
            return;
        };
        sticker.user_id = user_id;
        sticker.placed_ms = now.wall_ms;
        sticker.id = self.board.take_id();
        let expired: Vec<u64> = self
            .board
            .push(sticker.clone())
            .iter()
            .map(|s| s.id)
            .collect();
        self.batch
            .event(EventKind::StickerPlaced(sticker.to_proto()));
        self.persist(PersistOp::Sticker(sticker));
        if !expired.is_empty() {
            self.batch
                .event(EventKind::StickersExpired(v1::StickersExpired {
                    ids: expired.clone(),
                }));
            self.persist(PersistOp::ExpireStickers(expired));
        }
    }

    fn chat(&mut self, now: Now, id: ConnId, raw: &str) {
        let Some(conn) = self.people.get(id) else {
            return;
        };
        if conn.name.is_none() {
            return self.tell(
                id,
                NoticeCode::NotAllowed,
                "choose a display name to chat",
                0,
            );
        }
        if !self.may(id, self.settings.mode.chat()) {
            return self.tell(id, NoticeCode::NotAllowed, "chat is off in this room", 0);
        }
        if !self.allow(id, Kind::Chat) {
            return;
        }
        let slow = Duration::from_secs(u64::from(self.settings.slow_mode_s));
        let Some(conn) = self.people.get(id) else {
            return;
        };
        if conn.muted_until_ms > now.wall_ms {
            let until = conn.muted_until_ms;
            return self.tell(id, NoticeCode::Muted, "you are muted", until);
        }
        if !slow.is_zero()
            && !conn.admin
            && let Some(last) = conn.last_chat
        {
            let since = now.at.saturating_duration_since(last);
            if since < slow {
                let wait = u64::try_from((slow - since).as_millis()).unwrap_or(u64::MAX);
                return self.tell(
                    id,
                    NoticeCode::SlowMode,
                    format!("slow mode: one message every {} s", slow.as_secs()),
                    now.wall_ms.saturating_add(wait),
                );
            }
        }
        let text = match names::normalize_chat(raw) {
            Ok(t) => t,
            Err(e) => return self.tell(id, NoticeCode::MessageRejected, e.to_string(), 0),
        };
        let (user_id, display_name) = (conn.user_id, conn.name.clone().unwrap_or_default());
        let (starred, admin) = (conn.starred, conn.admin);
        let record = ChatRecord {
            id: self.chat.take_id(),
            user_id,
            display_name,
            text,
            sent_ms: now.wall_ms,
            starred,
            admin,
        };
        if let Some(conn) = self.people.get_mut(id) {
            conn.last_chat = Some(now.at);
        }
        self.batch.event(EventKind::Chat(record.to_proto()));
        self.persist(PersistOp::Chat(record.clone()));
        self.chat.push(record);
    }

    fn user_updated(&mut self, id: ConnId) {
        if let Some(conn) = self.people.get(id)
            && conn.joined
        {
            self.batch.event(EventKind::UserUpdated(conn.user()));
        }
    }

    /// Applies a moderation action (admin command or admin API). Errors:
    /// [`ModerationError::NoSuchUser`], [`ModerationError::NoSuchMessage`],
    /// [`ModerationError::Invalid`] (a value out of range).
    pub fn moderate(&mut self, now: Now, action: Moderation) -> Result<(), ModerationError> {
        self.limits.advance(now.at);
        let target = |hub: &RoomHub, user_id: u64| {
            hub.people
                .conn_of(user_id)
                .ok_or(ModerationError::NoSuchUser(user_id))
        };
        match action {
            Moderation::DeleteMessage { message_id } => {
                if !self.chat.issued(message_id) {
                    return Err(ModerationError::NoSuchMessage(message_id));
                }
                self.chat.retain(|m| m.id != message_id);
                self.batch.event(EventKind::ChatDeleted(message_id));
                self.persist(PersistOp::DeleteChat(message_id));
            }
            Moderation::Mute {
                user_id,
                duration_s,
            } => {
                if duration_s > MAX_MUTE_S {
                    return Err(ModerationError::Invalid(format!(
                        "duration_s must be 0..={MAX_MUTE_S}"
                    )));
                }
                let id = target(self, user_id)?;
                let until = moderation::until_ms(now.wall_ms, duration_s);
                let Some(conn) = self.people.get_mut(id) else {
                    return Err(ModerationError::NoSuchUser(user_id));
                };
                conn.muted_until_ms = until;
                let record = MuteRecord {
                    ip_hash: conn.ip,
                    name_key: conn.name_key.clone().unwrap_or_default(),
                    until_ms: until,
                };
                self.sanctions
                    .set_mute((record.ip_hash, record.name_key.clone()), until);
                if until != 0 {
                    self.tell(id, NoticeCode::Muted, "an admin muted you", until);
                }
                self.persist(PersistOp::Mute(record));
                self.user_updated(id);
            }
            Moderation::Kick { user_id, reason } => {
                let id = target(self, user_id)?;
                let text = if reason.is_empty() {
                    "kicked by an admin".to_owned()
                } else {
                    reason
                };
                self.close(id, NoticeCode::Kicked, text, 0);
            }
            Moderation::Ban {
                user_id,
                duration_s,
                reason,
            } => {
                let id = target(self, user_id)?;
                let until = moderation::until_ms(now.wall_ms, duration_s);
                if let Some(ip_hash) = self.people.get(id).and_then(|c| c.ip) {
                    let record = BanRecord {
                        ip_hash,
                        until_ms: until,
                        reason: reason.clone(),
                    };
                    self.sanctions.ban(record.clone());
                    self.persist(PersistOp::Ban(record));
                }
                let text = if reason.is_empty() {
                    "banned by an admin".to_owned()
                } else {
                    reason
                };
                self.close(id, NoticeCode::Banned, text, until);
            }
            Moderation::SlowMode { interval_s } => {
                if interval_s > settings::MAX_SLOW_MODE_S {
                    return Err(ModerationError::Invalid(format!(
                        "interval_s must be 0..={}",
                        settings::MAX_SLOW_MODE_S
                    )));
                }
                if self.settings.slow_mode_s != interval_s {
                    self.settings.slow_mode_s = interval_s;
                    self.settings_changed();
                }
            }
            Moderation::ClearChat => {
                self.chat.clear();
                self.batch.event(EventKind::ChatCleared(v1::ChatCleared {}));
                self.persist(PersistOp::ClearChat);
            }
            Moderation::ClearStickers => {
                self.board.clear();
                self.batch
                    .event(EventKind::StickersCleared(v1::StickersCleared {}));
                self.persist(PersistOp::ClearStickers);
            }
            Moderation::Star { user_id, starred } => {
                let id = target(self, user_id)?;
                let Some(conn) = self.people.get_mut(id) else {
                    return Err(ModerationError::NoSuchUser(user_id));
                };
                conn.starred = starred;
                let record = StarRecord {
                    ip_hash: conn.ip,
                    name_key: conn.name_key.clone().unwrap_or_default(),
                    starred,
                };
                self.sanctions
                    .set_star((record.ip_hash, record.name_key.clone()), starred);
                self.persist(PersistOp::Star(record));
                self.user_updated(id);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> v1::Snapshot {
        v1::Snapshot {
            stage: self.stage.clone(),
            settings: Some(self.settings.to_proto()),
            stickers: self.board.iter().map(StickerRecord::to_proto).collect(),
            chat: self.chat.iter().map(ChatRecord::to_proto).collect(),
            users: self.people.listed(self.config.users_listed),
            user_count: u32::try_from(self.people.joined()).unwrap_or(u32::MAX),
            tick: self.batch.tick(),
        }
    }

    fn tick(&mut self, now: Now) {
        let (broadcasts, waiting) = self.batch.flush(self.people.joined());
        self.stats.batches += broadcasts.len() as u64;
        self.outputs.extend(broadcasts);
        let waiting: Vec<ConnId> = waiting
            .into_iter()
            .filter(|c| self.people.contains(*c))
            .collect();
        if !waiting.is_empty() {
            let frame = self.batch.encode(ServerBody::Snapshot(self.snapshot()));
            for conn in waiting {
                self.outputs.push_back(Output::Send {
                    conn,
                    class: Class::Reliable,
                    frame: frame.clone(),
                });
            }
        }
        if self
            .last_cleanup
            .is_none_or(|t| now.at.saturating_duration_since(t) >= Duration::from_secs(60))
        {
            self.last_cleanup = Some(now.at);
            self.limits.retain_recent();
            self.sanctions.expire(now.wall_ms);
        }
    }
}

#[cfg(test)]
// Tests may read the clock; the core may not.
#[allow(clippy::disallowed_methods)]
#[path = "../tests/hub.rs"]
mod tests;
