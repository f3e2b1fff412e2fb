//! The CMAF fragmenter: the program's pictures and Opus packets in, an init segment and
//! `moof`+`mdat` fragments out (ISO/IEC 23000-19 CMAF, boxes by [`super::cmaf`]) — sans-IO.
//! One piece of code serves every packager: the LL-HLS packager ([`super::hls`]) cuts a
//! fragment per part, the recorder (the gateway's `media::recording`) one per ~1 s of a set's
//! file. It holds no global state, so an HLS ladder runs one fragmenter per rendition.
//!
//! The sample rules:
//! - Pictures before the first keyframe are dropped; the first keyframe opens the timeline.
//!   A picture is packaged when the next one arrives: its duration is the difference of the
//!   presentation times (90 kHz), or the nominal `1/fps` when that difference is 0 or more
//!   than 1 s (a repeated or jumping timestamp). Decode times are the sum of the durations
//!   (no B-frames: decode order is presentation order).
//! - An Opus packet's decode time is its timestamp (48 kHz), or the end of the previous packet
//!   when that is later (no overlap); its length comes from its TOC (RFC 6716 §3.1). Packets
//!   that do not parse, and packets from before the first keyframe, are dropped. At most
//!   [`MAX_QUEUED_AUDIO`] packets wait for their fragment (the oldest goes).
//! - [`Fragmenter::cut`] closes a fragment of the pictures packaged so far, with the audio
//!   whose decode time is before the end of the last picture.
//!
//! When to cut is the caller's: a part target or a keyframe for LL-HLS, a fragment length for
//! a file. [`Timeline`] says where decode times count from.

// A sans-IO core: it takes the time as a parameter and never reads the clock (DESIGN §2).
#![deny(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::cmaf::{self, AUDIO_TRACK_ID, CmafError, Sample, TrackRun, VIDEO_TRACK_ID};
use super::{ProgramAudio, ProgramFormat, ProgramVideo};

/// 90 kHz ticks per second (the video timescale).
pub const TICKS: u64 = 90_000;
/// Audio waiting for its fragment, packets (10 s of 20 ms packets): bounds memory when
/// pictures stop coming (or have not started) while audio goes on; the oldest is dropped.
pub const MAX_QUEUED_AUDIO: usize = 500;
/// Largest accepted gap between two pictures, 90 kHz ticks; beyond it the picture gets the
/// nominal frame duration.
const MAX_FRAME_GAP: u64 = TICKS;

/// Where the decode times written into fragments (`tfdt`) count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    /// The program's own timestamps (`pts_90k`, `ts_48k`): a live stream whose parts must line
    /// up across program restarts and with the playlist's dates (LL-HLS).
    Program,
    /// The first keyframe is time 0: a file that starts at 0 whenever in the program it began
    /// (a recording).
    FirstKeyframe,
}

/// How the last Opus packet of a fragment lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioTail {
    /// Until the next packet already queued (its own length when none is): no hole in the
    /// audio timeline between fragments (LL-HLS parts are fetched one by one).
    UntilNext,
    /// Its own length: the next fragment's `tfdt` places what follows, so a late packet never
    /// stretches the end of a file (a recording).
    Own,
}

/// Fragmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmenterConfig {
    /// Where decode times count from.
    pub timeline: Timeline,
    /// How the last audio packet of a fragment lasts.
    pub audio_tail: AudioTail,
    /// `PreSkip` written into `dOps`, 48 kHz samples (RFC 7845 §4.2).
    pub opus_pre_skip: u16,
}

/// One closed fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `moof` + `mdat`.
    pub data: Bytes,
    /// Duration of its pictures, 90 kHz ticks.
    pub duration: u64,
    /// Its first picture is a keyframe (decoding can start here).
    pub independent: bool,
}

/// What [`Fragmenter::push_video`] did with a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPush {
    /// Dropped: no keyframe yet.
    Dropped,
    /// The first keyframe: the timeline starts here; it waits for the next picture.
    Started,
    /// The previous picture was packaged with `duration` (90 kHz ticks); this one waits for
    /// the next.
    Packaged {
        /// The packaged picture's duration, 90 kHz ticks.
        duration: u64,
    },
}

