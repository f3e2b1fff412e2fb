//! Store tests of the schedule, recordings and the living room, and `venue migrate`, each run
//! on both backends ([`Db::both`]): the same calls must give the same answers on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::recordings::NewRecording;
use super::schedule::{BookingSpec, EventSpec};
use super::test_db::Db;
use super::*;
use crate::hub::settings::{Mode, RoomSettings, StickerDef, StickerSet};
use crate::hub::{BanRecord, ChatRecord, IpHash, MuteRecord, PersistOp, StarRecord, StickerRecord};
use crate::ids::{RecordingId, RoomId};

const MAIN: RoomId = RoomId(1);
/// 2030-01-01T20:00:00Z.
const T0: i64 = 1_893_528_000;

fn event_spec(start: i64, hours: i64) -> EventSpec {
    EventSpec {
        title: "Night".into(),
        start_at: start,
        end_at: start + hours * 3600,
        slot_seconds: 1800,
        public_signup: true,
    }
}

fn booking(slot_start: i64, slots: u32, name: &str) -> BookingSpec {
    BookingSpec {
        slot_start,
        slots,
        artist_name: name.into(),
        description: "live".into(),
        location: "Berlin".into(),
        timezone: "Europe/Berlin".into(),
        email: Some("a@example.org".into()),
        streamer_id: None,
    }
}

#[tokio::test]
async fn schedule_books_merges_moves_and_refuses_overlaps() {
    for db in Db::both() {
        schedule_on(db).await;
    }
}

