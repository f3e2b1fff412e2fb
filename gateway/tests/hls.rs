//! LL-HLS serving through the real HTTP routes on a loopback socket: ffmpeg/ffprobe read the
//! playlist, blocking reload returns when the part is pushed, 400 for too far ahead, the
//! timeout answer, preload-hinted parts held, and the headers (Content-Type, Cache-Control,
//! CORS). The program is fed directly (no compositor): ffmpeg-made media or synthetic pictures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use venue_gateway::build_app;
use venue_gateway::media::hls_programs::{HlsProgram, HlsPrograms};
use venue_sfu::egress::hls::HlsConfig;
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};
use venue_tests::media_files::{ffmpeg_h264, ffmpeg_opus, ffprobe_json};

struct Hls {
    addr: SocketAddr,
    hls: HlsPrograms,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn serve() -> Hls {
    let dir = tempfile::tempdir().unwrap();
    // These tests feed programs by hand: no compositor for watched rooms.
    let mut config = common::config(dir.path());
    config.hls.compose = false;
    let app = build_app(&config).await.unwrap();
    let hls = app.services.hls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    Hls {
        addr,
        hls,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Hls {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }
}

fn synthetic_format() -> ProgramFormat {
    ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40]),
        pps: Bytes::from_static(&[0x68, 0xce, 0x0f, 0x2c, 0x80]),
        audio_channels: 2,
    }
}

