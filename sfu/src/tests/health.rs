//! Unit tests of the health meter: SPS parsing of real x264 SPS units, VP8 and Opus header
//! facts, and fps / bitrate / keyframe interval / loss / B-frames from synthetic packet
//! sequences on an explicit clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// SPS NAL units written by Debian's ffmpeg/libx264 (`-f h264`, the unit after the start code).
const SPS_360P_BASELINE: &str = "6742c01ed900a02ff970110000030001000003003c0f162e48";
const SPS_720P_HIGH: &str = "6764001facd9405005bb0110000003001000000303c0f1831960";
/// 1920x1080: 68 macroblock rows = 1088 lines, cropped by 8 at the bottom.
const SPS_1080P_HIGH: &str = "67640028acd940780227e5c044000003000400000300f03c60c658";
/// High 4:4:4 Predictive (profile 244, chroma_format_idc 3: crop unit 1).
const SPS_1080P_HIGH444: &str = "67f40028919b280f0044fc4e0220000003002000000781e30632c0";
const SPS_240P_MAIN: &str = "674d400deca0a0fd8088000003000800000301e078a14cb0";
/// 720x576 interlaced (frame_mbs_only_flag 0: height in field macroblock pairs).
const SPS_576I_HIGH: &str = "6764001eacd940b424d8088000000300800000190f8a14cb";

#[test]
fn sps_sizes_and_profiles_of_real_x264_streams() {
    let cases = [
        (SPS_360P_BASELINE, 640, 360, 0x42c01e),
        (SPS_720P_HIGH, 1280, 720, 0x64001f),
        (SPS_1080P_HIGH, 1920, 1080, 0x640028),
        (SPS_1080P_HIGH444, 1920, 1080, 0xf40028),
        (SPS_240P_MAIN, 320, 240, 0x4d400d),
        (SPS_576I_HIGH, 720, 576, 0x64001e),
    ];
    for (sps, w, h, pli) in cases {
        let info = parse_h264_sps(&hex(sps)).unwrap_or_else(|| panic!("parses {sps}"));
        assert_eq!((info.width, info.height), (w, h), "{sps}");
        assert_eq!(info.profile_level_id(), pli, "{sps}");
    }
}

/// MSB-first bit writer with Exp-Golomb codes, to build SPS units with rare fields.
#[derive(Default)]
struct Bits {
    bits: Vec<bool>,
}

impl Bits {
    fn u(&mut self, n: u32, v: u64) -> &mut Self {
        for i in (0..n).rev() {
            self.bits.push((v >> i) & 1 == 1);
        }
        self
    }
    fn ue(&mut self, v: u64) -> &mut Self {
        let x = v + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0).u(len, x)
    }
    fn se(&mut self, v: i64) -> &mut Self {
        self.ue(if v > 0 {
            (2 * v - 1) as u64
        } else {
            (-2 * v) as u64
        })
    }
    /// NAL header + bytes with the RBSP stop bit, emulation prevention inserted.
    fn sps(&mut self) -> Vec<u8> {
        self.bits.push(true);
        while !self.bits.len().is_multiple_of(8) {
            self.bits.push(false);
        }
        let raw: Vec<u8> = self
            .bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |a, b| (a << 1) | u8::from(*b)))
            .collect();
        let mut out = vec![0x67];
        let mut zeros = 0;
        for b in raw {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

#[test]
fn sps_with_scaling_lists_poc_type_1_and_side_cropping() {
    let mut b = Bits::default();
    b.u(8, 100).u(8, 0).u(8, 40).ue(0); // high, level 4.0, sps id 0
    b.ue(1).ue(0).ue(0).u(1, 0); // 4:2:0, 8 bit, no bypass
    b.u(1, 1); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        match i {
            0 => {
                b.u(1, 1);
                for j in 0..16 {
                    b.se(if j % 2 == 0 { 3 } else { -2 });
                }
            }
            6 => {
                // A delta that makes nextScale 0 ends the list early (use the default).
                b.u(1, 1).se(-8);
            }
            _ => {
                b.u(1, 0);
            }
        }
    }
    b.ue(0); // log2_max_frame_num_minus4
    b.ue(1).u(1, 0).se(-1).se(2).ue(2).se(1).se(-3); // poc type 1, two ref frame offsets
    b.ue(4).u(1, 0); // max_num_ref_frames, gaps
    b.ue(79).ue(44); // 80x45 macroblocks = 1280x720
    b.u(1, 1).u(1, 1); // frame_mbs_only, direct_8x8
    b.u(1, 1).ue(4).ue(4).ue(0).ue(2); // crop 8+8 px left/right, 4 px bottom
    b.u(1, 0); // no VUI
    let sps = b.sps();
    let info = parse_h264_sps(&sps).expect("parses");
    assert_eq!((info.width, info.height), (1280 - 16, 720 - 4));
    assert_eq!(info.profile_level_id(), 0x640028);
}

