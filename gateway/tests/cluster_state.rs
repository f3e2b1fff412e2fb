//! Cluster mode, room state across nodes (issue 11 item 5): two in-process nodes on one
//! PostgreSQL database and one Redis. A stage change through the admin API of one node is
//! written to the database, announced on the Redis bus, and applied by the other node; after
//! a Redis restart (pub/sub loses messages) the other node re-reads the rooms (resync).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ADMIN;
use common::cluster::{RedisServer, SECRET, build_on, serve};
use serde_json::{Value, json};
use venue_tests::postgres::Postgres;

async fn get(client: &reqwest::Client, url: String) -> Value {
    let body = client.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Polls `url` until `pred` holds for its JSON (up to `limit`); returns how long it took.
async fn until(
    client: &reqwest::Client,
    url: String,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let v = get(client, url.clone()).await;
        if pred(&v) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {v}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stage_change_on_one_node_is_applied_by_the_others() {
    let database = Postgres::shared().create_database().unwrap();
    let mut redis = RedisServer::start();
    let (app, listener, dir) = build_on(&redis.url(), "node-a", SECRET, Some(&database))
        .await
        .unwrap();
    let a = serve(app, listener, dir);
    let (app, listener, dir) = build_on(&redis.url(), "node-b", SECRET, Some(&database))
        .await
        .unwrap();
    let b = serve(app, listener, dir);
    let client = reqwest::Client::new();
    let admin = format!("Bearer {ADMIN}");

    // Two streamers, created on A (one database: B sees them too).
    let (mut ids, mut keys) = (Vec::new(), Vec::new());
    for name in ["Ann", "Bob"] {
        let body = client
            .post(a.url("/api/admin/rooms/main/streamers"))
            .header("authorization", &admin)
            .header("content-type", "application/json")
            .body(json!({ "name": name }).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r: Value = serde_json::from_str(&body).unwrap();
        ids.push(r["id"].as_i64().expect("streamer id"));
        keys.push(r["stream_key"].as_str().expect("stream key").to_owned());
    }
    let put_stage = |node: &common::cluster::Node, layout: u32, slots: Value| {
        let req = client
            .put(node.url("/api/admin/rooms/main/stage"))
            .header("authorization", &admin)
            .header("content-type", "application/json")
            .body(json!({ "layout": layout, "slots": slots }).to_string());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };

    // A stage change on A reaches B; then one on B reaches A. Latency over several changes.
    let mut took = Vec::new();
    for round in 0..10 {
        let (from, to) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (first, second) = if round % 2 == 0 {
            (ids[0], ids[1])
        } else {
            (ids[1], ids[0])
        };
        put_stage(from, 2, json!([first, second])).await;
        took.push(
            until(
                &client,
                to.url("/api/rooms/main"),
                Duration::from_secs(3),
                |v| {
                    v["layout"] == 2
                        && v["slots"][0]["streamer_id"] == first
                        && v["slots"][1]["streamer_id"] == second
                },
            )
            .await,
        );
    }
    took.sort();
    println!(
        "cross-node stage change, admin PUT answered → other node shows it: p50 {:?}, max {:?} (10 changes)",
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // Redis goes away: a change made meanwhile is stored but its announcement is lost. When
    // Redis is back, B resyncs from the database.
    redis.kill();
    put_stage(&a, 1, json!([ids[1]])).await;
    redis.restart();
    let resync = until(
        &client,
        b.url("/api/rooms/main"),
        Duration::from_secs(20),
        |v| v["layout"] == 1 && v["slots"][0]["streamer_id"] == ids[1],
    )
    .await;
    println!(
        "change made while Redis was down applied on the other node {resync:?} after Redis restarted"
    );

    // Ann publishes on B; an admin deletes Ann on A: B ends Ann's session too.
    let r = client
        .post(b.url("/api/whip"))
        .header("authorization", format!("Bearer {}", keys[0]))
        .header("content-type", "application/sdp")
        .body(common::publisher_offer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let session: venue_gateway::ids::SessionId =
        location.rsplit('/').next().unwrap().parse().unwrap();
    assert!(b.state.state.session(session).await.unwrap().is_some());
    let r = client
        .delete(a.url(&format!("/api/admin/rooms/main/streamers/{}", ids[0])))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let start = Instant::now();
    while b.state.state.session(session).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "B ended the deleted streamer's session"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
