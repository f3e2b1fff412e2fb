// Admin console: the room's schedule (issue 4 §5). Events cut into slots, drawn as a timeline
// per event in the admin's local time (hour ticks, UTC offset shown, a "now" line while the
// event runs); free slots are clicked to book an artist (new streamer with a key shown once,
// or an existing streamer of the room); booked blocks show the artist, their local time on
// hover and LIVE while their streamer publishes (refreshed every 5 s). Events are created,
// moved / resized (PUT) and deleted; bookings deleted. The API is documented at the top of
// gateway/src/api/schedule.rs. Mounted by admin.ts with `mountSchedule`.
//
// This file: the card, the booking and move forms, the timeline and the refresh. Its parts:
// schedule/api.ts (the API's shapes), schedule/time.ts (times in the admin's and the artist's
// zone), schedule/event-form.ts (create / move an event), schedule/key-box.ts (a new key).
import "./schedule.css";
import { errorMessage, h } from "./common";
import type { BookingJson, CreatedBookingJson, EventJson, StreamerJson } from "./schedule/api";
import { eventForm } from "./schedule/event-form";
import { showBookingKey } from "./schedule/key-box";
import { adminZone, artistLocal, day, hm, HOUR, MINUTE, relative, sameDay, span, timeZones, utcOffset } from "./schedule/time";

/** What admin.ts hands over: its authorized fetch, the current room, its toast. */
export interface ScheduleHost {
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  room(): string;
  toast(text: string, err?: boolean): void;
  /** Whether the console is shown (signed in). */
  active(): boolean;
}

const REFRESH_MS = 5000;
/** Narrowest block on the timeline, px: past it the timeline scrolls sideways. */
const MIN_SLOT_PX = 88;
/** The same on a phone, where names need the room more. */
const MIN_SLOT_PX_NARROW = 120;

// ---------- the module ----------

interface EventView {
  root: HTMLElement;
  head: HTMLElement;
  edit: HTMLElement;
  scroll: HTMLDivElement;
  book: HTMLElement;
  /** The last failed timeline action (a refused move), under the timeline. */
  msg: HTMLElement;
  /** The slot start picked for booking (highlighted), if the form is open. */
  picked: string | null;
  scrolledToNow: boolean;
  data: EventJson;
}

