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
//
// Cluster (issue 11): a node that drains sends `ServerMessage.moving`; the page shows a small
// notice and, after a random delay below 0.9 s, joins again through `/join` (new WHEP session
// and/or WebSocket; name kept, the chat shown merged with the new node's). A node that dies
// without a word is noticed in ~2–3 s (`watchConsent`: no packet, ICE consent checks
// unanswered; or `disconnected`, or the event channel closing) and the page re-joins the same
// way, 1 s, 2 s, 4 s… (≤ 15 s) apart while `/join` fails. `window.venue.relocations` lists the moves.
//
// This file: the room, the tiles, the stage state, the WHEP session and the mode (WebRTC or
// HLS, and back). viewer/venue.ts: `window.venue` and the stage's shapes; viewer/program.ts:
// the HLS program player; viewer/living-room.ts: dock, stickers, cursors, fireworks, chat toggle.
import "./style.css";
import type { StageState } from "./gen/venue_pb";
import {
  $,
  backoffMs,
  deleteSession,
  doublingBackoffMs,
  errorMessage,
  getJson,
  h,
  HttpError,
  postOffer,
  type SdpSession,
  watchConsent,
  rtcConfiguration,
  mediaPath,
} from "./common";
import { RoomClient, type MovingView } from "./room";
import { RoomFx } from "./fx";
import { ChatPanel } from "./chat";
import { LivingRoom } from "./viewer/living-room";
import { Program } from "./viewer/program";
import { DEAD_GRACE_MS, MOVE_JITTER_MS, Moves } from "./viewer/relocation";
import {
  fromProto,
  fromRoomInfo,
  type JoinAnswer,
  type Relocation,
  type RoomInfo,
  type StatusKind,
  type VenueGlobal,
  type ViewState,
  type WatchMode,
} from "./viewer/venue";

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
  relocations: [],
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

function setStatus(text: string, kind: StatusKind = "") {
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
/** HLS mode: the program video where the tiles were: web/src/viewer/program.ts. */
const program = new Program(venue, stageEl, {
  setStatus,
  title: () => client.state.settings.title || venue.state?.title || room,
  muted: () => userMuted,
});

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
    program.render();
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
/** Stops the dead-server watch of the current connection (`watchConsent`). */
let stopConsentWatch: (() => void) | null = null;

function teardown() {
  if (watchdog) clearTimeout(watchdog);
  watchdog = null;
  stopConsentWatch?.();
  stopConsentWatch = null;
  deleteSession(session);
  session = null;
  venue.dc = null;
  venue.lossy = null;
  if (venue.pc) {
    venue.pc.onconnectionstatechange = null;
    venue.pc.close();
  }
}

/**
 * Drops the WebRTC session and joins again through `/join` (where a load balancer in front of a
 * cluster sends the request to a ready node). The first try waits a random delay below
 * `MOVE_JITTER_MS` (pages of a dead or draining node do not all arrive at once), the next ones
 * 1 s, 2 s, 4 s… (capped at 15 s) while `/join` or the offer fail. `lost`: the server went
 * silent or closed our session (a `lost` relocation, shown in the move notice); `delayMs`
 * overrides the delay.
 */
function scheduleReconnect(reason: string, opts: { lost?: boolean; delayMs?: number } = {}) {
  if (retryTimer || client.state.ended || venue.mode !== "webrtc") return;
  generation++; // events of the old connection are stale from now on
  teardown();
  if (opts.lost) startRelocation("lost", reason);
  const delay = opts.delayMs ?? (attempt === 0 ? Math.random() * MOVE_JITTER_MS : doublingBackoffMs(attempt - 1));
  attempt++;
  setStatus(delay >= 1000 ? `reconnecting in ${Math.round(delay / 1000)}s (${reason})` : `reconnecting… (${reason})`, "warn");
  retryTimer = setTimeout(() => {
    retryTimer = null;
    void rejoinWebRtc();
  }, delay);
}

/**
 * Asks `/join` how to watch now and connects that way: WebRTC (a new WHEP session), or HLS
 * when the room is full. When `/join` cannot be reached, tries again later (`scheduleReconnect`).
 */
async function rejoinWebRtc() {
  const gen = generation;
  if (forcedMode || !hasWebRTC) {
    void connect();
    return;
  }
  setStatus("joining…", "warn");
  let join: JoinAnswer;
  try {
    join = await getJson<JoinAnswer>(`${apiRoom}/join`, { cache: "no-store" });
  } catch (e) {
    if (gen !== generation || venue.mode !== "webrtc") return;
    scheduleReconnect(`cannot reach the server: ${errorMessage(e)}`);
    return;
  }
  if (gen !== generation || venue.mode !== "webrtc") return;
  venue.join = join;
  if (join.mode === "hls") {
    fallBackToHls(join.reason, true);
    return;
  }
  renderBadge(join.reason);
  void connect();
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
      if (gen === generation) scheduleReconnect("session closed", { lost: true });
    });
    dc.addEventListener("open", () => {
      if (gen === generation) maybeRelocated();
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
      maybeRelocated();
      // A dead node (killed, cut off) is noticed in ~2–3 s: no packets and ICE consent
      // checks unanswered (the browser's own `disconnected` takes ~5 s).
      stopConsentWatch ??= watchConsent(pc, (ms) => {
        if (gen === generation) scheduleReconnect(`server silent for ${(ms / 1000).toFixed(1)} s`, { lost: true });
      });
      void mediaPath(pc).then((path) => {
        if (gen !== generation) return;
        venue.path = path;
        renderBadge(modeBadge.title);
      });
    } else if (st === "failed") {
      webrtcFailed("ICE failed");
    } else if (st === "disconnected") {
      // The browser heard nothing from the server for a few seconds (consent checks and media
      // silent): a dead node, in a cluster. Re-join unless it comes back at once.
      setStatus("connection interrupted…", "warn");
      if (watchdog) clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        if (gen === generation && pc.connectionState !== "connected") scheduleReconnect("connection lost", { lost: true });
      }, DEAD_GRACE_MS);
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
    // The node `/join` chose (cluster mode: maybe another node, absolute URL).
    const s = await postOffer(venue.join?.whep_url ?? whepUrl, pc.localDescription?.sdp ?? offer.sdp ?? "");
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
  else scheduleReconnect(reason, { lost: true });
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
  tiles.length = 0;
  program.build();
  void program.start(url);
  if (rejoin) scheduleRejoin();
}

