#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use venue_tests::mp4::{boxes, find, track_fragments};

use super::*;
use crate::egress::cmaf::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
use crate::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

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

/// 2023-11-14T22:13:20Z.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A synthetic 30 fps program with a keyframe every `gop` pictures and 20 ms Opus packets.
struct Feed {
    p: LlHlsPackager,
    frame: u64,
    gop: u64,
    audio_ts: u64,
    audio_pushed: usize,
}

impl Feed {
    fn new(config: HlsConfig, gop: u64) -> Self {
        Feed {
            p: LlHlsPackager::new(config, format()).unwrap(),
            frame: 0,
            gop,
            audio_ts: 0,
            audio_pushed: 0,
        }
    }

    /// Pushes `n` pictures, each preceded by the audio up to its end.
    fn frames(&mut self, n: u64) {
        for _ in 0..n {
            let pts = self.frame * 3000;
            while self.audio_ts * 15 < (pts + 3000) * 8 {
                self.p.push_audio(ProgramAudio {
                    opus: Bytes::from_static(&[31 << 3, 0xaa, 0xbb]),
                    ts_48k: self.audio_ts,
                });
                self.audio_ts += 960;
                self.audio_pushed += 1;
            }
            let keyframe = self.frame.is_multiple_of(self.gop);
            let slice: &'static [u8] = if keyframe {
                &[0x65, 0x88, 1]
            } else {
                &[0x41, 0x9a, 2]
            };
            self.p.push_video(
                ProgramVideo {
                    nalus: vec![Bytes::from_static(&[0x09, 0xf0]), Bytes::from_static(slice)],
                    keyframe,
                    pts_90k: pts,
                },
                t0() + Duration::from_millis(self.frame * 1000 / 30),
            );
            self.frame += 1;
        }
    }

    fn playlist(&self) -> String {
        match self.p.playlist(PlaylistQuery::default()) {
            PlaylistAnswer::Ready(text) => text,
            other => panic!("playlist not ready: {other:?}"),
        }
    }
}

fn ask(p: &LlHlsPackager, msn: Option<u64>, part: Option<u32>) -> PlaylistAnswer {
    p.playlist(PlaylistQuery {
        msn,
        part,
        skip: false,
    })
}

fn moof_tracks(part: &[u8]) -> Vec<venue_tests::mp4::TrackFragment> {
    let moof = find(part, &["moof"]).unwrap();
    track_fragments(moof.body).unwrap()
}

#[test]
fn segments_are_cut_at_keyframes_into_parts() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    f.frames(181); // 6 s and the keyframe that closes segment 2
    for msn in 0..3 {
        let seg = f.p.segment(msn).expect("segment finished");
        let mut concat = Vec::new();
        for part in 0..6u32 {
            let data = f.p.part(msn, part).expect("part");
            concat.extend_from_slice(&data);
            let tracks = moof_tracks(&data);
            let video = &tracks[0];
            assert_eq!(video.track_id, 1);
            assert_eq!(
                video.base_decode_time,
                msn * 180_000 + u64::from(part) * 30_000
            );
            assert_eq!(video.samples.len(), 10, "10 pictures per 1/3 s part");
            for (i, s) in video.samples.iter().enumerate() {
                assert_eq!(s.0, 3000);
                // Length prefix + slice; the AUD is dropped.
                assert_eq!(s.1, 7);
                let sync = part == 0 && i == 0;
                assert_eq!(
                    s.2,
                    if sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    }
                );
            }
        }
        assert!(f.p.part(msn, 6).is_none());
        assert_eq!(&seg[..], &concat[..], "a segment is its parts");
        assert_eq!(
            boxes(&seg)
                .unwrap()
                .iter()
                .filter(|b| &b.fourcc == b"moof")
                .count(),
            6
        );
    }
    assert!(f.p.segment(3).is_none(), "segment 3 has just started");
    assert_eq!(f.p.next_part(), Some((3, 0)));
    assert_eq!(f.p.generation(), 18, "one generation per part");
}

#[test]
fn a_late_keyframe_makes_a_longer_segment() {
    let mut f = Feed::new(HlsConfig::default(), 75); // keyframe every 2.5 s
    f.frames(151);
    let text = f.playlist();
    assert!(text.contains("#EXTINF:2.50000,\nseg0.m4s"), "{text}");
    assert!(text.contains("#EXTINF:2.50000,\nseg1.m4s"), "{text}");
    // 7 full parts and one of 5 pictures.
    assert!(
        text.contains("#EXT-X-PART:DURATION=0.16667,URI=\"part0.7.m4s\"\n"),
        "{text}"
    );
}

