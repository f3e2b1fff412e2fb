// The room's PixiJS (WebGL) layers: a back canvas behind the stage tiles with the sticker board,
// and a front canvas over everything (pointer-events: none) with the glowing cursor trails and
// the fireworks. Frames are drawn only while something moves: an idle room costs nothing.
//
// Positions come in normalized room coordinates ([0, 1] of the `.room` element).
import {
  Container,
  Graphics,
  Sprite,
  Text,
  Texture,
  autoDetectRenderer,
  type Renderer,
} from "pixi.js";
import type { Mode, StickerDefView, StickerView } from "./room";

/** Cursors drawn at most: the most recently moved ones. */
const MAX_CURSORS = 200;
/** Firework particles alive at most (a busy room still draws). */
const MAX_PARTICLES = 2400;
const TRAIL_MS = 420;
const IDLE_DIM_MS = 5000;

/** A user's colour: hue from the id, spread by the golden angle. */
export function hueOf(userId: number): number {
  return Math.round((userId * 137.508) % 360);
}

export function hsl(h: number, s: number, l: number): number {
  s /= 100;
  l /= 100;
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return (Math.round(f(0) * 255) << 16) | (Math.round(f(8) * 255) << 8) | Math.round(f(4) * 255);
}

function glowTexture(size = 64): Texture {
  const c = document.createElement("canvas");
  c.width = c.height = size;
  const g = c.getContext("2d");
  if (g) {
    const r = size / 2;
    const grad = g.createRadialGradient(r, r, 0, r, r, r);
    grad.addColorStop(0, "rgba(255,255,255,1)");
    grad.addColorStop(0.22, "rgba(255,255,255,.85)");
    grad.addColorStop(0.5, "rgba(255,255,255,.25)");
    grad.addColorStop(1, "rgba(255,255,255,0)");
    g.fillStyle = grad;
    g.fillRect(0, 0, size, size);
  }
  return Texture.from(c);
}

interface Cursor {
  id: number;
  tx: number;
  ty: number;
  x: number;
  y: number;
  /** Recent on-screen positions (px) with their time, oldest first. */
  trail: { x: number; y: number; t: number }[];
  lastMove: number;
  color: number;
  head: Sprite;
  core: Sprite;
  g: Graphics;
  label: Text | null;
  name: string;
  own: boolean;
}

interface Particle {
  s: Sprite;
  x: number;
  y: number;
  vx: number;
  vy: number;
  age: number;
  life: number;
  size: number;
  gravity: number;
}

interface Rocket {
  x: number;
  y0: number;
  y1: number;
  age: number;
  dur: number;
  hue: number;
  s: Sprite;
}

interface StickerSprite {
  v: StickerView;
  s: Sprite;
  born: number;
  /** Set when fading out (expired / cleared). */
  dying: number | null;
}

const easeOutBack = (t: number) => {
  const c1 = 1.70158;
  const c3 = c1 + 1;
  return 1 + c3 * Math.pow(t - 1, 3) + c1 * Math.pow(t - 1, 2);
};

export class RoomFx {
  private back: Renderer | null = null;
  private front: Renderer | null = null;
  private backStage = new Container();
  private frontStage = new Container();
  private stickerLayer = new Container();
  private trailLayer = new Container();
  private sparkLayer = new Container();
  private labelLayer = new Container();
  private glow: Texture = Texture.WHITE;
  private w = 1;
  private h = 1;
  private raf = 0;
  private last = 0;
  private backDirty = true;
  private frontDirty = true;
  private cursors = new Map<number, Cursor>();
  private particles: Particle[] = [];
  private pool: Sprite[] = [];
  private rockets: Rocket[] = [];
  private stickers = new Map<number, StickerSprite>();
  private textures = new Map<string, Texture>();
  private defs = new Map<string, StickerDefView>();
  private mode: Mode = "everything";
  /** Display names by user id, for the cursor labels. */
  nameOf: (id: number) => string = () => "";
  ready = false;

  constructor(
    private roomEl: HTMLElement,
    private backHost: HTMLElement,
    private frontHost: HTMLElement,
  ) {}

