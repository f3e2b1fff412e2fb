// Admin console (`/admin`): token sign-in, streamers with live state and a small live
// preview each (admin WHEP), the stage editor (click a streamer, then a slot; × to clear;
// layout 1..9; every change is saved with PUT at once), create/delete streamers, each
// streamer's own sticker set (PUT streamers/{id}: the room switches to it whenever a stage
// change puts that streamer on slot 0); the room's
// settings (title, now playing, background colour, interactivity mode, sticker set, slow mode:
// PUT settings) and its people with moderation (star, mute, kick, ban; clear chat / stickers).
import "./style.css";
import {
  $,
  HttpError,
  copyText,
  deleteSession,
  errorMessage,
  h,
  httpError,
  postOffer,
  type SdpSession,
  rtcConfiguration,
} from "./common";
import { mountSchedule } from "./schedule";
import { mountRecordings } from "./recordings";

type Id = number | string;

interface Streamer {
  id: Id;
  name: string;
  live: boolean;
  created_at?: string | number;
  /** The streamer's own sticker set id; null = the room keeps its set. */
  sticker_set?: string | null;
  /** Streamer health measured by the SFU (null when offline). */
  health?: Health | null;
}

/** GET …/streamers → `health` (see gateway/src/api/admin.rs for the shape). */
interface Health {
  protocol: "whip" | "rtmp";
  video: {
    rid: string | null;
    codec: string;
    profile_level_id: string | null;
    width: number | null;
    height: number | null;
    fps: number;
    bitrate_bps: number;
    keyframe_interval_s: number | null;
  }[];
  audio: {
    codec: string;
    channels: number;
    sample_rate_hz: number;
    bitrate_bps: number;
    source: { codec: string; channels: number; sample_rate_hz: number } | null;
  } | null;
  packet_loss: number;
  b_frames: boolean;
  warnings: string[];
}

interface Stage {
  layout: number;
  slots: (Id | null)[];
}

/** What GET/PUT stage answer: the room view (`slots: [{index, streamer_id, name, live}]`) or plain ids. */
interface StageAnswer {
  layout: number;
  max_slots?: number;
  slots?: (Id | null | { index?: number; streamer_id: Id | null })[];
}

interface RoomSummary {
  name: string;
  title?: string;
  max_slots?: number;
}

interface Created {
  id: Id;
  name: string;
  stream_key: string;
  whip_url: string;
  /** null when RTMP ingest is off. */
  rtmp_url: string | null;
}

const TOKEN_STORAGE = "venue.adminToken";
const ROOM_STORAGE = "venue.adminRoom";
const POLL_MS = 2000;

const loginForm = $<HTMLFormElement>("#login");
const tokenInput = $<HTMLInputElement>("#token");
const loginError = $("#loginerror");
const consoleEl = $("#console");
const sessionEl = $("#session");
const roomSel = $<HTMLSelectElement>("#room");
const viewLink = $<HTMLAnchorElement>("#viewlink");
const layoutsEl = $("#layouts");
const slotsEl = $("#slots");
const streamersEl = $("#streamers");
const noStreamersEl = $("#nostreamers");
const keyBox = $("#keybox");
const createForm = $<HTMLFormElement>("#create");
const newName = $<HTMLInputElement>("#newname");

let token = localStorage.getItem(TOKEN_STORAGE) ?? "";
let room = new URLSearchParams(location.search).get("room") ?? localStorage.getItem(ROOM_STORAGE) ?? "main";
let maxSlots = 4;
let stage: Stage = { layout: 1, slots: [] };
let streamers: Streamer[] = [];
let selected: string | null = null;
let pollTimer: ReturnType<typeof setInterval> | null = null;
let epoch = 0; // bumps on room change / logout; stale responses are dropped

const sameId = (a: Id | null | undefined, b: Id | null | undefined) =>
  a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);

// ---------- HTTP ----------

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    logout("Token rejected (401). Sign in again.");
    throw new HttpError(401, "unauthorized");
  }
  if (!res.ok) throw await httpError(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

const roomPath = () => `/api/admin/rooms/${encodeURIComponent(room)}`;

let toastTimer: ReturnType<typeof setTimeout> | null = null;
function toast(text: string, err = false) {
  document.querySelector(".toast")?.remove();
  const el = h("div", { class: `toast${err ? " err" : ""}`, role: "status", text });
  document.body.append(el);
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.remove(), err ? 6000 : 2500);
}

// ---------- sign-in ----------

