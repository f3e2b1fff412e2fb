//! Compositor unit tests: the page's layout geometry, the scaler, the limiter, the placeholder
//! card, keyframe cadence, freeze/timeout and bad input — on a virtual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::encoder::{Encoder, FrameType};
use openh264::formats::{YUVBuffer, YUVSource};

use super::audio::{LIMITER_CEILING, LIMITER_LOOKAHEAD, LIMITER_RELEASE_S};
use super::card::{CARD_INNER, CARD_OUTER};
use super::layout::{even_round, page_scale};
use super::picture::{PlaneMut, PlaneRef, Scaler};
use super::video::strip_start_code;
use super::*;

/// The page's `gridFor` (web/src/viewer.ts), written out.
const PAGE_GRID: [(u32, u32); 9] = [
    (1, 1),
    (2, 1),
    (3, 1),
    (4, 1),
    (3, 2),
    (3, 2),
    (4, 2),
    (4, 2),
    (3, 3),
];

#[test]
fn grid_matches_the_viewer_page() {
    for (n, want) in (1..=9).zip(PAGE_GRID) {
        assert_eq!(grid_for(n), want, "layout {n}");
    }
}

#[test]
fn tile_rects_for_every_layout_and_size() {
    for (w, h) in [(1280, 720), (1920, 1080), (640, 360), (1280, 1024)] {
        let gap = even_round(14.0 * page_scale(w, h)).max(2);
        for layout in 1..=9u32 {
            let rects = tile_rects(layout, w, h);
            let (cols, rows) = grid_for(layout);
            assert_eq!(rects.len(), layout as usize);
            for (i, r) in rects.iter().enumerate() {
                assert!(
                    r.x + r.width <= w && r.y + r.height <= h,
                    "{w}x{h} L{layout}: {r:?} outside"
                );
                assert!(
                    r.x % 2 == 0 && r.y % 2 == 0 && r.width % 2 == 0 && r.height % 2 == 0,
                    "{w}x{h} L{layout}: {r:?} odd"
                );
                let aspect = r.width as f32 / r.height as f32;
                assert!(
                    (aspect - 16.0 / 9.0).abs() < 0.03,
                    "{w}x{h} L{layout}: aspect {aspect}"
                );
                for other in &rects[i + 1..] {
                    assert!(
                        !r.overlaps(other),
                        "{w}x{h} L{layout}: {r:?} overlaps {other:?}"
                    );
                }
                // Same size tiles, row-major in the page's grid.
                assert_eq!((r.width, r.height), (rects[0].width, rects[0].height));
                let (c, row) = (i as u32 % cols, i as u32 / cols);
                assert_eq!(r.x, rects[0].x + c * (r.width + gap));
                assert_eq!(r.y, rects[0].y + row * (r.height + gap));
            }
            let xs: std::collections::BTreeSet<u32> = rects.iter().map(|r| r.x).collect();
            let ys: std::collections::BTreeSet<u32> = rects.iter().map(|r| r.y).collect();
            assert_eq!(
                (xs.len() as u32, ys.len() as u32),
                (cols, rows),
                "{w}x{h} L{layout}"
            );
            // Centred (to even pixels), and as large as fits: one side touches the frame.
            let right = w - (rects[0].x + cols * rects[0].width + (cols - 1) * gap);
            let bottom = h - (rects[0].y + rows * rects[0].height + (rows - 1) * gap);
            assert!(
                rects[0].x.abs_diff(right) <= 2,
                "{w}x{h} L{layout}: not centred"
            );
            assert!(
                rects[0].y.abs_diff(bottom) <= 2,
                "{w}x{h} L{layout}: not centred"
            );
            assert!(
                rects[0].x <= 4 || rects[0].y <= 4,
                "{w}x{h} L{layout}: grid does not fill the frame ({:?})",
                rects[0]
            );
        }
    }
    // Layout 1 fills a 16:9 program; layout 2 is two tiles side by side, 14 px apart.
    assert_eq!(
        tile_rects(1, 1280, 720),
        vec![Rect {
            x: 0,
            y: 0,
            width: 1280,
            height: 720
        }]
    );
    let two = tile_rects(2, 1280, 720);
    assert_eq!(two[1].x - (two[0].x + two[0].width), 14);
    assert_eq!(two[0].y, two[1].y);
    // Layout 5: the last row is left-aligned as CSS grid places it.
    let five = tile_rects(5, 1280, 720);
    assert_eq!(five[3].x, five[0].x);
    assert_eq!(five[4].x, five[1].x);
    // Out-of-range layouts are clamped.
    assert_eq!(tile_rects(0, 1280, 720).len(), 1);
    assert_eq!(tile_rects(12, 1280, 720).len(), 9);
}

