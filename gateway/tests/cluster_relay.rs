//! Cluster mode, media across nodes (issue 11 item 4): three in-process nodes on one
//! PostgreSQL database and one Redis, real UDP on loopback, real ICE and DTLS-SRTP everywhere.
//! A WHIP publisher (a str0m peer playing an ffmpeg H.264 stream and Opus) is live on node A
//! on stage slot 0, Debian's ffmpeg publishes over RTMP to node C on slot 1; a WHEP viewer on
//! node B decodes both slots, which reach B over one relay from A and one from C. Then the
//! admin API on C moves slot 0 to a third streamer publishing on C, and B's viewer shows it on
//! the same PeerConnection. The origins count the relays as relays, not viewers. Waits poll
//! a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{RedisServer, SECRET, build_on, serve};
use common::ffmpeg_rtmp;
use common::peers::{admin, decoded, playback, publisher, run_until, viewer};
use serde_json::{Value, json};
use venue_gateway::config::RtmpConfig;
use venue_tests::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_relay_both_slots_to_a_viewer_and_switch_without_renegotiation() {
    let database = Postgres::shared().create_database().unwrap();
    let mut redis = RedisServer::start();
    let start = |id: &'static str| {
        let (redis, database) = (redis.url(), database.clone());
        async move { build_on(&redis, id, SECRET, Some(&database)).await.unwrap() }
    };
    let (app, listener, dir) = start("node-a").await;
    let a = serve(app, listener, dir);
    let (app, listener, dir) = start("node-b").await;
    let b = serve(app, listener, dir);
    let (app, listener, dir) = start("node-c").await;
    let rtmp = venue_gateway::media::rtmp::spawn(
        app.rtmp.clone(),
        RtmpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..RtmpConfig::default()
        },
    )
    .await
    .unwrap();
    let c = serve(app, listener, dir);
    let client = reqwest::Client::new();

    let mut streamers = Vec::new();
    for name in ["Ann", "Cy", "Bob"] {
        let r = admin(
            &client,
            &a,
            "POST",
            "/api/admin/rooms/main/streamers",
            json!({ "name": name }),
        )
        .await;
        streamers.push((
            r["id"].as_i64().unwrap(),
            r["stream_key"].as_str().unwrap().to_owned(),
        ));
    }
    let (ann, cy, bob) = (&streamers[0], &streamers[1], &streamers[2]);
    admin(
        &client,
        &c,
        "PUT",
        "/api/admin/rooms/main/stage",
        json!({ "layout": 2, "slots": [ann.0, cy.0] }),
    )
    .await;

    // Ann over WHIP on A (320x240), Cy over RTMP on C (640x360), Bob over WHIP on C (480x272).
    let mut ann_peer = publisher(&client, &a, &ann.1).await;
    let _ffmpeg = ffmpeg_rtmp(rtmp, &cy.1, 20);
    let mut bob_peer = publisher(&client, &c, &bob.1).await;

    // B shows both slots live (it reads the owners from Redis), before any viewer.
    let both_live = Arc::new(AtomicBool::new(false));
    let poll = {
        let (client, url, flag) = (client.clone(), b.url("/api/rooms/main"), both_live.clone());
        tokio::spawn(async move {
            loop {
                let text = client.get(&url).send().await.unwrap().text().await.unwrap();
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["slots"][0]["live"] == true && v["slots"][1]["live"] == true {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::task::block_in_place(|| {
        run_until(
            &mut [&mut ann_peer, &mut bob_peer],
            None,
            Duration::from_secs(10),
            "B sees slots 0 and 1 live",
            |_| both_live.load(Ordering::SeqCst),
        )
    });
    poll.abort();
    assert_eq!(
        b.state.state.stats().await.unwrap().relays_in,
        0,
        "no viewer on B, no relay"
    );

    // A viewer on B decodes both slots: Ann through the relay from A, Cy through the one from C.
    let (mut view, [v0, v1]) = viewer(&client, &b).await;
    let joined = Instant::now();
    let mut play_ann = playback(320, 240, 12.0);
    let first = tokio::task::block_in_place(|| {
        let mut first = None;
        run_until(
            &mut [&mut ann_peer, &mut view, &mut bob_peer],
            Some(&mut play_ann),
            Duration::from_secs(15),
            "B's viewer receives video on both slots",
            |ps| {
                let v = &ps[1].video;
                let has = |mid| v.iter().filter(|r| r.mid == mid).count() > 60;
                if first.is_none() && v.iter().any(|r| r.mid == v0) {
                    first = Some(joined.elapsed());
                }
                has(v0) && has(v1)
            },
        );
        first
    });
    println!("viewer on B: first slot-0 packet relayed from A {first:?} after its WHEP POST");
    let (frames0, w0, h0) = decoded(&view, v0, 0);
    let (frames1, w1, h1) = decoded(&view, v1, 0);
    println!(
        "slot 0 (A, WHIP): {frames0} pictures {w0}x{h0}; slot 1 (C, RTMP): {frames1} pictures {w1}x{h1}"
    );
    assert!(
        frames0 >= 10 && (w0, h0) == (320, 240),
        "slot 0 decodes Ann's 320x240"
    );
    assert!(
        frames1 >= 10 && (w1, h1) == (640, 360),
        "slot 1 decodes Cy's 640x360"
    );

    // One relay per origin on B; each origin has one relay session and no viewer.
    let (sa, sb, sc) = (
        a.state.state.stats().await.unwrap(),
        b.state.state.stats().await.unwrap(),
        c.state.state.stats().await.unwrap(),
    );
    assert_eq!(sb.relays_in, 2, "B relays from A and from C");
    let metrics = client
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nvenue_cluster_relays_in 2\n"),
        "{metrics}"
    );
    let relayed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("venue_cluster_relayed_packets_total "))
        .and_then(|v| v.parse().ok())
        .expect("venue_cluster_relayed_packets_total");
    assert!(relayed > 100, "relayed packets counted: {relayed}");
    // The heartbeat's egress (UDP bytes of the media planes: process-wide, so all three nodes
    // of this test together) is measured while media flows.
    let egress = a.cluster.current().await.load.egress_bps;
    assert!(egress.is_some_and(|b| b > 100_000), "egress {egress:?}");
    assert_eq!((sa.relays_out, sc.relays_out), (1, 1));
    assert_eq!(
        (sa.viewers, sb.viewers, sc.viewers),
        (0, 1, 0),
        "relays are not viewers"
    );

    // The admin API on C moves slot 0 to Bob (live on C): B's viewer shows Bob on the same
    // PeerConnection, with no new offer.
    admin(
        &client,
        &c,
        "PUT",
        "/api/admin/rooms/main/stage",
        json!({ "layout": 2, "slots": [bob.0, cy.0] }),
    )
    .await;
    let mark = view.video.len();
    let mut play_bob = playback(480, 272, 12.0);
    tokio::task::block_in_place(|| {
        run_until(
            &mut [&mut bob_peer, &mut view, &mut ann_peer],
            Some(&mut play_bob),
            Duration::from_secs(15),
            "B's viewer shows Bob on slot 0",
            |ps| {
                let (frames, w, _) = decoded(ps[1], v0, mark);
                frames >= 10 && w == 480
            },
        );
    });
    let (frames0, w0, h0) = decoded(&view, v0, mark);
    println!("after the switch: slot 0 {frames0} pictures {w0}x{h0}");
    assert_eq!((w0, h0), (480, 272));
    // Sequence numbers on slot 0 stay continuous across the switch (no renegotiation, the
    // forwarder rewrote them): no gap wider than a few lost packets.
    let mut seqs: Vec<u64> = view
        .video
        .iter()
        .filter(|r| r.mid == v0)
        .map(|r| r.seq)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let widest = seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest < 50, "slot 0's sequence numbers jump by {widest}");

    // Redis restarts (its claims are lost): the relays and the viewer's slots carry on; slot 0
    // (Bob, relayed from C) shows no hole longer than a second.
    redis.kill();
    redis.restart();
    let mark = view.video.len();
    let restarted = Instant::now();
    let mut play_bob = playback(480, 272, 6.0);
    tokio::task::block_in_place(|| {
        run_until(
            &mut [&mut bob_peer, &mut view, &mut ann_peer],
            Some(&mut play_bob),
            Duration::from_secs(10),
            "5 s of slot 0 after the Redis restart",
            |_| restarted.elapsed() > Duration::from_secs(5),
        );
    });
    let times: Vec<Instant> = view.video[mark..]
        .iter()
        .filter(|r| r.mid == v0)
        .map(|r| r.at)
        .collect();
    let hole = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX);
    println!(
        "after a Redis restart: {} slot-0 packets in 5 s, longest hole {hole:?}",
        times.len()
    );
    assert!(times.len() > 100 && hole < Duration::from_secs(1));
    let live = |v: &Value| v["slots"][0]["live"] == true && v["slots"][1]["live"] == true;
    let text = client
        .get(b.url("/api/rooms/main"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(live(&serde_json::from_str(&text).unwrap()), "{text}");
}
