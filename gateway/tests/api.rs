//! Gateway HTTP tests: the real router (`Router::oneshot`), a real SQLite store in a temp dir
//! and a real SFU on ephemeral loopback ports. Offers come from str0m client peers. No sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use venue_gateway::config::{Config, Secret};
use venue_gateway::{App, build_app};

const ADMIN: &str = "test-admin-token";

struct TestApp {
    app: App,
    dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> Config {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    Config {
        data_dir: dir.to_owned(),
        admin_token: Some(Secret::new(ADMIN)),
        media: venue_sfu::SfuConfig {
            base_port: 0,
            shards: 1,
            bind_ip: loopback,
            candidate_ips: vec![loopback],
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn start() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = build_app(&config(dir.path())).await.expect("app builds");
    TestApp { app, dir }
}

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

async fn send(router: &Router, req: Request<Body>) -> Reply {
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

impl TestApp {
    fn router(&self) -> &Router {
        &self.app.router
    }

    async fn req(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "venue.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(self.router(), b.body(body.into()).expect("request")).await
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN}");
        let body = body.map(|v| v.to_string()).unwrap_or_default();
        self.req(
            method,
            uri,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Creates a streamer in `room`; returns (id, stream key).
    async fn streamer(&self, room: &str, name: &str) -> (i64, String) {
        let r = self
            .admin(
                Method::POST,
                &format!("/api/admin/rooms/{room}/streamers"),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let v = r.json();
        (
            v["id"].as_i64().expect("id"),
            v["stream_key"].as_str().expect("key").to_owned(),
        )
    }

    async fn whip(&self, key: &str, offer: &str) -> Reply {
        let auth = format!("Bearer {key}");
        self.req(
            Method::POST,
            "/api/whip",
            &[
                ("authorization", &auth),
                ("content-type", "application/sdp"),
            ],
            offer.to_owned(),
        )
        .await
    }

    async fn whep(&self, room: &str, offer: &str) -> Reply {
        self.req(
            Method::POST,
            &format!("/api/whep/{room}"),
            &[("content-type", "application/sdp")],
            offer.to_owned(),
        )
        .await
    }
}

fn ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_owned()
}

fn trickle(offer: &str) -> String {
    format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 UDP 2130706431 127.0.0.1 50999 typ host\r\n",
        ufrag(offer),
        offer
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=ice-pwd:"))
            .expect("pwd"),
    )
}

const RESTART: &str = "a=ice-ufrag:newufrag\r\na=ice-pwd:newpasswordnewpasswordxx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n";

fn assert_session_created(r: &Reply, location_prefix: &str) {
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let location = r.header(header::LOCATION);
    let id = location
        .strip_prefix(location_prefix)
        .unwrap_or_else(|| panic!("Location {location:?}"));
    assert_eq!(id.len(), 16, "{location}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let etag = r.header(header::ETAG);
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    assert_eq!(r.header(header::CONTENT_TYPE), "application/sdp");
    assert!(r.body.starts_with("v=0"), "{}", r.body);
    assert!(
        r.body.contains("a=candidate"),
        "answer holds the server candidates: {}",
        r.body
    );
}

fn assert_cors(r: &Reply) {
    assert_eq!(r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let expose = r.header(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    for h in ["Location", "ETag", "Link"] {
        assert!(expose.contains(h), "expose {expose}");
    }
}

// ---------- WHIP ----------

#[tokio::test]
async fn whip_options_answers_accept_post_and_cors() {
    let t = start().await;
    for headers in [
        vec![],
        vec![
            ("origin", "https://elsewhere.example"),
            ("access-control-request-method", "POST"),
        ],
    ] {
        let r = t
            .req(Method::OPTIONS, "/api/whip", &headers, Body::empty())
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            r.header(header::HeaderName::from_static("accept-post")),
            "application/sdp"
        );
        assert_cors(&r);
        let methods = r.header(header::ACCESS_CONTROL_ALLOW_METHODS);
        for m in ["POST", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.contains(m), "{methods}");
        }
        let allowed = r.header(header::ACCESS_CONTROL_ALLOW_HEADERS);
        for h in ["Authorization", "Content-Type", "If-Match"] {
            assert!(allowed.contains(h), "{allowed}");
        }
    }
    let r = t
        .req(
            Method::OPTIONS,
            "/api/whip/0000000000000001",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_cors(&r);
}

#[tokio::test]
async fn whip_without_or_with_unknown_key_is_401() {
    let t = start().await;
    let offer = common::publisher_offer();
    let r = t
        .req(
            Method::POST,
            "/api/whip",
            &[("content-type", "application/sdp")],
            offer.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header(header::WWW_AUTHENTICATE), "Bearer");
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
    assert!(r.body.contains("stream key"));
    assert_cors(&r);
    let r = t.whip("not-a-key", &offer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header(header::WWW_AUTHENTICATE), "Bearer");
    let r = t
        .req(
            Method::POST,
            "/api/whip",
            &[
                ("authorization", "Basic Zm9vOmJhcg=="),
                ("content-type", "application/sdp"),
            ],
            offer,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whip_bad_requests_are_4xx_with_reasons() {
    let t = start().await;
    let (_, key) = t.streamer("main", "Ann").await;
    let auth = format!("Bearer {key}");
    let offer = common::publisher_offer();

    for ct in [None, Some("text/plain"), Some("application/json")] {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let r = t
            .req(Method::POST, "/api/whip", &headers, offer.clone())
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert!(r.body.contains("application/sdp"));
    }

    let huge = format!("{offer}{}", "a=x\r\n".repeat(64 * 1024 / 5 + 1));
    assert!(huge.len() > 64 * 1024);
    let r = t.whip(&key, &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = t
        .req(
            Method::POST,
            "/api/whip",
            &[
                ("authorization", &auth),
                ("content-type", "application/sdp"),
            ],
            chunked(huge.into_bytes()),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunked body without Content-Length"
    );

    for garbage in [
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio\r\n",
    ] {
        let r = t.whip(&key, garbage).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{garbage:?}: {}", r.body);
        assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
        assert!(r.body.len() > 10, "a reason: {}", r.body);
    }
    let r = t
        .req(
            Method::POST,
            "/api/whip",
            &[
                ("authorization", &auth),
                ("content-type", "application/sdp"),
            ],
            vec![0xff, 0xfe, 0x00],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A viewer's recvonly offer is not a publication.
    let r = t.whip(&key, &common::viewer_offer(1)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

/// A body streamed in 4 KiB chunks, without Content-Length.
struct Chunks(Vec<axum::body::Bytes>);

fn chunked(bytes: Vec<u8>) -> Body {
    let mut chunks: Vec<axum::body::Bytes> = bytes
        .chunks(4096)
        .map(axum::body::Bytes::copy_from_slice)
        .collect();
    chunks.reverse();
    Body::new(Chunks(chunks))
}

impl http_body::Body for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn whip_publish_patch_delete() {
    let t = start().await;
    let (_, key) = t.streamer("main", "Ann").await;
    let offer = common::publisher_offer();
    let r = t.whip(&key, &offer).await;
    assert_session_created(&r, "/api/whip/");
    assert_cors(&r);
    let location = r.header(header::LOCATION).to_owned();
    let etag = r.header(header::ETAG).to_owned();

    // Trickle: 204, with and without a matching If-Match.
    let frag = trickle(&offer);
    let ct = ("content-type", "application/trickle-ice-sdpfrag");
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[ct, ("if-match", &etag)],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = t.req(Method::PATCH, &location, &[ct], frag.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // If-Match mismatch: 412.
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[ct, ("if-match", "\"other\"")],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    // Wrong content type: 415.
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[("content-type", "application/sdp")],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // ICE restart: 422.
    let r = t.req(Method::PATCH, &location, &[ct], RESTART).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Malformed fragment: 400.
    let r = t
        .req(Method::PATCH, &location, &[ct], "a=candidate:garbage\r\n")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Unknown sessions: 404.
    for uri in [
        "/api/whip/0123456789abcdef",
        "/api/whip/nope",
        "/api/whip/%00",
    ] {
        let r = t.req(Method::PATCH, uri, &[ct], frag.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        let r = t.req(Method::DELETE, uri, &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
    }
    // A WHIP session is not reachable as a WHEP resource.
    let id = location.trim_start_matches("/api/whip/");
    let r = t
        .req(
            Method::DELETE,
            &format!("/api/whep/main/{id}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_cors(&r);
    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.req(Method::PATCH, &location, &[ct], frag).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn whip_second_publish_with_the_same_key_replaces_the_session() {
    let t = start().await;
    let (_, key) = t.streamer("main", "Ann").await;
    let first = t.whip(&key, &common::publisher_offer()).await;
    assert_session_created(&first, "/api/whip/");
    let second = t.whip(&key, &common::publisher_offer()).await;
    assert_session_created(&second, "/api/whip/");
    assert_ne!(
        first.header(header::LOCATION),
        second.header(header::LOCATION)
    );
    // The first session is gone from the media plane.
    let r = t
        .req(
            Method::DELETE,
            first.header(header::LOCATION),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .req(
            Method::DELETE,
            second.header(header::LOCATION),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

// ---------- WHEP ----------

#[tokio::test]
async fn whep_view_patch_delete() {
    let t = start().await;
    let r = t
        .req(Method::OPTIONS, "/api/whep/main", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.header(header::HeaderName::from_static("accept-post")),
        "application/sdp"
    );
    assert_cors(&r);

    let offer = common::viewer_offer(4);
    let r = t.whep("nope", &offer).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .req(
            Method::POST,
            "/api/whep/main",
            &[("content-type", "text/plain")],
            offer.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = t.whep("main", &"x".repeat(64 * 1024 + 1)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = t.whep("main", "garbage").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = t.whep("main", &offer).await;
    assert_session_created(&r, "/api/whep/main/");
    assert_cors(&r);
    let location = r.header(header::LOCATION).to_owned();
    let etag = r.header(header::ETAG).to_owned();
    let ct = ("content-type", "application/trickle-ice-sdpfrag");
    let frag = trickle(&offer);
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[ct, ("if-match", &etag)],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[ct, ("if-match", "\"stale\"")],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = t
        .req(
            Method::PATCH,
            &location,
            &[("content-type", "text/plain")],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = t.req(Method::PATCH, &location, &[ct], RESTART).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The session under another room's URL, or an unknown one: 404.
    t.admin(
        Method::POST,
        "/api/admin/rooms",
        Some(json!({"name": "other"})),
    )
    .await;
    let id = location.trim_start_matches("/api/whep/main/");
    let r = t
        .req(
            Method::PATCH,
            &format!("/api/whep/other/{id}"),
            &[ct],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .req(
            Method::PATCH,
            "/api/whep/main/00000000deadbeef",
            &[ct],
            frag.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_plain_one_pair_whep_player_gets_an_answer() {
    let t = start().await;
    let r = t.whep("main", &common::viewer_offer(1)).await;
    assert_session_created(&r, "/api/whep/main/");
}

// ---------- admin ----------

#[tokio::test]
async fn admin_requires_the_admin_token() {
    let t = start().await;
    let routes = [
        (Method::GET, "/api/admin/rooms"),
        (Method::POST, "/api/admin/rooms"),
        (Method::GET, "/api/admin/rooms/main/streamers"),
        (Method::POST, "/api/admin/rooms/main/streamers"),
        (Method::DELETE, "/api/admin/rooms/main/streamers/1"),
        (Method::GET, "/api/admin/rooms/main/stage"),
        (Method::PUT, "/api/admin/rooms/main/stage"),
        (Method::POST, "/api/admin/rooms/main/streamers/1/whep"),
    ];
    for (method, uri) in routes {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Bearer test-admin-token-but-longer"),
            Some(ADMIN),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let r = t.req(method.clone(), uri, &headers, "{}").await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {auth:?}"
            );
            assert_eq!(r.header(header::WWW_AUTHENTICATE), "Bearer");
            assert!(r.json()["error"].is_string());
        }
    }
    assert_eq!(
        t.admin(Method::GET, "/api/admin/rooms", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_rooms() {
    let t = start().await;
    let r = t.admin(Method::GET, "/api/admin/rooms", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()[0]["name"], "main");
    assert_eq!(r.json()[0]["title"], "Main stage");

    let r = t
        .admin(
            Method::POST,
            "/api/admin/rooms",
            Some(json!({"name": "jazz", "title": "Jazz night"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["name"], "jazz");
    assert_eq!(r.json()["title"], "Jazz night");
    assert_eq!(r.json()["layout"], 1);
    let r = t
        .admin(
            Method::POST,
            "/api/admin/rooms",
            Some(json!({"name": "jazz"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.json()["error"]
            .as_str()
            .expect("error")
            .contains("exists")
    );
    for bad in [
        json!({"name": "Jazz"}),
        json!({"name": ""}),
        json!({"name": "a/b"}),
        json!({}),
        json!({"name": 5}),
    ] {
        let r = t
            .admin(Method::POST, "/api/admin/rooms", Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    let r = t
        .req(
            Method::POST,
            "/api/admin/rooms",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            "{not json",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = t
        .req(Method::GET, "/api/rooms/jazz", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["title"], "Jazz night");
}

#[tokio::test]
async fn admin_streamers_key_shown_once_and_stored_hashed() {
    let t = start().await;
    let r = t
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "Ann"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v = r.json();
    let key = v["stream_key"].as_str().expect("key").to_owned();
    let id = v["id"].as_i64().expect("id");
    assert!(key.len() >= 43, "32 random bytes");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe"
    );
    assert_eq!(v["name"], "Ann");
    assert_eq!(v["whip_url"], "http://venue.test/api/whip");
    assert_eq!(v["rtmp_url"], format!("rtmp://venue.test:1935/live/{key}"));

    // Stored hashed.
    let store = &t.app.services.store;
    let hash = store
        .key_hash(venue_gateway::ids::StreamerId(id))
        .await
        .expect("query")
        .expect("row");
    assert_eq!(hash, venue_gateway::store::hash_key(&key));
    assert_ne!(hash, key);

    // Listing never shows the key again.
    let r = t
        .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains(&key));
    let list = r.json();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["name"], "Ann");
    assert_eq!(list[0]["live"], false);
    assert!(list[0]["created_at"].is_i64());

    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({}),
        json!({"name": "a", "extra": 1}),
    ] {
        let r = t
            .admin(
                Method::POST,
                "/api/admin/rooms/main/streamers",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = t
        .admin(
            Method::POST,
            "/api/admin/rooms/nope/streamers",
            Some(json!({"name": "A"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .admin(Method::GET, "/api/admin/rooms/nope/streamers", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The key publishes; after deletion it does not.
    let r = t.whip(&key, &common::publisher_offer()).await;
    assert_session_created(&r, "/api/whip/");
    let location = r.header(header::LOCATION).to_owned();
    let r = t
        .admin(
            Method::DELETE,
            &format!("/api/admin/rooms/main/streamers/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .admin(
            Method::DELETE,
            &format!("/api/admin/rooms/main/streamers/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .admin(Method::DELETE, "/api/admin/rooms/main/streamers/abc", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Its live session was closed.
    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.whip(&key, &common::publisher_offer()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn public_url_is_used_for_streamer_urls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.http.public_url = Some("https://venue.example.org".into());
    let t = TestApp {
        app: build_app(&config).await.expect("app"),
        dir,
    };
    let r = t
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "Ann"})),
        )
        .await;
    let v = r.json();
    assert_eq!(v["whip_url"], "https://venue.example.org/api/whip");
    let key = v["stream_key"].as_str().expect("key");
    assert_eq!(
        v["rtmp_url"],
        format!("rtmp://venue.example.org:1935/live/{key}")
    );

    // The RTMP URL follows `[rtmp] listen`'s port, and is null with RTMP ingest off.
    for (rtmp, want) in [
        (
            venue_gateway::config::RtmpConfig {
                listen: "0.0.0.0:1936".parse().unwrap(),
                ..Default::default()
            },
            Some(":1936/live/"),
        ),
        (
            venue_gateway::config::RtmpConfig {
                enabled: false,
                ..Default::default()
            },
            None,
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = crate::config(dir.path());
        cfg.rtmp = rtmp;
        let t = TestApp {
            app: build_app(&cfg).await.expect("app"),
            dir,
        };
        let v = t
            .admin(
                Method::POST,
                "/api/admin/rooms/main/streamers",
                Some(json!({"name": "Bo"})),
            )
            .await
            .json();
        match want {
            Some(port) => assert!(v["rtmp_url"].as_str().unwrap().contains(port), "{v}"),
            None => assert_eq!(v["rtmp_url"], Value::Null),
        }
    }
}

#[tokio::test]
async fn stage_is_validated_stored_and_public() {
    let t = start().await;
    let (a, _) = t.streamer("main", "Ann").await;
    let (b, _) = t.streamer("main", "Bob").await;
    t.admin(
        Method::POST,
        "/api/admin/rooms",
        Some(json!({"name": "other"})),
    )
    .await;
    let (c, _) = t.streamer("other", "Cy").await;

    let bad = [
        json!({"layout": 0, "slots": []}),
        json!({"layout": 10, "slots": []}),
        json!({"layout": -1, "slots": []}),
        json!({"layout": 1, "slots": [999]}),
        json!({"layout": 1, "slots": [c]}),
        json!({"layout": 1, "slots": [null, null, null, null, null]}),
        json!({"layout": 2, "slots": [a, a]}),
        json!({"layout": 2, "slots": ["x"]}),
        json!({"slots": []}),
    ];
    for body in bad {
        let r = t
            .admin(
                Method::PUT,
                "/api/admin/rooms/main/stage",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    let r = t
        .admin(
            Method::PUT,
            "/api/admin/rooms/nope/stage",
            Some(json!({"layout": 1, "slots": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = t
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(json!({"layout": 2, "slots": [b, null, a]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(v["layout"], 2);
    assert_eq!(v["slots"].as_array().expect("slots").len(), 4);
    assert_eq!(v["slots"][0]["streamer_id"], b);
    assert_eq!(v["slots"][0]["name"], "Bob");
    assert_eq!(v["slots"][1]["streamer_id"], Value::Null);
    assert_eq!(v["slots"][2]["name"], "Ann");

    let r = t
        .admin(Method::GET, "/api/admin/rooms/main/stage", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["slots"][2]["streamer_id"], a);

    let r = t
        .req(Method::GET, "/api/rooms/main", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["name"], "main");
    assert_eq!(v["title"], "Main stage");
    assert_eq!(v["layout"], 2);
    assert_eq!(v["max_slots"], 4);
    assert_eq!(v["viewer_count"], 0);
    let slots = v["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 4);
    assert_eq!(
        slots[0],
        json!({"index": 0, "streamer_id": b, "name": "Bob", "live": false})
    );
    assert_eq!(
        slots[3],
        json!({"index": 3, "streamer_id": null, "name": null, "live": false})
    );

    // Deleting a streamer takes it off the stage.
    t.admin(
        Method::DELETE,
        &format!("/api/admin/rooms/main/streamers/{b}"),
        None,
    )
    .await;
    let v = t
        .req(Method::GET, "/api/rooms/main", &[], Body::empty())
        .await
        .json();
    assert_eq!(v["slots"][0]["streamer_id"], Value::Null);
    assert_eq!(v["slots"][2]["streamer_id"], a);

    let r = t
        .req(Method::GET, "/api/rooms/nope", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn admin_preview_is_whep_of_one_streamer() {
    let t = start().await;
    let (a, _) = t.streamer("main", "Ann").await;
    let auth = format!("Bearer {ADMIN}");
    let offer = common::viewer_offer(1);
    let post = |uri: String, ct: &'static str| {
        let (auth, offer) = (auth.clone(), offer.clone());
        let t = &t;
        async move {
            t.req(
                Method::POST,
                &uri,
                &[("authorization", &auth), ("content-type", ct)],
                offer,
            )
            .await
        }
    };
    let r = post(
        format!("/api/admin/rooms/main/streamers/{a}/whep"),
        "application/sdp",
    )
    .await;
    assert_session_created(&r, "/api/whep/main/");
    let location = r.header(header::LOCATION).to_owned();
    assert_eq!(
        post(
            format!("/api/admin/rooms/main/streamers/{a}/whep"),
            "text/plain"
        )
        .await
        .status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(
            "/api/admin/rooms/main/streamers/999/whep".into(),
            "application/sdp"
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(
            format!("/api/admin/rooms/nope/streamers/{a}/whep"),
            "application/sdp"
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // A preview is not a viewer.
    assert_eq!(
        t.req(Method::GET, "/api/rooms/main", &[], Body::empty())
            .await
            .json()["viewer_count"],
        0
    );
    let r = t.req(Method::DELETE, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
}

// ---------- restart, token, misc ----------

#[tokio::test]
async fn rooms_streamers_and_stage_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, key) = {
        let t = TestApp {
            app: build_app(&config(dir.path())).await.expect("app"),
            dir: tempfile::tempdir().expect("d"),
        };
        t.admin(
            Method::POST,
            "/api/admin/rooms",
            Some(json!({"name": "late", "title": "Late show"})),
        )
        .await;
        let (id, key) = t.streamer("late", "Ann").await;
        let r = t
            .admin(
                Method::PUT,
                "/api/admin/rooms/late/stage",
                Some(json!({"layout": 3, "slots": [null, id]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        t.app.services.store.close().await;
        (id, key)
    };
    let t = TestApp {
        app: build_app(&config(dir.path())).await.expect("app again"),
        dir,
    };
    let v = t
        .req(Method::GET, "/api/rooms/late", &[], Body::empty())
        .await
        .json();
    assert_eq!(v["title"], "Late show");
    assert_eq!(v["layout"], 3);
    assert_eq!(v["slots"][1]["streamer_id"], id);
    assert_eq!(v["slots"][1]["name"], "Ann");
    let list = t
        .admin(Method::GET, "/api/admin/rooms/late/streamers", None)
        .await
        .json();
    assert_eq!(list[0]["id"], id);
    let r = t.whip(&key, &common::publisher_offer()).await;
    assert_session_created(&r, "/api/whip/");
}

#[tokio::test]
async fn admin_token_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.admin_token = None;
    let first = build_app(&config).await.expect("app");
    let token = std::fs::read_to_string(dir.path().join("admin-token")).expect("token file");
    let token = token.trim().to_owned();
    assert!(token.len() >= 32);
    let auth = format!("Bearer {token}");
    let get = Request::builder()
        .uri("/api/admin/rooms")
        .header("authorization", &auth)
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&first.router, get).await.status, StatusCode::OK);
    first.services.store.close().await;
    let second = build_app(&config).await.expect("app again");
    let get = Request::builder()
        .uri("/api/admin/rooms")
        .header("authorization", &auth)
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&second.router, get).await.status, StatusCode::OK);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin-token"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "admin-token readable only by its owner");
    }
}

#[tokio::test]
async fn healthz_metrics_pages_and_unknown_paths() {
    let t = start().await;
    let r = t.req(Method::GET, "/healthz", &[], Body::empty()).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = t.req(Method::GET, "/metrics", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
    for metric in [
        "venue_sessions ",
        "venue_publishers_live ",
        "venue_viewers ",
        "venue_http_requests_total{class=\"2xx\"} ",
    ] {
        assert!(r.body.contains(metric), "{metric} in {}", r.body);
    }
    for page in ["/", "/r/main", "/r/anything"] {
        let r = t.req(Method::GET, page, &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert!(
            r.header(header::CONTENT_TYPE).starts_with("text/html"),
            "{page}"
        );
        assert!(
            r.body.to_ascii_lowercase().contains("<!doctype html"),
            "{page}"
        );
    }
    // publish.html and admin.html exist once the web front end is built.
    for page in ["/publish", "/admin"] {
        let r = t.req(Method::GET, page, &[], Body::empty()).await;
        assert!(
            matches!(r.status, StatusCode::OK | StatusCode::NOT_FOUND),
            "{page}"
        );
    }
    let r = t.req(Method::GET, "/api/nope", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
    let r = t
        .req(Method::GET, "/no/such/file.js", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let _ = &t.dir;
}
