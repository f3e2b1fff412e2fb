//! The placeholder card of an empty (or timed-out) slot and the `LIVE` + name label of a
//! live tile, as the viewer page draws them: text rendered with fontdue from the bundled
//! DejaVu Sans Bold onto an sRGB + alpha canvas, converted once to an I420 [`Sprite`].

use super::picture::{Picture, yuv_from_unit};

/// The DejaVu Sans Bold font used for the card and labels (Bitstream Vera licence,
/// `sfu/assets/fonts/LICENSE-DejaVu.txt`).
pub(super) static FONT_TTF: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
/// Placeholder card: `radial-gradient(circle at 50% 38%, #2a1f52, #120d22 72%)`.
pub(super) const CARD_INNER: [u8; 3] = [0x2a, 0x1f, 0x52];
pub(super) const CARD_OUTER: [u8; 3] = [0x12, 0x0d, 0x22];
pub(super) const CARD_WHO: [u8; 3] = [0xe8, 0xea, 0xf0];
pub(super) const CARD_WHAT: [u8; 3] = [0xa9, 0x9f, 0xd6];
pub(super) const LIVE_RED: [u8; 3] = [0xff, 0x3b, 0x5c];
pub(super) const LABEL_BG: [u8; 3] = [10, 6, 22];

/// An I420 picture with alpha (luma-resolution and chroma-resolution coverage, 0..=255).
#[derive(Debug, Clone, Default)]
pub(super) struct Sprite {
    pub(super) pic: Picture,
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
    pub(super) fn text(
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
pub(super) fn render_card(
    font: &fontdue::Font,
    w: u32,
    h: u32,
    scale: f32,
    who: &str,
    what: &str,
) -> Picture {
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
pub(super) fn render_label(font: &fontdue::Font, name: &str, scale: f32, max_w: f32) -> Sprite {
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
pub(super) fn blend_sprite(dst: &mut Picture, s: &Sprite, x: u32, y: u32) {
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