  /** Creates the two renderers; false when neither WebGL nor canvas works (the room still works, undrawn). */
  async init(): Promise<boolean> {
    const r = this.roomEl.getBoundingClientRect();
    this.w = Math.max(1, Math.round(r.width));
    this.h = Math.max(1, Math.round(r.height));
    const opts = {
      preference: ["webgl", "canvas"] as ("webgl" | "canvas")[],
      width: this.w,
      height: this.h,
      backgroundAlpha: 0,
      antialias: true,
      resolution: Math.min(window.devicePixelRatio || 1, 2),
      autoDensity: true,
    };
    try {
      this.back = await autoDetectRenderer(opts);
      this.front = await autoDetectRenderer(opts);
    } catch (e) {
      console.warn("venue: no WebGL/canvas renderer, the room is not drawn", e);
      return false;
    }
    this.back.canvas.classList.add("fx", "fx-back");
    this.front.canvas.classList.add("fx", "fx-front");
    this.backHost.append(this.back.canvas);
    this.frontHost.append(this.front.canvas);
    this.glow = glowTexture(64);
    this.backStage.addChild(this.stickerLayer);
    this.trailLayer.blendMode = "add";
    this.sparkLayer.blendMode = "add";
    this.frontStage.addChild(this.trailLayer, this.sparkLayer, this.labelLayer);
    new ResizeObserver(() => this.resize()).observe(this.roomEl);
    // Idle cursors dim after a while: one frame a second notices.
    setInterval(() => {
      if (this.cursors.size) this.kick();
    }, 1000);
    this.ready = true;
    this.applyMode();
    this.kick();
    return true;
  }

  private resize() {
    const r = this.roomEl.getBoundingClientRect();
    const w = Math.max(1, Math.round(r.width));
    const h = Math.max(1, Math.round(r.height));
    if (w === this.w && h === this.h) return;
    this.w = w;
    this.h = h;
    this.back?.resize(w, h);
    this.front?.resize(w, h);
    for (const st of this.stickers.values()) this.placeSprite(st);
    for (const c of this.cursors.values()) c.trail.length = 0;
    this.backDirty = this.frontDirty = true;
    this.kick();
  }

  setMode(mode: Mode) {
    this.mode = mode;
    this.applyMode();
  }

  private applyMode() {
    const cursors = this.mode === "everything" || this.mode === "stickers_off";
    this.stickerLayer.visible = this.mode === "everything";
    this.trailLayer.visible = this.labelLayer.visible = this.sparkLayer.visible = cursors;
    this.backDirty = this.frontDirty = true;
    this.kick();
  }

  // ---------- stickers ----------

  setStickerSet(defs: StickerDefView[]) {
    this.defs = new Map(defs.map((d) => [d.id, d]));
    for (const st of this.stickers.values()) this.applyTexture(st);
  }

  private texture(url: string): Texture | null {
    const have = this.textures.get(url);
    if (have) return have === Texture.EMPTY ? null : have;
    this.textures.set(url, Texture.EMPTY);
    const img = new Image();
    img.decoding = "async";
    img.onload = () => {
      const size = 192;
      const c = document.createElement("canvas");
      c.width = c.height = size;
      const g = c.getContext("2d");
      if (!g) return;
      const ratio = Math.min(size / (img.naturalWidth || size), size / (img.naturalHeight || size));
      const dw = (img.naturalWidth || size) * ratio;
      const dh = (img.naturalHeight || size) * ratio;
      g.drawImage(img, (size - dw) / 2, (size - dh) / 2, dw, dh);
      this.textures.set(url, Texture.from(c));
      for (const st of this.stickers.values()) this.applyTexture(st);
      this.backDirty = true;
      this.kick();
    };
    img.onerror = () => console.warn(`venue: sticker image ${url} failed to load`);
    // Detached images loading during page load can hold up the load event: start after it.
    if (document.readyState === "complete") img.src = url;
    else window.addEventListener("load", () => (img.src = url), { once: true });
    return null;
  }

  private urlFor(stickerId: string): string {
    return this.defs.get(stickerId)?.url ?? `/stickers/default/${encodeURIComponent(stickerId)}.svg`;
  }

  private applyTexture(st: StickerSprite) {
    const t = this.texture(this.urlFor(st.v.stickerId));
    if (t && st.s.texture !== t) {
      st.s.texture = t;
      this.placeSprite(st);
    }
  }

