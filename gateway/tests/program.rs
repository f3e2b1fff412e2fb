//! The LL-HLS program end to end through the real server: Debian's ffmpeg publishes H.264 +
//! AAC over RTMP, the admin puts the streamer on slot 0 of a two-tile stage, a playlist request
//! starts the program (stage tap → compositor → packager), and ffprobe/ffmpeg read
//! `/hls/main/index.m3u8` over HTTP: H.264 1280x720 and Opus stereo, decodable without errors.
//! Waits poll with deadlines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_room_gets_an_ll_hls_program_of_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(
        config,
        venue_gateway::config::RtmpConfig {
            ..Default::default()
        },
    )
    .await;
    let addr = server.addr;

    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "Tone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = streamer["id"].as_i64().unwrap();
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let (status, _) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(json!({"layout": 2, "slots": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let _ff = Kill(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=40",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100:duration=40",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"])
            .args(["-f", "flv", &format!("rtmp://{rtmp}/live/{key}")])
            .stdin(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );

    // The first playlist request starts the program; poll until three segments exist.
    let url = format!("http://{addr}/hls/main/index.m3u8");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let playlist = loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            let text = r.text().await.unwrap();
            if text.matches("#EXTINF").count() >= 3 {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the program has three segments within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    assert!(playlist.contains("CAN-BLOCK-RELOAD=YES"), "{playlist}");

    let probe = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new("ffprobe")
                .args(["-v", "error", "-show_entries"])
                .args(["stream=codec_name,width,height,channels", "-of", "json"])
                .arg(&url)
                .output()
                .expect("ffprobe")
        }
    })
    .await
    .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = info["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720),
        "{info}"
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "opus" && s["channels"] == 2),
        "{info}"
    );
    let decode = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-v", "error", "-i", &url, "-t", "3", "-f", "null", "-"])
            .output()
            .expect("ffmpeg")
    })
    .await
    .unwrap();
    assert!(
        decode.status.success(),
        "ffmpeg decodes the program: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
}
