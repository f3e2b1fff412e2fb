//! Bitstream readers for health: the Opus TOC (RFC 6716 §3.1), H.264 SPS fields (ITU-T H.264
//! §7.3.2.1.1, our own bounded Exp-Golomb reader) and the VP8 keyframe size (RFC 6386 §9.1).
//! Pure functions on borrowed bytes; none of them panics on any input.

/// Largest SPS NAL unit looked at, bytes.
pub(crate) const MAX_SPS: usize = 512;

/// Whether an Opus packet is stereo: the `s` bit of its TOC byte (RFC 6716 §3.1).
pub fn opus_stereo(toc: u8) -> bool {
    toc & 0x04 != 0
}

/// The SPS NAL unit (with its header byte) in an H.264 RTP payload (RFC 6184): a single NAL
/// unit of type 7 or the first type-7 unit of a STAP-A. `None` otherwise (also for an SPS split
/// into FU-A fragments). Never panics.
pub fn find_h264_sps(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    match first & 0x1f {
        7 => Some(payload),
        24 => {
            let mut rest = payload.get(1..)?;
            while let [a, b, tail @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*a, *b]));
                let unit = tail.get(..size)?;
                if unit.first().is_some_and(|h| h & 0x1f == 7) {
                    return Some(unit);
                }
                rest = tail.get(size..)?;
            }
            None
        }
        _ => None,
    }
}

/// The fields of an H.264 sequence parameter set that health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc` (66 baseline, 77 main, 100 high, …).
    pub profile_idc: u8,
    /// The constraint_set flags byte.
    pub constraints: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
    /// Width in pixels after frame cropping.
    pub width: u32,
    /// Height in pixels after frame cropping.
    pub height: u32,
}

impl SpsInfo {
    /// `profile-level-id` as RFC 6184 §8.1 writes it (e.g. `0x64001f`).
    pub fn profile_level_id(&self) -> u32 {
        u32::from(self.profile_idc) << 16
            | u32::from(self.constraints) << 8
            | u32::from(self.level_idc)
    }
}

/// Parses an H.264 SPS NAL unit (header byte first; emulation prevention bytes are removed
/// here) per ITU-T H.264 §7.3.2.1.1 up to the frame cropping, and computes the cropped size
/// (§7.4.2.1.1, equations 7-19 to 7-22 with `CropUnitX/Y` from Table 6-1). `None` on anything
/// malformed, truncated or absurd; never panics.
pub fn parse_h264_sps(nal: &[u8]) -> Option<SpsInfo> {
    let (&header, body) = nal.split_first()?;
    if header & 0x1f != 7 || body.len() > MAX_SPS {
        return None;
    }
    let rbsp = unescape(body);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let _bit_depth_luma = r.ue()?;
        let _bit_depth_chroma = r.ue()?;
        let _qpprime_y_zero_transform_bypass = r.bit()?;
        if r.bit()? {
            // seq_scaling_matrix_present_flag: scaling_list() per §7.3.2.1.1.1.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = r.se()?;
                            next = (last + delta).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_poc_lsb_minus4 = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.bit()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.bit()?;
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.bit()?;
    }
    let _direct_8x8_inference = r.bit()?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? {
        left = r.ue()?;
        right = r.ue()?;
        top = r.ue()?;
        bottom = r.ue()?;
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = width_mbs.checked_mul(16)?;
    let height = height_map_units.checked_mul(16 * field_factor)?;
    let width = width.checked_sub(crop_x * left.checked_add(right)?)?;
    let height = height.checked_sub(crop_y * top.checked_add(bottom)?)?;
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return None;
    }
    Some(SpsInfo {
        profile_idc,
        constraints,
        level_idc,
        width: width as u32,
        height: height as u32,
    })
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`, H.264 §7.4.1).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader with Exp-Golomb codes (H.264 §9.1). Values are `u64` so no code of at
/// most 32 leading zeros can overflow.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(b == 1)
    }

    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }

    /// ue(v).
    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 32 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    /// se(v).
    fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The frame size from a VP8 RTP payload (RFC 7741 §4.2 descriptor) that starts a keyframe:
/// 14-bit width and height after the start code `9d 01 2a` (RFC 6386 §9.1). `None` for other
/// payloads; never panics.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    let b0 = *payload.first()?;
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let mut idx = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1)?;
        idx = 2;
        if x & 0x80 != 0 {
            let p = *payload.get(idx)?;
            idx += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            idx += 1;
        }
        if x & 0x30 != 0 {
            idx += 1;
        }
    }
    match payload.get(idx..idx + 10)? {
        [tag, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1] if tag & 0x01 == 0 => {
            let w = u32::from(u16::from_le_bytes([*w0, *w1]) & 0x3fff);
            let h = u32::from(u16::from_le_bytes([*h0, *h1]) & 0x3fff);
            (w > 0 && h > 0).then_some((w, h))
        }
        _ => None,
    }
}