#[test]
fn playlist_tags_and_numbering() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    f.frames(181 + 25); // 3 finished segments and 2 parts of the 4th
    let text = f.playlist();
    let expect_head = "#EXTM3U\n\
        #EXT-X-VERSION:9\n\
        #EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.00002\n\
        #EXT-X-PART-INF:PART-TARGET=0.33334\n\
        #EXT-X-MEDIA-SEQUENCE:0\n\
        #EXT-X-MAP:URI=\"init-0.mp4\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n";
    assert!(text.starts_with(expect_head), "{text}");
    assert_eq!(text.matches("#EXTINF:2.00000,\n").count(), 3);
    for msn in 0..3 {
        assert!(text.contains(&format!("#EXTINF:2.00000,\nseg{msn}.m4s\n")));
        assert!(text.contains(&format!(
            "#EXT-X-PART:DURATION=0.33333,URI=\"part{msn}.0.m4s\",INDEPENDENT=YES\n"
        )));
        assert!(text.contains(&format!(
            "#EXT-X-PART:DURATION=0.33333,URI=\"part{msn}.5.m4s\"\n"
        )));
    }
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"));
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n"));
    // The segment in progress: its parts, no EXTINF, and the hint for the next part last.
    assert!(
        text.contains("URI=\"part3.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part3.2.m4s\"\n")
    );
    assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part3.2.m4s\"\n"));
    assert_eq!(text.matches("#EXT-X-PRELOAD-HINT").count(), 1);
    assert!(!text.contains("seg3.m4s"));
}

#[test]
fn parts_are_listed_only_near_the_live_edge() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    f.frames(301); // segments 0..=4, 10 s
    let text = f.playlist();
    // Within 3 × 2 s of the end: segments 2, 3, 4 (ends at 6, 8, 10 s > 4 s).
    for msn in 0..2 {
        assert!(!text.contains(&format!("URI=\"part{msn}.")), "{text}");
        assert!(text.contains(&format!("seg{msn}.m4s")));
    }
    for msn in 2..5 {
        assert!(text.contains(&format!("URI=\"part{msn}.0.m4s\"")), "{text}");
    }
}

#[test]
fn blocking_reload_answers() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    assert_eq!(ask(&f.p, None, None), PlaylistAnswer::NotYet, "nothing yet");
    assert_eq!(ask(&f.p, Some(0), Some(0)), PlaylistAnswer::NotYet);
    assert!(matches!(
        ask(&f.p, Some(3), None),
        PlaylistAnswer::BadRequest(_)
    ));
    f.frames(181); // last part (2, 5)
    assert!(matches!(
        ask(&f.p, None, Some(0)),
        PlaylistAnswer::BadRequest(_)
    ));
    assert!(matches!(
        ask(&f.p, Some(2), Some(5)),
        PlaylistAnswer::Ready(_)
    ));
    assert!(matches!(
        ask(&f.p, Some(0), Some(1)),
        PlaylistAnswer::Ready(_)
    ));
    assert!(matches!(ask(&f.p, Some(2), None), PlaylistAnswer::Ready(_)));
    // Next part, and a part index past the end of finished segment 2 (= part 3.0).
    assert_eq!(ask(&f.p, Some(3), Some(0)), PlaylistAnswer::NotYet);
    assert_eq!(ask(&f.p, Some(2), Some(6)), PlaylistAnswer::NotYet);
    assert_eq!(ask(&f.p, Some(3), None), PlaylistAnswer::NotYet);
    // Advance Part Limit: 3 s / (1/3 s) = 9 parts past (2, 5).
    assert_eq!(ask(&f.p, Some(3), Some(8)), PlaylistAnswer::NotYet);
    assert_eq!(ask(&f.p, Some(4), Some(2)), PlaylistAnswer::NotYet);
    assert!(matches!(
        ask(&f.p, Some(3), Some(9)),
        PlaylistAnswer::BadRequest(_)
    ));
    assert!(matches!(
        ask(&f.p, Some(4), Some(3)),
        PlaylistAnswer::BadRequest(_)
    ));
    // More than two segments past the last one.
    assert!(matches!(
        ask(&f.p, Some(5), None),
        PlaylistAnswer::BadRequest(_)
    ));
    assert_eq!(ask(&f.p, Some(4), None), PlaylistAnswer::NotYet);
    // Preload-hinted and near parts are "coming", others not.
    assert!(f.p.part_is_coming(3, 0));
    assert!(f.p.part_is_coming(3, 8));
    assert!(!f.p.part_is_coming(3, 9));
    assert!(!f.p.part_is_coming(2, 5), "published");
    assert!(!f.p.part_is_coming(1, 9), "past");
    let before = f.p.generation();
    f.frames(10);
    assert_eq!(f.p.generation(), before + 1);
    let PlaylistAnswer::Ready(text) = ask(&f.p, Some(3), Some(0)) else {
        panic!("part 3.0 is out");
    };
    assert!(text.contains("URI=\"part3.0.m4s\",INDEPENDENT=YES"));
    assert!(matches!(
        ask(&f.p, Some(2), Some(6)),
        PlaylistAnswer::Ready(_)
    ));
}

