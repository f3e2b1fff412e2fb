//! The media a shard moves: one publisher packet as every forwarder sees it
//! ([`MediaPacket`]), the messages shards send each other ([`ShardMsg`]), and the codecs
//! Venue negotiates.

use std::sync::Arc;
use std::time::Instant;

use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, Rid};

use crate::api::{ParticipantId, RoomId};
use crate::forward::{PacketMeta, SourceKey};
use crate::health::Observed;

/// RTP clock rate of Venue's video codecs (H.264, VP8), Hz.
pub const VIDEO_CLOCK_HZ: u32 = 90_000;
/// RTP clock rate of Opus (RFC 7587 §4.1), Hz.
pub const AUDIO_CLOCK_HZ: u32 = 48_000;

/// The RTP clock rate of a kind of media, Hz.
pub fn clock_hz(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Video => VIDEO_CLOCK_HZ,
        MediaKind::Audio => AUDIO_CLOCK_HZ,
    }
}

/// The codec identity of a packet, used to find the subscriber's payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecKey {
    /// The codec.
    pub codec: Codec,
    /// H.264 `profile-level-id` (RFC 6184 §8.1), when known.
    pub profile: Option<u32>,
}

/// One publisher RTP packet, shared between all shards and subscribers.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    /// Room of the publisher.
    pub room: RoomId,
    /// Publisher and simulcast layer.
    pub source: SourceKey,
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec of the payload.
    pub codec: CodecKey,
    /// Extended sequence number of the publisher's stream.
    pub seq: u64,
    /// RTP timestamp, clock-rate ticks.
    pub rtp_time: u32,
    /// RTP marker bit (end of frame for video).
    pub marker: bool,
    /// First packet of a keyframe (video) — true for all audio.
    pub switch_point: bool,
    /// RTP payload, shared.
    pub payload: Arc<[u8]>,
    /// When the SFU received it.
    pub arrival: Instant,
    /// The publisher session it came from (see [`PacketMeta::epoch`]).
    pub epoch: u64,
}

impl MediaPacket {
    /// What a forwarder needs of this packet.
    #[inline]
    pub fn meta(&self) -> PacketMeta {
        PacketMeta {
            source: self.source,
            seq: self.seq,
            rtp_time: self.rtp_time,
            switch_point: self.switch_point,
            arrival: self.arrival,
            epoch: self.epoch,
        }
    }

    /// What the health meter needs of this packet (borrowed, no copy); `clock_hz` is the
    /// stream's RTP clock rate.
    pub fn observed(&self, clock_hz: u32) -> Observed<'_> {
        Observed {
            kind: self.kind,
            rid: self.source.rid,
            codec: self.codec.codec,
            profile: self.codec.profile,
            clock_hz,
            seq: self.seq,
            rtp_time: self.rtp_time,
            payload: &self.payload,
            keyframe_start: self.switch_point && self.kind == MediaKind::Video,
        }
    }
}

/// Messages between shards.
#[derive(Debug, Clone)]
pub enum ShardMsg {
    /// A publisher's packet for subscribers on other shards.
    Media(Arc<MediaPacket>),
    /// A subscriber on another shard wants a keyframe from a publisher.
    KeyframeRequest {
        /// Which publisher.
        participant: ParticipantId,
        /// Which simulcast layer.
        rid: Option<Rid>,
        /// PLI or FIR.
        kind: KeyframeRequestKind,
    },
}

/// The codecs Venue negotiates: H.264 (packetization-mode 1: constrained baseline, baseline,
/// main, high), VP8, and Opus stereo at music bitrates (RFC 7587 §6.1 `stereo=1;
/// sprop-stereo=1`, no DTX, in-band FEC).
pub fn codec_config() -> CodecConfig {
    let mut c = CodecConfig::new_with_defaults();
    c.clear();
    c.add_h264(108.into(), Some(109.into()), true, 0x42e01f);
    c.add_h264(127.into(), Some(121.into()), true, 0x42001f);
    c.add_h264(123.into(), Some(119.into()), true, 0x4d001f);
    c.add_h264(114.into(), Some(115.into()), true, 0x64001f);
    c.add_config(
        96.into(),
        Some(97.into()),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    c.add_config(
        111.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            stereo: Some(true),
            sprop_stereo: Some(true),
            use_dtx: Some(false),
            ..Default::default()
        },
    );
    c
}

/// The payload types `rtc` negotiated: payload type → codec key and clock rate (Hz). Read
/// once a session's offer or answer is accepted; shared by publishers and relay ingress.
pub fn negotiated_codecs(rtc: &str0m::Rtc) -> Vec<(str0m::media::Pt, CodecKey, u32)> {
    rtc.codec_config()
        .params()
        .iter()
        .map(|p| {
            let spec = p.spec();
            (
                p.pt(),
                CodecKey {
                    codec: spec.codec,
                    profile: spec.format.profile_level_id,
                },
                spec.clock_rate.get(),
            )
        })
        .collect()
}