async fn schedule_on(db: Db) {
    let name = db.name();
    let store = db.open().await;
    let event = store
        .create_event(MAIN, &event_spec(T0, 3))
        .await
        .expect("event");
    assert!(event.public_signup, "{name}");
    assert_eq!(
        store.events(MAIN).await.expect("events"),
        vec![event.clone()]
    );
    assert_eq!(
        store.event(MAIN, event.id).await.expect("event"),
        Some(event.clone())
    );
    // A booking creates a slot-bound streamer with a key.
    let ann = store
        .create_booking(&event, &booking(T0, 1, "Ann"))
        .await
        .expect("book Ann");
    let key = ann.key.expect("a new streamer's key");
    assert!(!ann.merged);
    let access = store
        .key_access(key.expose())
        .await
        .expect("q")
        .expect("known");
    assert!(access.slot_bound, "{name}");
    assert_eq!(access.windows, vec![(T0, T0 + 1800)]);
    // Overlap: Conflict, nothing written.
    assert!(
        matches!(
            store.create_booking(&event, &booking(T0, 2, "Bob")).await,
            Err(StoreError::Conflict(_))
        ),
        "{name}"
    );
    // The same streamer's next slot merges into one window.
    let mut more = booking(T0 + 1800, 1, "");
    more.streamer_id = Some(access.streamer.id);
    let merged = store.create_booking(&event, &more).await.expect("merge");
    assert!(merged.merged && merged.key.is_none(), "{name}");
    assert_eq!(merged.booking.id, ann.booking.id);
    assert_eq!(
        (merged.booking.start_at, merged.booking.end_at),
        (T0, T0 + 3600)
    );
    let bob = store
        .create_booking(&event, &booking(T0 + 7200, 1, "Bob"))
        .await
        .expect("book Bob");
    assert_eq!(store.bookings(event.id).await.expect("q").len(), 2);
    // Windows and edges as the slot timer asks for them.
    let windows = store.windows_between(T0, T0 + 60).await.expect("q");
    assert_eq!(windows.len(), 1, "{name}");
    assert_eq!(windows[0].room, "main");
    assert_eq!(windows[0].streamer_id, access.streamer.id);
    assert_eq!(
        store.next_window_edge_after(T0).await.expect("q"),
        Some(T0 + 3600)
    );
    assert_eq!(
        store.next_window_end_after(T0 + 3600).await.expect("q"),
        Some(T0 + 9000)
    );
    assert_eq!(
        store.next_window_edge_after(T0 + 9000).await.expect("q"),
        None
    );
    let outside = store
        .streamers_outside_windows(T0 + 5000, 300, 60)
        .await
        .expect("q");
    assert_eq!(
        outside,
        vec![(MAIN, access.streamer.id), (MAIN, bob.booking.streamer_id)],
        "{name}"
    );
    // Moving Bob next to nobody, then onto Ann: Conflict.
    let (moved, was_merged) = store
        .move_booking(&event, bob.booking.id, T0 + 5400, 2)
        .await
        .expect("move")
        .expect("exists");
    assert!(!was_merged);
    assert_eq!((moved.start_at, moved.end_at), (T0 + 5400, T0 + 9000));
    assert!(matches!(
        store.move_booking(&event, bob.booking.id, T0, 1).await,
        Err(StoreError::Conflict(_))
    ));
    // Moving the event moves its bookings; a resize that cuts a booking is refused.
    let later = store
        .update_event(MAIN, event.id, &event_spec(T0 + 3600, 3))
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(later.start_at, T0 + 3600);
    let starts: Vec<i64> = store
        .bookings(event.id)
        .await
        .expect("q")
        .iter()
        .map(|b| b.start_at)
        .collect();
    assert_eq!(starts, vec![T0 + 3600, T0 + 9000], "{name}");
    assert!(matches!(
        store
            .update_event(MAIN, event.id, &event_spec(T0 + 3600, 1))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Recordings name sets after bookings.
    let named = store
        .streamer_bookings_between(MAIN, access.streamer.id, T0 + 3600, T0 + 3700)
        .await
        .expect("q");
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].booking_id, ann.booking.id);
    assert_eq!(named[0].artist_name, "Ann");
    // Deleting.
    assert!(
        store
            .delete_booking(event.id, bob.booking.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_booking(event.id, bob.booking.id)
            .await
            .expect("again")
    );
    assert!(store.delete_event(MAIN, event.id).await.expect("delete"));
    assert!(store.events(MAIN).await.expect("q").is_empty());
    assert!(
        store
            .key_access(key.expose())
            .await
            .expect("q")
            .expect("streamer stays")
            .windows
            .is_empty()
    );
}

#[tokio::test]
async fn recordings_are_listed_finished_and_unique_by_file() {
    for db in Db::both() {
        recordings_on(db).await;
    }
}

async fn recordings_on(db: Db) {
    let name = db.name();
    let store = db.open().await;
    let (s, _) = store.create_streamer(MAIN, "Ann").await.expect("streamer");
    let new = |file: &str, start_ms| NewRecording {
        room_id: MAIN,
        streamer_id: s.id,
        booking_id: None,
        artist: "Ann".into(),
        file: file.into(),
        start_ms,
    };
    let first = store
        .create_recording(&new("a.mp4", 1000))
        .await
        .expect("a");
    let second = store
        .create_recording(&new("b.mp4", 2000))
        .await
        .expect("b");
    assert!(
        matches!(
            store.create_recording(&new("a.mp4", 3000)).await,
            Err(StoreError::Conflict(_))
        ),
        "{name}"
    );
    assert_eq!(first.end_ms, None);
    assert_eq!(store.unfinished_recordings().await.expect("q").len(), 2);
    store
        .finish_recording(first.id, 5000, 4000, 123_456)
        .await
        .expect("finish");
    let got = store.recording(first.id).await.expect("q").expect("row");
    assert_eq!(
        (got.end_ms, got.duration_ms, got.bytes),
        (Some(5000), 4000, 123_456)
    );
    let listed: Vec<RecordingId> = store
        .recordings(MAIN)
        .await
        .expect("q")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![second.id, first.id], "{name}: newest first");
    assert_eq!(
        store.unfinished_recordings().await.expect("q"),
        vec![second.clone()]
    );
    assert!(store.delete_recording(second.id).await.expect("delete"));
    assert!(!store.delete_recording(second.id).await.expect("again"));
    assert_eq!(store.recording(second.id).await.expect("q"), None);
}

