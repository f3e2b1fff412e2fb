//! Cluster mode, viewer placement (issue 11 item 7): two in-process nodes on one PostgreSQL
//! database and one Redis, real UDP on loopback. A WHIP publisher is live on node A, whose
//! viewer limit (`cluster.max_viewers`) is 1. The first viewer watches on A; then A is full:
//! `/join` on A names node B with B's URLs, a WHEP POST on A is answered `307` to B's WHEP
//! endpoint, and the offer re-posted there is answered and decodes (relayed from A). With
//! `hls.max_webrtc_viewers` reached cluster-wide, both nodes send newcomers to HLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::{RedisServer, SECRET, serve};
use common::peers::{admin, decoded, playback, post_sdp, publisher, run_until};
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use venue_gateway::build_app;
use venue_tests::media_peer::MediaPeer;
use venue_tests::postgres::Postgres;

/// Node `id` on `redis` and `database` taking at most `max_viewers` WebRTC viewers, rooms
/// at most `room_viewers`.
async fn start(
    redis: &str,
    database: &str,
    id: &str,
    max_viewers: u64,
    room_viewers: usize,
) -> common::cluster::Node {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = common::cluster::node_config(dir.path(), redis, id, SECRET);
    config.database.url = Some(venue_gateway::config::Secret::new(database));
    config.cluster.internal_url = Some(format!("http://{addr}"));
    config.cluster.max_viewers = max_viewers;
    config.hls.max_webrtc_viewers = room_viewers;
    serve(build_app(&config).await.unwrap(), listener, dir)
}

async fn join(client: &reqwest::Client, node: &common::cluster::Node) -> Value {
    let text = client
        .get(node.url("/api/rooms/main/join"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A recvonly offer: one video + audio pair (stage slot 0).
fn offer() -> (MediaPeer, String, str0m::change::SdpPendingOffer) {
    let mut p = MediaPeer::new(true).unwrap();
    let mut api = p.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (p, offer.to_sdp_string(), pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_node_sends_new_viewers_to_another_and_a_full_room_to_hls() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let a = start(&redis.url(), &database, "node-a", 1, 3).await;
    let b = start(&redis.url(), &database, "node-b", 0, 3).await;
    let client = reqwest::Client::new();
    // No redirects followed automatically: the test looks at the 307.
    let manual = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let r = admin(
        &client,
        &a,
        "POST",
        "/api/admin/rooms/main/streamers",
        json!({ "name": "Ann" }),
    )
    .await;
    let (ann, key) = (
        r["id"].as_i64().unwrap(),
        r["stream_key"].as_str().unwrap().to_owned(),
    );
    admin(
        &client,
        &a,
        "PUT",
        "/api/admin/rooms/main/stage",
        json!({ "layout": 1, "slots": [ann] }),
    )
    .await;
    let mut ann_peer = publisher(&client, &a, &key).await;

    // Room for one on A: A keeps its first viewer.
    let j = join(&client, &a).await;
    assert_eq!(
        (j["mode"].as_str(), j["node"].as_str()),
        (Some("webrtc"), Some("node-a")),
        "{j}"
    );
    assert_eq!(j["whep_url"], "/api/whep/main");
    let (mut first, sdp, pending) = offer();
    let answer = post_sdp(&client, a.url("/api/whep/main"), None, sdp).await;
    first
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    // A is full now: /join names B with B's URLs, WHEP on A redirects there.
    let j = join(&client, &a).await;
    assert_eq!(
        (j["mode"].as_str(), j["node"].as_str()),
        (Some("webrtc"), Some("node-b")),
        "{j}"
    );
    assert_eq!(j["whep_url"], b.url("/api/whep/main"));
    assert_eq!(j["ws_url"], format!("ws://{}/api/rooms/main/ws", b.addr));
    let (mut second, sdp, pending) = offer();
    let r = manual
        .post(a.url("/api/whep/main"))
        .header("content-type", "application/sdp")
        .body(sdp.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, b.url("/api/whep/main"));
    let answer = post_sdp(&client, location, None, sdp).await;
    second
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    // Both viewers decode Ann: the one on A directly, the one on B through a relay from A.
    let mut play = playback(320, 240, 8.0);
    tokio::task::block_in_place(|| {
        run_until(
            &mut [&mut ann_peer, &mut first, &mut second],
            Some(&mut play),
            Duration::from_secs(15),
            "both viewers decode slot 0",
            |ps| {
                [1, 2].iter().all(|&i| {
                    ps[i].video.len() > 80 && {
                        let mid = ps[i].video[0].mid;
                        decoded(ps[i], mid, 0).0 >= 10
                    }
                })
            },
        );
    });
    assert_eq!(b.state.state.stats().await.unwrap().relays_in, 1);

    // The room limit (3) is cluster-wide: one more viewer on B fills it (heartbeats carry
    // the counts, every ~2 s); then /join says HLS on either node.
    let (mut third, sdp, pending) = offer();
    let answer = post_sdp(&client, b.url("/api/whep/main"), None, sdp).await;
    third
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let hls = |v: &Value| v["mode"] == "hls" && v["cause"] == "capacity";
    let took = common::cluster::wait_for(Duration::from_secs(6), "both nodes say HLS", || {
        let (client, a, b) = (
            client.clone(),
            a.url("/api/rooms/main/join"),
            b.url("/api/rooms/main/join"),
        );
        async move {
            let get = |u: String| {
                let client = client.clone();
                async move {
                    let t = client.get(u).send().await.unwrap().text().await.unwrap();
                    serde_json::from_str::<Value>(&t).unwrap()
                }
            };
            hls(&get(a).await) && hls(&get(b).await)
        }
    })
    .await;
    println!("room full cluster-wide: both nodes answer HLS after {took:?}");
    let r = manual
        .post(a.url("/api/whep/main"))
        .header("content-type", "application/sdp")
        .body(offer().1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a full room refuses WHEP on every node");
}
