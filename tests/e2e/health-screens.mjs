// Screenshots of streamer health in the admin console for a person to look at (not a test):
// starts `venue`, publishes two RTMP streams from ffmpeg — a clean zerolatency 720p30 one with
// AAC 44.1 kHz stereo audio, and one with B-frames — waits until the console's cards show their
// health (and the B-frame warning), and saves the streamers panel and the page to out/screens/.
//
// Run: cargo build -p venue-gateway && (cd web && npm run build) && (cd tests/e2e && node health-screens.mjs)
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, OUT, adminApi, freeTcpPort, launchChromium, startVenue, waitFor } from "./lib.mjs";

const DIR = join(OUT, "screens");
mkdirSync(DIR, { recursive: true });

const rtmpPort = await freeTcpPort();
const venue = await startVenue({ name: "health-screens", extraArgs: ["--rtmp-listen", `127.0.0.1:${rtmpPort}`] });
const browser = await launchChromium();
const api = adminApi(venue.base);
const encoders = [];

const publish = (key, video) =>
  spawn(
    "ffmpeg",
    ["-hide_banner", "-loglevel", "error", "-re",
      "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
      "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
      "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2500k", "-pix_fmt", "yuv420p", ...video,
      "-c:a", "aac", "-ar", "44100", "-ac", "2",
      "-f", "flv", `rtmp://127.0.0.1:${rtmpPort}/live/${key}`],
    { stdio: "ignore" },
  );

try {
  const clean = await api.call("POST", "/api/admin/rooms/main/streamers", { name: "Nova Lights" }, 201);
  const bf = await api.call("POST", "/api/admin/rooms/main/streamers", { name: "Dj Kit (B-frames)" }, 201);
  await api.call("POST", "/api/admin/rooms/main/streamers", { name: "Elif" }, 201);
  encoders.push(publish(clean.stream_key, ["-tune", "zerolatency", "-g", "30"]));
  encoders.push(publish(bf.stream_key, ["-bf", "2", "-g", "60"]));
  await waitFor(
    async () => {
      const list = await api.call("GET", "/api/admin/rooms/main/streamers");
      const ok = (id, pred) => list.some((s) => s.id === id && s.health && pred(s.health));
      return ok(clean.id, (h) => h.video[0]?.keyframe_interval_s && h.audio) && ok(bf.id, (h) => h.b_frames && h.video[0]?.keyframe_interval_s);
    },
    { timeout: 30000, interval: 250, what: "both streamers' health" },
  );
  await api.call("PUT", "/api/admin/rooms/main/stage", { layout: 2, slots: [clean.id, bf.id] }, 200);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  await ctx.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.log(`page error: ${e}`));
  await page.goto(`${venue.base}/admin`);
  await page.waitForSelector(".streamer .healthwarn");
  await page.waitForSelector(".streamer .health .proto");
  // Let the previews start and one more refresh land.
  await page.waitForFunction(() => document.querySelectorAll(".streamer .thumb video").length >= 2, null, { timeout: 15000 }).catch(() => {});
  await page.waitForTimeout(2500);
  const panel = page.locator("#streamers");
  await panel.scrollIntoViewIfNeeded();
  await panel.screenshot({ path: join(DIR, "admin-health.png") });
  await page.screenshot({ path: join(DIR, "admin-health-page.png"), fullPage: true });
  const lines = await page.locator(".streamer .health").allInnerTexts();
  const warnings = await page.locator(".streamer .healthwarn").allInnerTexts();
  console.log(JSON.stringify({ lines, warnings }, null, 2));
  // A phone-sized console.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await phone.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
  const p2 = await phone.newPage();
  await p2.goto(`${venue.base}/admin`);
  await p2.waitForSelector(".streamer .healthwarn");
  await p2.locator("#streamers").screenshot({ path: join(DIR, "admin-health-phone.png") });
  console.log(`screens in ${DIR}`);
} finally {
  for (const e of encoders) e.kill("SIGKILL");
  await browser.close();
  await venue.stop();
}
