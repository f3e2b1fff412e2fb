//! The compositor end to end on virtual time, checked by independent decoders: an ffmpeg
//! (libx264) tile stream composed into a 720p30 program that ffprobe/ffmpeg decode (size,
//! frame count, keyframes exactly every 2 s, the tile's colours in the tile's rect, the card in
//! the empty slot), and Opus tones from two tiles mixed, limited and decoded by libopus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use venue_sfu::egress::compositor::{
    Compositor, CompositorConfig, ProgramOutput, Rect, rgb_to_yuv, tile_rects,
};
use venue_sfu::egress::{ProgramAudio, ProgramVideo};
use venue_tests::audio::deinterleave;
use venue_tests::media_files::{H264Frame, access_units, ffprobe_json, split_annexb};

/// 640x360 at 30 fps, left half red, right half blue, libx264 baseline, GOP 30, `seconds` long.
fn two_colour_tile(seconds: u32) -> anyhow::Result<Vec<H264Frame>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "color=c=red:s=640x360:r=30:d={seconds},drawbox=x=320:y=0:w=320:h=360:color=blue:t=fill"
        ))
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
            "-g",
            "30",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "h264", "-"])
        .output()?;
    ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(access_units(&split_annexb(&out.stdout)))
}

/// Decodes an Annex B stream with ffmpeg to raw I420 frames of `w`x`h`.
fn ffmpeg_decode(path: &std::path::Path, w: usize, h: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "h264", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()?;
    ensure!(
        out.status.success(),
        "ffmpeg decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = w * h * 3 / 2;
    Ok(out.stdout.chunks_exact(size).map(<[u8]>::to_vec).collect())
}

/// Y'CbCr of pixel (x, y) of an I420 frame `w` wide and `h` high.
fn pixel(frame: &[u8], w: usize, h: usize, x: u32, y: u32) -> [u8; 3] {
    let (x, y) = (x as usize, y as usize);
    let c = w * h + (y / 2) * (w / 2) + x / 2;
    [frame[y * w + x], frame[c], frame[c + (w / 2) * (h / 2)]]
}

fn near(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

fn annexb(video: &[ProgramVideo]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in video {
        for n in &v.nalus {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
    }
    out
}

#[test]
fn program_round_trip_through_ffmpeg() -> anyhow::Result<()> {
    let tile = two_colour_tile(4)?;
    ensure!(tile.len() >= 100, "ffmpeg made {} frames", tile.len());
    let mut c = Compositor::new(CompositorConfig::default())?;
    c.set_stage(2, vec![Some("Ada".into()), None], "Friday Night Live");
    let t0 = Instant::now();
    let mut video = Vec::new();
    let mut next_tile = 0usize;
    for ms in (0..=3000u64).step_by(5) {
        let now = t0 + Duration::from_millis(ms);
        // The tile's frames arrive at 30 fps.
        while next_tile < tile.len() && next_tile as u64 * 1000 / 30 <= ms {
            let f = &tile[next_tile];
            let nalus: Vec<Bytes> = f.nalus.iter().map(|n| Bytes::copy_from_slice(n)).collect();
            c.push_tile_video(0, &nalus, f.keyframe, next_tile as u64 * 3000);
            next_tile += 1;
        }
        for o in c.poll(now) {
            if let ProgramOutput::Video(v) = o {
                video.push(v);
            }
        }
    }
    let stats = c.stats();
    assert_eq!(stats.tiles[0].decode_errors, 0, "{stats:?}");
    assert!(stats.tiles[0].frames_decoded >= 90, "{stats:?}");
    assert_eq!(video.len(), 91, "0..=3 s at 30 fps");
    let format = c.format().context("no format")?;
    assert_eq!((format.width, format.height), (1280, 720));

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("program.h264");
    std::fs::File::create(&path)?.write_all(&annexb(&video))?;
    let probe = ffprobe_json(
        path.to_str().context("path")?,
        &[
            "-f",
            "h264",
            "-select_streams",
            "v",
            "-show_frames",
            "-show_entries",
            "frame=key_frame,pict_type,width,height",
        ],
    )?;
    let frames = probe["frames"].as_array().context("frames")?;
    assert_eq!(frames.len(), 91);
    let keys: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["key_frame"].as_i64() == Some(1))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        keys,
        vec![0, 60],
        "a keyframe exactly every 2 s (60 frames)"
    );
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            (f["width"].as_i64(), f["height"].as_i64()),
            (Some(1280), Some(720))
        );
        let want = if keys.contains(&i) { "I" } else { "P" };
        assert_eq!(
            f["pict_type"].as_str(),
            Some(want),
            "frame {i}: no B-frames"
        );
    }

    // The pixels: the tile's halves in tile 0's rect, the card in tile 1's, background between.
    let decoded = ffmpeg_decode(&path, 1280, 720)?;
    assert_eq!(decoded.len(), 91);
    let rects = tile_rects(2, 1280, 720);
    assert_eq!(rects, c.rects());
    let input = {
        let p = dir.path().join("tile.h264");
        let tile_nalus: Vec<ProgramVideo> = tile
            .iter()
            .take(1)
            .map(|f| ProgramVideo {
                nalus: f.nalus.iter().map(|n| Bytes::copy_from_slice(n)).collect(),
                keyframe: f.keyframe,
                pts_90k: 0,
            })
            .collect();
        std::fs::write(&p, annexb(&tile_nalus))?;
        ffmpeg_decode(&p, 640, 360)?.remove(0)
    };
    let (red, blue) = (
        pixel(&input, 640, 360, 160, 180),
        pixel(&input, 640, 360, 480, 180),
    );
    assert!(
        red[2] > 200 && blue[1] > 200,
        "input colours {red:?} {blue:?}"
    );
    let frame = &decoded[45];
    if let Ok(snap) = std::env::var("VENUE_SNAPSHOT_DIR") {
        // Look at it: VENUE_SNAPSHOT_DIR=/tmp/x cargo test -p venue-sfu --test compositor.
        let raw = dir.path().join("frame.yuv");
        std::fs::write(&raw, frame)?;
        let png = std::path::Path::new(&snap).join("compositor-layout2.png");
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo"])
            .args(["-pix_fmt", "yuv420p", "-s", "1280x720", "-i"])
            .arg(&raw)
            .arg(&png)
            .status()?;
        ensure!(st.success(), "ffmpeg png");
    }
    let Rect {
        x,
        y,
        width,
        height,
    } = rects[0];
    let at = |fx: f32, fy: f32| {
        pixel(
            frame,
            1280,
            720,
            x + (width as f32 * fx) as u32,
            y + (height as f32 * fy) as u32,
        )
    };
    assert!(
        near(at(0.25, 0.4), red, 10),
        "tile 0 left {:?} vs {red:?}",
        at(0.25, 0.4)
    );
    assert!(
        near(at(0.75, 0.4), blue, 10),
        "tile 0 right {:?} vs {blue:?}",
        at(0.75, 0.4)
    );
    let card = rgb_to_yuv([0x2a, 0x1f, 0x52]);
    let r1 = rects[1];
    let card_px = pixel(
        frame,
        1280,
        720,
        r1.x + r1.width / 2,
        r1.y + r1.height * 38 / 100,
    );
    assert!(
        near(card_px, card, 6),
        "tile 1 card {card_px:?} vs {card:?}"
    );
    let bg = rgb_to_yuv([0x14, 0x0c, 0x2a]);
    let above = pixel(frame, 1280, 720, 640, 40);
    assert!(near(above, bg, 6), "background {above:?} vs {bg:?}");
    Ok(())
}

