//! Keyframe detection on RTP payloads, so a forwarder can switch sources on a decodable frame.
//!
//! Only the first packet of a keyframe is reported: the point where a switch may start.

use str0m::format::Codec;

/// True if `payload` (the RTP payload, header stripped) starts a keyframe of `codec`.
///
/// - H.264 (RFC 6184 §5.6–5.8): a single NAL unit of type 5 (IDR) or 7 (SPS), a STAP-A whose
///   aggregated NAL units include type 5 or 7, or an FU-A start fragment of type 5 or 7.
/// - VP8 (RFC 7741 §4.2–4.3): the start of partition 0 (`S=1`, `PID=0`) whose VP8 frame header
///   has the P bit clear (RFC 6386 §9.1).
///
/// Malformed or truncated payloads are "not a keyframe"; this never panics.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::H264 => h264_keyframe_start(payload),
        Codec::Vp8 => vp8_keyframe_start(payload),
        _ => false,
    }
}

fn is_h264_key_nal(nal_type: u8) -> bool {
    nal_type == 5 || nal_type == 7
}

fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        t @ 1..=23 => is_h264_key_nal(t),
        // STAP-A: [hdr] ([size:16] [nal])*
        24 => {
            let mut rest = payload.get(1..).unwrap_or_default();
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(&nal_hdr) = rest.get(2) else {
                    return false;
                };
                if is_h264_key_nal(nal_hdr & 0x1f) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        // FU-A: [indicator] [S E R type]
        28 => match payload.get(1) {
            Some(&fu) => fu & 0x80 != 0 && is_h264_key_nal(fu & 0x1f),
            None => false,
        },
        _ => false,
    }
}

fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !start || pid != 0 {
        return false;
    }
    let mut idx = 1;
    if extended {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        idx = 2;
        if x & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&p) = payload.get(idx) else {
                return false;
            };
            idx += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            idx += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            idx += 1; // TID/KEYIDX
        }
    }
    match payload.get(idx) {
        Some(&h) => h & 0x01 == 0,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_single_nal() {
        assert!(is_keyframe_start(Codec::H264, &[0x65, 0x88]));
        assert!(is_keyframe_start(Codec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe_start(Codec::H264, &[0x41, 0x9a]));
    }

    #[test]
    fn h264_stap_a_with_sps() {
        // STAP-A, NAL(size 2, type 7), NAL(size 2, type 8)
        let p = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(is_keyframe_start(Codec::H264, &p));
        let p = [0x78, 0x00, 0x02, 0x41, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(!is_keyframe_start(Codec::H264, &p));
    }

    #[test]
    fn h264_fu_a() {
        assert!(is_keyframe_start(Codec::H264, &[0x7c, 0x85, 0x00]));
        // Middle fragment of an IDR is not a start.
        assert!(!is_keyframe_start(Codec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe_start(Codec::H264, &[0x7c, 0x81, 0x00]));
    }

    #[test]
    fn vp8() {
        // No extension, S=1 PID=0, P bit clear -> keyframe.
        assert!(is_keyframe_start(Codec::Vp8, &[0x10, 0x00]));
        assert!(!is_keyframe_start(Codec::Vp8, &[0x10, 0x01]));
        // Extended with 15-bit picture id.
        assert!(is_keyframe_start(
            Codec::Vp8,
            &[0x90, 0x80, 0x81, 0x23, 0x00]
        ));
        assert!(!is_keyframe_start(Codec::Vp8, &[0x00, 0x00]));
    }

    #[test]
    fn truncated_input_never_panics() {
        for codec in [Codec::H264, Codec::Vp8, Codec::Opus] {
            for len in 0..6 {
                for b in [0x00u8, 0x18, 0x1c, 0x78, 0x7c, 0x90, 0xff] {
                    let p = vec![b; len];
                    let _ = is_keyframe_start(codec, &p);
                }
            }
        }
        // STAP-A with a size pointing past the end.
        assert!(!is_keyframe_start(Codec::H264, &[0x78, 0xff, 0xff, 0x41]));
    }
}
