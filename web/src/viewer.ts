// Viewer page (`/` and `/r/{room}`): one RTCPeerConnection with K = max_slots pairs of
// recvonly transceivers (video0, audio0, video1, audio1, …: the i-th video and i-th audio
// m-line carry stage slot i) plus two data channels, `venue` (reliable, ordered) and
// `venue-lossy` (unordered, maxRetransmits 0), which carry the room's protobuf frames
// (`venue.v1`, see room.ts). Stage switches arrive as a different source on the same track, so
// the page never renegotiates; it only re-lays out the tiles.
//
// The living room around the stage: PixiJS layers (fx.ts) for cursors, stickers and fireworks,
// the chat panel (chat.ts). `?transport=ws` (or a browser without WebRTC) joins the room over
// the WebSocket instead of the data channels; `&media=0` with it skips the stage video.
// `?name=` joins with that display name without asking; `?fx=0` draws nothing (load tests).
//
// Overflow (issue 5): the page first asks `GET /api/rooms/{room}/join`. In `webrtc` mode it does
// the above. In `hls` mode (the room is at its WebRTC capacity or the server is busy) it plays
// the room's LL-HLS program — the stage already composed into one picture — with hls.js in
// low-latency mode in one <video> filling the stage area (Safari: native HLS), and the living
// room goes over the WebSocket. A WebRTC viewer whose WHEP offer is refused (503), whose ICE
// fails or never connects, or who gets no video from a live stage within MEDIA_TIMEOUT_MS falls
// back to HLS by itself; one sent to HLS for capacity or load asks `/join` again every ~20 s
// and goes back to WebRTC when a place is free. A badge in the header says which mode the page is in. `?mode=hls` /
// `?mode=webrtc` force a mode (no /join; forced WebRTC never falls back). `?ice=relay` connects
// through the TURN servers of `GET /api/ice-servers` only (checking a TURN setup; tests).
import "./style.css";
import type { StageState } from "./gen/venue_pb";
import {
  $,
  backoffMs,
  deleteSession,
  errorMessage,
  getJson,
  h,
  HttpError,
  postOffer,
  type SdpSession,
  rtcConfiguration,
  mediaPath,
} from "./common";
import { RoomClient, type Mode, type RoomState, type SettingsView } from "./room";
import { RoomFx } from "./fx";
import { ChatPanel } from "./chat";

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

/** `GET /api/rooms/{room}/join`. */
interface JoinAnswer {
  mode: WatchMode;
  reason: string;
  cause?: "capacity" | "cpu" | null;
  webrtc_viewers?: number;
  max_webrtc_viewers?: number;
  hls_url: string;
  whep_url: string;
  ws_url: string;
}

/** How the page watches the stage. */
type WatchMode = "webrtc" | "hls";

/** The parts of an hls.js instance the page and tests use. */
interface HlsPlayer {
  readonly url: string | null;
  readonly latency: number;
  readonly media: HTMLMediaElement | null;
  destroy(): void;
}

