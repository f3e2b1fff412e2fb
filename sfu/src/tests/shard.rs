//! Unit tests of the shard core (`shard/`, kept in their own file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use super::*;

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
        shard.handle_input(
            now,
            Input::Datagram {
                source: src,
                destination_ip: None,
                contents: d,
            },
        );
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
        shard.local.local_addr_for(remote, Some(public.ip())),
        Some(public)
    );
    assert_eq!(
        shard.local.local_addr_for(remote, Some(private.ip())),
        Some(private)
    );
    // Unknown destination (1:1 NAT) or no pktinfo: first candidate of the sender's scope.
    assert_eq!(
        shard
            .local
            .local_addr_for(remote, Some("172.16.0.1".parse().unwrap())),
        Some(private)
    );
    assert_eq!(
        shard
            .local
            .local_addr_for("127.0.0.1:9".parse().unwrap(), None),
        Some(lo)
    );
}

#[test]
fn default_candidates_are_ipv4_unless_dual_stack_then_global_and_ula_ipv6_too() {
    let ifs: Vec<IpAddr> = [
        "127.0.0.1",
        "192.0.2.2",
        "::1",
        "fe80::fc:ff:fe00:1",
        "fd00::2",
        "2001:db8:1::5",
        "::ffff:198.51.100.1",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let at = |ips: &[&str]| -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 5000))
            .collect()
    };
    let mut c = SfuConfig::default();
    assert_eq!(
        candidate_addrs(&c, 5000, &ifs),
        at(&["127.0.0.1", "192.0.2.2", "198.51.100.1"]),
        "0.0.0.0: IPv4 only (the socket cannot take IPv6)"
    );
    c.bind_ip = "::".parse().unwrap();
    assert_eq!(
        candidate_addrs(&c, 5000, &ifs),
        at(&[
            "127.0.0.1",
            "192.0.2.2",
            "fd00::2",
            "2001:db8:1::5",
            "198.51.100.1"
        ]),
        ":: (dual-stack): IPv4 plus global and ULA IPv6; no ::1, no link-local, mapped as IPv4"
    );
    c.bind_ip = "fd00::2".parse().unwrap();
    assert_eq!(candidate_addrs(&c, 5000, &ifs), at(&["fd00::2"]));
    c.candidate_ips = vec![
        "203.0.113.1".parse().unwrap(),
        "2001:db8::9".parse().unwrap(),
    ];
    assert_eq!(
        candidate_addrs(&c, 5000, &ifs),
        at(&["203.0.113.1", "2001:db8::9"])
    );
}

#[test]
fn one_to_one_nat_maps_arrivals_at_the_private_address_to_the_public_candidate() {
    // candidate_ips = the public addresses only; the host's own addresses are private.
    let now = Instant::now();
    let public4: SocketAddr = "203.0.113.10:5000".parse().unwrap();
    let public6: SocketAddr = "[2001:db8::10]:5000".parse().unwrap();
    let cfg = SfuConfig {
        candidate_ips: vec![public4.ip(), public6.ip()],
        ..SfuConfig::default()
    };
    let cands = candidate_addrs(&cfg, 5000, &["10.0.0.1".parse().unwrap()]);
    assert_eq!(cands, vec![public4, public6]);
    let shard = ShardCore::new(0, 1, cfg, cands, now);
    let private4: IpAddr = "10.0.0.1".parse().unwrap();
    let private6: IpAddr = "fd00::1".parse().unwrap();
    let v4_peer: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    let v6_peer: SocketAddr = "[2001:db8:5::9]:40000".parse().unwrap();
    assert_eq!(
        shard.local.local_addr_for(v4_peer, Some(private4)),
        Some(public4)
    );
    assert_eq!(shard.local.local_addr_for(v4_peer, None), Some(public4));
    assert_eq!(
        shard.local.local_addr_for(v6_peer, Some(private6)),
        Some(public6)
    );
    // Arriving at the public address itself (hairpin, or no NAT) is the same candidate.
    assert_eq!(
        shard.local.local_addr_for(v6_peer, Some(public6.ip())),
        Some(public6)
    );
}

#[test]
fn a_tcp_close_of_an_unknown_address_is_harmless() {
    let now = Instant::now();
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut shard = ShardCore::new(0, 1, SfuConfig::default(), vec![addr], now);
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    shard.handle_input(now, Input::TcpClosed { source: src });
    // Frames that are not STUN from an unknown connection are dropped, like datagrams; a
    // UDP peer at the same address and port is a different transport.
    shard.handle_input(
        now,
        Input::TcpFrame {
            source: src,
            destination_ip: Some(addr.ip()),
            contents: &[0x80; 40],
        },
    );
    assert_eq!(shard.stats().datagrams_dropped, 1);
    assert!(!shard.has_tcp_peer(src));
}

/// Runs `cmd` and returns the reply to `request`.
fn ask(shard: &mut ShardCore, now: Instant, cmd: Command) -> Reply {
    let request = cmd.request().unwrap();
    shard.handle_input(now, Input::Command(cmd));
    loop {
        match shard.poll_output() {
            Output::Reply { request: r, reply } if r == request => return *reply,
            Output::Timeout(_) => panic!("no reply"),
            _ => {}
        }
    }
}

#[test]
fn relay_offer_has_an_audio_and_relay_layers_video_m_lines_per_slot() {
    let now = Instant::now();
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut shard = ShardCore::new(0, 1, SfuConfig::default(), vec![addr], now);
    let participants = vec![ParticipantId(11), ParticipantId(12)];
    let session = SessionId(0x100);
    let offer = ask(
        &mut shard,
        now,
        Command::OpenRelay {
            request: RequestId(1),
            session,
            room: RoomId(1),
            participants,
        },
    )
    .into_relay_offer()
    .unwrap()
    .unwrap();
    let layout = crate::offer::MidLayout::from_sdp(&offer);
    assert_eq!(layout.audio.len(), 2);
    assert_eq!(layout.video.len(), 2 * crate::api::RELAY_LAYERS);
    assert!(offer.contains("a=recvonly"));
    assert!(
        !offer.contains("a=ice-lite"),
        "the edge is a full ICE agent"
    );
    assert!(
        offer.contains("a=candidate"),
        "host candidates in the offer"
    );
    // The relay's participants are publishers of this shard.
    assert!(shard.routing.publishers.get(ParticipantId(11)).is_some());

    // An answer for an unknown session, and a second answer, are refused.
    let answer = || {
        str0m::change::SdpAnswer::from_sdp_string(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        )
        .unwrap()
    };
    let r = ask(
        &mut shard,
        now,
        Command::RelayAnswer {
            request: RequestId(2),
            session: SessionId(0x200),
            answer: Box::new(answer()),
        },
    );
    assert!(matches!(
        r.into_relay_answered(),
        Some(Err(SfuError::UnknownSession))
    ));
    // A mismatched answer closes the relay: its participants are gone.
    let r = ask(
        &mut shard,
        now,
        Command::RelayAnswer {
            request: RequestId(3),
            session,
            answer: Box::new(answer()),
        },
    );
    assert!(matches!(
        r.into_relay_answered(),
        Some(Err(SfuError::BadAnswer(_)))
    ));
    assert!(shard.routing.publishers.get(ParticipantId(11)).is_none());
    assert_eq!(shard.peer_count(), 0);
}
