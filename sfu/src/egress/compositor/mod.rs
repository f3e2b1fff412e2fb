//! The compositor: the room's stage composed into one program (issue 5), sans-IO.
//!
//! Input: per stage slot, H.264 access units ([`Compositor::push_tile_video`]) and Opus packets
//! ([`Compositor::push_tile_audio`]) as the SFU receives them, plus the stage itself
//! ([`Compositor::set_stage`]: layout 1..=9, who is on each slot, the room title).
//! Output: [`Compositor::poll`] with the caller's clock returns the program — one H.264 picture
//! every `1/fps` ([`ProgramVideo`], 90 kHz timestamps from 0) and one 20 ms stereo Opus packet
//! every 20 ms ([`ProgramAudio`], 48 kHz timestamps from 0) — and [`Compositor::format`] says
//! what the program is (size, fps, SPS/PPS).
//!
//! - **Layout** is the viewer page's (`web/src/viewer.ts` `gridFor`, `web/src/style.css`
//!   `.stage`/`.tile`): a grid of 16:9 tiles with a 14 px gap (at 1280x720; scaled with the
//!   program), centred, the last row left-aligned as CSS grid places it, 14 px rounded corners on
//!   the room background, the video `object-fit: contain` on black, the `LIVE` + name label at
//!   the bottom left, and for an empty slot the placeholder card (the page's radial gradient,
//!   the artist's name or the room title, and a second line: `slot N` / `starting…`). The
//!   page's tile border and glow are not drawn.
//! - **Video**: one OpenH264 decoder per slot; the latest decoded picture is scaled (bilinear,
//!   two-pass, fixed point, plane by plane) into its tile only when it changed; a tile whose
//!   frames stop keeps its last picture (freeze) and shows the card after
//!   [`CompositorConfig::tile_timeout`]. One OpenH264 encoder (single thread, baseline profile,
//!   no B-frames, bitrate rate control, no frame skipping, no scene-change IDRs) with an IDR on
//!   every `round(keyframe_interval × fps)`-th frame, exactly. Colours are BT.709 limited range
//!   and the SPS says so (VUI); tile pictures are copied as they are.
//! - **Audio**: one libopus decoder per slot into a short jitter buffer (primed at 40 ms,
//!   capped at 200 ms, loss concealment for gaps up to 100 ms), the tiles summed at 48 kHz
//!   stereo, a 5 ms look-ahead peak limiter (ceiling −1 dBFS, 100 ms release, state kept across
//!   frames: the output never exceeds the ceiling) and libopus at 20 ms stereo.
//! - **Bad input** never panics: a decode error (or a panic caught inside the decoder wrapper)
//!   is counted in [`TileStats`], the tile freezes and waits for the next keyframe.
//!
//! Cost (BENCHMARKS.md, "Compositor (issue 5)"): composing touches only tiles with a new
//! picture; the encoder dominates.
//!
//! Layout of the code: `layout` (the page's grid, fitting), `card` (the placeholder card and
//! the tile label: text), `picture` (I420 pictures, the scaler, rounded corners),
//! `video` (tile decoders, the program encoder), `audio` (tile jitter buffers, the mixer, the
//! [`Limiter`]); this module holds the [`Compositor`] that ties them to the stage and the
//! clock.

// A sans-IO core: it takes the time as a parameter and never reads the clock (DESIGN §2).
#![deny(clippy::disallowed_methods)]

mod audio;
mod card;
mod layout;
mod picture;
mod video;

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ProgramAudio, ProgramFormat, ProgramVideo};
pub use audio::Limiter;
use audio::{AudioMixer, MAX_OPUS_SAMPLES, TileAudio};
use card::{FONT_TTF, Sprite, blend_sprite, render_card, render_label};
use layout::{PAGE_RADIUS, even_round, page_scale};
pub use layout::{Rect, fit_rect, grid_for, tile_rects};
pub use picture::{Picture, rgb_to_yuv};
use picture::{Scaler, corner_mask, draw_planes, draw_video, round_corners};
use video::{ProgramEncoder, TileVideo};