interface VenueGlobal {
  /** `webrtc` or `hls` once decided; null before. */
  mode: WatchMode | null;
  /** The server's answer to `/join` (or the page's own when forced or unreachable). */
  join: JoinAnswer | null;
  /** Why a WebRTC attempt fell back to HLS; null when it did not. */
  fallback: string | null;
  /** HLS mode: the hls.js player (null with native HLS or between retries), its URL, the video. */
  hls: HlsPlayer | null;
  hlsUrl: string | null;
  program: HTMLVideoElement | null;
  pc: RTCPeerConnection | null;
  /** The living room's state (users, cursors, stickers, chat, notices…). */
  room: RoomState;
  roomName: string;
  client: RoomClient;
  fx: RoomFx;
  state: ViewState | null;
  maxSlots: number;
  timing: Timing;
  /** Number of WHEP POSTs this page made (a reconnect makes a new one). */
  posts: number;
  dc: RTCDataChannel | null;
  lossy: RTCDataChannel | null;
  /** WebRTC: how the media reaches us (`mediaPath`: udp, tcp, turn/udp, turn/tcp, turn/tls). */
  path: string | null;
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

const params = new URLSearchParams(location.search);
const hasWebRTC = typeof RTCPeerConnection === "function";
/** `?mode=hls|webrtc`: skip `/join` and watch this way (tests, debugging). */
const forcedMode: WatchMode | null =
  params.get("mode") === "hls" ? "hls" : params.get("mode") === "webrtc" ? "webrtc" : null;
/** Room events over the WebSocket instead of the data channels (always in HLS mode). */
let useWs = params.get("transport") === "ws" || !hasWebRTC;
/** Stage video (WHEP); `?transport=ws&media=0` watches the room without it. */
const useMedia = hasWebRTC && !(useWs && params.get("media") === "0");
const ADMIN_TOKEN_STORAGE = "venue.adminToken";

const client = new RoomClient(room);
const fx = new RoomFx($("#room"), $("#fxback"), $("#fxfront"));

const venue: VenueGlobal = {
  mode: null,
  join: null,
  fallback: null,
  hls: null,
  hlsUrl: null,
  program: null,
  pc: null,
  state: null,
  room: client.state,
  roomName: room,
  client,
  fx,
  maxSlots: 0,
  timing: { postStart: null, answerAt: null, connectedAt: null, firstFrame: {} },
  path: null,
  posts: 0,
  dc: null,
  lossy: null,
};
// Exposed for tests and the console.
(window as unknown as { venue: VenueGlobal }).venue = venue;

const titleEl = $("#title");
const statusEl = $("#status");
const viewersEl = $("#viewers");
const stageEl = $("#stage");
const unmuteBtn = $<HTMLButtonElement>("#unmute");
const nowPlayingEl = $("#nowplaying");
const roomEl = $("#room");
const modeBadge = $("#modebadge");

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
  if (venue.mode === "hls") {
    renderProgram();
    return;
  }
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
  renderHeader();
  renderTiles();
}

function renderHeader() {
  const s = client.state.settings;
  const title = s.title || venue.state?.title || room;
  titleEl.textContent = title;
  document.title = `${title} · Venue`;
  nowPlayingEl.hidden = !s.nowPlaying;
  nowPlayingEl.textContent = s.nowPlaying;
  const n = client.state.joined ? client.state.userCount : (venue.state?.viewer_count ?? 0);
  viewersEl.textContent = `${n} here`;
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
  venue.program?.play().catch(() => {});
});

// ---------- stage state over the data channel, HTTP as fallback ----------

/** Revision of the last StageState on the current connection (-1: none yet). */
let lastRevision = -1;
/** performance.now() of the last data-channel StageState. */
let lastDcStateAt = -Infinity;

