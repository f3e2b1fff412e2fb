//! Compositor cost: CPU seconds per second of program at 720p30 (and 1080p30) with 1, 2 and 4
//! tiles of 640x360 30 fps H.264 (ffmpeg libx264 `testsrc2`, moving) plus 20 ms Opus per tile,
//! driven on virtual time as fast as it goes. Reports process CPU (utime + stime from
//! `/proc/self/stat`) and, split by call, the time in `push_tile_video` (decode) and in `poll`
//! (compose + encode + audio).
//!
//! `cargo bench -p venue-sfu --bench compositor` (`-- --seconds N` to change the program length,
//! default 20). Needs `ffmpeg` on the PATH. Results: BENCHMARKS.md "Compositor (issue 5)".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use venue_sfu::egress::compositor::{Compositor, CompositorConfig, ProgramOutput};
use venue_tests::media_files::ffmpeg_h264;

/// Process CPU time (user + system) from `/proc/self/stat`, clock ticks of 10 ms.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // Fields after the command: state ppid pgrp session tty_nr tpgid flags minflt cminflt
    // majflt cmajflt utime stime (proc(5): utime is field 14).
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

struct Run {
    cpu: Duration,
    wall: Duration,
    decode: Duration,
    poll: Duration,
    frames: usize,
    bytes: usize,
}

fn run(
    tiles: usize,
    width: u32,
    height: u32,
    seconds: u64,
    stream: &[(Vec<Bytes>, bool)],
    opus: &[Bytes],
) -> Run {
    let cfg = CompositorConfig {
        width,
        height,
        ..CompositorConfig::default()
    };
    let mut c = Compositor::new(cfg).unwrap();
    let names = (0..tiles)
        .map(|i| Some(format!("Artist {}", i + 1)))
        .collect();
    c.set_stage(tiles as u32, names, "Benchmark");
    let t0 = Instant::now();
    let (mut decode, mut poll) = (Duration::ZERO, Duration::ZERO);
    let (mut frames, mut bytes) = (0, 0);
    let (cpu0, wall0) = (process_cpu(), Instant::now());
    // Events every 10 ms of virtual time: tile video at 30 fps, tile audio at 50/s, a poll.
    let mut next_video = 0u64;
    let mut next_audio = 0u64;
    for ms in (0..seconds * 1000).step_by(10) {
        while next_video * 1000 / 30 <= ms {
            let (nalus, key) = &stream[next_video as usize % stream.len()];
            let s = Instant::now();
            for slot in 0..tiles {
                c.push_tile_video(slot, nalus, *key, next_video * 3000);
            }
            decode += s.elapsed();
            next_video += 1;
        }
        while next_audio * 20 <= ms {
            let p = &opus[next_audio as usize % opus.len()];
            for slot in 0..tiles {
                c.push_tile_audio(slot, p, next_audio * 960);
            }
            next_audio += 1;
        }
        let s = Instant::now();
        for o in c.poll(t0 + Duration::from_millis(ms)) {
            if let ProgramOutput::Video(v) = o {
                frames += 1;
                bytes += v.nalus.iter().map(Bytes::len).sum::<usize>();
            }
        }
        poll += s.elapsed();
    }
    let stats = c.stats();
    assert!(
        stats
            .tiles
            .iter()
            .all(|t| t.decode_errors == 0 && t.showing_video),
        "{stats:?}"
    );
    Run {
        cpu: process_cpu() - cpu0,
        wall: wall0.elapsed(),
        decode,
        poll,
        frames,
        bytes,
    }
}

fn main() {
    let mut seconds = 20u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds);
        }
    }
    // 10 s of 640x360 moving test pattern, GOP 1 s, looped.
    let h264 = ffmpeg_h264(10.0, 640, 360, 30, 30).expect("ffmpeg");
    let stream: Vec<(Vec<Bytes>, bool)> = h264
        .frames
        .iter()
        .map(|f| {
            (
                f.nalus.iter().map(|n| Bytes::copy_from_slice(n)).collect(),
                f.keyframe,
            )
        })
        .collect();
    let tile_bytes: usize = stream
        .iter()
        .flat_map(|(n, _)| n.iter().map(Bytes::len))
        .sum();
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    let mut buf = [0u8; 4000];
    let opus: Vec<Bytes> = (0..50u64)
        .map(|k| {
            let pcm: Vec<f32> = (0..960u64)
                .flat_map(|i| {
                    let s = 0.3
                        * (2.0 * std::f32::consts::PI * 440.0 * (k * 960 + i) as f32 / 48_000.0)
                            .sin();
                    [s, s]
                })
                .collect();
            let n = enc.encode_float(&pcm, &mut buf).unwrap();
            Bytes::copy_from_slice(&buf[..n])
        })
        .collect();
    println!(
        "compositor: {seconds} s of program per run; tile input 640x360 30 fps libx264 testsrc2, {:.2} Mbit/s, + Opus 20 ms",
        tile_bytes as f64 * 8.0 / 10.0 / 1e6
    );
    println!(
        "program    tiles  CPU s/program s  wall s/program s  decode  compose+encode  frames  Mbit/s"
    );
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        for tiles in [1usize, 2, 4] {
            let r = run(tiles, w, h, seconds, &stream, &opus);
            let s = seconds as f64;
            println!(
                "{:>4}x{:<5} {:>5}  {:>15.3}  {:>16.3}  {:>6.3}  {:>14.3}  {:>6}  {:>6.2}",
                w,
                h,
                tiles,
                r.cpu.as_secs_f64() / s,
                r.wall.as_secs_f64() / s,
                r.decode.as_secs_f64() / s,
                r.poll.as_secs_f64() / s,
                r.frames,
                r.bytes as f64 * 8.0 / s / 1e6,
            );
        }
    }
}