#[test]
fn fit_rect_letterboxes_and_pillarboxes() {
    let tile = Rect {
        x: 100,
        y: 50,
        width: 640,
        height: 360,
    };
    assert_eq!(fit_rect(1280, 720, tile), tile);
    let pillar = fit_rect(640, 480, tile);
    assert_eq!((pillar.width, pillar.height), (480, 360));
    assert_eq!(pillar.x, 100 + 80);
    let letter = fit_rect(1000, 300, tile);
    assert_eq!((letter.width, letter.height), (640, 192));
    assert_eq!(letter.y, 50 + 84);
    assert_eq!(fit_rect(0, 0, tile), tile);
}

#[test]
fn scaler_keeps_flat_areas_and_gradients() {
    let (sw, sh) = (64usize, 36usize);
    let src: Vec<u8> = (0..sw * sh).map(|i| ((i % sw) * 4) as u8).collect();
    let mut dst = vec![0u8; 200 * 100];
    let mut s = Scaler::default();
    let src_ref = PlaneRef {
        data: &src,
        stride: sw,
        width: sw,
        height: sh,
    };
    s.scale(
        src_ref,
        &mut PlaneMut {
            data: &mut dst,
            stride: 200,
        },
        (10, 10, 128, 72),
    );
    for y in 10..82 {
        let row = &dst[y * 200 + 10..y * 200 + 138];
        assert!(
            row.windows(2).all(|w| w[1] >= w[0]),
            "row {y} not monotonic"
        );
        assert!(row[0] <= 2 && row[127] >= 250);
    }
    assert!(
        dst[..200 * 10].iter().all(|&v| v == 0),
        "wrote outside the rect"
    );
    // Identity is a copy; downscaling a flat plane stays flat.
    let mut same = vec![0u8; sw * sh];
    s.scale(
        src_ref,
        &mut PlaneMut {
            data: &mut same,
            stride: sw,
        },
        (0, 0, sw, sh),
    );
    assert_eq!(same, src);
    let flat = vec![77u8; sw * sh];
    let mut small = vec![0u8; 20 * 10];
    let flat_ref = PlaneRef {
        data: &flat,
        stride: sw,
        width: sw,
        height: sh,
    };
    s.scale(
        flat_ref,
        &mut PlaneMut {
            data: &mut small,
            stride: 20,
        },
        (0, 0, 20, 10),
    );
    assert!(small.iter().all(|&v| v == 77));
}

