//! Unit tests of the hub core on virtual time: no sockets, no sleeps.

use bytes::Bytes;

use super::codec::decode_server;
use super::limits::LimitConfig;
use super::settings::{Mode, StickerSet};
use super::*;
use prost::Message;
use std::net::{IpAddr, Ipv4Addr};
use v1::client_message::Body as C;

const TOKEN: &str = "admin-token-for-tests";

struct H {
    hub: RoomHub,
    t0: Instant,
    ms: u64,
}

fn ip(n: u8) -> IpHash {
    IpHash::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), b"salt")
}

fn frame(body: C) -> Bytes {
    Bytes::from(v1::ClientMessage { body: Some(body) }.encode_to_vec())
}

fn hello(name: &str) -> C {
    C::Hello(v1::ClientHello {
        protocol_version: venue_proto::PROTOCOL_VERSION,
        display_name: name.into(),
        admin_token: String::new(),
    })
}

fn chat(text: &str) -> C {
    C::Chat(v1::ChatSend { text: text.into() })
}

fn sticker(id: &str, x: f32, y: f32) -> C {
    C::Sticker(v1::PlaceSticker {
        sticker_id: id.into(),
        x,
        y,
        rotation_deg: 0.0,
        scale: 1.0,
    })
}

fn admin(cmd: v1::admin_command::Command) -> C {
    C::Admin(v1::AdminCommand { command: Some(cmd) })
}

fn decode(frame: &Bytes) -> v1::ServerMessage {
    decode_server(frame).expect("server frame decodes")
}

/// What a list of outputs says, decoded.
#[derive(Default, Debug)]
struct Seen {
    reliable: Vec<v1::EventBatch>,
    lossy: Vec<v1::EventBatch>,
    /// (conn, message) of each Send.
    sent: Vec<(ConnId, v1::ServerMessage)>,
    closed: Vec<(ConnId, v1::Notice)>,
    persisted: Vec<PersistOp>,
    broadcasts: usize,
}

impl Seen {
    fn of(outputs: Vec<Output>) -> Seen {
        let mut s = Seen::default();
        for o in outputs {
            match o {
                Output::Broadcast { class, frame } => {
                    s.broadcasts += 1;
                    let Some(v1::server_message::Body::Batch(b)) = decode(&frame).body else {
                        panic!("broadcast is not a batch");
                    };
                    match class {
                        Class::Reliable => s.reliable.push(b),
                        Class::Lossy => s.lossy.push(b),
                    }
                }
                Output::Send { conn, frame, class } => {
                    assert_eq!(class, Class::Reliable);
                    s.sent.push((conn, decode(&frame)));
                }
                Output::Close { conn, notice } => {
                    let Some(v1::server_message::Body::Notice(n)) = decode(&notice).body else {
                        panic!("close without a notice");
                    };
                    s.closed.push((conn, n));
                }
                Output::Persist(op) => s.persisted.push(op),
            }
        }
        s
    }

