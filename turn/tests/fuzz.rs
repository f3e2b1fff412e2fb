//! Seeded random-input run of the STUN/TURN fuzz entry points (`venue_turn::fuzzing`, the same
//! functions the cargo-fuzz target `turn_messages` in `fuzz/` calls), so CI exercises them on
//! stable Rust: valid client messages (Binding, a signed Allocate, CreatePermission,
//! ChannelBind, Send, ChannelData, Refresh) are mutated — bit flips, byte runs, truncation,
//! length-field games, splices — and fed to one core ~20,000 times. Nothing may panic, and the
//! core must still answer and relay afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use venue_turn::client::{self, Client, Received};
use venue_turn::{Output, Transport, fuzzing, rest_credentials};

fn seeds() -> Vec<Vec<u8>> {
    let (u, p) = rest_credentials(b"fuzz", "f", Duration::from_secs(3600), fuzzing::now());
    let mut c = Client::new(&u, &p);
    let mut core = fuzzing::core();
    let from = SocketAddr::from(([198, 51, 100, 1], 6000));
    let first = c.allocate();
    for o in core.handle(fuzzing::now(), Transport::Udp, from, &first) {
        if let Output::ToClient { bytes, .. } = o {
            c.learn(&bytes);
        }
    }
    let sfu = SocketAddr::from(([127, 0, 0, 1], 50000));
    c.sha256 = true;
    let signed_sha = c.allocate();
    c.sha256 = false;
    vec![
        c.binding(),
        first,
        c.allocate(),
        signed_sha,
        c.create_permission(sfu),
        c.channel_bind(0x4000, sfu),
        c.send(sfu, b"payload bytes"),
        client::channel_data(0x4000, b"channel payload", false),
        client::channel_data(0x4000, b"padded", true),
        c.refresh(600),
    ]
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..7) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let n = rng.random_range(1..16).min(b.len() - i);
                let v: u8 = rng.random();
                b[i..i + n].fill(v);
            }
            2 => {
                let n = rng.random_range(0..=b.len());
                b.truncate(n);
            }
            3 if b.len() >= 4 => {
                // Message or attribute length field games.
                let i = if rng.random_bool(0.5) {
                    2
                } else {
                    rng.random_range(20..b.len().max(21)).min(b.len() - 2)
                };
                let v: u16 = [0, 1, 3, 4, 0xFFFC, 0xFFFF, rng.random()][rng.random_range(0..7)];
                b[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=other.len());
                b.extend_from_slice(&other[cut..]);
            }
            5 => {
                let n = rng.random_range(0..64);
                b.extend((0..n).map(|_| rng.random::<u8>()));
            }
            _ => {
                let n = rng.random_range(0..200);
                b = (0..n).map(|_| rng.random::<u8>()).collect();
            }
        }
    }
    b
}

#[test]
fn twenty_thousand_mutated_inputs_never_panic() {
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x7475_726e);
    let mut core = fuzzing::core();
    for s in &seeds {
        fuzzing::feed(&mut core, s);
    }
    for _ in 0..20_000 {
        let input = mutate(&mut rng, &seeds);
        fuzzing::feed(&mut core, &input);
    }
    let stats = core.stats();
    assert!(stats.malformed > 1_000, "{stats:?}");
    // Still answering: a Binding from a new address, and a full allocation.
    let from = SocketAddr::from(([203, 0, 113, 9], 7000));
    let mut c = Client::new("", "");
    let outs = core.handle(fuzzing::now(), Transport::Udp, from, &c.binding());
    let [Output::ToClient { bytes, .. }] = &outs[..] else {
        panic!("{outs:?}")
    };
    assert!(matches!(
        client::decode(bytes, b""),
        Received::Success {
            mapped: Some(m),
            ..
        } if m == from
    ));
}
