//! The living room over WebSocket, through the real server on a loopback port: clients see
//! each other's cursors, stickers, fireworks and chat; a late joiner's snapshot has the board
//! and the chat; admin settings and moderation reach clients; state survives a restart.
//! Waits are bounded reads, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as C;
use venue_proto::v1::event::Kind as E;
use venue_proto::v1::server_message::Body as S;

#[tokio::test]
async fn unknown_room_is_404_and_plain_get_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    match tokio_tungstenite::connect_async(server.ws_url("nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::NOT_FOUND)
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let (status, _) = server.admin(Method::GET, "/api/rooms/main/ws", None).await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_each_other_and_a_late_joiner_gets_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let url = server.ws_url("main");
    let mut a = Client::join(&url, "Ann").await;
    let mut b = Client::join(&url, "Bob").await;
    let (ida, idb) = (a.user_id(), b.user_id());
    assert_ne!(ida, idb);
    let snap = a.snapshot.clone().unwrap();
    assert_eq!(
        snap.settings
            .as_ref()
            .unwrap()
            .sticker_set
            .as_ref()
            .unwrap()
            .id,
        "default"
    );
    assert!(snap.stage.is_some(), "the stage came from the state actor");
    // A sees B join.
    a.until_event(|e| matches!(e, E::UserJoined(u) if u.display_name == "Bob"))
        .await;

    // Cursor (lossy batch).
    a.send(C::Cursor(v1::CursorMove { x: 0.25, y: 0.5 })).await;
    let m = b
        .until(|m| matches!(&m.body, Some(S::Batch(bt)) if bt.cursors.iter().any(|c| c.user_id == ida)))
        .await;
    let Some(S::Batch(batch)) = m.body else {
        unreachable!()
    };
    let c = batch.cursors.iter().find(|c| c.user_id == ida).unwrap();
    assert_eq!((c.x, c.y), (0.25, 0.5));

    // Sticker, firework, chat.
    a.send(C::Sticker(v1::PlaceSticker {
        sticker_id: "heart".into(),
        x: 0.4,
        y: 0.6,
        rotation_deg: 15.0,
        scale: 1.5,
    }))
    .await;
    let E::StickerPlaced(s) = b.until_event(|e| matches!(e, E::StickerPlaced(_))).await else {
        unreachable!()
    };
    assert_eq!(
        (s.sticker_id.as_str(), s.user_id, s.scale),
        ("heart", ida, 1.5)
    );
    a.send(C::Firework(v1::LaunchFirework {
        x: 0.5,
        y: 0.5,
        hue: 120,
    }))
    .await;
    let E::Firework(f) = b.until_event(|e| matches!(e, E::Firework(_))).await else {
        unreachable!()
    };
    assert_eq!((f.user_id, f.hue), (ida, 120));
    a.send(chat("hello from Ann 👋")).await;
    let E::Chat(m) = b.until_event(|e| matches!(e, E::Chat(_))).await else {
        unreachable!()
    };
    assert_eq!(
        (m.text.as_str(), m.display_name.as_str(), m.user_id),
        ("hello from Ann 👋", "Ann", ida)
    );
    b.send(chat("hi Ann")).await;
    a.until_event(|e| matches!(e, E::Chat(m) if m.text == "hi Ann"))
        .await;

    // A late joiner gets the sticker and the chat in its snapshot.
    let c = Client::join(&url, "Cy").await;
    let snap = c.snapshot.clone().unwrap();
    assert_eq!(snap.stickers.len(), 1);
    assert_eq!(snap.stickers[0].sticker_id, "heart");
    let texts: Vec<&str> = snap.chat.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello from Ann 👋", "hi Ann"]);
    assert_eq!(snap.user_count, 3);
    assert_eq!(snap.users.len(), 3);

    // The admin mutes A over the API; A's next chat is refused with MUTED.
    let (status, users) = server
        .admin(Method::GET, "/api/admin/rooms/main/users", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["user_count"], 3);
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["display_name"] == "Ann" && u["transport"] == "websocket")
    );
    let (status, _) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/moderation",
            Some(json!({"action": "mute", "user_id": ida, "duration_s": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let n = a.until_notice().await;
    assert_eq!(n.code, v1::NoticeCode::Muted as i32);
    a.send(chat("am I muted?")).await;
    let n = a.until_notice().await;
    assert_eq!(n.code, v1::NoticeCode::Muted as i32);
    assert!(n.until_ms > 0);
    b.until_event(|e| matches!(e, E::UserUpdated(u) if u.id == ida && u.muted_until_ms > 0))
        .await;

    // Kick B: B gets the notice and the connection closes.
    let (status, _) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/moderation",
            Some(json!({"action": "kick", "user_id": idb, "reason": "bye"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let n = b.until_notice().await;
    assert_eq!(
        (n.code, n.text.as_str()),
        (v1::NoticeCode::Kicked as i32, "bye")
    );
    while b.next().await.is_some() {}
    assert!(b.closed);
    a.until_event(|e| *e == E::UserLeft(idb)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_api_validates_and_reaches_clients_within_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let url = server.ws_url("main");
    let mut a = Client::join(&url, "Ann").await;
    let (status, s) = server
        .admin(Method::GET, "/api/admin/rooms/main/settings", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["title"], "Main stage");
    assert_eq!(s["mode"], "everything");
    assert_eq!(s["sticker_set"], "default");
    for (bad, why) in [
        (json!({"background_color": "red"}), "background_color"),
        (json!({"mode": "loud"}), "mode"),
        (json!({"title": ""}), "title"),
        (json!({"slow_mode_s": 99999}), "slow_mode_s"),
        (json!({"sticker_set": "nope"}), "sticker set"),
        (json!({"colour": "#000000"}), "unknown field"),
    ] {
        let (status, body) = server
            .admin(Method::PUT, "/api/admin/rooms/main/settings", Some(bad))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{body}");
    }
    let (status, s) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/settings",
            Some(json!({"title": "Late show", "now_playing": "Song 2", "background_color": "#102030", "mode": "chat_only"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["mode"], "chat_only");
    let E::Settings(got) = a.until_event(|e| matches!(e, E::Settings(_))).await else {
        unreachable!()
    };
    assert_eq!(got.title, "Late show");
    assert_eq!(got.now_playing, "Song 2");
    assert_eq!(got.mode, v1::InteractivityMode::ChatOnly as i32);
    // The stage frame carries the new title too.
    a.saw_event(|e| matches!(e, E::Stage(s) if s.title == "Late show"))
        .await;
    let (_, room) = server.admin(Method::GET, "/api/rooms/main", None).await;
    assert_eq!(room["title"], "Late show");
    // Chat only: a sticker is refused.
    a.send(C::Sticker(v1::PlaceSticker {
        sticker_id: "heart".into(),
        x: 0.5,
        y: 0.5,
        rotation_deg: 0.0,
        scale: 1.0,
    }))
    .await;
    assert_eq!(
        a.until_notice().await.code,
        v1::NoticeCode::NotAllowed as i32
    );

    // A new sticker set, switched to per room.
    let (status, body) = server
        .admin(
            Method::PUT,
            "/api/admin/sticker-sets/cats",
            Some(json!({"name": "Cats", "stickers": [{"id": "cat", "url": "/stickers/cats/cat.svg", "label": "Cat"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, sets) = server
        .admin(Method::GET, "/api/admin/sticker-sets", None)
        .await;
    assert_eq!(sets[0]["id"], "default");
    assert_eq!(sets[0]["stickers"].as_array().unwrap().len(), 8);
    assert_eq!(sets[0]["stickers"][0]["url"], "/stickers/default/heart.svg");
    assert_eq!(sets[1]["id"], "cats");
    let (status, _) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/settings",
            Some(json!({"sticker_set": "cats", "mode": "everything"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    a.until_event(
        |e| matches!(e, E::Settings(s) if s.sticker_set.as_ref().is_some_and(|s| s.id == "cats")),
    )
    .await;
    a.send(C::Sticker(v1::PlaceSticker {
        sticker_id: "cat".into(),
        x: 0.5,
        y: 0.5,
        rotation_deg: 0.0,
        scale: 1.0,
    }))
    .await;
    a.until_event(|e| matches!(e, E::StickerPlaced(s) if s.sticker_id == "cat"))
        .await;

    // Moderation errors.
    for (body, status) in [
        (
            json!({"action": "mute", "user_id": 999999, "duration_s": 5}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"action": "mute", "user_id": a.user_id()}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"action": "explode"}), StatusCode::BAD_REQUEST),
        (
            json!({"action": "delete_message", "message_id": 12345}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, reply) = server
            .admin(Method::POST, "/api/admin/rooms/main/moderation", Some(body))
            .await;
        assert_eq!(got, status, "{reply}");
    }
    let (status, _) = server
        .admin(Method::GET, "/api/admin/rooms/nope/settings", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn text_frames_bad_versions_and_admin_commands_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let url = server.ws_url("main");
    let mut a = Client::join(&url, "Ann").await;
    a.ws.send(WsMessage::Text("hello?".into())).await.unwrap();
    let n = a.until_notice().await;
    assert_eq!(n.code, v1::NoticeCode::BadMessage as i32);
    assert!(n.text.contains("binary"));

    let mut old = Client::connect(&url).await;
    old.send(C::Hello(v1::ClientHello {
        protocol_version: 0,
        display_name: "Old".into(),
        admin_token: String::new(),
    }))
    .await;
    let n = old.until_notice().await;
    assert_eq!(n.code, v1::NoticeCode::UnsupportedVersion as i32);
    while old.next().await.is_some() {}
    assert!(old.closed);

    // An admin over the socket clears the chat.
    let mut admin = Client::connect(&url).await;
    admin.hello("Host", ADMIN).await;
    admin
        .until(|m| matches!(m.body, Some(S::Snapshot(_))))
        .await;
    assert!(admin.hello.as_ref().unwrap().admin);
    a.send(chat("soon gone")).await;
    admin.until_event(|e| matches!(e, E::Chat(_))).await;
    admin
        .send(C::Admin(v1::AdminCommand {
            command: Some(v1::admin_command::Command::ClearChat(v1::ClearChat {})),
        }))
        .await;
    a.until_event(|e| matches!(e, E::ChatCleared(_))).await;
    // 16–64 KiB: dropped and counted by the hub (larger ones end the connection).
    a.ws.send(WsMessage::Binary(vec![0u8; 20 * 1024].into()))
        .await
        .unwrap();
    // A non-admin cannot.
    a.send(C::Admin(v1::AdminCommand {
        command: Some(v1::admin_command::Command::ClearStickers(
            v1::ClearStickers {},
        )),
    }))
    .await;
    assert_eq!(
        a.until_notice().await.code,
        v1::NoticeCode::NotAllowed as i32
    );
    let req = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(server.router.clone(), req)
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("venue_interaction_users 2"), "{text}");
    assert!(
        text.contains("venue_interaction_bad_frames_total 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_board_settings_and_bans_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve(config(dir.path())).await;
        let url = server.ws_url("main");
        let mut a = Client::join(&url, "Ann").await;
        let mut b = Client::join(&url, "Bob").await;
        a.send(chat("remember me")).await;
        a.send(C::Sticker(v1::PlaceSticker {
            sticker_id: "moon".into(),
            x: 0.1,
            y: 0.9,
            rotation_deg: 0.0,
            scale: 1.0,
        }))
        .await;
        b.until_event(|e| matches!(e, E::StickerPlaced(_))).await;
        let (status, _) = server
            .admin(
                Method::PUT,
                "/api/admin/rooms/main/settings",
                Some(json!({"now_playing": "Encore", "slow_mode_s": 2})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Ban B (all test clients share 127.0.0.1: from now on every new connection is refused).
        let (status, _) = server
            .admin(
                Method::POST,
                "/api/admin/rooms/main/moderation",
                Some(json!({"action": "ban", "user_id": b.user_id(), "duration_s": 600, "reason": "spam"})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let n = b.until_notice().await;
        assert_eq!(
            (n.code, n.text.as_str()),
            (v1::NoticeCode::Banned as i32, "spam")
        );
    }
    // A second server on the same data dir (the first one's tasks linger; the store is shared).
    let server = serve(config(dir.path())).await;
    let (_, s) = server
        .admin(Method::GET, "/api/admin/rooms/main/settings", None)
        .await;
    assert_eq!(
        (s["now_playing"].as_str(), s["slow_mode_s"].as_u64()),
        (Some("Encore"), Some(2))
    );
    // The ban came back: a new connection from 127.0.0.1 is refused with BANNED.
    let mut c = Client::connect(&server.ws_url("main")).await;
    let n = c.until_notice().await;
    assert_eq!(n.code, v1::NoticeCode::Banned as i32);
    assert!(n.until_ms > 0);
    while c.next().await.is_some() {}
    assert!(c.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_board_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve(config(dir.path())).await;
        let mut a = Client::join(&server.ws_url("main"), "Ann").await;
        a.send(chat("remember me")).await;
        a.send(C::Sticker(v1::PlaceSticker {
            sticker_id: "moon".into(),
            x: 0.1,
            y: 0.9,
            rotation_deg: 0.0,
            scale: 1.0,
        }))
        .await;
        a.until_event(|e| matches!(e, E::StickerPlaced(_))).await;
        // A moderation call answers once everything before it is stored.
        let (status, _) = server
            .admin(
                Method::POST,
                "/api/admin/rooms/main/moderation",
                Some(json!({"action": "slow_mode", "duration_s": 0})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let server = serve(config(dir.path())).await;
    let c = Client::join(&server.ws_url("main"), "Cy").await;
    let snap = c.snapshot.unwrap();
    assert_eq!(snap.chat.len(), 1);
    assert_eq!(snap.chat[0].text, "remember me");
    assert_eq!(snap.stickers.len(), 1);
    assert_eq!(snap.stickers[0].sticker_id, "moon");
    assert!(
        c.hello.unwrap().user_id > snap.chat[0].user_id,
        "ids continue above the stored ones"
    );
}