    fn notices(&self, conn: u64) -> Vec<v1::Notice> {
        self.sent
            .iter()
            .filter(|(c, _)| c.0 == conn)
            .filter_map(|(_, m)| match &m.body {
                Some(v1::server_message::Body::Notice(n)) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn codes(&self, conn: u64) -> Vec<NoticeCode> {
        self.notices(conn)
            .iter()
            .map(|n| NoticeCode::try_from(n.code).unwrap())
            .collect()
    }

    fn hello(&self, conn: u64) -> Option<v1::Hello> {
        self.sent.iter().find_map(|(c, m)| match &m.body {
            Some(v1::server_message::Body::Hello(h)) if c.0 == conn => Some(h.clone()),
            _ => None,
        })
    }

    fn snapshot(&self, conn: u64) -> Option<v1::Snapshot> {
        self.sent.iter().find_map(|(c, m)| match &m.body {
            Some(v1::server_message::Body::Snapshot(s)) if c.0 == conn => Some(s.clone()),
            _ => None,
        })
    }

    fn events(&self) -> Vec<EventKind> {
        self.reliable
            .iter()
            .flat_map(|b| b.events.iter().filter_map(|e| e.kind.clone()))
            .collect()
    }

    fn chats(&self) -> Vec<v1::ChatMessage> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                EventKind::Chat(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

impl H {
    fn new() -> H {
        H::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> H {
        H::loaded(config, Loaded::default())
    }

    fn loaded(config: HubConfig, loaded: Loaded) -> H {
        let digest: [u8; 32] = Sha256::digest(TOKEN.as_bytes()).into();
        H {
            hub: RoomHub::new("main", "Main stage", config, digest, loaded),
            t0: Instant::now(),
            ms: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.t0 + Duration::from_millis(self.ms),
            wall_ms: 1_700_000_000_000 + self.ms,
        }
    }

    fn advance(&mut self, ms: u64) {
        self.ms += ms;
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        self.hub.handle(now, input);
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.hub.poll_output()).collect()
    }

    fn connect(&mut self, conn: u64, ip_hash: Option<IpHash>) {
        self.input(Input::Connect {
            conn: ConnId(conn),
            transport: Transport::WebSocket,
            ip: ip_hash,
        });
    }

    fn send(&mut self, conn: u64, body: C) {
        self.input(Input::Frame {
            conn: ConnId(conn),
            data: frame(body),
        });
    }

    /// Connects `conn` (own IP) and says hello as `name`; returns the user id.
    fn join(&mut self, conn: u64, name: &str) -> u64 {
        self.connect(conn, Some(ip(conn as u8)));
        self.send(conn, hello(name));
        let seen = Seen::of(self.drain());
        seen.hello(conn).expect("hello answered").user_id
    }

    fn join_admin(&mut self, conn: u64) -> u64 {
        self.connect(conn, Some(ip(200)));
        self.send(
            conn,
            C::Hello(v1::ClientHello {
                protocol_version: 1,
                display_name: "Admin".into(),
                admin_token: TOKEN.into(),
            }),
        );
        let seen = Seen::of(self.drain());
        let h = seen.hello(conn).expect("hello answered");
        assert!(h.admin);
        h.user_id
    }

    /// Advances one tick period and ticks; returns what came out.
    fn tick(&mut self) -> Seen {
        self.advance(50);
        self.input(Input::Tick);
        Seen::of(self.drain())
    }
}

#[test]
fn hello_is_answered_at_once_and_the_snapshot_at_the_next_tick() {
    let mut h = H::new();
    h.connect(1, Some(ip(1)));
    h.send(1, hello("Ann"));
    let seen = Seen::of(h.drain());
    let hello = seen.hello(1).unwrap();
    assert_eq!(hello.protocol_version, 1);
    assert_eq!(hello.room, "main");
    assert_eq!(hello.display_name, "Ann");
    assert_eq!(hello.tick_ms, 50);
    assert!(hello.user_id > 0);
    assert!(!hello.admin);
    assert!(seen.snapshot(1).is_none());
    let seen = h.tick();
    let snap = seen.snapshot(1).expect("snapshot at the tick");
    assert_eq!(snap.tick, 1);
    assert_eq!(snap.user_count, 1);
    assert_eq!(snap.users[0].display_name, "Ann");
    let settings = snap.settings.unwrap();
    assert_eq!(settings.title, "Main stage");
    assert_eq!(settings.sticker_set.unwrap().stickers.len(), 8);
    // The join went out in this tick's batch, which precedes the snapshot (tick ≤ snapshot's).
    assert_eq!(seen.reliable.len(), 1);
    assert_eq!(seen.reliable[0].tick, 1);
    assert!(matches!(seen.events()[0], EventKind::UserJoined(ref u) if u.display_name == "Ann"));
}

#[test]
fn cursors_coalesce_to_the_latest_per_user_in_one_lossy_batch_per_tick() {
    let mut h = H::new();
    let a = h.join(1, "A");
    let b = h.join(2, "B");
    h.tick();
    for i in 0..10 {
        h.send(
            1,
            C::Cursor(v1::CursorMove {
                x: i as f32 / 10.0,
                y: 0.5,
            }),
        );
        h.advance(3);
    }
    h.send(2, C::Cursor(v1::CursorMove { x: 0.25, y: 0.75 }));
    let seen = h.tick();
    assert_eq!(seen.lossy.len(), 1, "one lossy batch per tick");
    assert_eq!(seen.reliable.len(), 0, "nothing reliable happened");
    assert_eq!(seen.broadcasts, 1);
    let cursors = &seen.lossy[0].cursors;
    assert_eq!(cursors.len(), 2);
    let ca = cursors.iter().find(|c| c.user_id == a).unwrap();
    assert!((ca.x - 0.9).abs() < 1e-6, "latest position wins: {ca:?}");
    let cb = cursors.iter().find(|c| c.user_id == b).unwrap();
    assert_eq!((cb.x, cb.y), (0.25, 0.75));
    assert_eq!(seen.lossy[0].user_count, 2);
    // Nothing new: no frames at all.
    let seen = h.tick();
    assert_eq!(seen.broadcasts, 0);
}

#[test]
fn a_busy_tick_is_at_most_two_frames_each_encoded_once() {
    let mut h = H::new();
    for c in 1..=20 {
        h.join(c, &format!("user{c}"));
    }
    h.tick();
    for c in 1..=20 {
        h.send(c, C::Cursor(v1::CursorMove { x: 0.1, y: 0.2 }));
        h.send(c, chat("hello"));
        h.send(c, sticker("heart", 0.5, 0.5));
        h.send(
            c,
            C::Firework(v1::LaunchFirework {
                x: 0.5,
                y: 0.5,
                hue: 400,
            }),
        );
    }
    let seen = h.tick();
    assert_eq!(
        seen.broadcasts, 2,
        "one reliable + one lossy frame for 20 clients"
    );
    assert_eq!(seen.reliable[0].events.len(), 40, "20 chats + 20 stickers");
    assert_eq!(seen.lossy[0].cursors.len(), 20);
    assert_eq!(
        seen.lossy[0].events.len(),
        20,
        "fireworks ride the lossy batch"
    );
    let fw = seen.lossy[0].events.iter().find_map(|e| match &e.kind {
        Some(EventKind::Firework(f)) => Some(*f),
        _ => None,
    });
    assert_eq!(fw.unwrap().hue, 40, "hue wraps into [0, 360)");
    assert_eq!(seen.reliable[0].tick, seen.lossy[0].tick);
    // Chat, stickers persisted; cursors and fireworks not.
    assert_eq!(seen.persisted.len(), 40);
}

#[test]
fn large_frames_are_deflated_and_inflate_to_the_same_message() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    for i in 0..5 {
        h.send(
            1,
            chat(&format!(
                "a fairly long message number {i} with some repeated words words words {}",
                "la ".repeat(40)
            )),
        );
    }
    h.advance(5000);
    let out: Vec<Output> = {
        h.advance(50);
        h.input(Input::Tick);
        h.drain()
    };
    let frame = out
        .iter()
        .find_map(|o| match o {
            Output::Broadcast { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .unwrap();
    let raw = v1::ServerMessage::decode(frame.clone()).unwrap();
    assert!(
        matches!(raw.body, Some(v1::server_message::Body::Deflated(_))),
        "above 512 bytes"
    );
    let msg = decode(&frame);
    let Some(v1::server_message::Body::Batch(b)) = msg.body else {
        panic!()
    };
    assert_eq!(b.events.len(), 5);
    // Small frames stay plain.
    let small = codec::encode(codec::notice(NoticeCode::Muted, "x", 0), 512);
    assert!(matches!(
        v1::ServerMessage::decode(small).unwrap().body,
        Some(v1::server_message::Body::Notice(_))
    ));
}

#[test]
fn late_joiner_snapshot_has_stage_settings_board_chat_and_users() {
    let mut h = H::new();
    let a = h.join(1, "Ann");
    h.input(Input::Stage(v1::StageState {
        title: "Main stage".into(),
        layout: 2,
        slots: vec![],
        revision: 7,
        viewer_count: 3,
    }));
    h.send(1, sticker("star", 0.3, 0.4));
    h.send(1, chat("first!"));
    let seen = h.tick();
    assert!(
        seen.events()
            .iter()
            .any(|e| matches!(e, EventKind::Stage(s) if s.revision == 7))
    );
    h.join(2, "Bob");
    let seen = h.tick();
    let snap = seen.snapshot(2).unwrap();
    assert_eq!(snap.stage.as_ref().unwrap().revision, 7);
    assert_eq!(snap.stickers.len(), 1);
    assert_eq!(snap.stickers[0].sticker_id, "star");
    assert_eq!(snap.stickers[0].user_id, a);
    assert_eq!(snap.chat.len(), 1);
    assert_eq!(snap.chat[0].text, "first!");
    assert_eq!(snap.chat[0].display_name, "Ann");
    assert_eq!(snap.users.len(), 2);
    assert_eq!(snap.user_count, 2);
    assert_eq!(snap.tick, 2);
    // Unnamed watchers count but are not listed.
    h.connect(3, Some(ip(3)));
    h.send(3, hello(""));
    let seen = h.tick();
    let snap = seen.snapshot(3).unwrap();
    assert_eq!((snap.users.len(), snap.user_count), (2, 3));
}

#[test]
fn snapshot_lists_at_most_500_users_and_200_chat_messages() {
    let mut h = H::new();
    for c in 1..=510 {
        h.join(c, &format!("u{c}"));
    }
    h.tick();
    for i in 0..210u64 {
        h.send(1 + (i % 500), chat(&format!("m{i}")));
    }
    h.tick();
    h.join(9999, "late");
    let snap = h.tick().snapshot(9999).unwrap();
    assert_eq!(snap.users.len(), 500);
    assert_eq!(snap.user_count, 511);
    assert_eq!(snap.chat.len(), 200);
    assert_eq!(snap.chat[0].text, "m10", "oldest first, newest 200 kept");
}

#[test]
fn the_board_keeps_the_newest_n_and_announces_expiry() {
    let mut h = H::with(HubConfig {
        board_size: 3,
        ..Default::default()
    });
    h.join(1, "A");
    h.tick();
    for i in 0..5 {
        h.send(1, sticker("heart", 0.1 * i as f32, 0.5));
        h.advance(1000);
    }
    let seen = h.tick();
    let expired: Vec<u64> = seen
        .events()
        .into_iter()
        .filter_map(|e| match e {
            EventKind::StickersExpired(x) => Some(x.ids),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(expired.len(), 2);
    assert!(
        seen.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::ExpireStickers(_)))
    );
    h.join(2, "B");
    let snap = h.tick().snapshot(2).unwrap();
    assert_eq!(snap.stickers.len(), 3);
    assert!(snap.stickers.iter().all(|s| !expired.contains(&s.id)));
}

#[test]
fn chat_rate_limit_drops_excess_tells_once_per_burst_and_refills_on_virtual_time() {
    let mut h = H::with(HubConfig {
        limits: LimitConfig {
            per_ip_factor: 0,
            ..Default::default()
        },
        ..Default::default()
    });
    h.join(1, "A");
    h.tick();
    for i in 0..8 {
        h.send(1, chat(&format!("m{i}")));
    }
    let seen = h.tick();
    assert_eq!(seen.chats().len(), 5, "burst of 5");
    assert_eq!(seen.codes(1), vec![NoticeCode::RateLimited], "told once");
    assert_eq!(h.hub.stats().rate_limited, 3);
    h.advance(1000);
    h.send(1, chat("again"));
    let seen = h.tick();
    assert_eq!(seen.chats().len(), 1, "one token back after 1 s");
    h.send(1, chat("too soon"));
    let seen = h.tick();
    assert_eq!(
        seen.codes(1),
        vec![NoticeCode::RateLimited],
        "a new burst is told again"
    );
}

#[test]
fn per_ip_limits_cover_every_connection_from_one_address() {
    let mut h = H::with(HubConfig {
        limits: LimitConfig {
            per_ip_factor: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let shared = ip(9);
    for c in 1..=4 {
        h.connect(c, Some(shared));
        h.send(c, hello(&format!("n{c}")));
    }
    h.drain();
    h.tick();
    for c in 1..=4 {
        for _ in 0..5 {
            h.send(c, chat("x"));
        }
    }
    let seen = h.tick();
    assert_eq!(seen.chats().len(), 10, "per-IP burst = 2 × 5");
    assert!(seen.codes(3).contains(&NoticeCode::RateLimited));
}

#[test]
fn cursor_and_sticker_limits() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    for _ in 0..40 {
        h.send(1, C::Cursor(v1::CursorMove { x: 0.5, y: 0.5 }));
    }
    for _ in 0..12 {
        h.send(1, sticker("fire", 0.5, 0.5));
    }
    let seen = h.tick();
    assert_eq!(h.hub.stats().rate_limited, 10 + 2);
    assert_eq!(
        seen.codes(1),
        vec![NoticeCode::RateLimited, NoticeCode::RateLimited]
    );
}

#[test]
fn mute_refuses_chat_with_muted_until_and_follows_a_reconnect() {
    let mut h = H::new();
    let a = h.join(1, "Ann");
    h.join_admin(2);
    h.tick();
    h.send(
        2,
        admin(v1::admin_command::Command::Mute(v1::MuteUser {
            user_id: a,
            duration_s: 60,
        })),
    );
    let seen = h.tick();
    let muted = seen.notices(1);
    assert_eq!(muted.len(), 1);
    assert_eq!(muted[0].code, NoticeCode::Muted as i32);
    let until = muted[0].until_ms;
    assert_eq!(until, h.now().wall_ms - 50 + 60_000);
    assert!(
        seen.events()
            .iter()
            .any(|e| matches!(e, EventKind::UserUpdated(u) if u.muted_until_ms == until))
    );
    assert!(
        seen.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Mute(m) if m.name_key == "ann"))
    );
    h.send(1, chat("can I talk?"));
    let seen = h.tick();
    assert!(seen.chats().is_empty());
    assert_eq!(seen.codes(1), vec![NoticeCode::Muted]);
    assert_eq!(seen.notices(1)[0].until_ms, until);
    // Reconnect with the same name from the same address: still muted.
    h.input(Input::Disconnect { conn: ConnId(1) });
    h.join(3, "ann");
    // (conn 3 has ip(3): a different address is not muted)
    h.send(3, chat("other person"));
    assert_eq!(h.tick().chats().len(), 1);
    h.connect(4, Some(ip(1)));
    h.send(4, hello("ANN"));
    h.send(4, chat("me again"));
    let seen = h.tick();
    assert_eq!(
        seen.codes(4),
        vec![NoticeCode::NameRejected, NoticeCode::NotAllowed],
        "name taken by conn 3"
    );
    h.input(Input::Disconnect { conn: ConnId(3) });
    h.input(Input::Disconnect { conn: ConnId(4) });
    h.connect(5, Some(ip(1)));
    h.send(5, hello("Ann"));
    let seen = Seen::of(h.drain());
    let user = seen.hello(5).unwrap().user_id;
    h.send(5, chat("me again"));
    let seen = h.tick();
    assert_eq!(seen.codes(5), vec![NoticeCode::Muted]);
    // After the mute expires, chat works.
    h.advance(60_000);
    h.send(5, chat("back"));
    assert_eq!(h.tick().chats().len(), 1);
    // Unmute by the admin API path.
    h.hub
        .moderate(
            h.now(),
            Moderation::Mute {
                user_id: user,
                duration_s: 0,
            },
        )
        .unwrap();
}

#[test]
fn slow_mode_spaces_one_users_messages() {
    let mut h = H::new();
    let admin_id = h.join_admin(9);
    let _ = admin_id;
    h.join(1, "A");
    h.hub
        .moderate(h.now(), Moderation::SlowMode { interval_s: 10 })
        .unwrap();
    let seen = h.tick();
    assert!(
        seen.events()
            .iter()
            .any(|e| matches!(e, EventKind::Settings(s) if s.slow_mode_s == 10))
    );
    assert!(
        seen.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Settings(s) if s.slow_mode_s == 10))
    );
    h.send(1, chat("one"));
    h.advance(3000);
    h.send(1, chat("two"));
    let seen = h.tick();
    assert_eq!(seen.chats().len(), 1);
    let n = &seen.notices(1)[0];
    assert_eq!(n.code, NoticeCode::SlowMode as i32);
    assert_eq!(n.until_ms, h.now().wall_ms - 50 + 7000);
    // Admins are exempt.
    h.send(9, chat("admin 1"));
    h.send(9, chat("admin 2"));
    assert_eq!(h.tick().chats().len(), 2);
    h.advance(7000);
    h.send(1, chat("three"));
    assert_eq!(h.tick().chats().len(), 1);
    assert_eq!(
        h.hub
            .moderate(h.now(), Moderation::SlowMode { interval_s: 3601 }),
        Err(ModerationError::Invalid(
            "interval_s must be 0..=3600".into()
        ))
    );
}

#[test]
fn kick_closes_with_the_reason_and_announces_the_leave() {
    let mut h = H::new();
    let a = h.join(1, "A");
    h.tick();
    h.hub
        .moderate(
            h.now(),
            Moderation::Kick {
                user_id: a,
                reason: "be nice".into(),
            },
        )
        .unwrap();
    let seen = h.tick();
    assert_eq!(seen.closed.len(), 1);
    assert_eq!(seen.closed[0].0, ConnId(1));
    assert_eq!(seen.closed[0].1.code, NoticeCode::Kicked as i32);
    assert_eq!(seen.closed[0].1.text, "be nice");
    assert!(seen.events().contains(&EventKind::UserLeft(a)));
    assert_eq!(seen.reliable[0].user_count, 0);
    assert_eq!(
        h.hub.moderate(
            h.now(),
            Moderation::Kick {
                user_id: a,
                reason: String::new()
            }
        ),
        Err(ModerationError::NoSuchUser(a))
    );
    // A kicked user may come back.
    h.join(2, "A");
}

#[test]
fn ban_closes_and_refuses_the_address_until_it_expires() {
    let mut h = H::new();
    let a = h.join(1, "A");
    h.tick();
    h.hub
        .moderate(
            h.now(),
            Moderation::Ban {
                user_id: a,
                duration_s: 3600,
                reason: String::new(),
            },
        )
        .unwrap();
    let seen = Seen::of(h.drain());
    assert_eq!(seen.closed[0].1.code, NoticeCode::Banned as i32);
    let until = seen.closed[0].1.until_ms;
    assert_eq!(until, h.now().wall_ms + 3_600_000);
    assert!(
        matches!(&seen.persisted[0], PersistOp::Ban(b) if b.ip_hash == ip(1) && b.until_ms == until)
    );
    // Same address: refused at connect, before any hello.
    h.connect(2, Some(ip(1)));
    let seen = Seen::of(h.drain());
    assert_eq!(seen.closed.len(), 1);
    assert_eq!(seen.closed[0].1.code, NoticeCode::Banned as i32);
    assert_eq!(h.hub.conn_count(), 0);
    // Another address is fine.
    h.join(3, "C");
    // Expired: welcome back. Bans also come back from the store.
    h.advance(3_600_001);
    h.connect(5, Some(ip(1)));
    assert!(Seen::of(h.drain()).closed.is_empty());
    let mut h2 = H::loaded(
        HubConfig::default(),
        Loaded {
            bans: vec![BanRecord {
                ip_hash: ip(7),
                until_ms: 0,
                reason: "spam".into(),
            }],
            ..Default::default()
        },
    );
    h2.connect(1, Some(ip(7)));
    assert_eq!(Seen::of(h2.drain()).closed[0].1.until_ms, 0);
}

#[test]
fn stars_mark_users_and_their_chat() {
    let mut h = H::new();
    let a = h.join(1, "A");
    h.tick();
    h.hub
        .moderate(
            h.now(),
            Moderation::Star {
                user_id: a,
                starred: true,
            },
        )
        .unwrap();
    h.send(1, chat("verified"));
    let seen = h.tick();
    assert!(
        seen.events()
            .iter()
            .any(|e| matches!(e, EventKind::UserUpdated(u) if u.starred))
    );
    assert!(seen.chats()[0].starred);
    assert!(h.hub.users()[0].starred);
    assert!(
        seen.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Star(s) if s.starred))
    );
}

#[test]
fn delete_and_clear_chat_and_stickers() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    h.send(1, chat("one"));
    h.send(1, chat("two"));
    h.send(1, sticker("moon", 0.5, 0.5));
    let seen = h.tick();
    let first = seen.chats()[0].id;
    h.hub
        .moderate(h.now(), Moderation::DeleteMessage { message_id: first })
        .unwrap();
    assert_eq!(
        h.hub
            .moderate(h.now(), Moderation::DeleteMessage { message_id: 999 }),
        Err(ModerationError::NoSuchMessage(999))
    );
    let seen = h.tick();
    assert_eq!(seen.events(), vec![EventKind::ChatDeleted(first)]);
    assert_eq!(seen.persisted, vec![PersistOp::DeleteChat(first)]);
    h.join(2, "B");
    let snap = h.tick().snapshot(2).unwrap();
    assert_eq!(snap.chat.len(), 1);
    assert_eq!(snap.chat[0].text, "two");
    h.hub.moderate(h.now(), Moderation::ClearChat).unwrap();
    h.hub.moderate(h.now(), Moderation::ClearStickers).unwrap();
    let seen = h.tick();
    assert!(
        seen.events()
            .contains(&EventKind::ChatCleared(v1::ChatCleared {}))
    );
    assert!(
        seen.events()
            .contains(&EventKind::StickersCleared(v1::StickersCleared {}))
    );
    assert!(seen.persisted.contains(&PersistOp::ClearChat));
    assert!(seen.persisted.contains(&PersistOp::ClearStickers));
    h.join(3, "C");
    let snap = h.tick().snapshot(3).unwrap();
    assert!(snap.chat.is_empty() && snap.stickers.is_empty());
}

#[test]
fn admin_commands_need_the_admin_token() {
    let mut h = H::new();
    let a = h.join(1, "A");
    h.connect(2, Some(ip(2)));
    h.send(
        2,
        C::Hello(v1::ClientHello {
            protocol_version: 1,
            display_name: "Mallory".into(),
            admin_token: "wrong-token".into(),
        }),
    );
    let seen = Seen::of(h.drain());
    assert!(!seen.hello(2).unwrap().admin);
    h.send(
        2,
        admin(v1::admin_command::Command::Kick(v1::KickUser {
            user_id: a,
            reason: String::new(),
        })),
    );
    let seen = h.tick();
    assert_eq!(seen.codes(2), vec![NoticeCode::NotAllowed]);
    assert!(seen.closed.is_empty());
    // The admin can; a failing command is answered with a notice.
    h.join_admin(3);
    h.send(
        3,
        admin(v1::admin_command::Command::Kick(v1::KickUser {
            user_id: 424242,
            reason: String::new(),
        })),
    );
    assert_eq!(h.tick().codes(3), vec![NoticeCode::NotAllowed]);
    h.send(
        3,
        admin(v1::admin_command::Command::Kick(v1::KickUser {
            user_id: a,
            reason: String::new(),
        })),
    );
    assert_eq!(h.tick().closed.len(), 1);
}

#[test]
fn interactivity_modes_gate_commands() {
    let mut h = H::new();
    h.join(1, "A");
    h.join_admin(2);
    h.tick();
    let mut settings = h.hub.settings().clone();
    settings.mode = Mode::ChatOnly;
    h.hub.set_settings(settings.clone()).unwrap();
    let seen = h.tick();
    assert!(seen.events().iter().any(
        |e| matches!(e, EventKind::Settings(s) if s.mode == v1::InteractivityMode::ChatOnly as i32)
    ));
    h.send(1, C::Cursor(v1::CursorMove { x: 0.5, y: 0.5 }));
    h.send(1, sticker("heart", 0.5, 0.5));
    h.send(
        1,
        C::Firework(v1::LaunchFirework {
            x: 0.5,
            y: 0.5,
            hue: 1,
        }),
    );
    h.send(1, chat("chat is fine"));
    let seen = h.tick();
    assert_eq!(
        seen.codes(1),
        vec![NoticeCode::NotAllowed, NoticeCode::NotAllowed],
        "sticker and firework; cursors dropped silently"
    );
    assert!(seen.lossy.is_empty());
    assert_eq!(seen.chats().len(), 1);
    settings.mode = Mode::StickersOff;
    h.hub.set_settings(settings.clone()).unwrap();
    h.send(1, sticker("heart", 0.5, 0.5));
    h.send(1, C::Cursor(v1::CursorMove { x: 0.5, y: 0.5 }));
    let seen = h.tick();
    assert_eq!(seen.codes(1), vec![NoticeCode::NotAllowed]);
    assert_eq!(seen.lossy.len(), 1);
    settings.mode = Mode::Quiet;
    h.hub.set_settings(settings).unwrap();
    h.send(1, chat("hush"));
    h.send(2, chat("admins may"));
    let seen = h.tick();
    assert_eq!(seen.codes(1), vec![NoticeCode::NotAllowed]);
    assert_eq!(seen.chats().len(), 1);
}

#[test]
fn settings_are_validated_and_switch_the_sticker_set() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    let mut s = h.hub.settings().clone();
    s.background_color = "red".into();
    assert!(h.hub.set_settings(s.clone()).is_err());
    s.background_color = "#ff00aa".into();
    s.title = String::new();
    assert!(h.hub.set_settings(s.clone()).is_err());
    s.title = "x".repeat(201);
    assert!(h.hub.set_settings(s.clone()).is_err());
    s.title = "Night".into();
    s.sticker_set = StickerSet {
        id: "cats".into(),
        name: "Cats".into(),
        stickers: vec![settings::StickerDef {
            id: "cat".into(),
            url: "/stickers/cats/cat.svg".into(),
            label: "Cat".into(),
        }],
    };
    h.hub.set_settings(s).unwrap();
    assert!(
        h.tick()
            .persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Settings(s) if s.sticker_set.id == "cats"))
    );
    h.send(1, sticker("heart", 0.5, 0.5));
    let seen = h.tick();
    assert_eq!(
        seen.codes(1),
        vec![NoticeCode::BadMessage],
        "not in the active set"
    );
    h.send(1, sticker("cat", 0.5, 0.5));
    assert_eq!(h.tick().events().len(), 1);
}

