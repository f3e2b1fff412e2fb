//! Recordings end to end through the real server: the artist is booked now, Debian's ffmpeg
//! publishes H.264 + AAC over RTMP for ~6 s while the streamer is on stage slot 0 and nobody
//! watches HLS; the set is listed as recording while it runs, then as a finished set named
//! after the booking with a duration ≈ the set's; the downloaded file (admin route, a Range,
//! the signed URL) passes `ffprobe -v error` with H.264 1280x720 + Opus and the same duration;
//! a restarted server lists it still; delete removes file and row. Waits poll with deadlines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn list(server: &Server) -> Vec<Value> {
    let (status, body) = server
        .admin(Method::GET, "/api/admin/rooms/main/recordings", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn get(
    server: &Server,
    uri: &str,
    auth: bool,
    range: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    if auth {
        req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    }
    if let Some(r) = range {
        req = req.header(header::RANGE, r);
    }
    let res = server
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_on_slot_0_is_recorded_listed_downloaded_kept_across_restarts_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(
        config,
        venue_gateway::config::RtmpConfig {
            ..Default::default()
        },
    )
    .await;

    // A streamer, booked from a minute ago for an hour under another artist name.
    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "tone-host"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = streamer["id"].as_i64().unwrap();
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let start = now - now % 60 - 60;
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (status, event) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/events",
            Some(json!({"title": "Night", "start": at(start), "end": at(start + 3600), "slot_minutes": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let (status, booking) = server
        .admin(
            Method::POST,
            &format!("/api/admin/rooms/main/events/{}/bookings", event["id"]),
            Some(json!({"slot_start": at(start), "artist_name": "Ann Tone", "timezone": "UTC", "streamer_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let booking_id = booking["booking"]["id"].as_i64().unwrap();
    let (status, _) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(json!({"layout": 1, "slots": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(list(&server).await.is_empty());

    // ~6 s of a set over RTMP; nobody requests the playlist.
    let set_started = Instant::now();
    let mut ff = KillOnDrop(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=6",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100:duration=6",
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

    // In progress: listed with recording: true, its size growing.
    let deadline = Instant::now() + Duration::from_secs(8);
    let live = loop {
        let items = list(&server).await;
        if let Some(item) = items.first()
            && item["recording"] == true
            && item["bytes"].as_i64().unwrap() > 0
        {
            break item.clone();
        }
        assert!(
            Instant::now() < deadline,
            "a recording in progress is listed: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(live["end"].is_null(), "{live}");
    assert_eq!(live["artist"], "Ann Tone");

    // ffmpeg ends the set.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ff.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ffmpeg ends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let done = loop {
        let items = list(&server).await;
        if items.len() == 1 && items[0]["recording"] == false && items[0]["end"].is_string() {
            break items[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the set is finished within a few seconds: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["artist"], "Ann Tone", "{done}");
    assert_eq!(done["streamer_id"], id);
    assert_eq!(done["booking_id"], booking_id);
    // The set is ffmpeg's 6 s of media; the file holds it from the first program keyframe
    // after the set began (≤ 2 s later), and never more than the set's wall time.
    let duration = done["duration_s"].as_f64().unwrap();
    let wall = chrono::DateTime::parse_from_rfc3339(done["end"].as_str().unwrap())
        .unwrap()
        .signed_duration_since(
            chrono::DateTime::parse_from_rfc3339(done["start"].as_str().unwrap()).unwrap(),
        )
        .num_seconds() as f64;
    assert!(
        (duration - 6.0).abs() <= 2.0 && duration <= wall + 1.0,
        "duration {duration} s for a 6 s set ({wall} s on the wall clock, {:.1} s here): {done}",
        set_started.elapsed().as_secs_f64()
    );
    let file = done["file"].as_str().unwrap();
    assert!(
        file.starts_with("main-") && file.ends_with("-ann-tone.mp4"),
        "{file}"
    );
    let path = dir.path().join("recordings").join(file);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        done["bytes"].as_u64().unwrap()
    );

    // Download with the admin token: the whole file, as an attachment.
    let url = done["download_url"].as_str().unwrap().to_owned();
    let (status, headers, body) = get(&server, &url, true, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "video/mp4");
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"main-")
    );
    assert_eq!(body.len() as u64, done["bytes"].as_u64().unwrap());
    let (status, _, _) = get(&server, &url, false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A range.
    let (status, headers, part) = get(&server, &url, true, Some("bytes=8-15")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, body[8..16].to_vec());
    assert_eq!(
        headers[header::CONTENT_RANGE],
        format!("bytes 8-15/{}", body.len()).as_str()
    );
    // The signed link works without a token; a tampered one does not.
    let signed = done["signed_url"].as_str().unwrap().to_owned();
    let (status, _, same) = get(&server, &signed, false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same.len(), body.len());
    let (status, _, _) = get(&server, &signed.replace("sig=", "sig=00"), false, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The file: H.264 1280x720 + Opus, no errors, the listed duration.
    let downloaded = dir.path().join("download.mp4");
    std::fs::write(&downloaded, &body).unwrap();
    let info = venue_tests::media_files::ffprobe_json(
        downloaded.to_str().unwrap(),
        &[
            "-show_entries",
            "stream=codec_name,width,height,start_time,duration,nb_frames:format=duration",
        ],
    )
    .expect("ffprobe -v error is silent");
    let streams = info["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720),
        "{info}"
    );
    assert!(streams.iter().any(|s| s["codec_name"] == "opus"), "{info}");
    let probed: f64 = info["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (probed - duration).abs() < 0.5,
        "ffprobe {probed} s, listed {duration} s: {info}"
    );
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&downloaded)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "ffmpeg decodes the recording: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    std::fs::remove_file(&downloaded).unwrap();

    // A restarted server (same data dir) lists the same recording.
    let mut again = common::config(dir.path());
    again.rtmp.enabled = false;
    let restarted = serve(again).await;
    let items = list(&restarted).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], done["id"]);
    assert_eq!(items[0]["duration_s"], done["duration_s"]);
    assert_eq!(items[0]["recording"], false);

    // Delete: file and row gone.
    let (status, _) = restarted.admin(Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!path.exists());
    assert!(list(&restarted).await.is_empty());
    let (status, _, _) = get(&restarted, &url, true, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = restarted.admin(Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
