//! The relay hot path of the sans-IO core: one ChannelData packet client → peer and one peer
//! datagram → client (ChannelData and Data indication), 1200-byte payloads (an RTP packet).
//! `cargo bench -p venue-turn --bench relay`.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests and benches read the clock (only the sans-IO core may not).
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use venue_turn::client::{self, Client};
use venue_turn::{
    CoreConfig, FiveTuple, Output, PeerPolicy, Transport, TurnCore, rest_credentials,
};

fn setup(channel: bool) -> (TurnCore, SocketAddr, SocketAddr, SocketAddr) {
    let sfu: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let relay: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let from: SocketAddr = "198.51.100.1:6000".parse().unwrap();
    let now = venue_turn::fuzzing::now();
    let mut core = TurnCore::new(CoreConfig {
        secret: b"bench".to_vec(),
        policy: PeerPolicy {
            allowed: vec![sfu],
            allow_public_peers: false,
        },
        bandwidth_bytes_per_s: 0,
        ..CoreConfig::default()
    });
    let (u, p) = rest_credentials(b"bench", "b", Duration::from_secs(3600), now);
    let mut c = Client::new(&u, &p);
    let first = c.allocate();
    for o in core.handle(now, Transport::Udp, from, &first) {
        if let Output::ToClient { bytes, .. } = o {
            c.learn(&bytes);
        }
    }
    core.handle(now, Transport::Udp, from, &c.allocate());
    core.relay_bound(
        FiveTuple {
            transport: Transport::Udp,
            client: from,
        },
        Ok(relay),
    );
    if channel {
        core.handle(now, Transport::Udp, from, &c.channel_bind(0x4000, sfu));
    } else {
        core.handle(now, Transport::Udp, from, &c.create_permission(sfu));
    }
    (core, from, relay, sfu)
}

/// Runs `f` `n` times and prints nanoseconds per call and calls per second.
fn time(name: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{name:28} {ns:8.1} ns/packet  {:6.2} M packets/s", 1e3 / ns);
}

fn main() {
    let now = venue_turn::fuzzing::now();
    let n = 2_000_000;
    let payload = vec![0xA5u8; 1200];
    let (mut core, from, relay, sfu) = setup(true);
    let pkt = client::channel_data(0x4000, &payload, false);
    time("channel_data_to_peer", n, || {
        black_box(core.handle(now, Transport::Udp, from, black_box(&pkt)));
    });
    time("peer_to_channel_data", n, || {
        black_box(core.handle_peer(now, relay, sfu, black_box(&payload)));
    });
    let (mut core, from, relay, sfu) = setup(false);
    let mut c = Client::new("", "");
    let send = c.send(sfu, &payload);
    time("send_indication_to_peer", n, || {
        black_box(core.handle(now, Transport::Udp, from, black_box(&send)));
    });
    time("peer_to_data_indication", n, || {
        black_box(core.handle_peer(now, relay, sfu, black_box(&payload)));
    });
}
