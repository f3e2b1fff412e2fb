//! Streamer health (issue 4 item 7): what an admin needs to see about a publisher's media —
//! protocol, codecs, resolution, frame rate, bitrate, keyframe interval, B-frames, audio
//! channels and sample rate, ingress packet loss.
//!
//! Uniform for every protocol: a [`HealthMeter`] per publisher session is fed the packets the
//! SFU receives (a WHIP publisher's RTP, a bridge's packetized frames) and computes everything
//! from them; bridges add what only they know through [`BridgeInfo`] (the protocol, B-frames
//! seen in the container, the source audio before transcoding).
//!
//! Sans-IO: every method takes the time as a parameter. Cost on the forwarding path: per packet a
//! short linear search over the layers and a few integer operations; the SPS is parsed only when
//! a keyframe carries one that differs from the last (ITU-T H.264 §7.3.2.1.1), the VP8 frame
//! size is read from keyframe headers only (RFC 6386 §9.1).
//!
//! The SPS parser (`bitstream.rs`) is our own (≈150 lines, bounded, never panics) rather than `h264-reader`: it
//! needs only the fields up to the frame cropping, and avoids a dependency on the media path.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use str0m::format::Codec;
use str0m::media::{MediaKind, Rid};

mod bitstream;

use bitstream::MAX_SPS;
pub use bitstream::{SpsInfo, find_h264_sps, opus_stereo, parse_h264_sps, vp8_keyframe_size};

/// The warning shown for a stream with B-frames, with the OBS fix.
pub const B_FRAMES_WARNING: &str = "The stream has B-frames; viewers may see stutter. In OBS: \
     Settings → Output → Output Mode Advanced → Streaming → set Profile to baseline (or \
     B-frames to 0)";

/// Ingress packet loss above which a warning is given (fraction, 0..1).
pub const LOSS_WARNING: f32 = 0.05;
/// Keyframe interval above which a warning is given, seconds.
pub const GOP_WARNING_S: f32 = 4.0;

/// Width of one rate bucket.
const BUCKET: Duration = Duration::from_millis(500);
/// Buckets in a rate window (window = `BUCKETS × BUCKET` = 4 s).
const BUCKETS: usize = 8;
/// Loss is measured over intervals of this length (RFC 3550 §6.4.1 "fraction lost" style).
const LOSS_INTERVAL: Duration = Duration::from_secs(2);
/// A layer or audio stream not seen for this long is left out of the snapshot.
const STALE: Duration = Duration::from_secs(5);
/// Opus is reported stereo while a stereo packet was seen this recently.
const STEREO_HOLD: Duration = Duration::from_secs(5);
/// New pictures whose RTP timestamp goes backwards (with the sequence number going forwards)
/// before B-frames are reported: reordering in the encoder, not on the network.
const REORDERS_FOR_B_FRAMES: u32 = 2;

/// How a publisher reaches Venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// WebRTC-HTTP ingestion (RFC 9725), from a browser or OBS.
    Whip,
    /// RTMP ingest through the gateway's bridge.
    Rtmp,
}

/// The audio a bridge receives before it transcodes it (e.g. AAC 44.1 kHz before Opus 48 kHz).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceAudio {
    /// Codec name, e.g. `"AAC"`.
    pub codec: String,
    /// Channel count.
    pub channels: u8,
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
}

/// What a bridge knows that the SFU cannot see in the media (see
/// [`crate::BridgeHandle::set_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    /// The ingest protocol.
    pub protocol: Protocol,
    /// The source has B-frames (for RTMP: non-zero FLV composition time offsets).
    pub b_frames: bool,
    /// The source audio, when the bridge transcodes it.
    pub source_audio: Option<SourceAudio>,
}

