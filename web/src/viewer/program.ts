// Viewer page, HLS mode: the room's LL-HLS program (the stage already composed into one
// picture) in one tile-sized <video> where the slot tiles were, played with hls.js in
// low-latency mode (Safari: native HLS). While the program is not running yet (it starts on
// the first playlist request) or the network drops, the player starts over after a back-off.
import { backoffMs, errorMessage, h } from "../common";
import type { StatusKind, VenueGlobal } from "./venue";

interface ProgramView {
  root: HTMLDivElement;
  video: HTMLVideoElement;
  placeholder: HTMLDivElement;
  what: HTMLDivElement;
  playing: boolean;
}

/** What the program player needs of the page. */
export interface ProgramPage {
  setStatus(text: string, kind?: StatusKind): void;
  /** The room's title, shown until the program plays. */
  title(): string;
  /** The viewer muted the page. */
  muted(): boolean;
}

/** The program video and its hls.js player; sets `venue.program`, `venue.hls`, `venue.hlsUrl`. */
export class Program {
  private view: ProgramView | null = null;
  private attempt = 0;

  constructor(
    private readonly venue: VenueGlobal,
    private readonly stageEl: HTMLElement,
    private readonly page: ProgramPage,
  ) {}

  /** A video frame of the program has played. */
  get playing(): boolean {
    return this.view?.playing ?? false;
  }

  /** One tile-sized video for the composed program, where the slot tiles were. */
  build() {
    const { stageEl, venue, page } = this;
    const video = h("video", { "data-program": "", autoplay: true, playsinline: true });
    video.muted = page.muted();
    const who = h("div", { class: "who" });
    const what = h("div", { class: "what", text: "starting the HLS program…" });
    const placeholder = h("div", { class: "placeholder" }, who, what);
    const root = h("div", { class: "tile program" }, video, placeholder);
    this.view = { root, video, placeholder, what, playing: false };
    stageEl.replaceChildren(root);
    stageEl.classList.add("hls");
    venue.program = video;
    video.addEventListener("playing", () => {
      if (!this.view) return;
      this.view.playing = true;
      this.render();
      page.setStatus("playing", "ok");
    });
    video.addEventListener("waiting", () => page.setStatus("buffering…", "warn"));
    this.render();
  }

  render() {
    this.stageEl.style.setProperty("--cols", "1");
    this.stageEl.style.setProperty("--rows", "1");
    if (!this.view) return;
    const p = this.view;
    p.placeholder.hidden = p.playing;
    const who = p.placeholder.querySelector(".who");
    if (who) who.textContent = this.page.title();
    p.video.muted = this.page.muted();
  }

  /** Plays `url` with hls.js (low-latency mode), or natively where MSE is missing (Safari on iOS). */
  async start(url: string) {
    const { venue, page } = this;
    const video = this.view?.video;
    if (!video) return;
    venue.hlsUrl = url;
    page.setStatus("loading the HLS program…");
    let Hls: typeof import("hls.js/light").default;
    try {
      Hls = (await import("hls.js/light")).default;
    } catch (e) {
      page.setStatus(`could not load the HLS player: ${errorMessage(e)}`, "err");
      return;
    }
    if (!Hls.isSupported()) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.src = url;
        video.play().catch(() => {});
      } else {
        page.setStatus("this browser cannot play HLS", "err");
      }
      return;
    }
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
    venue.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      this.attempt = 0;
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_ev, data) => {
      if (!data.fatal || venue.hls !== hls) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      // The program is not running yet (it starts on the first playlist request) or the
      // network dropped: start over after a back-off.
      hls.destroy();
      venue.hls = null;
      if (this.view) {
        this.view.playing = false;
        this.view.what.textContent = "waiting for the HLS program…";
        this.render();
      }
      const delay = backoffMs(this.attempt++);
      page.setStatus(`waiting for the HLS program — retrying in ${delay / 1000}s`, "warn");
      setTimeout(() => void this.start(url), delay);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  /** Leaves HLS: the player and the program video go; the stage is empty again. */
  leave() {
    const { venue } = this;
    venue.hls?.destroy();
    venue.hls = null;
    venue.hlsUrl = null;
    if (this.view) {
      this.view.video.removeAttribute("src");
      this.view.video.load();
    }
    this.view = null;
    venue.program = null;
    this.stageEl.classList.remove("hls");
  }
}
