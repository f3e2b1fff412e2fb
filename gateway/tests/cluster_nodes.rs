//! Cluster mode, nodes: the registry (two nodes see each other, a crashed one disappears),
//! `/readyz` and the drain, refusal of a node with another cluster secret or an incompatible
//! protocol version, node-to-node authentication, and single-node mode untouched. Each test
//! runs its own Debian `redis-server` on a free loopback port (see `common::cluster`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::cluster::{self, RedisServer, SECRET, wait_for};
use http_body_util::BodyExt;
use tower::ServiceExt;
use venue_gateway::cluster::auth::NodeAuth;
use venue_gateway::cluster::registry::{
    CLUSTER_PROTOCOL_VERSION, Load, NodeInfo, ProtocolVersion, Registry,
};
use venue_gateway::cluster::secrets::ClusterSecrets;
use venue_gateway::config::Secret;
use venue_gateway::config::cluster::NodeId;
use venue_proto::v1::server_message::Body as S;

async fn get(url: &str) -> (StatusCode, String) {
    let res = reqwest::get(url).await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    (status, res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_other_within_3_s_and_a_crashed_one_is_gone_within_7_s() {
    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    let took = wait_for(
        Duration::from_secs(3),
        "a and b see each other, ready",
        || async {
            let ready = |v: venue_gateway::cluster::registry::NodesView| {
                v.live.iter().filter(|n| n.ready).count() == 2
            };
            a.live().await == ["a", "b"]
                && b.live().await == ["a", "b"]
                && ready(a.cluster.nodes().await.unwrap())
        },
    )
    .await;
    println!("both nodes listed after {took:?}");
    let view = a.cluster.nodes().await.unwrap();
    let nb = view.live.iter().find(|n| n.node_id == "b").unwrap();
    assert_eq!(nb.internal_url, b.url(""));
    assert_eq!(nb.protocol, CLUSTER_PROTOCOL_VERSION);
    assert!(nb.ready && !nb.draining, "{nb:?}");
    assert!(view.rejected.is_empty() && view.incompatible.is_empty());
    // The heartbeat (every 2 s) updates the gauge.
    wait_for(Duration::from_secs(5), "venue_cluster_nodes 2", || async {
        get(&a.url("/metrics"))
            .await
            .1
            .contains("\nvenue_cluster_nodes 2\n")
    })
    .await;

    b.crash();
    let gone = wait_for(Duration::from_secs(9), "b gone from a's view", || async {
        a.live().await == ["a"]
    })
    .await;
    println!("crashed node gone after {gone:?}");
    assert!(gone <= Duration::from_millis(7500), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_starting_and_draining_and_the_pages_are_told_to_move() {
    let redis = RedisServer::start();
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    let (app, listener, dir) = cluster::build(&redis.url(), "a", SECRET).await.unwrap();
    // Built, not yet accepting: not ready.
    let res = app
        .router
        .clone()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"starting\n");
    let a = cluster::serve(app, listener, dir);
    assert_eq!(
        get(&a.url("/readyz")).await,
        (StatusCode::OK, "ready\n".into())
    );
    assert_eq!(get(&a.url("/healthz")).await.0, StatusCode::OK);

    let ws = format!("ws://{}/api/rooms/main/ws", a.addr);
    let mut early = common::Client::join(&ws, "early").await;
    let drainer = a.drainer.clone();
    let drain = tokio::spawn(async move { drainer.run().await });
    wait_for(Duration::from_secs(2), "readyz draining", || async {
        get(&a.url("/readyz")).await == (StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
    })
    .await;
    assert_eq!(get(&a.url("/healthz")).await.0, StatusCode::OK, "alive");
    // Every page is told, once; one that joins during the drain too.
    let moving = early.until(|m| matches!(m.body, Some(S::Moving(_)))).await;
    let Some(S::Moving(moving)) = moving.body else {
        unreachable!()
    };
    assert!(moving.deadline_ms > 0 && !moving.reason.is_empty());
    let mut late = common::Client::connect(&ws).await;
    late.until(|m| matches!(m.body, Some(S::Moving(_)))).await;
    // Placement sees the drain in the registry.
    wait_for(Duration::from_secs(3), "b sees a draining", || async {
        b.cluster
            .nodes()
            .await
            .unwrap()
            .live
            .iter()
            .any(|n| n.node_id == "a" && n.draining && !n.ready)
    })
    .await;
    assert!(!drain.is_finished(), "clients are still connected");
    // The pages leave: the drain ends before its timeout and the node leaves the registry.
    drop(early);
    drop(late);
    let outcome = tokio::time::timeout(Duration::from_secs(6), drain)
        .await
        .unwrap()
        .unwrap();
    assert!(!outcome.timed_out && outcome.remaining == 0, "{outcome:?}");
    assert_eq!(b.live().await, ["b"], "a withdrew its registration");
    assert_eq!(
        get(&a.url("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A page joining once the drain is over (the node about to exit) is told to move too.
    let mut after = common::Client::connect(&ws).await;
    after.until(|m| matches!(m.body, Some(S::Moving(_)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_cluster_secret_is_refused_and_logged_why() {
    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;

    // Joining with another secret: refused at start with a clear error.
    let e = cluster::build(&redis.url(), "intruder", "another-cluster-secret-xyz")
        .await
        .map(|_| ())
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("VENUE_CLUSTER_SECRET"), "{e}");
    assert_eq!(a.live().await, ["a"]);

    // Its internal calls are 401 with the reason; the cluster's own key passes.
    let stranger = NodeAuth::new(
        ClusterSecrets::derive(&Secret::new("another-cluster-secret-xyz")).node_auth,
        NodeId::parse("intruder").unwrap(),
    );
    let friend = NodeAuth::new(
        ClusterSecrets::derive(&Secret::new(SECRET)).node_auth,
        NodeId::parse("b").unwrap(),
    );
    let now = venue_gateway::cluster::unix_ms() / 1000;
    let http = reqwest::Client::new();
    let call = |auth: &NodeAuth| {
        let mut req = http.get(a.url("/internal/node"));
        for (name, value) in auth.headers(now) {
            req = req.header(name, value);
        }
        req.send()
    };
    let refused = call(&stranger).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let why: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert!(
        why["error"]
            .as_str()
            .unwrap()
            .contains("another cluster secret"),
        "{why}"
    );
    let none = http.get(a.url("/internal/node")).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let ok = call(&friend).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let info: NodeInfo = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(info.node_id, "a");

    // A registration sealed with another secret is not listed (and is reported apart).
    let conn = venue_gateway::cluster::connect(&Secret::new(redis.url()), None)
        .await
        .unwrap();
    Registry::new(conn, stranger)
        .announce(&info_of("intruder", CLUSTER_PROTOCOL_VERSION))
        .await
        .unwrap();
    let view = a.cluster.nodes().await.unwrap();
    assert_eq!(
        view.live
            .iter()
            .map(|n| n.node_id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(view.rejected.len(), 1, "{view:?}");
    assert_eq!(view.rejected[0].0, "intruder");
}

fn info_of(id: &str, protocol: ProtocolVersion) -> NodeInfo {
    NodeInfo {
        node_id: id.into(),
        internal_url: format!("http://{id}.invalid"),
        protocol,
        started_at_ms: 1,
        sent_at_ms: 1,
        ready: true,
        draining: false,
        public_url: None,
        max_viewers: 0,
        load: Load::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_minor_versions_coexist_and_another_major_is_refused() {
    let redis = RedisServer::start();
    let conn = venue_gateway::cluster::connect(&Secret::new(redis.url()), None)
        .await
        .unwrap();
    let auth = |id: &str| {
        NodeAuth::new(
            ClusterSecrets::derive(&Secret::new(SECRET)).node_auth,
            NodeId::parse(id).unwrap(),
        )
    };
    let newer_minor = ProtocolVersion {
        major: CLUSTER_PROTOCOL_VERSION.major,
        minor: CLUSTER_PROTOCOL_VERSION.minor + 1,
    };
    Registry::new(conn.clone(), auth("newer"))
        .announce(&info_of("newer", newer_minor))
        .await
        .unwrap();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    assert_eq!(a.live().await, ["a", "newer"]);

    let next_major = ProtocolVersion {
        major: CLUSTER_PROTOCOL_VERSION.major + 1,
        minor: 0,
    };
    Registry::new(conn, auth("future"))
        .announce(&info_of("future", next_major))
        .await
        .unwrap();
    let e = cluster::build(&redis.url(), "c", SECRET)
        .await
        .map(|_| ())
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("future") && e.contains(&next_major.to_string()) && e.contains("major"),
        "{e}"
    );
}

#[tokio::test]
async fn single_node_mode_is_ready_once_serving_and_has_no_cluster_parts() {
    let dir = tempfile::tempdir().unwrap();
    let app = venue_gateway::build_app(&common::config(dir.path()))
        .await
        .unwrap();
    assert!(app.cluster.is_none() && app.drainer().is_none());
    let readyz = |router: axum::Router| async move {
        router
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        readyz(app.router.clone()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let router = app.router.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    assert_eq!(
        get(&format!("http://{addr}/readyz")).await,
        (StatusCode::OK, "ready\n".into())
    );
    let internal = router
        .clone()
        .oneshot(Request::get("/internal/node").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_ne!(internal.status(), StatusCode::OK);
    assert_ne!(internal.status(), StatusCode::UNAUTHORIZED);
    let (_, metrics) = get(&format!("http://{addr}/metrics")).await;
    assert!(!metrics.contains("venue_cluster_"), "{metrics}");
    // The data dir keeps its own secrets as before.
    for file in ["admin-token", "ip-salt"] {
        let exists = dir.path().join(file).exists();
        assert_eq!(exists, file == "ip-salt", "{file}");
    }
    assert!(!dir.path().join("node_id").exists());
}

/// A str0m viewer over WHEP with the `venue` data channel: counts what it hears on it.
#[derive(Default)]
struct Heard {
    channel: Option<str0m::channel::ChannelId>,
    snapshot: bool,
    moving: usize,
}

fn drive(
    peer: &mut venue_tests::peer::LoopbackPeer,
    heard: &mut Heard,
    secs: u64,
    done: impl Fn(&Heard) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        peer.step(|_, e| match e {
            str0m::Event::ChannelOpen(id, label) if label == "venue" => heard.channel = Some(id),
            str0m::Event::ChannelData(d) => {
                match venue_gateway::hub::codec::decode_server(&d.data).map(|m| m.body) {
                    Ok(Some(S::Snapshot(_))) => heard.snapshot = true,
                    Ok(Some(S::Moving(_))) => heard.moving += 1,
                    _ => {}
                }
            }
            _ => {}
        })
        .unwrap();
        if done(heard) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_channel_viewer_is_told_to_move_once_and_a_drain_gives_up_at_its_timeout() {
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use venue_proto::Message;
    use venue_proto::v1;

    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let mut peer = venue_tests::peer::LoopbackPeer::new(false).unwrap();
    let mut api = peer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_channel("venue".into());
    let (offer, pending) = api.apply().unwrap();
    let res = reqwest::Client::new()
        .post(a.url("/api/whep/main"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let answer = SdpAnswer::from_sdp_string(&res.text().await.unwrap()).unwrap();
    peer.rtc.sdp_api().accept_answer(pending, answer).unwrap();

    let joined = tokio::task::spawn_blocking(move || {
        let mut heard = Heard::default();
        assert!(drive(&mut peer, &mut heard, 15, |h| h.channel.is_some()));
        let hello = v1::ClientMessage {
            body: Some(v1::client_message::Body::Hello(v1::ClientHello {
                protocol_version: venue_proto::PROTOCOL_VERSION,
                display_name: "Rtc".into(),
                admin_token: String::new(),
            })),
        }
        .encode_to_vec();
        let id = heard.channel.unwrap();
        peer.rtc.channel(id).unwrap().write(true, &hello).unwrap();
        assert!(drive(&mut peer, &mut heard, 10, |h| h.snapshot));
        (peer, heard)
    });
    let (mut peer, mut heard) = joined.await.unwrap();

    let drainer = a.drainer.clone();
    let drain = tokio::spawn(async move { drainer.run().await });
    let (told, heard) = tokio::task::spawn_blocking(move || {
        let told = drive(&mut peer, &mut heard, 10, |h| h.moving > 0);
        // Keep listening a while: the notice comes once.
        drive(&mut peer, &mut heard, 1, |_| false);
        (told, heard)
    })
    .await
    .unwrap();
    assert!(told, "the data-channel viewer heard the moving notice");
    assert_eq!(heard.moving, 1, "once");
    // The viewer's session stays (it did not move): the drain ends at its 5 s timeout.
    let outcome = tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.timed_out && outcome.remaining >= 1, "{outcome:?}");
    assert!(outcome.took >= Duration::from_secs(5), "{outcome:?}");
}