function showLogin(message = "") {
  consoleEl.hidden = true;
  sessionEl.hidden = true;
  loginForm.hidden = false;
  loginError.textContent = message;
  tokenInput.focus();
}

function logout(message = "") {
  epoch++;
  token = "";
  localStorage.removeItem(TOKEN_STORAGE);
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  stopAllPreviews();
  streamerCards.forEach((c) => c.root.remove());
  streamerCards.clear();
  showLogin(message);
}

loginForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = tokenInput.value.trim();
  if (!token) return;
  void enter();
});
$("#logout").addEventListener("click", () => logout());

async function enter() {
  loginError.textContent = "";
  let rooms: RoomSummary[];
  try {
    rooms = await api<RoomSummary[]>("GET", "/api/admin/rooms");
  } catch (e) {
    if (!(e instanceof HttpError && e.status === 401)) showLogin(errorMessage(e));
    return;
  }
  localStorage.setItem(TOKEN_STORAGE, token);
  tokenInput.value = "";
  loginForm.hidden = true;
  consoleEl.hidden = false;
  sessionEl.hidden = false;
  const names = rooms.map((r) => r.name);
  if (!names.includes(room)) room = names.includes("main") ? "main" : (names[0] ?? "main");
  roomSel.replaceChildren(
    ...rooms.map((r) => h("option", { value: r.name, text: r.title ? `${r.name} — ${r.title}` : r.name })),
  );
  roomSel.value = room;
  await openRoom();
}

roomSel.addEventListener("change", () => {
  room = roomSel.value;
  void openRoom();
});

async function openRoom() {
  const my = ++epoch;
  localStorage.setItem(ROOM_STORAGE, room);
  viewLink.href = room === "main" ? "/" : `/r/${encodeURIComponent(room)}`;
  stopAllPreviews();
  streamerCards.forEach((c) => c.root.remove());
  streamerCards.clear();
  selected = null;
  keyBox.hidden = true;
  try {
    const info = await fetch(`/api/rooms/${encodeURIComponent(room)}`).then((r) => (r.ok ? r.json() : null));
    if (info && typeof info.max_slots === "number") maxSlots = Math.max(1, Math.min(9, info.max_slots));
  } catch {
    // keep the last known slot count
  }
  if (my !== epoch) return;
  void loadSettings(my);
  await refresh(my);
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = setInterval(() => void refresh(epoch), POLL_MS);
}

async function refresh(my: number) {
  try {
    const [list, st] = await Promise.all([
      api<Streamer[]>("GET", `${roomPath()}/streamers`),
      api<StageAnswer>("GET", `${roomPath()}/stage`),
    ]);
    if (my !== epoch) return;
    streamers = list;
    if (!saving) setStage(st);
    renderStreamers();
    void refreshUsers(my);
  } catch (e) {
    if (my === epoch && !(e instanceof HttpError && e.status === 401)) toast(`Refresh failed: ${errorMessage(e)}`, true);
  }
}

// ---------- stage editor ----------

let saving = false;

function setStage(st: StageAnswer) {
  const n = st.max_slots ?? Math.max(maxSlots, st.slots?.length ?? 0);
  maxSlots = Math.max(1, Math.min(9, n));
  const ids: (Id | null)[] = Array.from({ length: maxSlots }, () => null);
  (st.slots ?? []).forEach((x, i) => {
    if (x !== null && typeof x === "object") {
      const idx = typeof x.index === "number" ? x.index : i;
      if (idx >= 0 && idx < maxSlots) ids[idx] = x.streamer_id ?? null;
    } else if (i < maxSlots) {
      ids[i] = x ?? null;
    }
  });
  stage = { layout: st.layout || 1, slots: ids };
  renderStage();
}

