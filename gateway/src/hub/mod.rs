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

pub mod codec;
pub mod limits;
pub mod names;
pub mod settings;
pub mod shell;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use venue_proto::v1;
use venue_proto::v1::NoticeCode;
use venue_proto::v1::event::Kind as EventKind;
use venue_proto::v1::server_message::Body as ServerBody;

use self::codec::{Command, FrameError, encode, notice};
use self::limits::{ConnLimits, Kind, LimitConfig, Limits, Offences, Verdict};
use self::settings::RoomSettings;

/// One client connection of a room (a WebSocket or a WebRTC `venue` channel), as numbered by
/// the shell. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a connection reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `GET /api/rooms/{room}/ws`.
    #[serde(rename = "websocket")]
    WebSocket,
    /// The `venue` / `venue-lossy` data channels of a WHEP session.
    DataChannel,
}

/// Which delivery a frame needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Ordered and never dropped (closing the client instead when it cannot keep up).
    Reliable,
    /// May be dropped when the client is behind (cursors, fireworks).
    Lossy,
}

/// A salted SHA-256 of a client IP, truncated to 128 bits. Raw IPs are never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpHash(pub [u8; 16]);

impl IpHash {
    /// `sha256(salt ‖ ip octets)[..16]`; IPv4-mapped IPv6 addresses hash as IPv4.
    pub fn of(ip: IpAddr, salt: &[u8]) -> IpHash {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let mut h = Sha256::new();
        h.update(salt);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        IpHash(out)
    }

    /// Lowercase hex (32 chars), the store's form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`IpHash::to_hex`]'s form.
    pub fn from_hex(s: &str) -> Option<IpHash> {
        let v = hex::decode(s).ok()?;
        Some(IpHash(v.try_into().ok()?))
    }
}

/// The time of an input: monotonic for limits and ticks, wall clock for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// Tunables of a hub.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    /// Batch period. Default 50 ms.
    pub tick: Duration,
    /// Stickers kept on the board. Default 2000.
    pub board_size: usize,
    /// Chat messages in a snapshot. Default 200.
    pub chat_history: usize,
    /// Users listed in a snapshot. Default 500.
    pub users_listed: usize,
    /// Frames above this many bytes are deflated. Default 512.
    pub deflate_threshold: usize,
    pub limits: LimitConfig,
    /// Bad frames within `offence_window` that close a connection. Default 10.
    pub max_offences: usize,
    /// Default 60 s.
    pub offence_window: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            tick: Duration::from_millis(50),
            board_size: 2000,
            chat_history: 200,
            users_listed: 500,
            deflate_threshold: codec::DEFAULT_DEFLATE_THRESHOLD,
            limits: LimitConfig::default(),
            max_offences: 10,
            offence_window: Duration::from_secs(60),
        }
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: u64,
    pub user_id: u64,
    pub display_name: String,
    pub text: String,
    pub sent_ms: u64,
    pub starred: bool,
    pub admin: bool,
}

impl ChatRecord {
    fn to_proto(&self) -> v1::ChatMessage {
        v1::ChatMessage {
            id: self.id,
            user_id: self.user_id,
            display_name: self.display_name.clone(),
            text: self.text.clone(),
            sent_ms: self.sent_ms,
            starred: self.starred,
            admin: self.admin,
        }
    }
}

/// A sticker on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct StickerRecord {
    pub id: u64,
    pub sticker_id: String,
    /// Normalized [0, 1].
    pub x: f32,
    pub y: f32,
    /// Degrees [-180, 180].
    pub rotation_deg: f32,
    /// [0.5, 2].
    pub scale: f32,
    pub user_id: u64,
    pub placed_ms: u64,
}

impl StickerRecord {
    fn to_proto(&self) -> v1::Sticker {
        v1::Sticker {
            id: self.id,
            sticker_id: self.sticker_id.clone(),
            x: self.x,
            y: self.y,
            rotation_deg: self.rotation_deg,
            scale: self.scale,
            user_id: self.user_id,
            placed_ms: self.placed_ms,
        }
    }
}

