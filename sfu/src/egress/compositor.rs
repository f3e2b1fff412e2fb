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

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::Timestamp;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::{YUVSlices, YUVSource};
use tracing::{debug, warn};

use super::{ProgramAudio, ProgramFormat, ProgramVideo};

/// The most stage slots a layout has (the page's layouts 1..=9).
pub const MAX_SLOTS: usize = 9;
/// Samples per channel in one 20 ms Opus frame at 48 kHz.
pub const AUDIO_FRAME_SAMPLES: usize = 960;
/// Program audio channels (stereo).
pub const AUDIO_CHANNELS: usize = 2;
/// The DejaVu Sans Bold font used for the card and labels (Bitstream Vera licence,
/// `sfu/assets/fonts/LICENSE-DejaVu.txt`).
static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Page geometry at the reference program height of 720 px (CSS px of `style.css`).
const REF_HEIGHT: f32 = 720.0;
const REF_WIDTH: f32 = 1280.0;
const PAGE_GAP: f32 = 14.0;
const PAGE_RADIUS: f32 = 14.0;
/// Placeholder card: `radial-gradient(circle at 50% 38%, #2a1f52, #120d22 72%)`.
const CARD_INNER: [u8; 3] = [0x2a, 0x1f, 0x52];
const CARD_OUTER: [u8; 3] = [0x12, 0x0d, 0x22];
const CARD_WHO: [u8; 3] = [0xe8, 0xea, 0xf0];
const CARD_WHAT: [u8; 3] = [0xa9, 0x9f, 0xd6];
const LIVE_RED: [u8; 3] = [0xff, 0x3b, 0x5c];
const LABEL_BG: [u8; 3] = [10, 6, 22];
/// Largest decoded tile picture accepted (pixels), to bound memory on hostile streams.
const MAX_TILE_PIXELS: usize = 4096 * 2304;
/// Video frames the compositor encodes in one poll at most; beyond that it skips ahead.
const MAX_VIDEO_BURST: u64 = 5;
/// Audio ticks emitted in one poll at most; beyond that it skips ahead.
const MAX_AUDIO_BURST: u64 = 50;
/// Jitter buffer: start playing a tile once this much is buffered (samples, interleaved).
const AUDIO_PRIME: usize = 2 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
/// Jitter buffer cap (200 ms) and the level it is trimmed to (60 ms), interleaved samples.
const AUDIO_CAP: usize = 10 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
const AUDIO_TRIM_TO: usize = 3 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
/// Longest gap (in 20 ms frames) filled with Opus loss concealment.
const MAX_PLC_FRAMES: u64 = 5;
/// Largest Opus frame (120 ms) in interleaved stereo samples.
const MAX_OPUS_SAMPLES: usize = 5760 * AUDIO_CHANNELS;
/// Limiter ceiling (−1 dBFS), look-ahead (5 ms) and release time constant (100 ms).
const LIMITER_CEILING: f32 = 0.891;
const LIMITER_LOOKAHEAD: usize = 240;
const LIMITER_RELEASE_S: f32 = 0.1;

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

/// A rectangle of the program picture, pixels from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// Whether the two rectangles share a pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }
}

/// Columns and rows of a layout of `n` tiles, as the viewer page's `gridFor`: one row up to 4
/// tiles, then 3 columns for 5–6, 4 for 7–8, 3 for 9.
pub fn grid_for(n: u32) -> (u32, u32) {
    let n = n.max(1);
    let cols = match n {
        0..=4 => n,
        5..=6 => 3,
        7..=8 => 4,
        _ => 3,
    };
    (cols, n.div_ceil(cols))
}

/// The program scale relative to the page's reference stage (1280x720).
fn page_scale(width: u32, height: u32) -> f32 {
    (width as f32 / REF_WIDTH).min(height as f32 / REF_HEIGHT)
}

fn even_down(v: u32) -> u32 {
    v & !1
}

fn even_round(v: f32) -> u32 {
    ((v / 2.0).round().max(0.0) as u32) * 2
}

/// The tile rectangles of `layout` (clamped to 1..=9) in a `width`x`height` program, in slot
/// order: the page's grid of 16:9 tiles with its 14 px gap scaled to the program (14 px at
/// 1280x720, at least 2), as large as fits, centred; the last row left-aligned as CSS grid
/// auto-placement puts it. Every coordinate and size is even (I420 chroma is 2x2).
pub fn tile_rects(layout: u32, width: u32, height: u32) -> Vec<Rect> {
    let n = layout.clamp(1, MAX_SLOTS as u32);
    let (cols, rows) = grid_for(n);
    let gap = even_round(PAGE_GAP * page_scale(width, height)).max(2);
    let by_width = width.saturating_sub((cols - 1) * gap) / cols;
    let by_height = height.saturating_sub((rows - 1) * gap) / rows;
    let mut tw = even_down(by_width.min(by_height * 16 / 9));
    let mut th = even_down(tw * 9 / 16);
    if th > by_height {
        th = even_down(by_height);
        tw = even_down(th * 16 / 9);
    }
    let grid_w = cols * tw + (cols - 1) * gap;
    let grid_h = rows * th + (rows - 1) * gap;
    let x0 = even_down(width.saturating_sub(grid_w) / 2);
    let y0 = even_down(height.saturating_sub(grid_h) / 2);
    (0..n)
        .map(|i| Rect {
            x: x0 + (i % cols) * (tw + gap),
            y: y0 + (i / cols) * (th + gap),
            width: tw,
            height: th,
        })
        .collect()
}