/// Pushes synthetic pictures `from..to` (30 fps, keyframe every 60) with their audio.
fn push_synthetic(program: &HlsProgram, from: u64, to: u64) {
    for i in from..to {
        let pts = i * 3000;
        let keyframe = i % 60 == 0;
        // Audio packets starting within this picture (48 kHz: 1600 per picture).
        for k in (i * 1600).div_ceil(960)..((i + 1) * 1600).div_ceil(960) {
            program.push_audio(ProgramAudio {
                opus: Bytes::from_static(&[31 << 3, 0xaa]),
                ts_48k: k * 960,
            });
        }
        let slice: &'static [u8] = if keyframe {
            &[0x65, 0x88, 1]
        } else {
            &[0x41, 0x9a, 2]
        };
        program.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(slice)],
                keyframe,
                pts_90k: pts,
            },
            SystemTime::now(),
        );
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_and_ffprobe_read_the_program_over_http() {
    let server = serve().await;
    let (video, audio) = tokio::task::spawn_blocking(|| {
        (
            ffmpeg_h264(10.5, 1280, 720, 30, 60).unwrap(),
            ffmpeg_opus(10.5, 2).unwrap(),
        )
    })
    .await
    .unwrap();
    let format = ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from(video.sps.clone()),
        pps: Bytes::from(video.pps.clone()),
        audio_channels: audio.channels,
    };
    let program = server
        .hls
        .start("main", HlsConfig::default(), format)
        .unwrap();
    let mut packets = audio.packets.into_iter().enumerate().peekable();
    for (i, frame) in video.frames.into_iter().enumerate() {
        let pts = i as u64 * 3000;
        while let Some((k, _)) = packets.peek() {
            let ts = *k as u64 * 960;
            if ts * 15 >= (pts + 3000) * 8 {
                break;
            }
            let (_, opus) = packets.next().unwrap();
            program.push_audio(ProgramAudio {
                opus: Bytes::from(opus),
                ts_48k: ts,
            });
        }
        program.push_video(
            ProgramVideo {
                nalus: frame.nalus.into_iter().map(Bytes::from).collect(),
                keyframe: frame.keyframe,
                pts_90k: pts,
            },
            SystemTime::now(),
        );
    }
    let url = server.url("/hls/main/index.m3u8");
    let probe_url = url.clone();
    let info = tokio::task::spawn_blocking(move || {
        ffprobe_json(
            &probe_url,
            &["-show_entries", "stream=codec_name,width,height,channels"],
        )
    })
    .await
    .unwrap()
    .unwrap();
    let streams = info["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_name"] == "h264").unwrap();
    assert_eq!(video["width"], 1280);
    assert_eq!(video["height"], 720);
    let audio = streams.iter().find(|s| s["codec_name"] == "opus").unwrap();
    assert_eq!(audio["channels"], 2);

    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i", &url])
            .args(["-t", "3", "-f", "null", "-"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffmpeg errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.hls.last_watched("main").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reload_through_the_route() {
    let server = serve().await;
    server
        .hls
        .set_block_timeout(Some(Duration::from_millis(1500)));
    let program = server
        .hls
        .start("main", HlsConfig::default(), synthetic_format())
        .unwrap();
    push_synthetic(&program, 0, 181); // segments M0..M0+2, next part (M0+3).0
    let (msn, part) = program.with(|p| p.next_part()).unwrap();
    assert_eq!(part, 0);

    // Asking for the next part: answered as soon as it is pushed.
    let url = server.url(&format!("/hls/main/index.m3u8?_HLS_msn={msn}&_HLS_part=0"));
    let client = server.http.clone();
    let asked = Instant::now();
    let request = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        (Instant::now(), r)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!request.is_finished(), "held until the part exists");
    let pushed = Instant::now();
    let p = program.clone();
    tokio::task::spawn_blocking(move || push_synthetic(&p, 181, 191))
        .await
        .unwrap();
    let (answered, r) = request.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(answered >= pushed, "answered after the push");
    assert!(
        answered - pushed < Duration::from_millis(500),
        "answered at once: {:?}",
        answered - pushed
    );
    assert!(answered - asked >= Duration::from_millis(400));
    assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&r, "cache-control"), "public, max-age=1");
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!("URI=\"part{msn}.0.m4s\",INDEPENDENT=YES")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{msn}.1.m4s\""
    )));

    // Too far ahead: 400 at once.
    for query in [
        format!("_HLS_msn={}", msn + 3),
        format!("_HLS_msn={msn}&_HLS_part=20"),
        "_HLS_part=1".to_owned(),
        "_HLS_msn=x".to_owned(),
    ] {
        let started = Instant::now();
        let r = server.get(&format!("/hls/main/index.m3u8?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
    }

    // A part that never comes: the timeout answer, 503 with Retry-After.
    let started = Instant::now();
    let r = server
        .get(&format!(
            "/hls/main/index.m3u8?_HLS_msn={}&_HLS_part=0",
            msn + 1
        ))
        .await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 503);
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(header(&r, "cache-control"), "no-store");

    // The preload-hinted part is held until it is published.
    let url = server.url(&format!("/hls/main/part{msn}.1.m4s"));
    let client = server.http.clone();
    let request = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.is_finished());
    let p = program.clone();
    tokio::task::spawn_blocking(move || push_synthetic(&p, 191, 201))
        .await
        .unwrap();
    let r = request.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "video/iso.segment");
    let body = r.bytes().await.unwrap();
    assert_eq!(body, program.with(|p| p.part(msn, 1)).unwrap());
    // A part far beyond the hint: 404 at once.
    let started = Instant::now();
    let r = server
        .get(&format!("/hls/main/part{}.0.m4s", msn + 5))
        .await;
    assert_eq!(r.status(), 404);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_not_found() {
    let server = serve().await;
    server
        .hls
        .set_block_timeout(Some(Duration::from_millis(300)));

    // Unknown room: 404 at once, not recorded as watched.
    let r = server.get("/hls/nosuchroom/index.m3u8").await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(server.hls.last_watched("nosuchroom").is_none());
    // A room without a program: watched, 404 after waiting for one to start.
    let before = Instant::now();
    let r = server.get("/hls/main/index.m3u8").await;
    assert_eq!(r.status(), 404);
    assert!(server.hls.last_watched("main").unwrap() >= before);
    let r = server.get("/hls/main/seg0.m4s").await;
    assert_eq!(r.status(), 404);

    // A program that starts while a viewer waits: the request is answered.
    server.hls.set_block_timeout(Some(Duration::from_secs(2)));
    let url = server.url("/hls/main/index.m3u8");
    let client = server.http.clone();
    let request = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let program = server
        .hls
        .start("main", HlsConfig::default(), synthetic_format())
        .unwrap();
    push_synthetic(&program, 0, 181);
    let r = request.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    let text = r.text().await.unwrap();
    let (first, init_uri) = program.with(|p| (p.config().first_msn, p.init_uri()));
    assert!(
        first > 800_000_000,
        "sequence numbers follow the wall clock: {first}"
    );
    assert!(text.contains(&format!("#EXT-X-MAP:URI=\"{init_uri}\"")));
    // The waiting request is answered as soon as the program starts, possibly before the
    // frames above were all pushed: the first segment is listed once they are.
    let r = server.get("/hls/main/index.m3u8").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains(&format!("seg{first}.m4s")), "{text}");

    let cases = [
        (format!("/hls/main/{init_uri}"), "video/mp4"),
        (format!("/hls/main/seg{first}.m4s"), "video/iso.segment"),
        (format!("/hls/main/part{first}.2.m4s"), "video/iso.segment"),
    ];
    for (path, content_type) in &cases {
        let r = server.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), *content_type);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
        assert!(!r.bytes().await.unwrap().is_empty());
    }
    let seg = server.get(&format!("/hls/main/seg{first}.m4s")).await;
    assert_eq!(
        seg.bytes().await.unwrap(),
        program.with(|p| p.segment(first)).unwrap()
    );

    // Outside the window, a previous run's init segment, bad names: 404, not cached.
    for path in [
        format!("/hls/main/seg{}.m4s", first - 1),
        format!("/hls/main/init-{}.mp4", first - 1),
        "/hls/main/init.mp4".to_owned(),
        "/hls/main/seg1.ts".to_owned(),
        "/hls/main/part1.m4s".to_owned(),
    ] {
        let r = server.get(&path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(header(&r, "cache-control"), "no-store");
    }

    // CORS preflight.
    let r = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/hls/main/index.m3u8"))
        .header("Origin", "https://example.com")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(header(&r, "access-control-allow-methods").contains("GET"));

    // A restarted program never reuses sequence numbers (immutable caching stays right).
    let next = program.with(|p| p.next_part()).unwrap().0;
    server.hls.stop("main");
    assert!(server.hls.get("main").is_none());
    let again = server
        .hls
        .start("main", HlsConfig::default(), synthetic_format())
        .unwrap();
    assert!(again.with(|p| p.config().first_msn) > next);
    let _: Arc<HlsProgram> = again;
}