/// A ban of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub ip_hash: IpHash,
    /// Ms since the epoch; 0 = until lifted.
    pub until_ms: u64,
    pub reason: String,
}

/// A mute of a person (address + name key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteRecord {
    pub ip_hash: Option<IpHash>,
    pub name_key: String,
    /// Ms since the epoch; 0 = unmuted (the record is deleted).
    pub until_ms: u64,
}

/// A star (verified mark) of a person (address + name key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarRecord {
    pub ip_hash: Option<IpHash>,
    pub name_key: String,
    pub starred: bool,
}

/// A change the shell must write to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum PersistOp {
    Chat(ChatRecord),
    DeleteChat(u64),
    ClearChat,
    Sticker(StickerRecord),
    /// These stickers left the board (it keeps the newest N).
    ExpireStickers(Vec<u64>),
    ClearStickers,
    Ban(BanRecord),
    Mute(MuteRecord),
    Star(StarRecord),
    Settings(RoomSettings),
}

/// What the hub wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One frame to one connection.
    Send {
        conn: ConnId,
        class: Class,
        frame: Bytes,
    },
    /// The same frame to every connection of the room.
    Broadcast { class: Class, frame: Bytes },
    /// Send `notice` (an encoded `ServerMessage`) and close. The hub has forgotten `conn`.
    Close { conn: ConnId, notice: Bytes },
    /// Write to the store.
    Persist(PersistOp),
}

/// An input of the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A new connection (before its hello). `ip`: the hashed peer address, if known.
    Connect {
        conn: ConnId,
        transport: Transport,
        ip: Option<IpHash>,
    },
    /// One client frame (an encoded `ClientMessage`).
    Frame { conn: ConnId, data: Bytes },
    /// A frame the transport could not pass on (e.g. a WebSocket text frame).
    BadFrame { conn: ConnId, reason: &'static str },
    /// The connection is gone.
    Disconnect { conn: ConnId },
    /// Time to send the batches.
    Tick,
    /// The room's stage changed (from the state actor).
    Stage(v1::StageState),
}

/// A moderation action (admin command over the data channel / WebSocket, or the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    DeleteMessage {
        message_id: u64,
    },
    /// 1..=604800 s; 0 unmutes.
    Mute {
        user_id: u64,
        duration_s: u32,
    },
    Kick {
        user_id: u64,
        reason: String,
    },
    /// 0 = until lifted.
    Ban {
        user_id: u64,
        duration_s: u32,
        reason: String,
    },
    /// 0..=3600 s.
    SlowMode {
        interval_s: u32,
    },
    ClearChat,
    ClearStickers,
    Star {
        user_id: u64,
        starred: bool,
    },
}

/// Longest mute, seconds (a week).
pub const MAX_MUTE_S: u32 = 604_800;

/// Why a moderation action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModerationError {
    #[error("no user {0} in this room")]
    NoSuchUser(u64),
    #[error("no chat message {0}")]
    NoSuchMessage(u64),
    #[error("{0}")]
    Invalid(String),
}

/// A user as listed to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub id: u64,
    /// Empty when watching without a name.
    pub display_name: String,
    pub starred: bool,
    pub admin: bool,
    /// Ms since the epoch, 0 when not muted.
    pub muted_until_ms: u64,
    pub transport: Transport,
}

/// Counters of a hub (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Client frames received.
    pub frames_in: u64,
    /// Oversized, undecodable or out-of-place frames dropped.
    pub bad_frames: u64,
    /// Commands dropped by rate limits.
    pub rate_limited: u64,
    /// Commands with NaN coordinates dropped.
    pub nan_dropped: u64,
    /// Connections closed for repeated offences.
    pub closed_for_offences: u64,
    /// Batches broadcast (reliable + lossy).
    pub batches: u64,
    /// Users (connections that said hello) now — a gauge.
    pub users: u64,
}