/** Leaves HLS: the player, the program video and its timers go; the stage is empty again. */
function leaveHls() {
  program.leave();
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

// ---------- cluster: moving to another node ----------

/** The move notice and the record of moves: web/src/viewer/relocation.ts. */
const moves = new Moves(roomEl, venue, client, () =>
  venue.mode !== "webrtc" || !useMedia || venue.pc?.connectionState === "connected",
);
const startRelocation = (why: Relocation["why"], detail: string) => moves.start(why, detail);
const maybeRelocated = () => moves.maybeBack();
let moveTimer: ReturnType<typeof setTimeout> | null = null;

/**
 * `ServerMessage.moving`: our node drains. After a random delay below `MOVE_JITTER_MS` (a
 * drained node's thousands of pages must not stampede) the page leaves it: a new WHEP session
 * through `/join` and/or a new WebSocket, the name and the chat kept. An HLS page only moves
 * its WebSocket: the program comes over plain HTTP, which a load balancer sends to a ready node.
 */
function onMoving(m: MovingView) {
  if (client.state.ended) return;
  console.info(`venue: moving to another server: ${m.reason}`);
  startRelocation("moving", m.reason);
  if (moveTimer) return;
  moveTimer = setTimeout(() => {
    moveTimer = null;
    if (client.state.ended) return;
    if (useWs) client.reconnectWebSocket();
    if (venue.mode === "webrtc" && useMedia) {
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      attempt = 0;
      scheduleReconnect("moving to another server", { delayMs: 0 });
    }
  }, Math.random() * MOVE_JITTER_MS);
}

// ---------- the living room ----------

const chat = new ChatPanel(client, { rejoin }, room);
/** Dock, stickers, cursors, fireworks, chat toggle: web/src/viewer/living-room.ts. */
const livingRoom = new LivingRoom(client, fx, roomEl, chat);

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

client.on({
  hello() {
    maybeRelocated();
    if (venue.mode === "hls") setStatus(program.playing ? "playing" : "joining…", "ok");
    else setStatus(useMedia ? (venue.pc?.connectionState === "connected" ? "connected" : "joining…") : "in the room", "ok");
  },
  // After the living room's own handlers (settings, connection: the dock).
  settings: () => renderHeader(),
  stage: (st) => onStage(st),
  users() {
    renderHeader();
  },
  connection() {
    renderHeader();
  },
  moving: (m) => onMoving(m),
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


async function main() {
  livingRoom.applySettings(client.state.settings);
  renderHeader();
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
