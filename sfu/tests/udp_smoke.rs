//! Real-socket smoke tests: the running media plane (`SfuHandle` on loopback) forwards a str0m
//! publisher's media to subscribers with real ICE and DTLS-SRTP: across two UDP shards, over
//! ICE-TCP (RFC 6544, a real TCP connection with RFC 4571 framing), and on a dual-stack (`::`)
//! shard from IPv4 and IPv6 clients. The ICE-TCP listener's limits (connection cap, bad first
//! frames) are checked on real connections too. Waits poll a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use venue_sfu::framing::{Deframer, MAX_FRAME, encode};
use venue_sfu::{
    Offer, OfferError, ParticipantId, RoomId, SessionAnswer, SfuConfig, SfuError, SfuHandle,
    SubscribeTarget,
};
use venue_tests::peer::LoopbackPeer;

/// A str0m peer that reaches the SFU only over ICE-TCP: one real TCP connection to a shard,
/// RFC 4571 frames, an active TCP host candidate at the connection's local address.
struct TcpPeer {
    rtc: Rtc,
    stream: TcpStream,
    local: SocketAddr,
    server: SocketAddr,
    deframer: Deframer,
}

impl TcpPeer {
    fn connect(server: SocketAddr, rtp_mode: bool) -> TcpPeer {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let local = stream.local_addr().unwrap();
        let server = stream.peer_addr().unwrap();
        let mut rtc = Rtc::builder().set_rtp_mode(rtp_mode).build(Instant::now());
        let candidate = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build()
            .unwrap();
        rtc.add_local_candidate(candidate);
        TcpPeer {
            rtc,
            stream,
            local,
            server,
            deframer: Deframer::new(MAX_FRAME),
        }
    }

    fn step(&mut self, mut on_event: impl FnMut(Event)) {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!("the SFU closed the ICE-TCP connection"),
            Ok(n) => self.deframer.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("ICE-TCP read: {e}"),
        }
        while let Some(frame) = self.deframer.next_frame().unwrap() {
            let r = Receive::new(Protocol::Tcp, self.server, self.local, frame).unwrap();
            self.rtc
                .handle_input(Input::Receive(Instant::now(), r))
                .unwrap();
        }
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .unwrap();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Transmit(t) => {
                    assert_eq!(t.proto, Protocol::Tcp);
                    assert_eq!(t.destination, self.server, "only the TCP candidate is used");
                    let mut out = Vec::new();
                    encode(&t.contents, &mut out).unwrap();
                    self.stream.write_all(&out).unwrap();
                }
                Output::Event(e) => on_event(e),
                Output::Timeout(_) => return,
            }
        }
    }
}

enum Transport {
    Udp(LoopbackPeer),
    Tcp(TcpPeer),
}

/// A peer (UDP or ICE-TCP) and what it saw.
struct Client {
    transport: Transport,
    received: usize,
    keyframe_asked: bool,
}

impl Client {
    fn new(rtp_mode: bool) -> Client {
        Client::with(Transport::Udp(LoopbackPeer::new(rtp_mode).unwrap()))
    }

    fn tcp(server: SocketAddr, rtp_mode: bool) -> Client {
        Client::with(Transport::Tcp(TcpPeer::connect(server, rtp_mode)))
    }

    fn with(transport: Transport) -> Client {
        Client {
            transport,
            received: 0,
            keyframe_asked: false,
        }
    }

    fn rtc(&mut self) -> &mut Rtc {
        match &mut self.transport {
            Transport::Udp(p) => &mut p.rtc,
            Transport::Tcp(p) => &mut p.rtc,
        }
    }

    fn step(&mut self) {
        let (received, asked) = (&mut self.received, &mut self.keyframe_asked);
        let mut on_event = |e| match e {
            Event::RtpPacket(_) => *received += 1,
            Event::KeyframeRequest(_) => *asked = true,
            _ => {}
        };
        match &mut self.transport {
            Transport::Udp(p) => p.step(|_, e| on_event(e)).unwrap(),
            Transport::Tcp(p) => p.step(on_event),
        }
    }
}

