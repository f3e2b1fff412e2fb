//! Media made by Debian's ffmpeg for packager tests: H.264 (libx264 baseline) as Annex B split
//! into access units (ITU-T H.264 Annex B, §7.4.1.2.3), and Opus (libopus) in Ogg split into
//! packets (RFC 3533 pages, RFC 7845 headers).

use std::process::Command;

/// ffprobe's JSON output (re-exported so tests need no `serde_json` of their own).
pub use serde_json::Value as Json;

/// One H.264 access unit: its NAL units without start codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Frame {
    /// NAL units, decoding order, no start codes.
    pub nalus: Vec<Vec<u8>>,
    /// Holds an IDR slice (NAL type 5).
    pub keyframe: bool,
}

/// An H.264 stream split into access units, with its parameter sets.
#[derive(Debug, Clone)]
pub struct H264Stream {
    /// The first SPS (NAL type 7).
    pub sps: Vec<u8>,
    /// The first PPS (NAL type 8).
    pub pps: Vec<u8>,
    /// Access units in decoding (= presentation: no B-frames) order.
    pub frames: Vec<H264Frame>,
}

/// Encodes `seconds` of `testsrc2` at `width`x`height`, `fps`, with libx264 baseline (no
/// B-frames), a keyframe exactly every `gop` frames, as Annex B. Needs `ffmpeg` on the PATH.
pub fn ffmpeg_h264(
    seconds: f32,
    width: u32,
    height: u32,
    fps: u32,
    gop: u32,
) -> anyhow::Result<H264Stream> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "0",
            "-sc_threshold",
            "0",
        ])
        .args(["-g", &gop.to_string(), "-keyint_min", &gop.to_string()])
        .args(["-f", "h264", "-"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nals = split_annexb(&out.stdout);
    let sps = nals
        .iter()
        .find(|n| n.first().is_some_and(|b| b & 0x1f == 7))
        .ok_or_else(|| anyhow::anyhow!("no SPS"))?
        .to_vec();
    let pps = nals
        .iter()
        .find(|n| n.first().is_some_and(|b| b & 0x1f == 8))
        .ok_or_else(|| anyhow::anyhow!("no PPS"))?
        .to_vec();
    Ok(H264Stream {
        sps,
        pps,
        frames: access_units(&nals),
    })
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes), without start codes.
pub fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // Trailing zero of a 4-byte start code (or trailing_zero_8bits).
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// Groups NAL units into access units: a new one starts at a slice whose `first_mb_in_slice`
/// is 0 (its first payload bit is 1 in Exp-Golomb) once the current one has a slice, taking
/// along the non-VCL units (SPS, PPS, SEI, AUD) that came just before it (§7.4.1.2.3).
pub fn access_units(nals: &[&[u8]]) -> Vec<H264Frame> {
    let mut out = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut has_slice = false;
    let mut leading: Vec<Vec<u8>> = Vec::new();
    for nal in nals {
        let Some(&h) = nal.first() else { continue };
        let kind = h & 0x1f;
        let is_slice = kind == 1 || kind == 5;
        if is_slice {
            let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
            if first_mb_zero && has_slice {
                let keyframe = current.iter().any(|n| n[0] & 0x1f == 5);
                out.push(H264Frame {
                    nalus: std::mem::take(&mut current),
                    keyframe,
                });
            }
            current.append(&mut leading);
            current.push(nal.to_vec());
            has_slice = true;
        } else if has_slice {
            leading.push(nal.to_vec());
        } else {
            current.push(nal.to_vec());
        }
    }
    current.append(&mut leading);
    if has_slice {
        let keyframe = current.iter().any(|n| n[0] & 0x1f == 5);
        out.push(H264Frame {
            nalus: current,
            keyframe,
        });
    }
    out
}

/// An Opus stream: packets and the `OpusHead` fields that matter.
#[derive(Debug, Clone)]
pub struct OpusStream {
    /// Audio packets in order (the `OpusHead` and `OpusTags` packets removed).
    pub packets: Vec<Vec<u8>>,
    /// Output channels.
    pub channels: u8,
    /// Pre-skip, 48 kHz samples.
    pub pre_skip: u16,
}

/// Encodes `seconds` of a 440 Hz sine (`channels` 1 or 2) with libopus in 20 ms frames into
/// Ogg and returns its packets. Needs `ffmpeg` on the PATH.
pub fn ffmpeg_opus(seconds: f32, channels: u8) -> anyhow::Result<OpusStream> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args(["-ac", &channels.to_string()])
        .args([
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
            "-frame_duration",
            "20",
            "-f",
            "ogg",
            "-",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packets = ogg_packets(&out.stdout)?;
    anyhow::ensure!(packets.len() >= 2, "no Opus headers");
    let head = packets.remove(0);
    anyhow::ensure!(
        head.starts_with(b"OpusHead") && head.len() >= 19,
        "first packet is not OpusHead"
    );
    let tags = packets.remove(0);
    anyhow::ensure!(
        tags.starts_with(b"OpusTags"),
        "second packet is not OpusTags"
    );
    Ok(OpusStream {
        packets,
        channels: head[9],
        pre_skip: u16::from_le_bytes([head[10], head[11]]),
    })
}

/// The packets of an Ogg stream with one logical bitstream (RFC 3533 §6: 27-byte page
/// header, segment table; a lacing value of 255 continues the packet, including across
/// pages). Errors: a page without the `OggS` capture pattern or truncated.
pub fn ogg_packets(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        anyhow::ensure!(data.len() - at >= 27, "truncated Ogg page header at {at}");
        anyhow::ensure!(&data[at..at + 4] == b"OggS", "no capture pattern at {at}");
        let segments = usize::from(data[at + 26]);
        let table_end = at + 27 + segments;
        anyhow::ensure!(table_end <= data.len(), "truncated segment table at {at}");
        let mut body = table_end;
        for &lace in &data[at + 27..table_end] {
            let lace = usize::from(lace);
            anyhow::ensure!(body + lace <= data.len(), "truncated page body at {at}");
            partial.extend_from_slice(&data[body..body + lace]);
            body += lace;
            if lace < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        at = body;
    }
    Ok(packets)
}

/// Runs `ffprobe -v error -of json ARGS PATH_OR_URL` and returns its JSON. Errors: ffprobe
/// failed, printed any error (`-v error` must stay silent) or printed no JSON.
pub fn ffprobe_json(input: &str, args: &[&str]) -> anyhow::Result<Json> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(input)
        .output()?;
    anyhow::ensure!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {input}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}
