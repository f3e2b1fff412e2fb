//! Cluster mode on a real Redis: the bus carries a room change across nodes once and measures
//! its latency; leases (acquisition, renewal, expiry takeover, fencing); a Redis restart is
//! survived by the bus (with a resync) and the heartbeat without restarting the nodes. Each
//! test runs its own Debian `redis-server` on a free loopback port (see `common::cluster`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{self, RedisServer, SECRET, wait_for};
use tokio::sync::broadcast;
use venue_gateway::bus::{Announcement, RoomChange};
use venue_gateway::cluster::lease::Lease;
use venue_gateway::config::Secret;
use venue_gateway::config::cluster::NodeId;
use venue_gateway::ids::RoomId;

async fn next_change(rx: &mut broadcast::Receiver<RoomChange>, within: Duration) -> RoomChange {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a room change in time")
        .expect("receiver open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_change_crosses_nodes_once_and_its_latency_is_measured() {
    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    let (bus_a, bus_b) = (a.cluster.bus(), b.cluster.bus());
    let (mut on_a, mut on_b) = (bus_a.room_changes(), bus_b.room_changes());

    bus_a.publish(Announcement::RoomChanged { room: RoomId(7) });
    let near = Duration::from_secs(2);
    assert_eq!(
        next_change(&mut on_a, near).await,
        RoomChange::Room(RoomId(7))
    );
    assert_eq!(
        next_change(&mut on_b, near).await,
        RoomChange::Room(RoomId(7))
    );
    // The sender applied it once: its own echo from Redis is ignored.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.recv())
            .await
            .is_err(),
        "no second delivery on the sender"
    );

    // Latency, publish on A → receive on B (another Redis connection, another node).
    let mut lags = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        bus_a.publish(Announcement::RoomChanged { room: RoomId(i) });
        assert_eq!(
            next_change(&mut on_b, near).await,
            RoomChange::Room(RoomId(i))
        );
        lags.push(t.elapsed());
    }
    lags.sort();
    let p = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    println!(
        "bus latency A → B over loopback Redis, {} messages: p50 {:?}, p99 {:?}, max {:?}",
        lags.len(),
        p(0.5),
        p(0.99),
        lags[lags.len() - 1]
    );
    assert!(p(0.99) < Duration::from_millis(150), "p99 {:?}", p(0.99));
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("venue_cluster_bus_lag_seconds_count "))
        .expect("the lag histogram is exposed")
        .parse()
        .unwrap();
    assert!(count >= 301, "{count}");
    assert!(metrics.contains("\nvenue_cluster_bus_dropped_total 0\n"));
    assert!(metrics.contains("\nvenue_cluster_bus_rejected_total 0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_the_bus_resyncs_and_the_heartbeat_recovers_without_a_node_restart() {
    let mut redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    wait_for(Duration::from_secs(3), "a and b listed", || async {
        b.live().await == ["a", "b"]
    })
    .await;
    let (mut on_a, mut on_b) = (
        a.cluster.bus().room_changes(),
        b.cluster.bus().room_changes(),
    );

    // Kill -9 and start again on the same port: everything Redis held is gone.
    redis.restart();
    let t = Instant::now();
    assert_eq!(
        next_change(&mut on_b, Duration::from_secs(10)).await,
        RoomChange::Resync
    );
    assert_eq!(
        next_change(&mut on_a, Duration::from_secs(10)).await,
        RoomChange::Resync
    );
    println!("both buses resynced {:?} after the restart", t.elapsed());
    // The heartbeats write the registry again.
    let took = wait_for(Duration::from_secs(6), "a and b listed again", || async {
        a.live().await == ["a", "b"] && b.live().await == ["a", "b"]
    })
    .await;
    println!("registry whole again {took:?} after the resync");
    // And the bus carries messages again.
    a.cluster
        .bus()
        .publish(Announcement::RoomChanged { room: RoomId(9) });
    assert_eq!(
        next_change(&mut on_b, Duration::from_secs(3)).await,
        RoomChange::Room(RoomId(9))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_renews_and_is_taken_over_after_its_holder_stops() {
    let redis = RedisServer::start();
    let conn = venue_gateway::cluster::connect(&Secret::new(redis.url()), None)
        .await
        .unwrap();
    let (a, b) = (NodeId::parse("a").unwrap(), NodeId::parse("b").unwrap());
    let ttl = Duration::from_millis(600);

    let first = Lease::acquire(&conn, "hub:main", &a, ttl)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert!(first.token().starts_with("a/"));
    assert!(
        Lease::acquire(&conn, "hub:main", &b, ttl)
            .await
            .unwrap()
            .is_none(),
        "one holder at a time"
    );
    assert_eq!(
        Lease::holder(&conn, "hub:main").await.unwrap().as_deref(),
        Some(first.token())
    );
    // Another name is another lease.
    assert!(
        Lease::acquire(&conn, "program:main", &b, ttl)
            .await
            .unwrap()
            .is_some()
    );

    // Renewed past its first TTL: still a's.
    let renewed_at = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(ttl / 2).await;
        assert!(first.renew().await.unwrap());
    }
    assert!(renewed_at.elapsed() > ttl);
    assert!(
        Lease::acquire(&conn, "hub:main", &b, ttl)
            .await
            .unwrap()
            .is_none()
    );

    // a stops renewing: b takes over within the TTL (plus its polling), with a larger fence.
    let stopped = Instant::now();
    let mut second = None;
    while second.is_none() {
        assert!(
            stopped.elapsed() < ttl + Duration::from_millis(500),
            "no takeover"
        );
        second = Lease::acquire(&conn, "hub:main", &b, ttl).await.unwrap();
        if second.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let second = second.unwrap();
    println!(
        "taken over {:?} after the holder stopped",
        stopped.elapsed()
    );
    assert!(second.fence() > first.fence());
    // The old holder can neither renew nor release what is no longer its own.
    assert!(!first.renew().await.unwrap());
    assert!(!first.release().await.unwrap());
    assert_eq!(
        Lease::holder(&conn, "hub:main").await.unwrap().as_deref(),
        Some(second.token())
    );
    assert!(second.release().await.unwrap());
    assert_eq!(Lease::holder(&conn, "hub:main").await.unwrap(), None);

    // keep() renews in the background; aborting it is a crash: lost after the TTL.
    let kept = Lease::acquire(&conn, "timer:slot-1", &a, ttl)
        .await
        .unwrap()
        .unwrap();
    let fence = kept.fence();
    let (held, task) = kept.keep();
    tokio::time::sleep(ttl * 3).await;
    assert!(*held.borrow(), "kept alive by renewals");
    assert!(
        Lease::acquire(&conn, "timer:slot-1", &b, ttl)
            .await
            .unwrap()
            .is_none()
    );
    task.abort();
    let taken = wait_for(ttl * 2, "takeover after the keeper stopped", || {
        let conn = conn.clone();
        let b = b.clone();
        async move {
            Lease::acquire(&conn, "timer:slot-1", &b, ttl)
                .await
                .unwrap()
                .is_some_and(|l| l.fence() > fence)
        }
    })
    .await;
    assert!(taken <= ttl + Duration::from_millis(200), "{taken:?}");
}