#[test]
fn limiter_never_exceeds_the_ceiling_and_leaves_quiet_audio_alone() {
    let mut lim = Limiter::new(LIMITER_CEILING, LIMITER_LOOKAHEAD, LIMITER_RELEASE_S);
    let mut peak_after_settle = 0.0f32;
    for block in 0..200 {
        // 2.0 amplitude with sudden jumps to 3.5: a hard case for the attack.
        let mut buf: Vec<f32> = (0..AUDIO_FRAME_SAMPLES)
            .flat_map(|i| {
                let t = (block * AUDIO_FRAME_SAMPLES + i) as f32 / 48_000.0;
                let amp = if block % 7 == 3 && i > 500 { 3.5 } else { 2.0 };
                let s = amp * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                [s, -s]
            })
            .collect();
        lim.process(&mut buf);
        let peak = buf.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= LIMITER_CEILING + 1e-6, "block {block}: {peak}");
        if block > 20 {
            peak_after_settle = peak_after_settle.max(peak);
        }
    }
    assert!(
        peak_after_settle > 0.8,
        "limited too hard: {peak_after_settle}"
    );

    let mut lim = Limiter::new(LIMITER_CEILING, LIMITER_LOOKAHEAD, LIMITER_RELEASE_S);
    let input: Vec<f32> = (0..4 * AUDIO_FRAME_SAMPLES)
        .flat_map(|i| {
            let s = 0.5 * (i as f32 * 0.05).sin();
            [s, s * 0.5]
        })
        .collect();
    let mut out = input.clone();
    for chunk in out.chunks_mut(2 * AUDIO_FRAME_SAMPLES) {
        lim.process(chunk);
    }
    let delay = 2 * (LIMITER_LOOKAHEAD - 1);
    for (o, i) in out[delay..].iter().zip(&input) {
        assert!((o - i).abs() < 1e-6, "quiet audio changed: {o} vs {i}");
    }
    // Non-finite input becomes silence, not NaN.
    let mut nan = vec![f32::NAN; 2 * AUDIO_FRAME_SAMPLES];
    lim.process(&mut nan);
    assert!(nan.iter().all(|s| s.is_finite()));
}

fn test_config() -> CompositorConfig {
    CompositorConfig {
        title: "Friday Night Live".into(),
        ..CompositorConfig::default()
    }
}

fn near(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

/// A 640x360 I420 picture: left half `left`, right half `right` (Y'CbCr).
fn two_colour_picture(left: [u8; 3], right: [u8; 3]) -> YUVBuffer {
    let (w, h) = (640usize, 360usize);
    let mut yuv = Vec::with_capacity(w * h * 3 / 2);
    for p in 0..3 {
        let (pw, ph) = if p == 0 { (w, h) } else { (w / 2, h / 2) };
        for _ in 0..ph {
            for x in 0..pw {
                yuv.push(if x < pw / 2 { left[p] } else { right[p] });
            }
        }
    }
    YUVBuffer::from_vec(yuv, w, h)
}

/// Encodes `n` pictures of a 640x360 two-colour pattern with OpenH264: access units of NAL
/// units without start codes, and their keyframe flags.
fn tile_stream(n: usize) -> Vec<(Vec<Bytes>, bool)> {
    let mut enc = Encoder::new().unwrap();
    let pic = two_colour_picture([81, 90, 240], [41, 240, 110]);
    (0..n)
        .map(|_| {
            let bs = enc.encode(&pic).unwrap();
            let mut nalus = Vec::new();
            for l in 0..bs.num_layers() {
                let layer = bs.layer(l).unwrap();
                for i in 0..layer.nal_count() {
                    nalus.push(Bytes::copy_from_slice(strip_start_code(
                        layer.nal_unit(i).unwrap(),
                    )));
                }
            }
            (nalus, bs.frame_type() == FrameType::IDR)
        })
        .collect()
}

#[test]
fn empty_slot_shows_the_card_with_the_title() {
    let mut c = Compositor::new(test_config()).unwrap();
    c.set_stage(2, vec![None, None], "Friday Night Live");
    let t0 = Instant::now();
    c.compose(t0);
    let p = c.picture();
    let bg = rgb_to_yuv([0x14, 0x0c, 0x2a]);
    for r in c.rects().to_vec() {
        // The gradient's centre (50%, 38%) has the card's inner colour.
        let centre = p
            .pixel(r.x + r.width / 2, r.y + r.height * 38 / 100)
            .unwrap();
        assert!(
            near(centre, rgb_to_yuv(CARD_INNER), 2),
            "card centre {centre:?}"
        );
        // Its far corner is the outer colour, darker; the rounded corner is the background.
        let edge = p.pixel(r.x + 20, r.y + r.height - 20).unwrap();
        assert!(near(edge, rgb_to_yuv(CARD_OUTER), 3), "card edge {edge:?}");
        assert!(near(p.pixel(r.x, r.y).unwrap(), bg, 1));
        // The title is drawn: bright text pixels in the middle band, none above it.
        let band = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (r.x..r.x + r.width).map(move |x| (x, y)))
                .filter(|&(x, y)| p.pixel(x, y).unwrap()[0] > 150)
                .count()
        };
        assert!(
            band(r.y + r.height * 2 / 5, r.y + r.height / 2) > 200,
            "no title text"
        );
        assert_eq!(band(r.y, r.y + r.height / 4), 0);
    }
    // Between and around the tiles: the room background.
    let r = c.rects()[0];
    assert!(near(p.pixel(r.x + r.width + 6, r.y + 100).unwrap(), bg, 0));
    assert!(near(p.pixel(640, 10).unwrap(), bg, 0));
}

