//! Unit tests of `ingest/aac.rs`: AAC made by ffmpeg goes through the transcoder and the Opus that
//! comes out is decoded with libopus and checked (tone frequency per channel, no clicks at
//! frame boundaries, timestamps, channel count), plus bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use venue_tests::audio::{
    AacStream, deinterleave, ffmpeg_aac_tone, tone_frequency, worst_step_ratio,
};

/// Runs every frame through a transcoder, RTMP timestamps as an encoder stamps them.
fn transcode(stream: &AacStream, settings: OpusSettings) -> (AacToOpus, Vec<AudioFrame>) {
    let mut t = AacToOpus::new(&stream.config, settings).unwrap();
    let mut out = Vec::new();
    for (i, frame) in stream.frames.iter().enumerate() {
        let ms = (i as u64 * 1024 * 1000 / u64::from(stream.sample_rate)) as i64;
        t.push(frame, 1000 + ms, &mut out).unwrap();
    }
    (t, out)
}

/// Decodes Opus packets to interleaved 48 kHz samples with `channels` channels.
fn decode(packets: &[AudioFrame], channels: usize) -> Vec<f32> {
    let ch = if channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let mut dec = opus::Decoder::new(48_000, ch).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 5760 * channels];
    for p in packets {
        let n = dec.decode_float(&p.data, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n * channels]);
    }
    pcm
}

#[test]
fn stereo_44k1_tones_come_out_as_stereo_opus_at_the_same_frequencies() {
    let stream = ffmpeg_aac_tone(&[440, 660], 44_100, 3.0).unwrap();
    assert_eq!((stream.channels, stream.sample_rate), (2, 44_100));
    let (t, packets) = transcode(&stream, OpusSettings::default());
    assert_eq!(
        t.source(),
        SourceAudioInfo {
            channels: 2,
            sample_rate_hz: 44_100
        }
    );
    // ≈ 3 s of 20 ms packets (less the resampler and encoder start-up).
    assert!(
        (140..=154).contains(&packets.len()),
        "{} packets",
        packets.len()
    );
    for p in &packets {
        assert_eq!(p.data[0] & 0x04, 0x04, "TOC stereo bit set");
    }
    for w in packets.windows(2) {
        assert_eq!(
            w[1].ts_48k - w[0].ts_48k,
            960,
            "20 ms apart on the 48 kHz clock"
        );
    }
    // The first packet sits at the first frame's RTMP time (1 s → 48 000), less the
    // resampler's delay.
    assert_eq!(packets[0].ts_48k, 48_000 - t.resampler_delay() as u64);

    let pcm = decode(&packets, 2);
    let chans = deinterleave(&pcm, 2);
    // Skip the first 200 ms (codec start-up), check the rest.
    let (left, right) = (&chans[0][9600..], &chans[1][9600..]);
    let (fl, fr) = (tone_frequency(left, 48_000), tone_frequency(right, 48_000));
    assert!((fl - 440.0).abs() < 2.0, "left {fl} Hz");
    assert!((fr - 660.0).abs() < 2.0, "right {fr} Hz");
    // No clicks where AAC frames, resampler chunks or Opus frames meet.
    let (sl, sr) = (
        worst_step_ratio(left, 48_000, 440.0),
        worst_step_ratio(right, 48_000, 660.0),
    );
    assert!(sl < 1.3 && sr < 1.3, "worst steps {sl:.2} {sr:.2}");
}

#[test]
fn mono_48k_stays_mono_without_resampling() {
    let stream = ffmpeg_aac_tone(&[1000], 48_000, 2.0).unwrap();
    let (t, packets) = transcode(&stream, OpusSettings::default());
    assert_eq!(t.channels(), 1);
    assert_eq!(t.resampler_delay(), 0);
    assert_eq!(packets[0].ts_48k, 48_000);
    for p in &packets {
        assert_eq!(p.data[0] & 0x04, 0, "TOC mono");
    }
    let pcm = decode(&packets, 1);
    let f = tone_frequency(&pcm[9600..], 48_000);
    assert!((f - 1000.0).abs() < 3.0, "{f} Hz");
    assert!(worst_step_ratio(&pcm[9600..], 48_000, 1000.0) < 1.3);
}

#[test]
fn the_bitrate_setting_is_applied() {
    let stream = ffmpeg_aac_tone(&[440, 550], 48_000, 2.0).unwrap();
    let avg = |kbps: u32| {
        let (_, p) = transcode(
            &stream,
            OpusSettings {
                bitrate_bps: kbps * 1000,
            },
        );
        p.iter().map(|f| f.data.len()).sum::<usize>() as f64 / p.len() as f64
    };
    let (low, high) = (avg(32), avg(256));
    assert!(
        high > low * 2.0,
        "32 kbit/s → {low:.0} B, 256 kbit/s → {high:.0} B per packet"
    );
    // 256 kbit/s at 50 packets/s is 640 bytes a packet; VBR may undershoot on a pure tone.
    assert!(high <= 700.0, "{high}");
}

#[test]
fn a_garbage_frame_is_dropped_and_the_stream_goes_on() {
    let stream = ffmpeg_aac_tone(&[440, 660], 44_100, 1.0).unwrap();
    let mut t = AacToOpus::new(&stream.config, OpusSettings::default()).unwrap();
    let mut out = Vec::new();
    let mut errors = 0;
    for (i, frame) in stream.frames.iter().enumerate() {
        let ms = (i * 1024 * 1000 / 44_100) as i64;
        if i == 10 {
            for junk in [
                &[][..],
                &[0xff; 3][..],
                &[0x21, 0x1b, 0x94, 0xa5, 0x2a][..],
                &vec![0xa5; 2000][..],
            ] {
                if t.push(junk, ms, &mut out).is_err() {
                    errors += 1;
                }
            }
        }
        t.push(frame, ms, &mut out).unwrap();
    }
    assert!(errors >= 1, "garbage is reported");
    assert!(out.len() >= 40, "{} packets", out.len());
}

#[test]
fn unsupported_configs_are_refused() {
    for (asc, why) in [
        (&[][..], "empty"),
        (&[0x12][..], "truncated"),
        (&[0x2b, 0x92, 0x08, 0x00][..], "HE-AAC (object type 5)"),
        (&[0x12, 0x30][..], "6 channels"),
        (&[0xff, 0xff, 0xff, 0xff][..], "garbage"),
    ] {
        assert!(
            matches!(
                AacToOpus::new(asc, OpusSettings::default()),
                Err(AudioError::Unsupported(_))
            ),
            "{why} must be refused"
        );
    }
}

#[test]
fn a_jump_in_rtmp_time_reanchors_the_clock() {
    let stream = ffmpeg_aac_tone(&[440], 48_000, 1.0).unwrap();
    let mut t = AacToOpus::new(&stream.config, OpusSettings::default()).unwrap();
    let mut out = Vec::new();
    let half = stream.frames.len() / 2;
    for (i, frame) in stream.frames.iter().enumerate() {
        let mut ms = (i * 1024 * 1000 / 48_000) as i64;
        if i >= half {
            ms += 5_000; // the encoder paused for 5 s
        }
        t.push(frame, ms, &mut out).unwrap();
    }
    let jumps: Vec<u64> = out
        .windows(2)
        .map(|w| w[1].ts_48k - w[0].ts_48k)
        .filter(|d| *d != 960)
        .collect();
    assert_eq!(jumps.len(), 1, "one re-anchor: {jumps:?}");
    assert!(jumps[0] > 5_000 * 48, "{jumps:?}");
}