#[test]
fn sps_parser_refuses_garbage_without_panicking() {
    for sps in [
        SPS_360P_BASELINE,
        SPS_720P_HIGH,
        SPS_1080P_HIGH,
        SPS_1080P_HIGH444,
        SPS_576I_HIGH,
    ] {
        let full = hex(sps);
        for n in 0..full.len() - 3 {
            // Truncated in the middle of the fields: never a panic, usually None.
            let _ = parse_h264_sps(&full[..n]);
        }
        assert!(parse_h264_sps(&full[..6]).is_none(), "truncated is refused");
    }
    // Not an SPS.
    assert!(parse_h264_sps(&[0x68, 0xce, 0x3c, 0x80]).is_none());
    assert!(parse_h264_sps(&[]).is_none());
    // All zeros: an Exp-Golomb code with no end.
    assert!(
        parse_h264_sps(
            &[0x67; 1]
                .iter()
                .chain(&[0u8; 64])
                .copied()
                .collect::<Vec<_>>()
        )
        .is_none()
    );
    // Cropping larger than the picture.
    let mut b = Bits::default();
    b.u(8, 66).u(8, 0).u(8, 30).ue(0).ue(0).ue(2).ue(1).u(1, 0);
    b.ue(0)
        .ue(0)
        .u(1, 1)
        .u(1, 1)
        .u(1, 1)
        .ue(9)
        .ue(9)
        .ue(0)
        .ue(0)
        .u(1, 0);
    assert!(
        parse_h264_sps(&b.sps()).is_none(),
        "crop wider than the picture"
    );
    // Pseudo-random bytes behind an SPS header.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut data = vec![0x67];
        let len = (x % 40) as usize;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(x as u8);
        }
        if let Some(info) = parse_h264_sps(&data) {
            assert!(info.width > 0 && info.height > 0 && info.width <= 16_384);
        }
        let _ = find_h264_sps(&data);
        let _ = vp8_keyframe_size(&data);
    }
}

#[test]
fn sps_found_in_single_nal_and_stap_a_payloads() {
    let sps = hex(SPS_720P_HIGH);
    assert_eq!(find_h264_sps(&sps), Some(sps.as_slice()));
    let mut stap = vec![0x78];
    stap.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    stap.extend_from_slice(&sps);
    stap.extend_from_slice(&[0, 4, 0x68, 0xce, 0x3c, 0x80]);
    assert_eq!(find_h264_sps(&stap), Some(sps.as_slice()));
    // A STAP-A whose size runs past the end.
    assert_eq!(find_h264_sps(&[0x78, 0x00, 0x40, 0x67, 0x42]), None);
    assert_eq!(find_h264_sps(&[0x65, 0x88]), None);
}

#[test]
fn vp8_keyframe_header_gives_the_size() {
    // libvpx 640x360 keyframe: descriptor S=1 PID=0, then the frame tag and start code.
    let mut p = vec![0x10];
    p.extend_from_slice(&hex("f0c6009d012a800268010007"));
    assert_eq!(vp8_keyframe_size(&p), Some((640, 360)));
    // Extended descriptor with a 15-bit picture id.
    let mut p = vec![0x90, 0x80, 0x81, 0x23];
    p.extend_from_slice(&hex("f0c6009d012a800268010007"));
    assert_eq!(vp8_keyframe_size(&p), Some((640, 360)));
    // An interframe (P bit set) or a continuation packet.
    assert_eq!(vp8_keyframe_size(&hex("10f1c6009d012a80026801")), None);
    assert_eq!(vp8_keyframe_size(&hex("00f0c6009d012a800268010007")), None);
}

#[test]
fn opus_toc_stereo_bit() {
    assert!(opus_stereo(0xfc)); // config 31, s = 1
    assert!(!opus_stereo(0x78)); // config 15, s = 0
}

/// A synthetic H.264 publisher: `fps` pictures/s, `per_frame` packets of `size` bytes each, a
/// keyframe (STAP-A with `sps`) every `gop` pictures. Calls `f` for each packet.
struct Synth {
    t0: Instant,
    seq: u64,
    sps: Vec<u8>,
}

impl Synth {
    fn new(sps: &str) -> Synth {
        Synth {
            t0: Instant::now(),
            seq: 100,
            sps: hex(sps),
        }
    }