  private stickerPx(): number {
    return Math.max(34, Math.min(76, Math.min(this.w, this.h) * 0.085));
  }

  private placeSprite(st: StickerSprite, pop = 1) {
    const s = st.s;
    s.position.set(st.v.x * this.w, st.v.y * this.h);
    s.rotation = (st.v.rotationDeg * Math.PI) / 180;
    const px = this.stickerPx() * Math.max(0.5, Math.min(2, st.v.scale));
    const tw = s.texture.width || 1;
    s.scale.set((px / tw) * pop);
  }

  setStickers(list: StickerView[]) {
    for (const st of this.stickers.values()) st.s.destroy();
    this.stickers.clear();
    this.stickerLayer.removeChildren();
    for (const v of list) this.addSticker(v, false);
    this.backDirty = true;
    this.kick();
  }

  addSticker(v: StickerView, animate = true) {
    if (this.stickers.has(v.id)) return;
    const s = new Sprite(Texture.EMPTY);
    s.anchor.set(0.5);
    const st: StickerSprite = { v, s, born: animate ? performance.now() : 0, dying: null };
    this.stickers.set(v.id, st);
    this.stickerLayer.addChild(s);
    this.applyTexture(st);
    this.placeSprite(st, animate ? 0.01 : 1);
    this.backDirty = true;
    this.kick();
  }

  removeStickers(ids: number[]) {
    const now = performance.now();
    for (const id of ids) {
      const st = this.stickers.get(id);
      if (st && st.dying === null) st.dying = now;
    }
    this.kick();
  }

  clearStickers() {
    const now = performance.now();
    for (const st of this.stickers.values()) if (st.dying === null) st.dying = now - 300;
    this.kick();
  }

  // ---------- cursors ----------

  private makeCursor(id: number, own: boolean): Cursor {
    if (this.cursors.size >= MAX_CURSORS) {
      // Forget the cursor that moved least recently.
      let oldest: Cursor | null = null;
      for (const c of this.cursors.values()) if (!c.own && (!oldest || c.lastMove < oldest.lastMove)) oldest = c;
      if (oldest) this.dropCursor(oldest);
    }
    const hue = own ? 190 : hueOf(id);
    const color = hsl(hue, 95, 62);
    const g = new Graphics();
    const head = new Sprite(this.glow);
    head.anchor.set(0.5);
    head.tint = color;
    head.scale.set(0.62);
    const core = new Sprite(this.glow);
    core.anchor.set(0.5);
    core.scale.set(0.16);
    this.trailLayer.addChild(g, head, core);
    const c: Cursor = {
      id,
      tx: 0,
      ty: 0,
      x: 0,
      y: 0,
      trail: [],
      lastMove: performance.now(),
      color,
      head,
      core,
      g,
      label: null,
      name: "",
      own,
    };
    this.cursors.set(id, c);
    return c;
  }

  private dropCursor(c: Cursor) {
    c.g.destroy();
    c.head.destroy();
    c.core.destroy();
    c.label?.destroy();
    this.cursors.delete(c.id);
  }

  /** Another user's cursor moved (arrives once per tick; drawn smoothly in between). */
  cursor(id: number, x: number, y: number) {
    if (!this.ready) return;
    let c = this.cursors.get(id);
    const fresh = !c;
    c ??= this.makeCursor(id, false);
    c.tx = x;
    c.ty = y;
    if (fresh) {
      c.x = x;
      c.y = y;
    }
    c.lastMove = performance.now();
    this.kick();
  }

  /** Our own pointer: drawn where it is right now, no round trip. */
  ownCursor(x: number, y: number) {
    if (!this.ready) return;
    const c = this.cursors.get(-1) ?? this.makeCursor(-1, true);
    c.tx = c.x = x;
    c.ty = c.y = y;
    c.lastMove = performance.now();
    this.kick();
  }

  hideOwnCursor() {
    this.removeCursor(-1);
  }

  removeCursor(id: number) {
    const c = this.cursors.get(id);
    if (c) this.dropCursor(c);
    this.frontDirty = true;
    this.kick();
  }

  clearCursors() {
    for (const c of [...this.cursors.values()]) if (!c.own) this.dropCursor(c);
    this.frontDirty = true;
    this.kick();
  }

