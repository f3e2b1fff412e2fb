//! Unit tests of `bridge.rs`: RFC 6184 packetization.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn frame(nalus: Vec<Vec<u8>>, keyframe: bool) -> VideoFrame {
    VideoFrame {
        nalus: nalus.into_iter().map(Bytes::from).collect(),
        pts_90k: 0,
        keyframe,
        parameter_sets: vec![
            Bytes::from_static(&[0x67, 0x42, 0xe0, 0x1f, 0xaa]),
            Bytes::from_static(&[0x68, 0xce, 0x3c]),
        ],
    }
}

/// Reassembles payloads back into NAL units (the receiver's side of RFC 6184).
fn depacketize(payloads: &[Payload]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let d = &p.data;
        match d[0] & 0x1f {
            24 => {
                let mut rest = &d[1..];
                while rest.len() >= 2 {
                    let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    out.push(rest[2..2 + n].to_vec());
                    rest = &rest[2 + n..];
                }
            }
            28 => {
                if d[1] & 0x80 != 0 {
                    fu = Some(vec![(d[0] & 0xe0) | (d[1] & 0x1f)]);
                }
                fu.as_mut().unwrap().extend_from_slice(&d[2..]);
                if d[1] & 0x40 != 0 {
                    out.push(fu.take().unwrap());
                }
            }
            _ => out.push(d.clone()),
        }
    }
    out
}

#[test]
fn keyframe_sends_parameter_sets_first_and_fragments_large_units() {
    let idr: Vec<u8> = std::iter::once(0x65)
        .chain((0..5000).map(|i| (i % 251) as u8))
        .collect();
    let f = frame(vec![idr.clone()], true);
    let mut out = Vec::new();
    packetize_h264(&f, 1100, &mut out);
    assert_eq!(out[0].data[0] & 0x1f, 24, "STAP-A with SPS+PPS first");
    assert!(
        out.iter().skip(1).all(|p| p.data[0] & 0x1f == 28),
        "the IDR is fragmented"
    );
    assert!(out.iter().all(|p| p.data.len() <= 1100));
    assert!(out.last().unwrap().marker && out.iter().filter(|p| p.marker).count() == 1);
    assert_eq!(out[1].data[1] & 0x80, 0x80, "FU-A start bit");
    let nalus = depacketize(&out);
    assert_eq!(
        nalus,
        vec![
            vec![0x67, 0x42, 0xe0, 0x1f, 0xaa],
            vec![0x68, 0xce, 0x3c],
            idr
        ]
    );
    // The SFU sees this as a switch point.
    assert!(crate::keyframe::is_keyframe_start(
        str0m::format::Codec::H264,
        &out[0].data
    ));
}

#[test]
fn delta_frames_use_single_nal_units_and_no_parameter_sets() {
    let f = frame(vec![vec![0x41, 1, 2, 3], vec![0x41, 4, 5]], false);
    let mut out = Vec::new();
    packetize_h264(&f, 1100, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        Payload {
            data: vec![0x41, 1, 2, 3],
            marker: false
        }
    );
    assert_eq!(
        out[1],
        Payload {
            data: vec![0x41, 4, 5],
            marker: true
        }
    );
    assert!(!crate::keyframe::is_keyframe_start(
        str0m::format::Codec::H264,
        &out[0].data
    ));
}

#[test]
fn empty_and_tiny_input_never_panics() {
    let mut out = Vec::new();
    packetize_h264(
        &VideoFrame {
            nalus: vec![Bytes::new()],
            pts_90k: 0,
            keyframe: true,
            parameter_sets: vec![Bytes::new()],
        },
        0,
        &mut out,
    );
    assert!(out.is_empty());
    packetize_h264(&frame(vec![vec![0x65; 40]], true), 1, &mut out);
    assert!(out.iter().all(|p| p.data.len() <= 16));
    let nalus = depacketize(&out);
    assert_eq!(nalus.last().unwrap(), &vec![0x65; 40]);
}

#[test]
fn profile_level_id_from_sps() {
    assert_eq!(
        sps_profile_level_id(&[0x67, 0x42, 0xe0, 0x1f, 0x00]),
        Some(0x42e01f)
    );
    assert_eq!(sps_profile_level_id(&[0x67, 0x64]), None);
    assert_eq!(sps_profile_level_id(&[0x68, 0x42, 0xe0, 0x1f]), None);
}