#[derive(Debug, Clone)]
struct QueuedAudio {
    /// Decode time, 48 kHz ticks, program timeline.
    dts: u64,
    /// From the TOC, 48 kHz ticks.
    samples: u32,
    data: Bytes,
}

/// The CMAF fragmenter of one rendition (see the module docs).
#[derive(Debug)]
pub struct Fragmenter {
    config: FragmenterConfig,
    init: Bytes,
    /// Nominal picture duration, 90 kHz.
    frame_ticks: u64,
    /// Presentation time (90 kHz, program timeline) of the first keyframe.
    origin: Option<u64>,
    /// The last picture pushed; packaged when the next one gives its duration.
    pending: Option<ProgramVideo>,
    /// Decode time of `pending` (the end of the packaged pictures), 90 kHz, program timeline.
    video_dts: u64,
    /// Packaged pictures of the fragment being filled.
    video: Vec<Sample>,
    /// Decode time of the fragment's first picture, 90 kHz, program timeline.
    fragment_start: u64,
    /// Opus packets waiting for their fragment.
    audio: VecDeque<QueuedAudio>,
    /// Decode time the next audio packet gets at the earliest, 48 kHz.
    audio_next: Option<u64>,
    /// `mfhd` sequence number of the next fragment.
    sequence: u32,
}

impl Fragmenter {
    /// A fragmenter for a program of `format` (its frame rate clamped to 1..=240). Errors:
    /// [`CmafError`] when the format cannot make an init segment (bad SPS/PPS, channels not
    /// 1–2, size 0 or above 65 535).
    pub fn new(config: FragmenterConfig, format: &ProgramFormat) -> Result<Self, CmafError> {
        let init = cmaf::init_segment(format, config.opus_pre_skip)?;
        Ok(Fragmenter {
            config,
            init,
            frame_ticks: TICKS / u64::from(format.fps.clamp(1, 240)),
            origin: None,
            pending: None,
            video_dts: 0,
            video: Vec::new(),
            fragment_start: 0,
            audio: VecDeque::new(),
            audio_next: None,
            sequence: 1,
        })
    }

    /// The init segment (`ftyp` + `moov`, see [`cmaf::init_segment`]).
    pub fn init(&self) -> &Bytes {
        &self.init
    }

    /// Nominal picture duration (`1/fps`), 90 kHz ticks.
    pub fn frame_ticks(&self) -> u64 {
        self.frame_ticks
    }

    /// Pushes one picture: packages the previous one (see the module docs for its duration)
    /// and keeps this one until the next arrives.
    pub fn push_video(&mut self, frame: ProgramVideo) -> VideoPush {
        let Some(prev) = self.pending.take() else {
            if self.origin.is_some() || !frame.keyframe {
                return VideoPush::Dropped;
            }
            self.origin = Some(frame.pts_90k);
            self.video_dts = frame.pts_90k;
            self.fragment_start = frame.pts_90k;
            // Drop audio from before the first picture (48 kHz × 15 = 90 kHz × 8).
            let start_x8 = frame.pts_90k.saturating_mul(8);
            self.audio.retain(|a| a.dts.saturating_mul(15) >= start_x8);
            self.pending = Some(frame);
            return VideoPush::Started;
        };
        let gap = frame.pts_90k.saturating_sub(prev.pts_90k);
        let duration = if gap == 0 || gap > MAX_FRAME_GAP {
            self.frame_ticks
        } else {
            gap
        };
        self.package(&prev, duration);
        self.pending = Some(frame);
        VideoPush::Packaged { duration }
    }

    fn package(&mut self, picture: &ProgramVideo, duration: u64) {
        self.video.push(Sample {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            sync: picture.keyframe,
            data: cmaf::avcc_sample(&picture.nalus),
        });
        self.video_dts += duration;
    }

