//! The program's pictures: per slot an OpenH264 decoder ([`TileVideo`]: the slot's latest
//! decoded picture; after a start, a stage change or a decode error it waits for a keyframe),
//! and the program's one OpenH264 encoder ([`ProgramEncoder`]: single thread, baseline
//! profile, no B-frames, bitrate rate control, no frame skipping, no scene-change IDRs, an IDR
//! on every `round(keyframe_interval × fps)`-th picture exactly; BT.709 limited range in the
//! VUI).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::Timestamp;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use tracing::{debug, warn};

use super::picture::Picture;
use super::{AUDIO_CHANNELS, CompositorConfig, CompositorError, CompositorStats, TileStats};
use crate::egress::{ProgramFormat, ProgramVideo};

/// One slot's video: its decoder and latest picture.
pub(super) struct TileVideo {
    decoder: Option<Decoder>,
    /// Access units are dropped until a keyframe.
    pub(super) needs_keyframe: bool,
    /// The latest decoded picture (valid when `has_picture`).
    pub(super) picture: Picture,
    pub(super) has_picture: bool,
    /// When the last picture was decoded (the compositor's clock: the last poll's `now`).
    pub(super) picture_at: Option<Instant>,
}

impl Default for TileVideo {
    fn default() -> Self {
        TileVideo {
            decoder: None,
            needs_keyframe: true,
            picture: Picture::default(),
            has_picture: false,
            picture_at: None,
        }
    }
}

impl TileVideo {
    /// Forgets the slot's pictures; the next one must start at a keyframe.
    pub(super) fn reset(&mut self) {
        self.decoder = None;
        self.needs_keyframe = true;
        self.has_picture = false;
        self.picture_at = None;
    }

    /// Whether a decoder is running (the slot was decoded since its last reset).
    pub(super) fn decoding(&self) -> bool {
        self.decoder.is_some()
    }

    /// Decodes one access unit of slot `slot` (NAL units without start codes; `annexb` is
    /// scratch) at the compositor time `now`. Returns whether a new picture was decoded. A
    /// decode error or a panic inside the decoder is counted in `stats` and makes the slot
    /// wait for the next keyframe (a panicked decoder is recreated then).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decode(
        &mut self,
        slot: usize,
        annexb: &mut Vec<u8>,
        nalus: &[Bytes],
        keyframe: bool,
        pts_90k: u64,
        now: Option<Instant>,
        stats: &mut TileStats,
    ) -> bool {
        if self.needs_keyframe && !keyframe {
            stats.frames_dropped += 1;
            return false;
        }
        annexb.clear();
        for n in nalus {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(n);
        }
        if self.decoder.is_none() {
            match Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new()) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => {
                    warn!(slot, error = %e, "compositor: H.264 decoder not created");
                    stats.decode_errors += 1;
                    return false;
                }
            }
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return false;
        };
        let picture = &mut self.picture;
        let data = &*annexb;
        let result = catch_unwind(AssertUnwindSafe(|| match decoder.decode(data) {
            Ok(Some(yuv)) => Ok(picture.copy_from(&yuv)),
            Ok(None) => Ok(false),
            Err(e) => Err(e.to_string()),
        }));
        match result {
            Ok(Ok(true)) => {
                stats.frames_decoded += 1;
                self.has_picture = true;
                self.picture_at = now;
                self.needs_keyframe = false;
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                debug!(slot, pts_90k, error = %e, "compositor: tile decode error");
                stats.decode_errors += 1;
                self.needs_keyframe = true;
                false
            }
            Err(_) => {
                warn!(
                    slot,
                    pts_90k, "compositor: tile decoder panicked; recreated at the next keyframe"
                );
                stats.decode_errors += 1;
                self.needs_keyframe = true;
                self.decoder = None;
                false
            }
        }
    }
}

/// The program's H.264 encoder and what it learnt of its output (SPS/PPS → the format).
pub(super) struct ProgramEncoder {
    encoder: Encoder,
    width: u32,
    height: u32,
    fps: u32,
    gop_frames: u64,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    format: Option<ProgramFormat>,
    /// GOP index of the last IDR.
    last_gop: Option<u64>,
}

impl ProgramEncoder {
    /// The encoder of a `cfg` program. Errors: [`CompositorError::Encoder`] when OpenH264
    /// refuses the settings.
    pub(super) fn new(cfg: &CompositorConfig) -> Result<Self, CompositorError> {
        let enc_cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(cfg.video_bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1)
            .vui(VuiConfig::bt709());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), enc_cfg)
            .map_err(|e| CompositorError::Encoder(e.to_string()))?;
        Ok(ProgramEncoder {
            encoder,
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
            gop_frames: cfg.gop_frames(),
            sps: None,
            pps: None,
            format: None,
            last_gop: None,
        })
    }

    /// What the program is; `None` until the first picture is encoded (its SPS/PPS are needed).
    pub(super) fn format(&self) -> Option<&ProgramFormat> {
        self.format.as_ref()
    }

    /// Encodes `canvas` as program picture number `index` (pts `index / fps`), an IDR when it
    /// opens a GOP; counts pictures and failures in `stats`. `None` when the encoder failed.
    pub(super) fn encode(
        &mut self,
        canvas: &Picture,
        index: u64,
        stats: &mut CompositorStats,
    ) -> Option<ProgramVideo> {
        let gop_index = index / self.gop_frames;
        let force = self.last_gop != Some(gop_index);
        if force && stats.video_frames > 0 {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let pts_90k = index * 90_000 / u64::from(self.fps);
        let src = YUVSlices::new((&canvas.y, &canvas.u, &canvas.v), (w, h), (w, w / 2, w / 2));
        let bs = match self
            .encoder
            .encode_at(&src, Timestamp::from_millis(pts_90k / 90))
        {
            Ok(bs) => bs,
            Err(e) => {
                warn!(error = %e, "compositor: H.264 encode failed");
                stats.encode_errors += 1;
                return None;
            }
        };
        let keyframe = bs.frame_type() == FrameType::IDR;
        let mut nalus = Vec::new();
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for i in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(i).map(strip_start_code) else {
                    continue;
                };
                let Some(&first) = nal.first() else { continue };
                let nal = Bytes::copy_from_slice(nal);
                match first & 0x1f {
                    7 => self.sps = Some(nal.clone()),
                    8 => self.pps = Some(nal.clone()),
                    _ => {}
                }
                nalus.push(nal);
            }
        }
        if nalus.is_empty() {
            stats.encode_errors += 1;
            return None;
        }
        if keyframe {
            self.last_gop = Some(gop_index);
        }
        if self.format.is_none()
            && let (Some(sps), Some(pps)) = (&self.sps, &self.pps)
        {
            self.format = Some(ProgramFormat {
                width: self.width,
                height: self.height,
                fps: self.fps,
                sps: sps.clone(),
                pps: pps.clone(),
                audio_channels: AUDIO_CHANNELS as u8,
            });
        }
        stats.video_frames += 1;
        Some(ProgramVideo {
            nalus,
            keyframe,
            pts_90k,
        })
    }
}

/// A NAL unit without its Annex B start code.
pub(super) fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
    }
}