#[test]
fn unsupported_version_is_told_and_closed() {
    let mut h = H::new();
    h.connect(1, None);
    h.send(
        1,
        C::Hello(v1::ClientHello {
            protocol_version: 2,
            display_name: "Future".into(),
            admin_token: String::new(),
        }),
    );
    let seen = Seen::of(h.drain());
    assert_eq!(seen.closed.len(), 1);
    assert_eq!(seen.closed[0].1.code, NoticeCode::UnsupportedVersion as i32);
    assert!(seen.closed[0].1.text.contains("version 2"));
    assert!(seen.hello(1).is_none());
}

#[test]
fn garbage_is_dropped_counted_and_repeated_garbage_closes() {
    let mut h = H::new();
    h.join(1, "A");
    h.input(Input::Frame {
        conn: ConnId(1),
        data: Bytes::from_static(&[0xff, 0xff, 0xff]),
    });
    h.input(Input::Frame {
        conn: ConnId(1),
        data: Bytes::from(vec![0u8; 16 * 1024 + 1]),
    });
    h.input(Input::BadFrame {
        conn: ConnId(1),
        reason: "text frame",
    });
    let seen = Seen::of(h.drain());
    assert_eq!(seen.codes(1), vec![NoticeCode::BadMessage], "told once");
    assert_eq!(h.hub.stats().bad_frames, 3);
    for _ in 0..6 {
        h.input(Input::Frame {
            conn: ConnId(1),
            data: Bytes::from_static(b"\x0a\x05abc"),
        });
    }
    assert!(Seen::of(h.drain()).closed.is_empty());
    h.input(Input::Frame {
        conn: ConnId(1),
        data: Bytes::from_static(&[0xff]),
    });
    let seen = Seen::of(h.drain());
    assert_eq!(seen.closed[0].1.code, NoticeCode::BadMessage as i32);
    assert_eq!(h.hub.stats().closed_for_offences, 1);
    // Offences age out of the window.
    let mut h = H::new();
    h.join(1, "A");
    for _ in 0..30 {
        h.input(Input::BadFrame {
            conn: ConnId(1),
            reason: "x",
        });
        h.advance(10_000);
    }
    assert!(Seen::of(h.drain()).closed.is_empty());
}