    /// Pushes one Opus packet (48 kHz timestamps on the program's clock). See the module docs
    /// for its decode time and what is dropped.
    pub fn push_audio(&mut self, packet: ProgramAudio) {
        let Some(samples) = cmaf::opus_packet_samples(&packet.opus) else {
            return;
        };
        if let Some(start) = self.origin
            && packet.ts_48k.saturating_mul(15) < start.saturating_mul(8)
        {
            return;
        }
        let dts = self
            .audio_next
            .map_or(packet.ts_48k, |next| packet.ts_48k.max(next));
        self.audio_next = Some(dts + u64::from(samples));
        if self.audio.len() >= MAX_QUEUED_AUDIO {
            self.audio.pop_front();
        }
        self.audio.push_back(QueuedAudio {
            dts,
            samples,
            data: packet.opus,
        });
    }

    /// Decode time (90 kHz, program timeline) of the first keyframe; `None` before it.
    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    /// Decode time (90 kHz, program timeline) of the first picture of the fragment being
    /// filled.
    pub fn fragment_start(&self) -> u64 {
        self.fragment_start
    }

    /// Decode time (90 kHz, program timeline) where the packaged pictures end: the one a
    /// [`cut`](Self::cut) now would end at.
    pub fn packaged_end(&self) -> u64 {
        self.video_dts
    }

    /// Media in the fragments cut so far, from the first keyframe.
    pub fn fragmented(&self) -> Duration {
        let ticks = self
            .fragment_start
            .saturating_sub(self.origin.unwrap_or(self.fragment_start));
        Duration::from_micros(ticks.saturating_mul(100) / 9)
    }

    /// Closes a fragment of the pictures packaged since the last cut, with the audio whose
    /// decode time is before their end. `None` when no picture was packaged since (nothing
    /// is cut), or when the fragment cannot be written (over 4 GiB: its media is dropped).
    pub fn cut(&mut self) -> Option<Fragment> {
        if self.video.is_empty() {
            return None;
        }
        let end = self.video_dts;
        let video = std::mem::take(&mut self.video);
        let end_x8 = end.saturating_mul(8);
        let mut taken = Vec::new();
        while let Some(a) = self.audio.front() {
            if a.dts.saturating_mul(15) >= end_x8 {
                break;
            }
            if let Some(a) = self.audio.pop_front() {
                taken.push(a);
            }
        }
        let next_dts = match self.config.audio_tail {
            AudioTail::UntilNext => self.audio.front().map(|a| a.dts),
            AudioTail::Own => None,
        };
        let audio: Vec<Sample> = taken
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let next = taken.get(i + 1).map(|n| n.dts).or(next_dts);
                let duration = next.map_or(u64::from(a.samples), |n| n.saturating_sub(a.dts));
                Sample {
                    duration: u32::try_from(duration).unwrap_or(u32::MAX),
                    sync: true,
                    data: a.data.clone(),
                }
            })
            .collect();
        let (video_zero, audio_zero) = match (self.config.timeline, self.origin) {
            (Timeline::FirstKeyframe, Some(origin)) => (origin, origin.saturating_mul(8) / 15),
            _ => (0, 0),
        };
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: self.fragment_start.saturating_sub(video_zero),
                samples: &video,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: taken
                    .first()
                    .map_or(0, |a| a.dts.saturating_sub(audio_zero)),
                samples: &audio,
            },
        ];
        let start = std::mem::replace(&mut self.fragment_start, end);
        let data = cmaf::fragment(self.sequence, &runs).ok()?;
        self.sequence = self.sequence.wrapping_add(1);
        Some(Fragment {
            data,
            duration: end - start,
            independent: video.first().is_some_and(|s| s.sync),
        })
    }

    /// Packages the last picture with the nominal duration and cuts the last fragment: the
    /// end of a file. `None` when there is nothing to write.
    pub fn finish(&mut self) -> Option<Fragment> {
        if let Some(last) = self.pending.take() {
            self.package(&last, self.frame_ticks);
        }
        self.cut()
    }
}

#[cfg(test)]
// Tests may read the clock; the core may not.
#[allow(clippy::disallowed_methods)]
#[path = "../tests/fragmenter.rs"]
mod tests;