#[test]
fn delta_updates_skip_old_segments() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    f.frames(601); // segments 0..=9, 20 s
    let full = f.playlist();
    let PlaylistAnswer::Ready(delta) = f.p.playlist(PlaylistQuery {
        msn: None,
        part: None,
        skip: true,
    }) else {
        panic!("ready");
    };
    // Skip boundary 12 s: segments ending at or before 20 - 12 = 8 s (0..=3) are skipped.
    assert!(delta.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
    assert!(delta.contains("#EXT-X-MAP:URI=\"init-0.mp4\"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
    for msn in 0..4 {
        assert!(!delta.contains(&format!("seg{msn}.m4s")), "{delta}");
        assert!(full.contains(&format!("seg{msn}.m4s")));
    }
    for msn in 4..10 {
        assert!(delta.contains(&format!("seg{msn}.m4s")));
    }
    assert!(!full.contains("EXT-X-SKIP"));
    // Nothing old enough to skip: the full playlist.
    let mut g = Feed::new(HlsConfig::default(), 60);
    g.frames(181);
    let PlaylistAnswer::Ready(short) = g.p.playlist(PlaylistQuery {
        msn: Some(2),
        part: Some(5),
        skip: true,
    }) else {
        panic!("ready");
    };
    assert!(!short.contains("EXT-X-SKIP"));
}

#[test]
fn the_window_slides() {
    let config = HlsConfig {
        window: Duration::from_secs(10),
        first_msn: 1000,
        ..HlsConfig::default()
    };
    let mut f = Feed::new(config, 60);
    f.frames(30 * 30 + 1); // 15 segments of 2 s
    // 10 s kept: segments 1010..=1014.
    assert!(f.p.segment(1009).is_none());
    assert!(f.p.part(1009, 0).is_none());
    assert!(f.p.segment(1010).is_some());
    assert!(f.p.segment(1014).is_some());
    let text = f.playlist();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1010\n"), "{text}");
    assert!(text.contains("#EXT-X-MAP:URI=\"init-1000.mp4\"\n"));
    assert_eq!(text.matches("#EXTINF").count(), 5);
    assert!(text.ends_with("URI=\"part1015.0.m4s\"\n"));
}

#[test]
fn audio_rides_along_continuously() {
    let mut f = Feed::new(HlsConfig::default(), 60);
    f.frames(181);
    let mut audio_samples = 0;
    let mut next_base: Option<u64> = None;
    for msn in 0..3 {
        for part in 0..6 {
            let tracks = moof_tracks(&f.p.part(msn, part).unwrap());
            assert_eq!(tracks.len(), 2, "video and audio in every part");
            let a = &tracks[1];
            assert_eq!(a.track_id, 2);
            if let Some(n) = next_base {
                assert_eq!(a.base_decode_time, n, "no gap or overlap");
            } else {
                assert_eq!(a.base_decode_time, 0);
            }
            assert!(
                a.samples
                    .iter()
                    .all(|s| s.0 == 960 && s.1 == 3 && s.2 == SYNC_SAMPLE_FLAGS)
            );
            next_base = Some(a.base_decode_time + 960 * a.samples.len() as u64);
            audio_samples += a.samples.len();
            // Audio in a part starts before the part's video ends.
            let video_end = tracks[0].base_decode_time + 30_000;
            assert!(a.base_decode_time * 15 < video_end * 8);
        }
    }
    // 6 s of 20 ms packets: 300.
    assert_eq!(audio_samples, 300);
}

#[test]
fn media_before_the_first_keyframe_is_dropped() {
    let mut p = LlHlsPackager::new(HlsConfig::default(), format()).unwrap();
    for ts in (0..20).map(|i| i * 960) {
        p.push_audio(ProgramAudio {
            opus: Bytes::from_static(&[31 << 3, 1]),
            ts_48k: ts,
        });
    }
    // Malformed audio is dropped too.
    p.push_audio(ProgramAudio {
        opus: Bytes::new(),
        ts_48k: 0,
    });
    for i in 0..5u64 {
        let published = p.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(&[0x41, 0x9a])],
                keyframe: false,
                pts_90k: i * 3000,
            },
            t0(),
        );
        assert!(!published);
    }
    assert_eq!(p.next_part(), None);
    // Keyframe at 5 × 3000 = 15 000 (= 8000 at 48 kHz).
    for i in 5..16u64 {
        p.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(if i == 5 {
                    &[0x65, 0x88]
                } else {
                    &[0x41, 0x9a]
                })],
                keyframe: i == 5,
                pts_90k: i * 3000,
            },
            t0(),
        );
    }
    let part = p.part(0, 0).unwrap();
    let tracks = moof_tracks(&part);
    assert_eq!(tracks[0].base_decode_time, 15_000);
    assert_eq!(tracks[0].samples[0].2, SYNC_SAMPLE_FLAGS);
    // Packets at 8640 .. 18240 (48 kHz) are at or after the keyframe.
    assert_eq!(tracks[1].base_decode_time, 8640);
    assert_eq!(tracks[1].samples.len(), 11);
}