/// The largest rectangle with the source's aspect inside `tile`, centred, even (the page's
/// `object-fit: contain`).
pub fn fit_rect(src_w: u32, src_h: u32, tile: Rect) -> Rect {
    if src_w == 0 || src_h == 0 {
        return tile;
    }
    let scale = (tile.width as f32 / src_w as f32).min(tile.height as f32 / src_h as f32);
    let w = even_round(src_w as f32 * scale).max(2).min(tile.width);
    let h = even_round(src_h as f32 * scale).max(2).min(tile.height);
    Rect {
        x: tile.x + even_down((tile.width - w) / 2),
        y: tile.y + even_down((tile.height - h) / 2),
        width: w,
        height: h,
    }
}

/// sRGB → BT.709 limited-range Y'CbCr.
pub fn rgb_to_yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(|c| f32::from(c) / 255.0);
    yuv_from_unit(r, g, b)
}

fn yuv_from_unit(r: f32, g: f32, b: f32) -> [u8; 3] {
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let cb = (b - y) / 1.8556;
    let cr = (r - y) / 1.5748;
    [
        (16.0 + 219.0 * y).round().clamp(0.0, 255.0) as u8,
        (128.0 + 224.0 * cb).round().clamp(0.0, 255.0) as u8,
        (128.0 + 224.0 * cr).round().clamp(0.0, 255.0) as u8,
    ]
}

/// An owned I420 picture, planes packed (strides `width` and `width / 2`), even size.
#[derive(Debug, Clone, Default)]
pub struct Picture {
    /// Width, pixels (even).
    pub width: u32,
    /// Height, pixels (even).
    pub height: u32,
    /// Luma, `width × height` bytes.
    pub y: Vec<u8>,
    /// Cb, `width/2 × height/2` bytes.
    pub u: Vec<u8>,
    /// Cr, `width/2 × height/2` bytes.
    pub v: Vec<u8>,
}

impl Picture {
    /// A picture of one colour (Y'CbCr).
    pub fn filled(width: u32, height: u32, yuv: [u8; 3]) -> Self {
        let (w, h) = (width as usize, height as usize);
        Self {
            width,
            height,
            y: vec![yuv[0]; w * h],
            u: vec![yuv[1]; (w / 2) * (h / 2)],
            v: vec![yuv[2]; (w / 2) * (h / 2)],
        }
    }

    /// The Y'CbCr at pixel (`x`, `y`), or `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let (w, x, y) = (self.width as usize, x as usize, y as usize);
        Some([
            *self.y.get(y * w + x)?,
            *self.u.get((y / 2) * (w / 2) + x / 2)?,
            *self.v.get((y / 2) * (w / 2) + x / 2)?,
        ])
    }

    /// Copies a decoded picture (cropped to even size), reusing this one's buffers.
    /// Returns false (and leaves it unchanged) when the source's planes are shorter than
    /// its size says or it is larger than the compositor accepts.
    fn copy_from(&mut self, src: &impl YUVSource) -> bool {
        let (w, h) = src.dimensions();
        let (w, h) = (w & !1, h & !1);
        let (sy, su, sv) = src.strides();
        if w == 0 || h == 0 || w * h > MAX_TILE_PIXELS || sy < w || su < w / 2 || sv < w / 2 {
            return false;
        }
        let (cw, ch) = (w / 2, h / 2);
        if src.y().len() < (h - 1) * sy + w
            || src.u().len() < (ch - 1) * su + cw
            || src.v().len() < (ch - 1) * sv + cw
        {
            return false;
        }
        self.width = w as u32;
        self.height = h as u32;
        copy_plane(src.y(), sy, w, h, &mut self.y);
        copy_plane(src.u(), su, cw, ch, &mut self.u);
        copy_plane(src.v(), sv, cw, ch, &mut self.v);
        true
    }
}

fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize, dst: &mut Vec<u8>) {
    dst.clear();
    for row in src.chunks(stride).take(h) {
        dst.extend_from_slice(row.get(..w).unwrap_or(row));
    }
    dst.resize(w * h, 0);
}

/// One plane of a destination picture: its bytes and stride.
struct PlaneMut<'a> {
    data: &'a mut [u8],
    stride: usize,
}

/// One plane of a source picture.
#[derive(Clone, Copy)]
struct PlaneRef<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

fn fill_rect(p: &mut PlaneMut<'_>, x: usize, y: usize, w: usize, h: usize, value: u8) {
    for row in p.data.chunks_mut(p.stride).skip(y).take(h) {
        if let Some(s) = row.get_mut(x..x + w) {
            s.fill(value);
        }
    }
}

/// One bilinear tap along an axis: the two source indices and the weight of the second
/// (0..=256).
#[derive(Clone, Copy, Default)]
struct Tap {
    i0: usize,
    i1: usize,
    f: u32,
}

/// Reusable buffers of the scaler (no allocation per frame once warm).
#[derive(Default)]
struct Scaler {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    row_a: Vec<u32>,
    row_b: Vec<u32>,
}

fn axis_taps(src: usize, dst: usize, out: &mut Vec<Tap>) {
    out.clear();
    let last = src.saturating_sub(1);
    for i in 0..dst {
        // Centre-aligned: (i + 0.5) × src / dst − 0.5, in 1/256 steps.
        let pos = ((2 * i + 1) * src * 256 / (2 * dst)).saturating_sub(128);
        let i0 = (pos >> 8).min(last);
        out.push(Tap {
            i0,
            i1: (i0 + 1).min(last),
            f: (pos & 0xff) as u32,
        });
    }
}