function onStage(st: StageState) {
  const rev = Number(st.revision);
  if (rev < lastRevision) return;
  lastRevision = rev;
  lastDcStateAt = performance.now();
  applyState(fromProto(st));
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
    if (venue.state?.source === "datachannel" && client.state.joined) {
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
  venue.lossy = null;
  if (venue.pc) {
    venue.pc.onconnectionstatechange = null;
    venue.pc.close();
  }
}

function scheduleReconnect(reason: string) {
  if (retryTimer || client.state.ended || venue.mode !== "webrtc") return;
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
  const config = await rtcConfiguration();
  if (gen !== generation) return;
  const pc = new RTCPeerConnection(config);
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

  if (!useWs) {
    // Both channels before the offer, so the SCTP m-line carries them.
    const dc = pc.createDataChannel("venue");
    const lossy = pc.createDataChannel("venue-lossy", { ordered: false, maxRetransmits: 0 });
    venue.dc = dc;
    venue.lossy = lossy;
    client.attachDataChannels(dc, lossy);
    // The server ends a session by closing its channel (or the whole association dies with it).
    dc.addEventListener("close", () => {
      if (gen === generation) scheduleReconnect("session closed");
    });
  }

  pc.onconnectionstatechange = () => {
    if (gen !== generation) return;
    const st = pc.connectionState;
    if (st === "connected") {
      everConnected = true;
      watchMedia(gen);
      // Back-off resets only once a connection has held for a while.
      setTimeout(() => {
        if (gen === generation && pc.connectionState === "connected") attempt = iceFailures = 0;
      }, 10000);
      if (watchdog) clearTimeout(watchdog);
      watchdog = null;
      venue.timing.connectedAt ??= performance.now();
      setStatus("connected", "ok");
      void mediaPath(pc).then((path) => {
        if (gen !== generation) return;
        venue.path = path;
        renderBadge(modeBadge.title);
      });
    } else if (st === "failed") {
      webrtcFailed("ICE failed");
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
      if (gen !== generation || pc.connectionState === "connected") return;
      webrtcFailed("no WebRTC connection in 10 s");
    }, 10000);
  } catch (e) {
    if (gen !== generation) return;
    console.warn("venue: WHEP failed", e);
    if (e instanceof HttpError && e.status === 503 && forcedMode !== "webrtc") {
      // Full room or busy server: the body says so (`error`) and where the program is. A place
      // may free up later: the HLS page keeps asking (`scheduleRejoin`).
      fallBackToHls(errorMessage(e).replace(/^503[^:]*:\s*/, ""), true);
      return;
    }
    scheduleReconnect(errorMessage(e));
  }
}

/**
 * A viewer whose WebRTC connected before falls back to HLS after this many ICE failures in a
 * row (one that never connected, at the first). An unreachable server is not one: HLS comes
 * from the same server, so that only reconnects.
 */
const MAX_ICE_FAILURES = 2;
let iceFailures = 0;

/** The server answered the offer but the connection failed or never came up. */
function webrtcFailed(reason: string) {
  iceFailures++;
  if (forcedMode !== "webrtc" && (!everConnected || iceFailures >= MAX_ICE_FAILURES)) fallBackToHls(reason);
  else scheduleReconnect(reason);
}
/** A connected viewer of a live stage with no video frame for this long falls back to HLS. */
const MEDIA_TIMEOUT_MS = 12000;
/** A WebRTC connection of this page reached "connected" at least once. */
let everConnected = false;

/** Falls back to HLS when a live slot shows no video `MEDIA_TIMEOUT_MS` after connecting. */
function watchMedia(gen: number) {
  if (forcedMode === "webrtc") return;
  setTimeout(() => {
    if (gen !== generation || venue.mode !== "webrtc") return;
    const s = venue.state;
    const layout = Math.max(1, Math.min(s?.layout || 1, tiles.length || 1));
    const stalled = tiles.some((t, i) => {
      const slot = s?.slots.find((x) => x.index === i);
      return i < layout && !!slot?.live && !t.playing;
    });
    if (stalled) fallBackToHls(`no video in ${MEDIA_TIMEOUT_MS / 1000} s`);
  }, MEDIA_TIMEOUT_MS);
}

// ---------- HLS ----------

/**
 * Leaves WebRTC for the HLS program (the WHEP session is deleted). `capacity`: the server
 * refused for capacity or load (503), so a later `/join` may let the page back in.
 */
function fallBackToHls(reason: string, capacity = false) {
  if (venue.mode === "hls") return;
  console.info(`venue: WebRTC → HLS: ${reason}`);
  generation++;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
  teardown();
  venue.pc = null;
  venue.fallback = reason;
  enterHls(venue.join?.hls_url ?? defaultJoin("hls", "").hls_url, `WebRTC unavailable: ${reason}`, capacity);
}

/**
 * Switches the page to HLS: the living room over the WebSocket, one program video. `rejoin`:
 * HLS because the room was full or the server busy — ask `/join` again now and then.
 */
