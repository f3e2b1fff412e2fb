//! Real-socket smoke tests on loopback: a TURN client (the crate's sans-IO
//! `venue_turn::client`, over tokio sockets) allocates with REST credentials over UDP, TCP and
//! TLS, creates a permission for an allow-listed peer socket, sends through a Send indication
//! and through ChannelData, and gets the peer's replies back as a Data indication and as
//! ChannelData. Missing, expired and forged credentials get 401, a non-allowed 127.0.0.1 port
//! and private addresses get 403, the per-user quota gives 486, the bandwidth quota drops the
//! excess, and random garbage leaves the server answering. TLS: ALPN `stun.turn`, non-TLS
//! bytes and silent clients on the TLS port, the shared TCP/TLS connection bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests and benches read the clock (only the sans-IO core may not).
#![allow(clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use venue_turn::client::{self, Client, Received};
use venue_turn::stun::StreamFrames;
use venue_turn::{
    CoreConfig, PeerPolicy, ShellConfig, TlsConfig, TlsListen, TurnServer, rest_credentials,
};

const SECRET: &[u8] = b"loopback-secret";
const WAIT: Duration = Duration::from_secs(5);

/// One self-signed certificate for `localhost` per test binary, and the server's TLS config.
fn test_cert() -> &'static (CertificateDer<'static>, TlsConfig) {
    static CERT: OnceLock<(CertificateDer<'static>, TlsConfig)> = OnceLock::new();
    CERT.get_or_init(|| {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let config = TlsConfig::from_der(vec![der.clone()], key).unwrap();
        (der, config)
    })
}

fn config(allowed: Vec<SocketAddr>) -> ShellConfig {
    ShellConfig {
        udp_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        tcp_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        tls: Some(TlsListen {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            config: test_cert().1.clone(),
            handshake_timeout: Duration::from_secs(10),
        }),
        relay_ipv4: Ipv4Addr::LOCALHOST,
        core: CoreConfig {
            secret: SECRET.to_vec(),
            policy: PeerPolicy {
                allowed,
                allow_public_peers: false,
            },
            ..CoreConfig::default()
        },
        ..ShellConfig::default()
    }
}

async fn server(allowed: Vec<SocketAddr>) -> TurnServer {
    TurnServer::start(config(allowed)).await.unwrap()
}

/// A TLS client trusting the test certificate, offering these ALPN protocols.
fn tls_connector(alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(test_cert().0.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_stream(
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tls_connector(alpn).connect(name, tcp).await
}

/// A byte stream to the server: TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Udp,
    Tcp,
    Tls,
}

/// One client connection. TCP and TLS share one code path (`Stream`): the same frames, the
/// same RFC 8656 §12.5 framing of what comes back.
enum Conn {
    Udp(UdpSocket, SocketAddr),
    Stream(Box<dyn Stream>, StreamFrames),
}

impl Conn {
    async fn open(kind: Kind, srv: &TurnServer) -> Conn {
        match kind {
            Kind::Udp => Conn::udp(srv.udp_addr().unwrap()).await,
            Kind::Tcp => Conn::tcp(srv.tcp_addr().unwrap()).await,
            Kind::Tls => Conn::tls(srv.tls_addr().unwrap()).await,
        }
    }

    async fn udp(server: SocketAddr) -> Conn {
        Conn::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), server)
    }

    async fn tcp(server: SocketAddr) -> Conn {
        let s = TcpStream::connect(server).await.unwrap();
        Conn::Stream(Box::new(s), StreamFrames::default())
    }

    async fn tls(server: SocketAddr) -> Conn {
        let s = tls_stream(server, &[b"stun.turn"]).await.unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"stun.turn"[..]));
        Conn::Stream(Box::new(s), StreamFrames::default())
    }

    fn is_stream(&self) -> bool {
        matches!(self, Conn::Stream(..))
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Conn::Udp(s, to) => {
                s.send_to(bytes, *to).await.unwrap();
            }
            Conn::Stream(s, _) => {
                s.write_all(bytes).await.unwrap();
                s.flush().await.unwrap();
            }
        }
    }

    /// The next datagram or stream frame.
    async fn recv(&mut self) -> Vec<u8> {
        timeout(WAIT, async {
            match self {
                Conn::Udp(s, _) => {
                    let mut buf = vec![0u8; 65536];
                    let (n, _) = s.recv_from(&mut buf).await.unwrap();
                    buf.truncate(n);
                    buf
                }
                Conn::Stream(s, frames) => loop {
                    if let Some(frame) = frames.next_frame().unwrap() {
                        return frame;
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "server closed the connection");
                    frames.push(&chunk[..n]);
                },
            }
        })
        .await
        .expect("no answer from the TURN server")
    }

    async fn request(&mut self, c: &Client, bytes: &[u8]) -> Received {
        self.send(bytes).await;
        client::decode(&self.recv().await, &c.key())
    }
}

