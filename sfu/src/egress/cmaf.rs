//! fMP4 / CMAF writing for the program: the init segment (`ftyp` + `moov`) and one
//! `moof` + `mdat` fragment per LL-HLS part.
//!
//! - Box structure: ISO/IEC 14496-12 (ISOBMFF) §4.2 (box header), §8.8 (movie fragments:
//!   `mvex`/`trex` §8.8.3, `moof`/`mfhd`/`traf`/`tfhd`/`tfdt`/`trun` §8.8.4–§8.8.8 and §8.8.12).
//! - Fragmented tracks for HLS: ISO/IEC 23000-19 (CMAF) §7 — empty sample tables in the init
//!   segment, `default-base-is-moof`, a `tfdt` in every track fragment, sample flags carrying
//!   sync samples (§8.8.3.1 `sample_flags`).
//! - Video: H.264 in `avc1` with `avcC` (ISO/IEC 14496-15 §5.3.3, §5.4.2); samples are NAL
//!   units with 4-byte big-endian length prefixes; parameter sets live only in `avcC`.
//! - Audio: Opus in `Opus` with `dOps` ("Encapsulation of Opus in ISO Base Media File Format",
//!   v0.8.1, §4.3), one Opus packet per sample, 48 kHz timescale.
//!
//! The box writer is our own (about a hundred lines, tested against hand-computed layouts):
//! the boxes we need are few and fixed, and the Rust mp4 crates either read only, allocate a
//! tree per fragment, or do not carry `dOps`.
//!
//! Track 1 is video (timescale 90 000), track 2 is audio (timescale 48 000).

use bytes::Bytes;

use super::ProgramFormat;

/// Track id of the video track.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Timescale of the video track, ticks per second.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of the audio track, ticks per second.
pub const AUDIO_TIMESCALE: u32 = 48_000;

/// `sample_flags` of a sync sample: `sample_depends_on = 2` (depends on no other sample),
/// `sample_is_non_sync_sample = 0` (ISO/IEC 14496-12 §8.8.3.1).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on = 1`,
/// `sample_is_non_sync_sample = 1`.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Why a CMAF structure could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmafError {
    /// The SPS is shorter than its 4-byte header + profile/level (ISO/IEC 14496-15 §5.3.3.1
    /// takes profile, compatibility and level from it) or is not NAL type 7.
    #[error("the H.264 SPS is malformed")]
    BadSps,
    /// The PPS is empty or longer than 65 535 bytes.
    #[error("the H.264 PPS is malformed")]
    BadPps,
    /// Opus channel mapping family 0 carries 1 or 2 channels (RFC 7845 §5.1.1.2).
    #[error("Opus channels must be 1 or 2, got {0}")]
    Channels(u8),
    /// Width or height is 0 or above 65 535.
    #[error("video size {0}x{1} out of range")]
    Size(u32, u32),
    /// A box would exceed 4 GiB (32-bit box sizes only).
    #[error("a box exceeds 4 GiB")]
    TooLarge,
}

/// A small ISOBMFF box writer: nested boxes are opened and closed in order, their 32-bit
/// sizes patched on close (ISO/IEC 14496-12 §4.2).
#[derive(Debug, Default)]
pub struct BoxWriter {
    buf: Vec<u8>,
    too_large: bool,
}

impl BoxWriter {
    /// An empty writer with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Self {
        BoxWriter {
            buf: Vec::with_capacity(capacity),
            too_large: false,
        }
    }

    /// Writes box `fourcc` whose body `body` writes.
    pub fn boxed(&mut self, fourcc: &[u8; 4], body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        body(self);
        let size = self.buf.len() - start;
        match u32::try_from(size) {
            Ok(size) => self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes()),
            Err(_) => self.too_large = true,
        }
    }

    /// Writes a full box (`version` and 24-bit `flags` after the header, §4.2).
    pub fn full(
        &mut self,
        fourcc: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Self),
    ) {
        self.boxed(fourcc, |w| {
            w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            body(w);
        });
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Overwrites the big-endian u32 at byte offset `at` (a field reserved earlier).
    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// The bytes written. Errors: [`CmafError::TooLarge`] when a box exceeded 4 GiB.
    pub fn finish(self) -> Result<Vec<u8>, CmafError> {
        if self.too_large {
            return Err(CmafError::TooLarge);
        }
        Ok(self.buf)
    }
}