function enterHls(url: string, why: string, rejoin: boolean) {
  venue.mode = "hls";
  if (!useWs) {
    useWs = true;
    client.connectWebSocket();
  }
  renderBadge(why);
  buildProgram();
  void startHls(url);
  if (rejoin) scheduleRejoin();
}

/** Leaves HLS: the player, the program video and its timers go; the stage is empty again. */
function leaveHls() {
  venue.hls?.destroy();
  venue.hls = null;
  venue.hlsUrl = null;
  if (programView) {
    programView.video.removeAttribute("src");
    programView.video.load();
  }
  programView = null;
  venue.program = null;
  stageEl.classList.remove("hls");
}

// ---------- back to WebRTC ----------

/**
 * How often a page sent to HLS for capacity or load asks `/join` again, ms (± 25 % jitter so a
 * big HLS audience does not ask at once). `?rejoin_s=` changes it (tests).
 */
const REJOIN_MS = (Number(params.get("rejoin_s")) || 20) * 1000;
let rejoinTimer: ReturnType<typeof setTimeout> | null = null;

/**
 * While in HLS for capacity or load (not forced, not after a WebRTC failure): when `/join`
 * says `webrtc` again (a place freed up), go back to WebRTC — sub-second instead of the
 * program's ~1.5 s. If the place is gone by the time the offer arrives (503), the page comes
 * back to HLS and keeps asking.
 */
function scheduleRejoin() {
  if (rejoinTimer) clearTimeout(rejoinTimer);
  rejoinTimer = null;
  if (forcedMode || !hasWebRTC || !useMedia) return;
  rejoinTimer = setTimeout(
    () => {
      rejoinTimer = null;
      void backToWebRtc();
    },
    REJOIN_MS * (0.75 + Math.random() * 0.5),
  );
}

async function backToWebRtc() {
  if (venue.mode !== "hls" || client.state.ended) return;
  try {
    const join = await getJson<JoinAnswer>(`${apiRoom}/join`);
    if (join.mode === "webrtc" && venue.mode === "hls") {
      console.info("venue: HLS → WebRTC: a place is free");
      leaveHls();
      venue.join = join;
      venue.fallback = null;
      venue.mode = "webrtc";
      attempt = iceFailures = 0;
      renderBadge(join.reason);
      buildTiles(venue.maxSlots);
      if (venue.state) applyState(venue.state);
      void connect();
      return;
    }
  } catch {
    // Could not ask: stay on HLS and ask again later.
  }
  scheduleRejoin();
}

interface ProgramView {
  root: HTMLDivElement;
  video: HTMLVideoElement;
  placeholder: HTMLDivElement;
  what: HTMLDivElement;
  playing: boolean;
}
let programView: ProgramView | null = null;

/** One tile-sized video for the composed program, where the slot tiles were. */
function buildProgram() {
  const video = h("video", { "data-program": "", autoplay: true, playsinline: true });
  video.muted = userMuted;
  const who = h("div", { class: "who" });
  const what = h("div", { class: "what", text: "starting the HLS program…" });
  const placeholder = h("div", { class: "placeholder" }, who, what);
  const root = h("div", { class: "tile program" }, video, placeholder);
  programView = { root, video, placeholder, what, playing: false };
  tiles.length = 0;
  stageEl.replaceChildren(root);
  stageEl.classList.add("hls");
  venue.program = video;
  video.addEventListener("playing", () => {
    if (!programView) return;
    programView.playing = true;
    renderProgram();
    setStatus("playing", "ok");
  });
  video.addEventListener("waiting", () => setStatus("buffering…", "warn"));
  renderProgram();
}

function renderProgram() {
  stageEl.style.setProperty("--cols", "1");
  stageEl.style.setProperty("--rows", "1");
  if (!programView) return;
  const p = programView;
  p.placeholder.hidden = p.playing;
  const who = p.placeholder.querySelector(".who");
  if (who) who.textContent = client.state.settings.title || venue.state?.title || room;
  p.video.muted = userMuted;
}

