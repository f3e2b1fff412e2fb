//! Cluster mode, the living room across nodes (issue 11 item 6): two or three in-process
//! nodes on one PostgreSQL database and one Redis (both real, started by the test). One node
//! owns the room's hub (lease `hub:{room}`); the others forward their clients' inputs to it
//! and fan its frames out. Senders are WebSocket clients; receivers are a str0m data-channel
//! viewer (WHEP on another node: real ICE, DTLS, SCTP on loopback) and WebSocket clients.
//! Waits are bounded reads or polls with a deadline, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{self, Node, RedisServer, SECRET, wait_for};
use common::{ADMIN, Client, chat};
use serde_json::{Value, json};
use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind};
use venue_gateway::cluster::lease::Lease;
use venue_gateway::config::Secret;
use venue_gateway::hub::codec::decode_server;
use venue_gateway::hub::limits::Rate;
use venue_proto::Message;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as C;
use venue_proto::v1::event::Kind as E;
use venue_proto::v1::server_message::Body as S;
use venue_tests::peer::LoopbackPeer;
use venue_tests::postgres::Postgres;

/// Node `id` on `redis` and `database`, served; chat limits raised for the latency run.
async fn node(redis: &str, database: &str, id: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = cluster::node_config(dir.path(), redis, id, SECRET);
    config.database.url = Some(Secret::new(database));
    config.cluster.internal_url = Some(format!("http://{addr}"));
    config.interaction.limits.chat = Rate {
        per_second: 50,
        burst: 50,
    };
    let app = venue_gateway::build_app(&config).await.unwrap();
    cluster::serve(app, listener, dir)
}

fn ws_url(node: &Node) -> String {
    format!("ws://{}/api/rooms/main/ws", node.addr)
}

/// The id of room `main`.
async fn main_room(node: &Node) -> i64 {
    let rooms = node.state.store.rooms().await.unwrap();
    rooms.iter().find(|r| r.name == "main").unwrap().id.0
}

/// The node id holding room `main`'s hub lease, if any.
async fn owner(node: &Node) -> Option<String> {
    let room = main_room(node).await;
    let holder = Lease::holder(node.cluster.redis(), &format!("hub:{room}"))
        .await
        .ok()??;
    holder.split_once('/').map(|(n, _)| n.to_owned())
}

async fn wait_owner(node: &Node) -> String {
    wait_for(Duration::from_secs(10), "a hub owner", || async {
        owner(node).await.is_some()
    })
    .await;
    owner(node).await.unwrap()
}