#[tokio::test]
async fn recordings_name_the_node_holding_the_file() {
    for db in Db::both() {
        recording_nodes_on(db).await;
    }
}

async fn recording_nodes_on(db: Db) {
    let name = db.name();
    let store = db.open().await;
    let (s, _) = store.create_streamer(MAIN, "Ann").await.expect("streamer");
    let new = |file: &str| NewRecording {
        room_id: MAIN,
        streamer_id: s.id,
        booking_id: None,
        artist: "Ann".into(),
        file: file.into(),
        start_ms: 1000,
    };
    let single = store.create_recording(&new("s.mp4")).await.expect("s");
    let a = store
        .create_recording_on(&new("a.mp4"), Some("node-a"))
        .await
        .expect("a");
    let b = store
        .create_recording_on(&new("b.mp4"), Some("node-b"))
        .await
        .expect("b");
    assert_eq!(single.node, None, "{name}");
    assert_eq!(a.node.as_deref(), Some("node-a"), "{name}");
    let got = store.recording(b.id).await.expect("q").expect("row");
    assert_eq!(got.node.as_deref(), Some("node-b"), "{name}");
    assert_eq!(
        store.unfinished_recordings_of("node-a").await.expect("q"),
        vec![a.clone()],
        "{name}: only node-a's"
    );
    assert_eq!(store.unfinished_recordings().await.expect("q").len(), 3);
    store
        .finish_recording(a.id, 5000, 4000, 1)
        .await
        .expect("finish");
    assert!(
        store
            .unfinished_recordings_of("node-a")
            .await
            .expect("q")
            .is_empty(),
        "{name}"
    );
}

fn chat(id: u64, text: &str) -> ChatRecord {
    ChatRecord {
        id,
        user_id: 10 + id,
        display_name: format!("user{id}"),
        text: text.into(),
        sent_ms: 1000 * id,
        starred: false,
        admin: id == 2,
    }
}

fn sticker(id: u64) -> StickerRecord {
    StickerRecord {
        id,
        sticker_id: "heart".into(),
        x: 0.25,
        y: 0.5,
        rotation_deg: 12.5,
        scale: 1.5,
        user_id: 20 + id,
        placed_ms: 5000 + id,
    }
}

fn custom_set() -> StickerSet {
    StickerSet {
        id: "ann-set".into(),
        name: "Ann's".into(),
        stickers: vec![StickerDef {
            id: "star".into(),
            url: "/stickers/custom/ann-set/star".into(),
            label: "Star".into(),
        }],
    }
}

#[tokio::test]
async fn the_living_room_is_persisted_and_loaded() {
    for db in Db::both() {
        living_room_on(db).await;
    }
}