/// The most stage slots a layout has (the page's layouts 1..=9).
pub const MAX_SLOTS: usize = 9;
/// Samples per channel in one 20 ms Opus frame at 48 kHz.
pub const AUDIO_FRAME_SAMPLES: usize = 960;
/// Program audio channels (stereo).
pub const AUDIO_CHANNELS: usize = 2;
/// Video frames the compositor encodes in one poll at most; beyond that it skips ahead.
const MAX_VIDEO_BURST: u64 = 5;
/// Audio ticks emitted in one poll at most; beyond that it skips ahead.
const MAX_AUDIO_BURST: u64 = 50;

/// Errors of [`Compositor::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompositorError {
    /// A [`CompositorConfig`] value is out of range; the message names it.
    #[error("invalid compositor config: {0}")]
    Config(String),
    /// OpenH264 refused to create the encoder.
    #[error("H.264 encoder: {0}")]
    Encoder(String),
    /// libopus refused to create the encoder or set its bitrate.
    #[error("Opus encoder: {0}")]
    Opus(String),
    /// The bundled font did not parse (a build problem).
    #[error("font: {0}")]
    Font(String),
}

/// What the program is and how it looks.
#[derive(Debug, Clone)]
pub struct CompositorConfig {
    /// Program width, pixels: even, 128..=3840. Default 1280.
    pub width: u32,
    /// Program height, pixels: even, 72..=2160. Default 720.
    pub height: u32,
    /// Pictures per second, 1..=60. Default 30.
    pub fps: u32,
    /// H.264 target bitrate, bit/s, 100 kbit/s..=50 Mbit/s. Default 3 Mbit/s.
    pub video_bitrate_bps: u32,
    /// IDR spacing: an IDR every `round(keyframe_interval × fps)` pictures, exactly (the HLS
    /// segment target). 0.1..=10 s; default 2 s.
    pub keyframe_interval: Duration,
    /// Opus bitrate, bit/s, 16 kbit/s..=510 kbit/s. Default 128 kbit/s.
    pub audio_bitrate_bps: u32,
    /// The room background (sRGB) around the tiles. Default the page's `--room-bg` #140c2a.
    pub background_rgb: [u8; 3],
    /// The room title, shown on empty slots' cards until [`Compositor::set_stage`] says
    /// otherwise.
    pub title: String,
    /// A tile whose pictures stop keeps its last one (frozen) this long, then shows the card.
    /// Default 3 s.
    pub tile_timeout: Duration,
}

impl Default for CompositorConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            video_bitrate_bps: 3_000_000,
            keyframe_interval: Duration::from_secs(2),
            audio_bitrate_bps: 128_000,
            background_rgb: [0x14, 0x0c, 0x2a],
            title: String::from("Venue"),
            tile_timeout: Duration::from_secs(3),
        }
    }
}

impl CompositorConfig {
    /// Checks every field's range. Errors: [`CompositorError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), CompositorError> {
        let bad = |m: String| Err(CompositorError::Config(m));
        if !(128..=3840).contains(&self.width) || !self.width.is_multiple_of(2) {
            return bad(format!("width {} must be even and 128..=3840", self.width));
        }
        if !(72..=2160).contains(&self.height) || !self.height.is_multiple_of(2) {
            return bad(format!("height {} must be even and 72..=2160", self.height));
        }
        if !(1..=60).contains(&self.fps) {
            return bad(format!("fps {} must be 1..=60", self.fps));
        }
        if !(100_000..=50_000_000).contains(&self.video_bitrate_bps) {
            return bad(format!(
                "video_bitrate_bps {} must be 100000..=50000000",
                self.video_bitrate_bps
            ));
        }
        if !(16_000..=510_000).contains(&self.audio_bitrate_bps) {
            return bad(format!(
                "audio_bitrate_bps {} must be 16000..=510000",
                self.audio_bitrate_bps
            ));
        }
        let ki = self.keyframe_interval.as_secs_f64();
        if !(0.1..=10.0).contains(&ki) {
            return bad(format!("keyframe_interval {ki} s must be 0.1..=10 s"));
        }
        Ok(())
    }

    /// Pictures from one IDR to the next: `round(keyframe_interval × fps)`, at least 1.
    pub fn gop_frames(&self) -> u64 {
        ((self.keyframe_interval.as_secs_f64() * f64::from(self.fps)).round() as u64).max(1)
    }
}