    /// Runs `seconds` of video into `m`; `drop(seq)` says which packets are lost; `ts(i)` the
    /// RTP timestamp of picture `i` (decode order).
    fn run(
        &mut self,
        m: &mut HealthMeter,
        rid: Option<Rid>,
        seconds: u64,
        gop: u64,
        drop: impl Fn(u64) -> bool,
        ts: impl Fn(u64) -> u32,
    ) -> Instant {
        let fps = 30;
        let mut now = self.t0;
        for i in 0..seconds * fps {
            now = self.t0 + Duration::from_micros(i * 1_000_000 / fps);
            let key = i % gop == 0;
            for k in 0..3 {
                let mut payload = vec![0x55u8; 1000];
                if key && k == 0 {
                    payload.clear();
                    payload.push(0x78);
                    payload.extend_from_slice(&(self.sps.len() as u16).to_be_bytes());
                    payload.extend_from_slice(&self.sps);
                    payload.resize(1000, 0x55);
                }
                let seq = self.seq;
                self.seq += 1;
                if drop(seq) {
                    continue;
                }
                m.observe(
                    now,
                    &Observed {
                        kind: MediaKind::Video,
                        rid,
                        codec: Codec::H264,
                        profile: Some(0x42e01f),
                        clock_hz: 90_000,
                        seq,
                        rtp_time: ts(i),
                        payload: &payload,
                        keyframe_start: key && k == 0,
                    },
                );
            }
        }
        now
    }
}

#[test]
fn fps_bitrate_keyframe_interval_and_size_from_a_720p30_stream() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let mut s = Synth::new(SPS_720P_HIGH);
    let end = s.run(&mut m, None, 10, 30, |_| false, |i| (i * 3000) as u32);
    let h = m.snapshot(end + Duration::from_millis(33));
    assert_eq!(h.protocol, Protocol::Whip);
    assert_eq!(h.video.len(), 1);
    let v = &h.video[0];
    assert_eq!(v.codec, "H.264");
    assert_eq!(
        v.profile_level_id.as_deref(),
        Some("64001f"),
        "from the SPS"
    );
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert!((v.fps - 30.0).abs() <= 0.5, "fps {}", v.fps);
    let expected = 30.0 * 3.0 * 1012.0 * 8.0;
    assert!(
        (v.bitrate_bps as f64 - expected).abs() / expected < 0.03,
        "bitrate {} vs {expected}",
        v.bitrate_bps
    );
    assert_eq!(v.keyframe_interval_s, Some(1.0));
    assert_eq!(h.packet_loss, 0.0);
    assert!(!h.b_frames);
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
    assert!(h.audio.is_none());
}

#[test]
fn packet_loss_from_sequence_gaps() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let mut s = Synth::new(SPS_360P_BASELINE);
    // Every 20th packet lost: 5%.
    let end = s.run(&mut m, None, 6, 30, |q| q % 20 == 0, |i| (i * 3000) as u32);
    let h = m.snapshot(end);
    assert!(
        (h.packet_loss - 0.05).abs() < 0.006,
        "packet loss {}",
        h.packet_loss
    );
    assert!(
        h.warnings.is_empty(),
        "5% is not above the warning threshold"
    );
    // Every 5th: 20%, with a warning.
    let mut m = HealthMeter::new(Protocol::Whip);
    let end = s.run(&mut m, None, 6, 30, |q| q % 5 == 0, |i| (i * 3000) as u32);
    let h = m.snapshot(end);
    assert!((h.packet_loss - 0.2).abs() < 0.01, "{}", h.packet_loss);
    assert!(
        h.warnings.iter().any(|w| w.contains("lost")),
        "{:?}",
        h.warnings
    );
}

#[test]
fn reordered_timestamps_are_b_frames() {
    let mut m = HealthMeter::new(Protocol::Rtmp);
    let mut s = Synth::new(SPS_720P_HIGH);
    // Decode order I P B B: presentation times 0, 3, 1, 2 within each group of four.
    let pts = |i: u64| {
        let g = i / 4 * 4;
        let o = [0, 3, 1, 2][(i % 4) as usize];
        ((g + o) * 3000) as u32
    };
    let end = s.run(&mut m, None, 4, 32, |_| false, pts);
    let h = m.snapshot(end);
    assert!(h.b_frames);
    assert_eq!(h.warnings, vec![B_FRAMES_WARNING.to_string()]);
    let v = &h.video[0];
    assert!(
        (v.fps - 30.0).abs() <= 0.5,
        "every picture counted once: {}",
        v.fps
    );
}

