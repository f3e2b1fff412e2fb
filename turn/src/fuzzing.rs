//! Entry points for the cargo-fuzz targets in `fuzz/` and the seeded random-input test
//! (`turn/tests/fuzz.rs`): every parser of outside bytes, and the core on arbitrary input.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::{CoreConfig, Transport, TurnCore};
use crate::policy::PeerPolicy;
use crate::stun;

/// Runs the STUN parser, TCP framer (whole and in 7-byte pieces, as a stream arrives) and
/// ChannelData parser on `data`; must never panic.
pub fn parse(data: &[u8]) {
    if let Ok(m) = stun::Message::parse(data) {
        let _ = m.check_integrity(b"key");
        for (t, _) in m.attributes() {
            let _ = m.get_xor_addr(t);
            let _ = m.get_u32(t);
            let _ = m.get_str(t);
        }
    }
    let _ = stun::tcp_frame_len(data);
    let mut frames = stun::StreamFrames::default();
    'stream: for piece in data.chunks(7) {
        frames.push(piece);
        loop {
            match frames.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'stream,
            }
        }
    }
    let _ = stun::parse_channel_data(data);
}

/// A core for fuzzing: REST secret `b"fuzz"`, 127.0.0.1:50000 allow-listed.
pub fn core() -> TurnCore {
    TurnCore::new(CoreConfig {
        secret: b"fuzz".to_vec(),
        policy: PeerPolicy {
            allowed: vec![SocketAddr::from(([127, 0, 0, 1], 50000))],
            allow_public_peers: false,
        },
        ..CoreConfig::default()
    })
}

/// The fuzzing clock: a fixed instant (2027-01-15).
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Feeds `data` to `core` as a UDP datagram, a TCP frame and a peer datagram, answering any
/// relay bind; must never panic.
pub fn feed(core: &mut TurnCore, data: &[u8]) {
    parse(data);
    let now = now();
    let client = SocketAddr::from(([198, 51, 100, 1], 6000));
    for transport in [Transport::Udp, Transport::Tcp] {
        for o in core.handle(now, transport, client, data) {
            if let crate::Output::BindRelay { client, .. } = o {
                let _ = core.relay_bound(client, Ok(SocketAddr::from(([127, 0, 0, 1], 40000))));
            }
        }
    }
    let _ = core.handle_peer(
        now,
        SocketAddr::from(([127, 0, 0, 1], 40000)),
        SocketAddr::from(([127, 0, 0, 1], 50000)),
        data,
    );
}