  private updateLabel(c: Cursor) {
    if (c.own) return;
    const name = this.nameOf(c.id);
    if (name === c.name) return;
    c.name = name;
    if (!name) {
      c.label?.destroy();
      c.label = null;
      return;
    }
    if (!c.label) {
      c.label = new Text({
        text: name,
        style: {
          fontFamily: "system-ui, sans-serif",
          fontSize: 11,
          fontWeight: "600",
          fill: c.color,
          dropShadow: { color: 0x000000, alpha: 0.8, blur: 3, distance: 0 },
        },
        resolution: Math.min(window.devicePixelRatio || 1, 2),
      });
      this.labelLayer.addChild(c.label);
    } else {
      c.label.text = name;
    }
  }

  // ---------- fireworks ----------

  firework(x: number, y: number, hue: number) {
    if (!this.ready) return;
    const s = this.sprite();
    s.tint = hsl(hue, 90, 75);
    s.scale.set(0.35);
    const rx = x * this.w;
    this.rockets.push({ x: rx, y0: this.h + 10, y1: y * this.h, age: 0, dur: 0.45, hue, s });
    this.kick();
  }

  private sprite(): Sprite {
    const s = this.pool.pop() ?? new Sprite(this.glow);
    s.anchor.set(0.5);
    s.alpha = 1;
    s.visible = true;
    this.sparkLayer.addChild(s);
    return s;
  }

  private release(s: Sprite) {
    s.visible = false;
    this.sparkLayer.removeChild(s);
    this.pool.push(s);
  }

  private burst(x: number, y: number, hue: number) {
    const scale = Math.max(0.6, Math.min(1.6, Math.min(this.w, this.h) / 600));
    const n = Math.min(64, MAX_PARTICLES - this.particles.length);
    // A flash.
    if (n > 0) {
      const s = this.sprite();
      s.tint = hsl(hue, 100, 85);
      this.particles.push({ s, x, y, vx: 0, vy: 0, age: 0, life: 0.28, size: 3.2 * scale, gravity: 0 });
    }
    for (let i = 1; i < n; i++) {
      const a = (i / n) * Math.PI * 2 + Math.random() * 0.2;
      const sp = (140 + Math.random() * 150) * scale;
      const s = this.sprite();
      const white = Math.random() < 0.15;
      s.tint = white ? 0xffffff : hsl((hue + (Math.random() * 50 - 25) + 360) % 360, 100, 60 + Math.random() * 15);
      this.particles.push({
        s,
        x,
        y,
        vx: Math.cos(a) * sp,
        vy: Math.sin(a) * sp,
        age: 0,
        life: 0.9 + Math.random() * 0.7,
        size: (0.22 + Math.random() * 0.18) * scale,
        gravity: 120 * scale,
      });
    }
  }

  // ---------- the frame loop ----------

  /** Makes sure a frame is coming. */
  private kick() {
    if (!this.ready || this.raf) return;
    this.last = performance.now();
    this.raf = requestAnimationFrame((t) => this.frame(t));
  }