#[test]
fn commands_before_hello_and_a_second_hello_are_offences() {
    let mut h = H::new();
    h.connect(1, None);
    h.send(1, chat("hi"));
    let seen = Seen::of(h.drain());
    assert_eq!(seen.codes(1), vec![NoticeCode::BadMessage]);
    h.send(1, hello("A"));
    h.send(1, hello("B"));
    assert_eq!(h.hub.stats().bad_frames, 2);
}

#[test]
fn nan_coordinates_are_dropped_and_others_clamped() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    h.send(
        1,
        C::Cursor(v1::CursorMove {
            x: f32::NAN,
            y: 0.5,
        }),
    );
    h.send(1, sticker("heart", f32::NAN, 0.5));
    assert_eq!(h.tick().broadcasts, 0);
    assert_eq!(h.hub.stats().nan_dropped, 2);
    h.send(
        1,
        C::Cursor(v1::CursorMove {
            x: -3.0,
            y: f32::INFINITY,
        }),
    );
    h.send(
        1,
        C::Sticker(v1::PlaceSticker {
            sticker_id: "heart".into(),
            x: 7.0,
            y: -1.0,
            rotation_deg: 720.0,
            scale: 0.0,
        }),
    );
    let seen = h.tick();
    let c = &seen.lossy[0].cursors[0];
    assert_eq!((c.x, c.y), (0.0, 1.0));
    let Some(EventKind::StickerPlaced(s)) = seen.events().into_iter().next() else {
        panic!()
    };
    assert_eq!((s.x, s.y, s.rotation_deg, s.scale), (1.0, 0.0, 180.0, 1.0));
}

