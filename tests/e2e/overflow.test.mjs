// Browser end-to-end of overflow to HLS (issue 5, item 3), on a server with
// VENUE_MAX_WEBRTC_VIEWERS=1 (and the CPU check off, so the box's load cannot change the
// answer): a publisher goes live on slot 0; the first viewer page watches over WebRTC; the
// second is told by `/join` to watch the HLS program — it shows the HLS badge, attaches hls.js
// to /hls/main/index.m3u8 in one <video>, and still chats with the first viewer over the
// WebSocket; a page whose WHEP offer is refused (503) falls back to HLS by itself.
// Whether the program actually plays depends on the LL-HLS pipeline: that test runs only when
// GET /hls/main/index.m3u8 answers 200 within 10 s, and is skipped (with the reason) otherwise.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && npm ci && node --test overflow.test.mjs)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { adminApi, ensureOut, launchChromium, newPage, roomInfo, startVenue, waitFor, waitFramesAbove } from "./lib.mjs";

const PLAYLIST = "/hls/main/index.m3u8";

/** What a viewer page says about its mode. */
function modeOf(page) {
  return page.evaluate(() => {
    const v = window.venue;
    const badge = document.querySelector("#modebadge");
    const program = document.querySelector("#stage video[data-program]");
    return {
      mode: v?.mode ?? null,
      fallback: v?.fallback ?? null,
      join: v?.join ?? null,
      posts: v?.posts ?? 0,
      hlsUrl: v?.hlsUrl ?? null,
      hlsAttached: !!(v?.hls && program && v.hls.media === program),
      hlsPlayerUrl: v?.hls?.url ?? null,
      programSrc: program?.src ?? null,
      badge: badge && !badge.hidden ? { text: badge.textContent, mode: badge.dataset.mode, title: badge.title } : null,
      tiles: document.querySelectorAll("#stage video[data-slot]").length,
      transport: v?.room?.transport ?? null,
      synced: !!v?.room?.synced,
      chat: (v?.room?.chat ?? []).map((m) => m.text),
    };
  });
}

/** Records the URLs of the HLS playlist requests a page makes. */
function recordPlaylistRequests(page) {
  const seen = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === PLAYLIST) seen.push(r.url());
  });
  return seen;
}

/** Sends a chat line from the page's chat form. */
async function say(page, text) {
  await page.fill("#chatinput", text);
  await page.press("#chatinput", "Enter");
}

