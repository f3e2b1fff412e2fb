//! Unit tests of `policy.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn special_ranges_refused_by_default_even_with_public_peers() {
    let p = PeerPolicy {
        allowed: vec![a("127.0.0.1:50000")],
        allow_public_peers: true,
    };
    for bad in [
        "127.0.0.1:22",
        "127.0.0.2:50000",
        "10.1.2.3:50000",
        "192.168.1.1:80",
        "172.16.0.1:80",
        "172.31.255.255:80",
        "169.254.169.254:80",
        "100.64.0.1:80",
        "0.0.0.0:80",
        "224.0.0.1:5000",
        "255.255.255.255:9",
        "[::1]:50000",
        "[fc00::1]:80",
        "[fd00:ec2::254]:80",
        "[fe80::1]:80",
        "[ff02::1]:80",
        "[::ffff:10.0.0.1]:80",
        "[::ffff:127.0.0.1]:22",
        "[64:ff9b::a9fe:a9fe]:80",
        "[::]:80",
    ] {
        assert!(!p.permits(a(bad)), "{bad} must be refused");
    }
    assert!(p.permits(a("127.0.0.1:50000")));
    assert!(p.permits(a("[::ffff:127.0.0.1]:50000")));
    assert!(p.permits(a("8.8.8.8:53")));
    assert!(p.permits(a("[2a00:1450::1]:443")));
    assert!(!p.permits_ip("10.0.0.1".parse().unwrap()));
    assert!(p.permits_ip("127.0.0.1".parse().unwrap()));
    assert!(!p.permits_ip("169.254.169.254".parse().unwrap()));
}

#[test]
fn public_peers_off_by_default() {
    let p = PeerPolicy {
        allowed: vec![a("203.0.113.5:0"), a("198.51.100.7:50000")],
        ..PeerPolicy::default()
    };
    assert!(!p.permits(a("8.8.8.8:53")));
    assert!(!p.permits_ip("8.8.8.8".parse().unwrap()));
    // Port 0 allows every port of that IP.
    assert!(p.permits(a("203.0.113.5:1234")));
    assert!(p.permits(a("198.51.100.7:50000")));
    assert!(!p.permits(a("198.51.100.7:50001")));
    assert!(!p.permits(a("198.51.100.8:50000")));
}