#[test]
fn program_has_format_and_keyframes_exactly_every_interval() {
    let mut c = Compositor::new(test_config()).unwrap();
    assert!(c.format().is_none());
    let t0 = Instant::now();
    let mut video = Vec::new();
    let mut audio = Vec::new();
    for ms in (0..=4100).step_by(5) {
        for o in c.poll(t0 + Duration::from_millis(ms)) {
            match o {
                ProgramOutput::Video(v) => video.push(v),
                ProgramOutput::Audio(a) => audio.push(a),
            }
        }
    }
    assert_eq!(video.len(), 124, "30 fps for 4.1 s");
    let keys: Vec<usize> = video
        .iter()
        .enumerate()
        .filter(|(_, v)| v.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys, vec![0, 60, 120]);
    for (i, v) in video.iter().enumerate() {
        assert_eq!(v.pts_90k, i as u64 * 3000);
        assert!(
            v.nalus
                .iter()
                .all(|n| !n.starts_with(&[0, 0, 1]) && !n.is_empty())
        );
        let types: Vec<u8> = v.nalus.iter().map(|n| n[0] & 0x1f).collect();
        if v.keyframe {
            assert!(
                types.contains(&7) && types.contains(&8) && types.contains(&5),
                "{types:?}"
            );
        } else {
            assert!(types.iter().all(|&t| t == 1), "{types:?}");
        }
    }
    assert_eq!(audio.len(), 206);
    for (i, a) in audio.iter().enumerate() {
        assert_eq!(a.ts_48k, i as u64 * 960);
    }
    let f = c.format().unwrap();
    assert_eq!(
        (f.width, f.height, f.fps, f.audio_channels),
        (1280, 720, 30, 2)
    );
    assert_eq!(f.sps[0] & 0x1f, 7);
    assert_eq!(f.pps[0] & 0x1f, 8);
    assert_eq!(f.sps[1], 66, "baseline profile");
    assert!(c.next_due().unwrap() > t0 + Duration::from_millis(4100));
}

#[test]
fn tile_freezes_then_shows_the_card() {
    let mut c = Compositor::new(test_config()).unwrap();
    c.set_stage(1, vec![Some("Ada".into())], "Room");
    let t0 = Instant::now();
    let stream = tile_stream(30);
    let mut now = t0;
    for (i, (nalus, key)) in stream.iter().enumerate() {
        now = t0 + Duration::from_millis(i as u64 * 33);
        c.poll(now);
        c.push_tile_video(0, nalus, *key, i as u64 * 3000);
    }
    c.poll(now + Duration::from_millis(40));
    let s = c.stats();
    assert_eq!(s.tiles[0].frames_decoded, 30);
    assert!(s.tiles[0].showing_video);
    // The picture landed: left half red-ish, right half green-ish (Y'CbCr of the pattern).
    let p = c.picture();
    assert!(
        near(p.pixel(320, 360).unwrap(), [81, 90, 240], 6),
        "{:?}",
        p.pixel(320, 360)
    );
    assert!(
        near(p.pixel(960, 360).unwrap(), [41, 240, 110], 6),
        "{:?}",
        p.pixel(960, 360)
    );
    // Frozen within the timeout, the card after it.
    c.poll(now + Duration::from_millis(2500));
    assert!(c.stats().tiles[0].showing_video);
    assert!(near(
        c.picture().pixel(960, 360).unwrap(),
        [41, 240, 110],
        6
    ));
    c.poll(now + Duration::from_millis(3100));
    assert!(!c.stats().tiles[0].showing_video);
    let centre = c.picture().pixel(640, 720 * 38 / 100).unwrap();
    assert!(near(centre, rgb_to_yuv(CARD_INNER), 2), "{centre:?}");
}