/// Per-tile counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileStats {
    /// Pictures decoded.
    pub frames_decoded: u64,
    /// Access units that failed to decode (the tile froze and waited for a keyframe).
    pub decode_errors: u64,
    /// Access units dropped while waiting for a keyframe.
    pub frames_dropped: u64,
    /// Opus packets decoded.
    pub audio_packets: u64,
    /// Opus packets that failed to decode, or arrived late (older than what was played).
    pub audio_errors: u64,
    /// Whether the tile shows video now (false: the placeholder card).
    pub showing_video: bool,
}

/// Program counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompositorStats {
    /// Program pictures encoded.
    pub video_frames: u64,
    /// Program pictures skipped because the caller polled too late.
    pub video_frames_skipped: u64,
    /// Pictures the encoder failed on.
    pub encode_errors: u64,
    /// Program audio packets emitted.
    pub audio_packets: u64,
    /// Program audio ticks skipped because the caller polled too late.
    pub audio_ticks_skipped: u64,
    /// One entry per slot of the current layout.
    pub tiles: Vec<TileStats>,
}

/// One piece of program output, in due order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramOutput {
    /// One encoded picture.
    Video(ProgramVideo),
    /// One 20 ms Opus packet.
    Audio(ProgramAudio),
}

/// What a tile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Video,
    Card,
}

/// One stage slot: who is on it, its video and audio, what it shows.
#[derive(Default)]
struct Tile {
    /// The artist on this slot (None: empty).
    name: Option<String>,
    video: TileVideo,
    dirty: bool,
    mode: Option<Mode>,
    /// Cached card and label: (key, rendered).
    card: Option<((u32, u32, String, String), Picture)>,
    label: Option<((u32, String), Sprite)>,
    audio: TileAudio,
    stats: TileStats,
}

impl Tile {
    /// Forgets the slot's media; its next picture must start at a keyframe.
    fn reset_media(&mut self) {
        self.video.reset();
        self.dirty = true;
        self.audio = TileAudio::default();
    }
}

/// The compositor (see the module docs). Not `Sync`; run it on one thread and drive it with
/// [`Compositor::poll`].
pub struct Compositor {
    cfg: CompositorConfig,
    font: fontdue::Font,
    encoder: ProgramEncoder,
    mixer: AudioMixer,
    layout: u32,
    title: String,
    rects: Vec<Rect>,
    tiles: Vec<Tile>,
    canvas: Picture,
    full_redraw: bool,
    bg_yuv: [u8; 3],
    black: [u8; 3],
    radius: usize,
    luma_corner: Vec<u8>,
    chroma_corner: Vec<u8>,
    scaler: Scaler,
    /// Scratch: an access unit in Annex B, decoded Opus.
    annexb: Vec<u8>,
    pcm: Vec<f32>,
    epoch: Option<Instant>,
    now: Option<Instant>,
    video_index: u64,
    audio_index: u64,
    stats: CompositorStats,
}