impl Scaler {
    /// Scales `src` into the `dst` rectangle (x, y, w, h) of `dst`: bilinear, two passes (a
    /// horizontal pass per source row, cached for the next output row, then a vertical blend
    /// that vectorizes).
    fn scale(
        &mut self,
        src: PlaneRef<'_>,
        dst: &mut PlaneMut<'_>,
        r: (usize, usize, usize, usize),
    ) {
        let (dx, dy, dw, dh) = r;
        if src.width == 0 || src.height == 0 || dw == 0 || dh == 0 {
            return;
        }
        let rows = dst.data.chunks_mut(dst.stride).skip(dy).take(dh);
        if src.width == dw && src.height == dh {
            for (out, s) in rows.zip(src.data.chunks(src.stride)) {
                if let (Some(o), Some(s)) = (out.get_mut(dx..dx + dw), s.get(..dw)) {
                    o.copy_from_slice(s);
                }
            }
            return;
        }
        axis_taps(src.width, dw, &mut self.xs);
        axis_taps(src.height, dh, &mut self.ys);
        self.row_a.resize(dw, 0);
        self.row_b.resize(dw, 0);
        let (mut held_a, mut held_b) = (usize::MAX, usize::MAX);
        let hpass = |row: usize, out: &mut [u32], xs: &[Tap]| {
            let s = src
                .data
                .get(row * src.stride..row * src.stride + src.width)
                .unwrap_or(&[]);
            if s.len() < src.width {
                out.fill(0);
                return;
            }
            for (o, t) in out.iter_mut().zip(xs) {
                let a = u32::from(s[t.i0]);
                let b = u32::from(s[t.i1]);
                *o = a * (256 - t.f) + b * t.f;
            }
        };
        for (out, ty) in rows.zip(self.ys.iter()) {
            if held_a != ty.i0 || held_b != ty.i1 {
                if held_b == ty.i0 {
                    std::mem::swap(&mut self.row_a, &mut self.row_b);
                    held_a = held_b;
                } else if held_a != ty.i0 {
                    hpass(ty.i0, &mut self.row_a, &self.xs);
                    held_a = ty.i0;
                }
                if ty.i1 == ty.i0 {
                    self.row_b.copy_from_slice(&self.row_a);
                } else {
                    hpass(ty.i1, &mut self.row_b, &self.xs);
                }
                held_b = ty.i1;
            }
            let Some(out) = out.get_mut(dx..dx + dw) else {
                continue;
            };
            let (fa, fb) = (256 - ty.f, ty.f);
            for ((o, a), b) in out.iter_mut().zip(&self.row_a).zip(&self.row_b) {
                *o = ((a * fa + b * fb + 32768) >> 16) as u8;
            }
        }
    }
}

/// An I420 picture with alpha (luma-resolution and chroma-resolution coverage, 0..=255).
#[derive(Debug, Clone, Default)]
struct Sprite {
    pic: Picture,
    alpha: Vec<u8>,
    chroma_alpha: Vec<u8>,
}

