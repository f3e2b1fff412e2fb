//! Real-socket smoke tests on loopback: a TURN client (the crate's sans-IO
//! `venue_turn::client`, over tokio sockets) allocates with REST credentials over UDP and over
//! TCP, creates a permission for an allow-listed peer socket, sends through a Send indication
//! and through ChannelData, and gets the peer's replies back as a Data indication and as
//! ChannelData. Expired and forged credentials get 401, a non-allowed 127.0.0.1 port gets 403,
//! and random garbage leaves the server answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use venue_turn::client::{self, Client, Received};
use venue_turn::stun;
use venue_turn::{CoreConfig, PeerPolicy, ShellConfig, TurnServer, rest_credentials};

const SECRET: &[u8] = b"loopback-secret";
const WAIT: Duration = Duration::from_secs(5);

async fn server(allowed: Vec<SocketAddr>) -> TurnServer {
    TurnServer::start(ShellConfig {
        udp_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        tcp_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
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
    })
    .await
    .unwrap()
}

/// One client connection, UDP or TCP.
enum Conn {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream, Vec<u8>),
}

impl Conn {
    async fn udp(server: SocketAddr) -> Conn {
        Conn::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), server)
    }

    async fn tcp(server: SocketAddr) -> Conn {
        Conn::Tcp(TcpStream::connect(server).await.unwrap(), Vec::new())
    }

    fn is_tcp(&self) -> bool {
        matches!(self, Conn::Tcp(..))
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Conn::Udp(s, to) => {
                s.send_to(bytes, *to).await.unwrap();
            }
            Conn::Tcp(s, _) => s.write_all(bytes).await.unwrap(),
        }
    }

    /// The next datagram or TCP frame.
    async fn recv(&mut self) -> Vec<u8> {
        timeout(WAIT, async {
            match self {
                Conn::Udp(s, _) => {
                    let mut buf = vec![0u8; 65536];
                    let (n, _) = s.recv_from(&mut buf).await.unwrap();
                    buf.truncate(n);
                    buf
                }
                Conn::Tcp(s, pending) => loop {
                    if let Ok(Some(n)) = stun::tcp_frame_len(pending)
                        && pending.len() >= n
                    {
                        return pending.drain(..n).collect();
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "server closed the TCP connection");
                    pending.extend_from_slice(&chunk[..n]);
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

async fn relay_both_ways(conn: &mut Conn) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    // Another socket on 127.0.0.1 that is NOT allow-listed.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger_addr = stranger.local_addr().unwrap();
    let srv = server(vec![peer_addr]).await;
    let addr = if conn.is_tcp() {
        srv.tcp_addr().unwrap()
    } else {
        srv.udp_addr().unwrap()
    };
    *conn = if conn.is_tcp() {
        Conn::tcp(addr).await
    } else {
        Conn::udp(addr).await
    };
    let tcp = conn.is_tcp();
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
    assert!(stats.forbidden >= 3, "{stats:?}");
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
    let mut conn = Conn::Udp(
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        "127.0.0.1:9".parse().unwrap(),
    );
    relay_both_ways(&mut conn).await;
}

#[tokio::test]
async fn tcp_allocate_permission_send_channel_both_ways() {
    // A placeholder TCP conn is replaced inside once the server's port is known.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut conn = Conn::tcp(l.local_addr().unwrap()).await;
    relay_both_ways(&mut conn).await;
}

#[tokio::test]
async fn expired_and_forged_credentials_get_401() {
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let srv = server(vec![peer]).await;
    for tcp in [false, true] {
        let mut conn = if tcp {
            Conn::tcp(srv.tcp_addr().unwrap()).await
        } else {
            Conn::udp(srv.udp_addr().unwrap()).await
        };
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