impl std::fmt::Debug for Compositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compositor")
            .field("width", &self.cfg.width)
            .field("height", &self.cfg.height)
            .field("layout", &self.layout)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Compositor {
    /// A compositor with layout 1 and an empty stage. Errors: [`CompositorError::Config`]
    /// for out-of-range values, [`CompositorError::Encoder`]/[`CompositorError::Opus`] when
    /// the codecs refuse the settings.
    pub fn new(cfg: CompositorConfig) -> Result<Self, CompositorError> {
        cfg.validate()?;
        let font = fontdue::Font::from_bytes(FONT_TTF, fontdue::FontSettings::default())
            .map_err(|e| CompositorError::Font(e.to_owned()))?;
        let encoder = ProgramEncoder::new(&cfg)?;
        let mixer = AudioMixer::new(cfg.audio_bitrate_bps)?;
        let bg_yuv = rgb_to_yuv(cfg.background_rgb);
        let radius = even_round(PAGE_RADIUS * page_scale(cfg.width, cfg.height)) as usize;
        let luma_corner = corner_mask(radius);
        let chroma_corner = corner_mask(radius / 2);
        let title = cfg.title.clone();
        let mut c = Self {
            canvas: Picture::filled(cfg.width, cfg.height, bg_yuv),
            font,
            encoder,
            mixer,
            layout: 1,
            title,
            rects: Vec::new(),
            tiles: (0..MAX_SLOTS).map(|_| Tile::default()).collect(),
            full_redraw: true,
            bg_yuv,
            black: rgb_to_yuv([0, 0, 0]),
            radius,
            luma_corner,
            chroma_corner,
            scaler: Scaler::default(),
            annexb: Vec::new(),
            pcm: vec![0.0; MAX_OPUS_SAMPLES],
            epoch: None,
            now: None,
            video_index: 0,
            audio_index: 0,
            stats: CompositorStats::default(),
            cfg,
        };
        c.rects = tile_rects(1, c.cfg.width, c.cfg.height);
        Ok(c)
    }

    /// The configuration in force.
    pub fn config(&self) -> &CompositorConfig {
        &self.cfg
    }

    /// Sets the stage: `layout` (clamped to 1..=9) tiles; `slots[i]` is the artist on slot `i`
    /// (None or missing: empty, shown as the card with the room title); `title` is the room
    /// title. A slot whose artist changes drops its decoders, picture and buffered audio.
    pub fn set_stage(&mut self, layout: u32, slots: Vec<Option<String>>, title: &str) {
        let layout = layout.clamp(1, MAX_SLOTS as u32);
        if layout != self.layout {
            self.layout = layout;
            self.rects = tile_rects(layout, self.cfg.width, self.cfg.height);
            self.full_redraw = true;
        }
        if title != self.title {
            self.title = title.to_owned();
            self.full_redraw = true;
        }
        let mut slots = slots.into_iter();
        for (i, tile) in self.tiles.iter_mut().enumerate() {
            let name = slots.next().flatten();
            if name != tile.name {
                tile.name = name;
                tile.reset_media();
            } else if i >= layout as usize && tile.video.decoding() {
                // Hidden slots are not decoded; they start over when shown again.
                tile.reset_media();
            }
        }
    }

    /// Whether slot `slot` waits for a keyframe (after a start, a stage change or a decode
    /// error): the caller should ask the slot's source for one (PLI/FIR).
    pub fn needs_keyframe(&self, slot: usize) -> bool {
        slot < self.layout as usize && self.tiles.get(slot).is_some_and(|t| t.video.needs_keyframe)
    }

    /// Decodes one access unit of slot `slot`: H.264 NAL units without start codes (SPS/PPS
    /// in band before IDRs), `keyframe` when it starts with an IDR; `pts_90k` is kept for
    /// nothing but logs (the program shows each tile's latest picture). Slots outside the
    /// layout are ignored. A decode error or a panic inside the decoder is counted, freezes
    /// the tile and drops access units until the next keyframe.
    pub fn push_tile_video(&mut self, slot: usize, nalus: &[Bytes], keyframe: bool, pts_90k: u64) {
        if slot >= self.layout as usize {
            return;
        }
        let Some(tile) = self.tiles.get_mut(slot) else {
            return;
        };
        let decoded = tile.video.decode(
            slot,
            &mut self.annexb,
            nalus,
            keyframe,
            pts_90k,
            self.now,
            &mut tile.stats,
        );
        if decoded {
            tile.dirty = true;
        }
    }

    /// Decodes one Opus packet of slot `slot` (`ts_48k`: its RTP timestamp at 48 kHz) into the
    /// tile's jitter buffer. Late or duplicate packets are dropped, gaps up to 100 ms are
    /// concealed, longer ones skipped. Slots outside the layout are ignored.
    pub fn push_tile_audio(&mut self, slot: usize, opus: &[u8], ts_48k: u64) {
        if slot >= self.layout as usize {
            return;
        }
        let Some(tile) = self.tiles.get_mut(slot) else {
            return;
        };
        tile.audio
            .push(slot, opus, ts_48k, &mut self.pcm, &mut tile.stats);
    }

    /// What the program is; `None` until the first picture is encoded (its SPS/PPS are needed).
    pub fn format(&self) -> Option<&ProgramFormat> {
        self.encoder.format()
    }

    /// Counters, with one [`TileStats`] per slot of the layout.
    pub fn stats(&self) -> CompositorStats {
        let mut s = self.stats.clone();
        s.tiles = self
            .tiles
            .iter()
            .take(self.layout as usize)
            .map(|t| t.stats.clone())
            .collect();
        s
    }

    /// The current program picture (the last composed one).
    pub fn picture(&self) -> &Picture {
        &self.canvas
    }

    /// The tile rectangles of the current layout.
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// When the next picture or audio packet is due; `None` before the first poll (poll now).
    pub fn next_due(&self) -> Option<Instant> {
        let epoch = self.epoch?;
        Some(
            self.video_due(epoch, self.video_index)
                .min(self.audio_due(epoch, self.audio_index)),
        )
    }

    fn video_due(&self, epoch: Instant, k: u64) -> Instant {
        epoch + Duration::from_nanos(k.saturating_mul(1_000_000_000) / u64::from(self.cfg.fps))
    }

    fn audio_due(&self, epoch: Instant, k: u64) -> Instant {
        epoch + Duration::from_millis(k.saturating_mul(20))
    }

    /// Emits everything due at `now` (the first call is the program's time 0): a picture
    /// each `1/fps` and an audio packet each 20 ms, in due order. A caller late by more than
    /// 5 pictures (1 s of audio) skips ahead, counted in [`CompositorStats`].
    pub fn poll(&mut self, now: Instant) -> Vec<ProgramOutput> {
        let epoch = *self.epoch.get_or_insert(now);
        self.now = Some(now);
        let mut out = Vec::new();
        let elapsed = now.saturating_duration_since(epoch).as_nanos() as u64;
        let last_video = elapsed.saturating_mul(u64::from(self.cfg.fps)) / 1_000_000_000;
        let due = (last_video + 1).saturating_sub(self.video_index);
        if due > MAX_VIDEO_BURST {
            self.stats.video_frames_skipped += due - 1;
            self.video_index += due - 1;
        }
        let due = (elapsed / 20_000_000 + 1).saturating_sub(self.audio_index);
        if due > MAX_AUDIO_BURST {
            self.stats.audio_ticks_skipped += due - 1;
            self.audio_index += due - 1;
        }
        loop {
            let v = self.video_due(epoch, self.video_index);
            let a = self.audio_due(epoch, self.audio_index);
            if a <= now && a <= v {
                if let Some(p) = self.audio_tick() {
                    out.push(ProgramOutput::Audio(p));
                }
                self.audio_index += 1;
            } else if v <= now {
                if let Some(p) = self.video_tick(now) {
                    out.push(ProgramOutput::Video(p));
                }
                self.video_index += 1;
            } else {
                break;
            }
        }
        out
    }

    fn audio_tick(&mut self) -> Option<ProgramAudio> {
        let tiles = self.tiles.iter_mut().take(self.layout as usize);
        let ts_48k = self.audio_index * AUDIO_FRAME_SAMPLES as u64;
        let packet = self.mixer.tick(tiles.map(|t| &mut t.audio), ts_48k)?;
        self.stats.audio_packets += 1;
        Some(packet)
    }

    /// Composes the current picture into the canvas (only what changed).
    pub fn compose(&mut self, now: Instant) {
        let timeout = self.cfg.tile_timeout;
        let layout = self.layout as usize;
        for tile in self.tiles.iter_mut().take(layout) {
            let fresh = tile.video.has_picture
                && tile
                    .video
                    .picture_at
                    .is_none_or(|at| now.saturating_duration_since(at) < timeout);
            let mode = if fresh { Mode::Video } else { Mode::Card };
            if tile.mode != Some(mode) {
                tile.mode = Some(mode);
                tile.dirty = true;
            }
            tile.stats.showing_video = mode == Mode::Video;
        }
        if self.full_redraw {
            let [y, u, v] = self.bg_yuv;
            self.canvas.y.fill(y);
            self.canvas.u.fill(u);
            self.canvas.v.fill(v);
            for t in &mut self.tiles {
                t.dirty = true;
            }
            self.full_redraw = false;
        }
        let scale = page_scale(self.cfg.width, self.cfg.height);
        for (slot, rect) in self.rects.iter().copied().enumerate() {
            let Some(tile) = self.tiles.get_mut(slot) else {
                continue;
            };
            if !tile.dirty {
                continue;
            }
            tile.dirty = false;
            match tile.mode {
                Some(Mode::Video) => {
                    draw_video(
                        &mut self.canvas,
                        &mut self.scaler,
                        &tile.video.picture,
                        rect,
                        self.black,
                    );
                    if let Some(name) = tile.name.as_deref().filter(|n| !n.is_empty()) {
                        let max_w = rect.width as f32 - 20.0 * scale;
                        let key = (rect.width, name.to_owned());
                        if tile.label.as_ref().is_none_or(|(k, _)| *k != key) {
                            tile.label = Some((key, render_label(&self.font, name, scale, max_w)));
                        }
                        if let Some((_, s)) = &tile.label {
                            let lx = rect.x + even_round(10.0 * scale);
                            let ly = (rect.y + rect.height)
                                .saturating_sub(even_round(10.0 * scale) + s.pic.height);
                            blend_sprite(&mut self.canvas, s, lx, ly);
                        }
                    }
                }
                _ => {
                    let (who, what) = match &tile.name {
                        Some(n) => (n.clone(), "starting…".to_owned()),
                        None => (self.title.clone(), format!("slot {}", slot + 1)),
                    };
                    let key = (rect.width, rect.height, who, what);
                    if tile.card.as_ref().is_none_or(|(k, _)| *k != key) {
                        let card =
                            render_card(&self.font, rect.width, rect.height, scale, &key.2, &key.3);
                        tile.card = Some((key, card));
                    }
                    if let Some((_, card)) = &tile.card {
                        draw_planes(&mut self.canvas, &mut self.scaler, card, rect);
                    }
                }
            }
            round_corners(
                &mut self.canvas,
                rect,
                &self.luma_corner,
                &self.chroma_corner,
                self.radius,
                self.bg_yuv,
            );
        }
    }

    fn video_tick(&mut self, now: Instant) -> Option<ProgramVideo> {
        self.compose(now);
        self.encoder
            .encode(&self.canvas, self.video_index, &mut self.stats)
    }
}

#[cfg(test)]
// Tests may read the clock; the core may not.
#[allow(clippy::disallowed_methods)]
#[path = "../../tests/compositor.rs"]
mod tests;