/// An sRGB + alpha drawing surface (floats 0..1) for cards and labels; converted to I420 once.
struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
    alpha: Vec<f32>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            rgb: vec![[0.0; 3]; w * h],
            alpha: vec![0.0; w * h],
        }
    }

    fn blend(&mut self, x: usize, y: usize, color: [f32; 3], a: f32) {
        let i = y * self.w + x;
        if let (Some(px), Some(pa)) = (self.rgb.get_mut(i), self.alpha.get_mut(i)) {
            for (c, n) in px.iter_mut().zip(color) {
                *c = *c * (1.0 - a) + n * a;
            }
            *pa = *pa + a * (1.0 - *pa);
        }
    }

    /// A filled rounded rectangle, anti-aliased edges.
    fn rounded_rect(&mut self, r: (f32, f32, f32, f32), radius: f32, color: [u8; 3], a: f32) {
        let (rx, ry, rw, rh) = r;
        let c = unit_rgb(color);
        let radius = radius.min(rw / 2.0).min(rh / 2.0).max(0.0);
        let (x0, y0) = (rx.floor().max(0.0) as usize, ry.floor().max(0.0) as usize);
        let x1 = ((rx + rw).ceil() as usize).min(self.w);
        let y1 = ((ry + rh).ceil() as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                // Signed distance to the rounded rectangle.
                let qx = (px - (rx + rw / 2.0)).abs() - (rw / 2.0 - radius);
                let qy = (py - (ry + rh / 2.0)).abs() - (rh / 2.0 - radius);
                let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
                let d = outside + qx.max(qy).min(0.0) - radius;
                let cov = (0.5 - d).clamp(0.0, 1.0);
                if cov > 0.0 {
                    self.blend(x, y, c, cov * a);
                }
            }
        }
    }

    /// Draws `text` with its left edge at `x` and its baseline at `baseline`.
    fn text(
        &mut self,
        font: &fontdue::Font,
        text: &str,
        px: f32,
        x: f32,
        baseline: f32,
        color: [u8; 3],
    ) {
        let c = unit_rgb(color);
        let mut pen = x;
        for ch in text.chars() {
            let (m, bitmap) = font.rasterize(ch, px);
            let gx = pen.round() as i64 + i64::from(m.xmin);
            let gy = baseline.round() as i64 - m.height as i64 - i64::from(m.ymin);
            for (j, row) in bitmap.chunks(m.width.max(1)).enumerate() {
                for (i, &cov) in row.iter().enumerate() {
                    let (x, y) = (gx + i as i64, gy + j as i64);
                    if cov > 0 && x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h
                    {
                        self.blend(x as usize, y as usize, c, f32::from(cov) / 255.0);
                    }
                }
            }
            pen += m.advance_width;
        }
    }

    /// Converts to I420 (2x2 averaged chroma) with alpha planes.
    fn to_sprite(&self) -> Sprite {
        let (w, h) = (self.w & !1, self.h & !1);
        let mut s = Sprite {
            pic: Picture::filled(w as u32, h as u32, [0, 128, 128]),
            alpha: vec![0; w * h],
            chroma_alpha: vec![0; (w / 2) * (h / 2)],
        };
        for y in 0..h {
            for x in 0..w {
                let i = y * self.w + x;
                let [r, g, b] = self.rgb.get(i).copied().unwrap_or_default();
                if let Some(o) = s.pic.y.get_mut(y * w + x) {
                    *o = yuv_from_unit(r, g, b)[0];
                }
                if let Some(o) = s.alpha.get_mut(y * w + x) {
                    *o = (self.alpha.get(i).copied().unwrap_or(0.0) * 255.0).round() as u8;
                }
            }
        }
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let mut sum = [0.0f32; 4];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let i = (2 * cy + dy) * self.w + 2 * cx + dx;
                    let p = self.rgb.get(i).copied().unwrap_or_default();
                    sum[0] += p[0];
                    sum[1] += p[1];
                    sum[2] += p[2];
                    sum[3] += self.alpha.get(i).copied().unwrap_or(0.0);
                }
                let yuv = yuv_from_unit(sum[0] / 4.0, sum[1] / 4.0, sum[2] / 4.0);
                let ci = cy * (w / 2) + cx;
                if let (Some(u), Some(v), Some(a)) = (
                    s.pic.u.get_mut(ci),
                    s.pic.v.get_mut(ci),
                    s.chroma_alpha.get_mut(ci),
                ) {
                    *u = yuv[1];
                    *v = yuv[2];
                    *a = (sum[3] / 4.0 * 255.0).round() as u8;
                }
            }
        }
        s
    }
}

fn unit_rgb(c: [u8; 3]) -> [f32; 3] {
    c.map(|v| f32::from(v) / 255.0)
}

fn text_width(font: &fontdue::Font, text: &str, px: f32) -> f32 {
    text.chars()
        .map(|c| font.metrics(c, px).advance_width)
        .sum()
}

