//! Unit tests of `tap.rs`: H.264 depacketization (single NAL, STAP-A, FU-A), loss handling and
//! malformed payloads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::bridge::{MAX_RTP_PAYLOAD, VideoFrame, packetize_h264};

fn frame(keyframe: bool, size: usize) -> VideoFrame {
    let slice: Vec<u8> = std::iter::once(if keyframe { 0x65 } else { 0x41 })
        .chain((0..size).map(|i| (i % 251) as u8 + 1))
        .collect();
    VideoFrame {
        nalus: vec![Bytes::from(slice)],
        pts_90k: 0,
        keyframe,
        parameter_sets: if keyframe {
            vec![
                Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
                Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            ]
        } else {
            Vec::new()
        },
    }
}

/// Packetizes frames into (seq, ts, marker, payload), 3000 ticks apart.
fn packets(frames: &[VideoFrame]) -> Vec<(u64, u32, bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seq = 100u64;
    for (i, f) in frames.iter().enumerate() {
        let mut p = Vec::new();
        packetize_h264(f, MAX_RTP_PAYLOAD, &mut p);
        for pl in p {
            out.push((seq, i as u32 * 3000, pl.marker, pl.data));
            seq += 1;
        }
    }
    out
}

#[test]
fn round_trips_what_the_bridge_packetizes() {
    let frames = [frame(true, 5000), frame(false, 200), frame(false, 3000)];
    let mut d = H264Depacketizer::new();
    let units: Vec<AccessUnit> = packets(&frames)
        .into_iter()
        .filter_map(|(s, t, m, p)| d.push(s, t, m, &p))
        .collect();
    assert_eq!(units.len(), 3);
    assert!(units[0].keyframe && !units[1].keyframe);
    // SPS, PPS (from the STAP-A), then the IDR slice reassembled from FU-A fragments.
    assert_eq!(units[0].nalus.len(), 3);
    assert_eq!(units[0].nalus[2], frames[0].nalus[0]);
    assert_eq!(units[2].nalus, frames[2].nalus);
    assert_eq!(units[2].rtp_time, 6000);
    assert!(!d.needs_keyframe());
}

#[test]
fn nothing_before_the_first_keyframe() {
    let frames = [frame(false, 100), frame(true, 100), frame(false, 100)];
    let mut d = H264Depacketizer::new();
    assert!(d.needs_keyframe());
    let units: Vec<AccessUnit> = packets(&frames)
        .into_iter()
        .filter_map(|(s, t, m, p)| d.push(s, t, m, &p))
        .collect();
    assert_eq!(units.len(), 2);
    assert!(units[0].keyframe);
}

#[test]
fn loss_drops_pictures_until_the_next_keyframe() {
    let frames = [
        frame(true, 3000),
        frame(false, 3000),
        frame(false, 100),
        frame(true, 3000),
    ];
    let mut pk = packets(&frames);
    // Lose the second fragment of picture 1.
    let lost = pk.iter().position(|p| p.1 == 3000).unwrap() + 1;
    pk.remove(lost);
    let mut d = H264Depacketizer::new();
    let mut units = Vec::new();
    let mut asked = false;
    for (s, t, m, p) in pk {
        if let Some(u) = d.push(s, t, m, &p) {
            units.push(u);
        }
        asked |= d.needs_keyframe();
    }
    assert!(asked, "loss asks for a keyframe");
    let times: Vec<u32> = units.iter().map(|u| u.rtp_time).collect();
    assert_eq!(times, vec![0, 9000], "pictures 1 and 2 are dropped");
    assert_eq!(d.dropped, 2);
}

#[test]
fn malformed_payloads_are_dropped_without_panicking() {
    let mut d = H264Depacketizer::new();
    let mut seq = 0;
    for junk in [
        &[][..],
        &[24, 0xff][..],
        &[24, 0x00, 0x09, 0x67][..],
        &[28][..],
        &[28, 0x05, 1, 2][..],
        &[0x1f, 1, 2][..],
        &[0x7c, 0x45, 1][..],
    ] {
        assert!(d.push(seq, 0, true, junk).is_none());
        seq += 1;
    }
    // And it recovers on the next keyframe.
    let good = packets(&[frame(true, 100)]);
    let mut got = None;
    for (i, (_, t, m, p)) in good.into_iter().enumerate() {
        got = d.push(seq + i as u64, t + 9000, m, &p).or(got);
    }
    assert!(got.is_some_and(|u| u.keyframe));
}
