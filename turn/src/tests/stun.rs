//! Unit tests of `stun.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 5769 §2.1 sample request (short-term password "VOkJxbRl1RmTxUk/WvJxBt").
const REQ: &str = "000100582112a442b7e7a701bc34d686fa87dfae
    80220010 5354554e 20746573 7420636c 69656e74 00240004 6e0001ff 80290008 932ff9b151263b36
    000600096576746a3a68367659202020 00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
    80280004 e57a3bcf";

#[test]
fn rfc5769_request_integrity_and_fingerprint() {
    let b = hex(REQ);
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.method, method::BINDING);
    assert_eq!(m.class, Class::Request);
    assert_eq!(m.get_str(attr::USERNAME), Some("evtj:h6vY"));
    assert!(m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
    assert!(!m.check_integrity(b"wrong"));
    // One flipped bit in the fingerprint → BadFingerprint.
    let mut bad = b.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(Message::parse(&bad).unwrap_err(), Error::BadFingerprint);
    // A flipped bit in the body breaks the fingerprint too.
    let mut bad = b.clone();
    bad[30] ^= 1;
    assert!(Message::parse(&bad).is_err());
}

/// RFC 5769 §2.2 IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853.
#[test]
fn rfc5769_ipv4_response() {
    let b = hex(
        "0101003c2112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
         002000080001a147e112a643 000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
         80280004c07d4c96",
    );
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.class, Class::Success);
    assert_eq!(
        m.get_xor_addr(attr::XOR_MAPPED_ADDRESS),
        Some("192.0.2.1:32853".parse().unwrap())
    );
    assert!(m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
}

/// RFC 5769 §2.3 IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
#[test]
fn rfc5769_ipv6_response() {
    let b = hex(
        "010100482112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
         00200014 0002a147 0113a9faa5d3f179bc25f4b5bed2b9d9
         00080014a382954e4be67bf11784c97c8292c275bfe3ed41 80280004c8fb0b4c",
    );
    let m = Message::parse(&b).unwrap();
    assert_eq!(
        m.get_xor_addr(attr::XOR_MAPPED_ADDRESS),
        Some(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()
        )
    );
    assert!(m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
}

/// RFC 5769 §2.4 request with long-term authentication (MD5 key of
/// "<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>:example.org:TheMatrIX").
#[test]
fn rfc5769_long_term() {
    let b = hex(
        "000100602112a44278ad3433c6ad72c029da412e 00060012e3839ee38388e383aae38383e382afe382b90000
         0015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f726700
         00080014f67024656dd64a3e02b8e0712e85c9a28ca89666",
    );
    let m = Message::parse(&b).unwrap();
    let key = crate::auth::long_term_key(
        m.get_str(attr::USERNAME).unwrap(),
        "example.org",
        "TheMatrIX",
    );
    assert!(m.check_integrity(&key));
}

#[test]
fn builder_roundtrip_with_both_integrities() {
    let mut out = Vec::new();
    let addr: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
    Builder::new(&mut out, method::ALLOCATE, Class::Success, [7; 12])
        .xor_addr(attr::XOR_RELAYED_ADDRESS, addr)
        .u32(attr::LIFETIME, 600)
        .attr(attr::SOFTWARE, b"venue")
        .integrity(b"key")
        .integrity_sha256(b"key")
        .fingerprint();
    let m = Message::parse(&out).unwrap();
    assert_eq!((m.method, m.class), (method::ALLOCATE, Class::Success));
    assert_eq!(m.get_xor_addr(attr::XOR_RELAYED_ADDRESS), Some(addr));
    assert_eq!(m.get_u32(attr::LIFETIME), Some(600));
    assert!(m.check_integrity(b"key"));
    assert!(!m.check_integrity(b"other"));
}

#[test]
fn type_bits_roundtrip() {
    for method in [1u16, 3, 4, 6, 7, 8, 9, 0xABC] {
        for class in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            assert_eq!(split_type(join_type(method, class)), (method, class));
        }
    }
    assert_eq!(join_type(method::BINDING, Class::Success), 0x0101);
    assert_eq!(join_type(method::ALLOCATE, Class::Error), 0x0113);
    assert_eq!(join_type(method::SEND, Class::Indication), 0x0016);
}

#[test]
fn malformed_is_error_not_panic() {
    let b = hex(REQ);
    for cut in 0..b.len() {
        assert!(Message::parse(&b[..cut]).is_err());
    }
    // Attribute length past the end.
    let mut over = b.clone();
    over[22] = 0xFF;
    assert!(Message::parse(&over).is_err());
    assert_eq!(tcp_frame_len(&[0x00, 0x01]), Ok(None));
    assert_eq!(tcp_frame_len(&[0x40, 0x00, 0x00, 0x05]), Ok(Some(12)));
    assert!(tcp_frame_len(&[0x80, 0, 0, 0]).is_err());
    assert!(tcp_frame_len(&[0x50, 0, 0, 0]).is_err());
    assert_eq!(
        parse_channel_data(&[0x40, 0x01, 0x00, 0x05, 1, 2]),
        Err(Error::Truncated)
    );
    assert_eq!(
        parse_channel_data(&[0x40, 0x01, 0x00, 0x02, 1, 2, 0, 0]),
        Ok((0x4001, &[1u8, 2][..]))
    );
}
