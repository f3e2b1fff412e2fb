//! The schedule through the real router: events and bookings (merges, overlaps, a DST change
//! in Europe/Berlin), the public schedule's privacy, and slot-bound keys on WHIP — refused
//! before the window with the reason, accepted inside, the session ended at the window's end
//! within the grace plus one second. Wall-clock time is moved with the schedule's clock; the
//! window-closing timer runs on real time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};
use tower::ServiceExt;
use venue_gateway::{App, build_app};

mod common;

use common::ADMIN;

async fn app(dir: &std::path::Path, grace_after_s: u64) -> App {
    let mut config = common::config(dir);
    config.schedule.grace_after_s = grace_after_s;
    build_app(&config).await.unwrap()
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, String, String) {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "venue.test")
        .header(header::CONTENT_TYPE, content_type);
    if let Some(token) = auth {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = router
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, location, String::from_utf8(body.to_vec()).unwrap())
}

async fn admin(router: &Router, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = call(
        router,
        method,
        uri,
        Some(ADMIN),
        "application/json",
        body.to_string(),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A sendonly audio+video offer without candidates (as OBS sends).
fn offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    offer.to_sdp_string()
}

async fn whip(router: &Router, key: &str) -> (StatusCode, String, String) {
    call(
        router,
        Method::POST,
        "/api/whip",
        Some(key),
        "application/sdp",
        offer(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_merge_refuse_overlaps_and_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let r = &app.router;
    let events = "/api/admin/rooms/main/events";

    let (status, body) = admin(r, Method::POST, events, json!({"title": "Bad", "start": "2026-11-21T22:00:00Z", "end": "2026-11-21T21:00:00Z", "slot_minutes": 30})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // 2 h 10 min in 30-minute slots: the fifth slot is 10 minutes long.
    let (status, event) = admin(r, Method::POST, events, json!({"title": "Night", "start": "2026-11-21T20:00:00Z", "end": "2026-11-21T22:10:00Z", "slot_minutes": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let slots = event["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 5);
    assert_eq!(slots[4]["start"], "2026-11-21T22:00:00Z");
    assert_eq!(slots[4]["end"], "2026-11-21T22:10:00Z");
    let id = event["id"].as_i64().unwrap();
    let bookings = format!("{events}/{id}/bookings");

    let (status, first) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-11-21T21:00:00Z", "artist_name": "Ann", "description": "cello", "location": "Lyon", "timezone": "Europe/Paris", "email": "ann@example.org"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["stream_key"].as_str().unwrap().len() >= 32);
    let rtmp_url = first["rtmp_url"].as_str().unwrap();
    assert!(
        rtmp_url.starts_with("rtmp://")
            && rtmp_url.contains(":1935/live/")
            && rtmp_url.ends_with(first["stream_key"].as_str().unwrap()),
        "{rtmp_url}"
    );
    assert_eq!(first["booking"]["end"], "2026-11-21T21:30:00Z");
    assert_eq!(first["booking"]["email"], "ann@example.org");
    let streamer = first["booking"]["streamer_id"].as_i64().unwrap();

    // Overlaps (same slot, or a 2-slot booking reaching into it) → 409.
    let (status, body) = admin(
        r,
        Method::POST,
        &bookings,
        json!({"slot_start": "2026-11-21T21:00:00Z", "artist_name": "Bob", "timezone": "UTC"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-11-21T20:30:00Z", "slots": 2, "artist_name": "Bob", "timezone": "UTC"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Off the grid, past the end, bad zone → 400.
    for bad in [
        json!({"slot_start": "2026-11-21T21:10:00Z", "artist_name": "Bob", "timezone": "UTC"}),
        json!({"slot_start": "2026-11-21T22:00:00Z", "slots": 2, "artist_name": "Bob", "timezone": "UTC"}),
        json!({"slot_start": "2026-11-21T20:00:00Z", "artist_name": "Bob", "timezone": "Mars/Olympus"}),
    ] {
        let (status, body) = admin(r, Method::POST, &bookings, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    // The same artist's next slot merges into one window; the key is not shown again.
    let (status, merged) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-11-21T21:30:00Z", "timezone": "Europe/Paris", "streamer_id": streamer})).await;
    assert_eq!(status, StatusCode::CREATED, "{merged}");
    assert_eq!(merged["merged"], true);
    assert_eq!(merged["stream_key"], Value::Null);
    assert_eq!(merged["rtmp_url"], Value::Null);
    assert_eq!(merged["booking"]["id"], first["booking"]["id"]);
    assert_eq!(merged["booking"]["start"], "2026-11-21T21:00:00Z");
    assert_eq!(merged["booking"]["end"], "2026-11-21T22:00:00Z");
    // Filling the gap between two bookings of the same artist joins all three.
    let (status, _) = admin(
        r,
        Method::POST,
        &bookings,
        json!({"slot_start": "2026-11-21T20:00:00Z", "timezone": "UTC", "streamer_id": streamer}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, joined) = admin(
        r,
        Method::POST,
        &bookings,
        json!({"slot_start": "2026-11-21T20:30:00Z", "timezone": "UTC", "streamer_id": streamer}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(joined["booking"]["start"], "2026-11-21T20:00:00Z");
    assert_eq!(joined["booking"]["end"], "2026-11-21T22:00:00Z");

    // Public schedule: slots in order, taken ones show the artist, never email/key/streamer.
    let (status, _, text) = call(
        r,
        Method::GET,
        "/api/rooms/main/schedule",
        None,
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for secret in [
        "email",
        "ann@example.org",
        "stream_key",
        "streamer_id",
        first["stream_key"].as_str().unwrap(),
    ] {
        assert!(
            !text.contains(secret),
            "public schedule shows {secret}: {text}"
        );
    }
    let public: Value = serde_json::from_str(&text).unwrap();
    let slots = public["events"][0]["slots"].as_array().unwrap();
    let starts: Vec<&str> = slots.iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        [
            "2026-11-21T20:00:00Z",
            "2026-11-21T20:30:00Z",
            "2026-11-21T21:00:00Z",
            "2026-11-21T21:30:00Z",
            "2026-11-21T22:00:00Z"
        ]
    );
    for s in &slots[..4] {
        assert_eq!(s["booking"]["artist_name"], "Ann");
        assert_eq!(s["booking"]["location"], "Lyon");
    }
    assert_eq!(slots[4]["booking"], Value::Null);

    // Move the event by an hour: the booking moves with it.
    let (status, moved) = admin(r, Method::PUT, &format!("{events}/{id}"), json!({"title": "Night", "start": "2026-11-21T21:00:00Z", "end": "2026-11-21T23:10:00Z", "slot_minutes": 30})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        moved["slots"][0]["booking"]["start"],
        "2026-11-21T21:00:00Z"
    );
    assert_eq!(moved["slots"][0]["booking"]["end"], "2026-11-21T23:00:00Z");
    // Shrinking it under the booking is refused.
    let (status, body) = admin(r, Method::PUT, &format!("{events}/{id}"), json!({"title": "Night", "start": "2026-11-21T21:00:00Z", "end": "2026-11-21T22:00:00Z", "slot_minutes": 30})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let booking = joined["booking"]["id"].as_i64().unwrap();
    let (status, _) = admin(
        r,
        Method::DELETE,
        &format!("{bookings}/{booking}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin(r, Method::DELETE, &format!("{events}/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = admin(r, Method::GET, events, Value::Null).await;
    assert_eq!(list, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berlin_bookings_across_the_october_dst_change_are_stored_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let r = &app.router;
    // Sunday 2026-10-25: at 01:00Z Berlin goes from 03:00 CEST back to 02:00 CET, so the
    // wall-clock hour 02:00–03:00 happens twice.
    let (status, event) = admin(r, Method::POST, "/api/admin/rooms/main/events", json!({"title": "Long night", "start": "2026-10-25T01:00:00+02:00", "end": "2026-10-25T05:00:00+01:00", "slot_minutes": 60})).await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!(event["start"], "2026-10-24T23:00:00Z");
    assert_eq!(event["end"], "2026-10-25T04:00:00Z");
    let bookings = format!("/api/admin/rooms/main/events/{}/bookings", event["id"]);
    let (status, first) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-10-25T02:00:00+02:00", "artist_name": "Summer", "timezone": "Europe/Berlin"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-10-25T02:00:00+01:00", "slots": 2, "artist_name": "Winter", "timezone": "Europe/Berlin"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");

    let (_, _, text) = call(
        r,
        Method::GET,
        "/api/rooms/main/schedule",
        None,
        "application/json",
        String::new(),
    )
    .await;
    let public: Value = serde_json::from_str(&text).unwrap();
    let slots = &public["events"][0]["slots"];
    let summer = &slots[1]["booking"];
    assert_eq!(summer["artist_name"], "Summer");
    assert_eq!(summer["start"], "2026-10-25T00:00:00Z");
    assert_eq!(summer["end"], "2026-10-25T01:00:00Z");
    assert_eq!(summer["local_start"], "2026-10-25T02:00:00+02:00");
    assert_eq!(summer["local_end"], "2026-10-25T02:00:00+01:00");
    let winter = &slots[2]["booking"];
    assert_eq!(winter["artist_name"], "Winter");
    assert_eq!(winter["start"], "2026-10-25T01:00:00Z");
    assert_eq!(winter["end"], "2026-10-25T03:00:00Z");
    assert_eq!(winter["local_start"], "2026-10-25T02:00:00+01:00");
    assert_eq!(winter["local_end"], "2026-10-25T04:00:00+01:00");
    assert_eq!(slots[3]["booking"]["artist_name"], "Winter");
    assert_eq!(slots[0]["booking"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_bound_keys_open_in_their_window_and_sessions_end_at_its_close() {
    let dir = tempfile::tempdir().unwrap();
    let grace_after = Duration::from_secs(1);
    let app = app(dir.path(), grace_after.as_secs()).await;
    let r = &app.router;
    let schedule = app.services.schedule.clone();

    // A host (never booked) publishes any time.
    let (_, host) = admin(
        r,
        Method::POST,
        "/api/admin/rooms/main/streamers",
        json!({"name": "Host"}),
    )
    .await;
    let host_key = host["stream_key"].as_str().unwrap().to_owned();

    let (_, event) = admin(r, Method::POST, "/api/admin/rooms/main/events", json!({"title": "Night", "start": "2026-11-21T20:00:00Z", "end": "2026-11-21T23:00:00Z", "slot_minutes": 30})).await;
    let bookings = format!("/api/admin/rooms/main/events/{}/bookings", event["id"]);
    let (status, booked) = admin(
        r,
        Method::POST,
        &bookings,
        json!({"slot_start": "2026-11-21T21:00:00Z", "artist_name": "Ann", "timezone": "UTC"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let key = booked["stream_key"].as_str().unwrap().to_owned();

    // Before the window (and its 5-minute grace): 401 with when it opens.
    schedule.set_now(at("2026-11-21T20:54:59Z"));
    let (status, _, reason) = whip(r, &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        reason.contains("this key opens at 2026-11-21T20:55:00Z"),
        "{reason}"
    );
    let (status, _, body) = whip(r, &host_key).await;
    assert_eq!(status, StatusCode::CREATED, "host key: {body}");

    // Inside the grace before the window: accepted.
    schedule.set_now(at("2026-11-21T20:55:00Z"));
    let (status, _, body) = whip(r, &key).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // One second before the window's end: accepted; the session ends at end + grace_after,
    // within one more second.
    schedule.set_now(at("2026-11-21T21:29:59Z"));
    let (status, location, body) = whip(r, &key).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let t0 = Instant::now();
    let session = venue_sfu::SessionId(
        u64::from_str_radix(location.rsplit('/').next().unwrap(), 16).unwrap(),
    );
    let state = app.services.state.clone();
    assert!(state.session(session).await.unwrap().is_some());
    let closed_after = loop {
        if state.session(session).await.unwrap().is_none() {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the session outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let window_close = Duration::from_secs(1) + grace_after;
    assert!(
        closed_after + Duration::from_millis(100) >= window_close,
        "closed too early: {closed_after:?}"
    );
    assert!(
        closed_after <= window_close + Duration::from_secs(1),
        "closed too late: {closed_after:?}"
    );

    // After the window: refused with when it ended; the host's key still works.
    let (status, _, reason) = whip(r, &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason.contains("ended at 2026-11-21T21:30:00Z"), "{reason}");
    let (status, _, _) = whip(r, &host_key).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_signup_only_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let r = &app.router;
    let (_, closed) = admin(r, Method::POST, "/api/admin/rooms/main/events", json!({"title": "Closed", "start": "2026-11-21T20:00:00Z", "end": "2026-11-21T21:00:00Z", "slot_minutes": 30})).await;
    let (_, open) = admin(r, Method::POST, "/api/admin/rooms/main/events", json!({"title": "Open mic", "start": "2026-11-22T20:00:00Z", "end": "2026-11-22T21:00:00Z", "slot_minutes": 15, "public_signup": true})).await;
    let body = json!({"slot_start": "2026-11-22T20:15:00Z", "artist_name": "Zoe", "timezone": "America/New_York", "email": "zoe@example.org"}).to_string();
    let (status, _, _) = call(
        r,
        Method::POST,
        &format!("/api/rooms/main/events/{}/signup", closed["id"]),
        None,
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, text) = call(
        r,
        Method::POST,
        &format!("/api/rooms/main/events/{}/signup", open["id"]),
        None,
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert!(created["stream_key"].as_str().is_some());
    assert_eq!(
        created["booking"]["local_start"],
        "2026-11-22T15:15:00-05:00"
    );
    assert!(!text.contains("zoe@example.org"));
    let (_, list) = admin(r, Method::GET, "/api/admin/rooms/main/events", Value::Null).await;
    assert_eq!(list[1]["slots"][1]["booking"]["email"], "zoe@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_move_resize_refuse_overlaps_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), 0).await;
    let r = &app.router;
    let events = "/api/admin/rooms/main/events";
    // Four 30-minute slots: 20:00, 20:30, 21:00, 21:30.
    let (status, event) = admin(r, Method::POST, events, json!({"title": "Night", "start": "2026-11-21T20:00:00Z", "end": "2026-11-21T22:00:00Z", "slot_minutes": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let bookings = format!("{events}/{}/bookings", event["id"]);
    let (_, ann) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-11-21T20:00:00Z", "artist_name": "Ann", "timezone": "Europe/Paris"})).await;
    let (_, bob) = admin(
        r,
        Method::POST,
        &bookings,
        json!({"slot_start": "2026-11-21T21:00:00Z", "artist_name": "Bob", "timezone": "UTC"}),
    )
    .await;
    let ann_id = ann["booking"]["id"].as_i64().unwrap();
    let ann_streamer = ann["booking"]["streamer_id"].as_i64().unwrap();
    let bob_id = bob["booking"]["id"].as_i64().unwrap();
    let one = format!("{bookings}/{ann_id}");

    // Onto Bob's slot, or stretched into it → 409; nothing moves.
    let (status, body) = admin(
        r,
        Method::PUT,
        &one,
        json!({"slot_start": "2026-11-21T21:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = admin(
        r,
        Method::PUT,
        &one,
        json!({"slot_start": "2026-11-21T20:00:00Z", "slots": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Off the grid, past the end, no slots, unknown fields → 400; unknown booking → 404.
    for bad in [
        json!({"slot_start": "2026-11-21T20:17:00Z"}),
        json!({"slot_start": "2026-11-21T21:30:00Z", "slots": 2}),
        json!({"slot_start": "2026-11-21T20:30:00Z", "slots": 0}),
        json!({"slot_start": "2026-11-21T20:30:00Z", "artist_name": "Zed"}),
    ] {
        let (status, body) = admin(r, Method::PUT, &one, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
    }
    let (status, _) = admin(
        r,
        Method::PUT,
        &format!("{bookings}/999"),
        json!({"slot_start": "2026-11-21T20:30:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = admin(r, Method::GET, events, Value::Null).await;
    assert_eq!(list[0]["slots"][0]["booking"]["id"], ann_id);

    // Move Ann to 20:30: 200 with the new window, in UTC and in her zone.
    let (status, moved) = admin(
        r,
        Method::PUT,
        &one,
        json!({"slot_start": "2026-11-21T21:30:00+01:00"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["id"], ann_id);
    assert_eq!(moved["start"], "2026-11-21T20:30:00Z");
    assert_eq!(moved["end"], "2026-11-21T21:00:00Z");
    assert_eq!(moved["local_start"], "2026-11-21T21:30:00+01:00");
    assert_eq!(moved["streamer_id"], ann_streamer);
    let (_, list) = admin(r, Method::GET, events, Value::Null).await;
    assert!(list[0]["slots"][0]["booking"].is_null());
    assert_eq!(list[0]["slots"][1]["booking"]["id"], ann_id);

    // A second booking of Ann's streamer at 21:30; Bob goes; moving it to 21:00 lands next to
    // her 20:30 booking: one booking 20:30–21:30 with the moved one's id.
    let (status, ann2) = admin(r, Method::POST, &bookings, json!({"slot_start": "2026-11-21T21:30:00Z", "streamer_id": ann_streamer, "timezone": "Europe/Paris"})).await;
    assert_eq!(status, StatusCode::CREATED, "{ann2}");
    assert_eq!(ann2["merged"], false);
    let ann2_id = ann2["booking"]["id"].as_i64().unwrap();
    let (status, _, _) = call(
        r,
        Method::DELETE,
        &format!("{bookings}/{bob_id}"),
        Some(ADMIN),
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, merged) = admin(
        r,
        Method::PUT,
        &format!("{bookings}/{ann2_id}"),
        json!({"slot_start": "2026-11-21T21:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["id"], ann2_id);
    assert_eq!(merged["start"], "2026-11-21T20:30:00Z");
    assert_eq!(merged["end"], "2026-11-21T21:30:00Z");
    let (_, list) = admin(r, Method::GET, events, Value::Null).await;
    let ids: Vec<Value> = list[0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["booking"]["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![Value::Null, json!(ann2_id), json!(ann2_id), Value::Null]
    );
}
