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

#[test]
fn tls_listen_needs_a_readable_matching_cert_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["turn.example.org".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["turn.example.org".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    let toml_text = format!(
        "relay_ip = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\ntls_listen = \"0.0.0.0:5349\"\n\
         tls_cert = {:?}\ntls_key = {:?}\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    let ok: TurnConfig = toml::from_str(&toml_text).unwrap();
    let shell = ok.validate().unwrap();
    let tls = shell.tls.unwrap();
    assert_eq!(tls.listen, "0.0.0.0:5349".parse().unwrap());
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    // Off by default, and cert/key alone do not turn it on.
    assert!(TurnConfig::default().tls_listen.is_none());
    let no_listen = TurnConfig {
        tls_listen: None,
        ..ok.clone()
    };
    assert!(no_listen.validate().unwrap().tls.is_none());

    let message = |c: TurnConfig| c.validate().unwrap_err().to_string();
    let m = message(TurnConfig {
        tls_cert: None,
        ..ok.clone()
    });
    assert!(m.starts_with("turn.tls_cert is required"), "{m}");
    let m = message(TurnConfig {
        tls_key: None,
        ..ok.clone()
    });
    assert!(m.starts_with("turn.tls_key is required"), "{m}");
    let missing = dir.path().join("nope.pem");
    let m = message(TurnConfig {
        tls_cert: Some(missing.clone()),
        ..ok.clone()
    });
    assert!(
        m.starts_with("turn.tls_cert") && m.contains(missing.to_str().unwrap()),
        "{m}"
    );
    // A key file given as the certificate: no CERTIFICATE block.
    let m = message(TurnConfig {
        tls_cert: Some(key.clone()),
        ..ok.clone()
    });
    assert!(
        m.starts_with("turn.tls_cert") && m.contains("no CERTIFICATE"),
        "{m}"
    );
    let m = message(TurnConfig {
        tls_key: Some(cert.clone()),
        ..ok.clone()
    });
    assert!(m.starts_with("turn.tls_key"), "{m}");
    // The key of another certificate.
    let m = message(TurnConfig {
        tls_key: Some(other_key),
        ..ok
    });
    assert!(m.starts_with("turn.tls_cert / tls_key"), "{m}");
}
