//! Unit tests of the CMAF fragmenter (`egress/fragmenter.rs`): the two timelines, the audio
//! tail rules, what is dropped before the first keyframe, and the last picture at `finish`.
//! The packagers built on it have their own tests (`tests/hls.rs`, the gateway's recording
//! tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use venue_tests::mp4::{find, track_fragments};

use super::*;
use crate::egress::cmaf::SYNC_SAMPLE_FLAGS;

fn format() -> ProgramFormat {
    ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40]),
        pps: Bytes::from_static(&[0x68, 0xce, 0x0f, 0x2c, 0x80]),
        audio_channels: 2,
    }
}

fn config(timeline: Timeline, audio_tail: AudioTail) -> FragmenterConfig {
    FragmenterConfig {
        timeline,
        audio_tail,
        opus_pre_skip: 0,
    }
}

fn picture(keyframe: bool, pts_90k: u64) -> ProgramVideo {
    ProgramVideo {
        nalus: vec![Bytes::from_static(if keyframe {
            &[0x65, 0x88]
        } else {
            &[0x41, 0x9a]
        })],
        keyframe,
        pts_90k,
    }
}

/// A 20 ms Opus packet (TOC config 31: CELT FB 20 ms, one frame).
fn opus(ts_48k: u64) -> ProgramAudio {
    ProgramAudio {
        opus: Bytes::from_static(&[31 << 3, 1]),
        ts_48k,
    }
}

fn tracks(fragment: &Fragment) -> Vec<venue_tests::mp4::TrackFragment> {
    let moof = find(&fragment.data, &["moof"]).unwrap();
    track_fragments(moof.body).unwrap()
}

/// 10 s into the program: pictures every 3000 ticks from a keyframe, audio every 960.
fn feed(f: &mut Fragmenter, pictures: u64) {
    let base = 900_000u64;
    for i in 0..pictures {
        let pts = base + i * 3000;
        let mut ts = (pts * 8).div_ceil(15);
        while ts * 15 < (pts + 3000) * 8 {
            if ts % 960 == 0 {
                f.push_audio(opus(ts));
            }
            ts += 1;
        }
        f.push_video(picture(i == 0, pts));
    }
}

#[test]
fn the_program_timeline_keeps_the_program_clock_and_the_first_keyframe_timeline_starts_at_0() {
    for (timeline, video_zero, audio_zero) in [
        (Timeline::Program, 900_000, 480_000),
        (Timeline::FirstKeyframe, 0, 0),
    ] {
        let mut f = Fragmenter::new(config(timeline, AudioTail::UntilNext), &format()).unwrap();
        feed(&mut f, 11);
        let fragment = f.cut().unwrap();
        assert!(fragment.independent);
        assert_eq!(fragment.duration, 30_000);
        let t = tracks(&fragment);
        assert_eq!(t[0].base_decode_time, video_zero, "{timeline:?}");
        assert_eq!(t[0].samples.len(), 10);
        assert_eq!(t[0].samples[0].2, SYNC_SAMPLE_FLAGS);
        assert_eq!(t[1].base_decode_time, audio_zero, "{timeline:?}");
        // Audio before the end of the 10 packaged pictures (1/3 s): 17 packets of 20 ms.
        assert_eq!(t[1].samples.len(), 17);
        assert_eq!(
            f.fragmented(),
            std::time::Duration::from_millis(333) + std::time::Duration::from_micros(333)
        );
        // Nothing packaged since: nothing to cut.
        assert!(f.cut().is_none());
    }
}

#[test]
fn pictures_and_audio_before_the_first_keyframe_are_dropped() {
    let mut f =
        Fragmenter::new(config(Timeline::Program, AudioTail::UntilNext), &format()).unwrap();
    for i in 0..20 {
        f.push_audio(opus(i * 960));
    }
    assert_eq!(f.push_video(picture(false, 0)), VideoPush::Dropped);
    assert_eq!(f.origin(), None);
    // Keyframe at 15 000 (8000 at 48 kHz): audio from 8640 on stays.
    assert_eq!(f.push_video(picture(true, 15_000)), VideoPush::Started);
    assert_eq!(
        f.push_video(picture(false, 18_000)),
        VideoPush::Packaged { duration: 3000 }
    );
    // Late audio (before the keyframe) is dropped too.
    f.push_audio(opus(0));
    let t = tracks(&f.cut().unwrap());
    assert_eq!(t[0].base_decode_time, 15_000);
    assert_eq!(t[1].base_decode_time, 8640);
    // 8640 and 9600 start before the picture's end (18 000 = 9600 at 48 kHz): only 8640.
    assert_eq!(t[1].samples.len(), 1);
}

#[test]
fn the_audio_tail_reaches_the_next_packet_or_keeps_its_own_length() {
    for (tail, last) in [(AudioTail::UntilNext, 1920), (AudioTail::Own, 960)] {
        let mut f = Fragmenter::new(config(Timeline::Program, tail), &format()).unwrap();
        f.push_video(picture(true, 0));
        f.push_audio(opus(0));
        // A lost packet at 960: the next one is at 1920.
        f.push_audio(opus(1920));
        f.push_video(picture(false, 3000));
        let t = tracks(&f.cut().unwrap());
        // The picture ends at 3000 (1600 at 48 kHz): only the packet at 0 is in the fragment.
        assert_eq!(t[1].samples.len(), 1, "{tail:?}");
        assert_eq!(t[1].samples[0].0, last, "{tail:?}");
    }
}

#[test]
fn finish_packages_the_last_picture_with_the_nominal_duration() {
    let mut f =
        Fragmenter::new(config(Timeline::FirstKeyframe, AudioTail::Own), &format()).unwrap();
    f.push_video(picture(true, 90_000));
    f.push_video(picture(false, 93_000));
    let last = f.finish().unwrap();
    assert_eq!(last.duration, 6000);
    let t = tracks(&last);
    assert_eq!(
        t[0].samples.iter().map(|s| s.0).collect::<Vec<_>>(),
        [3000, 3000]
    );
    assert_eq!(f.fragmented(), std::time::Duration::from_micros(66_666));
    assert!(f.finish().is_none());
    assert_eq!(f.push_video(picture(true, 96_000)), VideoPush::Dropped);
}