#[test]
fn bridge_info_sets_protocol_b_frames_and_source_audio() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let t0 = Instant::now();
    for i in 0..250u64 {
        let now = t0 + Duration::from_millis(i * 20);
        m.observe(
            now,
            &Observed {
                kind: MediaKind::Audio,
                rid: None,
                codec: Codec::Opus,
                profile: None,
                clock_hz: 48_000,
                seq: i,
                rtp_time: (i * 960) as u32,
                payload: &[0xfc; 160],
                keyframe_start: true,
            },
        );
    }
    let now = t0 + Duration::from_secs(5);
    assert!(!m.snapshot(now).b_frames);
    m.set_info(BridgeInfo {
        protocol: Protocol::Rtmp,
        b_frames: true,
        source_audio: Some(SourceAudio {
            codec: "AAC".into(),
            channels: 2,
            sample_rate_hz: 44_100,
        }),
    });
    let h = m.snapshot(now);
    assert_eq!(h.protocol, Protocol::Rtmp);
    assert!(h.b_frames);
    assert_eq!(h.warnings, vec![B_FRAMES_WARNING.to_string()]);
    let a = h.audio.unwrap();
    assert_eq!(a.codec, "Opus");
    assert_eq!(a.channels, 2);
    assert_eq!(a.sample_rate_hz, 48_000);
    // 50 packets/s of 172 bytes.
    assert!(
        (a.bitrate_bps as i64 - 68_800).abs() < 2_000,
        "{}",
        a.bitrate_bps
    );
    assert_eq!(a.source.unwrap().sample_rate_hz, 44_100);
    // A later call without source audio (B-frames seen) keeps it.
    m.set_info(BridgeInfo {
        protocol: Protocol::Rtmp,
        b_frames: true,
        source_audio: None,
    });
    assert_eq!(m.snapshot(now).audio.unwrap().source.unwrap().codec, "AAC");
}

#[test]
fn rate_window_forgets_what_is_older_than_four_seconds() {
    let t0 = Instant::now();
    let mut w = RateWindow::new(t0);
    // 1000 bytes every 10 ms for 3 s, then 4.5 s of silence, then one packet.
    for i in 0..300u64 {
        w.add(t0 + Duration::from_millis(i * 10), 1000, 1);
    }
    let (bytes, events) = w.rates(t0 + Duration::from_secs(3));
    assert!((bytes - 100_000.0).abs() < 1_000.0, "{bytes}");
    assert!((events - 100.0).abs() < 1.0, "{events}");
    let later = t0 + Duration::from_millis(7_500);
    assert_eq!(
        w.rates(later),
        (0.0, 0.0),
        "old buckets are out of the window"
    );
    w.add(later, 500, 1);
    let (bytes, _) = w.rates(later + Duration::from_millis(100));
    assert!(
        bytes > 0.0 && bytes < 200.0,
        "only the new packet counts: {bytes}"
    );
}

#[test]
fn opus_goes_mono_when_stereo_packets_stop_and_stale_streams_leave() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let t0 = Instant::now();
    let mut now = t0;
    for i in 0..600u64 {
        now = t0 + Duration::from_millis(i * 20);
        let toc = if i < 100 { 0xfc } else { 0x78 };
        m.observe(
            now,
            &Observed {
                kind: MediaKind::Audio,
                rid: None,
                codec: Codec::Opus,
                profile: None,
                clock_hz: 48_000,
                seq: i,
                rtp_time: (i * 960) as u32,
                payload: &[toc, 1, 2, 3],
                keyframe_start: true,
            },
        );
    }
    assert_eq!(m.snapshot(now).audio.unwrap().channels, 1);
    assert!(m.snapshot(now + Duration::from_secs(6)).audio.is_none());
}

#[test]
fn simulcast_layers_are_reported_each() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let mut s = Synth::new(SPS_360P_BASELINE);
    s.run(
        &mut m,
        Some(Rid::from("q")),
        3,
        30,
        |_| false,
        |i| (i * 3000) as u32,
    );
    let mut s = Synth {
        t0: s.t0,
        seq: 10_000,
        sps: hex(SPS_720P_HIGH),
    };
    let end = s.run(
        &mut m,
        Some(Rid::from("f")),
        3,
        30,
        |_| false,
        |i| (i * 3000) as u32,
    );
    let h = m.snapshot(end);
    let layers: Vec<(Option<&str>, Option<u32>)> = h
        .video
        .iter()
        .map(|v| (v.rid.as_deref(), v.height))
        .collect();
    assert_eq!(layers, vec![(Some("q"), Some(360)), (Some("f"), Some(720))]);
}

#[test]
fn long_keyframe_interval_warns() {
    let mut m = HealthMeter::new(Protocol::Whip);
    let mut s = Synth::new(SPS_360P_BASELINE);
    let end = s.run(&mut m, None, 12, 300, |_| false, |i| (i * 3000) as u32);
    let h = m.snapshot(end);
    assert_eq!(h.video[0].keyframe_interval_s, Some(10.0));
    assert!(
        h.warnings.iter().any(|w| w.contains("Keyframe Interval")),
        "{:?}",
        h.warnings
    );
}