let hlsAttempt = 0;

/** Plays `url` with hls.js (low-latency mode), or natively where MSE is missing (Safari on iOS). */
async function startHls(url: string) {
  const video = programView?.video;
  if (!video) return;
  venue.hlsUrl = url;
  setStatus("loading the HLS program…");
  let Hls: typeof import("hls.js/light").default;
  try {
    Hls = (await import("hls.js/light")).default;
  } catch (e) {
    setStatus(`could not load the HLS player: ${errorMessage(e)}`, "err");
    return;
  }
  if (!Hls.isSupported()) {
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      video.play().catch(() => {});
    } else {
      setStatus("this browser cannot play HLS", "err");
    }
    return;
  }
  const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
  venue.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    hlsAttempt = 0;
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
    if (programView) {
      programView.playing = false;
      programView.what.textContent = "waiting for the HLS program…";
      renderProgram();
    }
    const delay = backoffMs(hlsAttempt++);
    setStatus(`waiting for the HLS program — retrying in ${delay / 1000}s`, "warn");
    setTimeout(() => void startHls(url), delay);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
}

// ---------- mode badge ----------

let badgeTimer: ReturnType<typeof setInterval> | null = null;

/** "WebRTC · live" or "HLS · ~2 s delay" (hls.js's measured latency once known); `why` as its tooltip. */
function renderBadge(why: string) {
  const mode = venue.mode;
  modeBadge.hidden = !mode;
  if (!mode) return;
  modeBadge.dataset.mode = mode;
  modeBadge.className = `modebadge ${mode}`;
  modeBadge.title = why;
  // The part in `.more` is dropped on phones.
  const render = () => {
    const lat = venue.hls?.latency;
    // Relayed or TCP paths are worth knowing (restrictive networks); direct UDP is the norm.
    const via = venue.path === "tcp" ? " over TCP" : venue.path?.startsWith("turn/") ? ` via TURN/${venue.path.slice(5).toUpperCase()}` : "";
    const [main, more] =
      mode === "webrtc"
        ? ["WebRTC", ` · live${via}`]
        : lat && Number.isFinite(lat) && lat > 0
          ? [`HLS · ${lat.toFixed(1)} s`, " delay"]
          : ["HLS · ~2 s", " delay"];
    modeBadge.replaceChildren(main, h("span", { class: "more", text: more }));
  };
  render();
  if (badgeTimer) clearInterval(badgeTimer);
  badgeTimer = mode === "hls" ? setInterval(render, 2000) : null;
}

/** The page's own join answer (forced mode, or `/join` unreachable). */
function defaultJoin(mode: WatchMode, reason: string): JoinAnswer {
  const r = encodeURIComponent(room);
  return {
    mode,
    reason,
    hls_url: `/hls/${r}/index.m3u8`,
    whep_url: whepUrl,
    ws_url: `${apiRoom}/ws`,
  };
}

