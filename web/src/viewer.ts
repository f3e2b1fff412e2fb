// Viewer page (`/` and `/r/{room}`): one RTCPeerConnection with K = max_slots pairs of
// recvonly transceivers (video0, audio0, video1, audio1, …: the i-th video and i-th audio
// m-line carry stage slot i) plus the `venue` data channel, which brings protobuf
// `venue.v1.ServerMessage` frames. Stage switches arrive as a different source on the same
// track, so the page never renegotiates; it only re-lays out the tiles.
import "./style.css";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ClientMessageSchema,
  ProtocolVersion,
  ServerMessageSchema,
  type StageState,
} from "./gen/venue_pb";
import {
  $,
  backoffMs,
  deleteSession,
  errorMessage,
  getJson,
  h,
  postOffer,
  type SdpSession,
} from "./common";

/** One stage slot as the page shows it (same shape as `GET /api/rooms/{room}`). */
interface SlotView {
  index: number;
  streamer_id: number | null;
  name: string | null;
  live: boolean;
}

/** The stage as last received; exposed as `window.venue.state`. */
interface ViewState {
  title: string;
  layout: number;
  slots: SlotView[];
  viewer_count: number;
  /** `StageState.revision` from the data channel; null when the state came from HTTP. */
  revision: number | null;
  source: "http" | "datachannel";
}

interface RoomInfo {
  name: string;
  title: string;
  layout: number;
  max_slots: number;
  slots: { index: number; streamer_id: number | string | null; name: string | null; live: boolean }[];
  viewer_count: number;
}

/** Timings in `performance.now()` ms, for tests and the latency script. */
interface Timing {
  postStart: number | null;
  answerAt: number | null;
  connectedAt: number | null;
  /** First presented video frame per slot. */
  firstFrame: Record<number, number>;
}

interface VenueGlobal {
  pc: RTCPeerConnection | null;
  state: ViewState | null;
  room: string;
  maxSlots: number;
  timing: Timing;
  /** Number of WHEP POSTs this page made (a reconnect makes a new one). */
  posts: number;
  dc: RTCDataChannel | null;
}

function roomFromPath(): string {
  const m = /^\/r\/([^/]+)\/?$/.exec(location.pathname);
  if (m) {
    try {
      return decodeURIComponent(m[1]);
    } catch {
      return m[1];
    }
  }
  return new URLSearchParams(location.search).get("room") || "main";
}

const room = roomFromPath();
const apiRoom = `/api/rooms/${encodeURIComponent(room)}`;
const whepUrl = `/api/whep/${encodeURIComponent(room)}`;

const venue: VenueGlobal = {
  pc: null,
  state: null,
  room,
  maxSlots: 0,
  timing: { postStart: null, answerAt: null, connectedAt: null, firstFrame: {} },
  posts: 0,
  dc: null,
};
// Exposed for tests and the console.
(window as unknown as { venue: VenueGlobal }).venue = venue;

const titleEl = $("#title");
const statusEl = $("#status");
const viewersEl = $("#viewers");
const stageEl = $("#stage");
const unmuteBtn = $<HTMLButtonElement>("#unmute");

function setStatus(text: string, kind: "" | "ok" | "live" | "warn" | "err" = "") {
  statusEl.textContent = text;
  statusEl.className = `status ${kind}`;
}

// ---------- tiles ----------

interface Tile {
  root: HTMLDivElement;
  video: HTMLVideoElement;
  placeholder: HTMLDivElement;
  who: HTMLDivElement;
  what: HTMLDivElement;
  label: HTMLDivElement;
  labelName: HTMLSpanElement;
  /** A video frame has been presented since the current connection started. */
  playing: boolean;
}

const tiles: Tile[] = [];
let userMuted = true;

function buildTiles(k: number) {
  stageEl.replaceChildren();
  tiles.length = 0;
  for (let i = 0; i < k; i++) {
    const video = h("video", { "data-slot": i, autoplay: true, playsinline: true });
    video.muted = true;
    const who = h("div", { class: "who" });
    const what = h("div", { class: "what" });
    const placeholder = h("div", { class: "placeholder" }, who, what);
    const labelName = h("span", { class: "name" });
    const label = h("div", { class: "label" }, h("span", { class: "badge live", text: "live" }), labelName);
    const root = h("div", { class: "tile", "data-slot": i }, video, placeholder, label);
    const tile: Tile = { root, video, placeholder, who, what, label, labelName, playing: false };
    tiles.push(tile);
    stageEl.append(root);
  }
}

/** Columns for a layout: one row up to 4 tiles, then two or three rows. */
function gridFor(n: number): { cols: number; rows: number } {
  const cols = n <= 4 ? n : n <= 6 ? 3 : n <= 8 ? 4 : 3;
  return { cols, rows: Math.ceil(n / cols) };
}