/// A snapshot of one publisher's health (see [`crate::SfuHandle::publisher_health`]).
///
/// JSON: `{protocol: "whip"|"rtmp", video: [VideoHealth], audio: AudioHealth|null,
/// packet_loss: 0..1, b_frames: bool, warnings: [string]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublisherHealth {
    /// How the publisher reaches Venue.
    pub protocol: Protocol,
    /// One entry per video layer seen in the last 5 s (simulcast: one per RID), in the order
    /// they first appeared.
    pub video: Vec<VideoHealth>,
    /// The audio stream, if one was seen in the last 5 s.
    pub audio: Option<AudioHealth>,
    /// Fraction of packets lost on the way in over the last 2 s interval (0..1), from RTP
    /// sequence gaps after retransmission (RFC 3550 §6.4.1, A.3). 0 for bridges (TCP).
    pub packet_loss: f32,
    /// The stream has B-frames (told by the bridge, or seen as RTP timestamps going backwards).
    pub b_frames: bool,
    /// Human-readable warnings with their fix ([`B_FRAMES_WARNING`] among them).
    pub warnings: Vec<String>,
}

/// Health of one video layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoHealth {
    /// Simulcast RID (RFC 8851), `null` without simulcast.
    pub rid: Option<String>,
    /// Codec name: `"H.264"`, `"VP8"`, `"VP9"`, `"AV1"`, `"H.265"`.
    pub codec: String,
    /// H.264 `profile-level-id` (RFC 6184 §8.1) as six hex digits, e.g. `"42e01f"`: from the
    /// SPS when one was seen, else from the negotiated format.
    pub profile_level_id: Option<String>,
    /// Picture width in pixels after cropping (H.264 SPS, VP8 keyframe header), once seen.
    pub width: Option<u32>,
    /// Picture height in pixels after cropping, once seen.
    pub height: Option<u32>,
    /// Pictures per second over the last 4 s (arrivals of new RTP timestamps).
    pub fps: f32,
    /// Bit/s over the last 4 s (RTP payload + 12 bytes of header per packet).
    pub bitrate_bps: u64,
    /// Seconds between the last two keyframes (RTP timestamps), once two were seen.
    pub keyframe_interval_s: Option<f32>,
}

/// Health of the audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioHealth {
    /// Codec name, e.g. `"Opus"`.
    pub codec: String,
    /// Channels: Opus from the TOC stereo bit (RFC 6716 §3.1), 2 while a stereo packet was seen
    /// in the last 5 s.
    pub channels: u8,
    /// Sample rate, Hz (48000 for Opus, whose RTP clock is always 48 kHz, RFC 7587 §4.1).
    pub sample_rate_hz: u32,
    /// Bit/s over the last 4 s (RTP payload + 12 bytes of header per packet).
    pub bitrate_bps: u64,
    /// The audio before the bridge transcoded it, when a bridge said so.
    pub source: Option<SourceAudio>,
}

/// One received packet, as the meter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Audio or video.
    pub kind: MediaKind,
    /// Simulcast layer.
    pub rid: Option<Rid>,
    /// Codec of the payload.
    pub codec: Codec,
    /// H.264 `profile-level-id` of the negotiated format, if any.
    pub profile: Option<u32>,
    /// RTP clock rate, Hz.
    pub clock_hz: u32,
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp, clock-rate ticks.
    pub rtp_time: u32,
    /// The RTP payload.
    pub payload: &'a [u8],
    /// First packet of a keyframe.
    pub keyframe_start: bool,
}

/// Bytes and events per bucket over a sliding window of `BUCKETS × BUCKET`.
#[derive(Debug, Clone)]
struct RateWindow {
    /// Start of bucket 0 (the first packet).
    origin: Instant,
    /// Index of the newest bucket written.
    head: u64,
    /// When bucket `head` ends: until then a packet only adds (no division on the fast path).
    head_end: Instant,
    bytes: [u64; BUCKETS],
    events: [u32; BUCKETS],
}

impl RateWindow {
    fn new(origin: Instant) -> RateWindow {
        RateWindow {
            origin,
            head: 0,
            head_end: origin + BUCKET,
            bytes: [0; BUCKETS],
            events: [0; BUCKETS],
        }
    }