/// Reads from a raw stream until the server closes it (EOF or reset); panics after `WAIT`.
async fn closed_by_server(s: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    timeout(WAIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server kept the connection open");
}

async fn peer_recv(peer: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("peer got nothing")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

/// 401 challenge, then an authenticated Allocate; returns the relayed address.
async fn allocate(conn: &mut Conn, c: &mut Client) -> SocketAddr {
    let req = c.allocate();
    conn.send(&req).await;
    assert_eq!(c.learn(&conn.recv().await), Some(401));
    let req = c.allocate();
    match conn.request(c, &req).await {
        Received::Success {
            relayed: Some(relayed),
            mapped: Some(_),
            lifetime: Some(600),
            integrity_ok: true,
            ..
        } => relayed,
        other => panic!("{other:?}"),
    }
}

async fn relay_both_ways(kind: Kind) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    // Another socket on 127.0.0.1 that is NOT allow-listed.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger_addr = stranger.local_addr().unwrap();
    let srv = server(vec![peer_addr]).await;
    let conn = &mut Conn::open(kind, &srv).await;
    let tcp = conn.is_stream();
    let (u, p) = rest_credentials(
        SECRET,
        "sess-1",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    let mut c = Client::new(&u, &p);
    let relayed = allocate(conn, &mut c).await;
    assert_eq!(relayed.ip(), Ipv4Addr::LOCALHOST);

    // Permission for the allow-listed peer; 403 for another 127.0.0.1 port.
    let req = c.create_permission(peer_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success {
            integrity_ok: true,
            ..
        }
    ));
    let req = c.create_permission(stranger_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Error { code: 403, .. }
    ));
    let req = c.channel_bind(0x4000, stranger_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Error { code: 403, .. }
    ));
    // Private, link-local (cloud metadata) and CGNAT addresses: 403 too (no open relay).
    for private in [
        "10.0.0.1:5000",
        "192.168.1.1:5000",
        "169.254.169.254:80",
        "100.64.0.1:1",
    ] {
        let req = c.create_permission(private.parse().unwrap());
        assert!(
            matches!(
                conn.request(&c, &req).await,
                Received::Error { code: 403, .. }
            ),
            "{private}"
        );
    }

    // Send indication → the peer, from the relayed address; the reply → Data indication.
    conn.send(&c.send(peer_addr, b"via send")).await;
    let (got, from) = peer_recv(&peer).await;
    assert_eq!((got.as_slice(), from), (&b"via send"[..], relayed));
    peer.send_to(b"reply one", relayed).await.unwrap();
    assert_eq!(
        client::decode(&conn.recv().await, b""),
        Received::Data {
            peer: peer_addr,
            data: b"reply one".to_vec()
        }
    );

    // ChannelBind, ChannelData both ways (odd length: padding on TCP).
    let req = c.channel_bind(0x4001, peer_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success { .. }
    ));
    conn.send(&client::channel_data(0x4001, b"via channel", tcp))
        .await;
    let (got, from) = peer_recv(&peer).await;
    assert_eq!((got.as_slice(), from), (&b"via channel"[..], relayed));
    peer.send_to(b"reply two", relayed).await.unwrap();
    assert_eq!(
        client::decode(&conn.recv().await, b""),
        Received::ChannelData {
            channel: 0x4001,
            data: b"reply two".to_vec()
        }
    );

    // The stranger cannot reach the client through the relay, nor the client the stranger.
    stranger.send_to(b"let me in", relayed).await.unwrap();
    conn.send(&c.send(stranger_addr, b"nope")).await;
    // Refresh proves the connection is alive and that nothing else was queued before it.
    let req = c.refresh(300);
    match conn.request(&c, &req).await {
        Received::Success {
            lifetime: Some(600),
            ..
        } => {}
        other => panic!("stranger traffic leaked or refresh failed: {other:?}"),
    }
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(200), stranger.recv_from(&mut buf))
            .await
            .is_err(),
        "the stranger received relayed data"
    );
    let stats = srv.stats().await.unwrap();
    assert!(stats.forbidden >= 7, "{stats:?}");
    assert!(stats.unroutable >= 1, "{stats:?}");
    assert_eq!((stats.relayed_to_peer, stats.relayed_to_client), (2, 2));

    // Refresh 0 deletes the allocation: the relay no longer forwards.
    let req = c.refresh(0);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success {
            lifetime: Some(0),
            ..
        }
    ));
    let req = c.create_permission(peer_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Error { code: 437, .. }
    ));
}