async fn living_room_on(db: Db) {
    let name = db.name();
    let store = db.open().await;
    // Sticker sets and pictures (bytes kept exactly).
    store.put_sticker_set(&custom_set()).await.expect("set");
    let picture: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    store
        .put_sticker_image("ann-set", "star", "image/png", &picture)
        .await
        .expect("picture");
    store
        .put_sticker_image("ann-set", "star", "image/webp", &picture[..100])
        .await
        .expect("replace picture");
    assert_eq!(
        store.sticker_image("ann-set", "star").await.expect("q"),
        Some(("image/webp".to_owned(), picture[..100].to_vec())),
        "{name}"
    );
    assert_eq!(
        store.sticker_image("ann-set", "nope").await.expect("q"),
        None
    );
    let mut renamed = custom_set();
    renamed.name = "Ann's own".into();
    store.put_sticker_set(&renamed).await.expect("upsert");
    let sets = store.sticker_sets().await.expect("q");
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[1], renamed);

    let ip = IpHash([7; 16]);
    let mut starred = chat(1, "hello");
    starred.starred = true;
    let mut settings = RoomSettings::with_title("Main, renamed");
    settings.now_playing = "Ann".into();
    settings.mode = Mode::ChatOnly;
    settings.sticker_set = renamed.clone();
    settings.slow_mode_s = 5;
    let ops = vec![
        PersistOp::Chat(chat(1, "hello")),
        PersistOp::Chat(chat(2, "from the admin")),
        PersistOp::Chat(chat(3, "spam")),
        PersistOp::DeleteChat(3),
        PersistOp::Chat(starred.clone()),
        PersistOp::Sticker(sticker(1)),
        PersistOp::Sticker(sticker(2)),
        PersistOp::Sticker(sticker(3)),
        PersistOp::ExpireStickers(vec![1]),
        PersistOp::Ban(BanRecord {
            ip_hash: ip,
            until_ms: 0,
            reason: "spam".into(),
        }),
        PersistOp::Ban(BanRecord {
            ip_hash: IpHash([8; 16]),
            until_ms: 10,
            reason: "expired".into(),
        }),
        PersistOp::Mute(MuteRecord {
            ip_hash: Some(ip),
            name_key: "bob".into(),
            until_ms: 50_000,
        }),
        PersistOp::Mute(MuteRecord {
            ip_hash: Some(ip),
            name_key: "bob".into(),
            until_ms: 90_000,
        }),
        PersistOp::Star(StarRecord {
            ip_hash: None,
            name_key: "ann".into(),
            starred: true,
        }),
        PersistOp::Star(StarRecord {
            ip_hash: None,
            name_key: "ann".into(),
            starred: true,
        }),
        PersistOp::Settings(settings.clone()),
    ];
    store.apply_interaction(MAIN, &ops).await.expect("apply");
    let loaded = store
        .load_interaction(MAIN, 10, 10, 20_000)
        .await
        .expect("load");
    assert_eq!(loaded.settings, Some(settings), "{name}");
    assert_eq!(
        loaded.chat,
        vec![starred, chat(2, "from the admin")],
        "{name}"
    );
    assert_eq!(loaded.stickers, vec![sticker(2), sticker(3)], "{name}");
    assert_eq!(loaded.bans.len(), 1);
    assert_eq!(loaded.bans[0].reason, "spam");
    assert_eq!(loaded.mutes.len(), 1);
    assert_eq!(
        loaded.mutes[0].until_ms, 90_000,
        "{name}: the later mute wins"
    );
    assert_eq!(loaded.stars.len(), 1);
    assert_eq!(
        (
            loaded.max_chat_id,
            loaded.max_sticker_id,
            loaded.max_user_id
        ),
        (3, 3, 23)
    );
    assert_eq!(
        store
            .room_by_name("main")
            .await
            .expect("q")
            .expect("main")
            .title,
        "Main, renamed"
    );
    // History is bounded, newest kept; clearing empties.
    let few = store
        .load_interaction(MAIN, 1, 1, 20_000)
        .await
        .expect("load");
    assert_eq!(few.chat.len(), 1);
    assert_eq!(few.chat[0].id, 2);
    assert_eq!(few.stickers, vec![sticker(3)]);
    let clear = [
        PersistOp::ClearChat,
        PersistOp::ClearStickers,
        PersistOp::Mute(MuteRecord {
            ip_hash: Some(ip),
            name_key: "bob".into(),
            until_ms: 0,
        }),
        PersistOp::Star(StarRecord {
            ip_hash: None,
            name_key: "ann".into(),
            starred: false,
        }),
    ];
    store.apply_interaction(MAIN, &clear).await.expect("clear");
    let loaded = store
        .load_interaction(MAIN, 10, 10, 20_000)
        .await
        .expect("load");
    assert!(
        loaded.chat.is_empty()
            && loaded.stickers.is_empty()
            && loaded.mutes.is_empty()
            && loaded.stars.is_empty(),
        "{name}"
    );
    // Ids keep counting after a clear (the hub must not reuse them).
    assert_eq!(loaded.max_chat_id, 3);
}