/// `text` cut (on a char boundary) with an ellipsis so that it is at most `max` px wide.
fn fit_text(font: &fontdue::Font, text: &str, px: f32, max: f32) -> String {
    if text_width(font, text, px) <= max {
        return text.to_owned();
    }
    let budget = max - text_width(font, "…", px);
    let mut out = String::new();
    let mut w = 0.0;
    for c in text.chars() {
        let cw = font.metrics(c, px).advance_width;
        if w + cw > budget {
            break;
        }
        w += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// The placeholder card of an empty slot, `w`x`h`: the page's radial gradient, `who` in the
/// centre (26 px × scale) and `what` under it (13 px × scale).
fn render_card(font: &fontdue::Font, w: u32, h: u32, scale: f32, who: &str, what: &str) -> Picture {
    let (wu, hu) = (w as usize, h as usize);
    let mut c = Canvas::new(wu, hu);
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.38);
    let far = (cx.max(w as f32 - cx).powi(2) + cy.max(h as f32 - cy).powi(2)).sqrt() * 0.72;
    let (inner, outer) = (unit_rgb(CARD_INNER), unit_rgb(CARD_OUTER));
    for y in 0..hu {
        for x in 0..wu {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let t = (d / far.max(1.0)).min(1.0);
            if let Some(p) = c.rgb.get_mut(y * wu + x) {
                *p = [0, 1, 2].map(|k| inner[k] + (outer[k] - inner[k]) * t);
            }
        }
    }
    let who_px = (26.0 * scale).max(8.0);
    let what_px = (13.0 * scale).max(6.0);
    let gap = 6.0 * scale;
    let max_w = w as f32 - 16.0 * scale;
    let who = fit_text(font, who, who_px, max_w);
    let what = fit_text(font, what, what_px, max_w);
    let asc = |px: f32| {
        font.horizontal_line_metrics(px)
            .map(|m| (m.ascent, -m.descent))
            .unwrap_or((px * 0.8, px * 0.2))
    };
    let (who_a, who_d) = asc(who_px);
    let (what_a, what_d) = asc(what_px);
    let block = who_a + who_d + gap + what_a + what_d;
    let top = (h as f32 - block) / 2.0;
    let who_x = (w as f32 - text_width(font, &who, who_px)) / 2.0;
    c.text(font, &who, who_px, who_x, top + who_a, CARD_WHO);
    let what_x = (w as f32 - text_width(font, &what, what_px)) / 2.0;
    let what_base = top + who_a + who_d + gap + what_a;
    c.text(font, &what, what_px, what_x, what_base, CARD_WHAT);
    c.to_sprite().pic
}

/// The page's tile label: a translucent rounded box with a red `LIVE` badge and the name,
/// at most `max_w` px wide.
fn render_label(font: &fontdue::Font, name: &str, scale: f32, max_w: f32) -> Sprite {
    let name_px = 13.0 * scale;
    let badge_px = 11.0 * scale;
    let pad_x = 9.0 * scale;
    let pad_y = 3.0 * scale;
    let badge_pad = 6.0 * scale;
    let gap = 6.0 * scale;
    let badge_w = text_width(font, "LIVE", badge_px) + 2.0 * badge_pad;
    let room = (max_w - 2.0 * pad_x - badge_w - gap).max(0.0);
    let name = fit_text(font, name, name_px, room);
    let name_w = text_width(font, &name, name_px);
    let h = (name_px * 1.45 + 2.0 * pad_y).ceil();
    let w = (2.0 * pad_x + badge_w + gap + name_w)
        .ceil()
        .min(max_w.max(2.0));
    let mut c = Canvas::new(w as usize + 2, h as usize + 2);
    c.rounded_rect((0.0, 0.0, w, h), 8.0 * scale, LABEL_BG, 0.62);
    let bh = badge_px * 1.5;
    let by = (h - bh) / 2.0;
    c.rounded_rect((pad_x, by, badge_w, bh), 6.0 * scale, LIVE_RED, 1.0);
    let base = |px: f32, top: f32, height: f32| {
        let (a, d) = font
            .horizontal_line_metrics(px)
            .map(|m| (m.ascent, -m.descent))
            .unwrap_or((px * 0.8, px * 0.2));
        top + (height - (a + d)) / 2.0 + a
    };
    c.text(
        font,
        "LIVE",
        badge_px,
        pad_x + badge_pad,
        base(badge_px, by, bh),
        [255, 255, 255],
    );
    c.text(
        font,
        &name,
        name_px,
        pad_x + badge_w + gap,
        base(name_px, 0.0, h),
        CARD_WHO,
    );
    c.to_sprite()
}

/// Alpha-blends `s` onto `dst` at even (`x`, `y`).
fn blend_sprite(dst: &mut Picture, s: &Sprite, x: u32, y: u32) {
    let (dw, sw) = (dst.width as usize, s.pic.width as usize);
    let (x, y) = (x as usize & !1, y as usize & !1);
    let blend =
        |d: &mut [u8], dstride: usize, src: &[u8], a: &[u8], sw: usize, x: usize, y: usize| {
            for ((drow, srow), arow) in d
                .chunks_mut(dstride)
                .skip(y)
                .zip(src.chunks(sw.max(1)))
                .zip(a.chunks(sw.max(1)))
            {
                let Some(drow) = drow.get_mut(x..) else {
                    continue;
                };
                for ((o, &sv), &av) in drow.iter_mut().zip(srow).zip(arow) {
                    let av = u32::from(av);
                    *o = ((u32::from(*o) * (255 - av) + u32::from(sv) * av + 127) / 255) as u8;
                }
            }
        };
    blend(&mut dst.y, dw, &s.pic.y, &s.alpha, sw, x, y);
    blend(
        &mut dst.u,
        dw / 2,
        &s.pic.u,
        &s.chroma_alpha,
        sw / 2,
        x / 2,
        y / 2,
    );
    blend(
        &mut dst.v,
        dw / 2,
        &s.pic.v,
        &s.chroma_alpha,
        sw / 2,
        x / 2,
        y / 2,
    );
}

/// Coverage of the tile (255 inside) in the `r`x`r` top-left corner square, for rounding.
fn corner_mask(r: usize) -> Vec<u8> {
    let mut m = vec![255u8; r * r];
    let rf = r as f32;
    for y in 0..r {
        for x in 0..r {
            // 4x4 supersampling of the quarter circle centred at (r, r).
            let mut inside = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = x as f32 + (sx as f32 + 0.5) / 4.0;
                    let py = y as f32 + (sy as f32 + 0.5) / 4.0;
                    if (rf - px).powi(2) + (rf - py).powi(2) <= rf * rf {
                        inside += 1;
                    }
                }
            }
            if let Some(v) = m.get_mut(y * r + x) {
                *v = (inside * 255 / 16) as u8;
            }
        }
    }
    m
}

