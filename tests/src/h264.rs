//! H.264 checks for tests: RTP payloads (RFC 6184 packetization-mode 1) back to an Annex B
//! byte stream, and ffprobe's count of the pictures it decodes.

use std::io::Write;
use std::process::{Command, Stdio};

/// Reassembles RTP payloads (in sequence order) into Annex B: single NAL units (§5.6), STAP-A
/// (§5.7.1) and FU-A (§5.8). A fragment run that misses its start is skipped.
pub fn depacketize(payloads: &[Vec<u8>]) -> Vec<u8> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let Some(&first) = p.first() else { continue };
        match first & 0x1f {
            1..=23 => {
                out.extend_from_slice(&START);
                out.extend_from_slice(p);
            }
            24 => {
                let mut rest = &p[1..];
                while rest.len() >= 2 {
                    let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    if rest.len() < 2 + n {
                        break;
                    }
                    out.extend_from_slice(&START);
                    out.extend_from_slice(&rest[2..2 + n]);
                    rest = &rest[2 + n..];
                }
            }
            28 if p.len() >= 2 => {
                let header = p[1];
                if header & 0x80 != 0 {
                    fu = Some(vec![(first & 0xe0) | (header & 0x1f)]);
                }
                if let Some(unit) = fu.as_mut() {
                    unit.extend_from_slice(&p[2..]);
                }
                if header & 0x40 != 0
                    && let Some(unit) = fu.take()
                {
                    out.extend_from_slice(&START);
                    out.extend_from_slice(&unit);
                }
            }
            _ => {}
        }
    }
    out
}

/// What ffprobe decoded from an H.264 elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Pictures decoded.
    pub frames: u64,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// Decodes an Annex B stream with ffprobe (`-count_frames`). Needs `ffprobe` on the PATH.
pub fn ffprobe_decode(annexb: &[u8]) -> anyhow::Result<Decoded> {
    let mut child = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "h264",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "json",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    let data = annexb.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let s = &v["streams"][0];
    Ok(Decoded {
        frames: s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        width: s["width"].as_u64().unwrap_or(0) as u32,
        height: s["height"].as_u64().unwrap_or(0) as u32,
    })
}