function renderStage() {
  layoutsEl.replaceChildren(
    ...Array.from({ length: 9 }, (_, i) => i + 1).map((n) =>
      h("button", {
        class: `small${n === stage.layout ? " active" : ""}`,
        "data-layout": n,
        title: n > maxSlots ? `this room has ${maxSlots} slots` : `${n} tile${n > 1 ? "s" : ""} side by side`,
        disabled: n > maxSlots,
        text: String(n),
        onclick: () => void save({ ...stage, layout: n }),
      }),
    ),
  );
  slotsEl.replaceChildren(
    ...stage.slots.map((id, i) => {
      const s = streamers.find((x) => sameId(x.id, id));
      const filled = id !== null;
      const el = h(
        "div",
        {
          class: `slot${filled ? " filled" : ""}${i >= stage.layout ? " hidden-by-layout" : ""}${selected !== null ? " target" : ""}`,
          "data-slot": i,
          title: i >= stage.layout ? "not shown with this layout" : "",
          onclick: () => onSlotClick(i),
        },
        h("div", { class: "idx", text: `slot ${i + 1}${i >= stage.layout ? " · hidden" : ""}` }),
        h(
          "div",
          { class: "who" },
          filled ? (s?.name ?? `#${id}`) : h("span", { class: "muted", text: "empty" }),
        ),
        filled ? h("span", { class: `badge${s?.live ? " live" : ""}`, text: s?.live ? "live" : "offline" }) : null,
        filled
          ? h("button", {
              class: "small danger x",
              title: "take off stage",
              text: "×",
              onclick: (ev: Event) => {
                ev.stopPropagation();
                const slots = [...stage.slots];
                slots[i] = null;
                void save({ ...stage, slots });
              },
            })
          : null,
      );
      return el;
    }),
  );
}

function onSlotClick(i: number) {
  if (selected === null) {
    toast("Click a streamer first, then the slot.");
    return;
  }
  const id = streamers.find((s) => String(s.id) === selected)?.id ?? selected;
  // Moving a streamer: take them off any other slot.
  const slots = stage.slots.map((x) => (sameId(x, id) ? null : x));
  slots[i] = id;
  selected = null;
  renderStreamers();
  void save({ ...stage, slots });
}

async function save(next: Stage) {
  const my = epoch;
  const prev = stage;
  stage = next;
  renderStage();
  saving = true;
  try {
    const res = await api<StageAnswer>("PUT", `${roomPath()}/stage`, { layout: next.layout, slots: next.slots });
    if (my === epoch && res) setStage(res);
    // The server switches the room to slot 1's artist set, if they have one: show it.
    const first = streamers.find((x) => sameId(x.id, next.slots[0]));
    if (my === epoch && first?.sticker_set) void followRoomSet(my);
  } catch (e) {
    if (my === epoch) {
      stage = prev;
      renderStage();
      toast(`Stage not saved: ${errorMessage(e)}`, true);
    }
  } finally {
    saving = false;
  }
}

// ---------- streamers ----------

interface Card {
  root: HTMLDivElement;
  name: HTMLSpanElement;
  badge: HTMLSpanElement;
  thumb: HTMLDivElement;
  meta: HTMLDivElement;
  stickers: HTMLSelectElement;
  health: HTMLDivElement;
  warnings: HTMLDivElement;
}

const streamerCards = new Map<string, Card>();

function renderStreamers() {
  const seen = new Set<string>();
  for (const s of streamers) {
    const key = String(s.id);
    seen.add(key);
    let card = streamerCards.get(key);
    if (!card) {
      card = makeCard(s);
      streamerCards.set(key, card);
    }
    streamersEl.append(card.root); // keeps server order
    card.name.textContent = s.name;
    card.badge.textContent = s.live ? "live" : "offline";
    card.badge.className = `badge${s.live ? " live" : ""}`;
    const slotIdx = stage.slots.findIndex((x) => sameId(x, s.id));
    card.meta.textContent = `#${s.id}${slotIdx >= 0 ? ` · on slot ${slotIdx + 1}` : ""}`;
    card.root.classList.toggle("selected", selected === key);
    showStreamerSet(card.stickers, s.sticker_set ?? "");
    renderHealth(card, s.live ? (s.health ?? null) : null);
    if (s.live) startPreview(s.id, card);
    else stopPreview(key, card);
  }
  for (const [key, card] of streamerCards) {
    if (!seen.has(key)) {
      stopPreview(key, card);
      card.root.remove();
      streamerCards.delete(key);
    }
  }
  if (selected !== null && !seen.has(selected)) selected = null;
  noStreamersEl.hidden = streamers.length > 0;
  renderStage();
}