/// Reads until a chat with `text` arrives.
async fn until_chat(c: &mut Client, text: &str) {
    c.until_event(|e| matches!(e, E::Chat(m) if m.text == text))
        .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_sticker_and_cursor_from_a_reach_b_in_order_within_300_ms() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let a = node(&redis.url(), &database, "node-a").await;
    let b = node(&redis.url(), &database, "node-b").await;
    let owner_node = wait_owner(&a).await;
    println!("hub owner: {owner_node}");

    let mut ann = Client::join(&ws_url(&a), "Ann").await;
    let mut bob = Client::join(&ws_url(&b), "Bob").await;
    let ann_id = ann.user_id();
    // Each sees the other (B's client sees a user of A: one room across nodes).
    let users = &bob.snapshot.as_ref().unwrap().users;
    assert!(
        users
            .iter()
            .any(|u| u.display_name == "Ann" && u.id == ann_id)
    );
    ann.saw_event(|e| matches!(e, E::UserJoined(u) if u.display_name == "Bob"))
        .await;
    // Each node counts its own clients (metrics sum over nodes; a drain waits for its own).
    for n in [&a, &b] {
        let hub = n.state.state.hub("main").await.unwrap().unwrap();
        assert_eq!(hub.stats().await.unwrap().users, 1);
    }

    // Chat, sticker, chat, cursor from Ann on A; Bob on B gets them in order, each fast.
    let start = Instant::now();
    ann.send(chat("first")).await;
    ann.send(C::Sticker(v1::PlaceSticker {
        sticker_id: "heart".into(),
        x: 0.4,
        y: 0.6,
        rotation_deg: 15.0,
        scale: 1.5,
    }))
    .await;
    ann.send(chat("second")).await;
    ann.send(C::Cursor(v1::CursorMove { x: 0.25, y: 0.5 }))
        .await;
    let mut order = Vec::new();
    let mut cursor_at = None;
    while order.len() < 3 || cursor_at.is_none() {
        let m = bob.next().await.expect("a frame from the owner");
        let Some(S::Batch(batch)) = m.body else {
            continue;
        };
        if batch
            .cursors
            .iter()
            .any(|c| c.user_id == ann_id && c.x == 0.25)
        {
            cursor_at.get_or_insert(start.elapsed());
        }
        for kind in batch.events.into_iter().filter_map(|e| e.kind) {
            match kind {
                E::Chat(m) => order.push(m.text),
                E::StickerPlaced(s) => {
                    assert_eq!((s.sticker_id.as_str(), s.user_id), ("heart", ann_id));
                    order.push("sticker".into());
                }
                _ => {}
            }
        }
    }
    let all = start.elapsed();
    println!("chat+sticker+chat+cursor A → B: all within {all:?}, cursor {cursor_at:?}");
    assert_eq!(order, ["first", "sticker", "second"]);
    assert!(all < Duration::from_millis(300), "took {all:?}");

    // Cross-node latency, 200 chats each (debug build, this box), sent every 37 ms so that
    // sends fall at every phase of the owner's 50 ms tick: from the owner's node to an edge
    // (one Redis hop), and from an edge to another edge (two hops: edge → owner → edge).
    let c = node(&redis.url(), &database, "node-c").await;
    let mut cy = Client::join(&ws_url(&c), "Cy").await;
    report(
        "owner node A → edge B",
        latency(&mut ann, &mut bob, 200).await,
    );
    report("edge B → edge C", latency(&mut bob, &mut cy, 200).await);
}

fn report(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "cross-node chat latency {what}, {} messages: p50 {p50:?} p99 {p99:?} max {:?} (tick 50 ms)",
        lat.len(),
        lat[lat.len() - 1]
    );
    assert!(p99 < Duration::from_millis(300), "{what}: p99 {p99:?}");
}

/// Sends `n` chats from `from` every 37 ms while `to` reads; returns each one's latency.
async fn latency(from: &mut Client, to: &mut Client, n: usize) -> Vec<Duration> {
    let tag = format!("lat-{}-", from.user_id());
    let sending = async {
        let mut sent = Vec::new();
        let mut every = tokio::time::interval(Duration::from_millis(37));
        for i in 0..n {
            every.tick().await;
            sent.push(Instant::now());
            from.send(chat(&format!("{tag}{i}"))).await;
        }
        sent
    };
    let receiving = async {
        let mut got = vec![None; n];
        while got.iter().any(Option::is_none) {
            let m = to.next().await.expect("frames keep coming");
            let at = Instant::now();
            let Some(S::Batch(batch)) = m.body else {
                continue;
            };
            for kind in batch.events.into_iter().filter_map(|e| e.kind) {
                if let E::Chat(m) = kind
                    && let Some(i) = m.text.strip_prefix(&tag)
                {
                    got[i.parse::<usize>().unwrap()] = Some(at);
                }
            }
        }
        to.log.clear();
        got
    };
    let (sent, got) = tokio::join!(sending, receiving);
    sent.iter()
        .zip(got)
        .map(|(s, g)| g.unwrap().duration_since(*s))
        .collect()
}

