//! Unit tests of `config.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn parses_and_validates() {
    let c: TurnConfig = toml::from_str(
        r#"
        enabled = true
        relay_public_ip = "203.0.113.10"
        secret = "0123456789abcdef"
        allowed_peers = ["203.0.113.10:50000", "10.0.0.5:0"]
        bandwidth_bps = 8000000
        "#,
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("0123456789abcdef"));
    let s = c.validate().unwrap();
    assert_eq!(s.core.bandwidth_bytes_per_s, 1_000_000);
    assert_eq!(s.core.max_allocations_per_user, 5);
    assert_eq!(s.core.policy.allowed.len(), 2);
    assert_eq!(c.advertised_ip(), Some("203.0.113.10".parse().unwrap()));
    assert!(toml::from_str::<TurnConfig>("nope = 1").is_err());
}

#[test]
fn refuses_bad_values() {
    let ok = TurnConfig {
        secret: TurnSecret::new("0123456789abcdef"),
        relay_ip: Ipv4Addr::LOCALHOST,
        ..TurnConfig::default()
    };
    assert!(ok.validate().is_ok());
    for bad in [
        TurnConfig {
            secret: TurnSecret::new("short"),
            ..ok.clone()
        },
        TurnConfig {
            relay_ip: Ipv4Addr::UNSPECIFIED,
            ..ok.clone()
        },
        TurnConfig {
            max_lifetime_s: 10,
            ..ok.clone()
        },
        TurnConfig {
            nonce_ttl_s: 1,
            ..ok.clone()
        },
        TurnConfig {
            max_allocations_per_user: 0,
            ..ok.clone()
        },
        TurnConfig {
            credential_ttl_s: 1,
            ..ok.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}