/** How to watch: `?mode=`, else the server's `/join` (WebRTC when it cannot be asked). */
async function askJoin(): Promise<JoinAnswer> {
  if (forcedMode) return defaultJoin(forcedMode, `forced with ?mode=${forcedMode}`);
  if (!hasWebRTC) return defaultJoin("hls", "this browser has no WebRTC");
  try {
    return await getJson<JoinAnswer>(`${apiRoom}/join`);
  } catch (e) {
    return defaultJoin("webrtc", `could not ask the server (${errorMessage(e)})`);
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

// ---------- the living room ----------

const dock = $("#dock");
const palette = $("#palette");
const hint = $("#hint");
let selectedSticker = localStorage.getItem("venue.sticker") ?? "heart";
/** Last pointer position in normalized room coordinates. */
let pointer: { x: number; y: number } | null = null;
const stickerTimes: number[] = [];
let lastFirework = 0;

const chat = new ChatPanel(client, { rejoin }, room);
fx.nameOf = (id) => client.state.users[id]?.name ?? "";

function adminToken(): string {
  return localStorage.getItem(ADMIN_TOKEN_STORAGE) ?? "";
}

/** Joins with `name` ("" = watch without a name); a new name on a joined connection reconnects. */
function rejoin(name: string) {
  if (client.setJoin(name, adminToken())) return;
  if (useWs) client.reconnectWebSocket();
  else {
    attempt = 0;
    scheduleReconnect("joining with a new name");
  }
}

function mode(): Mode {
  return client.state.settings.mode;
}
const cursorsOn = () => client.state.joined && (mode() === "everything" || mode() === "stickers_off");
const stickersOn = () => client.state.joined && mode() === "everything";

function applySettings(s: SettingsView) {
  document.body.dataset.mode = s.mode;
  document.body.style.setProperty("--room-bg", s.backgroundColor || "");
  if (!s.backgroundColor) document.body.style.removeProperty("--room-bg");
  fx.setMode(s.mode);
  fx.setStickerSet(s.stickerSet.stickers);
  const ids = s.stickerSet.stickers.map((d) => d.id);
  if (!ids.includes(selectedSticker)) selectedSticker = ids[0] ?? "";
  palette.replaceChildren(
    ...s.stickerSet.stickers.map((d) =>
      h(
        "button",
        {
          class: `pick${d.id === selectedSticker ? " on" : ""}`,
          role: "radio",
          "aria-checked": String(d.id === selectedSticker),
          title: d.label,
          "data-sticker": d.id,
          onclick: () => {
            selectedSticker = d.id;
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
  renderDock();
  renderHeader();
}

function renderDock() {
  const m = mode();
  dock.hidden = !client.state.joined || m === "chat_only" || m === "quiet";
  palette.hidden = m !== "everything";
  hint.hidden = dock.hidden || localStorage.getItem("venue.hinted") === "1";
  hint.textContent = m === "everything" ? "click the floor to drop a sticker · F for fireworks" : "F for fireworks";
}

client.on({
  hello() {
    if (venue.mode === "hls") setStatus(programView?.playing ? "playing" : "joining…", "ok");
    else setStatus(useMedia ? (venue.pc?.connectionState === "connected" ? "connected" : "joining…") : "in the room", "ok");
  },
  snapshot() {
    fx.clearCursors();
    fx.setStickers(client.state.stickers);
  },
  settings: (s) => applySettings(s),
  stage: (st) => onStage(st),
  users() {
    renderHeader();
  },
  cursor: (id, x, y) => fx.cursor(id, x, y),
  userLeft: (id) => fx.removeCursor(id),
  stickerPlaced: (st) => fx.addSticker(st),
  stickersRemoved: (ids) => fx.removeStickers(ids),
  stickersCleared: () => fx.clearStickers(),
  firework(f) {
    // Ours was drawn when launched.
    if (f.userId !== client.state.me?.userId) fx.firework(f.x, f.y, f.hue);
  },
  connection(up) {
    if (!up) fx.clearCursors();
    renderDock();
    renderHeader();
  },
  notice(n) {
    if (!client.state.ended) return;
    const titles: Record<string, string> = {
      kicked: "You were asked to leave",
      banned: "You are banned from this room",
      too_slow: "Your connection couldn't keep up",
      unsupported_version: "This page is out of date",
    };
    $("#endedtitle").textContent = titles[n.code] ?? "You left the room";
    $("#endedtext").textContent =
      n.text || (n.code === "unsupported_version" ? "Reload to get the new version." : "");
    $("#ended").hidden = false;
    setStatus("left the room", "err");
    if (n.code === "banned" || n.code === "kicked") {
      generation++;
      teardown();
    }
  },
});

$("#ended button").addEventListener("click", () => location.reload());

function norm(ev: { clientX: number; clientY: number }): { x: number; y: number } {
  const r = roomEl.getBoundingClientRect();
  return {
    x: Math.min(1, Math.max(0, (ev.clientX - r.left) / Math.max(1, r.width))),
    y: Math.min(1, Math.max(0, (ev.clientY - r.top) / Math.max(1, r.height))),
  };
}

roomEl.addEventListener("pointermove", (ev) => {
  if (ev.pointerType === "touch" && !ev.isPrimary) return;
  pointer = norm(ev);
  if (!cursorsOn()) return;
  fx.ownCursor(pointer.x, pointer.y);
  client.moveCursor(pointer.x, pointer.y);
});
roomEl.addEventListener("pointerleave", () => fx.hideOwnCursor());

/** The floor: the room area outside the tiles and the dock. */
function onFloor(target: EventTarget | null): boolean {
  return target instanceof Element && !target.closest(".tile, .dock, button, a, input, select, video");
}

roomEl.addEventListener("click", (ev) => {
  if (!stickersOn() || !onFloor(ev.target) || !selectedSticker) return;
  const now = performance.now();
  while (stickerTimes.length && now - stickerTimes[0] > 1000) stickerTimes.shift();
  if (stickerTimes.length >= 4) return; // the server allows 5/s
  stickerTimes.push(now);
  const p = norm(ev);
  const rot = Math.round((Math.random() * 2 - 1) * 22);
  const scale = Math.round((0.85 + Math.random() * 0.4) * 100) / 100;
  client.placeSticker(selectedSticker, p.x, p.y, rot, scale);
  localStorage.setItem("venue.hinted", "1");
  hint.hidden = true;
});

function launchFirework(at: { x: number; y: number } | null) {
  if (!cursorsOn()) return;
  const now = performance.now();
  if (now - lastFirework < 1000) return; // the server allows 1/s
  lastFirework = now;
  const p = at ?? { x: 0.15 + Math.random() * 0.7, y: 0.12 + Math.random() * 0.35 };
  const hue = Math.floor(Math.random() * 360);
  fx.firework(p.x, p.y, hue);
  client.launchFirework(p.x, p.y, hue);
}

$("#firework").addEventListener("click", () => launchFirework(null));
window.addEventListener("keydown", (ev) => {
  if (ev.key !== "f" && ev.key !== "F") return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
  const t = ev.target as HTMLElement | null;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
  launchFirework(pointer);
});

// Chat toggle: hides the panel on a desktop, shows it on a phone.
const chatToggle = $<HTMLButtonElement>("#chattoggle");
const phone = window.matchMedia("(max-width: 760px)");
function setChatOpen(open: boolean) {
  document.body.classList.toggle("chat-closed", !open);
  chatToggle.setAttribute("aria-pressed", String(open));
  chat.setPanelHidden(!open);
}
chatToggle.addEventListener("click", () => setChatOpen(document.body.classList.contains("chat-closed")));
setChatOpen(true);
void phone;

async function main() {
  applySettings(client.state.settings);
  // `?fx=0`: no drawing (many pages in one test browser).
  if (params.get("fx") !== "0") void fx.init();
  const name = chat.initialName();
  if (name === null) chat.askName("");
  else client.setJoin(name, adminToken());
  if (useWs) client.connectWebSocket();

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
  if (useMedia || forcedMode === "hls") {
    const join = await askJoin();
    venue.join = join;
    if (join.mode === "hls") {
      enterHls(join.hls_url, join.reason, true);
      applyState(fromRoomInfo(info));
    } else {
      venue.mode = "webrtc";
      renderBadge(join.reason);
      buildTiles(venue.maxSlots);
      applyState(fromRoomInfo(info));
      void connect();
    }
  } else {
    buildTiles(venue.maxSlots);
    applyState(fromRoomInfo(info));
    setStatus(client.state.joined ? "in the room" : "joining…");
  }
  setInterval(poll, 4000);
}

void main();