/// `POST /api/admin/rooms/main/moderation` on `node`; returns the status.
async fn moderate(node: &Node, body: Value) -> u16 {
    reqwest::Client::new()
        .post(node.url("/api/admin/rooms/main/moderation"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn users(node: &Node) -> Value {
    let body = reqwest::Client::new()
        .get(node.url("/api/admin/rooms/main/users"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ban_on_c_holds_on_a_and_b_and_a_name_taken_on_a_is_refused_on_b() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let a = node(&redis.url(), &database, "node-a").await;
    let b = node(&redis.url(), &database, "node-b").await;
    let c = node(&redis.url(), &database, "node-c").await;
    println!("hub owner: {}", wait_owner(&a).await);

    let mut ann = Client::join(&ws_url(&a), "Ann").await;
    let ann_id = ann.user_id();

    // The name is taken cluster-wide: "ann" on B is refused (the client stays, unnamed).
    let mut bob = Client::connect(&ws_url(&b)).await;
    bob.hello("ann", "").await;
    let notice = bob.until_notice().await;
    assert_eq!(notice.code(), v1::NoticeCode::NameRejected, "{notice:?}");
    assert!(
        bob.hello
            .as_ref()
            .is_some_and(|h| h.display_name.is_empty())
    );

    // C's admin API sees the users of the whole room, and its ban reaches Ann on A.
    let listed = users(&c).await;
    assert!(
        listed.to_string().contains("\"Ann\""),
        "C lists Ann: {listed}"
    );
    let status = moderate(
        &c,
        json!({"action": "ban", "user_id": ann_id, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, 204);
    let notice = ann.until_notice().await;
    assert_eq!(notice.code(), v1::NoticeCode::Banned, "{notice:?}");
    assert_eq!(ann.next().await, None, "Ann's socket is closed");

    // The ban follows the (hashed) address on every node: new clients on A and B are refused.
    for n in [&a, &b] {
        let mut again = Client::connect(&ws_url(n)).await;
        again.hello("Ann2", "").await;
        let notice = again.until_notice().await;
        assert_eq!(notice.code(), v1::NoticeCode::Banned, "{notice:?}");
    }
    // An unknown user is a 404 from any node.
    assert_eq!(
        moderate(&b, json!({"action": "kick", "user_id": 9999})).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hub_owner_crashes_and_another_node_owns_the_room_within_10_s() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let mut nodes = vec![
        node(&redis.url(), &database, "node-a").await,
        node(&redis.url(), &database, "node-b").await,
        node(&redis.url(), &database, "node-c").await,
    ];
    let first = wait_owner(&nodes[0]).await;
    println!("hub owner: {first}");
    let i = nodes
        .iter()
        .position(|n| n.cluster.settings().node_id.as_str() == first)
        .unwrap();
    let dead = nodes.remove(i);
    let (x, y) = (&nodes[0], &nodes[1]);

    let mut ann = Client::join(&ws_url(x), "Ann").await;
    let mut bob = Client::join(&ws_url(y), "Bob").await;
    for k in 0..3 {
        ann.send(chat(&format!("before {k}"))).await;
        until_chat(&mut bob, &format!("before {k}")).await;
    }
    // Stored (PostgreSQL) before the crash.
    let room = main_room(x).await;
    wait_for(Duration::from_secs(5), "chat stored", || async {
        let l = x
            .state
            .store
            .load_interaction(venue_gateway::ids::RoomId(room), 100, 100, 0)
            .await
            .unwrap();
        l.chat.len() >= 3
    })
    .await;

    let crashed = Instant::now();
    dead.crash();
    drop(dead);
    let took = wait_for(Duration::from_secs(10), "another hub owner", || async {
        owner(x).await.is_some_and(|o| o != first)
    })
    .await;
    let new_owner = owner(x).await.unwrap();
    println!("hub owner {first} crashed: {new_owner} owns the room after {took:?}");
    assert!(took < Duration::from_secs(10));
    // `venue_cluster_hubs_owned`: the new owner counts the room, the other survivor not.
    for n in [x, y] {
        let owns = n.cluster.settings().node_id.as_str() == new_owner;
        wait_for(Duration::from_secs(2), "hubs_owned gauge", || async {
            n.state.metrics.cluster().hubs_owned.get() == i64::from(owns)
        })
        .await;
    }

    // The survivors' clients are re-announced to the new owner: a fresh hello and a snapshot
    // holding the chat history from the database.
    for c in [&mut ann, &mut bob] {
        c.snapshot = None;
        c.log.clear();
        let s = c.until(|m| matches!(m.body, Some(S::Snapshot(_)))).await;
        let Some(S::Snapshot(s)) = s.body else {
            unreachable!()
        };
        let texts: Vec<&str> = s.chat.iter().map(|m| m.text.as_str()).collect();
        for k in 0..3 {
            assert!(texts.contains(&format!("before {k}").as_str()), "{texts:?}");
        }
    }
    let rejoined = crashed.elapsed();
    println!("clients on the surviving nodes rejoined {rejoined:?} after the crash");
    // And keep chatting across the survivors, both ways, under their names.
    ann.send(chat("after")).await;
    let E::Chat(m) = bob
        .until_event(|e| matches!(e, E::Chat(m) if m.text == "after"))
        .await
    else {
        unreachable!()
    };
    assert_eq!(m.display_name, "Ann");
    bob.send(chat("reply")).await;
    until_chat(&mut ann, "reply").await;
    // A newcomer sees the history, before and after the crash.
    let late = Client::join(&ws_url(y), "Cy").await;
    let texts: Vec<String> = late
        .snapshot
        .unwrap()
        .chat
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(texts.contains(&"before 0".to_owned()) && texts.contains(&"after".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_redis_restart_clients_on_two_nodes_chat_again_without_a_node_restart() {
    let database = Postgres::shared().create_database().unwrap();
    let mut redis = RedisServer::start();
    let a = node(&redis.url(), &database, "node-a").await;
    let b = node(&redis.url(), &database, "node-b").await;
    wait_owner(&a).await;
    let mut ann = Client::join(&ws_url(&a), "Ann").await;
    let mut bob = Client::join(&ws_url(&b), "Bob").await;
    ann.send(chat("before")).await;
    until_chat(&mut bob, "before").await;

    // Redis restarts empty: leases, fencing counters and subscriptions are gone.
    let restarted = Instant::now();
    redis.restart();
    // The empty Redis has no owner lease: the owner notices at its next renewal and a node
    // takes the lease again (fencing counter restarted). Chat keeps crossing, both ways,
    // once the edges follow the new owner (messages are lost while there is none).
    let owned = wait_for(
        Duration::from_secs(15),
        "an owner in the new Redis",
        || async { owner(&a).await.is_some() },
    )
    .await;
    let first = cross(&mut ann, &mut bob, "after", restarted).await;
    println!(
        "after a Redis restart: hub owner again after {owned:?}, chat crosses after {first:?}"
    );
    cross(&mut bob, &mut ann, "back", restarted).await;
}

/// Sends chats from `from` until one reaches `to` (each given 500 ms); returns the time since
/// `since`. Panics after 20 s.
async fn cross(from: &mut Client, to: &mut Client, tag: &str, since: Instant) -> Duration {
    for k in 0.. {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "no {tag} chat crossed"
        );
        let text = format!("{tag} {k}");
        from.send(chat(&text)).await;
        let wait = to.until_event(|e| matches!(e, E::Chat(m) if m.text == text));
        if tokio::time::timeout(Duration::from_millis(500), wait)
            .await
            .is_ok()
        {
            break;
        }
    }
    since.elapsed()
}

/// A loopback str0m viewer with the `venue` channel; what it heard, with arrival times.
struct Viewer {
    peer: LoopbackPeer,
    channel: Option<ChannelId>,
    snapshot: Option<v1::Snapshot>,
    /// Chat texts, "sticker", "cursor" (a cursor at x = 0.25), in arrival order.
    seen: Vec<(Instant, String)>,
}

impl Viewer {
    fn send(&mut self, body: C) {
        let bytes = v1::ClientMessage { body: Some(body) }.encode_to_vec();
        let id = self.channel.expect("channel open");
        let mut channel = self.peer.rtc.channel(id).unwrap();
        channel.write(true, &bytes).unwrap();
    }

    fn step(&mut self) {
        let Viewer {
            peer,
            channel,
            snapshot,
            seen,
        } = self;
        peer.step(|_, e| match e {
            Event::ChannelOpen(id, label) if label == "venue" => *channel = Some(id),
            Event::ChannelData(d) => {
                let at = Instant::now();
                match decode_server(&d.data).ok().and_then(|m| m.body) {
                    Some(S::Snapshot(s)) => *snapshot = Some(s),
                    Some(S::Batch(b)) => {
                        if b.cursors.iter().any(|c| c.x == 0.25) {
                            seen.push((at, "cursor".into()));
                        }
                        for kind in b.events.into_iter().filter_map(|e| e.kind) {
                            match kind {
                                E::Chat(m) => seen.push((at, m.text)),
                                E::StickerPlaced(_) => seen.push((at, "sticker".into())),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        })
        .unwrap();
    }

    /// Steps until `done` or `secs`; returns whether `done` became true.
    fn drive(&mut self, secs: u64, done: impl Fn(&Viewer) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    fn saw(&self, what: &str) -> bool {
        self.seen.iter().any(|(_, s)| s == what)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_channel_viewer_on_b_gets_chat_sticker_and_cursor_from_a_in_order() {
    let database = Postgres::shared().create_database().unwrap();
    let redis = RedisServer::start();
    let a = node(&redis.url(), &database, "node-a").await;
    let b = node(&redis.url(), &database, "node-b").await;
    println!("hub owner: {}", wait_owner(&a).await);

    // A WHEP viewer with the `venue` channel on B.
    let mut viewer = Viewer {
        peer: LoopbackPeer::new(false).unwrap(),
        channel: None,
        snapshot: None,
        seen: Vec::new(),
    };
    let mut api = viewer.peer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_channel("venue".into());
    let (offer, pending) = api.apply().unwrap();
    let res = reqwest::Client::new()
        .post(b.url("/api/whep/main"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let answer = res.text().await.unwrap();
    viewer
        .peer
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let mut ann = Client::join(&ws_url(&a), "Ann").await;
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let dc = tokio::task::spawn_blocking(move || {
        assert!(
            viewer.drive(15, |v| v.channel.is_some()),
            "venue channel opens"
        );
        viewer.send(C::Hello(v1::ClientHello {
            protocol_version: venue_proto::PROTOCOL_VERSION,
            display_name: "Rtc".into(),
            admin_token: String::new(),
        }));
        assert!(
            viewer.drive(10, |v| v.snapshot.is_some()),
            "hello and snapshot over the data channel, from the owner"
        );
        let _ = ready_tx.send(());
        let got = viewer.drive(15, |v| v.saw("second") && v.saw("cursor"));
        (viewer, got)
    });
    ready.await.unwrap();
    ann.until_event(|e| matches!(e, E::UserJoined(u) if u.display_name == "Rtc"))
        .await;

    let start = Instant::now();
    ann.send(chat("first")).await;
    ann.send(C::Sticker(v1::PlaceSticker {
        sticker_id: "heart".into(),
        x: 0.4,
        y: 0.6,
        rotation_deg: 15.0,
        scale: 1.5,
    }))
    .await;
    ann.send(chat("second")).await;
    ann.send(C::Cursor(v1::CursorMove { x: 0.25, y: 0.5 }))
        .await;
    let (viewer, got) = dc.await.unwrap();
    assert!(got, "the viewer on B got everything: {:?}", viewer.seen);
    let order: Vec<&str> = viewer
        .seen
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| ["first", "sticker", "second"].contains(s))
        .collect();
    assert_eq!(order, ["first", "sticker", "second"]);
    let last = viewer
        .seen
        .iter()
        .map(|(at, _)| at.duration_since(start))
        .max()
        .unwrap();
    println!("WebSocket on A → data channel on B: chat, sticker, chat, cursor all within {last:?}");
    assert!(last < Duration::from_millis(300), "took {last:?}");
}