    fn bucket_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / BUCKET.as_millis()) as u64
    }

    fn add(&mut self, now: Instant, bytes: u64, events: u32) {
        if now >= self.head_end {
            self.advance(now);
        }
        let slot = (self.head % BUCKETS as u64) as usize;
        if let Some(x) = self.bytes.get_mut(slot) {
            *x = x.saturating_add(bytes);
        }
        if let Some(x) = self.events.get_mut(slot) {
            *x = x.saturating_add(events);
        }
    }

    /// Moves `head` to the bucket of `now`, clearing the buckets it passes.
    fn advance(&mut self, now: Instant) {
        let b = self.bucket_of(now);
        if b > self.head {
            let clear = (b - self.head).min(BUCKETS as u64);
            for i in 0..clear {
                let slot = ((b - i) % BUCKETS as u64) as usize;
                if let Some(x) = self.bytes.get_mut(slot) {
                    *x = 0;
                }
                if let Some(x) = self.events.get_mut(slot) {
                    *x = 0;
                }
            }
            self.head = b;
        }
        self.head_end = self.origin + BUCKET * (self.head as u32 + 1);
    }

    /// (bytes/s, events/s) over the window ending at `now`.
    fn rates(&self, now: Instant) -> (f64, f64) {
        let b = self.bucket_of(now).max(self.head);
        let oldest = b.saturating_sub(BUCKETS as u64 - 1);
        let (mut bytes, mut events) = (0u64, 0u64);
        if self.head >= oldest {
            for idx in oldest..=self.head {
                let slot = (idx % BUCKETS as u64) as usize;
                bytes += self.bytes.get(slot).copied().unwrap_or(0);
                events += u64::from(self.events.get(slot).copied().unwrap_or(0));
            }
        }
        let start = self.origin + BUCKET * (oldest as u32);
        let span = now.saturating_duration_since(start).as_secs_f64();
        if span < 0.1 {
            return (0.0, 0.0);
        }
        (bytes as f64 / span, events as f64 / span)
    }
}

/// RTP sequence-gap loss of one stream, per interval (RFC 3550 A.3).
#[derive(Debug, Clone)]
struct LossMeter {
    base: u64,
    max: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    interval_end: Instant,
    /// (lost, expected) of the last complete interval.
    last: Option<(u64, u64)>,
}

impl LossMeter {
    fn new(seq: u64, now: Instant) -> LossMeter {
        LossMeter {
            base: seq,
            max: seq,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            interval_end: now + LOSS_INTERVAL,
            last: None,
        }
    }

    fn on_packet(&mut self, seq: u64, now: Instant) {
        if seq > self.max {
            self.max = seq;
        }
        self.received += 1;
        if now >= self.interval_end {
            self.last = Some(self.interval());
            self.expected_prior = self.expected();
            self.received_prior = self.received;
            self.interval_end = now + LOSS_INTERVAL;
        }
    }

    fn expected(&self) -> u64 {
        self.max.saturating_sub(self.base) + 1
    }

    /// (lost, expected) since the last interval closed.
    fn interval(&self) -> (u64, u64) {
        let expected = self.expected().saturating_sub(self.expected_prior);
        let received = self.received.saturating_sub(self.received_prior);
        (expected.saturating_sub(received), expected)
    }

    /// (lost, expected) of the last complete interval, or so far when none is complete.
    fn report(&self) -> (u64, u64) {
        self.last.unwrap_or_else(|| self.interval())
    }
}

#[derive(Debug, Clone)]
struct VideoMeter {
    rid: Option<Rid>,
    codec: Codec,
    profile: Option<u32>,
    window: RateWindow,
    loss: LossMeter,
    last_seen: Instant,
    /// RTP timestamp of the current picture.
    picture_ts: u32,
    highest_seq: u64,
    reorders: u32,
    keyframe_ts: Option<u32>,
    keyframe_interval_ticks: Option<u32>,
    clock_hz: u32,
    size: Option<(u32, u32)>,
    /// The last SPS parsed (NAL unit with header), to parse only changes.
    sps: Vec<u8>,
}

#[derive(Debug, Clone)]
struct AudioMeter {
    codec: Codec,
    clock_hz: u32,
    window: RateWindow,
    loss: LossMeter,
    last_seen: Instant,
    last_stereo: Option<Instant>,
}