/// Goertzel power of `freq` Hz in `x` (48 kHz), normalized to the amplitude of a sine.
fn tone_amplitude(x: &[f32], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.sqrt() / x.len() as f64
}

/// Runs two tiles of tones (`amp` each, 440 Hz on slot 0 and 660 Hz on slot 1, Opus-encoded
/// here) through the compositor for 3 s; returns the program decoded by libopus (stereo).
fn mix_tones(amp: f32) -> anyhow::Result<Vec<f32>> {
    let mut c = Compositor::new(CompositorConfig::default())?;
    c.set_stage(2, vec![Some("A".into()), Some("B".into())], "Room");
    let mut encoders = [440.0f32, 660.0].map(|f| {
        (
            f,
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap(),
        )
    });
    let t0 = Instant::now();
    let mut program: Vec<ProgramAudio> = Vec::new();
    let mut buf = [0u8; 4000];
    for k in 0..150u64 {
        for (slot, (freq, enc)) in encoders.iter_mut().enumerate() {
            let pcm: Vec<f32> = (0..960u64)
                .flat_map(|i| {
                    let t = (k * 960 + i) as f32 / 48_000.0;
                    let s = amp * (2.0 * std::f32::consts::PI * *freq * t).sin();
                    [s, s]
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf)?;
            c.push_tile_audio(slot, &buf[..n], k * 960);
        }
        for o in c.poll(t0 + Duration::from_millis(k * 20)) {
            if let ProgramOutput::Audio(a) = o {
                program.push(a);
            }
        }
    }
    assert_eq!(program.len(), 150);
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo)?;
    let mut out = Vec::new();
    let mut pcm = vec![0f32; 5760 * 2];
    for (i, p) in program.iter().enumerate() {
        assert_eq!(p.ts_48k, i as u64 * 960);
        let n = dec.decode_float(&p.opus, &mut pcm, false)?;
        assert_eq!(n, 960);
        out.extend_from_slice(&pcm[..n * 2]);
    }
    Ok(out)
}

#[test]
fn program_audio_mixes_both_tiles() -> anyhow::Result<()> {
    let out = mix_tones(0.3)?;
    let ch = deinterleave(&out, 2);
    // Skip the first 200 ms (jitter-buffer priming, limiter and codec delay).
    for left_or_right in &ch {
        let x = &left_or_right[9600..];
        let (a440, a660, off) = (
            tone_amplitude(x, 440.0),
            tone_amplitude(x, 660.0),
            tone_amplitude(x, 550.0),
        );
        assert!(a440 > 0.2 && a660 > 0.2, "tones {a440:.3} {a660:.3}");
        assert!(off < 0.02, "energy between the tones: {off:.3}");
        // Quiet enough not to be limited: both at about their input level.
        assert!(
            (a440 - 0.3).abs() < 0.05 && (a660 - 0.3).abs() < 0.05,
            "{a440:.3} {a660:.3}"
        );
    }
    Ok(())
}

#[test]
fn loud_tiles_are_limited_not_clipped() -> anyhow::Result<()> {
    let out = mix_tones(0.99)?;
    let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak <= 1.0, "program peak {peak}");
    let ch = deinterleave(&out, 2);
    let x = &ch[0][9600..];
    let (a440, a660) = (tone_amplitude(x, 440.0), tone_amplitude(x, 660.0));
    assert!(
        a440 > 0.3 && a660 > 0.3,
        "both tones still there: {a440:.3} {a660:.3}"
    );
    Ok(())
}