/// The unity matrix of `mvhd`/`tkhd` (§8.2.2.3).
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment: `ftyp` (major brand `iso6`, compatible `iso6 cmfc mp41`) and `moov` with
/// `mvhd`, `mvex` (`trex` per track) and two `trak`s — video (`avc1` + `avcC` built from
/// `format.sps`/`format.pps`) and audio (`Opus` + `dOps`: version 0, `format.audio_channels`,
/// `opus_pre_skip` samples at 48 kHz, input rate 48 000 Hz, gain 0, mapping family 0).
/// Sample tables are empty (all samples live in fragments). Errors: [`CmafError`] for a
/// malformed SPS/PPS, channels other than 1–2, or a size out of range.
pub fn init_segment(format: &ProgramFormat, opus_pre_skip: u16) -> Result<Bytes, CmafError> {
    let sps = &format.sps[..];
    let pps = &format.pps[..];
    if sps.len() < 4 || sps[0] & 0x1f != 7 || sps.len() > usize::from(u16::MAX) {
        return Err(CmafError::BadSps);
    }
    if pps.is_empty() || pps.len() > usize::from(u16::MAX) {
        return Err(CmafError::BadPps);
    }
    if !(1..=2).contains(&format.audio_channels) {
        return Err(CmafError::Channels(format.audio_channels));
    }
    let (Ok(width), Ok(height)) = (u16::try_from(format.width), u16::try_from(format.height))
    else {
        return Err(CmafError::Size(format.width, format.height));
    };
    if width == 0 || height == 0 {
        return Err(CmafError::Size(format.width, format.height));
    }
    let channels = format.audio_channels;
    let mut w = BoxWriter::with_capacity(1024);
    w.boxed(b"ftyp", |w| {
        w.bytes(b"iso6");
        w.u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            w.bytes(brand);
        }
    });
    w.boxed(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.u32(0); // creation_time
            w.u32(0); // modification_time
            w.u32(1000); // timescale
            w.u32(0); // duration: unknown (fragmented)
            w.u32(0x0001_0000); // rate 1.0
            w.u16(0x0100); // volume 1.0
            w.zeros(10);
            MATRIX.iter().for_each(|&m| w.u32(m));
            w.zeros(24); // pre_defined
            w.u32(AUDIO_TRACK_ID + 1); // next_track_ID
        });
        w.boxed(b"mvex", |w| {
            for track in [VIDEO_TRACK_ID, AUDIO_TRACK_ID] {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(track);
                    w.u32(1); // default_sample_description_index
                    w.u32(0); // default_sample_duration
                    w.u32(0); // default_sample_size
                    w.u32(0); // default_sample_flags
                });
            }
        });
        // Video track.
        w.boxed(b"trak", |w| {
            tkhd(w, VIDEO_TRACK_ID, 0, width, height);
            w.boxed(b"mdia", |w| {
                mdhd(w, VIDEO_TIMESCALE);
                hdlr(w, b"vide", b"Venue video\0");
                w.boxed(b"minf", |w| {
                    w.full(b"vmhd", 0, 1, |w| w.zeros(8));
                    dinf(w);
                    w.boxed(b"stbl", |w| {
                        w.full(b"stsd", 0, 0, |w| {
                            w.u32(1);
                            w.boxed(b"avc1", |w| {
                                w.zeros(6);
                                w.u16(1); // data_reference_index
                                w.zeros(16); // pre_defined, reserved
                                w.u16(width);
                                w.u16(height);
                                w.u32(0x0048_0000); // 72 dpi
                                w.u32(0x0048_0000);
                                w.u32(0);
                                w.u16(1); // frame_count
                                w.zeros(32); // compressorname
                                w.u16(0x0018); // depth
                                w.u16(0xffff); // pre_defined = -1
                                w.boxed(b"avcC", |w| {
                                    w.u8(1); // configurationVersion
                                    w.u8(sps[1]); // AVCProfileIndication
                                    w.u8(sps[2]); // profile_compatibility
                                    w.u8(sps[3]); // AVCLevelIndication
                                    w.u8(0xfc | 3); // lengthSizeMinusOne = 3
                                    w.u8(0xe0 | 1); // one SPS
                                    w.u16(sps.len() as u16);
                                    w.bytes(sps);
                                    w.u8(1); // one PPS
                                    w.u16(pps.len() as u16);
                                    w.bytes(pps);
                                });
                            });
                        });
                        empty_sample_tables(w);
                    });
                });
            });
        });
        // Audio track.
        w.boxed(b"trak", |w| {
            tkhd(w, AUDIO_TRACK_ID, 0x0100, 0, 0);
            w.boxed(b"mdia", |w| {
                mdhd(w, AUDIO_TIMESCALE);
                hdlr(w, b"soun", b"Venue audio\0");
                w.boxed(b"minf", |w| {
                    w.full(b"smhd", 0, 0, |w| w.u32(0));
                    dinf(w);
                    w.boxed(b"stbl", |w| {
                        w.full(b"stsd", 0, 0, |w| {
                            w.u32(1);
                            w.boxed(b"Opus", |w| {
                                w.zeros(6);
                                w.u16(1); // data_reference_index
                                w.zeros(8); // reserved
                                w.u16(u16::from(channels));
                                w.u16(16); // samplesize
                                w.u32(0); // pre_defined, reserved
                                w.u32(AUDIO_TIMESCALE << 16); // samplerate 16.16
                                w.boxed(b"dOps", |w| {
                                    w.u8(0); // Version
                                    w.u8(channels); // OutputChannelCount
                                    w.u16(opus_pre_skip); // PreSkip
                                    w.u32(AUDIO_TIMESCALE); // InputSampleRate
                                    w.u16(0); // OutputGain
                                    w.u8(0); // ChannelMappingFamily
                                });
                            });
                        });
                        empty_sample_tables(w);
                    });
                });
            });
        });
    });
    w.finish().map(Bytes::from)
}