/// Publishes `publisher` (a video m-line; `strip` = an offer without candidates, like OBS) as
/// participant 1 and puts it on stage slot 0. Returns the session and the video mid.
async fn publish(
    sfu: &SfuHandle,
    room: RoomId,
    publisher: &mut Client,
    strip: bool,
) -> (SessionAnswer, Mid) {
    let mut api = publisher.rtc().sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let sdp = offer.to_sdp_string();
    let sdp = if strip { without_candidates(&sdp) } else { sdp };
    let offer = Offer::parse(&sdp).unwrap();
    let ans = sfu.publish(room, ParticipantId(1), offer).await.unwrap();
    publisher
        .rtc()
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&ans.answer_sdp).unwrap(),
        )
        .unwrap();
    sfu.set_stage(room, vec![Some(ParticipantId(1))])
        .await
        .unwrap();
    (ans, video)
}

/// Subscribes `viewer` to the stage (one video, one audio m-line).
async fn subscribe(sfu: &SfuHandle, room: RoomId, viewer: &mut Client) -> SessionAnswer {
    let mut api = viewer.rtc().sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let sub = sfu
        .subscribe(
            room,
            SubscribeTarget::Stage,
            Offer::parse(&offer.to_sdp_string()).unwrap(),
        )
        .await
        .unwrap();
    viewer
        .rtc()
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&sub.answer_sdp).unwrap(),
        )
        .unwrap();
    sub
}

/// Sends H.264 frames at 30 fps from `publisher` until every viewer received `want` RTP
/// packets or 10 s pass. Returns the peers, what each viewer received, and the time taken.
fn forward(
    mut publisher: Client,
    video: Mid,
    mut viewers: Vec<Client>,
    want: usize,
) -> (Client, Vec<Client>, Duration) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let start = Instant::now();
    let mut frame = 0u64;
    let mut next = Instant::now();
    while Instant::now() < deadline && viewers.iter().any(|v| v.received < want) {
        if publisher.rtc().is_connected() && Instant::now() >= next {
            next += Duration::from_millis(33);
            frame += 1;
            let key = frame == 1 || std::mem::take(&mut publisher.keyframe_asked);
            let mut data = if key {
                vec![
                    0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0,
                    0, 1, 0x65,
                ]
            } else {
                vec![0, 0, 0, 1, 0x41]
            };
            data.extend(std::iter::repeat_n(7u8, 500));
            let w = publisher.rtc().writer(video).unwrap();
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::H264)
                .unwrap()
                .pt();
            w.write(
                pt,
                Instant::now(),
                MediaTime::from_90khz(frame * 3000),
                data,
            )
            .unwrap();
        }
        publisher.step();
        for v in &mut viewers {
            v.step();
        }
    }
    (publisher, viewers, start.elapsed())
}