#[test]
fn display_names_unicode_rules() {
    use names::{NameError, name_key, normalize_name};
    // Multi-byte, emoji, RTL are fine.
    assert_eq!(normalize_name("  Zoë   Ålund ").unwrap(), "Zoë Ålund");
    assert_eq!(normalize_name("東京のDJ").unwrap(), "東京のDJ");
    assert_eq!(normalize_name("مرحبا").unwrap(), "مرحبا");
    assert_eq!(normalize_name("🎸🔥").unwrap(), "🎸🔥");
    assert!(
        normalize_name("👩‍👩‍👧 fam").is_ok(),
        "ZWJ inside an emoji sequence"
    );
    assert!(
        normalize_name("❤️").is_ok(),
        "variation selector after an emoji"
    );
    // NFC: a decomposed é becomes the composed one.
    assert_eq!(normalize_name("Ame\u{301}lie").unwrap(), "Amélie");
    // Invisible, control, bidi override: refused.
    for bad in [
        "ab\u{200B}c",
        "a\u{200D}b",
        "x\u{202E}y",
        "\u{2066}z",
        "a\u{0007}",
        "a\u{FEFF}b",
        "\u{E000}",
        "\u{3164}",
    ] {
        assert!(
            matches!(normalize_name(bad), Err(NameError::Forbidden(_))),
            "{bad:?}"
        );
    }
    assert_eq!(normalize_name("   "), Err(NameError::Empty));
    // 24 graphemes max, counted as graphemes (an emoji family is one).
    assert!(normalize_name(&"é".repeat(24)).is_ok());
    assert_eq!(normalize_name(&"e".repeat(25)), Err(NameError::TooLong));
    assert!(normalize_name(&"👩‍👩‍👧".repeat(24)).is_ok());
    assert!(
        normalize_name(&"e\u{301}".repeat(24)).is_ok(),
        "24 graphemes of 2 code points"
    );
    // Keys: case-insensitive and normalization-insensitive.
    assert_eq!(name_key("ÉLODIE"), name_key("e\u{301}lodie"));
    assert_eq!(name_key("Straße"), "straße");
}