#[test]
fn garbage_is_counted_and_the_tile_recovers_at_a_keyframe() {
    let mut c = Compositor::new(test_config()).unwrap();
    c.set_stage(2, vec![Some("A".into()), Some("B".into())], "Room");
    let t0 = Instant::now();
    c.poll(t0);
    let mut seed = 0x1234_5678u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let stream = tile_stream(10);
    // Good start, then garbage: truncated and random NAL units, bogus SPS, empty units.
    for (nalus, key) in &stream[..3] {
        c.push_tile_video(0, nalus, *key, 0);
    }
    for i in 0..300 {
        let len = (rnd() % 200) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if let Some(b) = junk.first_mut() {
            *b = [0x67, 0x68, 0x65, 0x41, 0x06][i % 5];
        }
        let truncated = stream[i % 10].0[0].slice(..stream[i % 10].0[0].len() / 2);
        c.push_tile_video(
            0,
            &[Bytes::from(junk), truncated, Bytes::new()],
            i % 3 == 0,
            0,
        );
        c.push_tile_video(1, &[Bytes::from(vec![0u8; i % 7])], true, 0);
        let opus: Vec<u8> = (0..(rnd() % 300) as usize).map(|_| rnd() as u8).collect();
        c.push_tile_audio(0, &opus, i as u64 * 960);
    }
    c.push_tile_video(7, &stream[0].0, true, 0); // outside the layout: ignored
    let s = c.stats();
    assert!(s.tiles[0].decode_errors > 0, "{s:?}");
    assert!(s.tiles[0].frames_dropped > 0, "{s:?}");
    // A fresh keyframe brings the tile back; program output goes on.
    let before = s.tiles[0].frames_decoded;
    for (nalus, key) in &stream {
        c.push_tile_video(0, nalus, *key, 0);
    }
    assert!(c.stats().tiles[0].frames_decoded > before);
    let out = c.poll(t0 + Duration::from_millis(100));
    assert!(out.iter().any(|o| matches!(o, ProgramOutput::Video(_))));
}

#[test]
fn stage_changes_redraw_and_reset_the_slot() {
    let mut c = Compositor::new(test_config()).unwrap();
    c.set_stage(1, vec![Some("Ada".into())], "Room");
    let t0 = Instant::now();
    c.poll(t0);
    for (nalus, key) in tile_stream(3) {
        c.push_tile_video(0, &nalus, key, 0);
    }
    c.poll(t0 + Duration::from_millis(40));
    assert!(c.stats().tiles[0].showing_video);
    // Another artist on slot 0: the old picture goes, the card says who is starting.
    c.set_stage(2, vec![Some("Grace".into()), None], "Room");
    c.poll(t0 + Duration::from_millis(80));
    let s = c.stats();
    assert_eq!(s.tiles.len(), 2);
    assert!(!s.tiles[0].showing_video);
    let r = c.rects()[0];
    let centre = c
        .picture()
        .pixel(r.x + r.width / 2, r.y + r.height * 38 / 100)
        .unwrap();
    assert!(near(centre, rgb_to_yuv(CARD_INNER), 2));
}

