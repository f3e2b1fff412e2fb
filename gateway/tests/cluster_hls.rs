//! Cluster mode, the HLS program and recordings across nodes (issue 11 item 8): two in-process
//! nodes on one PostgreSQL database and one Redis (both real, started by the test on loopback
//! ports). One of them holds the room's `program:main` lease — the program node; Debian's
//! ffmpeg publishes H.264 + AAC over RTMP to it while the streamer is on stage slot 0, so it
//! composes the program and records the set.
//!
//! - The LL-HLS playlist (a blocking reload for the next part) and a part fetched through the
//!   other node are byte-identical to the program node's, `Content-Type` and `Cache-Control`
//!   too; a blocking reload through the other node is held until its part exists.
//! - Only the program node composes (its `HlsPrograms` has the room, the other's has not).
//! - The set recorded on the program node is listed by the other node, and downloads through
//!   it (admin route, a `Range`, the signed link): the same bytes as the file on disk.
//! - The program node crashes: the other node becomes the program node and serves the
//!   playlist (bounded wait).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ADMIN;
use common::cluster::{Node, RedisServer, SECRET, build_with, serve, wait_for};
use serde_json::{Value, json};
use venue_gateway::config::RtmpConfig;
use venue_tests::postgres::Postgres;

/// Builds node `id` with recording on and RTMP on a loopback port; serves it.
async fn node(redis: &str, id: &str, database: &str) -> (Node, std::net::SocketAddr) {
    let (app, listener, dir) = build_with(redis, id, SECRET, Some(database), |c| {
        c.recording.enabled = true;
    })
    .await
    .unwrap();
    let rtmp = venue_gateway::media::rtmp::spawn(
        app.rtmp.clone(),
        RtmpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
    )
    .await
    .expect("RTMP listens");
    (serve(app, listener, dir), rtmp)
}

/// A GET: status, Content-Type, Cache-Control, body.
async fn fetch(client: &reqwest::Client, url: &str) -> (u16, String, String, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, ct, cc) = (
        r.status().as_u16(),
        header("content-type"),
        header("cache-control"),
    );
    (status, ct, cc, r.bytes().await.unwrap().to_vec())
}

