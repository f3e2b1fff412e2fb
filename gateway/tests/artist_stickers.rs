//! A sticker set per artist: an admin gives a streamer a sticker set; when a stage change puts
//! that streamer on slot 0 the room switches to it like a `PUT settings` would (stored, pushed
//! to clients); a streamer without a set leaves the room's set alone. Validation: 400 / 404.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use venue_proto::v1::event::Kind;

async fn streamer(s: &Server, name: &str) -> i64 {
    let (status, body) = s
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn stage(s: &Server, slots: serde_json::Value) {
    let (status, body) = s
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(json!({"layout": 2, "slots": slots})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn room_set(s: &Server) -> String {
    let (status, body) = s
        .admin(Method::GET, "/api/admin/rooms/main/settings", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    body["sticker_set"].as_str().unwrap().to_owned()
}

fn settings_with(set: &'static str) -> impl Fn(&Kind) -> bool {
    move |k| matches!(k, Kind::Settings(st) if st.sticker_set.as_ref().is_some_and(|x| x.id == set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_0_streamer_brings_its_sticker_set() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = serve(config(dir.path())).await;
        let (status, body) = s
            .admin(
                Method::PUT,
                "/api/admin/sticker-sets/party",
                Some(json!({"name": "Party", "stickers": [
                    {"id": "dot", "url": "/stickers/custom/party/dot", "label": "Dot"}
                ]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ann = streamer(&s, "Ann").await;
        let bob = streamer(&s, "Bob").await;
        let path = format!("/api/admin/rooms/main/streamers/{ann}");

        // Validation: unknown set 400, unknown streamer 404, bad bodies 400.
        let (status, _) = s
            .admin(Method::PUT, &path, Some(json!({"sticker_set": "nope"})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        for bad in [json!({}), json!({"sticker_set": 3}), json!({"x": null})] {
            let (status, _) = s.admin(Method::PUT, &path, Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
        for missing in [
            "/api/admin/rooms/main/streamers/999".to_owned(),
            "/api/admin/rooms/main/streamers/abc".to_owned(),
            format!("/api/admin/rooms/nope/streamers/{ann}"),
        ] {
            let (status, _) = s
                .admin(Method::PUT, &missing, Some(json!({"sticker_set": "party"})))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        }

        // Set, shown in the answer and the list.
        let (status, body) = s
            .admin(Method::PUT, &path, Some(json!({"sticker_set": "party"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (
                body["id"].as_i64(),
                body["name"].as_str(),
                body["sticker_set"].as_str(),
                body["live"].as_bool()
            ),
            (Some(ann), Some("Ann"), Some("party"), Some(false))
        );
        let (_, list) = s
            .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
            .await;
        assert_eq!(list[0]["sticker_set"], json!("party"));
        assert_eq!(list[1]["sticker_set"], json!(null));

        // Giving a streamer a set changes nothing by itself.
        assert_eq!(room_set(&s).await, "default");

        // A streamer without a set on slot 0 leaves the room's set alone.
        let mut viewer = Client::join(&s.ws_url("main"), "Vi").await;
        stage(&s, json!([bob, ann])).await;
        assert_eq!(room_set(&s).await, "default");

        // Ann on slot 0: the room switches to her set, stored before the 200, pushed to clients.
        stage(&s, json!([ann, bob])).await;
        assert_eq!(room_set(&s).await, "party");
        let Kind::Settings(st) = viewer.until_event(settings_with("party")).await else {
            unreachable!()
        };
        assert_eq!(st.sticker_set.unwrap().stickers[0].id, "dot");

        // An admin may still switch the room's set by hand; Bob (no set) on slot 0 keeps it.
        let (status, _) = s
            .admin(
                Method::PUT,
                "/api/admin/rooms/main/settings",
                Some(json!({"sticker_set": "default"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        viewer.until_event(settings_with("default")).await;
        stage(&s, json!([bob])).await;
        assert_eq!(room_set(&s).await, "default");

        // Ann back on slot 0: her set again.
        stage(&s, json!([ann])).await;
        viewer.until_event(settings_with("party")).await;

        // Clearing her set: 200 with null, and the room keeps its set.
        let (status, body) = s
            .admin(Method::PUT, &path, Some(json!({"sticker_set": null})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sticker_set"], json!(null));
        let (status, _) = s
            .admin(
                Method::PUT,
                "/api/admin/rooms/main/settings",
                Some(json!({"sticker_set": "default"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        stage(&s, json!([bob, ann])).await;
        stage(&s, json!([ann, bob])).await;
        assert_eq!(room_set(&s).await, "default");

        // Set again; re-staging with the same artist on slot 0 (a layout change, say) keeps the
        // admin's choice — only a new artist on slot 0 brings their set.
        let (status, _) = s
            .admin(Method::PUT, &path, Some(json!({"sticker_set": "party"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        stage(&s, json!([ann])).await;
        assert_eq!(room_set(&s).await, "default");
        stage(&s, json!([bob])).await;
        stage(&s, json!([ann])).await;
        assert_eq!(room_set(&s).await, "party");
    }
    // Both the streamer's set and the room's switched set are stored.
    let s = serve(config(dir.path())).await;
    assert_eq!(room_set(&s).await, "party");
    let (_, list) = s
        .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
        .await;
    assert_eq!(list[0]["sticker_set"], json!("party"));
}