#[test]
fn database_urls_are_parsed_and_passwords_never_shown() {
    let pg = DatabaseUrl::parse("postgres://venue:s3cret@db.example:5432/venue").expect("pg");
    assert!(matches!(pg, DatabaseUrl::Postgres(_)));
    assert_eq!(pg.to_string(), "postgres://venue:***@db.example:5432/venue");
    assert!(!format!("{pg:?}").contains("s3cret"));
    assert!(matches!(
        DatabaseUrl::parse("postgresql://h/db"),
        Ok(DatabaseUrl::Postgres(_))
    ));
    assert_eq!(
        DatabaseUrl::parse("sqlite://data/venue.db").expect("sqlite"),
        DatabaseUrl::Sqlite("data/venue.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite:///var/lib/venue/venue.db").expect("sqlite"),
        DatabaseUrl::Sqlite("/var/lib/venue/venue.db".into())
    );
    for bad in ["", "sqlite://", "mysql://x/y", "venue.db", "http://x"] {
        let e = DatabaseUrl::parse(bad).expect_err(bad);
        assert!(matches!(e, StoreError::Invalid(_)), "{bad}");
    }
    assert!(
        !DatabaseUrl::parse("mysql://u:topsecret@h/db")
            .expect_err("mysql")
            .to_string()
            .contains("topsecret")
    );
    assert_eq!(
        DatabaseUrl::or_default(None, std::path::Path::new("/d")).expect("default"),
        DatabaseUrl::Sqlite("/d/venue.db".into())
    );
}

#[tokio::test]
async fn a_sqlite_url_opens_that_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sub").join("other.db");
    let url = format!("sqlite://{}", file.display());
    let store = Store::connect(Some(&url), dir.path())
        .await
        .expect("connect");
    assert_eq!(store.backend_name(), "sqlite");
    store.create_room("jazz", None).await.expect("room");
    store.close().await;
    assert!(file.is_file());
    assert!(!dir.path().join("venue.db").exists());
}

/// Fills a SQLite venue with a bit of everything.
async fn fill(store: &Store) -> (StreamKey, crate::ids::StreamerId) {
    let jazz = store.create_room("jazz", Some("Jazz")).await.expect("room");
    let (host, _) = store.create_streamer(jazz.id, "Host").await.expect("host");
    store
        .set_stage(
            jazz.id,
            &Stage {
                layout: 2,
                slots: vec![None, Some(host.id)],
            },
            4,
        )
        .await
        .expect("stage");
    store
        .set_streamer_sticker_set(jazz.id, host.id, Some("ann-set"))
        .await
        .expect("set");
    let event = store
        .create_event(MAIN, &event_spec(T0, 2))
        .await
        .expect("event");
    let ann = store
        .create_booking(&event, &booking(T0, 1, "Ann"))
        .await
        .expect("booking");
    store.put_sticker_set(&custom_set()).await.expect("set");
    store
        .put_sticker_image("ann-set", "star", "image/png", &[0, 1, 2, 255])
        .await
        .expect("picture");
    let ops = [
        PersistOp::Chat(chat(1, "hello")),
        PersistOp::Chat(chat(2, "bye")),
        PersistOp::DeleteChat(2),
        PersistOp::Sticker(sticker(4)),
        PersistOp::Ban(BanRecord {
            ip_hash: IpHash([9; 16]),
            until_ms: 0,
            reason: "spam".into(),
        }),
        PersistOp::Mute(MuteRecord {
            ip_hash: None,
            name_key: "bob".into(),
            until_ms: 99_000,
        }),
        PersistOp::Star(StarRecord {
            ip_hash: None,
            name_key: "ann".into(),
            starred: true,
        }),
        PersistOp::Settings(RoomSettings::with_title("Main")),
    ];
    store
        .apply_interaction(MAIN, &ops)
        .await
        .expect("interaction");
    let rec = store
        .create_recording(&NewRecording {
            room_id: MAIN,
            streamer_id: ann.booking.streamer_id,
            booking_id: Some(ann.booking.id),
            artist: "Ann".into(),
            file: "main-ann.mp4".into(),
            start_ms: 1000,
        })
        .await
        .expect("recording");
    store
        .finish_recording(rec.id, 9000, 8000, 42)
        .await
        .expect("finish");
    (ann.key.expect("key"), host.id)
}

