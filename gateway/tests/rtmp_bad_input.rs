//! Bad RTMP input through a real socket (issue 4): garbage before and after the handshake,
//! truncated chunks, absurd chunk sizes and message lengths, AMF that rml_rtmp cannot parse
//! (it panics on some — caught and counted), the connection cap and the publish timeout. Each
//! bad connection is closed; the server is unaffected: `/healthz` answers and a real ffmpeg
//! publisher goes live afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use venue_gateway::config::RtmpConfig;

/// Connects and completes the RTMP handshake as a client.
async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    let c0c1 = hs.generate_outbound_p0_and_p1().unwrap();
    s.write_all(&c0c1).await.unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed during the handshake");
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes).await.unwrap();
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                s.write_all(&response_bytes).await.unwrap();
                return s;
            }
        }
    }
}

/// Waits until the server closes `s` (EOF or reset), reading and discarding what it sends.
/// Returns how long that took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let t0 = Instant::now();
    let mut buf = vec![0u8; 8192];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t0.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

/// One RTMP chunk with a type-0 header on chunk stream `csid` (< 64).
fn chunk0(csid: u8, type_id: u8, message_length: u32, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![csid & 0x3f, 0, 0, 0];
    v.extend_from_slice(&message_length.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream_id.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// Publishes on an RTMP connection with `key` (rml_rtmp's client session over the socket) and
/// returns the session and stream, ready for media.
async fn published(addr: SocketAddr, key: &str) -> (rml_rtmp::sessions::ClientSession, TcpStream) {
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    let mut s = handshaken(addr).await;
    let (mut session, init) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let mut out = Vec::new();
    for r in init {
        if let ClientSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    }
    s.write_all(&out).await.unwrap();
    let mut buf = vec![0u8; 8192];
    for step in 0..2 {
        let request = if step == 0 {
            session.request_connection("live".into()).unwrap()
        } else {
            session
                .request_publishing(key.to_owned(), PublishRequestType::Live)
                .unwrap()
        };
        if let ClientSessionResult::OutboundResponse(p) = request {
            s.write_all(&p.bytes).await.unwrap();
        }
        'answer: loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("the server answers")
                .unwrap();
            assert!(n > 0, "the server closed the connection");
            for r in session.handle_input(&buf[..n]).unwrap() {
                match r {
                    ClientSessionResult::OutboundResponse(p) => {
                        s.write_all(&p.bytes).await.unwrap()
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted
                        | ClientSessionEvent::PublishRequestAccepted,
                    ) => break 'answer,
                    _ => {}
                }
            }
        }
    }
    (session, s)
}

async fn metric(server: &Server, name: &str) -> u64 {
    let body = reqwest_get(server.addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Waits (≤ 5 s) until gauge `name` in `/metrics` reads `want`.
async fn wait_gauge(server: &Server, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = metric(server, name).await;
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {v}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET on loopback (no client crate needed).
async fn reqwest_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rtmp_input_closes_the_connection_and_leaves_the_server_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(
        config,
        RtmpConfig {
            max_connections: 6,
            publish_timeout_s: 2,
            ..Default::default()
        },
    )
    .await;
    let quick = Duration::from_secs(2);

    // 1. Garbage instead of C0/C1 (C0 must be version 3).
    let mut s = TcpStream::connect(rtmp).await.unwrap();
    s.write_all(&[0x47u8; 4096]).await.unwrap();
    closed_within(&mut s, quick).await;

    // 2. Garbage chunks after a good handshake: a basic header whose chunk stream has no
    //    previous header (format 3 first), then noise.
    let mut s = handshaken(rtmp).await;
    let mut junk = vec![0xc3u8];
    junk.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    s.write_all(&junk).await.unwrap();
    closed_within(&mut s, quick).await;

    // 3. An AMF0 command whose body rml_rtmp cannot parse (found by fuzzing: it panics on it;
    //    the panic is caught and the connection closed): "connect" then unknown markers.
    let mut s = handshaken(rtmp).await;
    let mut body = vec![0x02, 0x00, 0x07];
    body.extend_from_slice(b"connect");
    body.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x03, 0x00, 0x03]);
    body.extend_from_slice(b"app");
    body.extend_from_slice(&[0x0d, 0x42, 0x13, 0xff, 0x11]);
    let len = body.len() as u32;
    s.write_all(&chunk0(3, 20, len, 0, &body)).await.unwrap();
    closed_within(&mut s, quick).await;
    // The fuzz case verbatim: a type-0 header on chunk stream 6 and a random body.
    let mut s = handshaken(rtmp).await;
    let mut fuzz = vec![0x06, 0, 0, 0, 0, 0, 0x57, 0x14, 0, 0, 0xe4, 0x59];
    fuzz.extend((0..228u32).map(|i| (i.wrapping_mul(40_503) >> 3) as u8));
    s.write_all(&fuzz).await.unwrap();
    closed_within(&mut s, Duration::from_secs(3)).await;

    // 4. Absurd sizes: Set Chunk Size 0x7fffffff (the largest the spec allows), then a message
    //    announcing 16 MiB − 1 of which a few bytes come. Nothing is published: the publish
    //    timeout (2 s here) closes it.
    let mut s = handshaken(rtmp).await;
    s.write_all(&chunk0(2, 1, 4, 0, &0x7fff_ffffu32.to_be_bytes()))
        .await
        .unwrap();
    s.write_all(&chunk0(4, 9, 0x00ff_ffff, 1, &[0x17, 0x01, 0, 0, 0]))
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(
        took >= Duration::from_millis(1500),
        "closed by the publish timeout: {took:?}"
    );

    // 5. A truncated chunk, then the client goes away.
    let mut s = handshaken(rtmp).await;
    s.write_all(&chunk0(3, 20, 200, 0, &[0x02, 0x00, 0x07, b'c', b'o']))
        .await
        .unwrap();
    drop(s);

    // 6. The connection cap: six idle connections are held, the seventh is closed at once.
    //    The server must first have let go of the connections above (case 5's client only
    //    went away), and then hold all six before the seventh comes.
    wait_gauge(&server, "venue_rtmp_connections", 0).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(rtmp).await.unwrap());
    }
    wait_gauge(&server, "venue_rtmp_connections", 6).await;
    let mut over = TcpStream::connect(rtmp).await.unwrap();
    closed_within(&mut over, quick).await;
    // The held ones are closed by the publish timeout and free their places.
    for s in &mut held {
        closed_within(s, Duration::from_secs(4)).await;
    }
    drop(held);

    // The server is unaffected: HTTP answers, the counters saw it all, nobody is live.
    reqwest_get(server.addr, "/healthz").await;
    assert!(metric(&server, "venue_rtmp_protocol_errors_total").await >= 3);
    assert!(metric(&server, "venue_rtmp_publish_timeouts_total").await >= 7);
    assert_eq!(
        metric(&server, "venue_rtmp_refused_over_cap_total").await,
        1
    );
    let (_, list) = server
        .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
        .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["live"] == json!(false))
    );

    // A publisher's malformed media is dropped and counted: an AVC tag whose NAL length runs
    // past its end, and (after a good AAC config) an AAC tag cut before its packet type.
    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "Garbled"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let (mut session, mut s) = published(rtmp, &key).await;
    let before = metric(&server, "venue_rtmp_bad_media_total").await;
    let ts = rml_rtmp::time::RtmpTimestamp::new(0);
    let tags: [(bool, Vec<u8>); 3] = [
        (true, vec![0x17, 1, 0, 0, 0, 0, 0, 0x40, 0, 0x65, 1, 2]),
        (false, vec![0xaf, 0x00, 0x12, 0x10]),
        (false, vec![0xaf]),
    ];
    for (video, tag) in tags {
        let packet = if video {
            session.publish_video_data(tag.into(), ts, false)
        } else {
            session.publish_audio_data(tag.into(), ts, false)
        };
        if let rml_rtmp::sessions::ClientSessionResult::OutboundResponse(p) = packet.unwrap() {
            s.write_all(&p.bytes).await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&server, "venue_rtmp_bad_media_total").await < before + 2 {
        assert!(Instant::now() < deadline, "bad FLV/AAC media is counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);

    // And a real encoder still goes live.
    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(json!({"name": "After"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let mut ff = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=30:duration=8")
        .args([
            "-c:v",
            "libx264",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-f", "flv", &format!("rtmp://{rtmp}/live/{key}")])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = server
            .admin(Method::GET, "/api/admin/rooms/main/streamers", None)
            .await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["live"] == json!(true))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg goes live after the bad input"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = ff.kill();
    let _ = ff.wait();
}
