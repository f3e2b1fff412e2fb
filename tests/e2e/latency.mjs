// Glass-to-glass latency, Chromium publisher → venue → Chromium viewer on loopback.
// Not part of the test suite (a measurement; record results in BENCHMARKS.md).
//
// The publisher runs /publish?canvas=1: a 1280×720 canvas with Date.now() encoded as black
// and white blocks (web/src/timecode.ts), captured at 30 fps and sent over WHIP. The viewer
// reads every presented frame of slot 0 (requestVideoFrameCallback → canvas → decode) and
// compares with Date.now(); both pages run in one browser on one clock.
//
// Usage (from tests/e2e):
//   node latency.mjs                 # starts target/debug/venue (or VENUE_BIN) itself
//   VENUE_URL=http://127.0.0.1:8080 VENUE_ADMIN_TOKEN=… node latency.mjs   # a running server
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
  waitFramesAbove,
} from "./lib.mjs";

const DURATION_MS = Number(process.env.DURATION_MS ?? 10000);
const ROOM = process.env.ROOM ?? "main";

let venue = null;
let base = process.env.VENUE_URL;
if (!base) {
  venue = await startVenue({ name: "latency" });
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
  await viewer.goto(ROOM === "main" ? `${base}/` : `${base}/r/${ROOM}`);
  await waitFramesAbove(viewer, 0, 0, { timeout: 20000 });
  const timing = await viewer.evaluate(() => window.venue.timing);
  const firstFrameMs = timing.firstFrame[0] - timing.postStart;
  const answerMs = timing.answerAt - timing.postStart;

  await installTimecodeReader(viewer);
  // Wait for the first readable timecode (the keyframe of the canvas source), then measure.
  await waitFor(() => viewer.evaluate(() => window.__readTimecode(document.querySelector('video[data-slot="0"]')) !== null), {
    timeout: 10000,
    what: "a readable timecode on slot 0",
  });
  const result = await viewer.evaluate((duration) => {
    return new Promise((resolve) => {
      const video = document.querySelector('video[data-slot="0"]');
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
  console.log(`venue glass-to-glass (Chromium → venue → Chromium, loopback, ${(DURATION_MS / 1000).toFixed(0)} s)`);
  console.log(`  frames presented: ${result.frames} (${result.unreadable} unreadable), ${result.width}x${result.height}`);
  console.log(`  latency p50 ${fmt(percentile(sorted, 50))}  p95 ${fmt(percentile(sorted, 95))}  min ${fmt(sorted[0])}  max ${fmt(sorted[sorted.length - 1])}`);
  console.log(`  viewer POST → answer ${fmt(answerMs)}, → first decoded frame ${fmt(firstFrameMs)}`);
  const rids = await pub.evaluate(() => window.venue.rids);
  console.log(`  publisher simulcast RIDs: ${rids.length ? rids.join(",") : "none"}`);

  if (previous && process.env.VENUE_URL) await api.putStage(previous, ROOM).catch(() => {});
  await api.deleteStreamer(streamer.id, ROOM).catch(() => {});
} finally {
  await browser.close().catch(() => {});
  await venue?.stop();
}