describe("overflow to HLS", { timeout: 180_000 }, () => {
  let venue;
  let browser;
  let api;
  const pages = {};
  const requests = {};

  before(async () => {
    ensureOut();
    venue = await startVenue({
      name: "overflow",
      env: { VENUE_MAX_WEBRTC_VIEWERS: "1", VENUE_MAX_CPU_PERCENT: "0" },
    });
    api = adminApi(venue.base);
    browser = await launchChromium();
  });

  after(async () => {
    for (const [k, p] of Object.entries(pages)) {
      if (p.errors.length) console.log(`# page errors on ${k}: ${p.errors.join(" | ")}`);
    }
    await browser?.close().catch(() => {});
    await venue?.stop();
  });

  it("the first viewer gets WebRTC, the second the HLS program and still chats over the WebSocket", async (t) => {
    // A publisher on slot 0.
    const s = await api.createStreamer("Nova");
    pages.pub = await newPage(browser);
    await pages.pub.goto(`${venue.base}/publish?key=${encodeURIComponent(s.stream_key)}&autostart=1`);
    await waitFor(() => pages.pub.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live" });
    const maxSlots = (await roomInfo(venue.base)).max_slots ?? 4;
    await api.putStage({ layout: 1, slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? s.id : null)) });

    // Viewer A: WebRTC, decoding the tile, room over the data channels.
    pages.a = await newPage(browser);
    await pages.a.goto(`${venue.base}/?name=Ann`);
    await waitFor(async () => (await modeOf(pages.a)).synced, { timeout: 20000, what: "A joined the room" });
    const a = await modeOf(pages.a);
    assert.equal(a.mode, "webrtc", `A: ${JSON.stringify(a)}`);
    assert.equal(a.join.mode, "webrtc");
    assert.equal(a.badge?.mode, "webrtc");
    assert.match(a.badge.text, /WebRTC/);
    assert.equal(a.transport, "datachannel");
    await waitFramesAbove(pages.a, 0, 0, { timeout: 20000 });

    // The room is full now.
    const join = await (await fetch(`${venue.base}/api/rooms/main/join`)).json();
    assert.equal(join.mode, "hls", JSON.stringify(join));
    t.diagnostic(`/join for the second viewer: ${join.reason}`);

    // Viewer B: HLS, one program video with hls.js on the playlist, room over the WebSocket.
    pages.b = await newPage(browser);
    requests.b = recordPlaylistRequests(pages.b);
    // `rejoin_s=2`: B asks `/join` every ~2 s while on HLS (20 s by default).
    await pages.b.goto(`${venue.base}/?name=Ben&rejoin_s=2`);
    await waitFor(async () => (await modeOf(pages.b)).synced, { timeout: 20000, what: "B joined the room" });
    const b = await modeOf(pages.b);
    assert.equal(b.mode, "hls", `B: ${JSON.stringify(b)}`);
    assert.equal(b.join.cause, "capacity");
    assert.equal(b.badge?.mode, "hls");
    assert.match(b.badge.text, /HLS/);
    assert.match(b.badge.title, /capacity/, "the badge's tooltip says why");
    assert.equal(b.transport, "websocket");
    assert.equal(b.posts, 0, "B never offered WHEP");
    assert.equal(b.tiles, 0, "no per-slot tiles in HLS mode");
    assert.ok(b.hlsUrl?.endsWith(PLAYLIST), `hlsUrl ${b.hlsUrl}`);
    await waitFor(
      async () => {
        const m = await modeOf(pages.b);
        return m.hlsAttached && m.hlsPlayerUrl?.endsWith(PLAYLIST) && m.programSrc?.startsWith("blob:") && m;
      },
      { timeout: 15000, what: "hls.js attached to the program video with the playlist URL (MSE)" },
    );
    await waitFor(() => requests.b.length > 0, { timeout: 10000, what: `B requested ${PLAYLIST}` });

    // Chat both ways: A over its data channel, B over the WebSocket.
    await say(pages.a, "hello from WebRTC");
    await waitFor(async () => (await modeOf(pages.b)).chat.includes("hello from WebRTC"), { timeout: 5000, what: "B receives A's chat" });
    await say(pages.b, "hello from HLS");
    await waitFor(async () => (await modeOf(pages.a)).chat.includes("hello from HLS"), { timeout: 5000, what: "A receives B's chat" });

    // Unmute works in HLS mode too.
    await pages.b.click("#unmute");
    assert.equal(await pages.b.evaluate(() => document.querySelector("#stage video[data-program]").muted), false);
  });

  it("a viewer whose WHEP offer is refused (503) falls back to HLS by itself", async () => {
    assert.ok(pages.a, "needs the first test");
    // This page is told WebRTC (as if it asked a moment before the room filled up).
    pages.c = await newPage(browser);
    await pages.c.route("**/api/rooms/main/join", (route) =>
      route.fulfill({
        contentType: "application/json",
        body: JSON.stringify({
          mode: "webrtc",
          reason: "stale answer",
          hls_url: PLAYLIST,
          whep_url: "/api/whep/main",
          ws_url: "/api/rooms/main/ws",
        }),
      }),
    );
    await pages.c.goto(`${venue.base}/?name=Cy`);
    const c = await waitFor(
      async () => {
        const m = await modeOf(pages.c);
        return m.mode === "hls" && m.synced && m;
      },
      { timeout: 20000, what: "C fell back to HLS and joined over the WebSocket" },
    );
    assert.equal(c.posts, 1, "C offered WHEP once");
    assert.match(c.fallback ?? "", /capacity/, `fallback reason: ${c.fallback}`);
    assert.equal(c.transport, "websocket");
    assert.equal(c.badge?.mode, "hls");
    await say(pages.a, "can C hear me");
    await waitFor(async () => (await modeOf(pages.c)).chat.includes("can C hear me"), { timeout: 5000, what: "C receives chat" });
  });

  it("the HLS viewer plays the program (hls.js: currentTime advances, 1280 wide)", async (t) => {
    assert.ok(pages.b, "needs the first test");
    // Only once the LL-HLS pipeline serves the room's program.
    let status = "no answer";
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${venue.base}${PLAYLIST}`, { signal: AbortSignal.timeout(Math.max(500, deadline - Date.now())) });
        status = String(r.status);
        await r.body?.cancel();
        if (r.status === 200) break;
      } catch (e) {
        status = e.name === "TimeoutError" ? "timeout" : String(e.message ?? e);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (status !== "200") {
      t.skip(`GET ${PLAYLIST} answered ${status} within 10 s: no LL-HLS program on this server yet`);
      return;
    }
    const video = () =>
      pages.b.evaluate(() => {
        const v = document.querySelector("#stage video[data-program]");
        return { t: v?.currentTime ?? 0, w: v?.videoWidth ?? 0, h: v?.videoHeight ?? 0, latency: window.venue.hls?.latency ?? null };
      });
    const first = await waitFor(async () => ((await video()).t > 0 ? video() : null), { timeout: 30000, what: "program video starts" });
    await waitFor(async () => (await video()).t > first.t + 1, { timeout: 15000, what: "currentTime advances by 1 s" });
    const v = await video();
    assert.equal(v.w, 1280, `program width ${v.w}x${v.h}`);
    t.diagnostic(`program ${v.w}x${v.h}, hls.js latency ${v.latency?.toFixed?.(2)} s`);
  });

  it("when the WebRTC viewer leaves, the HLS viewer takes the free place over WebRTC", async () => {
    assert.ok(pages.a && pages.b, "needs the first test");
    assert.equal((await modeOf(pages.b)).mode, "hls", "B is on HLS while A holds the place");
    // C (whose /join always says webrtc) would compete for the place: it leaves first.
    if (pages.c) {
      await pages.c.close();
      delete pages.c;
    }
    await pages.a.close();
    delete pages.a;
    // B asks /join again (every ~2 s here) and goes back to WebRTC: tiles, decoded frames.
    const b = await waitFor(
      async () => {
        const m = await modeOf(pages.b);
        return m.mode === "webrtc" && m;
      },
      { timeout: 20000, what: "B back on WebRTC" },
    );
    assert.equal(b.badge?.mode, "webrtc");
    assert.equal(b.fallback, null);
    await waitFramesAbove(pages.b, 0, 10, { timeout: 20000 });
    assert.equal(await pages.b.evaluate(() => document.querySelector("#stage video[data-program]")), null, "the program video is gone");
    // The cap still holds: one WebRTC viewer.
    const join = await (await fetch(`${venue.base}/api/rooms/main/join`)).json();
    assert.equal(join.webrtc_viewers, 1, JSON.stringify(join));
    assert.equal(join.mode, "hls");
  });
});
