//! Real-socket smoke test of the gateway's live state: a str0m publisher goes live over WHIP
//! (loopback UDP, real ICE and DTLS-SRTP), a str0m viewer joins over WHEP with a data channel;
//! the room info and the `venue` channel's `StageState` show the streamer live and one viewer;
//! after `DELETE` the streamer is offline again. Waits poll a condition with a deadline; the
//! pacing comes from the clients' 1 ms socket read timeouts, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use tower::ServiceExt;
use venue_gateway::build_app;
use venue_gateway::config::{Config, Secret};
use venue_proto::Message;
use venue_proto::v1;
use venue_tests::peer::LoopbackPeer;

const ADMIN: &str = "test-admin-token";

/// A loopback str0m peer and what it saw: the latest `StageState` on its `venue` channel and
/// whether a keyframe was asked for.
struct Client {
    peer: LoopbackPeer,
    stage: Option<v1::StageState>,
    keyframe_asked: bool,
}

impl Client {
    fn new() -> Client {
        Client {
            peer: LoopbackPeer::new(false).unwrap(),
            stage: None,
            keyframe_asked: false,
        }
    }

    fn step(&mut self) {
        let (stage, asked) = (&mut self.stage, &mut self.keyframe_asked);
        self.peer
            .step(|_, e| match e {
                Event::ChannelData(d) => {
                    if let Ok(v1::ServerMessage {
                        body: Some(v1::server_message::Body::Stage(s)),
                    }) = v1::ServerMessage::decode(d.data.as_slice())
                        && stage.as_ref().is_none_or(|old| s.revision > old.revision)
                    {
                        *stage = Some(s);
                    }
                }
                Event::KeyframeRequest(_) => *asked = true,
                _ => {}
            })
            .unwrap();
    }

    fn send_video(&mut self, mid: Mid, frame: u64) {
        let key =
            frame == 1 || std::mem::take(&mut self.keyframe_asked) || frame.is_multiple_of(30);
        let mut data = if key {
            vec![
                0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1,
                0x65,
            ]
        } else {
            vec![0, 0, 0, 1, 0x41]
        };
        data.extend(std::iter::repeat_n(7u8, 300));
        let Some(w) = self.peer.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::H264)
            .map(|p| p.pt())
        else {
            return;
        };
        let _ = w.write(
            pt,
            Instant::now(),
            MediaTime::from_90khz(frame * 3000),
            data,
        );
    }
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, String, String) {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "venue.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
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
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, location, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_goes_live_and_viewers_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let config = Config {
        data_dir: dir.path().to_owned(),
        admin_token: Some(Secret::new(ADMIN)),
        media: venue_sfu::SfuConfig {
            base_port: 0,
            shards: 1,
            bind_ip: loopback,
            candidate_ips: vec![loopback],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = build_app(&config).await.unwrap();
    let router = app.router.clone();
    let admin = format!("Bearer {ADMIN}");
    let json_admin = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];

    let (status, _, body) = call(
        &router,
        Method::POST,
        "/api/admin/rooms/main/streamers",
        &json_admin,
        json!({"name": "Ann"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_owned();
    let (status, _, _) = call(
        &router,
        Method::PUT,
        "/api/admin/rooms/main/stage",
        &json_admin,
        json!({"layout": 1, "slots": [id]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Publisher over WHIP.
    let mut publisher = Client::new();
    let mut api = publisher.peer.rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let auth = format!("Bearer {key}");
    let (status, whip_location, answer) = call(
        &router,
        Method::POST,
        "/api/whip",
        &[
            ("authorization", &auth),
            ("content-type", "application/sdp"),
        ],
        offer.to_sdp_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    publisher
        .peer
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    // Viewer over WHEP with the `venue` data channel.
    let mut viewer = Client::new();
    let mut api = viewer.peer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_channel("venue".into());
    let (offer, pending) = api.apply().unwrap();
    let (status, _, answer) = call(
        &router,
        Method::POST,
        "/api/whep/main",
        &[("content-type", "application/sdp")],
        offer.to_sdp_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    viewer
        .peer
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let runtime = tokio::runtime::Handle::current();
    let room_info = {
        let router = router.clone();
        move || -> Value {
            let (_, _, body) = runtime.block_on(call(
                &router,
                Method::GET,
                "/api/rooms/main",
                &[],
                String::new(),
            ));
            serde_json::from_str(&body).unwrap()
        }
    };

    let (publisher, viewer, info) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        let (mut frame, mut next, mut i) = (0u64, Instant::now(), 0u64);
        let mut info = Value::Null;
        while Instant::now() < deadline {
            if publisher.peer.rtc.is_connected() && Instant::now() >= next {
                next += Duration::from_millis(33);
                frame += 1;
                publisher.send_video(video, frame);
            }
            publisher.step();
            viewer.step();
            i += 1;
            if i.is_multiple_of(20) {
                info = room_info();
                let channel_live = viewer
                    .stage
                    .as_ref()
                    .is_some_and(|s| s.slots.first().is_some_and(|s| s.live));
                if info["slots"][0]["live"] == true && info["viewer_count"] == 1 && channel_live {
                    break;
                }
            }
        }
        (publisher, viewer, info)
    })
    .await
    .unwrap();

    assert_eq!(info["slots"][0]["live"], true, "room info: {info}");
    assert_eq!(info["viewer_count"], 1, "room info: {info}");
    let stage = viewer
        .stage
        .clone()
        .expect("a StageState arrived on the venue channel");
    assert_eq!(stage.slots.len(), 4);
    assert_eq!(stage.slots[0].streamer_id, id as u64);
    assert_eq!(stage.slots[0].name, "Ann");
    assert!(stage.slots[0].live, "{stage:?}");
    assert_eq!(stage.layout, 1);
    assert_eq!(stage.title, "Main stage");

    let (_, _, body) = call(
        &router,
        Method::GET,
        "/api/admin/rooms/main/streamers",
        &json_admin,
        String::new(),
    )
    .await;
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["live"], true);
    let (_, _, metrics) = call(&router, Method::GET, "/metrics", &[], String::new()).await;
    assert!(metrics.contains("venue_publishers_live 1"), "{metrics}");
    assert!(metrics.contains("venue_viewers 1"), "{metrics}");

    // The publisher leaves: offline in the room info and on the viewer's channel.
    let (status, _, _) = call(&router, Method::DELETE, &whip_location, &[], String::new()).await;
    assert_eq!(status, StatusCode::OK);
    let runtime = tokio::runtime::Handle::current();
    let (viewer, info) = tokio::task::spawn_blocking(move || {
        let mut viewer = viewer;
        let _publisher = publisher;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut info = Value::Null;
        let mut i = 0u64;
        while Instant::now() < deadline {
            viewer.step();
            i += 1;
            if i.is_multiple_of(20) {
                let (_, _, body) = runtime.block_on(call(
                    &router,
                    Method::GET,
                    "/api/rooms/main",
                    &[],
                    String::new(),
                ));
                info = serde_json::from_str(&body).unwrap();
                let channel_offline = viewer
                    .stage
                    .as_ref()
                    .is_some_and(|s| s.slots.first().is_some_and(|s| !s.live));
                if info["slots"][0]["live"] == false && channel_offline {
                    break;
                }
            }
        }
        (viewer, info)
    })
    .await
    .unwrap();
    assert_eq!(info["slots"][0]["live"], false, "room info: {info}");
    assert!(viewer.stage.as_ref().is_some_and(|s| !s.slots[0].live));
}
