// Glass-to-glass latency of the LL-HLS program, Chromium publisher → venue (WHIP → SFU →
// stage tap → compositor → LL-HLS packager) → Chromium viewer playing the program with hls.js
// (low-latency mode) on loopback. Not part of the test suite (a measurement; record results in
// BENCHMARKS.md). Layout 1: the publisher's tile fills the 1280x720 program, so the timecode
// sits where latency.mjs reads it.
//
// The publisher runs /publish?canvas=1: a 1280×720 canvas with Date.now() encoded as black
// and white blocks (web/src/timecode.ts), captured at 30 fps and sent over WHIP. The viewer
// reads every presented frame of slot 0 (requestVideoFrameCallback → canvas → decode) and
// compares with Date.now(); both pages run in one browser on one clock.
//
// Usage (from tests/e2e):
//   node latency-hls.mjs                 # starts target/debug/venue (or VENUE_BIN) itself
//   VENUE_URL=http://127.0.0.1:8080 VENUE_ADMIN_TOKEN=… node latency-hls.mjs   # a running server
//   DURATION_MS=10000 (default), ROOM=main
import {
  adminApi,
  installTimecodeReader,
  launchChromium,
  newPage,
  percentile,
  roomInfo,
  startVenue,
  waitFor,
} from "./lib.mjs";

const DURATION_MS = Number(process.env.DURATION_MS ?? 10000);
const ROOM = process.env.ROOM ?? "main";

let venue = null;
let base = process.env.VENUE_URL;
if (!base) {
  venue = await startVenue({ name: "latency-hls" });
  base = venue.base;
}
const browser = await launchChromium();
try {
  const api = adminApi(base);
  const info = await roomInfo(base, ROOM);
  const streamer = await api.createStreamer(`latency-${Date.now() % 100000}`, ROOM);
  const pub = await newPage(browser);
  await pub.goto(`${base}/publish?key=${encodeURIComponent(streamer.stream_key)}&autostart=1&canvas=1`);
  await waitFor(() => pub.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live" });
  const slots = Array.from({ length: info.max_slots ?? 4 }, (_, i) => (i === 0 ? streamer.id : null));
  const previous = await api.stage(ROOM).catch(() => null);
  await api.putStage({ layout: 1, slots }, ROOM);

  const viewer = await newPage(browser);
  const page = ROOM === "main" ? `${base}/?mode=hls` : `${base}/r/${ROOM}?mode=hls`;
  const t0 = Date.now();
  await viewer.goto(page);
  await waitFor(() => viewer.evaluate(() => (window.venue.program?.currentTime ?? 0) > 0.5), {
    timeout: 30000,
    what: "the HLS program playing",
  });
  const firstPlayMs = Date.now() - t0;
  await installTimecodeReader(viewer);
  await waitFor(() => viewer.evaluate(() => window.__readTimecode(window.venue.program) !== null), {
    timeout: 15000,
    what: "a readable timecode in the program",
  });
  const result = await viewer.evaluate((duration) => {
    return new Promise((resolve) => {
      const video = window.venue.program;
      const samples = [];
      let frames = 0;
      let unreadable = 0;
      const end = performance.now() + duration;
      const onFrame = () => {
        const now = Date.now();
        frames++;
        const t = window.__readTimecode(video);
        if (t === null) unreadable++;
        else {
          let d = ((now >>> 0) - t) >>> 0;
          if (d > 0x7fffffff) d -= 0x100000000;
          samples.push(d);
        }
        if (performance.now() < end) video.requestVideoFrameCallback(onFrame);
        else resolve({ samples, frames, unreadable, width: video.videoWidth, height: video.videoHeight });
      };
      video.requestVideoFrameCallback(onFrame);
    });
  }, DURATION_MS);

  const sorted = [...result.samples].sort((a, b) => a - b);
  const fmt = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : "n/a");
  console.log(`venue LL-HLS glass-to-glass (Chromium → venue → hls.js in Chromium, loopback, ${(DURATION_MS / 1000).toFixed(0)} s)`);
  console.log(`  frames presented: ${result.frames} (${result.unreadable} unreadable), ${result.width}x${result.height}`);
  console.log(`  latency p50 ${fmt(percentile(sorted, 50))}  p95 ${fmt(percentile(sorted, 95))}  min ${fmt(sorted[0])}  max ${fmt(sorted[sorted.length - 1])}`);
  console.log(`  page load → program playing ${fmt(firstPlayMs)}; hls.js latency estimate ${await viewer.evaluate(() => window.venue.hls?.latency?.toFixed?.(2) ?? "n/a")} s`);
  const rids = await pub.evaluate(() => window.venue.rids);
  console.log(`  publisher simulcast RIDs: ${rids.length ? rids.join(",") : "none"}`);

  if (previous && process.env.VENUE_URL) await api.putStage(previous, ROOM).catch(() => {});
  await api.deleteStreamer(streamer.id, ROOM).catch(() => {});
} finally {
  await browser.close().catch(() => {});
  await venue?.stop();
}
