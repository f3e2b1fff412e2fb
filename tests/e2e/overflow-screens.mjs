// Screenshots of overflow to HLS for a person to look at (not a test): starts `venue` with
// VENUE_MAX_WEBRTC_VIEWERS=1, puts a fake-camera publisher on stage, and saves the first viewer
// (WebRTC badge) and the next ones (HLS badge, the program video; desktop and phone) with some
// chat, to out/screens/overflow-*.png. The program plays only once the LL-HLS pipeline runs;
// before that the HLS stage shows its "waiting for the HLS program" card.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && node overflow-screens.mjs)
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { OUT, adminApi, launchChromium, roomInfo, startVenue, waitFor } from "./lib.mjs";

const DIR = join(OUT, "screens");
mkdirSync(DIR, { recursive: true });

const venue = await startVenue({ name: "overflow-screens", env: { VENUE_MAX_WEBRTC_VIEWERS: "1", VENUE_MAX_CPU_PERCENT: "0" } });
const browser = await launchChromium({ extraArgs: ["--enable-unsafe-swiftshader"] });
const api = adminApi(venue.base);
const shot = (page, name) => page.screenshot({ path: join(DIR, `${name}.png`) });

async function open(path, { width = 1440, height = 900, mobile = false, label = path } = {}) {
  const ctx = await browser.newContext({
    viewport: { width, height },
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
    permissions: ["camera", "microphone"],
  });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.log(`[${label}] page error: ${e}`));
  await page.goto(`${venue.base}${path}`);
  return page;
}

const joined = (page, what) => waitFor(() => page.evaluate(() => window.venue?.room?.synced), { timeout: 20000, what });

try {
  await api.call("PUT", "/api/admin/rooms/main/settings", { title: "Friday Night Session", now_playing: "Nova Lights — Midnight Drive" });
  const s = await api.createStreamer("Nova Lights");
  const pub = await open(`/publish?key=${encodeURIComponent(s.stream_key)}&autostart=1`, { width: 1280, height: 720, label: "publisher" });
  await waitFor(() => pub.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live" });
  const maxSlots = (await roomInfo(venue.base)).max_slots ?? 4;
  await api.putStage({ layout: 1, slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? s.id : null)) });

  const a = await open("/?name=Aurora", { label: "webrtc" });
  await joined(a, "Aurora joined");
  await waitFor(() => a.evaluate(() => document.querySelector("#stage video[data-slot='0']")?.videoWidth > 0), { timeout: 20000, what: "Aurora sees video" });

  const b = await open("/?name=Bea", { label: "hls" });
  await joined(b, "Bea joined");
  const mode = await b.evaluate(() => window.venue.mode);
  if (mode !== "hls") throw new Error(`second viewer is in ${mode} mode`);

  for (const [page, text] of [
    [a, "front row on WebRTC"],
    [b, "watching the HLS program, chat still works"],
    [a, "see you after the encore"],
  ]) {
    await page.fill("#chatinput", text);
    await page.press("#chatinput", "Enter");
    await page.waitForTimeout(1100);
  }
  await b.evaluate(() => window.venue.client.placeSticker("heart", 0.08, 0.8, -12, 1.1));
  await b.evaluate(() => window.venue.client.launchFirework(0.7, 0.25, 190));
  // Give the program a moment (when the pipeline runs) and the firework its flight.
  await b.waitForTimeout(4000);
  await shot(a, "overflow-webrtc-desktop");
  await shot(b, "overflow-hls-desktop");

  const phone = await open("/?name=Fin", { width: 390, height: 844, mobile: true, label: "hls-phone" });
  await joined(phone, "Fin joined");
  await phone.waitForTimeout(4000);
  await shot(phone, "overflow-hls-phone");
  console.log(`screenshots in ${DIR} (modes: ${await phone.evaluate(() => window.venue.mode)})`);
} finally {
  await browser.close();
  await venue.stop();
}