#[tokio::test]
async fn venue_migrate_copies_everything_and_refuses_a_non_empty_target() {
    let src = Db::sqlite();
    let source = src.open().await;
    let (key, host) = fill(&source).await;
    let rooms = source.rooms().await.expect("rooms");
    let jazz = rooms[1].clone();
    let streamers = source.streamers(MAIN).await.expect("q");
    let events = source.events(MAIN).await.expect("q");
    let bookings = source.bookings(events[0].id).await.expect("q");
    let loaded = source
        .load_interaction(MAIN, 10, 10, 0)
        .await
        .expect("load");
    let recordings = source.recordings(MAIN).await.expect("q");
    let access = source.key_access(key.expose()).await.expect("q");
    source.close().await;

    let from = format!("sqlite://{}", src.dir().join("venue.db").display());
    let dst = Db::postgres();
    let to = dst.url().expect("url").to_owned();
    let report = copy::sqlite_to_postgres(&from, &to).await.expect("copy");
    let count = |t: &str| {
        report
            .tables
            .iter()
            .find(|(name, _)| *name == t)
            .map(|(_, n)| *n)
    };
    assert_eq!(count("rooms"), Some(2));
    assert_eq!(count("chat_messages"), Some(2));
    assert_eq!(count("sticker_images"), Some(1));

    // The copy reads the same through the store.
    let store = dst.open().await;
    assert_eq!(store.rooms().await.expect("rooms"), rooms);
    assert_eq!(store.streamers(MAIN).await.expect("q"), streamers);
    assert_eq!(
        store.stage(jazz.id, 4).await.expect("stage").slots,
        vec![None, Some(host), None, None]
    );
    assert_eq!(store.events(MAIN).await.expect("q"), events);
    assert_eq!(store.bookings(events[0].id).await.expect("q"), bookings);
    assert_eq!(store.key_access(key.expose()).await.expect("q"), access);
    let got = store.load_interaction(MAIN, 10, 10, 0).await.expect("load");
    assert_eq!(got.chat, loaded.chat);
    assert_eq!(got.stickers, loaded.stickers);
    assert_eq!(got.bans, loaded.bans);
    assert_eq!(got.mutes, loaded.mutes);
    assert_eq!(got.stars, loaded.stars);
    assert_eq!(got.settings, loaded.settings);
    assert_eq!(got.max_chat_id, 2);
    assert_eq!(
        store.sticker_image("ann-set", "star").await.expect("q"),
        Some(("image/png".to_owned(), vec![0, 1, 2, 255]))
    );
    assert_eq!(store.recordings(MAIN).await.expect("q"), recordings);
    // The sequences moved past the copied ids: new rows get new ids.
    let rock = store.create_room("rock", None).await.expect("new room");
    assert_eq!(rock.id, RoomId(3));
    let (s, _) = store.create_streamer(rock.id, "New").await.expect("new");
    assert!(streamers.iter().all(|old| old.id < s.id));
    store.close().await;

    // A second copy finds data and refuses, writing nothing.
    let again = copy::sqlite_to_postgres(&from, &to).await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("not empty")),
        "{again:?}"
    );
    // Wrong schemes and a missing file are refused before anything is touched.
    assert!(matches!(
        copy::sqlite_to_postgres(&to, &to).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        copy::sqlite_to_postgres(&from, &from).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        copy::sqlite_to_postgres("sqlite:///nonexistent/venue.db", &to).await,
        Err(StoreError::Invalid(_))
    ));
}
