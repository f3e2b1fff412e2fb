// Admin console: the room's recordings (issue 5 item 4). One row per recorded set (a streamer
// live on stage slot 0): artist, start in the admin's local time, duration, size, a download
// link and delete; a set being recorded shows REC and its growing length. Refreshed every 10 s.
//
// Downloads use the `signed_url` of each item (an HMAC-signed link valid for an hour, renewed
// with every refresh): a plain `<a download>` the browser streams to disk, so a long set never
// sits in memory as a blob and the bearer token never goes into a URL. The API is documented
// at the top of gateway/src/api/recordings.rs. Mounted by admin.ts with `mountRecordings`.
import "./recordings.css";
import { errorMessage, h } from "./common";

/** An item of `GET /api/admin/rooms/{room}/recordings`. Times RFC 3339 UTC. */
export interface RecordingJson {
  id: number;
  artist: string;
  streamer_id: number;
  booking_id: number | null;
  start: string;
  end: string | null;
  duration_s: number;
  bytes: number;
  recording: boolean;
  file: string;
  download_url: string;
  signed_url: string;
}

/** What admin.ts hands over (the same shape the schedule card takes). */
export interface RecordingsHost {
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  room(): string;
  toast(text: string, err?: boolean): void;
  /** Whether the console is shown (signed in). */
  active(): boolean;
}

const REFRESH_MS = 10_000;

/** `1:02:03` or `2:03`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** `812 KB`, `1.4 GB` (decimal units). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

function formatStart(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

export function mountRecordings(host: RecordingsHost): void {
  const consoleEl = document.querySelector("#console") ?? document.body;
  const stateEl = h("span", { class: "muted rec-state" });
  const table = h("div", { class: "rec-list", id: "rec-list" });
  const empty = h("p", {
    class: "muted rec-empty",
    hidden: true,
    text: "No recordings yet. Each artist's set on stage slot 0 is recorded while they are live.",
  });
  const section =
    document.querySelector<HTMLElement>("#recordings") ??
    h("section", { class: "panel", id: "recordings" });
  section.replaceChildren(
    h("div", { class: "row rec-top" }, h("h2", { class: "grow", style: "margin: 0", text: "Recordings" }), stateEl),
    table,
    empty,
  );
  if (!section.isConnected) consoleEl.append(section);

  let loading = false;
  let shownRoom = "";

  function row(r: RecordingJson): HTMLElement {
    const when = h("span", { class: "rec-when", text: formatStart(r.start), title: `${r.start} (UTC)` });
    const len = h("span", { class: "rec-len", text: formatDuration(r.duration_s) });
    const size = h("span", { class: "rec-size muted", text: formatBytes(r.bytes) });
    const download = h("a", {
      class: "button small",
      href: r.signed_url,
      download: r.file,
      title: r.recording ? "download what is recorded so far" : `download ${r.file}`,
      text: "Download",
    });
    const del = h("button", {
      class: "small danger",
      type: "button",
      disabled: r.recording,
      title: r.recording ? "can be deleted when the set ends" : "delete the file",
      text: "Delete",
      onclick: async () => {
        if (!confirm(`Delete the recording of ${r.artist} (${formatStart(r.start)})? The file is removed.`)) return;
        try {
          await host.api("DELETE", `/api/admin/recordings/${r.id}`);
          host.toast(`Deleted ${r.artist}'s recording`);
          void refresh();
        } catch (e) {
          host.toast(errorMessage(e), true);
        }
      },
    });
    return h(
      "div",
      { class: `rec-item${r.recording ? " live" : ""}`, "data-id": r.id },
      h(
        "div",
        { class: "rec-main" },
        h("span", { class: "rec-artist", text: r.artist }),
        r.recording ? h("span", { class: "pill rec-pill", text: "● REC" }) : null,
        r.booking_id !== null ? h("span", { class: "muted rec-booked", text: "booked slot" }) : null,
      ),
      when,
      len,
      size,
      h("div", { class: "rec-actions" }, download, del),
    );
  }

  async function refresh() {
    if (!host.active() || loading) return;
    loading = true;
    const room = host.room();
    try {
      const items = await host.api<RecordingJson[]>("GET", `/api/admin/rooms/${encodeURIComponent(room)}/recordings`);
      if (room !== host.room()) return;
      shownRoom = room;
      table.replaceChildren(...items.map(row));
      empty.hidden = items.length > 0;
      const total = items.reduce((n, r) => n + r.bytes, 0);
      stateEl.textContent = items.length ? `${items.length} · ${formatBytes(total)}` : "";
    } catch (e) {
      stateEl.textContent = `not loaded: ${errorMessage(e)}`;
    } finally {
      loading = false;
    }
  }

  setInterval(() => {
    void refresh();
  }, REFRESH_MS);
  // A room switch or a sign-in shows up within a second, not at the next 10 s tick.
  setInterval(() => {
    if (host.active() && host.room() !== shownRoom) void refresh();
  }, 1000);
  void refresh();
}