/// The per-publisher-session accumulator. See the module docs.
#[derive(Debug, Clone)]
pub struct HealthMeter {
    protocol: Protocol,
    video: Vec<VideoMeter>,
    audio: Option<AudioMeter>,
    info_b_frames: bool,
    source_audio: Option<SourceAudio>,
}

impl HealthMeter {
    /// An empty meter for a publisher arriving over `protocol`.
    pub fn new(protocol: Protocol) -> HealthMeter {
        HealthMeter {
            protocol,
            video: Vec::new(),
            audio: None,
            info_b_frames: false,
            source_audio: None,
        }
    }

    /// Facts from a bridge: the protocol and B-frames replace the previous ones; a `None`
    /// `source_audio` keeps the source audio set before (so a bridge can report B-frames
    /// without repeating its audio).
    pub fn set_info(&mut self, info: BridgeInfo) {
        self.protocol = info.protocol;
        self.info_b_frames = info.b_frames;
        if info.source_audio.is_some() {
            self.source_audio = info.source_audio;
        }
    }

    /// One packet received at `now` (times must not go backwards).
    pub fn observe(&mut self, now: Instant, p: &Observed<'_>) {
        match p.kind {
            MediaKind::Video => self.observe_video(now, p),
            MediaKind::Audio => self.observe_audio(now, p),
        }
    }

    fn observe_video(&mut self, now: Instant, p: &Observed<'_>) {
        let i = match self.video.iter().position(|v| v.rid == p.rid) {
            Some(i) => i,
            None => {
                self.video.push(VideoMeter {
                    rid: p.rid,
                    codec: p.codec,
                    profile: p.profile,
                    window: RateWindow::new(now),
                    loss: LossMeter::new(p.seq, now),
                    last_seen: now,
                    // Differs from the first packet's, so it counts as a new picture.
                    picture_ts: p.rtp_time.wrapping_sub(1),
                    highest_seq: p.seq,
                    reorders: 0,
                    keyframe_ts: None,
                    keyframe_interval_ticks: None,
                    clock_hz: p.clock_hz.max(1),
                    size: None,
                    sps: Vec::new(),
                });
                self.video.len() - 1
            }
        };
        let Some(v) = self.video.get_mut(i) else {
            return;
        };
        v.last_seen = now;
        v.codec = p.codec;
        let new_picture = p.rtp_time != v.picture_ts;
        if new_picture {
            // A later packet carrying an earlier picture: the encoder reorders (B-frames).
            if p.seq > v.highest_seq && (p.rtp_time.wrapping_sub(v.picture_ts) as i32) < 0 {
                v.reorders = v.reorders.saturating_add(1);
            }
            v.picture_ts = p.rtp_time;
        }
        v.highest_seq = v.highest_seq.max(p.seq);
        v.window
            .add(now, p.payload.len() as u64 + 12, u32::from(new_picture));
        v.loss.on_packet(p.seq, now);
        if p.keyframe_start {
            if v.keyframe_ts != Some(p.rtp_time) {
                if let Some(prev) = v.keyframe_ts {
                    let d = p.rtp_time.wrapping_sub(prev);
                    v.keyframe_interval_ticks = (d as i32 > 0).then_some(d);
                }
                v.keyframe_ts = Some(p.rtp_time);
            }
            match p.codec {
                Codec::H264 => {
                    if let Some(sps) = find_h264_sps(p.payload)
                        && sps != v.sps.as_slice()
                        && sps.len() <= MAX_SPS
                    {
                        v.sps = sps.to_vec();
                        if let Some(info) = parse_h264_sps(sps) {
                            v.size = Some((info.width, info.height));
                            v.profile = Some(info.profile_level_id());
                        }
                    }
                }
                Codec::Vp8 => {
                    if let Some(size) = vp8_keyframe_size(p.payload) {
                        v.size = Some(size);
                    }
                }
                _ => {}
            }
        }
    }