#[tokio::test]
async fn udp_allocate_permission_send_channel_both_ways() {
    relay_both_ways(Kind::Udp).await;
}

#[tokio::test]
async fn tcp_allocate_permission_send_channel_both_ways() {
    relay_both_ways(Kind::Tcp).await;
}

#[tokio::test]
async fn tls_allocate_permission_send_channel_both_ways() {
    relay_both_ways(Kind::Tls).await;
}

#[tokio::test]
async fn missing_expired_and_forged_credentials_get_401() {
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let srv = server(vec![peer]).await;
    for kind in [Kind::Udp, Kind::Tcp, Kind::Tls] {
        let mut conn = Conn::open(kind, &srv).await;
        // Missing: an unsigned Allocate is challenged with 401 (REALM, NONCE) and no relay.
        let mut anonymous = Client::new("", "");
        let req = anonymous.allocate();
        conn.send(&req).await;
        assert_eq!(anonymous.learn(&conn.recv().await), Some(401));
        assert!(!anonymous.nonce.is_empty() && anonymous.realm == "venue");
        let past = SystemTime::now() - Duration::from_secs(7200);
        let (u, p) = rest_credentials(SECRET, "old", Duration::from_secs(600), past);
        let mut expired = Client::new(&u, &p);
        let req = expired.allocate();
        conn.send(&req).await;
        assert_eq!(expired.learn(&conn.recv().await), Some(401));
        let req = expired.allocate();
        assert!(matches!(
            conn.request(&expired, &req).await,
            Received::Error { code: 401, .. }
        ));

        let (u, _) = rest_credentials(SECRET, "x", Duration::from_secs(600), SystemTime::now());
        let mut forged = Client::new(&u, "bm90IHRoZSBwYXNzd29yZA==");
        forged.realm = expired.realm.clone();
        forged.nonce = expired.nonce.clone();
        let req = forged.allocate();
        assert!(matches!(
            conn.request(&forged, &req).await,
            Received::Error { code: 401, .. }
        ));
    }
    let stats = srv.stats().await.unwrap();
    assert_eq!(stats.allocations_created, 0);
}

