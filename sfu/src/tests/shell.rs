//! Unit tests of the shell (`shell/`): address normalisation, ICE-TCP write routing, reply
//! and tap delivery (no sockets).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tcp::{OpenSlot, TcpConn, TcpInput};
use super::udp::{canonical, for_socket};
use super::*;

#[test]
fn ipv4_mapped_addresses_become_plain_ipv4() {
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
    assert_eq!(canonical(mapped), "192.0.2.7:4000".parse().unwrap());
    for plain in [
        "192.0.2.7:4000",
        "[2001:db8::1]:4000",
        "[::1]:9",
        "[fd00::2]:1",
    ] {
        let a: SocketAddr = plain.parse().unwrap();
        assert_eq!(canonical(a), a, "{plain} unchanged");
    }
}

#[test]
fn ipv4_destinations_are_mapped_for_an_ipv6_socket_only() {
    let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
    assert_eq!(for_socket(v4, false), v4);
    assert_eq!(for_socket(v6, true), v6);
    let mapped = for_socket(v4, true);
    assert_eq!(mapped, "[::ffff:192.0.2.7]:4000".parse().unwrap());
    assert_eq!(canonical(mapped), v4, "round trip");
}

fn conns(counters: &Arc<IceTcpCounters>) -> (TcpConns, mpsc::Receiver<TcpInput>) {
    let (inbox, rx) = mpsc::channel(4);
    (
        TcpConns {
            conns: HashMap::new(),
            inbox,
            counters: counters.clone(),
            next_id: 0,
        },
        rx,
    )
}

#[test]
fn tcp_transmits_go_to_their_connection_and_a_full_queue_drops() {
    let counters = Arc::new(IceTcpCounters::new(8));
    let (mut tcp, _inbox) = conns(&counters);
    let a: SocketAddr = "10.0.0.2:40001".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:40002".parse().unwrap();
    let (tx_a, mut rx_a) = mpsc::channel(2);
    let (tx_b, mut rx_b) = mpsc::channel(2);
    tcp.conns.insert(
        a,
        TcpConn {
            id: 1,
            writes: tx_a,
        },
    );
    tcp.conns.insert(
        b,
        TcpConn {
            id: 2,
            writes: tx_b,
        },
    );

    tcp.send(a, vec![1]);
    tcp.send(b, vec![2]);
    tcp.send(a, vec![3]);
    tcp.send(a, vec![4]); // queue of 2 is full
    assert_eq!(rx_a.try_recv().unwrap(), vec![1]);
    assert_eq!(rx_a.try_recv().unwrap(), vec![3]);
    assert!(rx_a.try_recv().is_err());
    assert_eq!(rx_b.try_recv().unwrap(), vec![2]);
    assert_eq!(counters.snapshot().write_dropped, 1);

    // No connection for the address: counted, nothing queued anywhere.
    tcp.send("10.0.0.3:1".parse().unwrap(), vec![5]);
    assert_eq!(counters.snapshot().unrouted, 1);
    // The connection's task is gone (its queue closed): counted as unrouted too.
    drop(rx_b);
    tcp.send(b, vec![6]);
    assert_eq!(counters.snapshot().unrouted, 2);
}

#[test]
fn closing_a_connection_makes_the_core_forget_it() {
    let now = Instant::now();
    let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let mut core = ShardCore::new(0, 1, crate::SfuConfig::default(), vec![server], now);
    let counters = Arc::new(IceTcpCounters::new(8));
    let (mut tcp, _inbox) = conns(&counters);
    let a: SocketAddr = "10.0.0.2:40001".parse().unwrap();
    let (tx, _rx) = mpsc::channel(2);
    tcp.conns.insert(a, TcpConn { id: 7, writes: tx });
    // A stale close (another connection id from the same address) is ignored.
    tcp.input(&mut core, TcpInput::Closed { id: 6, remote: a });
    assert!(tcp.conns.contains_key(&a));
    // A frame of the live connection reaches the core (not STUN for any session: dropped).
    tcp.input(
        &mut core,
        TcpInput::Frame {
            id: 7,
            remote: a,
            local_ip: Some(server.ip()),
            data: vec![0x80; 20],
        },
    );
    assert_eq!(core.stats().datagrams_dropped, 1);
    // A frame of an old connection does not.
    tcp.input(
        &mut core,
        TcpInput::Frame {
            id: 3,
            remote: a,
            local_ip: Some(server.ip()),
            data: vec![0x80; 20],
        },
    );
    assert_eq!(core.stats().datagrams_dropped, 1);
    tcp.input(&mut core, TcpInput::Closed { id: 7, remote: a });
    assert!(tcp.conns.is_empty());
    tcp.send(a, vec![1]);
    assert_eq!(counters.snapshot().unrouted, 1);
}

#[test]
fn the_connection_limit_is_shared_and_given_back() {
    let counters = Arc::new(IceTcpCounters::new(2));
    assert!(counters.try_open());
    let slot = OpenSlot(counters.clone());
    assert!(counters.try_open());
    assert!(!counters.try_open(), "third over the limit of 2");
    assert_eq!(counters.snapshot().open, 2);
    drop(slot);
    assert_eq!(counters.snapshot().open, 1);
    assert!(counters.try_open());
}

#[test]
fn replies_go_to_their_request_and_a_full_tap_queue_drops() {
    let now = Instant::now();
    let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let mut core = ShardCore::new(0, 1, crate::SfuConfig::default(), vec![server], now);
    let mut d = Deliveries::default();
    let (reply, mut rx) = oneshot::channel();
    let session = crate::SessionId(0x4200);
    d.command(
        &mut core,
        ToShard::Ask {
            command: Command::Close {
                request: RequestId(7),
                session,
            },
            reply,
        },
    );
    assert!(d.replies.contains_key(&RequestId(7)));
    // The core answers as an output; the shell completes the request's sender.
    loop {
        match core.poll_output() {
            Output::Reply { request, reply } => d.reply(request, reply),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert!(d.replies.is_empty());
    assert!(matches!(
        rx.try_recv().unwrap().into_closed(),
        Some(Err(crate::SfuError::UnknownSession))
    ));

    let (tx, mut taps) = mpsc::channel(1);
    d.command(
        &mut core,
        ToShard::OpenTap {
            tap: TapId(3),
            room: RoomId(1),
            tx,
        },
    );
    let packet = || TapPacket {
        slot: 0,
        kind: str0m::media::MediaKind::Audio,
        codec: str0m::format::Codec::Opus,
        seq: 1,
        rtp_time: 0,
        marker: false,
        payload: std::sync::Arc::from(&[1u8][..]),
    };
    d.tap(TapId(3), packet());
    d.tap(TapId(3), packet());
    assert_eq!(d.tap_dropped, 1, "a queue of one holds one");
    assert_eq!(taps.try_recv().unwrap().seq, 1);
    d.command(
        &mut core,
        ToShard::Tell(Command::CloseTap { tap: TapId(3) }),
    );
    assert!(d.taps.is_empty());
}
