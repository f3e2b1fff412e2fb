//! Unit tests of `media/recording/` (set rules, naming, a set's file fragments, the feed, the
//! writer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use venue_sfu::egress::compositor::ProgramOutput;
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

use super::*;
use crate::ids::{BookingId, RecordingId, StreamerId};
use crate::store::recordings::BookingWindow;

fn seat(id: i64, live: bool) -> Seat {
    Seat {
        streamer_id: StreamerId(id),
        name: format!("S{id}"),
        live,
    }
}

#[test]
fn a_set_starts_when_a_live_streamer_is_on_slot_0_and_ends_when_it_goes_or_changes() {
    let mut t = SetTracker::default();
    // Empty stage, or a streamer on slot 0 who is not live: no set.
    assert!(t.observe(true, None).is_empty());
    assert!(t.observe(true, Some(&seat(1, false))).is_empty());
    // Live: the set starts, once.
    assert_eq!(
        t.observe(true, Some(&seat(1, true))),
        vec![SetChange::Start {
            streamer_id: StreamerId(1),
            name: "S1".into()
        }]
    );
    assert!(t.observe(true, Some(&seat(1, true))).is_empty());
    assert_eq!(t.current(), Some(StreamerId(1)));
    // Another live streamer takes slot 0: the first set ends, the next one starts.
    assert_eq!(
        t.observe(true, Some(&seat(2, true))),
        vec![
            SetChange::End {
                streamer_id: StreamerId(1)
            },
            SetChange::Start {
                streamer_id: StreamerId(2),
                name: "S2".into()
            }
        ]
    );
    // Going offline ends it; coming back starts a new set.
    assert_eq!(
        t.observe(true, Some(&seat(2, false))),
        vec![SetChange::End {
            streamer_id: StreamerId(2)
        }]
    );
    assert_eq!(t.current(), None);
    assert_eq!(t.observe(true, Some(&seat(2, true))).len(), 1);
    // Taken off the stage: ends.
    assert_eq!(
        t.observe(true, None),
        vec![SetChange::End {
            streamer_id: StreamerId(2)
        }]
    );
    // Recording off: nothing starts, and a set in progress ends.
    assert!(t.observe(false, Some(&seat(3, true))).is_empty());
    assert_eq!(t.observe(true, Some(&seat(3, true))).len(), 1);
    assert_eq!(
        t.observe(false, Some(&seat(3, true))),
        vec![SetChange::End {
            streamer_id: StreamerId(3)
        }]
    );
}

fn window(id: i64, artist: &str, start: i64, end: i64) -> BookingWindow {
    BookingWindow {
        booking_id: BookingId(id),
        artist_name: artist.into(),
        start_at: start,
        end_at: end,
    }
}

#[test]
fn a_set_is_named_after_the_booking_whose_window_covers_its_start() {
    let h = 3600;
    let bookings = [
        window(7, "Ann Early", 20 * h, 21 * h),
        window(8, "Ann Late", 21 * h, 22 * h),
    ];
    // Inside a window.
    assert_eq!(
        booking_for(20 * h + 600, &bookings, 300)
            .unwrap()
            .booking_id,
        BookingId(7)
    );
    // In the grace before a window (the key already works): that booking.
    assert_eq!(
        booking_for(20 * h - 120, &bookings, 300)
            .unwrap()
            .booking_id,
        BookingId(7)
    );
    // Inside window 7 and the grace of window 8: the window it is in wins.
    assert_eq!(
        booking_for(21 * h - 60, &bookings, 300).unwrap().booking_id,
        BookingId(7)
    );
    assert_eq!(
        booking_for(21 * h, &bookings, 300).unwrap().booking_id,
        BookingId(8)
    );
    // Before the grace, after the end: no booking (the streamer's name is used).
    assert!(booking_for(20 * h - 301, &bookings, 300).is_none());
    assert!(booking_for(22 * h, &bookings, 300).is_none());
    assert!(booking_for(20 * h, &[], 300).is_none());
}