function renderTiles() {
  const s = venue.state;
  const layout = Math.max(1, Math.min(s?.layout || 1, tiles.length || 1));
  const { cols, rows } = gridFor(layout);
  stageEl.style.setProperty("--cols", String(cols));
  stageEl.style.setProperty("--rows", String(rows));
  tiles.forEach((t, i) => {
    const slot = s?.slots.find((x) => x.index === i);
    const shown = i < layout;
    t.root.hidden = !shown;
    const hasStreamer = !!slot && slot.streamer_id !== null;
    const live = hasStreamer && !!slot?.live;
    const showVideo = live && t.playing;
    t.placeholder.hidden = showVideo;
    t.label.hidden = !showVideo;
    t.labelName.textContent = slot?.name ?? "";
    t.who.textContent = hasStreamer ? (slot?.name ?? `Streamer ${slot?.streamer_id}`) : "empty";
    t.what.textContent = !hasStreamer ? `slot ${i + 1}` : live ? "starting…" : "offline";
    // Hidden tiles stay silent.
    t.video.muted = userMuted || !shown;
  });
}

function applyState(next: ViewState) {
  venue.state = next;
  titleEl.textContent = next.title || room;
  document.title = next.title ? `${next.title} · Venue` : "Venue";
  viewersEl.textContent = `${next.viewer_count} watching`;
  renderTiles();
}

function fromRoomInfo(info: RoomInfo): ViewState {
  return {
    title: info.title,
    layout: info.layout,
    viewer_count: info.viewer_count,
    slots: info.slots.map((s) => ({
      index: s.index,
      streamer_id: s.streamer_id === null || s.streamer_id === undefined ? null : Number(s.streamer_id),
      name: s.name ?? null,
      live: !!s.live,
    })),
    revision: null,
    source: "http",
  };
}

function fromProto(s: StageState): ViewState {
  return {
    title: s.title,
    layout: s.layout,
    viewer_count: s.viewerCount,
    slots: s.slots.map((x) => ({
      index: x.index,
      streamer_id: x.streamerId === 0n ? null : Number(x.streamerId),
      name: x.name === "" ? null : x.name,
      live: x.live,
    })),
    revision: Number(s.revision),
    source: "datachannel",
  };
}

unmuteBtn.addEventListener("click", () => {
  userMuted = !userMuted;
  unmuteBtn.textContent = userMuted ? "Unmute" : "Mute";
  unmuteBtn.classList.toggle("primary", userMuted);
  renderTiles();
  for (const t of tiles) t.video.play().catch(() => {});
});

// ---------- stage state over the data channel, HTTP as fallback ----------

/** Revision of the last StageState on the current connection (-1: none yet). */
let lastRevision = -1;
/** performance.now() of the last data-channel StageState. */
let lastDcStateAt = -Infinity;

function onServerMessage(data: ArrayBuffer) {
  let msg;
  try {
    msg = fromBinary(ServerMessageSchema, new Uint8Array(data));
  } catch (e) {
    console.warn("venue: bad server message", e);
    return;
  }
  switch (msg.body.case) {
    case "stage": {
      const rev = Number(msg.body.value.revision);
      if (rev < lastRevision) return;
      lastRevision = rev;
      lastDcStateAt = performance.now();
      applyState(fromProto(msg.body.value));
      break;
    }
    case "notice":
      console.warn("venue notice", msg.body.value.code, msg.body.value.text);
      break;
    case "hello":
    default:
      break;
  }
}

async function poll() {
  const started = performance.now();
  try {
    const info = await getJson<RoomInfo>(apiRoom);
    const next = fromRoomInfo(info);
    if (lastDcStateAt > started && venue.state) {
      // The data channel spoke while this request was in flight: it is at least as fresh.
      return;
    }
    if (venue.state?.source === "datachannel" && venue.dc?.readyState === "open") {
      // Keep the revision of the data channel's state; HTTP fetched after it is not older.
      next.revision = venue.state.revision;
      next.source = "datachannel";
    }
    applyState(next);
  } catch {
    // The media connection reports its own trouble; polling just tries again.
  }
}

// ---------- WebRTC ----------

let generation = 0;
let session: SdpSession | null = null;
let attempt = 0;
let retryTimer: ReturnType<typeof setTimeout> | null = null;
let watchdog: ReturnType<typeof setTimeout> | null = null;

function teardown() {
  if (watchdog) clearTimeout(watchdog);
  watchdog = null;
  deleteSession(session);
  session = null;
  venue.dc = null;
  if (venue.pc) {
    venue.pc.onconnectionstatechange = null;
    venue.pc.close();
  }
}

