// Shared helpers of the browser end-to-end tests and the latency script: start `venue` on free
// ports with a temporary data dir, launch Debian's Chromium with fake media devices, talk to
// the admin API, and wait for conditions with deadlines (no fixed sleeps).
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const OUT = join(HERE, "out");
export const ADMIN_TOKEN = process.env.VENUE_ADMIN_TOKEN ?? "test-admin";
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Flags from DESIGN.md §5, plus autoplay and no background throttling (several tabs decode at once). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

export function ensureOut() {
  mkdirSync(OUT, { recursive: true });
  return OUT;
}

/** Polls `fn` until it returns a truthy value; throws with `what` and the last value after `timeout` ms. */
export async function waitFor(fn, { timeout = 15000, interval = 100, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const detail = lastErr ? `; last error: ${lastErr.message ?? lastErr}` : `; last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freeTcpPort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function udpFree(port) {
  return new Promise((res) => {
    const s = createSocket("udp4");
    s.once("error", () => res(false));
    s.bind(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

function tcpFree(port) {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/** A base port with `count` consecutive free UDP (and TCP, for ICE-TCP) ports. */
export async function freeMediaBase(count = 4) {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = (await udpFree(p)) && (await tcpFree(p));
    if (ok) return base;
  }
  throw new Error("no free media port range");
}

/**
 * Starts `venue` (binary from VENUE_BIN, default ../../target/debug/venue) on free ports with a
 * fresh data dir and VENUE_ADMIN_TOKEN. Resolves once `GET /api/rooms/main` answers 200.
 * Pass `httpPort`, `mediaBase` and `dataDir` to restart a stopped server where it was.
 * `host` is the IP HTTP and media bind to and media advertises (default 127.0.0.1).
 * Returns `{ base, proc, dataDir, stop({ keepData }) }`; the log goes to out/<name>-<port>.log.
 */
export async function startVenue({ extraArgs = [], env = {}, name = "venue", httpPort, mediaBase, dataDir, host = "127.0.0.1" } = {}) {
  const bin = resolve(HERE, process.env.VENUE_BIN ?? "../../target/debug/venue");
  if (!existsSync(bin)) throw new Error(`venue binary not found at ${bin} (build it: cargo build -p venue-gateway, or set VENUE_BIN)`);
  ensureOut();
  httpPort ??= await freeTcpPort();
  mediaBase ??= await freeMediaBase(4);
  dataDir ??= mkdtempSync(join(tmpdir(), "venue-e2e-"));
  const args = [
    "--http-listen", `${host}:${httpPort}`,
    "--data-dir", dataDir,
    "--media-base-port", String(mediaBase),
    "--media-bind-ip", host,
    "--media-candidate-ips", host,
    ...extraArgs,
  ];
  const logPath = join(OUT, `${name}-${httpPort}.log`);
  const log = createWriteStream(logPath, { flags: "a" });
  const proc = spawn(bin, args, {
    env: { RUST_LOG: "info", NO_COLOR: "1", ...process.env, VENUE_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  let exited = null;
  proc.on("exit", (code, signal) => (exited = { code, signal }));
  const base = `http://${host}:${httpPort}`;
  const stop = async ({ keepData = false } = {}) => {
    if (exited === null) {
      proc.kill("SIGTERM");
      const deadline = Date.now() + 5000;
      while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (exited === null) proc.kill("SIGKILL");
    }
    if (!keepData) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`venue exited early (${JSON.stringify(exited)}), see ${logPath}`);
        const r = await fetch(`${base}/api/rooms/main`).catch(() => null);
        return r?.ok;
      },
      { timeout: 30000, interval: 100, what: `venue to answer on ${base} (log: ${logPath})` },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { base, proc, dataDir, logPath, httpPort, mediaBase, stop };
}

/** Admin API client for one server. Throws on unexpected status with the body. */
export function adminApi(base, token = ADMIN_TOKEN) {
  const call = async (method, path, body, expect) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (expect ? res.status !== expect : !res.ok) {
      throw new Error(`${method} ${path} → ${res.status}: ${text.slice(0, 300)}`);
    }
    return text ? JSON.parse(text) : undefined;
  };
  return {
    call,
    rooms: () => call("GET", "/api/admin/rooms"),
    streamers: (room = "main") => call("GET", `/api/admin/rooms/${room}/streamers`),
    createStreamer: (name, room = "main") => call("POST", `/api/admin/rooms/${room}/streamers`, { name }, 201),
    deleteStreamer: (id, room = "main") => call("DELETE", `/api/admin/rooms/${room}/streamers/${id}`, undefined, 204),
    stage: (room = "main") => call("GET", `/api/admin/rooms/${room}/stage`),
    putStage: (stage, room = "main") => call("PUT", `/api/admin/rooms/${room}/stage`, stage),
  };
}