function makeCard(s: Streamer): Card {
  const key = String(s.id);
  const name = h("span", { class: "name" });
  const badge = h("span", { class: "badge" });
  const thumb = h("div", { class: "thumb", text: "offline" });
  const meta = h("div", { class: "muted", style: "font-size:12px" });
  const health = h("div", { class: "health", hidden: true });
  const warnings = h("div", { class: "healthwarns", hidden: true });
  const del = h("button", {
    class: "small danger",
    text: "Delete",
    title: "delete this streamer and its key",
    onclick: (ev: Event) => {
      ev.stopPropagation();
      void remove(s.id, name.textContent ?? "");
    },
  });
  const stickers = h("select", {
    class: "stickerpick",
    title: "this artist's sticker set: the room switches to it when they go on slot 1",
    "aria-label": `sticker set of ${s.name}`,
    onclick: (ev: Event) => ev.stopPropagation(),
    onchange: () => void putStreamerSet(s.id, stickers),
  });
  const root = h(
    "div",
    {
      class: "streamer",
      "data-streamer": key,
      title: "click, then click a stage slot",
      onclick: () => {
        selected = selected === key ? null : key;
        renderStreamers();
      },
    },
    h("div", { class: "top" }, name, badge),
    thumb,
    health,
    warnings,
    h("label", { class: "row stickerrow", onclick: (ev: Event) => ev.stopPropagation() }, h("span", { class: "muted", text: "stickers:" }), stickers),
    h("div", { class: "row" }, h("div", { class: "grow" }, meta), del),
  );
  return { root, name, badge, thumb, meta, stickers, health, warnings };
}

// ---------- streamer health (refreshed with the list, every POLL_MS) ----------

// Numbers stay with their units when the line wraps (U+00A0).
const kHz = (hz: number) => `${Number((hz / 1000).toFixed(1))}\u00a0kHz`;
const channels = (n: number) => (n === 1 ? "mono" : n === 2 ? "stereo" : `${n} ch`);

function bitrate(bps: number): string {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)}\u00a0Mbit/s`;
  return `${Math.round(bps / 1e3)}\u00a0kbit/s`;
}

/** One compact line: "H.264 1280×720 30 fps 2.9 Mbit/s · GOP 1.0 s · Opus stereo 48 kHz (from
 * AAC 44.1 kHz) · loss 0.2%", after a protocol badge; warnings in a box below. */
function renderHealth(card: Card, hl: Health | null) {
  card.health.hidden = hl === null;
  card.warnings.hidden = hl === null || hl.warnings.length === 0;
  if (hl === null) {
    card.health.replaceChildren();
    card.warnings.replaceChildren();
    return;
  }
  const parts: string[] = [];
  // The largest layer first (simulcast sends several).
  const layers = [...hl.video].sort((a, b) => (b.height ?? 0) - (a.height ?? 0) || b.bitrate_bps - a.bitrate_bps);
  const v = layers[0];
  if (v) {
    const size = v.width && v.height ? ` ${v.width}×${v.height}` : "";
    const total = layers.reduce((n, l) => n + l.bitrate_bps, 0);
    let text = `${v.codec}${size} ${Math.round(v.fps)}\u00a0fps ${bitrate(total)}`;
    if (layers.length > 1) text += ` (${layers.length} layers)`;
    parts.push(text);
    if (v.keyframe_interval_s !== null) parts.push(`GOP\u00a0${v.keyframe_interval_s.toFixed(1)}\u00a0s`);
  } else {
    parts.push("no video");
  }
  const a = hl.audio;
  if (a) {
    let text = `${a.codec} ${channels(a.channels)} ${kHz(a.sample_rate_hz)}`;
    if (a.source) text += ` (from ${a.source.codec} ${kHz(a.source.sample_rate_hz)}${a.source.channels !== a.channels ? ` ${channels(a.source.channels)}` : ""})`;
    parts.push(text);
  } else {
    parts.push("no audio");
  }
  parts.push(`loss\u00a0${Number((hl.packet_loss * 100).toFixed(1))}%`);
  const title = v?.profile_level_id ? `profile-level-id ${v.profile_level_id}` : "";
  card.health.replaceChildren(
    h("span", { class: `proto ${hl.protocol}`, text: hl.protocol.toUpperCase() }),
    h("span", { class: `healthtext${hl.packet_loss > 0.05 ? " bad" : ""}`, text: parts.join(" · "), title }),
  );
  card.warnings.replaceChildren(...hl.warnings.map((w) => h("div", { class: "healthwarn", role: "alert", text: `⚠ ${w}` })));
}

/** Fills a card's sticker select: "(room default)" plus every set; left alone while in use. */
function showStreamerSet(sel: HTMLSelectElement, value: string) {
  if (document.activeElement === sel || sel.disabled) return;
  const sig = stickerSets.map((x) => `${x.id}\u0000${x.name}`).join("\u0001");
  if (sel.dataset.sets !== sig) {
    sel.replaceChildren(
      h("option", { value: "", text: "(room default)" }),
      ...stickerSets.map((x) => h("option", { value: x.id, text: x.name || x.id })),
    );
    sel.dataset.sets = sig;
  }
  if (value) selectOption(sel, value);
  else sel.value = "";
}

async function putStreamerSet(id: Id, sel: HTMLSelectElement) {
  const set = sel.value || null;
  sel.disabled = true;
  try {
    const s = await api<Streamer>("PUT", `${roomPath()}/streamers/${encodeURIComponent(String(id))}`, { sticker_set: set });
    const i = streamers.findIndex((x) => sameId(x.id, id));
    if (i >= 0) streamers[i] = { ...streamers[i], sticker_set: s.sticker_set ?? null };
    toast(set ? `${s.name} brings “${setName(set)}” when on slot 1` : `${s.name} keeps the room's sticker set`);
  } catch (e) {
    toast(`Could not set stickers: ${errorMessage(e)}`, true);
  } finally {
    sel.disabled = false;
    renderStreamers();
  }
}

