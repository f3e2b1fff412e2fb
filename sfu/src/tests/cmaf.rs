#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use venue_tests::mp4::{be32, boxes, find, find_all, track_fragments};

use super::*;
use crate::egress::ProgramFormat;

/// A real x264 baseline SPS (1280x720) and PPS.
pub(crate) fn format(channels: u8) -> ProgramFormat {
    ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03,
            0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8,
        ]),
        pps: Bytes::from_static(&[0x68, 0xce, 0x0f, 0x2c, 0x80]),
        audio_channels: channels,
    }
}

#[test]
fn box_writer_nests_and_patches_sizes() {
    let mut w = BoxWriter::default();
    w.boxed(b"abcd", |w| {
        w.u8(1);
        w.full(b"efgh", 1, 0x000203, |w| w.u16(0xbeef));
    });
    let out = w.finish().unwrap();
    assert_eq!(
        out,
        [
            0, 0, 0, 23, b'a', b'b', b'c', b'd', 1, // outer header + 1 byte
            0, 0, 0, 14, b'e', b'f', b'g', b'h', 1, 0, 2, 3, 0xbe, 0xef, // full box
        ]
    );
}

#[test]
fn init_segment_layout() {
    let f = format(2);
    let init = init_segment(&f, 312).unwrap();
    let top: Vec<[u8; 4]> = boxes(&init).unwrap().iter().map(|b| b.fourcc).collect();
    assert_eq!(top, [*b"ftyp", *b"moov"]);
    let ftyp = find(&init, &["ftyp"]).unwrap();
    assert_eq!(&ftyp.body[..4], b"iso6");
    assert!(ftyp.body.chunks(4).any(|c| c == b"cmfc"));

    let mvhd = find(&init, &["moov", "mvhd"]).unwrap();
    assert_eq!(be32(mvhd.body, 12), 1000, "movie timescale");
    let trex = find_all(&init, &["moov", "mvex", "trex"]);
    assert_eq!(trex.len(), 2);
    assert_eq!(be32(trex[0].body, 4), VIDEO_TRACK_ID);
    assert_eq!(be32(trex[1].body, 4), AUDIO_TRACK_ID);

    let traks = find_all(&init, &["moov", "trak"]);
    assert_eq!(traks.len(), 2);
    // Video track: id, size 16.16, 90 kHz, vide, avc1 1280x720 with avcC from the SPS/PPS.
    let v = traks[0].body;
    let tkhd = find(v, &["tkhd"]).unwrap();
    assert_eq!(be32(tkhd.body, 12), VIDEO_TRACK_ID);
    assert_eq!(be32(tkhd.body, 76), 1280 << 16);
    assert_eq!(be32(tkhd.body, 80), 720 << 16);
    let mdhd = find(v, &["mdia", "mdhd"]).unwrap();
    assert_eq!(be32(mdhd.body, 12), 90_000);
    assert_eq!(&find(v, &["mdia", "hdlr"]).unwrap().body[8..12], b"vide");
    for table in ["stts", "stsc", "stco"] {
        let b = find(v, &["mdia", "minf", "stbl", table]).unwrap();
        assert_eq!(be32(b.body, 4), 0, "{table} is empty");
    }
    let avc1 = find(v, &["mdia", "minf", "stbl", "stsd", "avc1"]).unwrap();
    assert_eq!(u16::from_be_bytes([avc1.body[24], avc1.body[25]]), 1280);
    assert_eq!(u16::from_be_bytes([avc1.body[26], avc1.body[27]]), 720);
    let avcc = find(v, &["mdia", "minf", "stbl", "stsd", "avc1", "avcC"]).unwrap();
    let mut expect = vec![1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, f.sps.len() as u8];
    expect.extend_from_slice(&f.sps);
    expect.extend_from_slice(&[1, 0, f.pps.len() as u8]);
    expect.extend_from_slice(&f.pps);
    assert_eq!(avcc.body, &expect[..]);

    // Audio track: 48 kHz, soun, Opus 2 channels with dOps.
    let a = traks[1].body;
    assert_eq!(be32(find(a, &["tkhd"]).unwrap().body, 12), AUDIO_TRACK_ID);
    assert_eq!(be32(find(a, &["mdia", "mdhd"]).unwrap().body, 12), 48_000);
    assert_eq!(&find(a, &["mdia", "hdlr"]).unwrap().body[8..12], b"soun");
    let opus = find(a, &["mdia", "minf", "stbl", "stsd", "Opus"]).unwrap();
    assert_eq!(
        u16::from_be_bytes([opus.body[16], opus.body[17]]),
        2,
        "channelcount"
    );
    assert_eq!(be32(opus.body, 24), 48_000 << 16, "samplerate");
    let dops = find(a, &["mdia", "minf", "stbl", "stsd", "Opus", "dOps"]).unwrap();
    // Version 0, 2 channels, pre-skip 312, 48 kHz, gain 0, family 0.
    assert_eq!(dops.body, &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
}

#[test]
fn init_segment_rejects_bad_formats() {
    let mut f = format(3);
    assert_eq!(init_segment(&f, 0), Err(CmafError::Channels(3)));
    f.audio_channels = 1;
    f.sps = Bytes::from_static(&[0x68, 1, 2, 3]);
    assert_eq!(init_segment(&f, 0), Err(CmafError::BadSps));
    f.sps = Bytes::from_static(&[0x67, 1]);
    assert_eq!(init_segment(&f, 0), Err(CmafError::BadSps));
    f = format(1);
    f.pps = Bytes::new();
    assert_eq!(init_segment(&f, 0), Err(CmafError::BadPps));
    f = format(1);
    f.width = 70_000;
    assert_eq!(init_segment(&f, 0), Err(CmafError::Size(70_000, 720)));
}

#[test]
fn fragment_layout_and_data_offsets() {
    let video = [
        Sample {
            duration: 3000,
            sync: true,
            data: Bytes::from_static(b"IDR-picture"),
        },
        Sample {
            duration: 3003,
            sync: false,
            data: Bytes::from_static(b"P"),
        },
    ];
    let audio = [
        Sample {
            duration: 960,
            sync: true,
            data: Bytes::from_static(b"opus-1"),
        },
        Sample {
            duration: 960,
            sync: true,
            data: Bytes::from_static(b"opus-2"),
        },
    ];
    let frag = fragment(
        7,
        &[
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: 1 << 33,
                samples: &video,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: 4800,
                samples: &audio,
            },
        ],
    )
    .unwrap();
    let top = boxes(&frag).unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(&top[0].fourcc, b"moof");
    assert_eq!(&top[1].fourcc, b"mdat");
    assert_eq!(top[1].body, b"IDR-picturePopus-1opus-2");
    let mfhd = find(&frag, &["moof", "mfhd"]).unwrap();
    assert_eq!(be32(mfhd.body, 4), 7);
    let trafs = track_fragments(top[0].body).unwrap();
    assert_eq!(trafs.len(), 2);
    assert_eq!(trafs[0].track_id, VIDEO_TRACK_ID);
    assert_eq!(trafs[0].tfhd_flags, 0x02_0000, "default-base-is-moof");
    assert_eq!(
        trafs[0].base_decode_time,
        1 << 33,
        "tfdt version 1 keeps 64 bits"
    );
    assert_eq!(
        trafs[0].samples,
        [
            (3000, 11, SYNC_SAMPLE_FLAGS),
            (3003, 1, NON_SYNC_SAMPLE_FLAGS)
        ]
    );
    assert_eq!(trafs[1].track_id, AUDIO_TRACK_ID);
    assert_eq!(trafs[1].base_decode_time, 4800);
    assert_eq!(trafs[1].samples, [(960, 6, SYNC_SAMPLE_FLAGS); 2]);
    // Offsets from the moof's first byte reach each run's first sample.
    let v_at = trafs[0].data_offset as usize;
    let a_at = trafs[1].data_offset as usize;
    assert_eq!(&frag[v_at..v_at + 11], b"IDR-picture");
    assert_eq!(&frag[a_at..a_at + 6], b"opus-1");
}

