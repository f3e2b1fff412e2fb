//! Webhooks through the real server to a real local receiver (axum on 127.0.0.1:0) that
//! records every request and checks its `Venue-Signature` with its own HMAC-SHA256:
//! - a booked window (two contiguous slots merged) delivers `slot.started` when the timer
//!   reaches its start and `slot.ended` at its end, once each;
//! - a WHIP publisher delivers `publish.started` and, on DELETE, `publish.stopped`;
//! - a receiver answering 500 twice gets the event on the 3rd attempt, while a 404 is not
//!   retried;
//! - a receiver that never answers holds back neither the API nor the other receivers.
//!
//! Schedule time is moved with the schedule's clock; waits poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use common::{Server, config};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Sha256;
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};
use tower::ServiceExt;
use venue_gateway::build_app;
use venue_gateway::schedule::Schedule;

const SECRET: &str = "receiver-shared-secret-0123";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    /// The receiver path's last segment: its behaviour.
    mode: String,
    event_id: String,
    event_type: String,
    attempt: u32,
    content_type: String,
    /// Our own check of `Venue-Signature` against the raw body.
    signature_ok: bool,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests of mode `hang` that were answered (never, unless the server gives up).
    hang_answered: Arc<Mutex<usize>>,
}

/// `HMAC-SHA256(secret, "<t>.<body>")` in hex against `t=<t>,v1=<hex>`, and `t` within 5 min.
fn signature_ok(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    expected == v1 && (Utc::now().timestamp() - t).abs() < 300
}

async fn hook(
    State(r): State<Receiver>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let hit = Hit {
        mode: mode.clone(),
        event_id: h("venue-event-id"),
        event_type: h("venue-event-type"),
        attempt: h("venue-delivery-attempt").parse().unwrap_or(0),
        content_type: h("content-type"),
        signature_ok: signature_ok(&h("venue-signature"), &body),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let earlier = {
        let mut hits = r.hits.lock().unwrap();
        let earlier = hits
            .iter()
            .filter(|x| x.mode == mode && x.event_id == hit.event_id)
            .count();
        hits.push(hit);
        earlier
    };
    match mode.as_str() {
        "flaky" if earlier < 2 => StatusCode::INTERNAL_SERVER_ERROR,
        "gone" => StatusCode::NOT_FOUND,
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            *r.hang_answered.lock().unwrap() += 1;
            StatusCode::OK
        }
        _ => StatusCode::OK,
    }
}

impl Receiver {
    /// Serves `POST /hook/{mode}` on an ephemeral loopback port; returns its base URL.
    async fn start(&self) -> String {
        let app = Router::new()
            .route("/hook/{mode}", axum::routing::post(hook))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    fn hits(&self, mode: &str) -> Vec<Hit> {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.mode == mode).cloned().collect()
    }

