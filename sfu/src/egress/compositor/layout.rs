//! The viewer page's layout in the program picture (`web/src/viewer.ts` `gridFor`,
//! `web/src/style.css` `.stage`/`.tile`): the grid of 16:9 tiles ([`tile_rects`]) and the
//! video fitted inside a tile ([`fit_rect`], `object-fit: contain`). Geometry only; drawing is
//! `picture`'s.

use super::MAX_SLOTS;

/// Page geometry at the reference program height of 720 px (CSS px of `style.css`).
pub(super) const REF_HEIGHT: f32 = 720.0;
pub(super) const REF_WIDTH: f32 = 1280.0;
pub(super) const PAGE_GAP: f32 = 14.0;
pub(super) const PAGE_RADIUS: f32 = 14.0;

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
pub(super) fn page_scale(width: u32, height: u32) -> f32 {
    (width as f32 / REF_WIDTH).min(height as f32 / REF_HEIGHT)
}

pub(super) fn even_down(v: u32) -> u32 {
    v & !1
}

pub(super) fn even_round(v: f32) -> u32 {
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
