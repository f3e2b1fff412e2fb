// Screenshots of the admin console's recordings card for a person to look at (not a test):
// starts `venue`, books "Nova Lights" now, puts two streamers on slot 0 one after the other
// (ffmpeg over RTMP: a finished ~5 s set, then one still being recorded), saves the card at
// desktop and phone size to out/screens/, and downloads the finished set through the card's
// link (the signed URL) to check the browser gets the whole file under its name.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && node recordings-screens.mjs)
import { spawn } from "node:child_process";
import { mkdirSync, statSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, OUT, adminApi, freeTcpPort, launchChromium, startVenue, waitFor } from "./lib.mjs";

const DIR = join(OUT, "screens");
mkdirSync(DIR, { recursive: true });
const ZONE = process.env.SCREENS_TZ ?? "Europe/Berlin";

const rtmpPort = await freeTcpPort();
const venue = await startVenue({ name: "recordings-screens", extraArgs: ["--rtmp-listen", `127.0.0.1:${rtmpPort}`] });
const browser = await launchChromium();
const api = adminApi(venue.base);
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const publish = (key, seconds) =>
  spawn(
    "ffmpeg",
    ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", `testsrc2=size=640x360:rate=30${seconds ? `:duration=${seconds}` : ""}`,
      "-f", "lavfi", "-i", `sine=frequency=440:sample_rate=44100${seconds ? `:duration=${seconds}` : ""}`,
      "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
      "-c:a", "aac", "-ac", "2", "-f", "flv", `rtmp://127.0.0.1:${rtmpPort}/live/${key}`],
    { stdio: "ignore" },
  );
let ffmpeg = null;
const recordings = () => api.call("GET", "/api/admin/rooms/main/recordings");

try {
  const M = 60_000;
  const t0 = Math.floor(Date.now() / (5 * M)) * 5 * M;
  const night = await api.call("POST", "/api/admin/rooms/main/events", { title: "Friday Night Session", start: iso(t0), end: iso(t0 + 60 * M), slot_minutes: 60 }, 201);
  const nova = await api.call("POST", `/api/admin/rooms/main/events/${night.id}/bookings`,
    { slot_start: night.slots[0].start, artist_name: "Nova Lights", timezone: "Asia/Tokyo" }, 201);
  const host = await api.call("POST", "/api/admin/rooms/main/streamers", { name: "Dj Kit & The Cosmos" }, 201);
  const stage = (id) => api.call("PUT", "/api/admin/rooms/main/stage", { layout: 1, slots: [id] }, 200);

  await stage(nova.booking.streamer_id);
  const first = publish(nova.stream_key, 5);
  await new Promise((r) => first.on("exit", r));
  await waitFor(async () => (await recordings()).some((r) => !r.recording), { timeout: 15000, what: "a finished set" });

  await stage(host.id);
  ffmpeg = publish(host.stream_key, 0);
  await waitFor(async () => (await recordings()).some((r) => r.recording && r.duration_s > 2), { timeout: 20000, what: "a set being recorded" });

  const open = async (name, viewport, mobile = false) => {
    const ctx = await browser.newContext({ viewport, deviceScaleFactor: mobile ? 2 : 1, isMobile: mobile, hasTouch: mobile, timezoneId: ZONE, acceptDownloads: true });
    await ctx.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
    const page = await ctx.newPage();
    page.on("pageerror", (e) => console.log(`[${name}] page error: ${e}`));
    await page.goto(`${venue.base}/admin`);
    await page.waitForSelector("#recordings .rec-item.live");
    return page;
  };

  const desk = await open("desktop", { width: 1280, height: 900 });
  await desk.locator("#recordings").scrollIntoViewIfNeeded();
  await desk.locator("#recordings").screenshot({ path: join(DIR, "admin-recordings-desktop.png") });
  await desk.screenshot({ path: join(DIR, "admin-recordings-desktop-page.png"), fullPage: true });
  // Download the finished set through its link.
  const [download] = await Promise.all([
    desk.waitForEvent("download"),
    desk.click("#recordings .rec-item:not(.live) a.button"),
  ]);
  const saved = join(DIR, "download.mp4");
  await download.saveAs(saved);
  const finished = (await recordings()).find((r) => !r.recording);
  console.log(`download: ${download.suggestedFilename()} ${statSync(saved).size} bytes (listed ${finished.file} ${finished.bytes} bytes)`);
  rmSync(saved);

  const phone = await open("phone", { width: 390, height: 844 }, true);
  await phone.locator("#recordings").scrollIntoViewIfNeeded();
  await phone.locator("#recordings").screenshot({ path: join(DIR, "admin-recordings-phone.png") });
  console.log(`screens in ${DIR}`);
} finally {
  ffmpeg?.kill("SIGKILL");
  await browser.close();
  await venue.stop();
}