/** Public room info. */
export async function roomInfo(base, room = "main") {
  const r = await fetch(`${base}/api/rooms/${room}`);
  if (!r.ok) throw new Error(`GET /api/rooms/${room} → ${r.status}`);
  return r.json();
}

/**
 * Launches Chromium headless with a fresh profile (Playwright uses a temp user-data dir).
 * `executablePath` runs another binary or wrapper (e.g. one that enters a network namespace).
 */
export async function launchChromium({ headless = true, extraArgs = [], executablePath = CHROMIUM } = {}) {
  return chromium.launch({
    executablePath,
    headless,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/** A new page in its own context with camera/mic allowed; page errors are collected in `page.errors`. */
export async function newPage(browser, { base } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 720 },
    permissions: ["camera", "microphone"],
    ...(base ? { baseURL: base } : {}),
  });
  const page = await context.newPage();
  page.errors = [];
  page.logs = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") page.logs.push(`${m.type()}: ${m.text()}`);
  });
  return page;
}

/**
 * Inbound video per stage slot on the viewer page: `{ [slot]: { framesDecoded, frameWidth, ... } }`,
 * slot = index of the receiving transceiver / 2 (video0, audio0, video1, audio1, …).
 */
export function viewerVideoStats(page) {
  return page.evaluate(async () => {
    const pc = window.venue?.pc;
    if (!pc) return {};
    const trs = pc.getTransceivers();
    const stats = await pc.getStats();
    const out = {};
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      let idx = trs.findIndex((t) => t.mid !== null && t.mid === s.mid);
      if (idx < 0) idx = trs.findIndex((t) => t.receiver.track.id === s.trackIdentifier);
      if (idx < 0) return;
      out[Math.floor(idx / 2)] = {
        framesDecoded: s.framesDecoded ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        ssrc: s.ssrc,
        packetsLost: s.packetsLost ?? 0,
      };
    });
    return out;
  });
}

/** Waits until slot `slot`'s framesDecoded exceeds `above`, returns the value. */
export async function waitFramesAbove(page, slot, above, opts = {}) {
  let seen = null;
  await waitFor(
    async () => {
      const st = await viewerVideoStats(page);
      seen = st[slot]?.framesDecoded ?? null;
      return seen !== null && seen > above;
    },
    { timeout: 15000, interval: 100, what: `slot ${slot} framesDecoded > ${above}`, ...opts },
  );
  return seen;
}

/**
 * The timecode decoder (matches web/src/timecode.ts: 3 rows × 16 blocks of 80×100 px on a
 * 1280×720 frame; row0 = bits 0–15 of Date.now() mod 2^32, row1 = bits 16–31, row2 = ~row0).
 * Installs `window.__readTimecode(video)` in the page: returns the encoded ms (uint32) or null.
 */
export function installTimecodeReader(page) {
  return page.evaluate(() => {
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    window.__readTimecode = (video) => {
      const w = video.videoWidth;
      const h = video.videoHeight;
      if (!w || !h) return null;
      const sx = w / 1280;
      const sy = h / 720;
      const bandH = Math.ceil(300 * sy);
      if (canvas.width !== w || canvas.height !== bandH) {
        canvas.width = w;
        canvas.height = bandH;
      }
      ctx.drawImage(video, 0, 0, w, bandH, 0, 0, w, bandH);
      const img = ctx.getImageData(0, 0, w, bandH).data;
      const rows = [0, 0, 0];
      for (let r = 0; r < 3; r++) {
        for (let i = 0; i < 16; i++) {
          const cx = Math.floor((i * 80 + 40) * sx);
          const cy = Math.floor((r * 100 + 50) * sy);
          const rad = Math.max(1, Math.floor(10 * Math.min(sx, sy)));
          let sum = 0;
          let n = 0;
          for (let y = cy - rad; y <= cy + rad; y++) {
            for (let x = cx - rad; x <= cx + rad; x++) {
              const o = (y * w + x) * 4;
              sum += 0.299 * img[o] + 0.587 * img[o + 1] + 0.114 * img[o + 2];
              n++;
            }
          }
          if (sum / n > 128) rows[r] |= 1 << i;
        }
      }
      if ((rows[2] ^ 0xffff) !== rows[0]) return null;
      return ((rows[1] << 16) | rows[0]) >>> 0;
    };
  });
}

/** Percentile of a sorted-ascending array. */
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