#[test]
fn duplicate_names_differing_in_case_or_normalization_are_rejected() {
    let mut h = H::new();
    h.join(1, "Élodie");
    for (c, name) in [(2u64, "élodie"), (3, "E\u{301}LODIE"), (4, " élodie ")] {
        h.connect(c, Some(ip(c as u8)));
        h.send(c, hello(name));
        let seen = Seen::of(h.drain());
        assert_eq!(
            seen.hello(c).unwrap().display_name,
            "",
            "{name:?} watches without a name"
        );
        assert_eq!(seen.codes(c), vec![NoticeCode::NameRejected]);
        assert!(seen.notices(c)[0].text.contains("taken"));
    }
    // Once Élodie leaves the name is free.
    h.input(Input::Disconnect { conn: ConnId(1) });
    h.connect(9, None);
    h.send(9, hello("E\u{301}LODIE"));
    let seen = Seen::of(h.drain());
    assert_eq!(seen.hello(9).unwrap().display_name, "ÉLODIE");
    assert!(seen.codes(9).is_empty());
}

#[test]
fn chat_text_unicode_rules() {
    use names::{ChatError, MAX_CHAT_CHARS, normalize_chat};
    assert_eq!(normalize_chat("  hi there \n").unwrap(), "hi there");
    assert_eq!(normalize_chat("line\none").unwrap(), "line one");
    assert_eq!(normalize_chat("שלום עולם").unwrap(), "שלום עולם");
    assert_eq!(normalize_chat("👩‍👩‍👧 family").unwrap(), "👩‍👩‍👧 family");
    assert_eq!(
        normalize_chat("a\u{202E}b\u{0000}c").unwrap(),
        "abc",
        "bidi override and NUL removed"
    );
    assert_eq!(normalize_chat("Ame\u{301}lie").unwrap(), "Amélie");
    assert_eq!(normalize_chat("\u{200B}\u{200B} "), Err(ChatError::Empty));
    assert_eq!(normalize_chat(""), Err(ChatError::Empty));
    assert!(
        normalize_chat(&"é".repeat(MAX_CHAT_CHARS)).is_ok(),
        "500 two-byte chars"
    );
    assert!(
        normalize_chat(&"🎵".repeat(MAX_CHAT_CHARS)).is_ok(),
        "500 four-byte chars"
    );
    assert_eq!(
        normalize_chat(&"a".repeat(MAX_CHAT_CHARS + 1)),
        Err(ChatError::TooLong)
    );
    assert_eq!(
        normalize_chat(&"a".repeat(100_000)),
        Err(ChatError::TooLong)
    );
    // Through the hub: refused with MESSAGE_REJECTED; unnamed users may not chat.
    let mut h = H::new();
    h.join(1, "A");
    h.send(1, chat(&"x".repeat(501)));
    h.send(1, chat("   "));
    h.send(1, chat("ok 🎉 مرحبا"));
    let seen = h.tick();
    assert_eq!(
        seen.codes(1),
        vec![NoticeCode::MessageRejected, NoticeCode::MessageRejected]
    );
    assert_eq!(seen.chats()[0].text, "ok 🎉 مرحبا");
    h.connect(2, None);
    h.send(2, hello(""));
    h.send(2, chat("anon"));
    let seen = h.tick();
    assert_eq!(seen.codes(2), vec![NoticeCode::NotAllowed]);
}