fn tkhd(w: &mut BoxWriter, track: u32, volume: u16, width: u16, height: u16) {
    // flags: track_enabled | track_in_movie | track_in_preview.
    w.full(b"tkhd", 0, 0x7, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(track);
        w.u32(0); // reserved
        w.u32(0); // duration
        w.zeros(8);
        w.u16(0); // layer
        w.u16(0); // alternate_group
        w.u16(volume);
        w.u16(0);
        MATRIX.iter().for_each(|&m| w.u32(m));
        w.u32(u32::from(width) << 16);
        w.u32(u32::from(height) << 16);
    });
}

fn mdhd(w: &mut BoxWriter, timescale: u32) {
    w.full(b"mdhd", 0, 0, |w| {
        w.u32(0);
        w.u32(0);
        w.u32(timescale);
        w.u32(0); // duration
        w.u16(0x55c4); // language "und"
        w.u16(0);
    });
}

fn hdlr(w: &mut BoxWriter, handler: &[u8; 4], name: &[u8]) {
    w.full(b"hdlr", 0, 0, |w| {
        w.u32(0);
        w.bytes(handler);
        w.zeros(12);
        w.bytes(name);
    });
}

fn dinf(w: &mut BoxWriter) {
    w.boxed(b"dinf", |w| {
        w.full(b"dref", 0, 0, |w| {
            w.u32(1);
            // flags 1: the media data is in this file.
            w.full(b"url ", 0, 1, |_| {});
        });
    });
}

fn empty_sample_tables(w: &mut BoxWriter) {
    w.full(b"stts", 0, 0, |w| w.u32(0));
    w.full(b"stsc", 0, 0, |w| w.u32(0));
    w.full(b"stsz", 0, 0, |w| {
        w.u32(0);
        w.u32(0);
    });
    w.full(b"stco", 0, 0, |w| w.u32(0));
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale ticks.
    pub duration: u32,
    /// A sync sample (video: IDR; audio: every Opus packet).
    pub sync: bool,
    /// The sample's bytes as they go into `mdat` (video: see [`avcc_sample`]).
    pub data: Bytes,
}

