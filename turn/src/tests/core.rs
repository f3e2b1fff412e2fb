#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::client::{self, Client, Received};

const SECRET: &[u8] = b"shared-secret";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SFU: &str = "127.0.0.1:50000";
const RELAY: &str = "127.0.0.1:40000";

fn core() -> TurnCore {
    TurnCore::new(CoreConfig {
        secret: SECRET.to_vec(),
        policy: PeerPolicy {
            allowed: vec![a(SFU), a("[::1]:50000")],
            allow_public_peers: false,
        },
        ..CoreConfig::default()
    })
}

fn udp(c: &str) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: a(c),
    }
}

/// The single ToClient payload of `outs`.
fn reply(outs: &[Output]) -> Vec<u8> {
    let r: Vec<&Vec<u8>> = outs
        .iter()
        .filter_map(|o| match o {
            Output::ToClient { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(r.len(), 1, "{outs:?}");
    r[0].clone()
}

fn send(core: &mut TurnCore, now: SystemTime, from: &str, bytes: &[u8]) -> Vec<Output> {
    core.handle(now, Transport::Udp, a(from), bytes)
}

fn creds(id: &str, ttl: u64, now: SystemTime) -> Client {
    let (u, p) = crate::rest_credentials(SECRET, id, Duration::from_secs(ttl), now);
    Client::new(&u, &p)
}

/// 401 → learn nonce → Allocate → BindRelay → relay_bound → success; returns the client.
fn allocate(core: &mut TurnCore, now: SystemTime, from: &str, relay: &str, id: &str) -> Client {
    let mut c = creds(id, 3600, now);
    let r = reply(&send(core, now, from, &c.allocate()));
    assert_eq!(c.learn(&r), Some(401));
    let outs = send(core, now, from, &c.allocate());
    assert_eq!(
        outs,
        vec![Output::BindRelay {
            client: udp(from),
            ipv6: false
        }]
    );
    let outs = core.relay_bound(udp(from), Ok(a(relay)));
    match client::decode(&reply(&outs), &c.key()) {
        Received::Success {
            method,
            relayed,
            mapped,
            lifetime,
            integrity_ok,
        } => {
            assert_eq!(method, stun::method::ALLOCATE);
            assert_eq!(relayed, Some(a(relay)));
            assert_eq!(mapped, Some(a(from)));
            assert_eq!(lifetime, Some(600));
            assert!(integrity_ok);
        }
        other => panic!("{other:?}"),
    }
    c
}

fn code(core: &mut TurnCore, now: SystemTime, from: &str, req: &[u8]) -> Option<u16> {
    match client::decode(&reply(&send(core, now, from, req)), b"") {
        Received::Error { code, .. } => Some(code),
        Received::Success { .. } => None,
        other => panic!("{other:?}"),
    }
}

#[test]
fn binding_answers_xor_mapped_address() {
    let mut core = core();
    let mut c = Client::new("", "");
    let r = reply(&send(&mut core, t0(), "192.0.2.7:5000", &c.binding()));
    match client::decode(&r, b"") {
        Received::Success { mapped, .. } => assert_eq!(mapped, Some(a("192.0.2.7:5000"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn full_relay_flow_send_data_channel() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = allocate(&mut core, now, cl, RELAY, "sess-1");
    // No permission yet: Send is dropped.
    assert!(send(&mut core, now, cl, &c.send(a(SFU), b"x")).is_empty());
    assert_eq!(code(&mut core, now, cl, &c.create_permission(a(SFU))), None);
    let outs = send(&mut core, now, cl, &c.send(a(SFU), b"hello"));
    assert_eq!(
        outs,
        vec![Output::ToPeer {
            relay: a(RELAY),
            peer: a(SFU),
            bytes: b"hello".to_vec()
        }]
    );
    // Peer → client as a Data indication.
    let outs = core.handle_peer(now, a(RELAY), a(SFU), b"back");
    assert_eq!(
        client::decode(&reply(&outs), b""),
        Received::Data {
            peer: a(SFU),
            data: b"back".to_vec()
        }
    );
    // A peer without permission (other port is allowed for permission by IP, but the policy
    // refuses the port) is dropped.
    assert!(
        core.handle_peer(now, a(RELAY), a("127.0.0.1:22"), b"no")
            .is_empty()
    );
    // ChannelBind, then ChannelData both ways.
    assert_eq!(
        code(&mut core, now, cl, &c.channel_bind(0x4001, a(SFU))),
        None
    );
    let outs = send(
        &mut core,
        now,
        cl,
        &client::channel_data(0x4001, b"chan", false),
    );
    assert_eq!(
        outs,
        vec![Output::ToPeer {
            relay: a(RELAY),
            peer: a(SFU),
            bytes: b"chan".to_vec()
        }]
    );
    let outs = core.handle_peer(now, a(RELAY), a(SFU), b"chan-back");
    assert_eq!(
        client::decode(&reply(&outs), b""),
        Received::ChannelData {
            channel: 0x4001,
            data: b"chan-back".to_vec()
        }
    );
    // Unbound channel: dropped.
    assert!(
        send(
            &mut core,
            now,
            cl,
            &client::channel_data(0x4002, b"x", false)
        )
        .is_empty()
    );
    // Bad channel numbers → 400.
    assert_eq!(
        code(&mut core, now, cl, &c.channel_bind(0x3FFF, a(SFU))),
        Some(400)
    );
    assert_eq!(
        code(&mut core, now, cl, &c.channel_bind(0x5000, a(SFU))),
        Some(400)
    );
    // Same number, other peer → 400.
    assert_eq!(
        code(
            &mut core,
            now,
            cl,
            &c.channel_bind(0x4001, a("127.0.0.1:0"))
        ),
        Some(403)
    );
    let s = core.stats();
    assert_eq!((s.relayed_to_peer, s.relayed_to_client), (2, 2));
}

#[test]
fn credentials_missing_expired_forged_are_401() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    // Missing: unsigned Allocate → 401 with REALM and NONCE.
    let mut c = creds("u", 60, now);
    let r = reply(&send(&mut core, now, cl, &c.allocate()));
    assert_eq!(c.learn(&r), Some(401));
    assert_eq!(c.realm, "venue");
    assert!(!c.nonce.is_empty());
    // Expired: the username's expiry is in the past (nonce still fresh).
    let later = now + Duration::from_secs(120);
    let mut expired = creds("u", 60, now);
    let r = reply(&send(&mut core, later, cl, &expired.allocate()));
    expired.learn(&r);
    assert_eq!(code(&mut core, later, cl, &expired.allocate()), Some(401));
    // Forged: right shape, password from another secret.
    let (u, _) = crate::rest_credentials(SECRET, "u", Duration::from_secs(600), now);
    let mut forged = Client::new(&u, &crate::auth::rest_password(b"guess", &u));
    forged.realm = c.realm.clone();
    forged.nonce = c.nonce.clone();
    assert_eq!(code(&mut core, now, cl, &forged.allocate()), Some(401));
    // Forged expiry: a later expiry with the old password.
    let (u2, _) = crate::rest_credentials(SECRET, "u", Duration::from_secs(99_999), now);
    let mut stretched = Client::new(&u2, &c.password);
    stretched.realm = c.realm.clone();
    stretched.nonce = c.nonce.clone();
    assert_eq!(code(&mut core, now, cl, &stretched.allocate()), Some(401));
    // Oversize USERNAME (RFC 8489 §14.3: < 513 bytes) → 400, counted as malformed.
    let mut long = Client::new(&"9".repeat(600), "pw");
    long.realm = c.realm.clone();
    long.nonce = c.nonce.clone();
    assert_eq!(code(&mut core, now, cl, &long.allocate()), Some(400));
    // Not a REST username.
    let mut plain = Client::new("alice", "pw");
    plain.realm = c.realm.clone();
    plain.nonce = c.nonce.clone();
    assert_eq!(code(&mut core, now, cl, &plain.allocate()), Some(401));
    assert_eq!(core.allocation_count(), 0);
    assert!(core.stats().unauthorized >= 5);
    // The good one works, with MESSAGE-INTEGRITY-SHA256 too.
    c.sha256 = true;
    assert_eq!(
        send(&mut core, now, cl, &c.allocate()),
        vec![Output::BindRelay {
            client: udp(cl),
            ipv6: false
        }]
    );
}

#[test]
fn stale_nonce_is_438_with_a_fresh_nonce() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = creds("u", 7200, now);
    let req = c.allocate();
    c.learn(&reply(&send(&mut core, now, cl, &req)));
    let old = c.nonce.clone();
    let later = now + Duration::from_secs(601);
    let r = reply(&send(&mut core, later, cl, &c.allocate()));
    assert_eq!(c.learn(&r), Some(438));
    assert_ne!(c.nonce, old);
    assert!(matches!(
        send(&mut core, later, cl, &c.allocate())[..],
        [Output::BindRelay { .. }]
    ));
}

#[test]
fn allocate_errors_442_437_420() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = allocate(&mut core, now, cl, RELAY, "u");
    // A second Allocate on the same 5-tuple (new transaction) → 437.
    assert_eq!(code(&mut core, now, cl, &c.allocate()), Some(437));
    // IPv6 relay without IPv6 relays configured → 440.
    let mut v6 = Vec::new();
    stun::Builder::new(
        &mut v6,
        stun::method::ALLOCATE,
        stun::Class::Request,
        [9; 12],
    )
    .attr(stun::attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
    .attr(stun::attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0])
    .attr(stun::attr::USERNAME, c.username.as_bytes())
    .attr(stun::attr::REALM, c.realm.as_bytes())
    .attr(stun::attr::NONCE, c.nonce.as_bytes())
    .integrity(&c.key())
    .fingerprint();
    assert_eq!(code(&mut core, now, "198.51.100.1:6002", &v6), Some(440));
    // TCP relay → 442.
    let other = "198.51.100.1:6001";
    assert_eq!(
        code(&mut core, now, other, &c.allocate_transport(6)),
        Some(442)
    );
    // Refresh / CreatePermission without an allocation → 437.
    assert_eq!(code(&mut core, now, other, &c.refresh(600)), Some(437));
    assert_eq!(
        code(&mut core, now, other, &c.create_permission(a(SFU))),
        Some(437)
    );
    // Unknown comprehension-required attribute → 420 after authentication (an unsigned
    // request is challenged first), with UNKNOWN-ATTRIBUTES and MESSAGE-INTEGRITY.
    let signed = |c: &Client, typ: u16, txid: u8| {
        let mut out = Vec::new();
        stun::Builder::new(
            &mut out,
            stun::method::ALLOCATE,
            stun::Class::Request,
            [txid; 12],
        )
        .attr(stun::attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .attr(typ, b"????")
        .attr(stun::attr::USERNAME, c.username.as_bytes())
        .attr(stun::attr::REALM, c.realm.as_bytes())
        .attr(stun::attr::NONCE, c.nonce.as_bytes())
        .integrity(&c.key())
        .fingerprint();
        out
    };
    let r = reply(&send(&mut core, now, other, &signed(&c, 0x7777, 1)));
    let m = stun::Message::parse(&r).unwrap();
    assert_eq!(client::error_code(&m), Some(420));
    assert_eq!(
        m.get(stun::attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x77u8, 0x77][..])
    );
    assert!(m.check_integrity(&c.key()));
    // Unknown comprehension-optional attribute is ignored: the Allocate goes through.
    assert!(matches!(
        send(&mut core, now, other, &signed(&c, 0xC001, 2))[..],
        [Output::BindRelay { .. }]
    ));
    // Binding (unauthenticated) with an unknown comprehension-required attribute → 420.
    let mut out = Vec::new();
    stun::Builder::new(
        &mut out,
        stun::method::BINDING,
        stun::Class::Request,
        [3; 12],
    )
    .attr(0x7777, b"????")
    .fingerprint();
    assert_eq!(code(&mut core, now, other, &out), Some(420));
}

#[test]
fn refresh_lifetimes_and_delete() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = allocate(&mut core, now, cl, RELAY, "u");
    let lifetime = |core: &mut TurnCore, c: &mut Client, s: u32| match client::decode(
        &reply(&send(core, now, cl, &c.refresh(s))),
        &c.key(),
    ) {
        Received::Success {
            lifetime,
            integrity_ok,
            ..
        } => {
            assert!(integrity_ok);
            lifetime
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(lifetime(&mut core, &mut c, 99_999), Some(3600));
    assert_eq!(lifetime(&mut core, &mut c, 10), Some(600));
    assert_eq!(lifetime(&mut core, &mut c, 1200), Some(1200));
    let outs = send(&mut core, now, cl, &c.refresh(0));
    assert!(outs.contains(&Output::ReleaseRelay { relay: a(RELAY) }));
    assert_eq!(core.allocation_count(), 0);
    // Expiry without refresh.
    let _c = allocate(&mut core, now, cl, RELAY, "u");
    assert!(core.expire(now + Duration::from_secs(599)).is_empty());
    assert_eq!(
        core.expire(now + Duration::from_secs(600)),
        vec![Output::ReleaseRelay { relay: a(RELAY) }]
    );
}

#[test]
fn policy_refuses_loopback_private_metadata_with_403() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = allocate(&mut core, now, cl, RELAY, "u");
    for bad in [
        "10.0.0.1:5000",
        "192.168.1.1:5000",
        "169.254.169.254:80",
        "[fc00::1]:5000",
        "[fd00:ec2::254]:80",
        "8.8.8.8:53",
        "100.64.0.1:1",
    ] {
        assert_eq!(
            code(&mut core, now, cl, &c.create_permission(a(bad))),
            Some(403),
            "{bad}"
        );
        assert_eq!(
            code(&mut core, now, cl, &c.channel_bind(0x4000, a(bad))),
            Some(403),
            "{bad}"
        );
    }
    // 127.0.0.1 is allow-listed at port 50000 only: a permission or channel for another port
    // is 403, and a Send to it is dropped even with the per-IP permission installed.
    assert_eq!(
        code(&mut core, now, cl, &c.create_permission(a("127.0.0.1:22"))),
        Some(403)
    );
    assert_eq!(code(&mut core, now, cl, &c.create_permission(a(SFU))), None);
    assert_eq!(
        code(
            &mut core,
            now,
            cl,
            &c.channel_bind(0x4000, a("127.0.0.1:22"))
        ),
        Some(403)
    );
    assert!(send(&mut core, now, cl, &c.send(a("127.0.0.1:22"), b"x")).is_empty());
    // ::1 allow-listed at 50000; ::1 other port refused.
    assert_eq!(
        code(
            &mut core,
            now,
            cl,
            &c.channel_bind(0x4000, a("[::1]:50001"))
        ),
        Some(403)
    );
    assert_eq!(
        code(
            &mut core,
            now,
            cl,
            &c.channel_bind(0x4000, a("[::1]:50000"))
        ),
        None
    );
    assert!(core.stats().forbidden >= 16);
}

#[test]
fn per_user_allocation_quota_486() {
    let mut core = core();
    let now = t0();
    for i in 0..5 {
        allocate(
            &mut core,
            now,
            &format!("198.51.100.1:{}", 7000 + i),
            &format!("127.0.0.1:{}", 41000 + i),
            "same-user",
        );
    }
    let cl = "198.51.100.1:7999";
    let mut c = creds("same-user", 3600, now);
    let req = c.allocate();
    c.learn(&reply(&send(&mut core, now, cl, &req)));
    assert_eq!(code(&mut core, now, cl, &c.allocate()), Some(486));
    assert_eq!(core.stats().quota_refused, 1);
    // Another user is unaffected.
    allocate(&mut core, now, cl, "127.0.0.1:42000", "other-user");
    // Deleting one frees a slot.
    let mut c0 = creds("same-user", 3600, now);
    let req = c0.allocate();
    c0.learn(&reply(&send(&mut core, now, "198.51.100.1:7000", &req)));
    core.connection_closed(udp("198.51.100.1:7000"));
    let outs = send(&mut core, now, "198.51.100.1:7998", &c0.allocate());
    assert!(matches!(outs[..], [Output::BindRelay { .. }]));
}

#[test]
fn bandwidth_quota_drops_and_counts_excess() {
    let mut core = TurnCore::new(CoreConfig {
        secret: SECRET.to_vec(),
        policy: PeerPolicy {
            allowed: vec![a(SFU)],
            allow_public_peers: false,
        },
        bandwidth_bytes_per_s: 10_000,
        ..CoreConfig::default()
    });
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = allocate(&mut core, now, cl, RELAY, "u");
    assert_eq!(
        code(&mut core, now, cl, &c.channel_bind(0x4000, a(SFU))),
        None
    );
    let pkt = client::channel_data(0x4000, &[0u8; 1000], false);
    let sent = (0..20)
        .filter(|_| !send(&mut core, now, cl, &pkt).is_empty())
        .count();
    assert_eq!(sent, 10, "one second of burst at 10 kB/s");
    let s = core.stats();
    assert_eq!(
        (s.bandwidth_dropped_packets, s.bandwidth_dropped_bytes),
        (10, 10_000)
    );
    // Half a second later, half the bucket is back; peer→client draws on the same bucket.
    let later = now + Duration::from_millis(500);
    assert!(
        !core
            .handle_peer(later, a(RELAY), a(SFU), &[0u8; 3000])
            .is_empty()
    );
    let sent = (0..5)
        .filter(|_| !send(&mut core, later, cl, &pkt).is_empty())
        .count();
    assert_eq!(sent, 2);
}

#[test]
fn tcp_and_tls_channel_data_is_padded() {
    for transport in [Transport::Tcp, Transport::Tls] {
        let mut core = core();
        let now = t0();
        let cl = a("198.51.100.1:6000");
        let ft = FiveTuple {
            transport,
            client: cl,
        };
        let mut c = creds("u", 3600, now);
        let req = c.allocate();
        c.learn(&reply(&core.handle(now, transport, cl, &req)));
        assert!(matches!(
            core.handle(now, transport, cl, &c.allocate())[..],
            [Output::BindRelay { .. }]
        ));
        core.relay_bound(ft, Ok(a(RELAY)));
        reply(&core.handle(now, transport, cl, &c.channel_bind(0x4000, a(SFU))));
        let outs = core.handle_peer(now, a(RELAY), a(SFU), b"abcde");
        assert!(
            matches!(&outs[..], [Output::ToClient { to, .. }] if *to == ft),
            "{transport:?}"
        );
        let r = reply(&outs);
        assert_eq!(r.len(), 12);
        assert_eq!(
            &r[..9],
            &[0x40, 0x00, 0x00, 0x05, b'a', b'b', b'c', b'd', b'e']
        );
        // Padded ChannelData from the client is accepted.
        let outs = core.handle(
            now,
            transport,
            cl,
            &client::channel_data(0x4000, b"xyz", true),
        );
        assert_eq!(outs.len(), 1);
        // The same address over UDP is another 5-tuple (RFC 8656 §2): no allocation there.
        assert!(
            core.handle(
                now,
                Transport::Udp,
                cl,
                &client::channel_data(0x4000, b"xyz", false)
            )
            .is_empty()
        );
    }
}

#[test]
fn malformed_inputs_are_counted_not_answered() {
    let mut core = core();
    let now = t0();
    let cl = "198.51.100.1:6000";
    let mut c = Client::new("", "");
    let good = c.binding();
    let mut wrong_fp = good.clone();
    let n = wrong_fp.len();
    wrong_fp[n - 1] ^= 0xFF;
    let mut oversize = good.clone();
    oversize[22] = 0xFF; // first attribute's length past the end
    for bad in [
        &good[..10],
        &wrong_fp[..],
        &oversize[..],
        &[0x40, 0x00, 0xFF, 0xFF, 1][..],
        &[0xFF; 40][..],
        &[][..],
    ] {
        assert!(send(&mut core, now, cl, bad).is_empty());
    }
    assert!(core.stats().malformed >= 5, "{:?}", core.stats());
    assert_eq!(reply(&send(&mut core, now, cl, &good)).len(), 40);
}