#[test]
fn file_names_carry_room_utc_start_and_an_artist_slug() {
    let start = UNIX_EPOCH + Duration::from_secs(1_795_293_000); // 2026-11-21T20:30:00Z
    assert_eq!(
        file_name("main", start, "Ann & The Bänd!"),
        "main-20261121T203000Z-ann-the-band.mp4"
    );
    assert_eq!(slug("  ---  "), "set");
    assert_eq!(slug("Ωmega"), "mega");
    assert_eq!(slug("DJ ../../etc/passwd"), "dj-etc-passwd");
    assert!(slug(&"x".repeat(500)).len() <= 48);
}

#[test]
fn sets_shorter_than_two_seconds_are_discarded() {
    assert!(!keep(Duration::ZERO));
    assert!(!keep(Duration::from_millis(1999)));
    assert!(keep(Duration::from_secs(2)));
    assert!(keep(Duration::from_secs(3600)));
}

struct Media {
    format: ProgramFormat,
    video: Vec<ProgramVideo>,
    audio: Vec<ProgramAudio>,
}

/// `seconds` of x264 640x360 30 fps (IDR every second) and Opus stereo, timestamps starting
/// at `offset` seconds of the program clock.
fn media(seconds: f32, offset: u64) -> Media {
    let h264 = venue_tests::media_files::ffmpeg_h264(seconds, 640, 360, 30, 30).unwrap();
    let opus = venue_tests::media_files::ffmpeg_opus(seconds, 2).unwrap();
    let format = ProgramFormat {
        width: 640,
        height: 360,
        fps: 30,
        sps: Bytes::from(h264.sps.clone()),
        pps: Bytes::from(h264.pps.clone()),
        audio_channels: 2,
    };
    let video = h264
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| ProgramVideo {
            nalus: f.nalus.iter().map(|n| Bytes::from(n.clone())).collect(),
            keyframe: f.keyframe,
            pts_90k: offset * 90_000 + i as u64 * 3000,
        })
        .collect();
    let audio = opus
        .packets
        .iter()
        .enumerate()
        .map(|(i, p)| ProgramAudio {
            opus: Bytes::from(p.clone()),
            ts_48k: offset * 48_000 + i as u64 * 960,
        })
        .collect();
    Media {
        format,
        video,
        audio,
    }
}

/// Interleaves the media in time order into the fragmenter; returns the file's bytes.
fn fragment_all(m: &Media) -> (Vec<u8>, SetFile, usize) {
    let (mut f, init) = SetFile::new(&m.format).unwrap();
    let mut file = init.to_vec();
    let mut fragments = 0;
    let mut a = m.audio.iter().peekable();
    for v in &m.video {
        while let Some(p) = a.next_if(|p| p.ts_48k * 15 <= v.pts_90k * 8) {
            f.push_audio(p.clone());
        }
        if let Some(frag) = f.push_video(v.clone()) {
            file.extend_from_slice(&frag);
            fragments += 1;
        }
    }
    for p in a {
        f.push_audio(p.clone());
    }
    if let Some(frag) = f.finish() {
        file.extend_from_slice(&frag);
        fragments += 1;
    }
    (file, f, fragments)
}

fn probe(bytes: &[u8]) -> venue_tests::media_files::Json {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.mp4");
    std::fs::write(&path, bytes).unwrap();
    venue_tests::media_files::ffprobe_json(
        path.to_str().unwrap(),
        &[
            "-show_entries",
            "stream=codec_name,width,height,channels:format=duration",
        ],
    )
    .unwrap()
}

#[test]
fn the_fragmenter_writes_a_playable_fmp4_with_one_second_fragments() {
    // The program clock is 100 s in when the set starts: the file still starts at 0.
    let m = media(4.0, 100);
    let (file, f, fragments) = fragment_all(&m);
    assert!((4..=5).contains(&fragments), "{fragments} fragments");
    let written = f.written().as_secs_f64();
    assert!((written - 4.0).abs() < 0.05, "{written}");
    let info = probe(&file);
    let streams = info["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 640 && s["height"] == 360),
        "{info}"
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "opus" && s["channels"] == 2),
        "{info}"
    );
    let duration: f64 = info["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 4.0).abs() < 0.2, "{info}");
    // Every fragment's video starts where the previous one ended (tfdt).
    let moofs = venue_tests::mp4::find_all(&file, &["moof"]);
    assert_eq!(moofs.len(), fragments);
}

