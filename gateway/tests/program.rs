//! The LL-HLS program end to end through the real server: Debian's ffmpeg publishes H.264 +
//! AAC over RTMP, the admin puts the streamer on slot 0 of a two-tile stage, a playlist request
//! starts the program (stage tap → compositor → packager), and ffprobe/ffmpeg read
//! `/hls/main/index.m3u8` over HTTP: H.264 1280x720 and Opus stereo, decodable without errors.
//! Waits poll with deadlines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_room_gets_an_ll_hls_program_of_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(config, Default::default()).await;
    let addr = server.addr;

    let (_, _ff) = tone_on_stage(&server, rtmp, "Tone", 2, 40).await;

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