/// One track's run in a fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// [`VIDEO_TRACK_ID`] or [`AUDIO_TRACK_ID`].
    pub track_id: u32,
    /// Decode time of the first sample, track timescale ticks (`tfdt`, §8.8.12).
    pub base_decode_time: u64,
    /// The samples in decoding order. A run with no samples is left out of the fragment.
    pub samples: &'a [Sample],
}

/// `tfhd` flags: `default-base-is-moof` (§8.8.7.1).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size, sample-flags present (§8.8.8.1).
const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400;

/// One movie fragment: `moof` (`mfhd` with `sequence_number`, then per non-empty run a `traf`
/// with `tfhd` (default-base-is-moof), `tfdt` version 1 and a `trun` giving each sample's
/// duration, size and flags) followed by one `mdat` holding the runs' samples in order.
/// Errors: [`CmafError::TooLarge`] past 4 GiB.
pub fn fragment(sequence_number: u32, runs: &[TrackRun<'_>]) -> Result<Bytes, CmafError> {
    let payload: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut w = BoxWriter::with_capacity(payload + 256);
    let mut offset_fields = Vec::with_capacity(runs.len());
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence_number));
        for run in runs.iter().filter(|r| !r.samples.is_empty()) {
            w.boxed(b"traf", |w| {
                w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |w| {
                    w.u32(run.track_id)
                });
                w.full(b"tfdt", 1, 0, |w| w.u64(run.base_decode_time));
                w.full(b"trun", 0, TRUN_FLAGS, |w| {
                    w.u32(run.samples.len() as u32);
                    offset_fields.push(w.len());
                    w.u32(0); // data_offset, patched below
                    for s in run.samples {
                        w.u32(s.duration);
                        w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
                        w.u32(if s.sync {
                            SYNC_SAMPLE_FLAGS
                        } else {
                            NON_SYNC_SAMPLE_FLAGS
                        });
                    }
                });
            });
        }
    });
    let moof_len = w.len();
    // Each run's data_offset is relative to the start of the moof (default-base-is-moof):
    // past the moof and the 8-byte mdat header, plus the runs written before it.
    let mut data_offset = moof_len + 8;
    for (field, run) in offset_fields
        .iter()
        .zip(runs.iter().filter(|r| !r.samples.is_empty()))
    {
        let Ok(offset) = u32::try_from(data_offset) else {
            return Err(CmafError::TooLarge);
        };
        w.patch_u32(*field, offset);
        data_offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.boxed(b"mdat", |w| {
        for s in runs.iter().flat_map(|r| r.samples.iter()) {
            w.bytes(&s.data);
        }
    });
    w.finish().map(Bytes::from)
}

/// An H.264 access unit as an `avc1` sample: each NAL unit prefixed with its 4-byte
/// big-endian length (ISO/IEC 14496-15 §5.3.2, `lengthSizeMinusOne = 3`). SPS (7), PPS (8)
/// and access unit delimiters (9) are dropped: `avc1` carries parameter sets in `avcC`, the
/// program's format is authoritative. Empty NAL units are skipped.
pub fn avcc_sample(nalus: &[Bytes]) -> Bytes {
    let size: usize = nalus.iter().map(|n| n.len() + 4).sum();
    let mut out = Vec::with_capacity(size);
    for nalu in nalus {
        let Some(&header) = nalu.first() else {
            continue;
        };
        if matches!(header & 0x1f, 7..=9) {
            continue;
        }
        let Ok(len) = u32::try_from(nalu.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nalu);
    }
    Bytes::from(out)
}

/// Samples (48 kHz) in one Opus packet from its TOC (RFC 6716 §3.1: frame size from the
/// configuration, frame count from code `c`, code 3 reads the count byte §3.2.5). `None` for
/// an empty or malformed packet, or more than 120 ms.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    (frames > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
#[path = "../tests/cmaf.rs"]
mod tests;