    /// Waits (10 s at most) until `mode` has seen `n` requests; returns them in arrival order.
    async fn wait(&self, mode: &str, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hits = self.hits(mode);
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: {} of {n} requests: {hits:#?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The server with `[webhooks]` pointing at `urls` (fast retries), and its schedule.
async fn server(dir: &std::path::Path, urls: Vec<String>) -> (Server, Schedule) {
    let mut config = config(dir);
    config.webhooks.urls = urls;
    config.webhooks.secret = Some(venue_gateway::config::Secret::new(SECRET));
    config.webhooks.retry_initial_ms = 20;
    config.webhooks.timeout_ms = 30_000;
    let app = build_app(&config).await.unwrap();
    let schedule = app.services.schedule.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(app.serve(listener, std::future::pending()));
    let server = Server {
        addr,
        router,
        dir: dir.to_owned(),
    };
    (server, schedule)
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

/// `POST /api/whip` with `key`: (status, Location).
async fn whip(server: &Server, key: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/whip")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from(offer()))
        .unwrap();
    let res = server.router.clone().oneshot(req).await.unwrap();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status(), location)
}

/// A host streamer (never booked): (id, stream key).
async fn host(server: &Server, name: &str) -> (i64, String) {
    let (status, s) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    (
        s["id"].as_i64().unwrap(),
        s["stream_key"].as_str().unwrap().to_owned(),
    )
}

/// `venue_webhooks_{name}_total` from `/metrics`.
async fn counter(server: &Server, name: &str) -> u64 {
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let res = server.router.clone().oneshot(req).await.unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let metric = format!("venue_webhooks_{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&metric))
        .unwrap_or_else(|| panic!("{metric} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

fn assert_signed(hit: &Hit) {
    assert!(hit.signature_ok, "bad signature: {hit:#?}");
    assert_eq!(hit.content_type, "application/json");
    assert_eq!(hit.event_id, hit.body["id"].as_str().unwrap());
    assert_eq!(hit.event_type, hit.body["type"].as_str().unwrap());
    let created = hit.body["created_at"].as_str().unwrap();
    assert!(
        DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_window_delivers_slot_started_then_slot_ended_once() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, schedule) = server(dir.path(), vec![format!("{base}/ok")]).await;

    let (status, event) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/events",
            Some(json!({"title": "Night", "start": "2030-01-05T20:00:00Z",
                "end": "2030-01-05T22:00:00Z", "slot_minutes": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let event_id = event["id"].as_i64().unwrap();
    let bookings = format!("/api/admin/rooms/main/events/{event_id}/bookings");
    let (status, first) = server
        .admin(
            Method::POST,
            &bookings,
            Some(
                json!({"slot_start": "2030-01-05T20:00:00Z", "artist_name": "Ann",
                "timezone": "UTC"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let streamer = first["booking"]["streamer_id"].as_i64().unwrap();
    // The next slot for the same artist merges into one window 20:00–21:00.
    let (status, second) = server
        .admin(
            Method::POST,
            &bookings,
            Some(
                json!({"slot_start": "2030-01-05T20:30:00Z", "streamer_id": streamer,
                "timezone": "UTC"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["merged"], true);
    let booking = second["booking"]["id"].as_i64().unwrap();

    // One second before the start: the timer wakes at the start by itself.
    schedule.set_now(at("2030-01-05T19:59:59Z"));
    let hits = receiver.wait("ok", 1).await;
    let started = &hits[0];
    assert_signed(started);
    assert_eq!(started.event_type, "slot.started");
    assert_eq!(started.attempt, 1);
    assert_eq!(started.body["room"], "main");
    assert_eq!(
        started.body["data"],
        json!({"event_id": event_id, "booking_id": booking, "streamer_id": streamer,
            "artist_name": "Ann", "start": "2030-01-05T20:00:00Z",
            "end": "2030-01-05T21:00:00Z"})
    );
    // No start for the merged half at 20:30, no second start on re-arms.
    schedule.set_now(at("2030-01-05T20:30:01Z"));
    schedule.changed();

    // The window's end (jumped over: caught up at once).
    schedule.set_now(at("2030-01-05T21:00:01Z"));
    let hits = receiver.wait("ok", 2).await;
    let ended = &hits[1];
    assert_signed(ended);
    assert_eq!(ended.event_type, "slot.ended");
    assert_eq!(ended.body["data"], started.body["data"]);
    assert_ne!(ended.event_id, started.event_id);

    // Re-arming after the end fires nothing more.
    schedule.changed();
    schedule.set_now(at("2030-01-05T21:10:00Z"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&server, "delivered").await < 2 {
        assert!(Instant::now() < deadline, "2 deliveries counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let types: Vec<String> = receiver
        .hits("ok")
        .iter()
        .map(|h| h.event_type.clone())
        .collect();
    assert_eq!(types, vec!["slot.started", "slot.ended"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_delivers_publish_started_and_stopped() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server(dir.path(), vec![format!("{base}/ok")]).await;
    let (id, key) = host(&server, "Host Band").await;

    let (status, location) = whip(&server, &key).await;
    assert_eq!(status, StatusCode::CREATED);
    let session = location.rsplit('/').next().unwrap().to_owned();
    let hits = receiver.wait("ok", 1).await;
    assert_signed(&hits[0]);
    assert_eq!(hits[0].event_type, "publish.started");
    assert_eq!(hits[0].body["room"], "main");
    assert_eq!(
        hits[0].body["data"],
        json!({"streamer_id": id, "streamer_name": "Host Band", "session_id": session,
            "protocol": "whip"})
    );

    let req = Request::builder()
        .method(Method::DELETE)
        .uri(&location)
        .body(Body::empty())
        .unwrap();
    let res = server.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let hits = receiver.wait("ok", 2).await;
    assert_signed(&hits[1]);
    assert_eq!(hits[1].event_type, "publish.stopped");
    assert_eq!(hits[1].body["data"], hits[0].body["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_delivered_and_a_404_is_not() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server(
        dir.path(),
        vec![format!("{base}/flaky"), format!("{base}/gone")],
    )
    .await;
    let (_, key) = host(&server, "Host").await;
    let (status, _) = whip(&server, &key).await;
    assert_eq!(status, StatusCode::CREATED);

    let hits = receiver.wait("flaky", 3).await;
    assert!(hits.iter().all(|h| h.signature_ok), "{hits:#?}");
    let attempts: Vec<u32> = hits.iter().map(|h| h.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert!(hits.iter().all(|h| h.event_id == hits[0].event_id));
    assert!(hits.iter().all(|h| h.body == hits[0].body));
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&server, "delivered").await < 1 || counter(&server, "failed").await < 1 {
        assert!(Instant::now() < deadline, "delivered and failed counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counter(&server, "delivered").await, 1);
    assert_eq!(counter(&server, "failed").await, 1, "the 404 is final");
    assert_eq!(counter(&server, "retried").await, 2);
    assert_eq!(counter(&server, "dropped").await, 0);
    let gone = receiver.hits("gone");
    assert_eq!(gone.len(), 1, "{gone:#?}");
    assert_eq!(gone[0].event_id, hits[0].event_id);
    assert_eq!(receiver.hits("flaky").len(), 3, "nothing after the 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_holds_back_neither_the_api_nor_other_receivers() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server(
        dir.path(),
        vec![format!("{base}/hang"), format!("{base}/ok")],
    )
    .await;
    let (_, key) = host(&server, "Host").await;
    let (status, location) = whip(&server, &key).await;
    assert_eq!(status, StatusCode::CREATED);

    // The hanging receiver has the request and has not answered it...
    receiver.wait("hang", 1).await;
    // ...while the other receiver got the same event...
    let ok = receiver.wait("ok", 1).await;
    assert_eq!(ok[0].event_type, "publish.started");
    assert_eq!(ok[0].event_id, receiver.hits("hang")[0].event_id);
    // ...and the API answers: admin calls, another publish event, its delivery elsewhere.
    let (status, list) = server
        .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let req = Request::builder()
        .method(Method::DELETE)
        .uri(&location)
        .body(Body::empty())
        .unwrap();
    let res = server.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ok = receiver.wait("ok", 2).await;
    assert_eq!(ok[1].event_type, "publish.stopped");
    assert_eq!(*receiver.hang_answered.lock().unwrap(), 0);
    assert_eq!(counter(&server, "failed").await, 0);

    // More events than one URL's deliveries in flight: the other receiver still gets every
    // one while the hanging receiver holds its four.
    let mut count: HashMap<String, usize> = HashMap::new();
    for i in 0..8 {
        let (_, key) = host(&server, &format!("Band {i}")).await;
        let (status, _) = whip(&server, &key).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let ok = receiver.wait("ok", 10).await;
    for h in &ok {
        *count.entry(h.event_type.clone()).or_default() += 1;
    }
    assert_eq!(count["publish.started"], 9);
    assert_eq!(*receiver.hang_answered.lock().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_publisher_delivers_publish_started_and_stopped_with_protocol_rtmp() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.webhooks.urls = vec![format!("{base}/ok")];
    config.webhooks.secret = Some(venue_gateway::config::Secret::new(SECRET));
    let app = build_app(&config).await.unwrap();
    let rtmp = venue_gateway::media::rtmp::spawn(
        app.rtmp.clone(),
        venue_gateway::config::RtmpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config.rtmp
        },
    )
    .await
    .expect("RTMP listens");
    let server = Server {
        addr: rtmp,
        router: app.router.clone(),
        dir: dir.path().to_owned(),
    };
    let (id, key) = host(&server, "Encoder").await;

    // Two seconds of H.264 from Debian's ffmpeg; the connection closes when it ends.
    let status = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=30:duration=2")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/{key}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)");
    assert!(status.success(), "ffmpeg published");

    let hits = receiver.wait("ok", 2).await;
    assert!(hits.iter().all(|h| h.signature_ok), "{hits:#?}");
    let types: Vec<&str> = hits.iter().map(|h| h.event_type.as_str()).collect();
    assert_eq!(types, vec!["publish.started", "publish.stopped"]);
    for h in &hits {
        assert_eq!(h.body["data"]["protocol"], "rtmp");
        assert_eq!(h.body["data"]["streamer_id"], id);
        assert_eq!(h.body["data"]["streamer_name"], "Encoder");
    }
    assert_eq!(hits[0].body["data"], hits[1].body["data"]);
}
