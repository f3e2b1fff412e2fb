//! Synthetic media with embedded send-time stamps.
//!
//! Each H.264 slice NAL unit and each Opus packet carries, right after its first byte, an
//! 8-byte **stamp**: nanoseconds since a process-wide epoch, 7 bits per byte with the high bit
//! set. No stamp byte is ever zero, so it cannot form an Annex-B start code (`00 00 01`) and
//! the packetizer splits frames exactly where we put start codes. An SFU forwards payloads
//! unchanged, so a subscriber in the same process reads the stamp back and gets the
//! forwarding delay on one clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Length of a stamp in bytes.
pub const STAMP_LEN: usize = 8;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The process-wide epoch of stamps (set on first use).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from [`epoch`] to `t` (0 if `t` is earlier), as stamped.
pub fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Encodes the low 56 bits of `ns` (2.28 years) as 8 bytes of 7 bits, high bit set.
pub fn encode_stamp(ns: u64) -> [u8; STAMP_LEN] {
    let mut out = [0u8; STAMP_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        let shift = 7 * (STAMP_LEN - 1 - i);
        *b = 0x80 | ((ns >> shift) & 0x7f) as u8;
    }
    out
}

/// Decodes a stamp from the start of `bytes`; `None` if too short or not a stamp.
pub fn decode_stamp(bytes: &[u8]) -> Option<u64> {
    let s = bytes.get(..STAMP_LEN)?;
    let mut ns = 0u64;
    for &b in s {
        if b & 0x80 == 0 {
            return None;
        }
        ns = (ns << 7) | u64::from(b & 0x7f);
    }
    Some(ns)
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// SPS of constrained baseline level 3.1 (`42e01f`), truncated: enough for NAL-type checks.
const SPS: [u8; 4] = [0x67, 0x42, 0xe0, 0x1f];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
/// Filler byte of synthetic slices (never zero: no start-code emulation).
const FILL: u8 = 0x55;

/// An Annex-B access unit of about `size` bytes: SPS + PPS + IDR slice (0x65) when `keyframe`,
/// else one non-IDR slice (0x41); the slice carries the stamp of `send_ns` after its header.
pub fn h264_frame(keyframe: bool, send_ns: u64, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size.max(32));
    if keyframe {
        v.extend_from_slice(&START_CODE);
        v.extend_from_slice(&SPS);
        v.extend_from_slice(&START_CODE);
        v.extend_from_slice(&PPS);
    }
    v.extend_from_slice(&START_CODE);
    v.push(if keyframe { 0x65 } else { 0x41 });
    v.extend_from_slice(&encode_stamp(send_ns));
    if v.len() < size {
        v.resize(size, FILL);
    }
    v
}

/// An Opus packet of `size` bytes (TOC 0xfc: CELT FB 20 ms, stereo) stamped with `send_ns`.
pub fn opus_frame(send_ns: u64, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size.max(1 + STAMP_LEN));
    v.push(0xfc);
    v.extend_from_slice(&encode_stamp(send_ns));
    if v.len() < size {
        v.resize(size, FILL);
    }
    v
}

/// The stamp of an H.264 RTP payload (RFC 6184) that starts a slice: a single NAL unit of type
/// 1 or 5 (stamp at byte 1) or an FU-A (type 28) start fragment of one (stamp at byte 2).
pub fn h264_payload_stamp(payload: &[u8]) -> Option<u64> {
    let first = *payload.first()?;
    match first & 0x1f {
        1 | 5 => decode_stamp(payload.get(1..)?),
        28 => {
            let fu = *payload.get(1)?;
            let start = fu & 0x80 != 0;
            if start && matches!(fu & 0x1f, 1 | 5) {
                decode_stamp(payload.get(2..)?)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The stamp of an Opus RTP payload made by [`opus_frame`].
pub fn opus_payload_stamp(payload: &[u8]) -> Option<u64> {
    decode_stamp(payload.get(1..)?)
}

/// Whether an outgoing datagram is an (S)RTP media packet, not RTCP, STUN or DTLS
/// (RFC 7983 demultiplexing, RFC 5761 §4 for RTP vs RTCP).
pub fn is_rtp(datagram: &[u8]) -> bool {
    match datagram {
        [b0, b1, ..] => (128..=191).contains(b0) && !(192..=223).contains(b1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_roundtrip_and_no_zero_bytes() {
        for ns in [0u64, 1, 127, 128, 1 << 40, (1 << 56) - 1, 123_456_789_012] {
            let s = encode_stamp(ns);
            assert!(s.iter().all(|&b| b != 0));
            assert_eq!(decode_stamp(&s), Some(ns));
        }
        assert_eq!(decode_stamp(&[0x80; 7]), None);
        assert_eq!(decode_stamp(&[0x00; 8]), None);
    }

    #[test]
    fn frames_have_expected_shape() {
        let k = h264_frame(true, 42, 1000);
        assert_eq!(k.len(), 1000);
        assert_eq!(&k[..5], &[0, 0, 0, 1, 0x67]);
        let idr = k.windows(5).position(|w| w == [0, 0, 0, 1, 0x65]);
        assert_eq!(idr, Some(16));
        assert_eq!(decode_stamp(&k[21..]), Some(42));
        // Only three start codes: the stamp and filler never emulate one.
        assert_eq!(k.windows(3).filter(|w| *w == [0, 0, 1]).count(), 3);
        let d = h264_frame(false, 7, 500);
        assert_eq!(&d[..5], &[0, 0, 0, 1, 0x41]);
        assert_eq!(d.len(), 500);
        let o = opus_frame(9, 320);
        assert_eq!(o.len(), 320);
        assert_eq!(opus_payload_stamp(&o), Some(9));
    }

    #[test]
    fn payload_stamps() {
        let st = encode_stamp(1234);
        let mut single = vec![0x41];
        single.extend_from_slice(&st);
        assert_eq!(h264_payload_stamp(&single), Some(1234));
        let mut fua_start = vec![0x7c, 0x85];
        fua_start.extend_from_slice(&st);
        assert_eq!(h264_payload_stamp(&fua_start), Some(1234));
        let mut fua_mid = vec![0x7c, 0x05];
        fua_mid.extend_from_slice(&st);
        assert_eq!(h264_payload_stamp(&fua_mid), None);
        assert_eq!(h264_payload_stamp(&[0x78, 0, 4, 0x67]), None);
        assert_eq!(h264_payload_stamp(&[]), None);
    }

    #[test]
    fn rtp_vs_rtcp() {
        assert!(is_rtp(&[0x80, 96, 0, 0]));
        assert!(is_rtp(&[0x90, 224, 0, 0]));
        assert!(!is_rtp(&[0x80, 200]));
        assert!(!is_rtp(&[0x81, 206]));
        assert!(!is_rtp(&[22, 254]));
        assert!(!is_rtp(&[0, 1]));
    }
}