/// What OBS sends: an offer with no candidates at all (RFC 9725 §4.1 lets the client trickle
/// or not at all). The ICE-lite server learns the address from the client's STUN checks.
fn without_candidates(sdp: &str) -> String {
    let kept: Vec<&str> = sdp
        .lines()
        .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
        .collect();
    assert!(
        kept.len() < sdp.lines().count(),
        "the client's offer had candidates to strip"
    );
    kept.join("\r\n") + "\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_crosses_shards_over_loopback_udp() {
    let config = SfuConfig {
        base_port: 0,
        shards: 2,
        candidate_ips: vec!["127.0.0.1".parse().unwrap()],
        ..SfuConfig::default()
    };
    let (sfu, mut events) = SfuHandle::start(config).unwrap();
    assert_eq!(sfu.addrs().shards.len(), 2);
    let room = RoomId(1);

    // Bad input gets errors, not panics.
    assert!(matches!(Offer::parse("garbage"), Err(OfferError::NotSdp)));
    assert!(matches!(
        sfu.close(venue_sfu::SessionId(0x1234_5600)).await,
        Err(SfuError::UnknownSession)
    ));

    let mut publisher = Client::new(false);
    let (ans, video) = publish(&sfu, room, &mut publisher, true).await;
    let mut viewer = Client::new(true);
    let sub = subscribe(&sfu, room, &mut viewer).await;
    assert_ne!(
        ans.session.shard(),
        sub.session.shard(),
        "round-robin puts them on different shards"
    );

    let handle = tokio::task::spawn_blocking(move || forward(publisher, video, vec![viewer], 60));
    let (_, viewers, took) = handle.await.unwrap();
    let received = viewers[0].received;
    assert!(
        received >= 60,
        "viewer received {received} RTP packets in {took:?}"
    );

    let mut saw_up = false;
    while let Ok(e) = events.try_recv() {
        saw_up |= matches!(e, venue_sfu::SfuEvent::PublisherUp { .. });
    }
    assert!(saw_up, "PublisherUp reported");
    sfu.close(sub.session).await.unwrap();
    sfu.close(ans.session).await.unwrap();
}

/// Polls `f` every 10 ms until it holds or `timeout` passes.
async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_with_only_ice_tcp_gets_media() {
    let config = SfuConfig {
        base_port: 0,
        shards: 1,
        candidate_ips: vec!["127.0.0.1".parse().unwrap()],
        ..SfuConfig::default()
    };
    let (sfu, _events) = SfuHandle::start(config).unwrap();
    let room = RoomId(1);
    let shard = sfu.addrs().shards[0];
    let mut publisher = Client::new(false);
    let (ans, video) = publish(&sfu, room, &mut publisher, false).await;
    // The TCP listener is on the UDP socket's port number.
    let mut viewer = Client::tcp(SocketAddr::new([127, 0, 0, 1].into(), shard.port()), true);
    let sub = subscribe(&sfu, room, &mut viewer).await;
    assert!(
        sub.answer_sdp.contains(&format!(
            "127.0.0.1 {} typ host tcptype passive",
            shard.port()
        )),
        "passive TCP candidate in the answer:\n{}",
        sub.answer_sdp
    );
    let (_, viewers, took) =
        tokio::task::spawn_blocking(move || forward(publisher, video, vec![viewer], 60))
            .await
            .unwrap();
    assert!(
        viewers[0].received >= 60,
        "TCP viewer received {} RTP packets in {took:?}",
        viewers[0].received
    );
    let stats = sfu.ice_tcp_stats();
    assert_eq!((stats.accepted, stats.open), (1, 1), "{stats:?}");
    assert_eq!(stats.write_dropped, 0, "{stats:?}");
    // The viewer goes away: the connection is closed and its slot given back.
    drop(viewers);
    eventually(Duration::from_secs(5), "the connection to close", || {
        sfu.ice_tcp_stats().open == 0
    })
    .await;
    sfu.close(sub.session).await.unwrap();
    sfu.close(ans.session).await.unwrap();
}