#[test]
fn invalid_names_join_without_a_name() {
    let mut h = H::new();
    h.connect(1, None);
    h.send(1, hello("evil\u{202E}name"));
    let seen = Seen::of(h.drain());
    assert_eq!(seen.hello(1).unwrap().display_name, "");
    assert_eq!(seen.codes(1), vec![NoticeCode::NameRejected]);
    h.connect(2, None);
    h.send(2, hello(&"n".repeat(30)));
    let seen = Seen::of(h.drain());
    assert!(seen.notices(2)[0].text.contains("longer"));
}

#[test]
fn stage_events_keep_only_newer_revisions() {
    let mut h = H::new();
    h.join(1, "A");
    h.tick();
    let stage = |revision| v1::StageState {
        revision,
        layout: 1,
        ..Default::default()
    };
    h.input(Input::Stage(stage(5)));
    h.input(Input::Stage(stage(4)));
    let seen = h.tick();
    assert_eq!(seen.events().len(), 1);
}

#[test]
fn the_slow_client_policy_drops_lossy_first_and_closes_on_a_full_reliable_backlog() {
    let p = QueuePolicy {
        capacity: 8,
        lossy_below: 2,
    };
    assert_eq!(p.admit(0, Class::Lossy), Admit::Enqueue);
    assert_eq!(p.admit(1, Class::Lossy), Admit::Enqueue);
    assert_eq!(
        p.admit(2, Class::Lossy),
        Admit::Drop,
        "cursor batches go first"
    );
    assert_eq!(
        p.admit(7, Class::Reliable),
        Admit::Enqueue,
        "chat is never dropped"
    );
    assert_eq!(
        p.admit(8, Class::Reliable),
        Admit::Close,
        "a hopeless client is closed"
    );
    let notice = decode(&too_slow_notice());
    assert!(
        matches!(notice.body, Some(v1::server_message::Body::Notice(n)) if n.code == NoticeCode::TooSlow as i32)
    );
}