/// The last `#EXT-X-PART` of a playlist: (msn, part index) from its URI `part{msn}.{p}.m4s`.
fn last_part(playlist: &str) -> (u64, u32) {
    let uri = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .next_back()
        .expect("the playlist lists parts");
    let (msn, part) = uri
        .strip_prefix("part")
        .and_then(|s| s.strip_suffix(".m4s"))
        .and_then(|s| s.split_once('.'))
        .expect("part URI");
    (msn.parse().unwrap(), part.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_program_node_composes_the_others_proxy_it_and_a_survivor_takes_over() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let (a, rtmp_a) = node(&redis.url(), "node-a", &database).await;
    let (b, rtmp_b) = node(&redis.url(), "node-b", &database).await;
    let client = reqwest::Client::new();
    let admin = format!("Bearer {ADMIN}");

    // Exactly one node is the program node of room `main`.
    wait_for(
        Duration::from_secs(10),
        "a program node for main",
        || async { a.state.program.composes("main") != b.state.program.composes("main") },
    )
    .await;
    let a_composes = a.state.program.composes("main");
    let (program, other, rtmp) = if a_composes {
        (&a, &b, rtmp_a)
    } else {
        (&b, &a, rtmp_b)
    };
    println!(
        "program node of main: {}",
        program.cluster.settings().node_id
    );

    // A streamer on slot 0 (created through the other node: one database), publishing to the
    // program node over RTMP.
    let r: Value = client
        .post(other.url("/api/admin/rooms/main/streamers"))
        .header("authorization", &admin)
        .header("content-type", "application/json")
        .body(json!({ "name": "Tone" }).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    let id = r["id"].as_i64().expect("streamer id");
    let key = r["stream_key"].as_str().expect("stream key").to_owned();
    let s = client
        .put(other.url("/api/admin/rooms/main/stage"))
        .header("authorization", &admin)
        .header("content-type", "application/json")
        .body(json!({ "layout": 1, "slots": [id] }).to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
    let mut ff = common::KillOnDrop(
        std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=60",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100:duration=60",
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
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)"),
    );

    // The set is being recorded on the program node; the other node lists it.
    let recordings_url = other.url("/api/admin/rooms/main/recordings");
    let list = || {
        let req = client.get(&recordings_url).header("authorization", &admin);
        async move {
            let v: Value =
                serde_json::from_str(&req.send().await.unwrap().text().await.unwrap()).unwrap();
            v.as_array().unwrap().clone()
        }
    };
    wait_for(
        Duration::from_secs(20),
        "the set is recording, listed on the other node",
        || async { list().await.iter().any(|r| r["recording"] == true) },
    )
    .await;

    // The playlist through the other node (its first request starts the program there).
    let deadline = Instant::now() + Duration::from_secs(40);
    let playlist = loop {
        let (status, _, _, body) = fetch(&client, &other.url("/hls/main/index.m3u8")).await;
        if status == 200 {
            let text = String::from_utf8(body).unwrap();
            if text.matches("#EXTINF").count() >= 2 {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "a program with two segments within 40 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(playlist.contains("CAN-BLOCK-RELOAD=YES"), "{playlist}");

    // Only the program node composes.
    assert!(
        program.state.hls.get("main").is_some(),
        "the program node composes"
    );
    assert!(
        other.state.hls.get("main").is_none(),
        "the other node composes nothing"
    );
    let metrics = |n: &Node| {
        let url = n.url("/metrics");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (m_program, m_other) = (metrics(program).await, metrics(other).await);
    assert!(
        m_program.contains("\nvenue_cluster_program_rooms 1\n"),
        "{m_program}"
    );
    assert!(
        m_other.contains("\nvenue_cluster_program_rooms 0\n"),
        "{m_other}"
    );
    assert!(
        !m_other.contains("venue_cluster_forwarded_total{result=\"ok\"} 0\n"),
        "the other node forwarded"
    );

    // A published part: same bytes and headers through either node.
    let (msn, part) = last_part(&playlist);
    let path = format!("/hls/main/part{msn}.{part}.m4s");
    let direct = fetch(&client, &program.url(&path)).await;
    let proxied = fetch(&client, &other.url(&path)).await;
    assert_eq!(direct.0, 200);
    assert!(!direct.3.is_empty());
    assert_eq!(direct, proxied, "a part through the other node");
    assert_eq!(proxied.1, "video/iso.segment");
    assert_eq!(proxied.2, "public, max-age=31536000, immutable");

    // A blocking reload for a part not yet published, through the other node: held until it
    // is, then the playlist names it.
    let (next_msn, next_part) = {
        let (_, _, _, body) = fetch(&client, &program.url("/hls/main/index.m3u8")).await;
        let (m, p) = last_part(&String::from_utf8(body).unwrap());
        (m, p + 1)
    };
    let started = Instant::now();
    let query = format!("/hls/main/index.m3u8?_HLS_msn={next_msn}&_HLS_part={next_part}");
    let (status, ct, cc, body) = fetch(&client, &other.url(&query)).await;
    let held = started.elapsed();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(ct, "application/vnd.apple.mpegurl");
    assert_eq!(cc, "public, max-age=1");
    let (m, p) = last_part(&text);
    assert!(
        (m, p) >= (next_msn, next_part) || m > next_msn,
        "the held reload lists part {next_msn}.{next_part}: {text}"
    );
    println!("blocking reload through the other node held {held:?}");

    // The same blocking reload asked of both nodes at once: byte-identical answers (both render
    // the packager's state when the part appears; retried when a part lands in between).
    let mut identical = false;
    for _ in 0..10 {
        let (_, _, _, body) = fetch(&client, &program.url("/hls/main/index.m3u8")).await;
        let (m, p) = last_part(&String::from_utf8(body).unwrap());
        let query = format!("/hls/main/index.m3u8?_HLS_msn={m}&_HLS_part={}", p + 1);
        let (url_p, url_o) = (program.url(&query), other.url(&query));
        let (direct, proxied) = tokio::join!(fetch(&client, &url_p), fetch(&client, &url_o));
        assert_eq!(direct.0, 200);
        assert_eq!((&direct.1, &direct.2), (&proxied.1, &proxied.2), "headers");
        if direct == proxied {
            identical = true;
            break;
        }
    }
    assert!(
        identical,
        "a blocking playlist through the other node equals the program node's"
    );

    // An unknown room is 404 on any node.
    assert_eq!(
        fetch(&client, &other.url("/hls/nope/index.m3u8")).await.0,
        404
    );

    // A request the program node refuses is refused the same way through the other node.
    let bad = "/hls/main/index.m3u8?_HLS_part=1";
    let (d, p) = (
        fetch(&client, &program.url(bad)).await,
        fetch(&client, &other.url(bad)).await,
    );
    assert_eq!((d.0, &d.2), (400, &"no-store".to_owned()));
    assert_eq!(d, p);

    // The set ends (ffmpeg stops); the recording is finished on the program node and
    // downloads through the other node: the same bytes as the file on the program node's disk.
    let _ = ff.0.kill();
    let _ = ff.0.wait();
    wait_for(Duration::from_secs(20), "the set is finished", || async {
        list()
            .await
            .iter()
            .any(|r| r["recording"] == false && !r["end"].is_null())
    })
    .await;
    let rec = list().await.into_iter().next().unwrap();
    let file = program
        .dir
        .path()
        .join("recordings")
        .join(rec["file"].as_str().unwrap());
    let on_disk = std::fs::read(&file).unwrap();
    assert!(on_disk.len() > 10_000, "{} bytes", on_disk.len());
    assert!(
        !other
            .dir
            .path()
            .join("recordings")
            .join(rec["file"].as_str().unwrap())
            .exists(),
        "the other node holds no copy"
    );
    let got = client
        .get(other.url(rec["download_url"].as_str().unwrap()))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "video/mp4");
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(rec["file"].as_str().unwrap())
    );
    assert_eq!(
        got.bytes().await.unwrap().to_vec(),
        on_disk,
        "admin download via the other node"
    );
    let ranged = client
        .get(other.url(rec["download_url"].as_str().unwrap()))
        .header("authorization", &admin)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 100-199/{}", on_disk.len()).as_str()
    );
    assert_eq!(
        ranged.bytes().await.unwrap().to_vec(),
        on_disk[100..200].to_vec()
    );
    let signed = client
        .get(other.url(rec["signed_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(
        signed.bytes().await.unwrap().to_vec(),
        on_disk,
        "signed link via the other node"
    );

    // A delete through the other node removes the file on the program node and the row.
    let deleted = client
        .delete(other.url(rec["download_url"].as_str().unwrap()))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!file.exists(), "the file is gone from the program node");
    assert!(list().await.is_empty());

    // The program node crashes: the other node takes the lease and serves the program itself.
    program.crash();
    let crashed = Instant::now();
    wait_for(
        Duration::from_secs(15),
        "the other node is the program node",
        || async { other.state.program.composes("main") },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refusals = std::collections::BTreeMap::new();
    loop {
        let (status, _, cache, body) = fetch(&client, &other.url("/hls/main/index.m3u8")).await;
        if status == 200 && other.state.hls.get("main").is_some() {
            assert!(String::from_utf8(body).unwrap().contains("#EXT-X-PART:"));
            break;
        }
        if status != 200 {
            // While the dead node still holds the lease: 502 (unreachable, not live), 503
            // (nobody holds it), 504; then 404 at worst while the new program starts.
            assert!(
                [404, 502, 503, 504].contains(&status),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(cache, "no-store", "an error is not cached");
            *refusals.entry(status).or_insert(0) += 1;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor serves the playlist within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "program node crash → the survivor serves the playlist after {:?} (refusals meanwhile: {refusals:?})",
        crashed.elapsed()
    );
    // The crashed node (in-process: its tasks still run) stopped composing with its lease.
    wait_for(
        Duration::from_secs(5),
        "the crashed node composes nothing",
        || async { program.state.hls.get("main").is_none() },
    )
    .await;
}

/// The program node dies before the other node ever forwarded to it: the other node answers
/// 502 naming it (connection refused) while the dead node still holds the lease, then takes
/// the lease over and serves a program of its own (the stage's cards: nobody publishes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_program_node_is_a_502_until_the_survivor_takes_over() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let (a, _) = node(&redis.url(), "node-a", &database).await;
    let (b, _) = node(&redis.url(), "node-b", &database).await;
    let client = reqwest::Client::new();
    wait_for(
        Duration::from_secs(10),
        "a program node for main",
        || async { a.state.program.composes("main") != b.state.program.composes("main") },
    )
    .await;
    let (program, other) = if a.state.program.composes("main") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let dead = program.cluster.settings().node_id.to_string();
    program.crash();
    let crashed = Instant::now();

    let (status, _, cache, body) = fetch(&client, &other.url("/hls/main/index.m3u8")).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(cache, "no-store");
    assert!(
        body.contains(&dead) && body.contains("unreachable"),
        "{body}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let (status, _, _, body) = fetch(&client, &other.url("/hls/main/index.m3u8")).await;
        *seen.entry(status).or_insert(0) += 1;
        if status == 200 {
            assert!(String::from_utf8(body).unwrap().contains("#EXT-X-PART:"));
            break;
        }
        assert!([404, 502, 503].contains(&status), "{status}");
        assert!(
            Instant::now() < deadline,
            "the survivor serves within 30 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(other.state.program.composes("main"));
    assert!(other.state.hls.get("main").is_some());
    println!(
        "unreachable program node: answers {seen:?}; the survivor served after {:?}",
        crashed.elapsed()
    );
}