/// What the store had for a room at start-up.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub settings: Option<RoomSettings>,
    /// Oldest first.
    pub chat: Vec<ChatRecord>,
    /// Oldest first.
    pub stickers: Vec<StickerRecord>,
    pub bans: Vec<BanRecord>,
    pub mutes: Vec<MuteRecord>,
    pub stars: Vec<StarRecord>,
    /// Largest ids used so far (new ones are above).
    pub max_user_id: u64,
    pub max_chat_id: u64,
    pub max_sticker_id: u64,
}

#[derive(Debug)]
struct Conn {
    user_id: u64,
    transport: Transport,
    ip: Option<IpHash>,
    joined: bool,
    name: Option<String>,
    name_key: Option<String>,
    admin: bool,
    starred: bool,
    muted_until_ms: u64,
    last_chat: Option<Instant>,
    limits: ConnLimits,
    offences: Offences,
}

impl Conn {
    fn user(&self) -> v1::User {
        v1::User {
            id: self.user_id,
            display_name: self.name.clone().unwrap_or_default(),
            starred: self.starred,
            admin: self.admin,
            muted_until_ms: self.muted_until_ms,
        }
    }
}

/// The sans-IO interaction state of one room. See the module doc.
#[derive(Debug)]
pub struct RoomHub {
    config: HubConfig,
    room: String,
    admin_digest: [u8; 32],
    limits: Limits,
    conns: HashMap<ConnId, Conn>,
    by_user: HashMap<u64, ConnId>,
    names: HashMap<String, ConnId>,
    joined: usize,
    next_user_id: u64,
    next_chat_id: u64,
    next_sticker_id: u64,
    settings: RoomSettings,
    stage: Option<v1::StageState>,
    board: VecDeque<StickerRecord>,
    chat: VecDeque<ChatRecord>,
    bans: Vec<BanRecord>,
    mutes: HashMap<(Option<IpHash>, String), u64>,
    stars: HashSet<(Option<IpHash>, String)>,
    tick: u64,
    events: Vec<v1::Event>,
    lossy_events: Vec<v1::Event>,
    cursors: BTreeMap<u64, (f32, f32)>,
    user_count_sent: Option<usize>,
    awaiting_snapshot: Vec<ConnId>,
    outputs: VecDeque<Output>,
    stats: HubStats,
    last_cleanup: Option<Instant>,
}

