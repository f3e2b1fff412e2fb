//! Egress: readers of a room's stage that make something other than WebRTC out of it — the
//! composed program ([`ProgramVideo`], [`ProgramAudio`], [`ProgramFormat`]) made by the
//! [`compositor`] on the [`program`] thread, its fMP4/CMAF boxes ([`cmaf`]), the one CMAF
//! [`fragmenter`] every packager uses (LL-HLS parts, recording fragments; one per rendition),
//! and the LL-HLS packager that serves it ([`hls`]).
//!
//! These types are the contract between the compositor (producer) and the packagers
//! (consumers). Timestamps of video (`pts_90k`, 90 kHz) and audio (`ts_48k`, 48 kHz) count from
//! the same instant (the program's start), so that audio and video stay in sync in the output.

pub mod cmaf;
pub mod compositor;
pub mod fragmenter;
pub mod hls;
pub mod program;

use bytes::Bytes;

/// One encoded picture of the program: H.264 NAL units without start codes (no Annex B
/// start codes, no length prefixes), in decoding order. No B-frames: decoding order is
/// presentation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramVideo {
    /// The access unit's NAL units (ITU-T H.264 §7.3.1), each without a start code.
    pub nalus: Vec<Bytes>,
    /// An IDR picture: decoding can start here (H.264 §3.69).
    pub keyframe: bool,
    /// Presentation time, 90 kHz ticks from the program's start.
    pub pts_90k: u64,
}

/// One Opus packet of the program (RFC 6716 §3, normally 20 ms), 48 kHz clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramAudio {
    /// The Opus packet (TOC byte first).
    pub opus: Bytes,
    /// Time of the packet's first sample, 48 kHz ticks from the program's start (the same
    /// instant `pts_90k` counts from).
    pub ts_48k: u64,
}

/// What the program is: video size, frame rate, H.264 parameter sets, audio channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramFormat {
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Nominal frames per second.
    pub fps: u32,
    /// The H.264 sequence parameter set NAL unit (type 7), without start code.
    pub sps: Bytes,
    /// The H.264 picture parameter set NAL unit (type 8), without start code.
    pub pps: Bytes,
    /// Opus output channels: 1 or 2 (channel mapping family 0, RFC 7845 §5.1.1.2).
    pub audio_channels: u8,
}