const setName = (id: string) => stickerSets.find((x) => x.id === id)?.name || id;

async function remove(id: Id, name: string) {
  if (!confirm(`Delete streamer “${name}”? Their stream key stops working.`)) return;
  try {
    await api<void>("DELETE", `${roomPath()}/streamers/${encodeURIComponent(String(id))}`);
    toast(`Deleted ${name}`);
  } catch (e) {
    toast(`Delete failed: ${errorMessage(e)}`, true);
  }
  await refresh(epoch);
}

createForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = newName.value.trim();
  if (!name) return;
  try {
    const c = await api<Created>("POST", `${roomPath()}/streamers`, { name });
    newName.value = "";
    showKey(c);
  } catch (e) {
    toast(`Could not create: ${errorMessage(e)}`, true);
  }
  await refresh(epoch);
});

function absolute(url: string): string {
  try {
    return new URL(url, location.href).href;
  } catch {
    return url;
  }
}

function showKey(c: Created) {
  const row = (label: string, value: string) =>
    h(
      "div",
      { class: "kv" },
      h("span", { class: "muted", text: label }),
      h("code", { text: value }),
      h("button", {
        class: "small",
        text: "Copy",
        onclick: async (ev: Event) => {
          await copyText(value);
          (ev.target as HTMLButtonElement).textContent = "Copied";
        },
      }),
    );
  keyBox.replaceChildren(
    h("strong", { text: `Streamer “${c.name}” created` }),
    h("div", {
      class: "error",
      text: "Copy the stream key now: it is stored hashed and will not be shown again.",
    }),
    row("Stream key", c.stream_key),
    row("WHIP URL", absolute(c.whip_url)),
    ...(c.rtmp_url ? [row("RTMP URL", c.rtmp_url)] : []),
    h(
      "div",
      { class: "muted", style: "font-size:13px" },
      "In the browser: ",
      h("a", { href: `/publish?key=${encodeURIComponent(c.stream_key)}`, target: "_blank", text: "/publish" }),
      " · OBS: Service WHIP, server = WHIP URL, Bearer token = stream key.",
    ),
    h("div", {}, h("button", { class: "small", text: "I saved it — hide", onclick: () => (keyBox.hidden = true) })),
  );
  keyBox.hidden = false;
}

// ---------- live previews (admin WHEP: one video + one audio of one streamer) ----------

interface Preview {
  pc: RTCPeerConnection;
  session: SdpSession | null;
  video: HTMLVideoElement;
}

const previews = new Map<string, Preview>();
/** The previews' RTCConfiguration (TURN servers from the server), refreshed every 10 minutes. */
let previewRtcConfig: RTCConfiguration = { bundlePolicy: "max-bundle" };
const refreshPreviewRtcConfig = () =>
  void rtcConfiguration().then((c) => {
    previewRtcConfig = c;
  });
refreshPreviewRtcConfig();
setInterval(refreshPreviewRtcConfig, 600_000);
const previewRetryAt = new Map<string, number>();

