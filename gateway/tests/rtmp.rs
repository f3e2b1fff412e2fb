//! RTMP ingest through the real server: Debian's ffmpeg publishes H.264 (libx264, zerolatency,
//! GOP 30) and AAC-LC 44.1 kHz stereo (a 440 Hz tone left, 660 Hz right) over RTMP, with the
//! arguments issue 4 names; the streamer goes live; a str0m WHEP viewer on stage slot 0 receives
//! H.264 RTP starting with a keyframe (SPS/PPS ahead of the IDR) that ffprobe decodes at the
//! source's size, and Opus that libopus decodes back to stereo tones of the source's
//! frequencies. A key that does not exist is refused. Waits poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use venue_tests::peer::LoopbackPeer;
use venue_tests::{audio, h264};

struct Ffmpeg(Child);

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ffmpeg_publish(url: &str, seconds: u32) -> Ffmpeg {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=640x360:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "aevalsrc=0.5*sin(440*2*PI*t)|0.5*sin(660*2*PI*t):s=44100:d={seconds}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-ar", "44100", "-ac", "2", "-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)");
    Ffmpeg(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_rtmp_publisher_reaches_a_whep_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(
        config,
        venue_gateway::config::RtmpConfig {
            ..Default::default()
        },
    )
    .await;

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

    // At least four seconds of media: video and audio packets by sequence number.
    let (video, audio) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut video: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut audio: BTreeMap<u64, (u32, Vec<u8>)> = BTreeMap::new();
        // Until both are there (video starts at the first keyframe, so later than audio).
        while Instant::now() < deadline && (audio.len() < 200 || video.len() < 200) {
            viewer
                .step(|_, e| {
                    if let Event::RtpPacket(p) = e {
                        let seq = *p.seq_no;
                        if p.header.payload_type == 111.into() {
                            audio.insert(seq, (p.header.timestamp, p.payload.to_vec()));
                        } else {
                            video.insert(seq, p.payload.to_vec());
                        }
                    }
                })
                .unwrap();
        }
        (video, audio)
    })
    .await
    .unwrap();
    assert!(
        video.len() >= 200,
        "H.264 RTP from the RTMP encoder reaches the viewer, got {}",
        video.len()
    );
    let video: Vec<Vec<u8>> = video.into_values().collect();
    // STAP-A (24) carrying SPS/PPS, or the SPS itself: the viewer starts on a keyframe.
    assert!(
        matches!(video[0][0] & 0x1f, 24 | 7),
        "first packet starts a keyframe: {:x?}",
        &video[0][..2]
    );
    let decoded = h264::ffprobe_decode(&h264::depacketize(&video)).unwrap();
    assert_eq!((decoded.width, decoded.height), (640, 360), "{decoded:?}");
    assert!(decoded.frames >= 60, "decodable pictures: {decoded:?}");

    // Opus: 20 ms apart, stereo, and the tones come back at their frequencies.
    assert!(audio.len() >= 200, "Opus packets: {}", audio.len());
    let packets: Vec<(u32, Vec<u8>)> = audio.into_values().collect();
    let steps: Vec<u32> = packets
        .windows(2)
        .map(|w| w[1].0.wrapping_sub(w[0].0))
        .collect();
    let regular = steps.iter().filter(|d| **d == 960).count();
    assert!(regular * 10 >= steps.len() * 9, "960-tick steps: {steps:?}");
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 5760 * 2];
    for (_, p) in &packets {
        assert_eq!(p[0] & 0x04, 0x04, "stereo Opus (TOC s bit)");
        let n = decoder.decode_float(p, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n * 2]);
    }
    let channels = audio::deinterleave(&pcm, 2);
    // Skip the first half second (encoder start-up, the viewer joining mid-stream).
    let left = audio::tone_frequency(&channels[0][24_000..], 48_000);
    let right = audio::tone_frequency(&channels[1][24_000..], 48_000);
    assert!((left - 440.0).abs() < 3.0, "left channel {left:.1} Hz");
    assert!((right - 660.0).abs() < 3.0, "right channel {right:.1} Hz");
}

/// A booked artist's RTMP session ends when the window closes (plus `grace_after_s`), within
/// one second, and the encoder's connection is hung up then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_publisher_is_disconnected_when_its_window_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let grace_after = Duration::from_secs(1);
    config.schedule.grace_after_s = grace_after.as_secs();
    let (server, rtmp, app_state) = serve_rtmp(
        config,
        venue_gateway::config::RtmpConfig {
            ..Default::default()
        },
    )
    .await;
    let schedule = app_state.schedule.clone();

    let (status, event) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/events",
            Some(json!({"title": "Night", "start": "2026-11-21T20:00:00Z",
                        "end": "2026-11-21T23:00:00Z", "slot_minutes": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let (status, booked) = server
        .admin(
            Method::POST,
            &format!("/api/admin/rooms/main/events/{}/bookings", event["id"]),
            Some(
                json!({"slot_start": "2026-11-21T21:00:00Z", "artist_name": "Ann",
                        "timezone": "Europe/Berlin"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let key = booked["stream_key"].as_str().unwrap().to_owned();
    let live = || async {
        let (_, list) = server
            .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["live"] == json!(true))
    };

    // Before the window's grace: ffmpeg is refused.
    schedule.set_now("2026-11-21T20:50:00Z".parse().unwrap());
    let mut early = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while early.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        early.0.try_wait().unwrap().is_some_and(|s| !s.success()),
        "refused before its window"
    );
    assert!(!live().await);

    // Four seconds before the window closes: accepted and live.
    schedule.set_now("2026-11-21T21:29:56Z".parse().unwrap());
    let window_end = Instant::now() + Duration::from_secs(4);
    let mut ff = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), 30);
    let deadline = Instant::now() + Duration::from_secs(4);
    while !live().await {
        assert!(
            Instant::now() < deadline,
            "the booked key publishes in its window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The session ends at the window's end + grace, within one second; ffmpeg is hung up.
    while live().await {
        assert!(
            Instant::now() < window_end + grace_after + Duration::from_secs(5),
            "the session outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = Instant::now();
    assert!(
        ended + Duration::from_millis(100) >= window_end + grace_after,
        "ended {:?} before window end + grace",
        (window_end + grace_after) - ended
    );
    assert!(
        ended <= window_end + grace_after + Duration::from_secs(1),
        "ended {:?} after window end + grace",
        ended - (window_end + grace_after)
    );
    let deadline = ended + Duration::from_secs(2);
    while ff.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the encoder's connection was closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // After the window: refused again.
    let mut late = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while late.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!live().await, "refused after its window");
}
