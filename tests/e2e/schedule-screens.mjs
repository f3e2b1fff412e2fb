// Screenshots of the admin console's schedule for a person to look at (not a test): starts
// `venue`, creates an event on now (one artist past, one live over RTMP from ffmpeg, a merged
// two-slot booking, one later) and one tomorrow with public sign-up, then saves the schedule
// card at desktop and phone size, with the booking form and the key box, to out/screens/.
//
// Run: cargo build -p venue-gateway && (cd web && npm run build) && (cd tests/e2e && node schedule-screens.mjs)
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, OUT, adminApi, freeTcpPort, launchChromium, startVenue, waitFor } from "./lib.mjs";

const DIR = join(OUT, "screens");
mkdirSync(DIR, { recursive: true });
const ZONE = process.env.SCREENS_TZ ?? "Europe/Berlin";

const rtmpPort = await freeTcpPort();
const venue = await startVenue({ name: "schedule-screens", extraArgs: ["--rtmp-listen", `127.0.0.1:${rtmpPort}`] });
const browser = await launchChromium();
const api = adminApi(venue.base);
const events = "/api/admin/rooms/main/events";
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
let ffmpeg = null;

try {
  const M = 60_000;
  const now = Date.now();
  // On now: 30-minute slots from 40 minutes ago, slot 1 is the current one.
  const t0 = Math.floor((now - 40 * M) / (5 * M)) * 5 * M;
  const night = await api.call("POST", events, { title: "Friday Night Session", start: iso(t0), end: iso(t0 + 210 * M), slot_minutes: 30 }, 201);
  const book = (ev, k, body) =>
    api.call("POST", `${events}/${ev.id}/bookings`, { slot_start: ev.slots[k].start, ...body }, 201);
  await book(night, 0, { artist_name: "Ana Moura", location: "Lisbon", timezone: "Europe/Lisbon", description: "fado, solo guitar" });
  const live = await book(night, 1, { artist_name: "Nova Lights", location: "Tokyo", timezone: "Asia/Tokyo", description: "synth-pop duo", email: "nova@example.org" });
  await book(night, 3, { artist_name: "Dj Kit & The Cosmos", slots: 2, location: "New York", timezone: "America/New_York" });
  await book(night, 6, { artist_name: "Elif", location: "Istanbul", timezone: "Europe/Istanbul" });
  const tomorrow = new Date(now + 24 * 60 * M);
  tomorrow.setUTCHours(18, 0, 0, 0);
  const mic = await api.call(
    "POST",
    events,
    { title: "Open Mic Sunday", start: iso(tomorrow.getTime()), end: iso(tomorrow.getTime() + 120 * M), slot_minutes: 15, public_signup: true },
    201,
  );
  await book(mic, 2, { artist_name: "Bea", location: "Kraków", timezone: "Europe/Warsaw" });

  ffmpeg = spawn(
    "ffmpeg",
    ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-c:v", "libx264",
      "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p", "-f", "flv",
      `rtmp://127.0.0.1:${rtmpPort}/live/${live.stream_key}`],
    { stdio: "ignore" },
  );
  await waitFor(async () => (await api.call("GET", events))[0].slots[1].booking.live, { timeout: 20000, what: "Nova Lights live" });

  const open = async (name, viewport, mobile = false) => {
    const ctx = await browser.newContext({ viewport, deviceScaleFactor: mobile ? 2 : 1, isMobile: mobile, hasTouch: mobile, timezoneId: ZONE });
    await ctx.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
    const page = await ctx.newPage();
    page.on("pageerror", (e) => console.log(`[${name}] page error: ${e}`));
    await page.goto(`${venue.base}/admin`);
    await page.waitForSelector(".tl-block.booked.live");
    return page;
  };

  const desk = await open("desktop", { width: 1280, height: 900 });
  await desk.locator("#schedule").scrollIntoViewIfNeeded();
  await desk.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-desktop.png") });
  await desk.hover(".tl-block.booked.live");
  await desk.screenshot({ path: join(DIR, "admin-schedule-desktop-page.png"), fullPage: true });
  // The booking form on a free slot, then the key box after booking.
  await desk.click(".sched-event .tl-block.free >> nth=0");
  await desk.fill(".sched-bookform input[name=artist_name]", "Cosmo");
  await desk.fill(".sched-bookform input[name=location]", "São Paulo");
  await desk.fill(".sched-bookform input[name=timezone]", "America/Sao_Paulo");
  await desk.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-book.png") });
  await desk.click(".sched-bookform button[type=submit]");
  await desk.waitForSelector("#sched-key:not([hidden])");
  await desk.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-key.png") });
  await desk.click("#sched-key button:text-is('I saved it — hide')");
  await desk.click(".tl-block.booked.live");
  await desk.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-booking-panel.png") });
  await desk.click(".sched-bookbox button:text-is('Close')");
  await desk.click("#sched-new");
  await desk.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-new.png") });

  const phone = await open("phone", { width: 390, height: 844 }, true);
  await phone.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-phone.png") });
  await phone.click(".sched-event .tl-block.free >> nth=0");
  await phone.locator("#schedule").screenshot({ path: join(DIR, "admin-schedule-phone-book.png") });
  console.log(`screenshots in ${DIR}`);
} finally {
  ffmpeg?.kill("SIGKILL");
  await browser.close();
  await venue.stop();
}