function startPreview(id: Id, card: Card) {
  const key = String(id);
  if (previews.has(key)) return;
  if ((previewRetryAt.get(key) ?? 0) > Date.now()) return;
  const pc = new RTCPeerConnection(previewRtcConfig);
  const v = pc.addTransceiver("video", { direction: "recvonly" });
  const a = pc.addTransceiver("audio", { direction: "recvonly" });
  const video = h("video", { autoplay: true, playsinline: true, "data-preview": key });
  video.muted = true;
  video.srcObject = new MediaStream([v.receiver.track, a.receiver.track]);
  const p: Preview = { pc, session: null, video };
  previews.set(key, p);
  card.thumb.replaceChildren(video);
  video.play().catch(() => {});
  const fail = (why: string) => {
    if (previews.get(key) !== p) return;
    stopPreview(key, card, why);
    previewRetryAt.set(key, Date.now() + 5000);
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") fail("preview failed");
  };
  void (async () => {
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const s = await postOffer(
        `${roomPath()}/streamers/${encodeURIComponent(key)}/whep`,
        pc.localDescription?.sdp ?? "",
        { Authorization: `Bearer ${token}` },
      );
      if (previews.get(key) !== p) {
        deleteSession(s);
        return;
      }
      p.session = s;
      await pc.setRemoteDescription({ type: "answer", sdp: s.answer });
    } catch (e) {
      fail(`preview unavailable (${errorMessage(e)})`);
    }
  })();
}

function stopPreview(key: string, card?: Card, text = "offline") {
  const p = previews.get(key);
  if (p) {
    previews.delete(key);
    deleteSession(p.session);
    p.pc.onconnectionstatechange = null;
    p.pc.close();
    p.video.srcObject = null;
  }
  if (card && (p || card.thumb.textContent !== text)) {
    card.thumb.replaceChildren(text);
  }
}

function stopAllPreviews() {
  for (const key of [...previews.keys()]) stopPreview(key, streamerCards.get(key));
}

window.addEventListener("pagehide", () => {
  for (const p of previews.values()) deleteSession(p.session);
});

// ---------- room settings ----------

type ModeName = "everything" | "chat_only" | "stickers_off" | "quiet";

interface RoomSettingsJson {
  title: string;
  now_playing: string;
  background_color: string;
  mode: ModeName;
  sticker_set: string;
  slow_mode_s: number;
}

interface StickerSetJson {
  id: string;
  name: string;
  stickers: { id: string; url: string; label?: string }[];
}

const settingsForm = $<HTMLFormElement>("#settings");
const sTitle = $<HTMLInputElement>("#s-title");
const sNow = $<HTMLInputElement>("#s-now");
const sBg = $<HTMLInputElement>("#s-bg");
const sBgHex = $<HTMLInputElement>("#s-bghex");
const sSlow = $<HTMLSelectElement>("#s-slow");
const sSet = $<HTMLSelectElement>("#s-set");
const sSetPreview = $("#s-setpreview");
const sError = $("#s-error");
const sState = $("#settingsstate");
let settings: RoomSettingsJson | null = null;
let stickerSets: StickerSetJson[] = [];

async function loadSettings(my: number) {
  try {
    const [st, sets] = await Promise.all([
      api<RoomSettingsJson>("GET", `${roomPath()}/settings`),
      api<StickerSetJson[]>("GET", "/api/admin/sticker-sets").catch(() => [] as StickerSetJson[]),
    ]);
    if (my !== epoch) return;
    stickerSets = sets;
    showSettings(st);
    renderStreamers();
  } catch (e) {
    if (my === epoch && !(e instanceof HttpError && e.status === 401)) {
      sState.textContent = `settings unavailable (${errorMessage(e)})`;
    }
  }
}

function selectOption(sel: HTMLSelectElement, value: string, label = value) {
  if (![...sel.options].some((o) => o.value === value)) sel.append(h("option", { value, text: label }));
  sel.value = value;
}

function showSettings(st: RoomSettingsJson) {
  settings = st;
  sTitle.value = st.title ?? "";
  sNow.value = st.now_playing ?? "";
  const bg = /^#[0-9a-fA-F]{6}$/.test(st.background_color) ? st.background_color.toLowerCase() : "#1a1033";
  sBg.value = bg;
  sBgHex.value = bg;
  selectOption(sSlow, String(st.slow_mode_s ?? 0), `${st.slow_mode_s} s`);
  for (const r of settingsForm.querySelectorAll<HTMLInputElement>('input[name="mode"]')) r.checked = r.value === st.mode;
  const sets = stickerSets.length ? stickerSets : [{ id: st.sticker_set || "default", name: st.sticker_set || "default", stickers: [] }];
  sSet.replaceChildren(...sets.map((x) => h("option", { value: x.id, text: x.name || x.id })));
  selectOption(sSet, st.sticker_set || "default");
  renderSetPreview();
  sError.textContent = "";
  sState.textContent = "";
  settingsForm.style.setProperty("--bg", bg);
}

