//! An nginx `proxy_cache` mirror in front of Venue carries the LL-HLS program (issue 5): a real
//! program (ffmpeg publishes over RTMP, the streamer is on stage, the first playlist request
//! starts the compositor) is fetched through Debian's nginx started by the test with its own
//! config, cache, logs and pid file in a tempdir on a free loopback port. The second fetch of a
//! part and of a segment is a cache `HIT`, byte-identical to the first and to Venue's own copy;
//! the plain playlist (Venue: `no-cache`) is never served from the cache; blocking playlist
//! responses (Venue: `max-age=1`) are cached briefly; ffmpeg plays the program through the
//! mirror. Skipped, saying so, when `/usr/sbin/nginx` is absent (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NGINX: &str = "/usr/sbin/nginx";

/// A free loopback TCP port (bound, read, released; nginx binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The mirror's nginx.conf: one process in the foreground, everything under `dir`, a cache
/// that follows the upstream's `Cache-Control`, a cache lock so that concurrent misses of one
/// URL make one upstream request, and `X-Cache-Status` on every answer.
fn nginx_conf(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=hls:10m max_size=256m inactive=5m use_temp_path=off;
    upstream venue {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /hls/ {{
            proxy_pass http://venue;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_cache hls;
            proxy_cache_key $request_uri;
            # Venue's Cache-Control decides (immutable media, max-age=1 blocking playlists,
            # no-cache plain playlists, no-store errors); this applies only without one.
            proxy_cache_valid 200 1s;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_read_timeout 30s;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#
    )
}

/// Starts nginx with `conf` written into `dir`; waits (≤ 10 s) until it accepts connections.
fn start_nginx(dir: &Path, conf: &str, port: u16) -> KillOnDrop {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let nginx = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx listens within 10 s: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The last complete part (`#EXT-X-PART` URI, not the preload hint) and the last full
/// segment of a media playlist, as relative URIs.
fn last_part_and_segment(playlist: &str) -> (String, String) {
    let part = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .next_back()
        .expect("a part in the playlist")
        .to_owned();
    let segment = playlist
        .lines()
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a segment in the playlist")
        .to_owned();
    (part, segment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_proxy_cache_mirror_serves_the_program_with_hits_on_parts() {
    if !Path::new(NGINX).exists() {
        eprintln!("SKIPPED: {NGINX} is absent (apt-get install nginx; .ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (server, rtmp, _) = serve_rtmp(config, Default::default()).await;
    let addr = server.addr;

    let (_, _ff) = tone_on_stage(&server, rtmp, "Tone", 2, 45).await;

    let nginx_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nginx = start_nginx(
        nginx_dir.path(),
        &nginx_conf(nginx_dir.path(), port, addr),
        port,
    );
    let mirror = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Through the mirror, the first playlist request starts the program; poll until two
    // segments exist. The plain playlist is never a cache hit: Venue says no-cache.
    let deadline = Instant::now() + Duration::from_secs(40);
    let playlist = loop {
        let r = client
            .get(format!("{mirror}/hls/main/index.m3u8"))
            .send()
            .await
            .unwrap();
        let cache = cache_status(&r);
        if r.status() == 200 {
            assert_eq!(r.headers()["cache-control"], "no-cache");
            assert!(
                matches!(cache.as_str(), "MISS" | "EXPIRED" | "BYPASS"),
                "the plain playlist is not served from the cache: {cache:?}"
            );
            let text = r.text().await.unwrap();
            if text.matches("#EXTINF").count() >= 2 {
                break text;
            }
        } else {
            assert_ne!(cache, "HIT", "an error is not cached (no-store)");
        }
        assert!(
            Instant::now() < deadline,
            "the program has two segments within 40 s: {}",
            std::fs::read_to_string(nginx_dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    let again = client
        .get(format!("{mirror}/hls/main/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        cache_status(&again),
        "HIT",
        "the plain playlist is not cached"
    );

    // A part and a segment: first MISS, then HIT with the same bytes — Venue's bytes.
    let (part, segment) = last_part_and_segment(&playlist);
    for uri in [&part, &segment] {
        let url = format!("{mirror}/hls/main/{uri}");
        let first = client.get(&url).send().await.unwrap();
        assert_eq!(first.status(), 200, "{uri}");
        assert_eq!(cache_status(&first), "MISS", "{uri}");
        assert_eq!(
            first.headers()["cache-control"],
            venue_gateway::http::hls::CACHE_IMMUTABLE
        );
        assert_eq!(first.headers()["access-control-allow-origin"], "*");
        let first = first.bytes().await.unwrap();
        let second = client.get(&url).send().await.unwrap();
        assert_eq!(second.status(), 200, "{uri}");
        assert_eq!(cache_status(&second), "HIT", "{uri}");
        assert_eq!(
            second.headers()["content-type"],
            venue_gateway::http::hls::SEGMENT_TYPE
        );
        let second = second.bytes().await.unwrap();
        assert!(!first.is_empty());
        assert_eq!(first, second, "{uri}: the hit is byte-identical");
        let direct = client
            .get(format!("http://{addr}/hls/main/{uri}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(first, direct, "{uri}: the mirror's copy is Venue's");
    }

    // A blocking playlist request for the next part (Venue: max-age=1) is cached briefly:
    // asked again at once, it is a hit.
    let msn_line = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap();
    let first_msn: u64 = msn_line.trim().parse().unwrap();
    let segments = playlist.matches("#EXTINF").count() as u64;
    let blocking = format!(
        "{mirror}/hls/main/index.m3u8?_HLS_msn={}&_HLS_part=0",
        first_msn + segments
    );
    let r = client.get(&blocking).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        venue_gateway::http::hls::CACHE_BLOCKING
    );
    let r = client.get(&blocking).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        cache_status(&r),
        "HIT",
        "a blocking playlist is cached for 1 s"
    );

    // ffmpeg plays the program through the mirror.
    let mirror_playlist = format!("{mirror}/hls/main/index.m3u8");
    let decode = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-v", "error", "-i", &mirror_playlist])
            .args(["-t", "2", "-f", "null", "-"])
            .output()
            .expect("ffmpeg")
    })
    .await
    .unwrap();
    assert!(
        decode.status.success(),
        "ffmpeg decodes the program through nginx: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let log = std::fs::read_to_string(nginx_dir.path().join("access.log")).unwrap();
    assert!(log.contains("/hls/main/"), "nginx served the program");
}
