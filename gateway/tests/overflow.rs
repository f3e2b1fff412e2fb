//! Overflow to HLS (issue 5, item 3): `GET /api/rooms/{room}/join` and WHEP admission with
//! `hls.max_webrtc_viewers = 1`, through the real router (`Router::oneshot`) with a real store
//! and SFU on loopback. Offers come from str0m client peers; they never connect, which does
//! not matter: a viewer counts from its WHEP answer on. No sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use venue_gateway::Services;
use venue_gateway::build_app;
use venue_gateway::config::HlsConfig;
use venue_gateway::http::router;
use venue_gateway::overflow::Overflow;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().expect("ascii"))
            .unwrap_or("")
    }
}

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn join(router: &axum::Router, room: &str) -> Reply {
    call(
        router,
        Method::GET,
        &format!("/api/rooms/{room}/join"),
        &[],
        String::new(),
    )
    .await
}

async fn whep(router: &axum::Router) -> Reply {
    call(
        router,
        Method::POST,
        "/api/whep/main",
        &[("content-type", "application/sdp")],
        common::viewer_offer(1),
    )
    .await
}

fn admin_headers() -> [(&'static str, String); 2] {
    [
        ("authorization", format!("Bearer {}", common::ADMIN)),
        ("content-type", "application/json".into()),
    ]
}

#[tokio::test]
async fn second_viewer_is_sent_to_hls_until_the_first_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.hls = HlsConfig {
        max_webrtc_viewers: 1,
        max_cpu_percent: 0,
        ..Default::default()
    };
    let app = build_app(&config).await.unwrap();
    let r = &app.router;

    // Nobody watches: WebRTC, and the three URLs.
    let first = join(r, "main").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header(header::CACHE_CONTROL), "no-store");
    let j = first.json();
    assert_eq!(j["mode"], "webrtc", "{j}");
    assert_eq!(j["cause"], Value::Null);
    assert_eq!(j["webrtc_viewers"], 0);
    assert_eq!(j["max_webrtc_viewers"], 1);
    assert_eq!(j["hls_url"], "/hls/main/index.m3u8");
    assert_eq!(j["whep_url"], "/api/whep/main");
    assert_eq!(j["ws_url"], "/api/rooms/main/ws");
    assert!(!j["reason"].as_str().unwrap().is_empty());

    // The first viewer joins over WHEP.
    let a = whep(r).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let location = a.header(header::LOCATION).to_owned();
    assert!(location.starts_with("/api/whep/main/"), "{location}");

    // Now the room is full: HLS, with a reason.
    let second = join(r, "main").await.json();
    assert_eq!(second["mode"], "hls", "{second}");
    assert_eq!(second["cause"], "capacity");
    assert_eq!(second["webrtc_viewers"], 1);
    let reason = second["reason"].as_str().unwrap();
    assert!(reason.contains("capacity"), "{reason}");
    assert_eq!(second["hls_url"], "/hls/main/index.m3u8");

    // A page that skips /join is refused: 503 + Retry-After + the same advice as JSON.
    let refused = whep(r).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    let retry: u64 = refused
        .header(header::RETRY_AFTER)
        .parse()
        .expect("Retry-After seconds");
    assert!(retry >= 1, "{retry}");
    assert!(
        refused
            .header(header::CONTENT_TYPE)
            .starts_with("application/json")
    );
    let body = refused.json();
    assert_eq!(body["mode"], "hls");
    assert_eq!(body["hls_url"], "/hls/main/index.m3u8");
    let metrics = call(r, Method::GET, "/metrics", &[], String::new()).await;
    assert!(
        metrics
            .body
            .contains("\nvenue_whep_refused_overflow_total 1\n"),
        "the refusal is counted: {}",
        metrics.body
    );
    assert!(
        body["error"].as_str().unwrap().contains("capacity"),
        "{body}"
    );
    assert_eq!(refused.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");

    // Admin previews are exempt, and do not count as viewers.
    let auth = admin_headers();
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = call(
        r,
        Method::POST,
        "/api/admin/rooms/main/streamers",
        &auth,
        json!({ "name": "Ann" }).to_string(),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    let id = s.json()["id"].as_i64().unwrap();
    let preview = call(
        r,
        Method::POST,
        &format!("/api/admin/rooms/main/streamers/{id}/whep"),
        &[auth[0], ("content-type", "application/sdp")],
        common::viewer_offer(1),
    )
    .await;
    assert_eq!(preview.status, StatusCode::CREATED, "{}", preview.body);
    assert_eq!(join(r, "main").await.json()["webrtc_viewers"], 1);

    // The first viewer leaves: WebRTC again, and WHEP takes a viewer again.
    let del = call(r, Method::DELETE, &location, &[], String::new()).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    let again = join(r, "main").await.json();
    assert_eq!(again["mode"], "webrtc", "{again}");
    assert_eq!(again["webrtc_viewers"], 0);
    assert_eq!(whep(r).await.status, StatusCode::CREATED);

    // Unknown rooms are 404 with a reason.
    let nope = join(r, "nope").await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert!(nope.json()["error"].is_string());
}

#[tokio::test]
async fn an_overloaded_server_sends_new_viewers_to_hls() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let app = build_app(&config).await.unwrap();
    // The same app with a CPU limit of 50 % and a sample set by hand (no sampler task).
    let overflow = Overflow::new(HlsConfig {
        max_webrtc_viewers: 500,
        max_cpu_percent: 50,
        ..Default::default()
    });
    let services = Services {
        overflow: overflow.clone(),
        ..app.services.clone()
    };
    let r = &router(services, app.http.clone());

    overflow.set_cpu_percent(Some(20.0));
    assert_eq!(join(r, "main").await.json()["mode"], "webrtc");
    assert_eq!(whep(r).await.status, StatusCode::CREATED);

    overflow.set_cpu_percent(Some(97.0));
    let busy = join(r, "main").await.json();
    assert_eq!(busy["mode"], "hls", "{busy}");
    assert_eq!(busy["cause"], "cpu");
    assert!(busy["reason"].as_str().unwrap().contains("busy"), "{busy}");
    let refused = whep(r).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!refused.header(header::RETRY_AFTER).is_empty());

    overflow.set_cpu_percent(Some(30.0));
    assert_eq!(join(r, "main").await.json()["mode"], "webrtc");
    assert_eq!(whep(r).await.status, StatusCode::CREATED);
}