#[tokio::test]
async fn random_garbage_leaves_the_server_answering() {
    let srv = server(vec![]).await;
    let mut rng = StdRng::seed_from_u64(3478);
    let mut udp = Conn::udp(srv.udp_addr().unwrap()).await;
    let mut c = Client::new("", "");
    let good = c.binding();
    for i in 0..2_000 {
        let mut b = if i % 2 == 0 {
            good.clone()
        } else {
            (0..rng.random_range(0..120))
                .map(|_| rng.random())
                .collect()
        };
        if !b.is_empty() {
            let j = rng.random_range(0..b.len());
            b[j] ^= rng.random::<u8>() | 1;
        }
        udp.send(&b).await;
    }
    // Garbage and a truncated frame over TCP: the server closes or waits, never crashes.
    let mut tcp = TcpStream::connect(srv.tcp_addr().unwrap()).await.unwrap();
    tcp.write_all(&[0xFF; 64]).await.unwrap();
    let mut t2 = TcpStream::connect(srv.tcp_addr().unwrap()).await.unwrap();
    t2.write_all(&good[..10]).await.unwrap();
    drop(t2);
    // Drain and check a fresh Binding is answered, on both transports.
    let mut fresh = Conn::udp(srv.udp_addr().unwrap()).await;
    match fresh.request(&c, &good).await {
        Received::Success {
            mapped: Some(_), ..
        } => {}
        other => panic!("{other:?}"),
    }
    let mut fresh = Conn::tcp(srv.tcp_addr().unwrap()).await;
    match fresh.request(&c, &good).await {
        Received::Success {
            mapped: Some(_), ..
        } => {}
        other => panic!("{other:?}"),
    }
    let stats = srv.stats().await.unwrap();
    assert!(stats.malformed > 500, "{stats:?}");
}

#[tokio::test]
async fn per_user_allocation_quota_holds_on_real_sockets() {
    let srv = server(vec!["127.0.0.1:50000".parse().unwrap()]).await;
    let (u, p) = rest_credentials(
        SECRET,
        "quota-user",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    let mut conns = Vec::new();
    for _ in 0..5 {
        let mut conn = Conn::udp(srv.udp_addr().unwrap()).await;
        let mut c = Client::new(&u, &p);
        allocate(&mut conn, &mut c).await;
        conns.push(conn);
    }
    // The sixth, over TCP this time, is refused with 486.
    let mut conn = Conn::tcp(srv.tcp_addr().unwrap()).await;
    let mut c = Client::new(&u, &p);
    let req = c.allocate();
    conn.send(&req).await;
    assert_eq!(c.learn(&conn.recv().await), Some(401));
    let req = c.allocate();
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Error { code: 486, .. }
    ));
    // Another credential id is not affected.
    let (u2, p2) = rest_credentials(
        SECRET,
        "someone-else",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    let mut c2 = Client::new(&u2, &p2);
    allocate(&mut conn, &mut c2).await;
    let stats = srv.stats().await.unwrap();
    assert_eq!((stats.allocations_created, stats.quota_refused), (6, 1));
}

#[tokio::test]
async fn bandwidth_quota_drops_the_excess_on_real_sockets() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut cfg = config(vec![peer_addr]);
    cfg.core.bandwidth_bytes_per_s = 10_000;
    let srv = TurnServer::start(cfg).await.unwrap();
    let mut conn = Conn::open(Kind::Udp, &srv).await;
    let (u, p) = rest_credentials(SECRET, "bw", Duration::from_secs(600), SystemTime::now());
    let mut c = Client::new(&u, &p);
    allocate(&mut conn, &mut c).await;
    let req = c.channel_bind(0x4000, peer_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success { .. }
    ));
    // 20 kB at once against a 10 kB/s bucket with a one-second burst.
    for _ in 0..20 {
        conn.send(&client::channel_data(0x4000, &[7u8; 1000], false))
            .await;
    }
    // The actor handles one client's datagrams in order: once the Refresh is answered, all 20
    // have been relayed or dropped.
    let req = c.refresh(600);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success { .. }
    ));
    let stats = srv.stats().await.unwrap();
    // A few milliseconds of refill may let one more through.
    assert!(
        (10..=11).contains(&stats.relayed_to_peer),
        "relayed {stats:?}"
    );
    assert_eq!(
        stats.bandwidth_dropped_packets,
        20 - stats.relayed_to_peer,
        "{stats:?}"
    );
    assert_eq!(
        stats.bandwidth_dropped_bytes,
        1000 * stats.bandwidth_dropped_packets
    );
    for _ in 0..stats.relayed_to_peer {
        let (got, _) = peer_recv(&peer).await;
        assert_eq!(got.len(), 1000);
    }
}

