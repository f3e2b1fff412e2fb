//! Ingest: media that arrives in another protocol's framing, made into the neutral frames of
//! [`crate::bridge`] (DESIGN.md §2 "neutral frames between protocols"). Sans-IO: no clock, no
//! tasks, no sockets — the caller (the gateway's RTMP listener) owns the connection and hands
//! in tag bodies with their timestamps.
//!
//! - [`flv`]: the FLV AVC video and AAC audio tag parsers (FLV v10.1 §E.4.2/§E.4.3,
//!   ISO/IEC 14496-15 §5.2.4.1).
//! - [`aac`]: [`AacToOpus`], AAC-LC → Opus (symphonia → rubato → libopus).
//! - [`FlvIngest`]: one RTMP stream's state tying both: the AVC sequence header (NAL length
//!   size, SPS/PPS) and the AAC transcoder, turning each tag into a [`VideoFrame`] or Opus
//!   [`AudioFrame`]s.
//! - [`fuzzing`]: the fuzz entry point of the tag layer (`fuzz/` target `flv_tags`).
//!
//! H.264 passes through without transcoding; SPS/PPS from the sequence header go with every
//! keyframe. A non-zero composition time offset (B-frames) is reported once
//! ([`VideoTagOutcome::Frame::b_frames_found`]) for the caller to warn about.

pub mod aac;
pub mod flv;

use bytes::Bytes;

use crate::bridge::{AudioFrame, VideoFrame};
pub use aac::{AacToOpus, AudioError, OpusSettings, SourceAudioInfo};
pub use flv::{AudioTag, AvcTag, FlvError, parse_audio_tag, parse_video_tag};

/// NAL length size assumed until a sequence header says otherwise, bytes.
const DEFAULT_LENGTH_SIZE: usize = 4;

/// What [`FlvIngest::video_tag`] made of a video tag.
#[derive(Debug)]
pub enum VideoTagOutcome {
    /// An AVC sequence header: the NAL length size and SPS/PPS were taken (nothing to send).
    SequenceHeader,
    /// One picture to send.
    Frame {
        /// The picture; a keyframe carries the stream's SPS/PPS in `parameter_sets`.
        frame: VideoFrame,
        /// This is the first picture of the stream with a composition time offset (the
        /// stream has B-frames); `false` on every later one.
        b_frames_found: bool,
    },
    /// End of sequence, or a codec other than AVC: ignored.
    Ignored,
}

/// What [`FlvIngest::audio_tag`] made of an audio tag.
#[derive(Debug)]
pub enum AudioTagOutcome {
    /// An AAC frame: the Opus packets now complete (zero, one or two) were appended.
    Transcoded,
    /// An AAC sequence header set the transcoder up for this source.
    Configured(SourceAudioInfo),
    /// Audio Venue cannot take (not AAC, HE-AAC, 5.1, frames before their sequence header):
    /// dropped; the string says why, for a log line.
    Unsupported(String),
    /// A malformed tag or an AAC frame that did not decode: dropped (the caller counts it).
    /// Packets appended before the error stand.
    Bad(String),
}

/// One RTMP stream's media state (see the module docs). One per publishing connection.
#[derive(Debug)]
pub struct FlvIngest {
    length_size: usize,
    parameter_sets: Vec<Bytes>,
    b_frames: bool,
    opus: OpusSettings,
    transcoder: Option<AacToOpus>,
}

impl FlvIngest {
    /// A stream whose AAC audio is transcoded to Opus with `opus`.
    pub fn new(opus: OpusSettings) -> Self {
        FlvIngest {
            length_size: DEFAULT_LENGTH_SIZE,
            parameter_sets: Vec::new(),
            b_frames: false,
            opus,
            transcoder: None,
        }
    }