    fn observe_audio(&mut self, now: Instant, p: &Observed<'_>) {
        let a = self.audio.get_or_insert_with(|| AudioMeter {
            codec: p.codec,
            clock_hz: p.clock_hz,
            window: RateWindow::new(now),
            loss: LossMeter::new(p.seq, now),
            last_seen: now,
            last_stereo: None,
        });
        a.codec = p.codec;
        a.clock_hz = p.clock_hz;
        a.last_seen = now;
        a.window.add(now, p.payload.len() as u64 + 12, 1);
        a.loss.on_packet(p.seq, now);
        if p.codec == Codec::Opus && p.payload.first().is_some_and(|toc| opus_stereo(*toc)) {
            a.last_stereo = Some(now);
        }
    }

    /// The health at `now`.
    pub fn snapshot(&self, now: Instant) -> PublisherHealth {
        let fresh = |t: Instant| now.saturating_duration_since(t) < STALE;
        let mut lost = 0u64;
        let mut expected = 0u64;
        let mut warnings = Vec::new();
        let mut reordered = false;
        let mut video = Vec::new();
        for v in self.video.iter().filter(|v| fresh(v.last_seen)) {
            let (l, e) = v.loss.report();
            lost += l;
            expected += e;
            reordered |= v.reorders >= REORDERS_FOR_B_FRAMES;
            let (bytes_s, fps) = v.window.rates(now);
            video.push(VideoHealth {
                rid: v.rid.map(|r| r.to_string()),
                codec: codec_name(v.codec).to_string(),
                profile_level_id: v
                    .profile
                    .filter(|_| v.codec == Codec::H264)
                    .map(|p| format!("{p:06x}")),
                width: v.size.map(|s| s.0),
                height: v.size.map(|s| s.1),
                fps: round(fps as f32, 10.0),
                bitrate_bps: (bytes_s * 8.0) as u64,
                keyframe_interval_s: v
                    .keyframe_interval_ticks
                    .map(|t| round(t as f32 / v.clock_hz as f32, 100.0)),
            });
        }
        let audio = self.audio.as_ref().filter(|a| fresh(a.last_seen)).map(|a| {
            let (l, e) = a.loss.report();
            lost += l;
            expected += e;
            let stereo = a
                .last_stereo
                .is_some_and(|t| now.saturating_duration_since(t) < STEREO_HOLD);
            AudioHealth {
                codec: codec_name(a.codec).to_string(),
                channels: if stereo { 2 } else { 1 },
                sample_rate_hz: if a.codec == Codec::Opus {
                    48_000
                } else {
                    a.clock_hz
                },
                bitrate_bps: (a.window.rates(now).0 * 8.0) as u64,
                source: self.source_audio.clone(),
            }
        });
        let packet_loss = if expected == 0 {
            0.0
        } else {
            round(lost as f32 / expected as f32, 10_000.0)
        };
        let b_frames = self.info_b_frames || reordered;
        if b_frames {
            warnings.push(B_FRAMES_WARNING.to_string());
        }
        if packet_loss > LOSS_WARNING {
            warnings.push(format!(
                "{:.1}% of packets are lost on the way in; check the encoder's network or \
                 lower its bitrate",
                packet_loss * 100.0
            ));
        }
        if let Some(gop) = video
            .iter()
            .filter_map(|v| v.keyframe_interval_s)
            .reduce(f32::max)
            .filter(|g| *g > GOP_WARNING_S)
        {
            warnings.push(format!(
                "Keyframes come every {gop:.1} s; viewers joining wait that long for a picture. \
                 In OBS: Settings → Output → Keyframe Interval 1 s"
            ));
        }
        PublisherHealth {
            protocol: self.protocol,
            video,
            audio,
            packet_loss,
            b_frames,
            warnings,
        }
    }
}

fn round(x: f32, scale: f32) -> f32 {
    (x * scale).round() / scale
}

/// The name an admin knows a codec by.
pub fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "H.264",
        Codec::H265 => "H.265",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::Av1 => "AV1",
        Codec::Opus => "Opus",
        Codec::PCMU => "PCMU",
        Codec::PCMA => "PCMA",
        _ => "other",
    }
}

#[cfg(test)]
#[path = "../tests/health.rs"]
mod tests;
