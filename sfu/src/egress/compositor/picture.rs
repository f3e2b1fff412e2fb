//! Pictures and their drawing: the owned I420 [`Picture`] (BT.709 limited range,
//! [`rgb_to_yuv`]), plane views, the bilinear two-pass fixed-point scaler that draws a tile's
//! picture (or card) into its rectangle of the program, and the tiles' rounded corners on the
//! room background.

use openh264::formats::YUVSource;

use super::layout::{Rect, fit_rect};

/// Largest decoded tile picture accepted (pixels), to bound memory on hostile streams.
pub(super) const MAX_TILE_PIXELS: usize = 4096 * 2304;

/// sRGB → BT.709 limited-range Y'CbCr.
pub fn rgb_to_yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(|c| f32::from(c) / 255.0);
    yuv_from_unit(r, g, b)
}

pub(super) fn yuv_from_unit(r: f32, g: f32, b: f32) -> [u8; 3] {
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
    pub(super) fn copy_from(&mut self, src: &impl YUVSource) -> bool {
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

pub(super) fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize, dst: &mut Vec<u8>) {
    dst.clear();
    for row in src.chunks(stride).take(h) {
        dst.extend_from_slice(row.get(..w).unwrap_or(row));
    }
    dst.resize(w * h, 0);
}

/// One plane of a destination picture: its bytes and stride.
pub(super) struct PlaneMut<'a> {
    pub(super) data: &'a mut [u8],
    pub(super) stride: usize,
}

/// One plane of a source picture.
#[derive(Clone, Copy)]
pub(super) struct PlaneRef<'a> {
    pub(super) data: &'a [u8],
    pub(super) stride: usize,
    pub(super) width: usize,
    pub(super) height: usize,
}

pub(super) fn fill_rect(p: &mut PlaneMut<'_>, x: usize, y: usize, w: usize, h: usize, value: u8) {
    for row in p.data.chunks_mut(p.stride).skip(y).take(h) {
        if let Some(s) = row.get_mut(x..x + w) {
            s.fill(value);
        }
    }
}

/// One bilinear tap along an axis: the two source indices and the weight of the second
/// (0..=256).
#[derive(Clone, Copy, Default)]
pub(super) struct Tap {
    i0: usize,
    i1: usize,
    f: u32,
}

/// Reusable buffers of the scaler (no allocation per frame once warm).
#[derive(Default)]
pub(super) struct Scaler {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    row_a: Vec<u32>,
    row_b: Vec<u32>,
}

pub(super) fn axis_taps(src: usize, dst: usize, out: &mut Vec<Tap>) {
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
    pub(super) fn scale(
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

/// Draws `p` scaled into `r` of `dst`, plane by plane.
pub(super) fn draw_planes(dst: &mut Picture, scaler: &mut Scaler, p: &Picture, r: Rect) {
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
pub(super) fn draw_video(
    dst: &mut Picture,
    scaler: &mut Scaler,
    p: &Picture,
    tile: Rect,
    black: [u8; 3],
) {
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

/// Coverage of the tile (255 inside) in the `r`x`r` top-left corner square, for rounding.
pub(super) fn corner_mask(r: usize) -> Vec<u8> {
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
pub(super) fn round_corners(
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
