//! The RTMP bridge's added latency: the time from an RTMP message's media tag to the RTP
//! payloads handed to the SFU, per message, on a real stream. Debian's ffmpeg makes 20 s of
//! 720p30 H.264 at 3 Mbit/s (libx264 veryfast, zerolatency, GOP 30) with AAC-LC 44.1 kHz stereo
//! at 128 kbit/s into an FLV file (FLV v10.1 §E.3: header, tags); each video tag is timed
//! through `parse_video_tag` + RFC 6184 packetization, each audio tag through
//! `parse_audio_tag` + AAC decode + 44.1 → 48 kHz resampling + Opus encode. Prints p50 / p99 /
//! max per kind and the CPU time of one stream's worth of media per second of media.
//!
//! `cargo bench -p venue-gateway --bench rtmp_bridge` (needs ffmpeg).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use venue_sfu::bridge::{MAX_RTP_PAYLOAD, VideoFrame, packetize_h264};
use venue_sfu::ingest::{
    AacToOpus, AudioTag, AvcTag, OpusSettings, parse_audio_tag, parse_video_tag,
};

/// FLV tags (type, timestamp ms, body) of a file.
fn flv_tags(data: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut tags = Vec::new();
    let mut at = usize::from(data[8]) + 4; // header, then PreviousTagSize0
    while at + 11 <= data.len() {
        let kind = data[at] & 0x1f;
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = at + 11;
        if body + size > data.len() {
            break;
        }
        tags.push((kind, ts, data[body..body + size].to_vec()));
        at = body + size + 4;
    }
    tags
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>, media_s: f64) {
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "{name:>6}: {} messages, p50 {:?}, p99 {:?}, max {:?}; {:.2} % of a core per stream",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().unwrap(),
        total.as_secs_f64() / media_s * 100.0
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30:duration=20")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=20",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-b:v", "3M", "-maxrate", "3M", "-bufsize", "1M", "-g", "30"])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100", "-ac", "2", "-b:a", "128k",
        ])
        .arg(&file)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let tags = flv_tags(&std::fs::read(&file).unwrap());
    let media_s = 20.0;

    // Three passes; the last one is reported (warm caches, as in a running server).
    let mut video_times = Vec::new();
    let mut audio_times = Vec::new();
    for _ in 0..3 {
        video_times.clear();
        audio_times.clear();
        let mut length_size = 4;
        let mut sets = Vec::new();
        let mut aac: Option<AacToOpus> = None;
        let mut payloads = Vec::new();
        let mut opus = Vec::new();
        for (kind, ts, body) in &tags {
            let t0 = Instant::now();
            match kind {
                9 => match parse_video_tag(body, length_size).unwrap() {
                    AvcTag::SequenceHeader {
                        length_size: l,
                        parameter_sets,
                    } => {
                        length_size = l;
                        sets = parameter_sets;
                    }
                    AvcTag::Nalus {
                        keyframe,
                        composition_time_ms,
                        nalus,
                    } => {
                        let frame = VideoFrame {
                            nalus,
                            pts_90k: (i64::from(*ts) + i64::from(composition_time_ms)) as u64 * 90,
                            keyframe,
                            parameter_sets: if keyframe { sets.clone() } else { Vec::new() },
                        };
                        payloads.clear();
                        packetize_h264(&frame, MAX_RTP_PAYLOAD, &mut payloads);
                        std::hint::black_box(&payloads);
                        video_times.push(t0.elapsed());
                    }
                    AvcTag::Other => {}
                },
                8 => match parse_audio_tag(body).unwrap() {
                    AudioTag::AacConfig(asc) => {
                        aac = Some(AacToOpus::new(&asc, OpusSettings::default()).unwrap());
                    }
                    AudioTag::AacFrame(frame) => {
                        opus.clear();
                        aac.as_mut()
                            .unwrap()
                            .push(&frame, i64::from(*ts), &mut opus)
                            .unwrap();
                        std::hint::black_box(&opus);
                        audio_times.push(t0.elapsed());
                    }
                    AudioTag::Other { .. } => {}
                },
                _ => {}
            }
        }
        if let Some(t) = &aac {
            // Algorithmic delay: the resampler's, plus waiting for a full 20 ms Opus frame.
            println!(
                "audio algorithmic delay: resampler {:.2} ms + Opus framing ≤ 20 ms",
                t.resampler_delay() as f64 / 48.0
            );
        }
    }
    report("video", video_times, media_s);
    report("audio", audio_times, media_s);
}