#[test]
fn a_slot_waits_for_its_keyframe() {
    let mut c = Compositor::new(test_config()).unwrap();
    c.set_stage(2, vec![Some("Ada".into()), None], "Room");
    assert!(c.needs_keyframe(0) && c.needs_keyframe(1) && !c.needs_keyframe(2));
    let stream = tile_stream(31);
    // Joining mid-GOP: P-frames before the next IDR are dropped, not decode errors.
    for (nalus, key) in &stream[1..5] {
        assert!(!key);
        c.push_tile_video(0, nalus, *key, 0);
    }
    let s = c.stats();
    assert_eq!(
        (s.tiles[0].frames_dropped, s.tiles[0].decode_errors),
        (4, 0)
    );
    assert!(c.needs_keyframe(0));
    c.push_tile_video(0, &stream[0].0, true, 0);
    assert!(!c.needs_keyframe(0));
    assert_eq!(c.stats().tiles[0].frames_decoded, 1);
    // Hidden by a smaller layout, a slot starts over when shown again.
    c.push_tile_video(1, &stream[0].0, true, 0);
    assert!(!c.needs_keyframe(1));
    c.set_stage(1, vec![Some("Ada".into()), None], "Room");
    c.set_stage(2, vec![Some("Ada".into()), None], "Room");
    assert!(c.needs_keyframe(1) && !c.needs_keyframe(0));
}

#[test]
fn late_caller_skips_ahead_instead_of_bursting() {
    let mut c = Compositor::new(test_config()).unwrap();
    let t0 = Instant::now();
    c.poll(t0);
    let out = c.poll(t0 + Duration::from_secs(10));
    let frames = out
        .iter()
        .filter(|o| matches!(o, ProgramOutput::Video(_)))
        .count();
    assert!(frames <= 2, "{frames}");
    let s = c.stats();
    assert!(
        s.video_frames_skipped >= 290 && s.audio_ticks_skipped >= 490,
        "{s:?}"
    );
}

#[test]
fn config_is_validated() {
    for bad in [
        CompositorConfig {
            width: 1281,
            ..Default::default()
        },
        CompositorConfig {
            height: 0,
            ..Default::default()
        },
        CompositorConfig {
            fps: 0,
            ..Default::default()
        },
        CompositorConfig {
            keyframe_interval: Duration::ZERO,
            ..Default::default()
        },
        CompositorConfig {
            video_bitrate_bps: 10,
            ..Default::default()
        },
        CompositorConfig {
            audio_bitrate_bps: 1_000_000,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            Compositor::new(bad),
            Err(CompositorError::Config(_))
        ));
    }
    let hd = CompositorConfig {
        width: 1920,
        height: 1080,
        ..Default::default()
    };
    assert_eq!(hd.gop_frames(), 60);
    let mut c = Compositor::new(hd).unwrap();
    c.set_stage(4, vec![None; 4], "HD");
    let t0 = Instant::now();
    let video: Vec<ProgramVideo> = (0..4)
        .flat_map(|k| c.poll(t0 + Duration::from_millis(k * 34)))
        .filter_map(|o| match o {
            ProgramOutput::Video(v) => Some(v),
            ProgramOutput::Audio(_) => None,
        })
        .collect();
    assert_eq!(video.len(), 4);
    assert!(video[0].keyframe && !video[1].keyframe);
    let f = c.format().unwrap();
    assert_eq!((f.width, f.height), (1920, 1080));
    let odd_kf = CompositorConfig {
        fps: 25,
        keyframe_interval: Duration::from_millis(1500),
        ..Default::default()
    };
    assert_eq!(odd_kf.gop_frames(), 38);
}

#[test]
fn decoded_yuv_source_copy_crops_to_even() {
    let buf = YUVBuffer::from_vec(vec![9u8; 64 * 32 * 3 / 2], 64, 32);
    let mut p = Picture::default();
    assert!(p.copy_from(&buf));
    assert_eq!((p.width, p.height), (64, 32));
    assert_eq!(p.y.len(), 64 * 32);
    assert_eq!(p.u.len(), 32 * 16);
    assert_eq!(buf.dimensions(), (64, 32));
}