#[tokio::test]
async fn tls_alpn_stun_turn_is_echoed_and_other_offers_are_still_served() {
    let srv = server(vec![]).await;
    let addr = srv.tls_addr().unwrap();
    let s = tls_stream(addr, &[b"h2", b"stun.turn"]).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"stun.turn"[..]));
    for offer in [&[][..], &[&b"http/1.1"[..]][..]] {
        let s = tls_stream(addr, offer).await.unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), None);
        let mut conn = Conn::Stream(Box::new(s), StreamFrames::default());
        let mut c = Client::new("", "");
        let req = c.binding();
        assert!(matches!(
            conn.request(&c, &req).await,
            Received::Success {
                mapped: Some(_),
                ..
            }
        ));
    }
    assert_eq!(srv.stats().await.unwrap().tls_handshakes_failed, 0);
}

#[tokio::test]
async fn non_tls_bytes_on_the_tls_port_close_the_connection_and_tls_still_serves() {
    let srv = server(vec![]).await;
    let addr = srv.tls_addr().unwrap();
    let mut c = Client::new("", "");
    let binding = c.binding();
    // A plain TURN client on the TLS port, then random bytes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(&binding).await.unwrap();
    closed_by_server(&mut plain).await;
    let mut rng = StdRng::seed_from_u64(5349);
    let garbage: Vec<u8> = (0..300).map(|_| rng.random()).collect();
    let mut noisy = TcpStream::connect(addr).await.unwrap();
    let _ = noisy.write_all(&garbage).await;
    closed_by_server(&mut noisy).await;
    // A TLS client is still served, on the same port.
    let mut conn = Conn::tls(addr).await;
    assert!(matches!(
        conn.request(&c, &binding).await,
        Received::Success {
            mapped: Some(_),
            ..
        }
    ));
    let stats = srv.stats().await.unwrap();
    assert_eq!(stats.tls_handshakes_failed, 2, "{stats:?}");
}

#[tokio::test]
async fn silent_or_stalled_tls_handshakes_are_closed_after_the_timeout() {
    let mut cfg = config(vec![]);
    let limit = Duration::from_millis(300);
    if let Some(tls) = &mut cfg.tls {
        tls.handshake_timeout = limit;
    }
    let srv = TurnServer::start(cfg).await.unwrap();
    let addr = srv.tls_addr().unwrap();
    let started = Instant::now();
    // One says nothing; one stops after a TLS record header (a ClientHello that never comes).
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    closed_by_server(&mut silent).await;
    closed_by_server(&mut stalled).await;
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    let stats = srv.stats().await.unwrap();
    assert_eq!(stats.tls_handshakes_failed, 2, "{stats:?}");
    // Both slots were given back: a TLS client is served.
    let mut conn = Conn::tls(addr).await;
    let mut c = Client::new("", "");
    let req = c.binding();
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success { .. }
    ));
}