/** Re-reads the room's active set after a stage change; keeps an unsaved choice in the form. */
async function followRoomSet(my: number) {
  try {
    const st = await api<RoomSettingsJson>("GET", `${roomPath()}/settings`);
    if (my !== epoch || !settings) return;
    const untouched = sSet.value === settings.sticker_set;
    settings = { ...settings, sticker_set: st.sticker_set };
    if (untouched) {
      selectOption(sSet, st.sticker_set);
      renderSetPreview();
    }
  } catch {
    // the next settings load shows it
  }
}

function renderSetPreview() {
  const set = stickerSets.find((x) => x.id === sSet.value);
  sSetPreview.replaceChildren(
    ...(set?.stickers ?? []).slice(0, 10).map((d) => h("img", { src: d.url, alt: d.label ?? d.id, title: d.label ?? d.id })),
  );
}

sSet.addEventListener("change", renderSetPreview);

// ---------- sticker set upload ----------

const uName = $<HTMLInputElement>("#u-name");
const uFiles = $<HTMLInputElement>("#u-files");
const uState = $("#u-state");

/** `Nova Lights!` → `nova-lights`: the id rule of the upload API (1–64 of a-z, 0-9, - and _). */
function slug(s: string): string {
  return s
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}

$("#u-go").addEventListener("click", async () => {
  const name = uName.value.trim();
  const setId = slug(name);
  const files = [...(uFiles.files ?? [])];
  if (!setId || setId === "default" || files.length === 0) {
    uState.textContent = "Give the set a name (not “default”) and pick at least one picture.";
    return;
  }
  const stickers: { id: string; url: string; label: string }[] = [];
  try {
    for (const [i, f] of files.entries()) {
      const base = f.name.replace(/\.[^.]*$/, "");
      const id = slug(base) || `s${i + 1}`;
      uState.textContent = `uploading ${i + 1}/${files.length}: ${f.name}…`;
      const res = await fetch(`/api/admin/sticker-sets/${setId}/images/${id}`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": f.type || "application/octet-stream" },
        body: f,
      });
      if (!res.ok) throw await httpError(res);
      const { url } = (await res.json()) as { url: string };
      stickers.push({ id, url, label: base.slice(0, 64) || id });
    }
    await api("PUT", `/api/admin/sticker-sets/${setId}`, { name, stickers });
    stickerSets = await api<StickerSetJson[]>("GET", "/api/admin/sticker-sets");
    const current = sSet.value;
    sSet.replaceChildren(...stickerSets.map((x) => h("option", { value: x.id, text: x.name || x.id })));
    selectOption(sSet, setId);
    renderSetPreview();
    renderStreamers();
    uState.textContent = `“${name}” uploaded (${stickers.length} stickers) — save to make it active (was ${current}).`;
    toast("Sticker set uploaded");
  } catch (e) {
    uState.textContent = `upload failed: ${errorMessage(e)}`;
  }
});
sBg.addEventListener("input", () => {
  sBgHex.value = sBg.value;
  settingsForm.style.setProperty("--bg", sBg.value);
});
sBgHex.addEventListener("input", () => {
  if (/^#[0-9a-fA-F]{6}$/.test(sBgHex.value)) {
    sBg.value = sBgHex.value.toLowerCase();
    settingsForm.style.setProperty("--bg", sBg.value);
  }
});
$("#s-reset").addEventListener("click", () => settings && showSettings(settings));

settingsForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const my = epoch;
  const mode = settingsForm.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value as ModeName | undefined;
  const body: Partial<RoomSettingsJson> = {
    title: sTitle.value.trim(),
    now_playing: sNow.value.trim(),
    background_color: /^#[0-9a-fA-F]{6}$/.test(sBgHex.value) ? sBgHex.value.toLowerCase() : sBg.value,
    slow_mode_s: Number(sSlow.value) || 0,
    sticker_set: sSet.value,
    ...(mode ? { mode } : {}),
  };
  sError.textContent = "";
  sState.textContent = "saving…";
  try {
    const st = await api<RoomSettingsJson>("PUT", `${roomPath()}/settings`, body);
    if (my !== epoch) return;
    showSettings(st ?? ({ ...settings, ...body } as RoomSettingsJson));
    sState.textContent = "saved ✓";
    toast("Room settings saved");
  } catch (e) {
    if (my !== epoch) return;
    sState.textContent = "";
    sError.textContent = errorMessage(e);
  }
});

// ---------- people and moderation ----------

interface UserJson {
  id: number | string;
  display_name: string;
  starred: boolean;
  admin: boolean;
  muted_until_ms: number;
  transport?: string;
}

