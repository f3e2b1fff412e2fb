// Viewer page: the living room around the stage. The dock (sticker palette, fireworks button,
// hint), the room's settings as the room shows them (interactivity mode, background colour,
// sticker set), the PixiJS layers (fx.ts) fed from the room's events (cursors, stickers,
// fireworks), the pointer and keyboard (own cursor, a click on the floor drops a sticker, F
// launches a firework, both kept under the server's rates) and the chat panel's toggle.
// Coordinates sent to the server are normalized to the room area (0..1 on both axes).
import { $, h } from "../common";
import type { ChatPanel } from "../chat";
import type { RoomFx } from "../fx";
import type { Mode, RoomClient, SettingsView } from "../room";

export class LivingRoom {
  private readonly dock = $("#dock");
  private readonly palette = $("#palette");
  private readonly hint = $("#hint");
  private selectedSticker = localStorage.getItem("venue.sticker") ?? "heart";
  /** Last pointer position in normalized room coordinates. */
  private pointer: { x: number; y: number } | null = null;
  private readonly stickerTimes: number[] = [];
  private lastFirework = 0;

  /** Wires the room area `roomEl`, the dock and the chat toggle; draws the room's events. */
  constructor(
    private readonly client: RoomClient,
    private readonly fx: RoomFx,
    private readonly roomEl: HTMLElement,
    chat: ChatPanel,
  ) {
    fx.nameOf = (id) => client.state.users[id]?.name ?? "";
    client.on({
      snapshot() {
        fx.clearCursors();
        fx.setStickers(client.state.stickers);
      },
      settings: (s) => this.applySettings(s),
      cursor: (id, x, y) => fx.cursor(id, x, y),
      userLeft: (id) => fx.removeCursor(id),
      stickerPlaced: (st) => fx.addSticker(st),
      stickersRemoved: (ids) => fx.removeStickers(ids),
      stickersCleared: () => fx.clearStickers(),
      firework(f) {
        // Ours was drawn when launched.
        if (f.userId !== client.state.me?.userId) fx.firework(f.x, f.y, f.hue);
      },
      connection: (up) => {
        if (!up) fx.clearCursors();
        this.renderDock();
      },
    });

    roomEl.addEventListener("pointermove", (ev) => {
      if (ev.pointerType === "touch" && !ev.isPrimary) return;
      const pointer = this.norm(ev);
      this.pointer = pointer;
      if (!this.cursorsOn()) return;
      fx.ownCursor(pointer.x, pointer.y);
      client.moveCursor(pointer.x, pointer.y);
    });
    roomEl.addEventListener("pointerleave", () => fx.hideOwnCursor());
    roomEl.addEventListener("click", (ev) => this.dropSticker(ev));
    $("#firework").addEventListener("click", () => this.launchFirework(null));
    window.addEventListener("keydown", (ev) => {
      if (ev.key !== "f" && ev.key !== "F") return;
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
      const t = ev.target as HTMLElement | null;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
      this.launchFirework(this.pointer);
    });

    // Chat toggle: hides the panel on a desktop, shows it on a phone.
    const chatToggle = $<HTMLButtonElement>("#chattoggle");
    const phone = window.matchMedia("(max-width: 760px)");
    const setChatOpen = (open: boolean) => {
      document.body.classList.toggle("chat-closed", !open);
      chatToggle.setAttribute("aria-pressed", String(open));
      chat.setPanelHidden(!open);
    };
    chatToggle.addEventListener("click", () => setChatOpen(document.body.classList.contains("chat-closed")));
    setChatOpen(true);
    void phone;
  }

  private mode(): Mode {
    return this.client.state.settings.mode;
  }

  private cursorsOn(): boolean {
    return this.client.state.joined && (this.mode() === "everything" || this.mode() === "stickers_off");
  }

  private stickersOn(): boolean {
    return this.client.state.joined && this.mode() === "everything";
  }

