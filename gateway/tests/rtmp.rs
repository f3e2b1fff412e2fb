//! RTMP ingest through the real server: Debian's ffmpeg publishes H.264 (libx264, zerolatency,
//! GOP 30) over RTMP; the streamer goes live; a str0m WHEP viewer on stage slot 0 receives the
//! H.264 RTP stream starting with a keyframe (SPS/PPS ahead of the IDR). A key that does not
//! exist is refused. Waits poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use venue_gateway::build_app;
use venue_tests::peer::LoopbackPeer;

struct Ffmpeg(Child);

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ffmpeg_publish(url: &str, seconds: u32) -> Ffmpeg {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size=640x360:rate=30:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p", "-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)");
    Ffmpeg(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_rtmp_publisher_reaches_a_whep_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let app = build_app(&config).await.unwrap();
    let rtmp = venue_gateway::rtmp::spawn(
        app.state.clone(),
        venue_gateway::config::RtmpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
    )
    .await
    .expect("RTMP listens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(app.serve(listener, std::future::pending()));
    let server = Server {
        addr,
        router,
        dir: dir.path().to_owned(),
    };

    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "Encoder"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = streamer["id"].as_i64().unwrap();
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let (status, _) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(json!({"layout": 1, "slots": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // An unknown key: the connection is closed, nothing goes live.
    let mut bad = ffmpeg_publish(&format!("rtmp://{rtmp}/live/not-a-key"), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bad.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        bad.0.try_wait().unwrap().is_some_and(|s| !s.success()),
        "ffmpeg with a bad key is refused"
    );

    let _ff = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), 20);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list) = server
            .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
            .await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"].as_i64() == Some(id) && s["live"] == json!(true))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the RTMP streamer goes live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A plain 1+1 WHEP viewer gets slot 0.
    let mut viewer = LoopbackPeer::new(true).unwrap();
    let mut api = viewer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = server.whep("main", &offer.to_sdp_string()).await;
    viewer
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let (first, packets) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut first: Option<Vec<u8>> = None;
        let mut packets = 0usize;
        while Instant::now() < deadline && packets < 200 {
            viewer
                .step(|_, e| {
                    if let Event::RtpPacket(p) = e
                        && p.header.payload_type != 111.into()
                    {
                        packets += 1;
                        first.get_or_insert_with(|| p.payload.iter().take(2).copied().collect());
                    }
                })
                .unwrap();
        }
        (first, packets)
    })
    .await
    .unwrap();
    assert!(
        packets >= 200,
        "H.264 RTP from the RTMP encoder reaches the viewer, got {packets}"
    );
    let first = first.unwrap();
    // STAP-A (24) carrying SPS/PPS, or the SPS itself: the viewer starts on a keyframe.
    assert!(
        matches!(first[0] & 0x1f, 24 | 7),
        "first packet starts a keyframe: {first:x?}"
    );
}