function scheduleReconnect(reason: string) {
  if (retryTimer) return;
  generation++; // events of the old connection are stale from now on
  teardown();
  const delay = backoffMs(attempt++);
  setStatus(`reconnecting in ${delay / 1000}s (${reason})`, "warn");
  retryTimer = setTimeout(() => {
    retryTimer = null;
    void connect();
  }, delay);
}

async function connect() {
  const gen = ++generation;
  const k = venue.maxSlots;
  setStatus(attempt ? "reconnecting…" : "connecting…");
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  venue.pc = pc;
  venue.timing = { postStart: null, answerAt: null, connectedAt: null, firstFrame: {} };
  lastRevision = -1;

  for (let i = 0; i < k; i++) {
    const v = pc.addTransceiver("video", { direction: "recvonly" });
    const a = pc.addTransceiver("audio", { direction: "recvonly" });
    const tile = tiles[i];
    tile.playing = false;
    tile.video.srcObject = new MediaStream([v.receiver.track, a.receiver.track]);
    tile.video.play().catch(() => {});
    watchFirstFrame(tile.video, i, gen);
  }
  renderTiles();

  const dc = pc.createDataChannel("venue");
  dc.binaryType = "arraybuffer";
  venue.dc = dc;
  dc.onopen = () => {
    const hello = create(ClientMessageSchema, {
      body: { case: "hello", value: { protocolVersion: ProtocolVersion.CURRENT } },
    });
    try {
      dc.send(toBinary(ClientMessageSchema, hello));
    } catch {
      // channel closed again already
    }
  };
  dc.onmessage = (ev) => {
    if (gen !== generation) return;
    if (ev.data instanceof ArrayBuffer) onServerMessage(ev.data);
  };
  // The server ends a session by closing its channel (or the whole association dies with it).
  dc.onclose = () => {
    if (gen === generation) scheduleReconnect("session closed");
  };

  pc.onconnectionstatechange = () => {
    if (gen !== generation) return;
    const st = pc.connectionState;
    if (st === "connected") {
      // Back-off resets only once a connection has held for a while.
      setTimeout(() => {
        if (gen === generation && pc.connectionState === "connected") attempt = 0;
      }, 10000);
      if (watchdog) clearTimeout(watchdog);
      watchdog = null;
      venue.timing.connectedAt ??= performance.now();
      setStatus("connected", "ok");
    } else if (st === "failed") {
      scheduleReconnect("connection failed");
    } else if (st === "disconnected") {
      setStatus("connection interrupted…", "warn");
      if (watchdog) clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        if (gen === generation && pc.connectionState !== "connected") scheduleReconnect("connection lost");
      }, 3000);
    }
  };

  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (gen !== generation) return;
    venue.timing.postStart = performance.now();
    venue.posts++;
    // ICE-lite server: it learns our address from our connectivity checks, so the offer goes
    // out right away without waiting for candidates.
    const s = await postOffer(whepUrl, pc.localDescription?.sdp ?? offer.sdp ?? "");
    if (gen !== generation) {
      deleteSession(s);
      return;
    }
    session = s;
    venue.timing.answerAt = performance.now();
    await pc.setRemoteDescription({ type: "answer", sdp: s.answer });
    watchdog = setTimeout(() => {
      if (gen === generation && pc.connectionState !== "connected") scheduleReconnect("no connection");
    }, 10000);
  } catch (e) {
    if (gen !== generation) return;
    console.warn("venue: WHEP failed", e);
    scheduleReconnect(errorMessage(e));
  }
}

function watchFirstFrame(video: HTMLVideoElement, slot: number, gen: number) {
  const mark = () => {
    if (gen !== generation) return;
    venue.timing.firstFrame[slot] ??= performance.now();
    const t = tiles[slot];
    if (!t.playing) {
      t.playing = true;
      renderTiles();
    }
  };
  if ("requestVideoFrameCallback" in video) {
    video.requestVideoFrameCallback(() => mark());
  } else {
    (video as HTMLVideoElement).addEventListener("loadeddata", mark, { once: true });
  }
}

window.addEventListener("pagehide", () => {
  deleteSession(session);
  session = null;
});

async function main() {
  setStatus("loading room…");
  let info: RoomInfo | null = null;
  for (let n = 0; !info; n++) {
    try {
      info = await getJson<RoomInfo>(apiRoom);
    } catch (e) {
      const delay = backoffMs(n);
      setStatus(`${errorMessage(e)} — retrying in ${delay / 1000}s`, "err");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  venue.maxSlots = Math.max(1, Math.min(9, info.max_slots || info.slots.length || 1));
  buildTiles(venue.maxSlots);
  applyState(fromRoomInfo(info));
  void connect();
  setInterval(poll, 4000);
}

void main();
