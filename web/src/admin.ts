// Admin console (`/admin`): token sign-in, streamers with live state and a small live
// preview each (admin WHEP), the stage editor (click a streamer, then a slot; × to clear;
// layout 1..9; every change is saved with PUT at once), create/delete streamers, each
// streamer's own sticker set (PUT streamers/{id}: the room switches to it whenever a stage
// change puts that streamer on slot 0); the room's
// settings (title, now playing, background colour, interactivity mode, sticker set, slow mode:
// PUT settings) and its people with moderation (star, mute, kick, ban; clear chat / stickers).
//
// This file: sign-in, the room, the stage editor and the streamer cards. The other parts are
// modules that take an `AdminHost` (admin/host.ts): admin/previews.ts (live previews),
// admin/health.ts (each card's health line), admin/settings.ts (settings card, sticker set
// upload), admin/people.ts (people and moderation), schedule.ts and recordings.ts (cards).
import "./style.css";
import { $, HttpError, copyText, errorMessage, h, httpError } from "./common";
import { mountSchedule } from "./schedule";
import { mountRecordings } from "./recordings";
import { renderHealth, type Health } from "./admin/health";
import type { AdminHost, Id } from "./admin/host";
import { mountPeople } from "./admin/people";
import { Previews } from "./admin/previews";
import { mountSettings, selectOption } from "./admin/settings";

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

// ---------- the console's parts (admin/*.ts) ----------

const host: AdminHost = { api, roomPath, token: () => token, epoch: () => epoch, toast };
/** Live previews on the streamer cards: web/src/admin/previews.ts. */
const previews = new Previews(host);
/** The room settings card and the sticker set upload: web/src/admin/settings.ts. */
const roomSettings = mountSettings({ ...host, setsChanged: () => renderStreamers() });
/** The people card with moderation: web/src/admin/people.ts. */
const people = mountPeople(host);

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
  previews.stopAll((key) => streamerCards.get(key)?.thumb);
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
  previews.stopAll((key) => streamerCards.get(key)?.thumb);
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
  void roomSettings.load(my);
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
    void people.refresh(my);
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
    if (my === epoch && first?.sticker_set) void roomSettings.followRoomSet(my);
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
    if (s.live) previews.start(s.id, card.thumb);
    else previews.stop(key, card.thumb);
  }
  for (const [key, card] of streamerCards) {
    if (!seen.has(key)) {
      previews.stop(key, card.thumb);
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

/** Fills a card's sticker select: "(room default)" plus every set; left alone while in use. */
function showStreamerSet(sel: HTMLSelectElement, value: string) {
  if (document.activeElement === sel || sel.disabled) return;
  const stickerSets = roomSettings.stickerSets();
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
    toast(set ? `${s.name} brings “${roomSettings.setName(set)}” when on slot 1` : `${s.name} keeps the room's sticker set`);
  } catch (e) {
    toast(`Could not set stickers: ${errorMessage(e)}`, true);
  } finally {
    sel.disabled = false;
    renderStreamers();
  }
}

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

// Exposed for tests and the console.
(window as unknown as { venue: unknown }).venue = {
  get previews() {
    return previews.open;
  },
  get stage() {
    return stage;
  },
  get streamers() {
    return streamers;
  },
  get settings() {
    return roomSettings.settings();
  },
  get users() {
    return people.users();
  },
};

// The schedule card (events, slots, bookings, who is live): web/src/schedule.ts.
mountSchedule({ api, room: () => room, toast, active: () => !consoleEl.hidden });
// The recordings card (each set on slot 0, download, delete): web/src/recordings.ts.
mountRecordings({ api, room: () => room, toast, active: () => !consoleEl.hidden });

if (token) void enter();
else showLogin();