#[test]
fn pictures_before_the_first_keyframe_are_dropped_and_a_short_set_is_not_kept() {
    let mut m = media(1.5, 0);
    // Start mid-GOP: the first 10 pictures are not keyframes and are dropped.
    m.video.drain(..10);
    let (file, f, _) = fragment_all(&m);
    assert!(!keep(f.written()), "{:?}", f.written());
    // 1.5 s − 10 dropped pictures, cut at the keyframe at 1 s: ~0.5 s.
    assert!(
        f.written() < Duration::from_millis(700),
        "{:?}",
        f.written()
    );
    let info = probe(&file);
    assert_eq!(info["streams"].as_array().unwrap().len(), 2, "{info}");
}

fn video(keyframe: bool, pts: u64) -> ProgramOutput {
    ProgramOutput::Video(ProgramVideo {
        nalus: vec![Bytes::from_static(&[0x65, 0x88])],
        keyframe,
        pts_90k: pts,
    })
}

#[test]
fn a_full_writer_queue_drops_and_counts_and_video_resumes_on_a_keyframe() {
    let stats = Arc::new(RecordingStats::default());
    let (control, rx) = feed_channel();
    let mut feed = RecorderFeed::new(rx, stats.clone());
    let format = media(0.2, 0).format;
    // Nothing attached: nothing happens.
    feed.feed(&video(true, 0), Some(&format));
    let (tx, writer) = std::sync::mpsc::sync_channel(4);
    control.send(FeedControl::Attach(tx)).unwrap();
    // P-frames before the first keyframe are skipped, not queued.
    feed.feed(&video(false, 0), Some(&format));
    feed.feed(&video(true, 3000), Some(&format));
    feed.feed(&video(false, 6000), Some(&format));
    feed.feed(&video(false, 9000), Some(&format)); // format + 3 pictures: full
    feed.feed(&video(false, 12000), Some(&format)); // dropped
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
    let got: Vec<WriterMsg> = writer.try_iter().collect();
    assert!(matches!(got[0], WriterMsg::Format(_)));
    assert!(matches!(&got[1], WriterMsg::Video(v) if v.keyframe && v.pts_90k == 3000));
    assert_eq!(got.len(), 4);
    // After the drop, P-frames wait for the next keyframe.
    feed.feed(&video(false, 15000), Some(&format));
    feed.feed(&video(true, 18000), Some(&format));
    let got: Vec<WriterMsg> = writer.try_iter().collect();
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], WriterMsg::Video(v) if v.pts_90k == 18000));
    // Detached: nothing more arrives.
    control.send(FeedControl::Detach).unwrap();
    feed.feed(&video(true, 21000), Some(&format));
    assert!(writer.try_recv().is_err());
}

#[test]
fn a_full_disk_ends_the_recording_with_an_error_counted_and_no_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not Linux
    };
    let stats = Arc::new(RecordingStats::default());
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let m = media(1.0, 0);
    tx.send(WriterMsg::Format(m.format.clone())).unwrap();
    for v in m.video {
        tx.send(WriterMsg::Video(v)).unwrap();
    }
    drop(tx);
    let outcome = write_loop(
        full,
        rx,
        Arc::new(AtomicBool::new(false)),
        Arc::new(Progress::default()),
        stats.clone(),
    );
    assert!(outcome.error.is_some(), "{outcome:?}");
    assert_eq!(outcome.bytes, 0);
    assert_eq!(stats.write_errors.load(Ordering::Relaxed), 1);
}

#[test]
fn signed_urls_verify_until_they_expire() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let r = Recordings::open(store, dir.path(), RecordingConfig::default(), 300, [7; 32])
            .await
            .unwrap();
        let now = SystemTime::now();
        let expires = unix_ms(now) / 1000 + 60;
        let sig = r.sign(RecordingId(5), expires);
        assert!(r.verify(RecordingId(5), expires, &sig, now));
        assert!(!r.verify(RecordingId(6), expires, &sig, now));
        assert!(!r.verify(RecordingId(5), expires + 1, &sig, now));
        assert!(!r.verify(RecordingId(5), expires, "zz", now));
        assert!(!r.verify(
            RecordingId(5),
            expires,
            &sig,
            now + Duration::from_secs(120)
        ));
        assert!(dir.path().join(DIR).is_dir());
    });
}
