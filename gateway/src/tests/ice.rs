use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use venue_sfu::SfuConfig;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn credentials_follow_the_turn_rest_scheme() {
    let ice = IceServers::new(
        vec!["turn:203.0.113.7:3478?transport=udp".into()],
        SECRET,
        Duration::from_secs(600),
    );
    let servers = ice.issue("abc", at(1_000_000));
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].username, "1000600:abc");
    assert_eq!(
        servers[0].credential,
        venue_turn::auth::rest_password(SECRET, "1000600:abc")
    );
    assert_eq!(ice.ttl_s(), 600);
    // A different secret gives a different password (nothing is constant).
    let other = IceServers::new(
        ice.urls().to_vec(),
        b"another-secret-16ch",
        Duration::from_secs(600),
    );
    assert_ne!(
        other.issue("abc", at(1_000_000))[0].credential,
        servers[0].credential
    );
}

#[test]
fn link_headers_one_per_uri_rfc9725() {
    let ice = IceServers::new(
        vec![
            "turn:203.0.113.7:3478?transport=udp".into(),
            "turns:turn.example.org:5349?transport=tcp".into(),
        ],
        SECRET,
        Duration::from_secs(60),
    );
    let mut headers = HeaderMap::new();
    crate::http::ice::add_link_headers(&ice, &mut headers, "00000000000000ff", at(100));
    let links: Vec<&str> = headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(links.len(), 2);
    let password = venue_turn::auth::rest_password(SECRET, "160:00000000000000ff");
    assert_eq!(
        links[0],
        format!(
            "<turn:203.0.113.7:3478?transport=udp>; rel=\"ice-server\"; username=\"160:00000000000000ff\"; credential=\"{password}\"; credential-type=\"password\""
        )
    );
    assert!(
        links[1].starts_with("<turns:turn.example.org:5349?transport=tcp>; rel=\"ice-server\"")
    );
}

#[test]
fn no_turn_server_no_links_no_servers() {
    let ice = IceServers::none();
    let mut headers = HeaderMap::new();
    crate::http::ice::add_link_headers(&ice, &mut headers, "x", at(100));
    assert!(headers.is_empty());
    assert!(ice.issue("x", at(100)).is_empty());
    assert!(
        IceServers::new(Vec::new(), SECRET, Duration::from_secs(60))
            .issue("x", at(1))
            .is_empty()
    );
}

#[test]
fn a_uri_that_is_no_header_value_is_skipped() {
    let ice = IceServers::new(
        vec!["turn:bad\nhost:3478".into(), "turn:good:3478".into()],
        SECRET,
        Duration::from_secs(60),
    );
    let mut headers = HeaderMap::new();
    crate::http::ice::add_link_headers(&ice, &mut headers, "x", at(100));
    let links: Vec<_> = headers.get_all(header::LINK).iter().collect();
    assert_eq!(links.len(), 1);
}

#[test]
fn random_ids_differ() {
    let a = random_id();
    assert_eq!(a.len(), 16);
    assert_ne!(a, random_id());
}

#[test]
fn embedded_urls_name_both_transports_and_bracket_ipv6() {
    let udp = Some(SocketAddr::from(([0, 0, 0, 0], 3478)));
    let tcp = Some(SocketAddr::from(([0, 0, 0, 0], 3479)));
    let tls = Some(SocketAddr::from(([0, 0, 0, 0], 5349)));
    assert_eq!(
        embedded_urls(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            None,
            udp,
            tcp,
            None
        ),
        vec![
            "turn:198.51.100.1:3478?transport=udp".to_string(),
            "turn:198.51.100.1:3479?transport=tcp".to_string()
        ]
    );
    assert_eq!(
        embedded_urls(IpAddr::V6(Ipv6Addr::LOCALHOST), None, None, tcp, tls),
        vec![
            "turn:[::1]:3479?transport=tcp".to_string(),
            "turns:[::1]:5349?transport=tcp".to_string()
        ]
    );
    // turns: names the certificate's host (public_url's), not the IP.
    assert_eq!(
        embedded_urls(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            Some("live.example.org"),
            None,
            None,
            tls
        ),
        vec!["turns:live.example.org:5349?transport=tcp".to_string()]
    );
}

#[test]
fn media_peers_are_the_advertised_candidates_at_the_shard_ports() {
    let media = SfuConfig {
        candidate_ips: vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))],
        ..SfuConfig::default()
    };
    let shards = [
        SocketAddr::from(([10, 0, 0, 5], 50000)),
        SocketAddr::from(([10, 0, 0, 5], 50001)),
    ];
    let peers = media_peers(&media, &shards);
    for want in [
        "203.0.113.9:50000",
        "203.0.113.9:50001",
        "10.0.0.5:50000",
        "10.0.0.5:50001",
    ] {
        let want: SocketAddr = want.parse().unwrap_or_else(|e| panic!("{want}: {e}"));
        assert!(peers.contains(&want), "{want} missing from {peers:?}");
    }
    // Only the shard ports: nothing else on those hosts.
    assert!(peers.iter().all(|p| p.port() == 50000 || p.port() == 50001));
}

#[test]
fn enabled_alone_gets_a_secret_and_a_relay_address() {
    let media = SfuConfig {
        candidate_ips: vec![
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        ],
        ..SfuConfig::default()
    };
    let generated = TurnSecret::new("generated-secret-0123456789");
    let turn = TurnConfig {
        enabled: true,
        ..TurnConfig::default()
    };
    let t = completed(&turn, &media, &generated);
    assert_eq!(t.secret, generated);
    assert_eq!(t.relay_public_ip, Some(Ipv4Addr::new(203, 0, 113, 9)));
    assert!(t.validate().is_ok());
    // Explicit settings win.
    let explicit = TurnConfig {
        secret: TurnSecret::new("configured-secret-0123"),
        relay_ip: Ipv4Addr::new(10, 0, 0, 2),
        ..turn
    };
    let t = completed(&explicit, &media, &generated);
    assert_eq!(t.secret.expose(), "configured-secret-0123");
    assert_eq!(t.relay_public_ip, None);
    // Without candidates: a specific bind IP.
    let bound = SfuConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4)),
        ..SfuConfig::default()
    };
    assert_eq!(default_relay_ip(&bound), Ipv4Addr::new(192, 0, 2, 4));
}

#[test]
fn the_generated_secret_is_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = stored_secret(dir.path()).expect("generated");
    assert!(a.expose().len() >= 32);
    let b = stored_secret(dir.path()).expect("read back");
    assert_eq!(a, b);
}
