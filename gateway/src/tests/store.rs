//! Unit tests of `store/` (kept in their own file). Every test that touches a database runs
//! on both backends ([`Db::both`]): SQLite and a throwaway PostgreSQL.

use super::test_db::Db;
use super::*;
use crate::ids::RoomId;

#[tokio::test]
async fn first_start_has_room_main() {
    for db in Db::both() {
        first_start_has_room_main_on(db).await;
    }
}

async fn first_start_has_room_main_on(db: Db) {
    let store = db.open().await;
    let main = store
        .room_by_name("main")
        .await
        .expect("query")
        .expect("main exists");
    assert_eq!(main.title, "Main stage");
    assert_eq!(main.layout, 1);
    assert_eq!(store.rooms().await.expect("rooms").len(), 1);
}

#[tokio::test]
async fn room_names_are_validated_and_unique() {
    for db in Db::both() {
        room_names_are_validated_and_unique_on(db).await;
    }
}

async fn room_names_are_validated_and_unique_on(db: Db) {
    let store = db.open().await;
    for bad in ["", "Main", "a b", "ä", "x/y", &"a".repeat(65)] {
        assert!(
            matches!(
                store.create_room(bad, None).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let r = store
        .create_room("jazz-1", Some("Jazz"))
        .await
        .expect("create");
    assert_eq!(r.title, "Jazz");
    assert!(matches!(
        store.create_room("jazz-1", None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.create_room(&"a".repeat(64), None).await.is_ok());
}

#[tokio::test]
async fn keys_are_stored_hashed_and_found_by_hash() {
    for db in Db::both() {
        keys_are_stored_hashed_and_found_by_hash_on(db).await;
    }
}

async fn keys_are_stored_hashed_and_found_by_hash_on(db: Db) {
    let store = db.open().await;
    let (s, key) = store
        .create_streamer(RoomId(1), "Alice")
        .await
        .expect("create");
    assert!(key.expose().len() >= 43);
    assert!(!format!("{key:?}").contains(key.expose()));
    let hash = store.key_hash(s.id).await.expect("q").expect("hash");
    assert_eq!(hash, hash_key(key.expose()));
    assert_ne!(hash, key.expose());
    assert_eq!(
        store.streamer_by_key(key.expose()).await.expect("q"),
        Some(s)
    );
    assert_eq!(store.streamer_by_key("nope").await.expect("q"), None);
    // The raw key appears nowhere in the database's files (SQLite: the data dir; PostgreSQL:
    // the server's whole data directory, WAL included).
    store.close().await;
    let files = match &db {
        Db::Sqlite(dir) => dir.path().to_owned(),
        Db::Postgres { .. } => venue_tests::postgres::Postgres::shared().dir().join("data"),
    };
    let needle = key.expose().as_bytes();
    for file in files_under(&files) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{}: key in {}",
            db.name(),
            file.display()
        );
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn stage_is_validated() {
    for db in Db::both() {
        stage_is_validated_on(db).await;
    }
}

async fn stage_is_validated_on(db: Db) {
    let store = db.open().await;
    let other = store.create_room("other", None).await.expect("room");
    let (a, _) = store.create_streamer(RoomId(1), "A").await.expect("a");
    let (b, _) = store.create_streamer(other.id, "B").await.expect("b");
    let set = |layout, slots: Vec<Option<StreamerId>>| {
        let store = store.clone();
        async move {
            store
                .set_stage(RoomId(1), &Stage { layout, slots }, 4)
                .await
        }
    };
    assert!(matches!(set(0, vec![]).await, Err(StoreError::Invalid(_))));
    assert!(matches!(set(10, vec![]).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        set(1, vec![None; 5]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        set(1, vec![Some(a.id), Some(a.id)]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        set(1, vec![Some(b.id)]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        set(1, vec![Some(StreamerId(999))]).await,
        Err(StoreError::Invalid(_))
    ));
    set(2, vec![None, Some(a.id)]).await.expect("valid stage");
    let stage = store.stage(RoomId(1), 4).await.expect("stage");
    assert_eq!(
        stage,
        Stage {
            layout: 2,
            slots: vec![None, Some(a.id), None, None]
        }
    );
    // Deleting the streamer empties its slot.
    assert!(
        store
            .delete_streamer(RoomId(1), a.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_streamer(RoomId(1), a.id)
            .await
            .expect("delete again")
    );
    assert_eq!(
        store.stage(RoomId(1), 4).await.expect("stage").slots,
        vec![None; 4]
    );
}

#[tokio::test]
async fn everything_survives_a_restart() {
    for db in Db::both() {
        everything_survives_a_restart_on(db).await;
    }
}

async fn everything_survives_a_restart_on(db: Db) {
    let (room, streamer, key) = {
        let store = db.open().await;
        let room = store
            .create_room("late-show", Some("Late show"))
            .await
            .expect("room");
        let (s, key) = store
            .create_streamer(room.id, "Bob")
            .await
            .expect("streamer");
        store
            .set_stage(
                room.id,
                &Stage {
                    layout: 3,
                    slots: vec![None, None, Some(s.id)],
                },
                4,
            )
            .await
            .expect("stage");
        store.close().await;
        (room, s, key)
    };
    let store = db.open().await;
    let reopened = store
        .room_by_name("late-show")
        .await
        .expect("q")
        .expect("room");
    assert_eq!(
        reopened,
        Room {
            layout: 3,
            ..room.clone()
        }
    );
    assert_eq!(store.rooms().await.expect("rooms").len(), 2);
    assert_eq!(
        store.streamers(room.id).await.expect("q"),
        vec![streamer.clone()]
    );
    assert_eq!(
        store.streamer_by_key(key.expose()).await.expect("q"),
        Some(streamer.clone())
    );
    let stage = store.stage(room.id, 4).await.expect("stage");
    assert_eq!(
        stage,
        Stage {
            layout: 3,
            slots: vec![None, None, Some(streamer.id), None]
        }
    );
}

#[test]
fn windows_merge_when_they_touch_or_overlap() {
    use crate::store::schedule::merge_windows;
    assert_eq!(
        merge_windows(vec![(30, 40), (0, 10), (10, 20), (35, 50), (60, 70)]),
        vec![(0, 20), (30, 50), (60, 70)]
    );
    assert_eq!(merge_windows(Vec::new()), Vec::<(i64, i64)>::new());
}

/// Databases migrated before the move to `migrations/sqlite/` stay valid: every migration
/// keeps its version and bytes (sqlx compares SHA-384 checksums at start).
#[test]
fn migrations_keep_their_versions_and_checksums() {
    let expected = [
        (
            1,
            "f2f1f7ce08035380158bfbe04b86fafb2427a45a3c835933f8db53757b4fdb43d03e29a1e30ce39ab8e6ae154f3eacf7",
        ),
        (
            2,
            "de6dcb959ee4a3f7cfdff572eebceb30f306fd42720cfcf8a2942813e7faa69caec27032e4f461fa7bb04b729ca79be4",
        ),
        (
            3,
            "a592f9b071edf994392edbc9db87423bc91a869dbc373183556c582820aadb6a70d31a8b55caec78ef68454c97908066",
        ),
        (
            4,
            "85e3699fbfe2ee14b88d9aa902a57a18e61b0731f3363642e65bb00fce906887cd44998c4de1f5cdec0cb0d1f700bc7a",
        ),
        (
            5,
            "54958e4c160b393a2ec1f47a7f2bfd080275440fc13d4cc4d268996118c73495185829ae71fb95b0c14a31990658bbdf",
        ),
        (
            6,
            "69c9fb25531aeb2b1957067e39dbfdd58c83cad370717e0c46f5b8307c3b1946e4c97a3f668b3a98d8728ce258263d79",
        ),
        (
            7,
            "8c57501d94931c5e4d078528936882351e4a874b6f465f0c3404f555abd8ab64089596bdfaadfa8b85c82448d7ad6e1c",
        ),
    ];
    let migrator = sqlx::migrate!("./migrations/sqlite");
    let got: Vec<(i64, String)> = migrator
        .iter()
        .map(|m| (m.version, hex::encode(&*m.checksum)))
        .collect();
    let expected: Vec<(i64, String)> = expected
        .iter()
        .map(|(v, c)| (*v, (*c).to_owned()))
        .collect();
    assert_eq!(got, expected);
}

/// The PostgreSQL migrations are the SQLite ones in PostgreSQL types: one file per SQLite
/// version, same numbers, so a schema change lands in both.
#[test]
fn postgres_migrations_mirror_the_sqlite_versions() {
    let versions = |m: sqlx::migrate::Migrator| -> Vec<(i64, String)> {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    };
    assert_eq!(
        versions(sqlx::migrate!("./migrations/postgres")),
        versions(sqlx::migrate!("./migrations/sqlite"))
    );
}
