//! The LL-HLS packager fed with real media (libx264 baseline 1280x720 30 fps, a keyframe
//! every 2 s, and libopus 20 ms packets, both made by Debian's ffmpeg) and its output read back
//! by ffprobe/ffmpeg: init + a segment's parts decode without errors, streams and durations
//! are right, and parts add up to their segment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use venue_sfu::egress::hls::{HlsConfig, LlHlsPackager, PlaylistAnswer, PlaylistQuery};
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};
use venue_tests::media_files::{ffmpeg_h264, ffmpeg_opus};

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("venue-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn packager_with_media(seconds: f32) -> LlHlsPackager {
    let video = ffmpeg_h264(seconds, 1280, 720, 30, 60).unwrap();
    let audio = ffmpeg_opus(seconds, 2).unwrap();
    let format = ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from(video.sps.clone()),
        pps: Bytes::from(video.pps.clone()),
        audio_channels: audio.channels,
    };
    let mut p = LlHlsPackager::new(HlsConfig::default(), format).unwrap();
    let mut packets = audio.packets.into_iter().enumerate().peekable();
    let start = SystemTime::now();
    for (i, frame) in video.frames.into_iter().enumerate() {
        let pts = i as u64 * 3000;
        // The audio up to this picture's end (48 kHz × 15 = 90 kHz × 8).
        while let Some((k, _)) = packets.peek() {
            let ts = *k as u64 * 960;
            if ts * 15 >= (pts + 3000) * 8 {
                break;
            }
            let (_, opus) = packets.next().unwrap();
            p.push_audio(ProgramAudio {
                opus: Bytes::from(opus),
                ts_48k: ts,
            });
        }
        p.push_video(
            ProgramVideo {
                nalus: frame.nalus.into_iter().map(Bytes::from).collect(),
                keyframe: frame.keyframe,
                pts_90k: pts,
            },
            start + Duration::from_millis(i as u64 * 100 / 3),
        );
    }
    p
}

fn ffprobe_json(path: &std::path::Path, args: &[&str]) -> venue_tests::media_files::Json {
    venue_tests::media_files::ffprobe_json(path.to_str().unwrap(), args).unwrap()
}

/// Sum of the `EXT-X-PART` durations listed for `msn`, and its `EXTINF`.
fn listed_durations(playlist: &str, msn: u64) -> (f64, f64) {
    let prefix = format!("URI=\"part{msn}.");
    let parts: f64 = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && l.contains(&prefix))
        .map(|l| {
            let d = l
                .split("DURATION=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            d.parse::<f64>().unwrap()
        })
        .sum();
    let lines: Vec<&str> = playlist.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("seg{msn}.m4s"))
        .unwrap();
    let extinf = lines[at - 1]
        .trim_start_matches("#EXTINF:")
        .trim_end_matches(',')
        .parse::<f64>()
        .unwrap();
    (parts, extinf)
}

#[test]
fn ffprobe_reads_init_and_parts() {
    let p = packager_with_media(6.5);
    let dir = TempDir::new("hls-ffprobe");
    let PlaylistAnswer::Ready(playlist) = p.playlist(PlaylistQuery::default()) else {
        panic!("playlist ready");
    };

    // Segment 1 as init + its parts, concatenated.
    let mut file = p.init().unwrap().to_vec();
    let mut parts = Vec::new();
    for i in 0.. {
        let Some(part) = p.part(1, i) else { break };
        parts.extend_from_slice(&part);
    }
    assert_eq!(
        &parts[..],
        &p.segment(1).unwrap()[..],
        "parts make the segment"
    );
    file.extend_from_slice(&parts);
    let path = dir.0.join("seg1.mp4");
    std::fs::write(&path, &file).unwrap();

    let info = ffprobe_json(
        &path,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_name,codec_type,width,height,channels,sample_rate,nb_read_frames,start_time:format=duration",
        ],
    );
    let streams = info["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{info}");
    let v = &streams[0];
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["width"], 1280);
    assert_eq!(v["height"], 720);
    assert_eq!(v["nb_read_frames"], "60", "2 s at 30 fps");
    let start: f64 = v["start_time"].as_str().unwrap().parse().unwrap();
    assert!(
        (start - 2.0).abs() < 1e-3,
        "segment 1 starts at 2 s: {start}"
    );
    let a = &streams[1];
    assert_eq!(a["codec_name"], "opus");
    assert_eq!(a["channels"], 2);
    assert_eq!(a["sample_rate"], "48000");
    // 2 s of 20 ms packets, give or take the one at the boundary.
    let audio_frames: i64 = a["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!((99..=101).contains(&audio_frames), "{audio_frames}");
    let duration: f64 = info["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The mov demuxer's duration of a fragmented file is where it ends: 2 s + 2 s.
    assert!(
        (duration - start - 2.0).abs() < 0.05,
        "segment ≈ 2 s: {start} .. {duration}"
    );

    // The playlist agrees: parts sum to the segment, segment 2 s.
    for msn in 0..3 {
        let (parts, extinf) = listed_durations(&playlist, msn);
        assert!((parts - extinf).abs() < 1e-3, "{msn}: {parts} vs {extinf}");
        assert!((extinf - 2.0).abs() < 1e-3, "{msn}: {extinf}");
    }

    // The whole window decodes without a single error message.
    let mut all = p.init().unwrap().to_vec();
    for msn in 0..3 {
        all.extend_from_slice(&p.segment(msn).unwrap());
    }
    let all_path = dir.0.join("all.mp4");
    std::fs::write(&all_path, &all).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&all_path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "ffmpeg errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = ffprobe_json(
        &all_path,
        &["-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    assert_eq!(info["streams"][0]["nb_read_frames"], "180");
}
