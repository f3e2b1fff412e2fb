//! Unit tests of `ingest/flv.rs`: FLV AVC tag parsing, including bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn config_record() -> Vec<u8> {
    let sps = [0x67, 0x42, 0xc0, 0x1f, 0x8c];
    let pps = [0x68, 0xce, 0x3c, 0x80];
    let mut v = vec![0x17, 0x00, 0, 0, 0, 0x01, 0x42, 0xc0, 0x1f, 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(&sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(&pps);
    v
}

#[test]
fn sequence_header_gives_length_size_and_parameter_sets() {
    let tag = parse_video_tag(&config_record(), 4).unwrap();
    assert_eq!(
        tag,
        AvcTag::SequenceHeader {
            length_size: 4,
            parameter_sets: vec![
                Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0x8c]),
                Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])
            ],
        }
    );
}

#[test]
fn nalus_with_composition_time() {
    // Keyframe, NALU packet, CTS = -33 ms (SI24), two length-prefixed units.
    let cts = (-33i32 as u32) & 0x00ff_ffff;
    let mut v = vec![0x17, 0x01, (cts >> 16) as u8, (cts >> 8) as u8, cts as u8];
    for unit in [&[0x06u8, 1, 2][..], &[0x65, 9, 9, 9][..]] {
        v.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        v.extend_from_slice(unit);
    }
    let AvcTag::Nalus {
        keyframe,
        composition_time_ms,
        nalus,
    } = parse_video_tag(&v, 4).unwrap()
    else {
        panic!()
    };
    assert!(keyframe);
    assert_eq!(composition_time_ms, -33);
    assert_eq!(
        nalus,
        vec![
            Bytes::from_static(&[0x06, 1, 2]),
            Bytes::from_static(&[0x65, 9, 9, 9])
        ]
    );
    // Inter frame, 2-byte lengths.
    let v = [0x27, 0x01, 0, 0, 0, 0x00, 0x02, 0x41, 0x9a];
    assert_eq!(
        parse_video_tag(&v, 2).unwrap(),
        AvcTag::Nalus {
            keyframe: false,
            composition_time_ms: 0,
            nalus: vec![Bytes::from_static(&[0x41, 0x9a])]
        }
    );
}

#[test]
fn bad_tags_are_errors_never_panics() {
    assert_eq!(parse_video_tag(&[], 4), Err(FlvError::Truncated));
    assert_eq!(parse_video_tag(&[0x17, 0x01], 4), Err(FlvError::Truncated));
    // A length pointing past the end.
    assert_eq!(
        parse_video_tag(&[0x17, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x65], 4),
        Err(FlvError::Truncated)
    );
    assert_eq!(
        parse_video_tag(&[0x17, 0x01, 0, 0, 0, 0x00], 3),
        Err(FlvError::LengthSize(3))
    );
    // Not AVC (codec id 2 = Sorenson H.263): ignored.
    assert_eq!(parse_video_tag(&[0x12, 0x00], 4), Ok(AvcTag::Other));
    // Truncated decoder configuration.
    let rec = config_record();
    for cut in 0..rec.len() {
        let r = parse_video_tag(&rec[..cut], 4);
        assert!(r.is_err() || cut >= rec.len(), "cut {cut}: {r:?}");
    }
    // Every byte pattern of short inputs: no panic.
    for len in 0..8 {
        for b in 0..=255u8 {
            let v: Vec<u8> = std::iter::once(0x17)
                .chain(std::iter::repeat_n(b, len))
                .collect();
            for ls in [1, 2, 4] {
                let _ = parse_video_tag(&v, ls);
            }
        }
    }
}
