//! Unit tests of `http/extract.rs`.

use super::*;
use axum::http::HeaderValue;

#[test]
fn client_ip_believes_x_forwarded_for_only_from_trusted_proxies() {
    let proxy: IpAddr = "127.0.0.1".parse().unwrap();
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
    );
    // Untrusted peer: the header is ignored.
    assert_eq!(client_ip(proxy, &h, &[]), proxy);
    // Trusted: the rightmost untrusted hop (the leftmost can be forged by the client).
    assert_eq!(client_ip(proxy, &h, &[proxy]), client);
    h.append("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
    assert_eq!(client_ip(proxy, &h, &[proxy]), client);
    // Missing or garbage: the peer.
    assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    let mut bad = HeaderMap::new();
    bad.insert("x-forwarded-for", HeaderValue::from_static("not an ip"));
    assert_eq!(client_ip(proxy, &bad, &[proxy]), proxy);
}

#[test]
fn bearer_parsing() {
    let mut h = HeaderMap::new();
    assert_eq!(bearer(&h), None);
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer abc"),
    );
    assert_eq!(bearer(&h), Some("abc"));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer  abc "),
    );
    assert_eq!(bearer(&h), Some("abc"));
    h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
    assert_eq!(bearer(&h), None);
    h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
    assert_eq!(bearer(&h), None);
}

#[test]
fn session_ids_must_be_16_hex_digits() {
    assert!(session_id("00000000000000ff").is_ok());
    assert!(session_id("ff").is_err());
    assert!(session_id("+000000000000000").is_err());
    assert!(session_id("zzzzzzzzzzzzzzzz").is_err());
    assert!(session_id("ééééééééé").is_err());
}