  private frame(now: number) {
    this.raf = 0;
    const dt = Math.min(0.05, Math.max(0, (now - this.last) / 1000));
    this.last = now;
    let busy = false;

    // Stickers: pop in, fade out.
    for (const st of this.stickers.values()) {
      if (st.dying !== null) {
        const t = (now - st.dying) / 600;
        if (t >= 1) {
          st.s.destroy();
          this.stickers.delete(st.v.id);
        } else {
          st.s.alpha = 1 - t;
          this.placeSprite(st, 1 + t * 0.25);
          busy = true;
        }
        this.backDirty = true;
      } else if (st.born) {
        const t = (now - st.born) / 380;
        if (t >= 1) {
          st.born = 0;
          this.placeSprite(st, 1);
        } else {
          this.placeSprite(st, Math.max(0.01, easeOutBack(t)));
          busy = true;
        }
        this.backDirty = true;
      }
    }

    // Cursors: ease toward the latest tick's position, leave a fading trail.
    if (this.cursors.size) {
      const k = 1 - Math.exp(-dt / 0.07);
      for (const c of this.cursors.values()) {
        const moving = Math.abs(c.tx - c.x) * this.w > 0.3 || Math.abs(c.ty - c.y) * this.h > 0.3;
        if (moving) {
          c.x += (c.tx - c.x) * k;
          c.y += (c.ty - c.y) * k;
          busy = true;
        } else {
          c.x = c.tx;
          c.y = c.ty;
        }
        const px = c.x * this.w;
        const py = c.y * this.h;
        const lastP = c.trail[c.trail.length - 1];
        if (!lastP || Math.hypot(lastP.x - px, lastP.y - py) > 1) c.trail.push({ x: px, y: py, t: now });
        while (c.trail.length && now - c.trail[0].t > TRAIL_MS) c.trail.shift();
        if (c.trail.length > 1) busy = true;
        this.drawCursor(c, px, py, now);
      }
      this.frontDirty = true;
    }

    // Fireworks.
    for (let i = this.rockets.length - 1; i >= 0; i--) {
      const r = this.rockets[i];
      r.age += dt;
      const t = Math.min(1, r.age / r.dur);
      const e = 1 - Math.pow(1 - t, 2);
      const y = r.y0 + (r.y1 - r.y0) * e;
      r.s.position.set(r.x + Math.sin(r.age * 40) * 1.2, y);
      if (this.particles.length < MAX_PARTICLES && Math.random() < 0.8) {
        const s = this.sprite();
        s.tint = hsl(r.hue, 80, 80);
        this.particles.push({ s, x: r.x, y, vx: (Math.random() - 0.5) * 20, vy: 30, age: 0, life: 0.35, size: 0.14, gravity: 60 });
      }
      if (t >= 1) {
        this.release(r.s);
        this.rockets.splice(i, 1);
        this.burst(r.x, r.y1, r.hue);
      }
    }
    if (this.particles.length) {
      const drag = Math.exp(-dt * 1.6);
      let j = 0;
      for (const p of this.particles) {
        p.age += dt;
        if (p.age >= p.life) {
          this.release(p.s);
          continue;
        }
        p.vx *= drag;
        p.vy = p.vy * drag + p.gravity * dt;
        p.x += p.vx * dt;
        p.y += p.vy * dt;
        const f = 1 - p.age / p.life;
        p.s.position.set(p.x, p.y);
        p.s.alpha = p.gravity === 0 ? f : Math.min(1, f * 1.6) * (0.75 + 0.25 * Math.sin(p.age * 30 + p.x));
        p.s.scale.set(p.size * (p.gravity === 0 ? 1 + (1 - f) * 1.5 : 0.5 + 0.5 * f));
        this.particles[j++] = p;
      }
      this.particles.length = j;
    }
    if (this.rockets.length || this.particles.length) {
      busy = true;
      this.frontDirty = true;
    }

    if (this.backDirty && this.back) this.back.render(this.backStage);
    if (this.frontDirty && this.front) this.front.render(this.frontStage);
    this.backDirty = this.frontDirty = false;
    if (busy) this.kick();
  }

  private drawCursor(c: Cursor, px: number, py: number, now: number) {
    const g = c.g;
    g.clear();
    const n = c.trail.length;
    if (n > 1) {
      for (let i = 1; i < n; i++) {
        const a = c.trail[i - 1];
        const b = c.trail[i];
        const f = 1 - (now - b.t) / TRAIL_MS;
        if (f <= 0) continue;
        g.moveTo(a.x, a.y)
          .lineTo(b.x, b.y)
          .stroke({ width: 2 + 9 * f, color: c.color, alpha: 0.18 * f, cap: "round" });
        g.moveTo(a.x, a.y)
          .lineTo(b.x, b.y)
          .stroke({ width: 1 + 3 * f, color: c.color, alpha: 0.85 * f, cap: "round" });
      }
    }
    const idle = now - c.lastMove > IDLE_DIM_MS;
    c.head.position.set(px, py);
    c.core.position.set(px, py);
    c.head.alpha = idle ? 0.4 : 0.95;
    c.core.alpha = idle ? 0.5 : 1;
    this.updateLabel(c);
    if (c.label) {
      c.label.position.set(px + 9, py + 8);
      c.label.alpha = idle ? 0.45 : 0.9;
    }
  }
}