/// Reads until the peer closes (true) or 5 s pass (false).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_closes_bad_connections_and_those_over_the_limit() {
    let config = SfuConfig {
        base_port: 0,
        shards: 1,
        bind_ip: "127.0.0.1".parse().unwrap(),
        ice_tcp_max_connections: 2,
        ..SfuConfig::default()
    };
    let (sfu, _events) = SfuHandle::start(config).unwrap();
    let shard = sfu.addrs().shards[0];

    // A zero-length frame.
    let mut zero = TcpStream::connect(shard).unwrap();
    zero.write_all(&[0, 0]).unwrap();
    let closed = closed_by_server(&mut zero);
    assert!(closed, "zero-length frame closes {:?}", sfu.ice_tcp_stats());
    // A whole first frame that is not STUN (an RTP-looking packet).
    let mut rtp = TcpStream::connect(shard).unwrap();
    let mut frame = Vec::new();
    encode(&[0x80; 40], &mut frame).unwrap();
    rtp.write_all(&frame).unwrap();
    assert!(
        closed_by_server(&mut rtp),
        "a first frame that is not STUN closes"
    );
    // A first frame over 2 KiB cannot be a STUN Binding request: closed before its body.
    let mut big = TcpStream::connect(shard).unwrap();
    big.write_all(&[0x0b, 0xb8, 0x00, 0x01]).unwrap(); // 3000 bytes announced
    assert!(closed_by_server(&mut big), "an oversize first frame closes");
    eventually(Duration::from_secs(5), "all counted", || {
        let s = sfu.ice_tcp_stats();
        s.bad_frames == 2 && s.not_stun == 1 && s.open == 0
    })
    .await;

    // Two idle connections fill the limit; the third is closed at once.
    let a = TcpStream::connect(shard).unwrap();
    let _b = TcpStream::connect(shard).unwrap();
    eventually(Duration::from_secs(5), "two open", || {
        sfu.ice_tcp_stats().open == 2
    })
    .await;
    let mut c = TcpStream::connect(shard).unwrap();
    assert!(closed_by_server(&mut c), "over the limit closes");
    assert_eq!(sfu.ice_tcp_stats().refused, 1);
    // A slot comes back when one closes.
    a.shutdown(std::net::Shutdown::Both).unwrap();
    eventually(Duration::from_secs(5), "a slot back", || {
        sfu.ice_tcp_stats().open == 1
    })
    .await;
    let mut d = TcpStream::connect(shard).unwrap();
    d.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let r = d.read(&mut [0u8; 8]);
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a connection within the limit stays open: {r:?}"
    );
    assert_eq!(sfu.ice_tcp_stats().accepted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_shard_serves_ipv4_and_ipv6_over_udp_and_tcp() {
    let config = SfuConfig {
        base_port: 0,
        shards: 1,
        bind_ip: "::".parse().unwrap(),
        candidate_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        ..SfuConfig::default()
    };
    let (sfu, _events) = SfuHandle::start(config).expect(
        "binding [::] (IPv6 must be enabled on this machine; `sysctl net.ipv6.conf.all.disable_ipv6`)",
    );
    let room = RoomId(1);
    let shard = sfu.addrs().shards[0];
    assert!(shard.is_ipv6(), "bound to [::]: {shard}");
    // An IPv4 UDP publisher (it reaches the dual-stack socket as ::ffff:127.0.0.1).
    let mut publisher = Client::new(false);
    let (ans, video) = publish(&sfu, room, &mut publisher, false).await;
    // ICE-TCP viewers over IPv6 and over IPv4.
    let mut v6 = Client::tcp(SocketAddr::new("::1".parse().unwrap(), shard.port()), true);
    let s6 = subscribe(&sfu, room, &mut v6).await;
    let mut v4 = Client::tcp(
        SocketAddr::new("127.0.0.1".parse().unwrap(), shard.port()),
        true,
    );
    let s4 = subscribe(&sfu, room, &mut v4).await;
    assert!(
        s6.answer_sdp
            .contains(&format!("::1 {} typ host", shard.port())),
        "IPv6 candidate in the answer:\n{}",
        s6.answer_sdp
    );
    let (_, viewers, took) =
        tokio::task::spawn_blocking(move || forward(publisher, video, vec![v6, v4], 60))
            .await
            .unwrap();
    for (v, name) in viewers.iter().zip(["IPv6", "IPv4"]) {
        assert!(
            v.received >= 60,
            "{name} TCP viewer received {} RTP packets in {took:?}",
            v.received
        );
    }
    for s in [s6, s4, ans] {
        sfu.close(s.session).await.unwrap();
    }
}