/// Rounds the four corners of `rect` onto the background `bg` (Y'CbCr).
fn round_corners(
    dst: &mut Picture,
    rect: Rect,
    luma_mask: &[u8],
    chroma_mask: &[u8],
    r: usize,
    bg: [u8; 3],
) {
    if r == 0 || rect.width as usize <= 2 * r || rect.height as usize <= 2 * r {
        return;
    }
    let apply = |plane: &mut [u8],
                 stride: usize,
                 mask: &[u8],
                 r: usize,
                 rx: usize,
                 ry: usize,
                 rw: usize,
                 rh: usize,
                 bg: u8| {
        for j in 0..r {
            for i in 0..r {
                let a = u32::from(mask.get(j * r + i).copied().unwrap_or(255));
                if a == 255 {
                    continue;
                }
                for (x, y) in [
                    (rx + i, ry + j),
                    (rx + rw - 1 - i, ry + j),
                    (rx + i, ry + rh - 1 - j),
                    (rx + rw - 1 - i, ry + rh - 1 - j),
                ] {
                    if let Some(p) = plane.get_mut(y * stride + x) {
                        *p = ((u32::from(*p) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8;
                    }
                }
            }
        }
    };
    let (w, x, y, rw, rh) = (
        dst.width as usize,
        rect.x as usize,
        rect.y as usize,
        rect.width as usize,
        rect.height as usize,
    );
    apply(&mut dst.y, w, luma_mask, r, x, y, rw, rh, bg[0]);
    let cr = r / 2;
    apply(
        &mut dst.u,
        w / 2,
        chroma_mask,
        cr,
        x / 2,
        y / 2,
        rw / 2,
        rh / 2,
        bg[1],
    );
    apply(
        &mut dst.v,
        w / 2,
        chroma_mask,
        cr,
        x / 2,
        y / 2,
        rw / 2,
        rh / 2,
        bg[2],
    );
}

/// A look-ahead peak limiter on interleaved stereo: the gain is the minimum of the needed
/// gains over the next `L` samples, released with a one-pole curve and smoothed by an
/// `L`-sample moving average, applied to the signal delayed by `L − 1` samples — every
/// averaged gain is at most the gain the delayed sample needs, so the output never exceeds
/// the ceiling. State is kept across calls.
#[derive(Debug)]
pub struct Limiter {
    ceiling: f32,
    lookahead: usize,
    release: f32,
    n: u64,
    /// Monotonic deque (index, needed gain) for the sliding minimum.
    min_q: VecDeque<(u64, f32)>,
    /// The last `lookahead` released gains and their sum.
    avg_q: VecDeque<f32>,
    avg_sum: f64,
    released: f32,
    delay: VecDeque<[f32; 2]>,
}

impl Limiter {
    /// A limiter with `ceiling` (linear, e.g. 0.891 for −1 dBFS), `lookahead` samples (≥ 1)
    /// and a release time constant `release_s` seconds at 48 kHz.
    pub fn new(ceiling: f32, lookahead: usize, release_s: f32) -> Self {
        let lookahead = lookahead.max(1);
        Self {
            ceiling,
            lookahead,
            release: 1.0 - (-1.0 / (release_s.max(1e-4) * 48_000.0)).exp(),
            n: 0,
            min_q: VecDeque::with_capacity(lookahead + 1),
            avg_q: VecDeque::with_capacity(lookahead + 1),
            avg_sum: 0.0,
            released: 1.0,
            delay: VecDeque::with_capacity(lookahead + 1),
        }
    }

    /// Limits interleaved stereo `samples` in place (output delayed by `lookahead − 1`
    /// samples; the first ones are silence).
    pub fn process(&mut self, samples: &mut [f32]) {
        let l = self.lookahead as u64;
        for frame in samples.chunks_exact_mut(2) {
            let peak = frame[0].abs().max(frame[1].abs());
            let need = if peak > self.ceiling && peak.is_finite() {
                self.ceiling / peak
            } else if peak.is_finite() {
                1.0
            } else {
                0.0
            };
            while self.min_q.back().is_some_and(|&(_, g)| g >= need) {
                self.min_q.pop_back();
            }
            self.min_q.push_back((self.n, need));
            while self.min_q.front().is_some_and(|&(i, _)| i + l <= self.n) {
                self.min_q.pop_front();
            }
            let hold = self.min_q.front().map_or(1.0, |&(_, g)| g);
            self.released = hold.min(self.released + (1.0 - self.released) * self.release);
            self.avg_q.push_back(self.released);
            self.avg_sum += f64::from(self.released);
            if self.avg_q.len() > self.lookahead {
                self.avg_sum -= f64::from(self.avg_q.pop_front().unwrap_or(0.0));
            }
            let gain = (self.avg_sum / self.avg_q.len() as f64) as f32;
            let input = if peak.is_finite() {
                [frame[0], frame[1]]
            } else {
                [0.0, 0.0]
            };
            self.delay.push_back(input);
            let out = if self.delay.len() >= self.lookahead {
                self.delay.pop_front().unwrap_or([0.0, 0.0])
            } else {
                [0.0, 0.0]
            };
            let c = self.ceiling;
            frame[0] = (out[0] * gain).clamp(-c, c);
            frame[1] = (out[1] * gain).clamp(-c, c);
            self.n += 1;
        }
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

#[derive(Default)]
struct TileAudio {
    decoder: Option<opus::Decoder>,
    fifo: VecDeque<f32>,
    next_ts: Option<u64>,
    primed: bool,
}

#[derive(Default)]
struct Tile {
    /// The artist on this slot (None: empty).
    name: Option<String>,
    decoder: Option<Decoder>,
    needs_keyframe: bool,
    picture: Picture,
    has_picture: bool,
    /// When the last picture was decoded (the compositor's clock: the last poll's `now`).
    picture_at: Option<Instant>,
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
        self.decoder = None;
        self.needs_keyframe = true;
        self.has_picture = false;
        self.picture_at = None;
        self.dirty = true;
        self.audio = TileAudio::default();
    }
}

/// The compositor (see the module docs). Not `Sync`; run it on one thread and drive it with
/// [`Compositor::poll`].
pub struct Compositor {
    cfg: CompositorConfig,
    font: fontdue::Font,
    encoder: Encoder,
    opus: opus::Encoder,
    format: Option<ProgramFormat>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
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
    annexb: Vec<u8>,
    pcm: Vec<f32>,
    mix: Vec<f32>,
    limiter: Limiter,
    opus_out: Vec<u8>,
    epoch: Option<Instant>,
    now: Option<Instant>,
    video_index: u64,
    audio_index: u64,
    last_gop: Option<u64>,
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
        let mut opus = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)
            .map_err(|e| CompositorError::Opus(e.to_string()))?;
        opus.set_bitrate(opus::Bitrate::Bits(cfg.audio_bitrate_bps as i32))
            .map_err(|e| CompositorError::Opus(e.to_string()))?;
        let bg_yuv = rgb_to_yuv(cfg.background_rgb);
        let radius = even_round(PAGE_RADIUS * page_scale(cfg.width, cfg.height)) as usize;
        let luma_corner = corner_mask(radius);
        let chroma_corner = corner_mask(radius / 2);
        let title = cfg.title.clone();
        let mut c = Self {
            canvas: Picture::filled(cfg.width, cfg.height, bg_yuv),
            font,
            encoder,
            opus,
            format: None,
            sps: None,
            pps: None,
            layout: 1,
            title,
            rects: Vec::new(),
            tiles: (0..MAX_SLOTS)
                .map(|_| Tile {
                    needs_keyframe: true,
                    ..Tile::default()
                })
                .collect(),
            full_redraw: true,
            bg_yuv,
            black: rgb_to_yuv([0, 0, 0]),
            radius,
            luma_corner,
            chroma_corner,
            scaler: Scaler::default(),
            annexb: Vec::new(),
            pcm: vec![0.0; MAX_OPUS_SAMPLES],
            mix: vec![0.0; AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS],
            limiter: Limiter::new(LIMITER_CEILING, LIMITER_LOOKAHEAD, LIMITER_RELEASE_S),
            opus_out: vec![0; 4000],
            epoch: None,
            now: None,
            video_index: 0,
            audio_index: 0,
            last_gop: None,
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
            } else if i >= layout as usize && tile.decoder.is_some() {
                // Hidden slots are not decoded; they start over when shown again.
                tile.reset_media();
            }
        }
    }

    /// Whether slot `slot` waits for a keyframe (after a start, a stage change or a decode
    /// error): the caller should ask the slot's source for one (PLI/FIR).
    pub fn needs_keyframe(&self, slot: usize) -> bool {
        slot < self.layout as usize && self.tiles.get(slot).is_some_and(|t| t.needs_keyframe)
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
        let now = self.now;
        let Some(tile) = self.tiles.get_mut(slot) else {
            return;
        };
        if tile.needs_keyframe && !keyframe {
            tile.stats.frames_dropped += 1;
            return;
        }
        self.annexb.clear();
        for n in nalus {
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(n);
        }
        if tile.decoder.is_none() {
            match Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new()) {
                Ok(d) => tile.decoder = Some(d),
                Err(e) => {
                    warn!(slot, error = %e, "compositor: H.264 decoder not created");
                    tile.stats.decode_errors += 1;
                    return;
                }
            }
        }
        let Some(decoder) = tile.decoder.as_mut() else {
            return;
        };
        let picture = &mut tile.picture;
        let data = &self.annexb;
        let result = catch_unwind(AssertUnwindSafe(|| match decoder.decode(data) {
            Ok(Some(yuv)) => Ok(picture.copy_from(&yuv)),
            Ok(None) => Ok(false),
            Err(e) => Err(e.to_string()),
        }));
        match result {
            Ok(Ok(true)) => {
                tile.stats.frames_decoded += 1;
                tile.has_picture = true;
                tile.picture_at = now;
                tile.dirty = true;
                tile.needs_keyframe = false;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                debug!(slot, pts_90k, error = %e, "compositor: tile decode error");
                tile.stats.decode_errors += 1;
                tile.needs_keyframe = true;
            }
            Err(_) => {
                warn!(
                    slot,
                    pts_90k, "compositor: tile decoder panicked; recreated at the next keyframe"
                );
                tile.stats.decode_errors += 1;
                tile.needs_keyframe = true;
                tile.decoder = None;
            }
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
        let a = &mut tile.audio;
        if a.decoder.is_none() {
            match opus::Decoder::new(48_000, opus::Channels::Stereo) {
                Ok(d) => a.decoder = Some(d),
                Err(e) => {
                    warn!(slot, error = %e, "compositor: Opus decoder not created");
                    tile.stats.audio_errors += 1;
                    return;
                }
            }
        }
        let Some(dec) = a.decoder.as_mut() else {
            return;
        };
        let frame = AUDIO_FRAME_SAMPLES as u64;
        if let Some(next) = a.next_ts {
            if ts_48k.saturating_add(frame / 2) < next {
                tile.stats.audio_errors += 1;
                return;
            }
            let gap = ts_48k.saturating_sub(next) / frame;
            if (1..=MAX_PLC_FRAMES).contains(&gap)
                && let Some(buf) = self.pcm.get_mut(..AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS)
            {
                for _ in 0..gap {
                    if let Ok(n) = dec.decode_float(&[], buf, false) {
                        a.fifo.extend(buf.iter().take(n * AUDIO_CHANNELS));
                    }
                }
            }
        }
        match dec.decode_float(opus, &mut self.pcm, false) {
            Ok(n) => {
                a.fifo.extend(self.pcm.iter().take(n * AUDIO_CHANNELS));
                a.next_ts = Some(ts_48k.saturating_add(n as u64));
                tile.stats.audio_packets += 1;
            }
            Err(e) => {
                debug!(slot, error = %e, "compositor: Opus decode error");
                a.next_ts = Some(ts_48k.saturating_add(frame));
                tile.stats.audio_errors += 1;
            }
        }
        if a.fifo.len() > AUDIO_CAP {
            let excess = a.fifo.len() - AUDIO_TRIM_TO;
            a.fifo.drain(..excess);
        }
    }

    /// What the program is; `None` until the first picture is encoded (its SPS/PPS are needed).
    pub fn format(&self) -> Option<&ProgramFormat> {
        self.format.as_ref()
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
        self.mix.fill(0.0);
        for tile in self.tiles.iter_mut().take(self.layout as usize) {
            let a = &mut tile.audio;
            if !a.primed {
                if a.fifo.len() >= AUDIO_PRIME {
                    a.primed = true;
                } else {
                    continue;
                }
            }
            let n = a.fifo.len().min(self.mix.len());
            for (m, s) in self.mix.iter_mut().zip(a.fifo.drain(..n)) {
                *m += s;
            }
            if n < self.mix.len() {
                a.primed = false;
            }
        }
        self.limiter.process(&mut self.mix);
        let ts_48k = self.audio_index * AUDIO_FRAME_SAMPLES as u64;
        match self.opus.encode_float(&self.mix, &mut self.opus_out) {
            Ok(n) => {
                self.stats.audio_packets += 1;
                Some(ProgramAudio {
                    opus: Bytes::copy_from_slice(self.opus_out.get(..n)?),
                    ts_48k,
                })
            }
            Err(e) => {
                warn!(error = %e, "compositor: Opus encode failed");
                None
            }
        }
    }

    /// Composes the current picture into the canvas (only what changed).
    pub fn compose(&mut self, now: Instant) {
        let timeout = self.cfg.tile_timeout;
        let layout = self.layout as usize;
        for tile in self.tiles.iter_mut().take(layout) {
            let fresh = tile.has_picture
                && tile
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
                        &tile.picture,
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
        let gop = self.cfg.gop_frames();
        let gop_index = self.video_index / gop;
        let force = self.last_gop != Some(gop_index);
        if force && self.stats.video_frames > 0 {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let pts_90k = self.video_index * 90_000 / u64::from(self.cfg.fps);
        let src = YUVSlices::new(
            (&self.canvas.y, &self.canvas.u, &self.canvas.v),
            (w, h),
            (w, w / 2, w / 2),
        );
        let bs = match self
            .encoder
            .encode_at(&src, Timestamp::from_millis(pts_90k / 90))
        {
            Ok(bs) => bs,
            Err(e) => {
                warn!(error = %e, "compositor: H.264 encode failed");
                self.stats.encode_errors += 1;
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
            self.stats.encode_errors += 1;
            return None;
        }
        if keyframe {
            self.last_gop = Some(gop_index);
        }
        if self.format.is_none()
            && let (Some(sps), Some(pps)) = (&self.sps, &self.pps)
        {
            self.format = Some(ProgramFormat {
                width: self.cfg.width,
                height: self.cfg.height,
                fps: self.cfg.fps,
                sps: sps.clone(),
                pps: pps.clone(),
                audio_channels: AUDIO_CHANNELS as u8,
            });
        }
        self.stats.video_frames += 1;
        Some(ProgramVideo {
            nalus,
            keyframe,
            pts_90k,
        })
    }
}

/// A NAL unit without its Annex B start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
    }
}

fn draw_planes(dst: &mut Picture, scaler: &mut Scaler, p: &Picture, r: Rect) {
    let dw = dst.width as usize;
    let (sw, sh) = (p.width as usize, p.height as usize);
    let (x, y, w, h) = (
        r.x as usize,
        r.y as usize,
        r.width as usize,
        r.height as usize,
    );
    if x + w > dw || y + h > dst.height as usize {
        return;
    }
    let planes = [
        (&p.y[..], &mut dst.y[..], sw, sh, dw, (x, y, w, h)),
        (
            &p.u[..],
            &mut dst.u[..],
            sw / 2,
            sh / 2,
            dw / 2,
            (x / 2, y / 2, w / 2, h / 2),
        ),
        (
            &p.v[..],
            &mut dst.v[..],
            sw / 2,
            sh / 2,
            dw / 2,
            (x / 2, y / 2, w / 2, h / 2),
        ),
    ];
    for (src, out, pw, ph, stride, rect) in planes {
        scaler.scale(
            PlaneRef {
                data: src,
                stride: pw,
                width: pw,
                height: ph,
            },
            &mut PlaneMut { data: out, stride },
            rect,
        );
    }
}

/// Draws a tile's picture: black bars where the aspect differs, the picture fitted inside.
fn draw_video(dst: &mut Picture, scaler: &mut Scaler, p: &Picture, tile: Rect, black: [u8; 3]) {
    let fit = fit_rect(p.width, p.height, tile);
    if fit != tile {
        let dw = dst.width as usize;
        let (x, y, w, h) = (
            tile.x as usize,
            tile.y as usize,
            tile.width as usize,
            tile.height as usize,
        );
        fill_rect(
            &mut PlaneMut {
                data: &mut dst.y,
                stride: dw,
            },
            x,
            y,
            w,
            h,
            black[0],
        );
        fill_rect(
            &mut PlaneMut {
                data: &mut dst.u,
                stride: dw / 2,
            },
            x / 2,
            y / 2,
            w / 2,
            h / 2,
            black[1],
        );
        fill_rect(
            &mut PlaneMut {
                data: &mut dst.v,
                stride: dw / 2,
            },
            x / 2,
            y / 2,
            w / 2,
            h / 2,
            black[2],
        );
    }
    draw_planes(dst, scaler, p, fit);
}

#[cfg(test)]
#[path = "../tests/compositor.rs"]
mod tests;