#[test]
fn loaded_state_is_served_and_ids_continue_above_it() {
    let loaded = Loaded {
        chat: vec![ChatRecord {
            id: 41,
            user_id: 7,
            display_name: "Old".into(),
            text: "before the restart".into(),
            sent_ms: 1,
            starred: false,
            admin: false,
        }],
        stickers: vec![StickerRecord {
            id: 99,
            sticker_id: "heart".into(),
            x: 0.5,
            y: 0.5,
            rotation_deg: 0.0,
            scale: 1.0,
            user_id: 7,
            placed_ms: 1,
        }],
        stars: vec![StarRecord {
            ip_hash: Some(ip(1)),
            name_key: "a".into(),
            starred: true,
        }],
        max_user_id: 7,
        max_chat_id: 41,
        max_sticker_id: 99,
        ..Default::default()
    };
    let mut h = H::loaded(HubConfig::default(), loaded);
    let a = h.join(1, "A");
    assert_eq!(a, 8);
    assert!(
        h.hub.users()[0].starred,
        "the star came back with the same name and address"
    );
    h.send(1, chat("after"));
    h.send(1, sticker("star", 0.1, 0.1));
    let seen = h.tick();
    let snap = seen.snapshot(1).unwrap();
    assert_eq!(snap.chat[0].text, "before the restart");
    assert_eq!(snap.stickers[0].id, 99);
    assert_eq!(seen.chats()[0].id, 42);
}

#[test]
fn ip_hashes_are_salted_and_map_v4_in_v6() {
    let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
    assert_eq!(IpHash::of(v4, b"s"), IpHash::of(mapped, b"s"));
    assert_ne!(IpHash::of(v4, b"s"), IpHash::of(v4, b"t"));
    let h = IpHash::of(v4, b"s");
    assert_eq!(IpHash::from_hex(&h.to_hex()), Some(h));
    assert_eq!(IpHash::from_hex("zz"), None);
}

#[test]
fn disconnect_forgets_the_user_and_frees_the_cursor() {
    let mut h = H::new();
    let a = h.join(1, "A");
    h.tick();
    h.send(1, C::Cursor(v1::CursorMove { x: 0.5, y: 0.5 }));
    h.input(Input::Disconnect { conn: ConnId(1) });
    let seen = h.tick();
    assert!(seen.lossy.is_empty(), "a gone user's cursor is not sent");
    assert_eq!(seen.events(), vec![EventKind::UserLeft(a)]);
    assert_eq!(h.hub.user_count(), 0);
    // Frames of unknown connections are ignored.
    h.send(1, chat("ghost"));
    assert!(h.drain().is_empty());
}

#[test]
fn arbitrary_bytes_never_panic_the_hub() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut h = H::with(HubConfig {
        max_offences: usize::MAX,
        ..Default::default()
    });
    h.join(1, "A");
    let valid: Vec<Bytes> = vec![
        frame(chat("hello")),
        frame(sticker("heart", 0.5, 0.5)),
        frame(C::Cursor(v1::CursorMove { x: 0.1, y: 0.2 })),
        frame(admin(v1::admin_command::Command::Ban(v1::BanUser {
            user_id: 1,
            duration_s: 1,
            reason: "r".into(),
        }))),
    ];
    for i in 0..20_000u32 {
        let data: Vec<u8> = if i % 2 == 0 {
            let len = rng.random_range(0..64);
            (0..len).map(|_| rng.random()).collect()
        } else {
            // A valid frame with a few bytes flipped or cut.
            let mut v = valid[i as usize % valid.len()].to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..v.len());
                v[at] = rng.random();
            }
            v.truncate(rng.random_range(0..=v.len()));
            v
        };
        h.input(Input::Frame {
            conn: ConnId(1),
            data: Bytes::from(data),
        });
        if i % 100 == 0 {
            h.advance(50);
            h.input(Input::Tick);
            h.drain();
        }
    }
    assert!(h.hub.stats().bad_frames > 5_000);
}
