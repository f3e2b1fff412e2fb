//! Streamer health through the real server (issue 4 item 7): Debian's ffmpeg publishes over
//! RTMP and the admin API reports what the SFU measures. A zerolatency 640x360 30 fps GOP-30
//! stream: protocol rtmp, H.264, 640x360, ≈30 fps, bit/s > 0, keyframes ≈1 s apart, no
//! warning. The same with B-frames (`-bf 2`): `b_frames` and the OBS fix in `warnings`, on both
//! the streamer list and the per-streamer route. Waits poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

struct Ffmpeg(Child);

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg sending a 640x360 30 fps test picture with `video_args` for libx264 to `url`.
fn ffmpeg_publish(url: &str, video_args: &[&str]) -> Ffmpeg {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=30:duration=60"])
        .args(["-c:v", "libx264", "-preset", "veryfast"])
        .args(video_args)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)");
    Ffmpeg(child)
}

async fn create_streamer(server: &Server, name: &str) -> (i64, String) {
    let (status, s) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    (
        s["id"].as_i64().unwrap(),
        s["stream_key"].as_str().unwrap().to_string(),
    )
}

/// Polls the streamer list until streamer `id`'s health satisfies `ok` (or the deadline),
/// returning the last health seen.
async fn poll_health(server: &Server, id: i64, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (status, list) = server
            .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        if let Some(s) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"].as_i64() == Some(id))
        {
            last = s["health"].clone();
            if ok(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

fn near(v: &Value, target: f64, tolerance: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - target).abs() <= tolerance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_streamer_health_and_b_frame_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(
        config,
        venue_gateway::config::RtmpConfig {
            ..Default::default()
        },
    )
    .await;

    // Offline: health is null in the list and on the route.
    let (clean, clean_key) = create_streamer(&server, "Clean").await;
    let (status, h) = server
        .admin(
            Method::GET,
            &format!("/api/admin/rooms/main/streamers/{clean}/health"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h, Value::Null, "an offline streamer has no health");
    let (status, _) = server
        .admin(
            Method::GET,
            "/api/admin/rooms/main/streamers/999999/health",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // (b) zerolatency, GOP 30: the measured facts, no warning.
    let ff = ffmpeg_publish(
        &format!("rtmp://{rtmp}/live/{clean_key}"),
        &["-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p"],
    );
    let h = poll_health(&server, clean, |h| {
        let v = &h["video"][0];
        v["width"] == json!(640)
            && near(&v["fps"], 30.0, 2.0)
            && near(&v["keyframe_interval_s"], 1.0, 0.1)
    })
    .await;
    eprintln!("zerolatency stream: {h}");
    assert_eq!(h["protocol"], json!("rtmp"), "{h}");
    let v = &h["video"][0];
    assert_eq!(v["codec"], json!("H.264"), "{h}");
    assert_eq!(
        (&v["width"], &v["height"]),
        (&json!(640), &json!(360)),
        "{h}"
    );
    assert!(near(&v["fps"], 30.0, 2.0), "fps ≈ 30: {h}");
    assert!(v["bitrate_bps"].as_u64().unwrap() > 0, "{h}");
    assert!(near(&v["keyframe_interval_s"], 1.0, 0.1), "GOP 1 s: {h}");
    assert!(
        v["profile_level_id"].as_str().is_some_and(|p| p.len() == 6),
        "{h}"
    );
    assert_eq!(h["b_frames"], json!(false), "{h}");
    assert_eq!(h["warnings"], json!([]), "{h}");
    assert_eq!(
        h["packet_loss"],
        json!(0.0),
        "TCP ingest loses nothing: {h}"
    );
    drop(ff);

    // (a) B-frames: the warning with the OBS fix, in the list and on the route.
    let (bf, bf_key) = create_streamer(&server, "BFrames").await;
    let _ff = ffmpeg_publish(
        &format!("rtmp://{rtmp}/live/{bf_key}"),
        &["-bf", "2", "-g", "30", "-pix_fmt", "yuv420p"],
    );
    let h = poll_health(&server, bf, |h| h["b_frames"] == json!(true)).await;
    eprintln!("B-frame stream: {h}");
    assert_eq!(h["b_frames"], json!(true), "B-frames detected: {h}");
    let warnings = h["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap();
            w.contains("B-frames") && w.contains("OBS") && w.contains("baseline")
        }),
        "the warning carries the OBS fix: {h}"
    );
    let (status, h) = server
        .admin(
            Method::GET,
            &format!("/api/admin/rooms/main/streamers/{bf}/health"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["b_frames"], json!(true), "{h}");
    assert_eq!(h["protocol"], json!("rtmp"), "{h}");
}