const usersEl = $("#users");
const noUsersEl = $("#nousers");
const userCountEl = $("#usercount");
let users: UserJson[] = [];

async function refreshUsers(my: number) {
  try {
    const r = await api<{ user_count?: number; users?: UserJson[] } | UserJson[]>("GET", `${roomPath()}/users`);
    if (my !== epoch) return;
    const list = Array.isArray(r) ? r : (r?.users ?? []);
    const count = Array.isArray(r) ? r.length : (r?.user_count ?? list.length);
    users = list;
    renderUsers(count);
  } catch {
    // reported by the stage refresh already, or not there yet
  }
}

async function moderate(body: Record<string, unknown>, done: string) {
  try {
    await api<void>("POST", `${roomPath()}/moderation`, body);
    toast(done);
  } catch (e) {
    toast(`Not done: ${errorMessage(e)}`, true);
  }
  await refreshUsers(epoch);
}

function timeOf(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderUsers(count: number) {
  userCountEl.textContent = `· ${count} here`;
  const now = Date.now();
  const named = users
    .filter((u) => u.display_name)
    .sort(
      (a, b) =>
        Number(b.admin) - Number(a.admin) ||
        Number(b.starred) - Number(a.starred) ||
        a.display_name.localeCompare(b.display_name, undefined, { sensitivity: "base" }),
    );
  noUsersEl.hidden = named.length > 0;
  usersEl.replaceChildren(
    ...named.map((u) => {
      const id = Number(u.id);
      const muted = u.muted_until_ms > now;
      const b = (text: string, title: string, fn: () => void, cls = "small") =>
        h("button", { class: cls, title, text, onclick: fn, "data-action": text });
      return h(
        "div",
        { class: "user", "data-user": String(u.id) },
        h(
          "div",
          { class: "uname" },
          h("span", { class: "name", text: u.display_name }),
          u.starred ? h("span", { class: "star", text: "★", title: "verified" }) : null,
          u.admin ? h("span", { class: "badge", text: "admin" }) : null,
          muted ? h("span", { class: "mutedtag", text: `muted till ${timeOf(u.muted_until_ms)}` }) : null,
          u.transport ? h("span", { class: "muted via", text: u.transport === "websocket" || u.transport === "web_socket" ? "ws" : "webrtc" }) : null,
        ),
        h(
          "div",
          { class: "uacts" },
          b(u.starred ? "unstar" : "star", u.starred ? "remove the star" : "verify (a star next to the name)", () =>
            void moderate({ action: u.starred ? "unstar" : "star", user_id: id }, `${u.starred ? "Unstarred" : "Starred"} ${u.display_name}`),
          ),
          muted
            ? b("unmute", "lift the mute", () => void moderate({ action: "mute", user_id: id, duration_s: 0 }, `Unmuted ${u.display_name}`))
            : b("mute 5m", "mute for 5 minutes", () => void moderate({ action: "mute", user_id: id, duration_s: 300 }, `Muted ${u.display_name} for 5 minutes`)),
          b("kick", "disconnect (they can come back)", () => void moderate({ action: "kick", user_id: id }, `Kicked ${u.display_name}`), "small warn"),
          b(
            "ban",
            "ban by session and IP",
            () => {
              if (confirm(`Ban ${u.display_name} from the room?`)) void moderate({ action: "ban", user_id: id, duration_s: 0 }, `Banned ${u.display_name}`);
            },
            "small danger",
          ),
        ),
      );
    }),
  );
}

$("#m-clearchat").addEventListener("click", () => {
  if (confirm("Clear the whole chat?")) void moderate({ action: "clear_chat" }, "Chat cleared");
});
$("#m-clearstickers").addEventListener("click", () => {
  if (confirm("Clear every sticker from the board?")) void moderate({ action: "clear_stickers" }, "Stickers cleared");
});

// Exposed for tests and the console.
(window as unknown as { venue: unknown }).venue = {
  get previews() {
    return previews;
  },
  get stage() {
    return stage;
  },
  get streamers() {
    return streamers;
  },
  get settings() {
    return settings;
  },
  get users() {
    return users;
  },
};

// The schedule card (events, slots, bookings, who is live): web/src/schedule.ts.
mountSchedule({ api, room: () => room, toast, active: () => !consoleEl.hidden });
// The recordings card (each set on slot 0, download, delete): web/src/recordings.ts.
mountRecordings({ api, room: () => room, toast, active: () => !consoleEl.hidden });

if (token) void enter();
else showLogin();