#[test]
fn bad_timestamps_get_the_nominal_duration() {
    let mut p = LlHlsPackager::new(HlsConfig::default(), format()).unwrap();
    let pts = [
        0u64, 3000, 3000, 400_000, 6000, 9000, 12_000, 15_000, 18_000, 21_000, 24_000, 27_000,
    ];
    for (i, &t) in pts.iter().enumerate() {
        p.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(&[0x41, 0x9a])],
                keyframe: i == 0,
                pts_90k: t,
            },
            t0(),
        );
    }
    let part = p.part(0, 0).unwrap();
    let video = &moof_tracks(&part)[0];
    // Repeated pts and a jump forward of more than 1 s become 1/30 s; going back too.
    assert!(
        video.samples.iter().all(|s| s.0 == 3000),
        "{:?}",
        video.samples
    );
}

#[test]
fn config_is_validated() {
    let bad = [
        HlsConfig {
            segment_target: Duration::from_millis(100),
            ..HlsConfig::default()
        },
        HlsConfig {
            part_target: Duration::from_secs(3),
            ..HlsConfig::default()
        },
        HlsConfig {
            part_target: Duration::from_millis(10),
            ..HlsConfig::default()
        },
        HlsConfig {
            window: Duration::from_secs(4),
            ..HlsConfig::default()
        },
    ];
    for c in bad {
        assert!(matches!(
            LlHlsPackager::new(c, format()),
            Err(HlsError::Config(_))
        ));
    }
    let mut f = format();
    f.audio_channels = 0;
    assert!(matches!(
        LlHlsPackager::new(HlsConfig::default(), f),
        Err(HlsError::Format(_))
    ));
    let mut f = format();
    f.fps = 0;
    assert!(LlHlsPackager::new(HlsConfig::default(), f).is_err());
}

#[test]
fn dates_are_rfc3339() {
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(t0()), "2023-11-14T22:13:20.000Z");
    assert_eq!(
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
        "2000-02-29T00:00:00.123Z"
    );
    assert_eq!(
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
        "2099-12-31T23:59:59.000Z"
    );
}

#[test]
fn parts_never_exceed_the_part_target() {
    // 29.97 fps: 3003 ticks per picture; 10 pictures would be 0.3337 s > 0.33334 s.
    let mut p = LlHlsPackager::new(HlsConfig::default(), format()).unwrap();
    for i in 0..200u64 {
        p.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(&[0x41, 0x9a])],
                keyframe: i % 60 == 0,
                pts_90k: i * 3003,
            },
            t0(),
        );
    }
    let PlaylistAnswer::Ready(text) = p.playlist(PlaylistQuery::default()) else {
        panic!("ready");
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut parts = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("#EXT-X-PART:DURATION=") else {
            continue;
        };
        parts += 1;
        let d: f64 = rest.split(',').next().unwrap().parse().unwrap();
        assert!(d <= 0.33334, "{line}");
        // 9 pictures (0.3003 s), at least 85 % of the target — but the last part of a segment.
        let last_of_segment = lines[i + 1].starts_with("#EXTINF");
        assert!(last_of_segment || d >= 0.85 * 0.33334, "{line}");
    }
    assert!(parts > 10);
}
