//! `[turn]` wired into venue: the embedded TURN server starts with the app, WHEP answers carry
//! `Link: <turn:…>; rel="ice-server"` headers (RFC 9725 §4.6) with TURN REST credentials, and
//! `/api/ice-servers` hands the same to the web pages. The credentials work on the real server
//! (UDP, loopback); the relay reaches the SFU's media address and nothing else on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ADMIN, config, serve};
use tokio::net::UdpSocket;
use venue_turn::client::{Client, Received, decode};
use venue_turn::stun::method;
use venue_turn::{TurnConfig, TurnSecret};

const SECRET: &str = "test-turn-secret-0123456789";

fn turn_config() -> TurnConfig {
    TurnConfig {
        enabled: true,
        udp_listen: Some("127.0.0.1:0".parse().unwrap()),
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        relay_ip: "127.0.0.1".parse().unwrap(),
        secret: TurnSecret::new(SECRET),
        credential_ttl_s: 600,
        ..TurnConfig::default()
    }
}

/// `(uri, username, credential)` of each `Link: …; rel="ice-server"` header.
fn ice_links(headers: &reqwest::header::HeaderMap) -> Vec<(String, String, String)> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains("rel=\"ice-server\""))
        .map(|v| {
            let uri = v[v.find('<').unwrap() + 1..v.find('>').unwrap()].to_string();
            let param = |name: &str| {
                let start = v.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let len = v[start..].find('"').unwrap();
                v[start..start + len].to_string()
            };
            assert!(v.contains("credential-type=\"password\""), "{v}");
            (uri, param("username"), param("credential"))
        })
        .collect()
}

async fn whep_offer(server: &common::Server) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/api/whep/main", server.addr))
        .header("content-type", "application/sdp")
        .body(common::viewer_offer(1))
        .send()
        .await
        .unwrap()
}

