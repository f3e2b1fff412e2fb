//! Media bridges: publishers that are not WebRTC peers (RTMP ingest, later file or test
//! sources) hand the SFU neutral frames — H.264 access units as NAL units, Opus packets — and
//! the SFU packetizes them into RTP payloads that flow through the same forwarders as a WHIP
//! publisher's packets (DESIGN.md §2 "neutral frames between protocols").
//!
//! Sans-IO: the packetizer is pure; the shard stamps sequence numbers and arrival times.

use bytes::Bytes;

/// Largest RTP payload the packetizer produces, bytes (fits a 1200-byte SRTP datagram budget
/// with header, extensions and the auth tag).
pub const MAX_RTP_PAYLOAD: usize = 1100;

/// One H.264 access unit (a picture) from a bridge.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// NAL units of the picture without start codes or length prefixes (each starts with its
    /// NAL header byte). Empty units are ignored.
    pub nalus: Vec<Bytes>,
    /// Presentation time in 90 kHz ticks (RTP clock of video).
    pub pts_90k: u64,
    /// The picture is an IDR (random access point). For keyframes the bridge also passes the
    /// current SPS and PPS in `parameter_sets`; they go out before the IDR (RFC 6184 §8.4).
    pub keyframe: bool,
    /// SPS and PPS NAL units (from the RTMP/FLV AVC sequence header), sent in a STAP-A ahead of
    /// every keyframe.
    pub parameter_sets: Vec<Bytes>,
}

/// One Opus packet (20 ms typical) from a bridge.
#[derive(Debug, Clone)]
pub struct AudioFrame {
    /// The Opus packet (RFC 6716).
    pub data: Bytes,
    /// Timestamp in 48 kHz ticks (RTP clock of Opus, RFC 7587 §4.1).
    pub ts_48k: u64,
}

/// Media from a bridge.
#[derive(Debug, Clone)]
pub enum BridgeMedia {
    /// A video picture.
    Video(VideoFrame),
    /// An audio packet.
    Audio(AudioFrame),
}

/// One RTP payload made from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The RTP payload (RFC 6184 packetization-mode 1 for H.264; the packet as is for Opus).
    pub data: Vec<u8>,
    /// Last payload of the picture (RTP marker bit).
    pub marker: bool,
}

/// Packetizes one H.264 access unit (RFC 6184 packetization-mode 1): on keyframes the parameter
/// sets first as one STAP-A (§5.7.1) — or as single NAL units when they do not fit — then each
/// NAL unit as a single NAL unit packet (§5.6) when it fits in `max`, else as FU-A fragments
/// (§5.8). The marker is set on the last payload. Empty NAL units are skipped.
pub fn packetize_h264(frame: &VideoFrame, max: usize, out: &mut Vec<Payload>) {
    let max = max.max(16);
    let start = out.len();
    if frame.keyframe {
        let sets: Vec<&Bytes> = frame
            .parameter_sets
            .iter()
            .filter(|n| !n.is_empty())
            .collect();
        let stap_len = 1 + sets.iter().map(|n| 2 + n.len()).sum::<usize>();
        if !sets.is_empty()
            && stap_len <= max
            && sets.iter().all(|n| n.len() <= usize::from(u16::MAX))
        {
            // STAP-A header: F and NRI of the most important unit, type 24.
            let nri = sets
                .iter()
                .filter_map(|n| n.first())
                .map(|b| b & 0x60)
                .max()
                .unwrap_or(0x60);
            let mut data = Vec::with_capacity(stap_len);
            data.push(nri | 24);
            for n in &sets {
                data.extend_from_slice(&(n.len() as u16).to_be_bytes());
                data.extend_from_slice(n);
            }
            out.push(Payload {
                data,
                marker: false,
            });
        } else {
            for n in sets {
                push_nalu(n, max, out);
            }
        }
    }
    for n in frame.nalus.iter().filter(|n| !n.is_empty()) {
        push_nalu(n, max, out);
    }
    if out.len() > start
        && let Some(last) = out.last_mut()
    {
        last.marker = true;
    }
}

fn push_nalu(nalu: &[u8], max: usize, out: &mut Vec<Payload>) {
    let Some((&header, body)) = nalu.split_first() else {
        return;
    };
    if nalu.len() <= max {
        out.push(Payload {
            data: nalu.to_vec(),
            marker: false,
        });
        return;
    }
    // FU-A: indicator (F, NRI of the unit, type 28) + FU header (S, E, type) + fragment.
    let indicator = (header & 0xe0) | 28;
    let nal_type = header & 0x1f;
    let chunk = max - 2;
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu = nal_type;
        if i == 0 {
            fu |= 0x80;
        }
        if i + 1 == count {
            fu |= 0x40;
        }
        let mut data = Vec::with_capacity(part.len() + 2);
        data.push(indicator);
        data.push(fu);
        data.extend_from_slice(part);
        out.push(Payload {
            data,
            marker: false,
        });
    }
}

/// The `profile-level-id` (RFC 6184 §8.1) of an SPS NAL unit: profile_idc, constraint flags,
/// level_idc as one number, e.g. `0x42e01f`. `None` if the unit is not an SPS or too short.
pub fn sps_profile_level_id(sps: &[u8]) -> Option<u32> {
    match sps {
        [h, p, c, l, ..] if h & 0x1f == 7 => {
            Some(u32::from(*p) << 16 | u32::from(*c) << 8 | u32::from(*l))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "tests/bridge.rs"]
mod tests;