#[test]
fn fragment_leaves_out_empty_runs() {
    let video = [Sample {
        duration: 3000,
        sync: true,
        data: Bytes::from_static(b"x"),
    }];
    let frag = fragment(
        1,
        &[
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: 0,
                samples: &video,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: 0,
                samples: &[],
            },
        ],
    )
    .unwrap();
    let moof = find(&frag, &["moof"]).unwrap();
    let trafs = track_fragments(moof.body).unwrap();
    assert_eq!(trafs.len(), 1);
    assert_eq!(&frag[trafs[0].data_offset as usize..], b"x");
}

#[test]
fn avcc_sample_prefixes_lengths_and_drops_parameter_sets() {
    let nalus = [
        Bytes::from_static(&[0x09, 0xf0]),        // AUD
        Bytes::from_static(&[0x67, 1, 2, 3]),     // SPS
        Bytes::from_static(&[0x68, 4]),           // PPS
        Bytes::from_static(&[0x06, 5, 6]),        // SEI
        Bytes::new(),                             // empty: skipped
        Bytes::from_static(&[0x65, 7, 8, 9, 10]), // IDR slice
    ];
    assert_eq!(
        &avcc_sample(&nalus)[..],
        &[0, 0, 0, 3, 0x06, 5, 6, 0, 0, 0, 5, 0x65, 7, 8, 9, 10]
    );
}

#[test]
fn opus_durations_from_the_toc() {
    // CELT FB 20 ms, one frame.
    assert_eq!(opus_packet_samples(&[31 << 3, 0]), Some(960));
    // CELT FB 10 ms, two frames (code 1).
    assert_eq!(opus_packet_samples(&[(30 << 3) | 1]), Some(960));
    // SILK NB 60 ms, code 0.
    assert_eq!(opus_packet_samples(&[3 << 3]), Some(2880));
    // Hybrid 20 ms.
    assert_eq!(opus_packet_samples(&[13 << 3]), Some(960));
    // CELT 2.5 ms × 3 frames (code 3, count byte).
    assert_eq!(opus_packet_samples(&[(16 << 3) | 3, 3]), Some(360));
    // Code 3 without its count byte, zero frames, more than 120 ms.
    assert_eq!(opus_packet_samples(&[(16 << 3) | 3]), None);
    assert_eq!(opus_packet_samples(&[(16 << 3) | 3, 0]), None);
    assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 3]), None);
    assert_eq!(opus_packet_samples(&[]), None);
}