export function mountSchedule(host: ScheduleHost): void {
  const consoleEl = document.querySelector("#console") ?? document.body;
  const zoneNote = h("span", { class: "muted sched-zone" });
  const newBtn = h("button", { class: "primary", id: "sched-new", type: "button", text: "New event" });
  const createBox = h("div", { class: "sched-create", hidden: true });
  const keyBox = h("div", { class: "keybox sched-key", id: "sched-key", hidden: true });
  const list = h("div", { class: "sched-events", id: "sched-events" });
  const empty = h("p", { class: "muted sched-empty", hidden: true, text: "No events yet. Create one, then click a free slot to book an artist." });
  const stateEl = h("span", { class: "muted sched-state" });
  const section = h(
    "section",
    { class: "panel sched", id: "schedule" },
    h("div", { class: "row sched-top" }, h("h2", { class: "grow", style: "margin: 0", text: "Schedule" }), stateEl, newBtn),
    h("div", { class: "sched-zoneline" }, zoneNote),
    createBox,
    keyBox,
    list,
    empty,
  );
  consoleEl.append(section);
  showZone();

  const views = new Map<number, EventView>();
  let events: EventJson[] = [];
  let shownRoom = "";
  let loading = false;
  let streamers: StreamerJson[] = [];
  /** The booking being dragged onto a free slot (desktop), if any: refreshes wait for it. */
  let dragged: { event: number; booking: BookingJson } | null = null;

  const roomPath = () => `/api/admin/rooms/${encodeURIComponent(host.room())}`;
  const eventsPath = () => `${roomPath()}/events`;

  function showZone() {
    zoneNote.textContent = `Times in your time zone: ${adminZone()} (${utcOffset(new Date())}). Click a free slot to book it.`;
  }

  // ----- create / edit form -----

  function openCreate() {
    const start = new Date();
    start.setMinutes(0, 0, 0);
    start.setTime(start.getTime() + HOUR);
    const form = eventForm(
      { title: "", start, end: new Date(start.getTime() + 3 * HOUR), slotMinutes: 30, publicSignup: false },
      "Create event",
      async (body) => {
        const e = await host.api<EventJson>("POST", eventsPath(), body);
        host.toast(`Event “${e.title}” created`);
        createBox.hidden = true;
        createBox.replaceChildren();
        await refresh();
      },
      () => {
        createBox.hidden = true;
        createBox.replaceChildren();
      },
    );
    createBox.replaceChildren(h("h3", { class: "sched-sub", text: "New event" }), form);
    createBox.hidden = false;
    form.querySelector<HTMLInputElement>('input[name="title"]')?.focus();
  }
  newBtn.addEventListener("click", () => (createBox.hidden ? openCreate() : ((createBox.hidden = true), createBox.replaceChildren())));

  function openEdit(v: EventView) {
    if (!v.edit.hidden) {
      v.edit.hidden = true;
      v.edit.replaceChildren();
      return;
    }
    const e = v.data;
    const form = eventForm(
      { title: e.title, start: new Date(e.start), end: new Date(e.end), slotMinutes: e.slot_minutes, publicSignup: e.public_signup },
      "Save",
      async (body) => {
        await host.api<EventJson>("PUT", `${eventsPath()}/${e.id}`, body);
        host.toast(`Event “${String(body.title)}” saved`);
        v.edit.hidden = true;
        v.edit.replaceChildren();
        await refresh();
      },
      () => {
        v.edit.hidden = true;
        v.edit.replaceChildren();
      },
    );
    v.edit.replaceChildren(
      h("p", { class: "muted sched-hint", text: "Moving the start moves the bookings with it; a change that would cut a booking is refused (409)." }),
      form,
    );
    v.edit.hidden = false;
  }

  async function deleteEvent(e: EventJson) {
    const n = new Set(e.slots.filter((s) => s.booking).map((s) => s.booking?.id)).size;
    if (!confirm(`Delete the event “${e.title}”${n ? ` and its ${n} booking${n === 1 ? "" : "s"}` : ""}? Booked keys stop opening.`)) return;
    try {
      await host.api<void>("DELETE", `${eventsPath()}/${e.id}`);
      host.toast(`Event “${e.title}” deleted`);
    } catch (x) {
      host.toast(`Not deleted: ${errorMessage(x)}`, true);
    }
    await refresh();
  }

  async function deleteBooking(e: EventJson, b: BookingJson) {
    if (!confirm(`Delete the booking of “${b.artist_name}” (${span(new Date(b.start), new Date(b.end))})? Their key stops opening for this slot.`)) return;
    try {
      await host.api<void>("DELETE", `${eventsPath()}/${e.id}/bookings/${b.id}`);
      host.toast(`Booking of ${b.artist_name} deleted`);
    } catch (x) {
      host.toast(`Not deleted: ${errorMessage(x)}`, true);
    }
    await refresh();
  }

  // ----- booking form -----

  async function loadStreamers() {
    try {
      streamers = await host.api<StreamerJson[]>("GET", `${roomPath()}/streamers`);
    } catch {
      // keep the last list
    }
  }

  function openBook(v: EventView, slotStart: string) {
    v.picked = slotStart;
    delete v.book.dataset.booking;
    renderTimeline(v);
    const e = v.data;
    const free = e.slots.filter((s) => !s.booking);
    const slotSel = h("select", { name: "slot_start" });
    slotSel.replaceChildren(
      ...free.map((s) => h("option", { value: s.start, text: span(new Date(s.start), new Date(s.end)) })),
    );
    slotSel.value = slotStart;
    const count = h("input", { name: "slots", type: "number", min: 1, max: e.slots.length, step: 1, value: 1 });
    const who = h("select", { name: "streamer" }, h("option", { value: "", text: "New artist (gets a new stream key)" }));
    const fillWho = () => {
      const cur = who.value;
      who.replaceChildren(
        h("option", { value: "", text: "New artist (gets a new stream key)" }),
        ...streamers.map((s) => h("option", { value: String(s.id), text: `${s.name} (#${s.id}${s.live ? ", live" : ""}) — keeps their key` })),
      );
      who.value = cur;
    };
    fillWho();
    void loadStreamers().then(fillWho);
    const name = h("input", { name: "artist_name", maxlength: 64, placeholder: "Nova Lights" });
    const desc = h("input", { name: "description", maxlength: 500, placeholder: "synth-pop duo, 3 songs" });
    const loc = h("input", { name: "location", maxlength: 200, placeholder: "Lisbon" });
    const listId = `sched-zones-${e.id}`;
    const tz = h("input", { name: "timezone", list: listId, required: true, spellcheck: false });
    tz.value = adminZone();
    const zones = h("datalist", { id: listId }, ...timeZones().map((z) => h("option", { value: z })));
    const tzHint = h("span", { class: "muted sched-tzhint" });
    const showTz = () => {
      try {
        const f = new Intl.DateTimeFormat(undefined, { timeZone: tz.value.trim(), hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "shortOffset" });
        tzHint.textContent = `slot there: ${f.format(new Date(slotSel.value))}`;
        tz.setCustomValidity("");
      } catch {
        tzHint.textContent = "not an IANA zone (e.g. Europe/Berlin)";
      }
    };
    tz.addEventListener("input", showTz);
    slotSel.addEventListener("change", () => {
      v.picked = slotSel.value;
      renderTimeline(v);
      showTz();
    });
    showTz();
    const email = h("input", { name: "email", type: "email", maxlength: 254, placeholder: "never shown publicly" });
    const err = h("span", { class: "error sched-error", role: "alert" });
    const nameLabel = h("label", { text: "Artist name" });
    who.addEventListener("change", () => {
      nameLabel.textContent = who.value ? "Artist name (empty: the streamer's name)" : "Artist name";
      name.required = !who.value;
    });
    name.required = true;
    const field = (label: HTMLElement | string, input: HTMLElement, cls = "") =>
      h("div", { class: `sched-field ${cls}` }, typeof label === "string" ? h("label", { text: label }) : label, input);
    const form = h(
      "form",
      { class: "sched-form sched-bookform", autocomplete: "off" },
      field("Slot", slotSel),
      field("Slots", count, "sched-narrow"),
      field("Artist", who, "sched-wide"),
      field(nameLabel, name),
      field("Description", desc, "sched-wide"),
      field("Location", loc),
      field("Time zone (IANA)", h("div", { class: "sched-stack" }, tz, zones, tzHint)),
      field("Email", email),
      h(
        "div",
        { class: "row sched-actions" },
        h("button", { class: "primary", type: "submit", text: "Book" }),
        h("button", { type: "button", text: "Cancel", onclick: () => closeBook(v) }),
        err,
      ),
    );
    for (const f of form.querySelectorAll<HTMLElement>(".sched-field")) {
      const input = f.querySelector("input, select");
      const label = f.querySelector("label");
      if (input && label) {
        input.id ||= `sched-b${e.id}-${(input as HTMLInputElement).name}`;
        label.setAttribute("for", input.id);
      }
    }
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      const body: Record<string, unknown> = {
        slot_start: slotSel.value,
        slots: Math.max(1, Number(count.value) || 1),
        artist_name: name.value.trim(),
        description: desc.value.trim(),
        location: loc.value.trim(),
        timezone: tz.value.trim(),
      };
      if (email.value.trim()) body.email = email.value.trim();
      if (who.value) body.streamer_id = Number(who.value);
      const btn = form.querySelector<HTMLButtonElement>('button[type="submit"]');
      if (btn) btn.disabled = true;
      try {
        const c = await host.api<CreatedBookingJson>("POST", `${eventsPath()}/${e.id}/bookings`, body);
        closeBook(v);
        showBookingKey(keyBox, c);
        host.toast(`${c.booking.artist_name} booked${c.merged ? " (merged with their booking next to it)" : ""}`);
        await refresh();
      } catch (x) {
        err.textContent = errorMessage(x);
      } finally {
        if (btn) btn.disabled = false;
      }
    });
    v.book.replaceChildren(h("h3", { class: "sched-sub", text: `Book a slot of “${e.title}”` }), form);
    v.book.hidden = false;
    name.focus();
  }

  function closeBook(v: EventView) {
    v.picked = null;
    delete v.book.dataset.booking;
    v.book.hidden = true;
    v.book.replaceChildren();
    renderTimeline(v);
  }

  /** How many slots booking `b` covers (the event's last slot may be shorter). */
  function slotsOf(e: EventJson, b: BookingJson): number {
    const bs = new Date(b.start).getTime();
    const be = new Date(b.end).getTime();
    return Math.max(1, e.slots.filter((s) => {
      const t = new Date(s.start).getTime();
      return t >= bs && t < be;
    }).length);
  }

  /** PUT the booking to `slots` slots from `slotStart`; the API's 400/409 goes to `err`. */
  async function moveBooking(v: EventView, b: BookingJson, slotStart: string, slots: number, err: HTMLElement = v.msg) {
    err.textContent = "";
    v.msg.textContent = "";
    try {
      const moved = await host.api<BookingJson>("PUT", `${eventsPath()}/${v.data.id}/bookings/${b.id}`, { slot_start: slotStart, slots });
      host.toast(`${moved.artist_name} now ${span(new Date(moved.start), new Date(moved.end))}`);
      await refresh();
      return true;
    } catch (x) {
      err.textContent = `Not moved: ${errorMessage(x)}`;
      return false;
    }
  }

  /** The panel of a booked block: details, move / resize, delete. */
  function openMove(v: EventView, b: BookingJson) {
    v.picked = null;
    const e = v.data;
    const slotSel = h("select", { name: "slot_start" });
    slotSel.replaceChildren(...e.slots.map((s) => h("option", { value: s.start, text: span(new Date(s.start), new Date(s.end)) })));
    slotSel.value = b.start;
    const count = h("input", { name: "slots", type: "number", min: 1, max: e.slots.length, step: 1 });
    count.value = String(slotsOf(e, b));
    const err = h("span", { class: "error sched-error", role: "alert" });
    const line = (k: string, val: string | null | undefined) => (val ? h("div", {}, h("span", { class: "muted", text: `${k}: ` }), val) : null);
    const bs = new Date(b.start);
    const form = h(
      "form",
      { class: "sched-form sched-moveform", autocomplete: "off" },
      h("div", { class: "sched-field" }, h("label", { for: `sched-m${b.id}-slot`, text: "Start slot" }), slotSel),
      h("div", { class: "sched-field sched-narrow" }, h("label", { for: `sched-m${b.id}-slots`, text: "Slots" }), count),
      h(
        "div",
        { class: "row sched-actions" },
        h("button", { class: "primary", type: "submit", text: "Move / resize" }),
        h("button", { class: "danger", type: "button", "data-action": "delete-booking", text: "Delete booking", onclick: () => void deleteBooking(e, b) }),
        h("button", { type: "button", text: "Close", onclick: () => closeBook(v) }),
        err,
      ),
    );
    slotSel.id = `sched-m${b.id}-slot`;
    count.id = `sched-m${b.id}-slots`;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (await moveBooking(v, b, slotSel.value, Math.max(1, Number(count.value) || 1), err)) closeBook(v);
    });
    v.book.replaceChildren(
      h("h3", { class: "sched-sub" }, `Booking of “${b.artist_name}”`, b.live ? h("span", { class: "badge live", style: "margin-left:8px", text: "live" }) : null),
      h(
        "div",
        { class: "sched-details" },
        line("your time", `${span(bs, new Date(b.end))} (${utcOffset(bs)})`),
        line("their time", `${artistLocal(b)} ${b.timezone}`),
        line("from", b.location),
        line("about", b.description),
        line("email", b.email),
        line("streamer", b.streamer_id !== undefined ? `#${b.streamer_id}` : null),
      ),
      form,
    );
    v.book.dataset.booking = String(b.id);
    v.book.hidden = false;
    renderTimeline(v);
  }

  // ----- rendering -----

  function makeView(e: EventJson): EventView {
    const v: EventView = {
      root: h("article", { class: "sched-event", "data-event": e.id }),
      head: h("div", { class: "sched-head" }),
      edit: h("div", { class: "sched-editbox", hidden: true }),
      scroll: h("div", { class: "tl-scroll" }),
      book: h("div", { class: "sched-bookbox", hidden: true }),
      msg: h("div", { class: "error sched-error sched-msg", role: "alert" }),
      picked: null,
      scrolledToNow: false,
      data: e,
    };
    v.root.append(v.head, v.edit, v.scroll, v.msg, v.book);
    return v;
  }

  function renderHead(v: EventView) {
    const e = v.data;
    const s = new Date(e.start);
    const en = new Date(e.end);
    const now = Date.now();
    const bookings = uniqueBookings(e);
    const live = bookings.filter((b) => b.live);
    const state =
      now < s.getTime() ? `starts in ${relative(s.getTime() - now)}` : now < en.getTime() ? "on now" : "ended";
    const freeCount = e.slots.filter((x) => !x.booking).length;
    v.head.replaceChildren(
      h(
        "div",
        { class: "sched-title-line" },
        h("strong", { class: "sched-etitle", text: e.title }),
        h("span", { class: `badge${state === "on now" ? " sched-on" : ""}`, text: state }),
        e.public_signup ? h("span", { class: "badge sched-public", text: "public sign-up", title: `POST /api/rooms/${host.room()}/events/${e.id}/signup` }) : null,
        ...live.map((b) => h("span", { class: "badge live", text: `live: ${b.artist_name}` })),
      ),
      h(
        "div",
        { class: "sched-meta muted" },
        `${span(s, en)} (${utcOffset(s)}) · ${e.slot_minutes}-min slots · ${bookings.length} booked · ${freeCount} free`,
      ),
      h(
        "div",
        { class: "sched-buttons" },
        h("button", { class: "small", type: "button", "data-action": "edit", text: "Move / resize", onclick: () => openEdit(v) }),
        h("button", { class: "small danger", type: "button", "data-action": "delete", text: "Delete", onclick: () => void deleteEvent(e) }),
      ),
    );
  }

  function uniqueBookings(e: EventJson): BookingJson[] {
    const seen = new Map<number, BookingJson>();
    for (const s of e.slots) if (s.booking && !seen.has(s.booking.id)) seen.set(s.booking.id, s.booking);
    return [...seen.values()];
  }

  function renderTimeline(v: EventView) {
    const e = v.data;
    const t0 = new Date(e.start).getTime();
    const t1 = new Date(e.end).getTime();
    const dur = Math.max(t1 - t0, MINUTE);
    const pct = (t: number) => `${(((Math.min(Math.max(t, t0), t1) - t0) / dur) * 100).toFixed(4)}%`;
    const now = Date.now();
    const visible = v.scroll.clientWidth || 1100;
    // Every slot at least MIN_SLOT_PX wide (a shorter last slot excepted).
    const slotMs = e.slot_minutes * MINUTE;
    const minWidth = Math.ceil((dur / slotMs) * (window.innerWidth < 640 ? MIN_SLOT_PX_NARROW : MIN_SLOT_PX));
    // The timeline is at least as wide as its box (CSS min-width: 100%).
    const width = Math.max(visible, minWidth);
    const pxPerHour = (width / dur) * HOUR;

    // Hour ticks at the admin's local hour boundaries (DST-safe through Date's local setters).
    const ticks: HTMLElement[] = [];
    const step = [1, 2, 3, 4, 6, 12, 24].find((n) => n * pxPerHour >= 56) ?? 24;
    const first = new Date(t0);
    first.setMinutes(0, 0, 0);
    if (first.getTime() < t0) first.setHours(first.getHours() + 1);
    let prevDay: Date | null = null;
    for (let d = new Date(first), i = 0; d.getTime() <= t1 && i < 24 * 32; d.setHours(d.getHours() + 1), i++) {
      const labelled = d.getHours() % step === 0;
      const newDay = prevDay === null ? !sameDay(d, new Date(t0)) : !sameDay(d, prevDay);
      if (labelled) prevDay = new Date(d);
      ticks.push(
        h(
          "div",
          {
            class: `tl-tick${labelled ? " major" : ""}${d.getHours() === 0 ? " midnight" : ""}${(d.getTime() - t0) / dur > 0.93 ? " end" : ""}`,
            style: `left:${pct(d.getTime())}`,
          },
          labelled ? h("span", { text: newDay || d.getHours() === 0 ? `${day(d)} ${hm(d)}` : hm(d) }) : null,
        ),
      );
    }
    // The start time, where the first hour tick is not right next to it.
    const edgeRoom = ((first.getTime() - t0) / dur) * width;
    const axis = h("div", { class: "tl-axis" }, edgeRoom > 56 ? h("span", { class: "tl-edge", text: hm(new Date(t0)) }) : null);

    // Blocks: each booking once (merged windows span their slots), free slots one by one.
    const lane = h("div", { class: "tl-lane" });
    for (const b of uniqueBookings(e)) {
      const bs = new Date(b.start).getTime();
      const be = new Date(b.end).getTime();
      const tip = [
        `${b.artist_name}${b.live ? " — LIVE" : ""}`,
        `your time: ${span(new Date(bs), new Date(be))} (${utcOffset(new Date(bs))})`,
        `their time: ${artistLocal(b)} ${b.timezone}`,
        b.location ? `from ${b.location}` : "",
        b.description,
        b.email ? `email: ${b.email}` : "",
        b.streamer_id !== undefined ? `streamer #${b.streamer_id}` : "",
        "click for details, move / resize; or drag onto a free slot",
      ]
        .filter(Boolean)
        .join("\n");
      const past = be <= now;
      lane.append(
        h(
          "div",
          {
            class: `tl-block booked${b.live ? " live" : ""}${past ? " past" : ""}`,
            style: `left:${pct(bs)};width:calc(${pct(t0 + (be - bs))} - 4px)`,
            title: tip,
            "data-booking": b.id,
            "data-live": b.live ? "1" : "0",
            tabindex: 0,
            draggable: "true",
            onclick: () => openMove(v, b),
            onkeydown: (ev: Event) => {
              if ((ev as KeyboardEvent).key === "Enter" && ev.target === ev.currentTarget) openMove(v, b);
            },
            ondragstart: (ev: Event) => {
              dragged = { event: e.id, booking: b };
              const dt = (ev as DragEvent).dataTransfer;
              if (dt) {
                dt.setData("text/plain", `${b.artist_name}`);
                dt.effectAllowed = "move";
              }
              v.scroll.classList.add("dragging");
            },
            ondragend: () => {
              dragged = null;
              v.scroll.classList.remove("dragging");
            },
          },
          b.live ? h("span", { class: "tl-live", text: "LIVE" }) : null,
          h("div", { class: "tl-name" }, h("span", { class: "tl-artist", text: b.artist_name })),
          h("div", { class: "tl-time", text: `${hm(new Date(bs))}–${hm(new Date(be))}${b.location ? ` · ${b.location}` : ""}` }),
          h("button", {
            class: "tl-x",
            type: "button",
            title: `delete the booking of ${b.artist_name}`,
            "aria-label": `delete the booking of ${b.artist_name}`,
            text: "×",
            onclick: (ev: Event) => {
              ev.stopPropagation();
              void deleteBooking(e, b);
            },
          }),
        ),
      );
    }
    for (const s of e.slots) {
      if (s.booking) continue;
      const ss = new Date(s.start).getTime();
      const se = new Date(s.end).getTime();
      const past = se <= now;
      lane.append(
        h(
          "button",
          {
            class: `tl-block free${past ? " past" : ""}${v.picked === s.start ? " picked" : ""}`,
            type: "button",
            style: `left:${pct(ss)};width:calc(${pct(t0 + (se - ss))} - 4px)`,
            title: `book ${span(new Date(ss), new Date(se))}`,
            "data-slot-start": s.start,
            onclick: () => openBook(v, s.start),
            ondragover: (ev: Event) => {
              if (dragged?.event !== e.id) return;
              ev.preventDefault();
              (ev.currentTarget as HTMLElement).classList.add("drop");
            },
            ondragleave: (ev: Event) => (ev.currentTarget as HTMLElement).classList.remove("drop"),
            ondrop: (ev: Event) => {
              ev.preventDefault();
              const d = dragged;
              dragged = null;
              v.scroll.classList.remove("dragging");
              if (d?.event === e.id) void moveBooking(v, d.booking, s.start, slotsOf(e, d.booking));
            },
          },
          h("span", { class: "tl-plus", text: "+" }),
          h("span", { class: "tl-time", text: hm(new Date(ss)) }),
        ),
      );
    }
    const inner = h("div", { class: "tl", style: `width:${minWidth}px` }, axis, ...ticks, lane);
    if (now >= t0 && now < t1) {
      inner.append(h("div", { class: `tl-now${(now - t0) / dur > 0.9 ? " end" : ""}`, style: `left:${pct(now)}`, title: `now ${hm(new Date(now))}` }, h("span", { text: `now ${hm(new Date(now))}` })));
    }
    const keep = v.scroll.scrollLeft;
    v.scroll.replaceChildren(inner);
    if (!v.scrolledToNow && now >= t0 && now < t1 && width > visible) {
      v.scroll.scrollLeft = Math.max(0, ((now - t0) / dur) * width - visible / 3);
      v.scrolledToNow = true;
    } else {
      v.scroll.scrollLeft = keep;
    }
  }

  function render() {
    showZone();
    const seen = new Set<number>();
    const sorted = [...events].sort((a, b) => a.start.localeCompare(b.start) || a.id - b.id);
    for (const e of sorted) {
      seen.add(e.id);
      let v = views.get(e.id);
      if (!v) {
        v = makeView(e);
        views.set(e.id, v);
      }
      v.data = e;
      list.append(v.root); // keeps time order
      renderHead(v);
      if (v.picked && !e.slots.some((s) => s.start === v.picked && !s.booking)) {
        v.picked = null;
      }
      const open = v.book.dataset.booking;
      if (open && !e.slots.some((s) => String(s.booking?.id) === open)) closeBook(v);
      renderTimeline(v);
    }
    for (const [id, v] of views) {
      if (!seen.has(id)) {
        v.root.remove();
        views.delete(id);
      }
    }
    empty.hidden = events.length > 0;
  }

  function resetRoom() {
    for (const v of views.values()) v.root.remove();
    views.clear();
    events = [];
    keyBox.hidden = true;
    keyBox.replaceChildren();
    createBox.hidden = true;
    createBox.replaceChildren();
    stateEl.textContent = "";
  }

  let again = false;
  async function refresh(): Promise<void> {
    if (!host.active()) return;
    if (dragged) return; // re-rendering would pull the blocks from under the pointer
    if (loading) {
      again = true; // a change was made while a read was under way: read once more after it
      return;
    }
    const r = host.room();
    if (r !== shownRoom) {
      // Another room: drop the old one's timeline and forms. Not on the first load, where a
      // "New event" form opened before the first read must stay open.
      if (shownRoom) resetRoom();
      shownRoom = r;
    }
    loading = true;
    try {
      const list = await host.api<EventJson[]>("GET", eventsPath());
      if (host.room() !== r) return;
      events = Array.isArray(list) ? list : [];
      stateEl.textContent = "";
      render();
    } catch (x) {
      stateEl.textContent = `schedule unavailable (${errorMessage(x)})`;
    } finally {
      loading = false;
    }
    if (again) {
      again = false;
      await refresh();
    }
  }

  // Exposed for tests.
  (window as unknown as { venueSchedule: unknown }).venueSchedule = {
    get events() {
      return events;
    },
    refresh,
  };

  document.querySelector("#room")?.addEventListener("change", () => void refresh());
  window.addEventListener("resize", () => {
    for (const v of views.values()) renderTimeline(v);
  });
  setInterval(() => void refresh(), REFRESH_MS);
  // The console opens after sign-in: look soon, then every REFRESH_MS.
  const start = setInterval(() => {
    if (host.active()) {
      clearInterval(start);
      void refresh();
    }
  }, 200);
}
