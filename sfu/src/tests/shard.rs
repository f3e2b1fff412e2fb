//! Unit tests of `shard.rs` (kept in their own file).

use super::*;

#[test]
fn mid_layout_follows_sdp_order() {
    let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\nm=audio 9 x 111\r\na=mid:4\r\n";
    let l = MidLayout::from_sdp(sdp);
    assert_eq!(l.video, vec![Mid::from("0"), Mid::from("2")]);
    assert_eq!(l.audio, vec![Mid::from("1"), Mid::from("4")]);
}

#[test]
fn candidate_addrs_prefers_config() {
    let mut c = SfuConfig::default();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let eth: IpAddr = "10.0.0.2".parse().unwrap();
    assert_eq!(candidate_addrs(&c, 5000, &[lo, eth]).len(), 2);
    c.candidate_ips = vec![eth];
    assert_eq!(
        candidate_addrs(&c, 5000, &[lo]),
        vec![SocketAddr::new(eth, 5000)]
    );
}

#[test]
fn garbage_datagrams_are_counted_not_fatal() {
    let now = Instant::now();
    let cfg = SfuConfig::default();
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut shard = ShardCore::new(0, 1, cfg, vec![addr], now);
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    for d in [
        &[][..],
        &[0u8, 1, 2][..],
        &[0x80, 0, 0, 0][..],
        &[22u8; 40][..],
        &[0xffu8; 1500][..],
    ] {
        shard.handle_datagram(now, src, None, d);
    }
    assert_eq!(shard.stats().datagrams_dropped, 5);
}

#[test]
fn local_address_follows_pktinfo_when_it_is_a_candidate() {
    let now = Instant::now();
    let private: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let public: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let shard = ShardCore::new(0, 1, SfuConfig::default(), vec![lo, private, public], now);
    let remote: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    assert_eq!(
        shard.local_addr_for(remote, Some(public.ip())),
        Some(public)
    );
    assert_eq!(
        shard.local_addr_for(remote, Some(private.ip())),
        Some(private)
    );
    // Unknown destination (1:1 NAT) or no pktinfo: first candidate of the sender's scope.
    assert_eq!(
        shard.local_addr_for(remote, Some("172.16.0.1".parse().unwrap())),
        Some(private)
    );
    assert_eq!(
        shard.local_addr_for("127.0.0.1:9".parse().unwrap(), None),
        Some(lo)
    );
}