#[tokio::test]
async fn tls_and_tcp_connections_share_max_tcp_connections() {
    let mut cfg = config(vec![]);
    cfg.max_tcp_connections = 1;
    let srv = TurnServer::start(cfg).await.unwrap();
    let mut c = Client::new("", "");
    let binding = c.binding();
    // A TCP client holds the one slot: a TLS client is closed on accept.
    let mut tcp = Conn::open(Kind::Tcp, &srv).await;
    assert!(matches!(
        tcp.request(&c, &binding).await,
        Received::Success { .. }
    ));
    assert!(tls_stream(srv.tls_addr().unwrap(), &[]).await.is_err());
    assert_eq!(srv.stats().await.unwrap().connections_refused, 1);
    drop(tcp);
    // Once the TCP client is gone, the slot comes back (the server notices the close
    // asynchronously: poll with a deadline).
    let deadline = Instant::now() + WAIT;
    let mut tls = loop {
        if let Ok(s) = tls_stream(srv.tls_addr().unwrap(), &[]).await {
            break Conn::Stream(Box::new(s), StreamFrames::default());
        }
        assert!(Instant::now() < deadline, "the TCP slot was never freed");
        tokio::task::yield_now().await;
    };
    assert!(matches!(
        tls.request(&c, &binding).await,
        Received::Success { .. }
    ));
    // Now TLS holds it: TCP is refused.
    let mut refused = TcpStream::connect(srv.tcp_addr().unwrap()).await.unwrap();
    closed_by_server(&mut refused).await;
    let stats = srv.stats().await.unwrap();
    assert!(stats.connections_refused >= 2, "{stats:?}");
}

#[tokio::test]
async fn malformed_frames_over_tls_are_dropped_and_the_connection_kept() {
    let srv = server(vec![]).await;
    let mut conn = Conn::open(Kind::Tls, &srv).await;
    let mut c = Client::new("", "");
    let good = c.binding();
    // Wrong FINGERPRINT (RFC 8489 §14.7).
    let mut wrong_fp = good.clone();
    let n = wrong_fp.len();
    wrong_fp[n - 1] ^= 0xFF;
    // An attribute whose length runs past the end of the message (the frame length is fine).
    let mut oversize = good.clone();
    oversize[22] = 0xFF;
    conn.send(&wrong_fp).await;
    conn.send(&oversize).await;
    // Nothing answered them: the next frame back answers the good Binding.
    match conn.request(&c, &good).await {
        Received::Success {
            mapped: Some(_), ..
        } => {}
        other => panic!("{other:?}"),
    }
    let stats = srv.stats().await.unwrap();
    assert_eq!(stats.malformed, 2, "{stats:?}");
}

#[tokio::test]
async fn a_burst_of_udp_datagrams_is_relayed_whole() {
    // More datagrams at once than the server takes per wakeup: none may be lost between
    // batches. Small payloads keep the peer's default receive buffer from overflowing.
    const BURST: usize = 300;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut cfg = config(vec![peer_addr]);
    cfg.core.bandwidth_bytes_per_s = 0;
    let srv = TurnServer::start(cfg).await.unwrap();
    let mut conn = Conn::open(Kind::Udp, &srv).await;
    let (u, p) = rest_credentials(SECRET, "burst", Duration::from_secs(600), SystemTime::now());
    let mut c = Client::new(&u, &p);
    allocate(&mut conn, &mut c).await;
    let req = c.channel_bind(0x4000, peer_addr);
    assert!(matches!(
        conn.request(&c, &req).await,
        Received::Success { .. }
    ));
    for i in 0..BURST {
        let data = (i as u32).to_be_bytes();
        conn.send(&client::channel_data(0x4000, &data, false)).await;
    }
    let mut got = Vec::new();
    for _ in 0..BURST {
        let (bytes, _) = peer_recv(&peer).await;
        got.push(u32::from_be_bytes(bytes[..4].try_into().unwrap()));
    }
    // In order, none missing.
    assert_eq!(got, (0..BURST as u32).collect::<Vec<_>>());
    let stats = srv.stats().await.unwrap();
    assert_eq!(stats.relayed_to_peer, BURST as u64, "{stats:?}");
}
