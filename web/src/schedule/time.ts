// Admin console, schedule card: times as the admin reads them (their own zone, with its UTC
// offset) and as the API gives them (RFC 3339; a booking's `local_*` in the artist's zone).
import type { BookingJson } from "./api";

/** One minute, ms. */
export const MINUTE = 60_000;
/** One hour, ms. */
export const HOUR = 60 * MINUTE;

/** The admin's IANA time zone (`UTC` when the browser does not say). */
export const adminZone = (): string => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
};

/** `UTC+1`, `UTC−5`, `UTC+5:30` for the admin's offset at `d`. */
export function utcOffset(d: Date): string {
  const m = -d.getTimezoneOffset();
  const sign = m < 0 ? "−" : "+";
  const a = Math.abs(m);
  const hh = Math.floor(a / 60);
  const mm = a % 60;
  return `UTC${sign}${hh}${mm ? `:${String(mm).padStart(2, "0")}` : ""}`;
}

/** The offset at the end of an RFC 3339 string as `UTC+1` (`Z` → `UTC`). */
function offsetOf(rfc: string): string {
  const m = /([+-])(\d\d):(\d\d)$/.exec(rfc);
  if (!m) return "UTC";
  const hh = Number(m[2]);
  const mm = Number(m[3]);
  if (hh === 0 && mm === 0) return "UTC";
  return `UTC${m[1] === "-" ? "−" : "+"}${hh}${mm ? `:${m[3]}` : ""}`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** A Date as a `datetime-local` value in the admin's zone (minute precision). */
export function toLocalInput(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A `datetime-local` value (admin's zone) as RFC 3339 UTC, or null when empty/invalid. */
export function fromLocalInput(v: string): string | null {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
export const hm = (d: Date) => timeFmt.format(d);
export const day = (d: Date) => dayFmt.format(d);
export const sameDay = (a: Date, b: Date) => a.toDateString() === b.toDateString();

/** `Sat 21 Nov 21:00–23:30` or across days `Sat 21 Nov 22:00 – Sun 22 Nov 02:00`. */
export function span(a: Date, b: Date): string {
  const endIsMidnight = b.getHours() === 0 && b.getMinutes() === 0 && b.getTime() - a.getTime() <= 24 * HOUR;
  if (sameDay(a, b) || (endIsMidnight && sameDay(a, new Date(b.getTime() - 1)))) return `${day(a)} ${hm(a)}–${hm(b)}`;
  return `${day(a)} ${hm(a)} – ${day(b)} ${hm(b)}`;
}

/** The artist's window in their zone from the API's `local_*`: `2026-11-21 15:00–15:30 (UTC−5)`. */
export function artistLocal(b: BookingJson): string {
  const d0 = b.local_start.slice(0, 10);
  const d1 = b.local_end.slice(0, 10);
  const t0 = b.local_start.slice(11, 16);
  const t1 = b.local_end.slice(11, 16);
  const o0 = offsetOf(b.local_start);
  const o1 = offsetOf(b.local_end);
  const zone = o0 === o1 ? o0 : `${o0} → ${o1}`;
  return d0 === d1 ? `${d0} ${t0}–${t1} (${zone})` : `${d0} ${t0} – ${d1} ${t1} (${zone})`;
}

/** A duration for people: `25 min`, `2 h 30 min`, `20 h`, `3 days`. */
export function relative(ms: number): string {
  const m = Math.round(Math.abs(ms) / MINUTE);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 6) return `${hrs} h${m % 60 ? ` ${m % 60} min` : ""}`;
  if (hrs < 48) return `${Math.round(m / 60)} h`;
  return `${Math.round(hrs / 24)} days`;
}

let zonesCache: string[] | null = null;
/** UTC, the admin's zone, then every zone the browser knows (IANA names). */
export function timeZones(): string[] {
  if (zonesCache) return zonesCache;
  let list: string[] = [];
  try {
    list = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
  } catch {
    list = [];
  }
  const mine = adminZone();
  zonesCache = [...new Set(["UTC", mine, ...list])];
  return zonesCache;
}