async fn ice_servers(server: &common::Server) -> serde_json::Value {
    let res = reqwest::get(format!("http://{}/api/ice-servers", server.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

struct Turn {
    sock: UdpSocket,
    server: SocketAddr,
    client: Client,
}

impl Turn {
    async fn new(server: SocketAddr, username: &str, password: &str) -> Turn {
        Turn {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            client: Client::new(username, password),
        }
    }

    async fn request(&mut self, bytes: Vec<u8>) -> Received {
        self.sock.send_to(&bytes, self.server).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("TURN server answers")
            .unwrap();
        buf.truncate(n);
        self.client.learn(&buf);
        decode(&buf, &self.client.key())
    }

    /// Allocate (first attempt learns REALM/NONCE from the 401). Returns the final answer.
    async fn allocate(&mut self) -> Received {
        let first = self.client.allocate();
        match self.request(first).await {
            Received::Error { code: 401, .. } => {
                let second = self.client.allocate();
                self.request(second).await
            }
            other => other,
        }
    }
}

#[tokio::test]
async fn embedded_turn_credentials_from_whep_and_the_api_relay_only_to_the_sfu() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.turn = turn_config();
    let server = serve(cfg).await;
    let _ = ADMIN;

    // The web pages' endpoint: one server entry, both transports, fresh ids per call.
    let a: serde_json::Value = ice_servers(&server).await;
    let b: serde_json::Value = ice_servers(&server).await;
    assert_eq!(a["ttl_s"], 600);
    let urls: Vec<String> = a["ice_servers"][0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 2, "{a}");
    assert!(urls[0].starts_with("turn:127.0.0.1:") && urls[0].ends_with("?transport=udp"));
    assert!(urls[1].starts_with("turn:127.0.0.1:") && urls[1].ends_with("?transport=tcp"));
    assert_ne!(
        a["ice_servers"][0]["username"],
        b["ice_servers"][0]["username"]
    );

    // WHEP 201 carries the same URIs as Link headers, with credentials for that session.
    let res = whep_offer(&server).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let session = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let links = ice_links(res.headers());
    assert_eq!(links.iter().map(|l| l.0.clone()).collect::<Vec<_>>(), urls);
    let (_, username, credential) = links[0].clone();
    assert!(username.ends_with(&format!(":{session}")), "{username}");
    let expiry: u64 = username.split(':').next().unwrap().parse().unwrap();
    let now = venue_turn::auth::unix_secs(std::time::SystemTime::now());
    assert!(
        (now + 590..=now + 601).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(
        credential,
        venue_turn::auth::rest_password(SECRET.as_bytes(), &username)
    );

    // Those credentials allocate on the embedded server (UDP).
    let turn_udp: SocketAddr = urls[0]
        .trim_start_matches("turn:")
        .trim_end_matches("?transport=udp")
        .parse()
        .unwrap();
    let mut t = Turn::new(turn_udp, &username, &credential).await;
    match t.allocate().await {
        Received::Success {
            method: m,
            relayed: Some(relay),
            integrity_ok: true,
            ..
        } => {
            assert_eq!(m, method::ALLOCATE);
            assert!(relay.ip().is_loopback());
        }
        other => panic!("allocate: {other:?}"),
    }
    // The SFU's media address is a permitted peer …
    let media = server_media_addr(&server).await;
    let req = t.client.create_permission(media);
    assert!(
        matches!(t.request(req).await, Received::Success { .. }),
        "permission to the SFU {media}"
    );
    // … another port on the same host, the HTTP port and a private address are not (403).
    for peer in [
        SocketAddr::new(media.ip(), media.port().wrapping_add(7)),
        server.addr,
        "10.1.2.3:5000".parse().unwrap(),
        "169.254.169.254:80".parse().unwrap(),
    ] {
        let req = t.client.create_permission(peer);
        match t.request(req).await {
            Received::Error { code: 403, .. } => {}
            other => panic!("permission to {peer}: {other:?}"),
        }
    }
    // A forged password (right shape, wrong secret) is refused with 401.
    let forged = venue_turn::auth::rest_password(b"not-the-secret-at-all", &username);
    let mut f = Turn::new(turn_udp, &username, &forged).await;
    assert!(matches!(
        f.allocate().await,
        Received::Error { code: 401, .. }
    ));

    // The counters show up in /metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("venue_turn_allocations_created_total"), 1);
    assert!(value("venue_turn_forbidden_total") >= 4);
    assert!(value("venue_turn_unauthorized_total") >= 2);
}

/// The shard's UDP address (the SFU's only media address in the test config).
async fn server_media_addr(server: &common::Server) -> SocketAddr {
    // The test config binds one shard on 127.0.0.1 with an ephemeral port; the WHEP answer's
    // candidate names it.
    let res = whep_offer(server).await;
    let sdp = res.text().await.unwrap();
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate") && l.contains(" udp ") || l.contains(" UDP "))
        .unwrap_or_else(|| panic!("no UDP candidate in {sdp}"));
    let parts: Vec<&str> = line.split_whitespace().collect();
    format!("{}:{}", parts[4], parts[5]).parse().unwrap()
}

#[tokio::test]
async fn external_turn_server_gets_credentials_and_nothing_is_started() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.turn = TurnConfig {
        enabled: false,
        secret: TurnSecret::new(SECRET),
        urls: vec![
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:443?transport=tcp".into(),
        ],
        ..TurnConfig::default()
    };
    let server = serve(cfg).await;
    let res = whep_offer(&server).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let links = ice_links(res.headers());
    assert_eq!(links.len(), 2);
    assert_eq!(links[1].0, "turns:turn.example.org:443?transport=tcp");
    assert_eq!(
        links[0].2,
        venue_turn::auth::rest_password(SECRET.as_bytes(), &links[0].1)
    );
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("venue_turn_"), "no embedded server runs");
    // ICE-TCP is on by default: its gauge is there, nothing open.
    assert!(
        metrics.contains("\nvenue_ice_tcp_connections 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("venue_ice_tcp_closed_total{reason=\"not_stun\"} 0"));
    let _ = Method::GET;
}

#[tokio::test]
async fn without_turn_no_links_and_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let res = whep_offer(&server).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(ice_links(res.headers()).is_empty());
    let a: serde_json::Value = ice_servers(&server).await;
    assert_eq!(a["ice_servers"], serde_json::json!([]));
}

#[test]
fn bad_turn_sections_are_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.turn = TurnConfig {
        secret: TurnSecret::new("short"),
        ..turn_config()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("secret"), "{e}");
    cfg.turn = TurnConfig {
        enabled: false,
        urls: vec!["turn:x:3478".into()],
        ..TurnConfig::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("turn.secret"), "{e}");
}

#[tokio::test]
async fn enabled_is_one_switch_secret_generated_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.turn = TurnConfig {
        enabled: true,
        udp_listen: Some("127.0.0.1:0".parse().unwrap()),
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..TurnConfig::default()
    };
    cfg.validate().unwrap();
    let server = serve(cfg).await;
    let secret = std::fs::read_to_string(dir.path().join("turn-secret")).unwrap();
    assert!(secret.trim().len() >= 32);
    let a = ice_servers(&server).await;
    let username = a["ice_servers"][0]["username"].as_str().unwrap();
    assert_eq!(
        a["ice_servers"][0]["credential"].as_str().unwrap(),
        venue_turn::auth::rest_password(secret.trim().as_bytes(), username)
    );
    // The relay address is the SFU's advertised IP (the test's media candidate, 127.0.0.1).
    let url = a["ice_servers"][0]["urls"][0].as_str().unwrap();
    assert!(url.starts_with("turn:127.0.0.1:"), "{url}");
}