fn event(kind: EventKind) -> v1::Event {
    v1::Event { kind: Some(kind) }
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
        let board_size = config.board_size;
        let history = config.chat_history;
        let mut board: VecDeque<StickerRecord> = loaded.stickers.into();
        while board.len() > board_size {
            board.pop_front();
        }
        let mut chat: VecDeque<ChatRecord> = loaded.chat.into();
        while chat.len() > history {
            chat.pop_front();
        }
        RoomHub {
            limits: Limits::new(config.limits),
            config,
            room: room.to_owned(),
            admin_digest,
            conns: HashMap::new(),
            by_user: HashMap::new(),
            names: HashMap::new(),
            joined: 0,
            next_user_id: loaded.max_user_id + 1,
            next_chat_id: loaded.max_chat_id + 1,
            next_sticker_id: loaded.max_sticker_id + 1,
            settings: loaded
                .settings
                .unwrap_or_else(|| RoomSettings::with_title(title)),
            stage: None,
            board,
            chat,
            bans: loaded.bans,
            mutes: loaded
                .mutes
                .into_iter()
                .filter(|m| m.until_ms > 0)
                .map(|m| ((m.ip_hash, m.name_key), m.until_ms))
                .collect(),
            stars: loaded
                .stars
                .into_iter()
                .filter(|s| s.starred)
                .map(|s| (s.ip_hash, s.name_key))
                .collect(),
            tick: 0,
            events: Vec::new(),
            lossy_events: Vec::new(),
            cursors: BTreeMap::new(),
            user_count_sent: None,
            awaiting_snapshot: Vec::new(),
            outputs: VecDeque::new(),
            stats: HubStats::default(),
            last_cleanup: None,
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
            users: self.joined as u64,
            ..self.stats
        }
    }

    /// Connections that said hello.
    pub fn user_count(&self) -> usize {
        self.joined
    }

    /// Connections, joined or not.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The tick period.
    pub fn tick_period(&self) -> Duration {
        self.config.tick
    }

    /// Every joined user, by id.
    pub fn users(&self) -> Vec<UserInfo> {
        let mut users: Vec<UserInfo> = self
            .conns
            .values()
            .filter(|c| c.joined)
            .map(|c| UserInfo {
                id: c.user_id,
                display_name: c.name.clone().unwrap_or_default(),
                starred: c.starred,
                admin: c.admin,
                muted_until_ms: c.muted_until_ms,
                transport: c.transport,
            })
            .collect();
        users.sort_by_key(|u| u.id);
        users
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
                    self.events.push(event(EventKind::Stage(stage)));
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
        self.events
            .push(event(EventKind::Settings(self.settings.to_proto())));
        self.outputs
            .push_back(Output::Persist(PersistOp::Settings(self.settings.clone())));
    }

    fn send(&mut self, conn: ConnId, body: ServerBody) {
        let frame = encode(body, self.config.deflate_threshold);
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
            let notice = encode(notice(code, text, until_ms), self.config.deflate_threshold);
            self.outputs.push_back(Output::Close { conn, notice });
        }
    }

    /// Removes a connection; returns whether it existed.
    fn forget(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.remove(&id) else {
            return false;
        };
        self.by_user.remove(&conn.user_id);
        self.cursors.remove(&conn.user_id);
        if let Some(key) = &conn.name_key
            && self.names.get(key) == Some(&id)
        {
            self.names.remove(key);
        }
        if conn.joined {
            self.joined = self.joined.saturating_sub(1);
            if conn.name.is_some() {
                self.events.push(event(EventKind::UserLeft(conn.user_id)));
            }
        }
        true
    }

    fn banned_until(&self, ip: Option<&IpHash>, wall_ms: u64) -> Option<u64> {
        let ip = ip?;
        self.bans
            .iter()
            .find(|b| &b.ip_hash == ip && (b.until_ms == 0 || b.until_ms > wall_ms))
            .map(|b| b.until_ms)
    }

    fn connect(&mut self, now: Now, conn: ConnId, transport: Transport, ip: Option<IpHash>) {
        if self.conns.contains_key(&conn) {
            return;
        }
        if let Some(until) = self.banned_until(ip.as_ref(), now.wall_ms) {
            let notice = encode(
                notice(NoticeCode::Banned, "you are banned from this room", until),
                self.config.deflate_threshold,
            );
            self.outputs.push_back(Output::Close { conn, notice });
            return;
        }
        let user_id = self.next_user_id;
        self.next_user_id += 1;
        self.by_user.insert(user_id, conn);
        self.conns.insert(
            conn,
            Conn {
                user_id,
                transport,
                ip,
                joined: false,
                name: None,
                name_key: None,
                admin: false,
                starred: false,
                muted_until_ms: 0,
                last_chat: None,
                limits: self.limits.conn(),
                offences: Offences::default(),
            },
        );
    }

    /// Counts a bad frame; closes the connection after too many.
    fn offence(&mut self, now: Now, id: ConnId, reason: &str) {
        self.stats.bad_frames += 1;
        let (max, window) = (self.config.max_offences, self.config.offence_window);
        let Some(conn) = self.conns.get_mut(&id) else {
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
        let Some(joined) = self.conns.get(&id).map(|c| c.joined) else {
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
                if !self.conns.get(&id).is_some_and(|c| c.admin) {
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
        let mut granted = None;
        if !wanted.trim().is_empty() {
            match names::normalize_name(wanted) {
                Ok(name) => {
                    let key = names::name_key(&name);
                    if self.names.contains_key(&key) {
                        rejected = Some(names::NameError::Taken.to_string());
                    } else {
                        granted = Some((name, key));
                    }
                }
                Err(e) => rejected = Some(e.to_string()),
            }
        }
        let tick_ms = u32::try_from(self.config.tick.as_millis()).unwrap_or(u32::MAX);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.joined = true;
        conn.admin = admin;
        if let Some((name, key)) = granted {
            let identity = (conn.ip, key.clone());
            conn.muted_until_ms = self
                .mutes
                .get(&identity)
                .copied()
                .filter(|until| *until > now.wall_ms)
                .unwrap_or(0);
            conn.starred = self.stars.contains(&identity);
            conn.name = Some(name);
            conn.name_key = Some(key.clone());
            self.names.insert(key, id);
        }
        let hello = v1::Hello {
            protocol_version: venue_proto::PROTOCOL_VERSION,
            room: self.room.clone(),
            user_id: conn.user_id,
            display_name: conn.name.clone().unwrap_or_default(),
            admin,
            tick_ms,
        };
        let joined_event = conn.name.is_some().then(|| conn.user());
        self.joined += 1;
        self.send(id, ServerBody::Hello(hello));
        if let Some(reason) = rejected {
            self.tell(id, NoticeCode::NameRejected, reason, 0);
        }
        if let Some(user) = joined_event {
            self.events.push(event(EventKind::UserJoined(user)));
        }
        self.awaiting_snapshot.push(id);
    }

    /// Rate limit; on refusal tells the client once per burst. Returns whether to go on.
    fn allow(&mut self, id: ConnId, kind: Kind) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
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
        allowed_by_mode || self.conns.get(&id).is_some_and(|c| c.admin)
    }

    fn cursor(&mut self, id: ConnId, x: f32, y: f32) {
        if !self.may(id, self.settings.mode.motion()) || !self.allow(id, Kind::Cursor) {
            return;
        }
        if let Some(user) = self.conns.get(&id).map(|c| c.user_id) {
            self.cursors.insert(user, (x, y));
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
        if let Some(user_id) = self.conns.get(&id).map(|c| c.user_id) {
            self.lossy_events
                .push(event(EventKind::Firework(v1::Firework {
                    user_id,
                    x,
                    y,
                    hue,
                })));
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
        let Some(user_id) = self.conns.get(&id).map(|c| c.user_id) else {
            return;
        };
        sticker.id = self.next_sticker_id;
        self.next_sticker_id += 1;
        sticker.user_id = user_id;
        sticker.placed_ms = now.wall_ms;
        self.events
            .push(event(EventKind::StickerPlaced(sticker.to_proto())));
        self.outputs
            .push_back(Output::Persist(PersistOp::Sticker(sticker.clone())));
        self.board.push_back(sticker);
        let mut expired = Vec::new();
        while self.board.len() > self.config.board_size {
            if let Some(old) = self.board.pop_front() {
                expired.push(old.id);
            }
        }
        if !expired.is_empty() {
            self.events
                .push(event(EventKind::StickersExpired(v1::StickersExpired {
                    ids: expired.clone(),
                })));
            self.outputs
                .push_back(Output::Persist(PersistOp::ExpireStickers(expired)));
        }
    }

    fn chat(&mut self, now: Now, id: ConnId, raw: &str) {
        let Some(conn) = self.conns.get(&id) else {
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
        let Some(conn) = self.conns.get(&id) else {
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
        let record = ChatRecord {
            id: self.next_chat_id,
            user_id: conn.user_id,
            display_name: conn.name.clone().unwrap_or_default(),
            text,
            sent_ms: now.wall_ms,
            starred: conn.starred,
            admin: conn.admin,
        };
        self.next_chat_id += 1;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_chat = Some(now.at);
        }
        self.events.push(event(EventKind::Chat(record.to_proto())));
        self.outputs
            .push_back(Output::Persist(PersistOp::Chat(record.clone())));
        self.chat.push_back(record);
        while self.chat.len() > self.config.chat_history {
            self.chat.pop_front();
        }
    }

    fn user_updated(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get(&id)
            && conn.joined
        {
            self.events.push(event(EventKind::UserUpdated(conn.user())));
        }
    }

    /// Applies a moderation action (admin command or admin API). Errors:
    /// [`ModerationError::NoSuchUser`], [`ModerationError::NoSuchMessage`],
    /// [`ModerationError::Invalid`] (a value out of range).
    pub fn moderate(&mut self, now: Now, action: Moderation) -> Result<(), ModerationError> {
        self.limits.advance(now.at);
        let target = |hub: &RoomHub, user_id: u64| {
            hub.by_user
                .get(&user_id)
                .copied()
                .filter(|c| hub.conns.contains_key(c))
                .ok_or(ModerationError::NoSuchUser(user_id))
        };
        match action {
            Moderation::DeleteMessage { message_id } => {
                if message_id == 0 || message_id >= self.next_chat_id {
                    return Err(ModerationError::NoSuchMessage(message_id));
                }
                self.chat.retain(|m| m.id != message_id);
                self.events.push(event(EventKind::ChatDeleted(message_id)));
                self.outputs
                    .push_back(Output::Persist(PersistOp::DeleteChat(message_id)));
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
                let until = if duration_s == 0 {
                    0
                } else {
                    now.wall_ms
                        .saturating_add(u64::from(duration_s).saturating_mul(1000))
                };
                let Some(conn) = self.conns.get_mut(&id) else {
                    return Err(ModerationError::NoSuchUser(user_id));
                };
                conn.muted_until_ms = until;
                let record = MuteRecord {
                    ip_hash: conn.ip,
                    name_key: conn.name_key.clone().unwrap_or_default(),
                    until_ms: until,
                };
                let identity = (record.ip_hash, record.name_key.clone());
                if until == 0 {
                    self.mutes.remove(&identity);
                } else {
                    self.mutes.insert(identity, until);
                    self.tell(id, NoticeCode::Muted, "an admin muted you", until);
                }
                self.outputs
                    .push_back(Output::Persist(PersistOp::Mute(record)));
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
                let until = if duration_s == 0 {
                    0
                } else {
                    now.wall_ms
                        .saturating_add(u64::from(duration_s).saturating_mul(1000))
                };
                if let Some(ip_hash) = self.conns.get(&id).and_then(|c| c.ip) {
                    let record = BanRecord {
                        ip_hash,
                        until_ms: until,
                        reason: reason.clone(),
                    };
                    self.bans.push(record.clone());
                    self.outputs
                        .push_back(Output::Persist(PersistOp::Ban(record)));
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
                self.events
                    .push(event(EventKind::ChatCleared(v1::ChatCleared {})));
                self.outputs
                    .push_back(Output::Persist(PersistOp::ClearChat));
            }
            Moderation::ClearStickers => {
                self.board.clear();
                self.events
                    .push(event(EventKind::StickersCleared(v1::StickersCleared {})));
                self.outputs
                    .push_back(Output::Persist(PersistOp::ClearStickers));
            }
            Moderation::Star { user_id, starred } => {
                let id = target(self, user_id)?;
                let Some(conn) = self.conns.get_mut(&id) else {
                    return Err(ModerationError::NoSuchUser(user_id));
                };
                conn.starred = starred;
                let record = StarRecord {
                    ip_hash: conn.ip,
                    name_key: conn.name_key.clone().unwrap_or_default(),
                    starred,
                };
                let identity = (record.ip_hash, record.name_key.clone());
                if starred {
                    self.stars.insert(identity);
                } else {
                    self.stars.remove(&identity);
                }
                self.outputs
                    .push_back(Output::Persist(PersistOp::Star(record)));
                self.user_updated(id);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> v1::Snapshot {
        let mut users: Vec<v1::User> = self
            .conns
            .values()
            .filter(|c| c.joined && c.name.is_some())
            .map(Conn::user)
            .collect();
        users.sort_by_key(|u| u.id);
        users.truncate(self.config.users_listed);
        v1::Snapshot {
            stage: self.stage.clone(),
            settings: Some(self.settings.to_proto()),
            stickers: self.board.iter().map(StickerRecord::to_proto).collect(),
            chat: self.chat.iter().map(ChatRecord::to_proto).collect(),
            users,
            user_count: u32::try_from(self.joined).unwrap_or(u32::MAX),
            tick: self.tick,
        }
    }

    fn tick(&mut self, now: Now) {
        self.tick += 1;
        let user_count = u32::try_from(self.joined).unwrap_or(u32::MAX);
        let threshold = self.config.deflate_threshold;
        if !self.events.is_empty() || self.user_count_sent != Some(self.joined) {
            let batch = v1::EventBatch {
                tick: self.tick,
                cursors: Vec::new(),
                events: std::mem::take(&mut self.events),
                user_count,
            };
            self.user_count_sent = Some(self.joined);
            self.stats.batches += 1;
            self.outputs.push_back(Output::Broadcast {
                class: Class::Reliable,
                frame: encode(ServerBody::Batch(batch), threshold),
            });
        }
        if !self.cursors.is_empty() || !self.lossy_events.is_empty() {
            let batch = v1::EventBatch {
                tick: self.tick,
                cursors: std::mem::take(&mut self.cursors)
                    .into_iter()
                    .map(|(user_id, (x, y))| v1::CursorState { user_id, x, y })
                    .collect(),
                events: std::mem::take(&mut self.lossy_events),
                user_count,
            };
            self.stats.batches += 1;
            self.outputs.push_back(Output::Broadcast {
                class: Class::Lossy,
                frame: encode(ServerBody::Batch(batch), threshold),
            });
        }
        let waiting: Vec<ConnId> = std::mem::take(&mut self.awaiting_snapshot)
            .into_iter()
            .filter(|c| self.conns.contains_key(c))
            .collect();
        if !waiting.is_empty() {
            let frame = encode(ServerBody::Snapshot(self.snapshot()), threshold);
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
            let wall = now.wall_ms;
            self.bans.retain(|b| b.until_ms == 0 || b.until_ms > wall);
            self.mutes.retain(|_, until| *until > wall);
        }
    }
}

/// What a bounded per-client send queue does with one more frame (the slow-client policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Enqueue,
    /// Drop this lossy frame: the client is behind.
    Drop,
    /// Close the client with `NOTICE_CODE_TOO_SLOW`: its reliable backlog is full.
    Close,
}

/// The slow-client policy: lossy frames only while the queue is short, reliable frames until
/// the queue is full; a client whose reliable backlog reaches the cap is closed. Nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Frames a client's queue holds (the hard cap).
    pub capacity: usize,
    /// Lossy frames are dropped once this many frames are queued.
    pub lossy_below: usize,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            capacity: 256,
            lossy_below: 4,
        }
    }
}

impl QueuePolicy {
    /// The decision for a frame of `class` when `queued` frames wait.
    pub fn admit(&self, queued: usize, class: Class) -> Admit {
        match class {
            Class::Lossy if queued >= self.lossy_below => Admit::Drop,
            Class::Reliable if queued >= self.capacity => Admit::Close,
            _ => Admit::Enqueue,
        }
    }
}

/// The `TOO_SLOW` notice frame.
pub fn too_slow_notice() -> Bytes {
    encode(
        notice(
            NoticeCode::TooSlow,
            "your connection could not keep up and was closed",
            0,
        ),
        usize::MAX,
    )
}

#[cfg(test)]
#[path = "../tests/hub.rs"]
mod tests;
