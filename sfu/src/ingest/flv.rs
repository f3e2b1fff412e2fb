//! FLV tag bodies as RTMP carries them (Venue's own parsers; no input may panic):
//! - the AVC video tag: FLV spec v10.1 §E.4.3.1 `VideoTagHeader` + `AVCVIDEOPACKET`, whose
//!   sequence header is an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.2.4.1) and
//!   whose NAL units are length-prefixed (AVCC);
//! - the AAC audio tag: FLV v10.1 §E.4.2.1 `AudioTagHeader` with `SoundFormat` 10 and
//!   `AACPacketType` 0 = `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), 1 = raw frame.

use bytes::Bytes;

/// What an AVC video tag carried.
#[derive(Debug, PartialEq, Eq)]
pub enum AvcTag {
    /// `AVCDecoderConfigurationRecord`: NAL length size and the SPS/PPS units.
    SequenceHeader {
        length_size: usize,
        parameter_sets: Vec<Bytes>,
    },
    /// Coded NAL units of one picture.
    Nalus {
        keyframe: bool,
        composition_time_ms: i32,
        nalus: Vec<Bytes>,
    },
    /// End of sequence, or a codec other than AVC (ignored).
    Other,
}

/// Why a tag could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlvError {
    /// The tag ends before a field it announces.
    #[error("truncated FLV video tag")]
    Truncated,
    /// A NAL length size other than 1, 2 or 4.
    #[error("bad AVC NAL length size {0}")]
    LengthSize(usize),
}

/// Parses one FLV video tag body (FLV v10.1 §E.4.3.1 `VideoTagHeader` + `AVCVIDEOPACKET`).
/// `length_size` is the NAL length size of the stream's sequence header (4 until one arrives).
/// Errors: [`FlvError`]; never panics on any input.
pub fn parse_video_tag(data: &[u8], length_size: usize) -> Result<AvcTag, FlvError> {
    let [first, packet_type, c0, c1, c2, body @ ..] = data else {
        return if data.first().is_some_and(|b| b & 0x0f != 7) {
            Ok(AvcTag::Other)
        } else {
            Err(FlvError::Truncated)
        };
    };
    if first & 0x0f != 7 {
        return Ok(AvcTag::Other);
    }
    let keyframe = first >> 4 == 1;
    // SI24 composition time offset.
    let raw = (u32::from(*c0) << 16) | (u32::from(*c1) << 8) | u32::from(*c2);
    let composition_time_ms = ((raw << 8) as i32) >> 8;
    match packet_type {
        0 => parse_decoder_config(body),
        1 => {
            if !matches!(length_size, 1 | 2 | 4) {
                return Err(FlvError::LengthSize(length_size));
            }
            let mut nalus = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_at_checked(length_size)
                    .ok_or(FlvError::Truncated)?;
                let n = len
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                let (nalu, tail) = tail.split_at_checked(n).ok_or(FlvError::Truncated)?;
                if !nalu.is_empty() {
                    nalus.push(Bytes::copy_from_slice(nalu));
                }
                rest = tail;
            }
            Ok(AvcTag::Nalus {
                keyframe,
                composition_time_ms,
                nalus,
            })
        }
        _ => Ok(AvcTag::Other),
    }
}

/// ISO/IEC 14496-15 §5.2.4.1 `AVCDecoderConfigurationRecord`.
fn parse_decoder_config(b: &[u8]) -> Result<AvcTag, FlvError> {
    let [
        _version,
        _profile,
        _compat,
        _level,
        len_byte,
        num_sps,
        rest @ ..,
    ] = b
    else {
        return Err(FlvError::Truncated);
    };
    let length_size = usize::from(len_byte & 0x03) + 1;
    let mut sets = Vec::new();
    let mut rest = rest;
    let take = |rest: &mut &[u8], count: usize, sets: &mut Vec<Bytes>| -> Result<(), FlvError> {
        for _ in 0..count {
            let (len, tail) = rest.split_at_checked(2).ok_or(FlvError::Truncated)?;
            let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (unit, tail) = tail.split_at_checked(n).ok_or(FlvError::Truncated)?;
            sets.push(Bytes::copy_from_slice(unit));
            *rest = tail;
        }
        Ok(())
    };
    take(&mut rest, usize::from(num_sps & 0x1f), &mut sets)?;
    let (num_pps, tail) = rest.split_first().ok_or(FlvError::Truncated)?;
    rest = tail;
    take(&mut rest, usize::from(*num_pps), &mut sets)?;
    Ok(AvcTag::SequenceHeader {
        length_size,
        parameter_sets: sets,
    })
}

/// What an FLV audio tag carried.
#[derive(Debug, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
    AacConfig(Bytes),
    /// One raw AAC frame.
    AacFrame(Bytes),
    /// Another `SoundFormat` (FLV v10.1 §E.4.2.1; 9 = Enhanced RTMP `ExHeader`).
    Other { sound_format: u8 },
}

/// Parses one FLV audio tag body (FLV v10.1 §E.4.2.1 `AudioTagHeader` + `AACAUDIODATA`).
/// Errors: [`FlvError::Truncated`] for an empty tag or an AAC tag without its packet type;
/// never panics on any input.
pub fn parse_audio_tag(data: &[u8]) -> Result<AudioTag, FlvError> {
    let Some((first, rest)) = data.split_first() else {
        return Err(FlvError::Truncated);
    };
    let sound_format = first >> 4;
    if sound_format != 10 {
        return Ok(AudioTag::Other { sound_format });
    }
    match rest.split_first() {
        Some((0, asc)) => Ok(AudioTag::AacConfig(Bytes::copy_from_slice(asc))),
        Some((1, frame)) => Ok(AudioTag::AacFrame(Bytes::copy_from_slice(frame))),
        Some((_, _)) => Ok(AudioTag::Other { sound_format }),
        None => Err(FlvError::Truncated),
    }
}

#[cfg(test)]
#[path = "../tests/ingest_flv.rs"]
mod tests;
