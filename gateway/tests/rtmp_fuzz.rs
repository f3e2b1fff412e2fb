//! Seeded random-input run of the RTMP fuzz entry points (`venue_gateway::media::rtmp::fuzzing`
//! and `venue_sfu::ingest::fuzzing`, the same functions the cargo-fuzz targets in `fuzz/`
//! call), so CI exercises them on stable Rust:
//! a realistic publisher byte stream (connect, publish, an AVC sequence header and pictures,
//! an AAC sequence header and ffmpeg-made AAC frames, made by rml_rtmp's client session) is
//! mutated — bit flips, byte runs, truncation, splices, chunk-size games — and fed in pieces.
//! Nothing may panic out of the functions or abort; the clean seed must yield its media tags.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType, ServerSession,
    ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
use venue_gateway::media::rtmp::fuzzing;
use venue_sfu::ingest::fuzzing::flv_tags;

fn outbound(results: Vec<ClientSessionResult>, into: &mut Vec<u8>) {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            into.extend_from_slice(&p.bytes);
        }
    }
}

/// Passes client bytes to a server session and its answers back, accepting requests, until
/// neither side has more to say; every client byte is appended to `wire`.
fn exchange(
    client: &mut ClientSession,
    server: &mut ServerSession,
    bytes: &[u8],
    wire: &mut Vec<u8>,
) {
    let mut to_server = bytes.to_vec();
    while !to_server.is_empty() {
        wire.extend_from_slice(&to_server);
        let mut answers = Vec::new();
        for r in server.handle_input(&to_server).unwrap() {
            match r {
                ServerSessionResult::OutboundResponse(p) => answers.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. },
                ) => {
                    for r in server.accept_request(request_id).unwrap() {
                        if let ServerSessionResult::OutboundResponse(p) = r {
                            answers.extend_from_slice(&p.bytes);
                        }
                    }
                }
                _ => {}
            }
        }
        to_server.clear();
        outbound(client.handle_input(&answers).unwrap(), &mut to_server);
    }
}

/// The bytes an encoder sends after the handshake: connect, publish, then media tags.
fn seed() -> (Vec<u8>, usize) {
    let (mut client, init) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let (mut server, server_init) = ServerSession::new(ServerSessionConfig::new()).unwrap();
    for r in server_init {
        if let ServerSessionResult::OutboundResponse(p) = r {
            let _ = client.handle_input(&p.bytes).unwrap();
        }
    }
    let mut wire = Vec::new();
    let mut step = Vec::new();
    outbound(init, &mut step);
    outbound(
        vec![client.request_connection("live".into()).unwrap()],
        &mut step,
    );
    exchange(&mut client, &mut server, &step, &mut wire);
    let mut step = Vec::new();
    outbound(
        vec![
            client
                .request_publishing("key".into(), PublishRequestType::Live)
                .unwrap(),
        ],
        &mut step,
    );
    exchange(&mut client, &mut server, &step, &mut wire);

    let aac = venue_tests::audio::ffmpeg_aac_tone(&[440, 660], 44_100, 0.3).unwrap();
    let mut tags: Vec<(bool, Vec<u8>)> = Vec::new();
    // AVC sequence header (SPS 640x360 baseline, PPS) and a few pictures.
    let sps = [
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00,
    ];
    let pps = [0x68, 0xcb, 0x83, 0xcb, 0x20];
    let mut config = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
    config.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    config.extend_from_slice(&sps);
    config.push(1);
    config.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    config.extend_from_slice(&pps);
    tags.push((true, config));
    let mut asc = vec![0xaf, 0x00];
    asc.extend_from_slice(&aac.config);
    tags.push((false, asc));
    for (i, frame) in aac.frames.iter().enumerate() {
        let mut a = vec![0xaf, 0x01];
        a.extend_from_slice(frame);
        tags.push((false, a));
        if i % 2 == 0 {
            let key = i == 0;
            let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            let nal: Vec<u8> = std::iter::once(if key { 0x65 } else { 0x41 })
                .chain((0..300u32).map(|b| (b * 7 + i as u32) as u8))
                .collect();
            v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            v.extend_from_slice(&nal);
            tags.push((true, v));
        }
    }
    let count = tags.len();
    for (i, (video, tag)) in tags.into_iter().enumerate() {
        let ts = RtmpTimestamp::new(i as u32 * 21);
        let packet = if video {
            client.publish_video_data(Bytes::from(tag), ts, false)
        } else {
            client.publish_audio_data(Bytes::from(tag), ts, false)
        };
        outbound(vec![packet.unwrap()], &mut wire);
    }
    (wire, count)
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..6) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = [0x00, 0xff, 0x7f, 0x80, 0x03, 0xc3][rng.random_range(0..6)];
            }
            2 => {
                let i = rng.random_range(0..=d.len());
                let run: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                d.splice(i..i, run);
            }
            3 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d.truncate(i);
            }
            4 if d.len() > 2 => {
                let a = rng.random_range(0..d.len());
                let b = rng.random_range(a..d.len());
                let copy = d[a..b].to_vec();
                let at = rng.random_range(0..=d.len());
                d.splice(at..at, copy);
            }
            _ => {
                // A Set Chunk Size with an odd value on chunk stream 2.
                let size: u32 = [0, 1, 127, 0x7fff_ffff, 0xffff_ffff][rng.random_range(0..5)];
                let mut m = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
                m.extend_from_slice(&size.to_be_bytes());
                let at = rng.random_range(0..=d.len());
                d.splice(at..at, m);
            }
        }
    }
    d
}

#[test]
fn the_rtmp_fuzz_entry_points_survive_mutated_publisher_streams() {
    let (seed, tags) = seed();
    // The clean stream yields every media tag (the two sequence headers, the AAC frames, the
    // pictures) when it comes in pieces small enough that each command is answered before the
    // next arrives, as a real encoder waits for its answers; larger pieces only must not break.
    for step in [0u8, 1, 7] {
        let mut input = vec![step];
        input.extend_from_slice(&seed);
        let n = fuzzing::session_input(&input);
        assert_eq!(n, tags, "step {step}");
    }
    std::panic::set_hook(Box::new(|_| {})); // rml_rtmp's caught panics would flood the log
    let mut rng = StdRng::seed_from_u64(0x5eed_4444);
    for _ in 0..3_000 {
        let mut input = vec![rng.random()];
        input.extend(mutate(&mut rng, &seed));
        fuzzing::session_input(&input);
    }
    for _ in 0..20_000 {
        let len = rng.random_range(0..400);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        fuzzing::session_input(&data);
        flv_tags(&data);
    }
    let _ = std::panic::take_hook();
}