    /// Handles one FLV video tag body at RTMP time `timestamp_ms` (the tag's DTS, ms): the
    /// picture's presentation time is that plus the composition time offset, in 90 kHz ticks
    /// (negative times become 0). Errors: [`FlvError`] for a malformed tag (dropped).
    pub fn video_tag(
        &mut self,
        data: &[u8],
        timestamp_ms: u32,
    ) -> Result<VideoTagOutcome, FlvError> {
        match parse_video_tag(data, self.length_size)? {
            AvcTag::SequenceHeader {
                length_size,
                parameter_sets,
            } => {
                self.length_size = length_size;
                self.parameter_sets = parameter_sets;
                Ok(VideoTagOutcome::SequenceHeader)
            }
            AvcTag::Nalus {
                keyframe,
                composition_time_ms,
                nalus,
            } => {
                let b_frames_found = composition_time_ms != 0 && !self.b_frames;
                self.b_frames |= b_frames_found;
                let pts_ms = i64::from(timestamp_ms) + i64::from(composition_time_ms);
                let frame = VideoFrame {
                    nalus,
                    pts_90k: (pts_ms.max(0) as u64) * 90,
                    keyframe,
                    parameter_sets: if keyframe {
                        self.parameter_sets.clone()
                    } else {
                        Vec::new()
                    },
                };
                Ok(VideoTagOutcome::Frame {
                    frame,
                    b_frames_found,
                })
            }
            AvcTag::Other => Ok(VideoTagOutcome::Ignored),
        }
    }

    /// Handles one FLV audio tag body at RTMP time `timestamp_ms`, appending the Opus packets
    /// it completes to `out` (48 kHz timestamps, see [`AacToOpus`]). A sequence header
    /// (re)configures the transcoder; one that Venue cannot take leaves none, so the frames
    /// after it are [`AudioTagOutcome::Unsupported`] too.
    pub fn audio_tag(
        &mut self,
        data: &[u8],
        timestamp_ms: i64,
        out: &mut Vec<AudioFrame>,
    ) -> AudioTagOutcome {
        match parse_audio_tag(data) {
            Ok(AudioTag::AacConfig(asc)) => match AacToOpus::new(&asc, self.opus) {
                Ok(t) => {
                    let source = t.source();
                    self.transcoder = Some(t);
                    AudioTagOutcome::Configured(source)
                }
                Err(e) => {
                    self.transcoder = None;
                    AudioTagOutcome::Unsupported(e.to_string())
                }
            },
            Ok(AudioTag::AacFrame(frame)) => {
                let Some(t) = self.transcoder.as_mut() else {
                    return AudioTagOutcome::Unsupported(
                        "AAC frames before their sequence header".into(),
                    );
                };
                match t.push(&frame, timestamp_ms, out) {
                    Ok(()) => AudioTagOutcome::Transcoded,
                    Err(e) => AudioTagOutcome::Bad(e.to_string()),
                }
            }
            Ok(AudioTag::Other { sound_format }) => AudioTagOutcome::Unsupported(format!(
                "FLV SoundFormat {sound_format} is not AAC (set the encoder's audio to AAC)"
            )),
            Err(e) => AudioTagOutcome::Bad(e.to_string()),
        }
    }
}

/// Fuzzing entry point of the tag layer: everything an RTMP peer's FLV tags reach before the
/// SFU, without rml_rtmp. Used by the cargo-fuzz target `flv_tags` in `fuzz/` and by the
/// seeded random-input test `gateway/tests/rtmp_fuzz.rs` that CI runs. Never panics or aborts
/// on any input.
pub mod fuzzing {
    use super::{FlvIngest, OpusSettings};

    /// Parses `data` as a sequence of FLV tag bodies, each prefixed by a 1-byte kind (even:
    /// video, odd: audio) and a 2-byte big-endian length: the FLV/AAC layer alone, with the
    /// AAC transcoder. Returns the number of tags parsed.
    pub fn flv_tags(mut data: &[u8]) -> usize {
        let mut ingest = FlvIngest::new(OpusSettings::default());
        let mut out = Vec::new();
        let mut tags = 0usize;
        while let [kind, hi, lo, rest @ ..] = data {
            let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
            let (tag, tail) = rest.split_at(n);
            tags += 1;
            if kind % 2 == 0 {
                let _ = ingest.video_tag(tag, 0);
            } else {
                out.clear();
                let _ = ingest.audio_tag(tag, tags as i64 * 21, &mut out);
            }
            data = tail;
        }
        tags
    }
}
