//! Cluster mode, things that must happen once cluster-wide: [`Bus::claim_once`] (the slot
//! webhooks every node's schedule timer computes are announced by one node) and
//! leadership of a job (one node leads; when it dies another takes over). Real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{self, RedisServer, SECRET};
use venue_gateway::cluster::leader::LEADER_TTL;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_won_by_exactly_one_node() {
    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    let (bus_a, bus_b) = (a.cluster.bus(), b.cluster.bus());
    for i in 0..50 {
        let key = format!("slot:{i}:started:100:200");
        let (wa, wb) = tokio::join!(bus_a.claim_once(key.clone()), bus_b.claim_once(key.clone()));
        assert!(wa ^ wb, "exactly one node wins {key}: a={wa} b={wb}");
        // Asked again (the same edge seen by a later sweep): nobody wins.
        assert!(!bus_a.claim_once(key.clone()).await && !bus_b.claim_once(key).await);
    }
    // Single-node mode: the local bus always grants.
    let local = venue_gateway::bus::LocalBus::new(
        venue_gateway::webhooks::Webhooks::start(&Default::default()).unwrap(),
    );
    use venue_gateway::bus::Bus;
    assert!(local.claim_once("k".into()).await && local.claim_once("k".into()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_a_job_and_another_takes_over_when_it_dies() {
    let redis = RedisServer::start();
    let a = cluster::node(&redis.url(), "a", SECRET).await;
    let lead_a = a.cluster.leadership("job");
    let start = Instant::now();
    while !lead_a.leads() {
        assert!(start.elapsed() < Duration::from_secs(5), "a leads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = cluster::node(&redis.url(), "b", SECRET).await;
    let lead_b = b.cluster.leadership("job");
    tokio::time::sleep(LEADER_TTL / 2).await;
    assert!(lead_a.leads() && !lead_b.leads(), "one leader");
    a.crash();
    let died = Instant::now();
    while !lead_b.leads() {
        assert!(
            died.elapsed() < LEADER_TTL * 2,
            "b takes over within two TTLs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "leadership handed over {:?} after the leader died (TTL {LEADER_TTL:?})",
        died.elapsed()
    );
}