  /** The room's settings on the page: mode, background colour, sticker set and palette, dock. */
  applySettings(s: SettingsView) {
    const { fx, palette } = this;
    document.body.dataset.mode = s.mode;
    document.body.style.setProperty("--room-bg", s.backgroundColor || "");
    if (!s.backgroundColor) document.body.style.removeProperty("--room-bg");
    fx.setMode(s.mode);
    fx.setStickerSet(s.stickerSet.stickers);
    const ids = s.stickerSet.stickers.map((d) => d.id);
    if (!ids.includes(this.selectedSticker)) this.selectedSticker = ids[0] ?? "";
    palette.replaceChildren(
      ...s.stickerSet.stickers.map((d) =>
        h(
          "button",
          {
            class: `pick${d.id === this.selectedSticker ? " on" : ""}`,
            role: "radio",
            "aria-checked": String(d.id === this.selectedSticker),
            title: d.label,
            "data-sticker": d.id,
            onclick: () => {
              this.selectedSticker = d.id;
              localStorage.setItem("venue.sticker", d.id);
              for (const b of palette.querySelectorAll<HTMLElement>(".pick")) {
                const on = b.dataset.sticker === d.id;
                b.classList.toggle("on", on);
                b.setAttribute("aria-checked", String(on));
              }
            },
          },
          h("img", { src: d.url, alt: d.label, draggable: "false", loading: "lazy" }),
        ),
      ),
    );
    this.renderDock();
  }

  private renderDock() {
    const { dock, palette, hint } = this;
    const m = this.mode();
    dock.hidden = !this.client.state.joined || m === "chat_only" || m === "quiet";
    palette.hidden = m !== "everything";
    hint.hidden = dock.hidden || localStorage.getItem("venue.hinted") === "1";
    hint.textContent = m === "everything" ? "click the floor to drop a sticker · F for fireworks" : "F for fireworks";
  }

  /** A pointer position in normalized room coordinates (0..1). */
  private norm(ev: { clientX: number; clientY: number }): { x: number; y: number } {
    const r = this.roomEl.getBoundingClientRect();
    return {
      x: Math.min(1, Math.max(0, (ev.clientX - r.left) / Math.max(1, r.width))),
      y: Math.min(1, Math.max(0, (ev.clientY - r.top) / Math.max(1, r.height))),
    };
  }

  /** A click on the floor (the room area outside the tiles and the dock) drops a sticker. */
  private dropSticker(ev: MouseEvent) {
    if (!this.stickersOn() || !onFloor(ev.target) || !this.selectedSticker) return;
    const stickerTimes = this.stickerTimes;
    const now = performance.now();
    while (stickerTimes.length && now - stickerTimes[0] > 1000) stickerTimes.shift();
    if (stickerTimes.length >= 4) return; // the server allows 5/s
    stickerTimes.push(now);
    const p = this.norm(ev);
    const rot = Math.round((Math.random() * 2 - 1) * 22);
    const scale = Math.round((0.85 + Math.random() * 0.4) * 100) / 100;
    this.client.placeSticker(this.selectedSticker, p.x, p.y, rot, scale);
    localStorage.setItem("venue.hinted", "1");
    this.hint.hidden = true;
  }

  private launchFirework(at: { x: number; y: number } | null) {
    if (!this.cursorsOn()) return;
    const now = performance.now();
    if (now - this.lastFirework < 1000) return; // the server allows 1/s
    this.lastFirework = now;
    const p = at ?? { x: 0.15 + Math.random() * 0.7, y: 0.12 + Math.random() * 0.35 };
    const hue = Math.floor(Math.random() * 360);
    this.fx.firework(p.x, p.y, hue);
    this.client.launchFirework(p.x, p.y, hue);
  }
}

/** The floor: the room area outside the tiles and the dock. */
function onFloor(target: EventTarget | null): boolean {
  return target instanceof Element && !target.closest(".tile, .dock, button, a, input, select, video");
}
