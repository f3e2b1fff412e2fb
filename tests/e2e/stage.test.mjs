// Browser end-to-end: publishers on /publish (fake camera) → admin API puts them on stage →
// a viewer on / decodes every stage tile, and a stage switch keeps the viewer's
// RTCPeerConnection (no renegotiation). Issue 2, "Browser end-to-end".
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && npm ci && npm test)
// Env: VENUE_BIN (default ../../target/debug/venue), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import {
  OUT,
  adminApi,
  ensureOut,
  installTimecodeReader,
  launchChromium,
  newPage,
  roomInfo,
  startVenue,
  viewerVideoStats,
  waitFor,
  waitFramesAbove,
} from "./lib.mjs";

/** Per-RID outbound video of a publish page: frames encoded, size, whether Chrome sends it. */
function publisherLayers(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.venue.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out[s.rid ?? "-"] = {
          framesEncoded: s.framesEncoded,
          keyFramesEncoded: s.keyFramesEncoded,
          pliCount: s.pliCount,
          frameWidth: s.frameWidth ?? 0,
          active: s.active,
          qualityLimitationReason: s.qualityLimitationReason,
        };
      }
    });
    return out;
  });
}

describe("stage in the browser", { timeout: 180_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startVenue>>} */
  let venue;
  let browser;
  let api;
  let maxSlots = 4;
  const s = {}; // streamers: s.a, s.b = { id, stream_key, ... }
  const pages = {}; // a, b (viewer), c
  const pad = (slots) => Array.from({ length: maxSlots }, (_, i) => slots[i] ?? null);

  before(async () => {
    ensureOut();
    venue = await startVenue();
    api = adminApi(venue.base);
    browser = await launchChromium();
    maxSlots = (await roomInfo(venue.base)).max_slots ?? 4;
  });

  after(async () => {
    for (const p of Object.values(pages)) {
      if (p.errors.length) console.log(`# page errors on ${p.url()}: ${p.errors.join(" | ")}`);
    }
    await browser?.close().catch(() => {});
    await venue?.stop();
  });

  it("serves the pages and assets", async () => {
    for (const [path, script] of [
      ["/", "index"],
      ["/r/main", "index"],
      ["/publish", "publish"],
      ["/admin", "admin"],
    ]) {
      const r = await fetch(`${venue.base}${path}`);
      assert.equal(r.status, 200, `GET ${path}`);
      assert.match(r.headers.get("content-type") ?? "", /text\/html/, `GET ${path} content-type`);
      const html = await r.text();
      const m = new RegExp(`src="(/assets/${script}-[^"]+\\.js)"`).exec(html);
      assert.ok(m, `GET ${path} loads /assets/${script}-*.js`);
      const js = await fetch(`${venue.base}${m[1]}`);
      assert.equal(js.status, 200, `GET ${m[1]}`);
      assert.match(js.headers.get("content-type") ?? "", /javascript/);
    }
  });

  it("(a) a publisher on slot 0 reaches a viewer", async (t) => {
    s.a = await api.createStreamer("Alice");
    s.b = await api.createStreamer("Bob");
    assert.ok(s.a.stream_key && s.b.stream_key, "stream keys returned once");

    pages.a = await newPage(browser);
    await pages.a.goto(`${venue.base}/publish?key=${encodeURIComponent(s.a.stream_key)}&autostart=1`);
    await waitFor(() => pages.a.evaluate(() => window.venue.state === "live"), {
      timeout: 20000,
      what: "publisher A live",
    }).catch(async (e) => {
      const st = await pages.a.evaluate(() => ({ state: window.venue.state, error: window.venue.error }));
      throw new Error(`${e.message}; publish page: ${JSON.stringify(st)}`);
    });
    t.diagnostic(`publisher A rids: ${JSON.stringify(await pages.a.evaluate(() => window.venue.rids))}`);
    await waitFor(async () => (await api.streamers()).find((x) => String(x.id) === String(s.a.id))?.live, {
      what: "streamer A listed live",
    });

    await api.putStage({ layout: 1, slots: pad([s.a.id]) });

    pages.b = await newPage(browser);
    await pages.b.goto(`${venue.base}/?name=Viewer`);
    const first = await waitFramesAbove(pages.b, 0, 0, { timeout: 20000 });
    await waitFramesAbove(pages.b, 0, first + 10, { timeout: 10000 });
    const timing = await pages.b.evaluate(() => window.venue.timing);
    const ttff = timing.firstFrame[0] - timing.postStart;
    t.diagnostic(`viewer POST → first decoded frame (slot 0): ${ttff.toFixed(0)} ms (answer after ${(timing.answerAt - timing.postStart).toFixed(0)} ms)`);
    assert.ok(ttff > 0 && ttff < 5000, `first frame ${ttff} ms after POST`);

    // The page knows the stage: layout 1, Alice on slot 0.
    await waitFor(
      () => pages.b.evaluate(() => window.venue.state?.layout === 1 && window.venue.state.slots[0]?.name === "Alice"),
      { timeout: 10000, what: "viewer state layout 1 with Alice" },
    );
    // Remember the PeerConnection and watch for renegotiation from now on.
    await pages.b.evaluate(() => {
      window.__pc0 = window.venue.pc;
      window.__posts0 = window.venue.posts;
      window.__signalingChanges = 0;
      window.venue.pc.addEventListener("signalingstatechange", () => window.__signalingChanges++);
    });
  });

  it("(b) two publishers, layout 2: the viewer decodes both tiles", async () => {
    assert.ok(pages.b, "needs (a)");
    pages.c = await newPage(browser);
    // Publisher C sends the timecode canvas, so the viewer can tell the sources apart.
    await pages.c.goto(`${venue.base}/publish?key=${encodeURIComponent(s.b.stream_key)}&autostart=1&canvas=1`);
    await waitFor(() => pages.c.evaluate(() => window.venue.state === "live"), {
      timeout: 20000,
      what: "publisher C live",
    });
    await api.putStage({ layout: 2, slots: pad([s.a.id, s.b.id]) });

    const before0 = (await viewerVideoStats(pages.b))[0]?.framesDecoded ?? 0;
    const first1 = await waitFramesAbove(pages.b, 1, 0, { timeout: 20000 });
    await waitFramesAbove(pages.b, 1, first1 + 10, { timeout: 10000 });
    await waitFramesAbove(pages.b, 0, before0 + 10, { timeout: 10000 });
    await waitFor(() => pages.b.evaluate(() => window.venue.state?.layout === 2), {
      timeout: 10000,
      what: "viewer layout 2",
    });
    // Both tiles are visible and show video (no placeholder).
    await waitFor(
      () =>
        pages.b.evaluate(() =>
          [0, 1].every((i) => {
            const tile = document.querySelector(`.tile[data-slot="${i}"]`);
            return tile && !tile.hidden && tile.querySelector(".placeholder")?.hidden;
          }),
        ),
      { timeout: 10000, what: "two visible video tiles" },
    );
    // Slot 1 shows publisher C's timecode.
    await installTimecodeReader(pages.b);
    await waitFor(() => pages.b.evaluate(() => window.__readTimecode(document.querySelector('video[data-slot="1"]')) !== null), {
      timeout: 10000,
      what: "timecode readable on slot 1",
    });
    // Unmute: shown tiles play sound, hidden tiles stay muted.
    await pages.b.click("#unmute");
    assert.deepEqual(
      await pages.b.evaluate(() => [...document.querySelectorAll("video[data-slot]")].map((v) => v.muted)),
      Array.from({ length: maxSlots }, (_, i) => i >= 2),
    );
    await pages.b.screenshot({ path: join(OUT, "viewer-2-tiles.png") });
    await pages.a.screenshot({ path: join(OUT, "publish-live.png") });
  });

  it("(c) switching slot 0 keeps the same PeerConnection and keeps decoding", async () => {
    assert.ok(pages.c, "needs (b)");
    const before = await viewerVideoStats(pages.b);
    await api.putStage({ layout: 2, slots: pad([s.b.id, s.a.id]) });

    // Slot 0 now carries publisher C's timecode, on the same track.
    await waitFor(() => pages.b.evaluate(() => window.__readTimecode(document.querySelector('video[data-slot="0"]')) !== null), {
      timeout: 10000,
      what: "slot 0 switched to the timecode source",
    }).catch(async (e) => {
      await pages.b.screenshot({ path: join(OUT, "viewer-switch-failed.png") });
      const st = await viewerVideoStats(pages.b);
      const pub = await publisherLayers(pages.c);
      throw new Error(
        `${e.message}; viewer stats before ${JSON.stringify(before)} now ${JSON.stringify(st)}; ` +
          `publisher C layers ${JSON.stringify(pub)}`,
      );
    });
    await waitFramesAbove(pages.b, 0, before[0].framesDecoded + 30, { timeout: 10000 });
    await waitFramesAbove(pages.b, 1, before[1].framesDecoded + 30, { timeout: 10000 });
    await waitFor(() => pages.b.evaluate(() => window.venue.state?.slots[0]?.name === "Bob"), {
      timeout: 10000,
      what: "viewer state: Bob on slot 0",
    });
    const after = await pages.b.evaluate(() => ({
      samePc: window.venue.pc === window.__pc0,
      signalingState: window.venue.pc.signalingState,
      connectionState: window.venue.pc.connectionState,
      signalingChanges: window.__signalingChanges,
      newPosts: window.venue.posts - window.__posts0,
    }));
    assert.deepEqual(after, {
      samePc: true,
      signalingState: "stable",
      connectionState: "connected",
      signalingChanges: 0,
      newPosts: 0,
    });
    const now = await viewerVideoStats(pages.b);
    assert.equal(now[0].ssrc, before[0].ssrc, "slot 0 keeps its SSRC across the switch");
    await pages.b.screenshot({ path: join(OUT, "viewer-switched.png") });
  });

  it("admin console lists the streamers live with previews", async () => {
    assert.ok(s.a, "needs (a)");
    const admin = await newPage(browser);
    pages.admin = admin;
    await admin.goto(`${venue.base}/admin`);
    await admin.fill("#token", "wrong-token");
    await admin.click("#login button[type=submit]");
    await waitFor(() => admin.evaluate(() => document.querySelector("#loginerror")?.textContent?.includes("401")), {
      what: "login error for a wrong token",
    });
    await admin.fill("#token", process.env.VENUE_ADMIN_TOKEN ?? "test-admin");
    await admin.click("#login button[type=submit]");
    await waitFor(() => admin.evaluate(() => document.querySelectorAll(".streamer").length === 2), {
      what: "two streamer cards",
    });
    await waitFor(() => admin.evaluate(() => document.querySelectorAll(".streamer .badge.live").length === 2), {
      what: "both streamers live",
    });
    // The slots show who is on stage.
    const slotNames = await admin.evaluate(() =>
      [...document.querySelectorAll(".slot .who")].slice(0, 2).map((e) => e.textContent),
    );
    assert.deepEqual(slotNames, ["Bob", "Alice"]);
    // Live previews decode (admin WHEP), best effort: reported, not asserted, until the endpoint exists.
    const previewOk = await waitFor(
      () => admin.evaluate(() => [...document.querySelectorAll("video[data-preview]")].filter((v) => v.videoWidth > 0).length === 2),
      { timeout: 10000, what: "two live previews" },
    ).then(
      () => true,
      (e) => e.message,
    );
    await admin.screenshot({ path: join(OUT, "admin.png"), fullPage: true });
    assert.equal(previewOk, true, `admin previews: ${previewOk}`);

    // Stage editing by clicks: move Alice to slot 3, back to slot 2, layout 3 then 2.
    const stageIds = async () => (await api.stage()).slots.map((x) => (x && typeof x === "object" ? x.streamer_id : x));
    const ids = (arr) => arr.map((x) => (x === null ? null : String(x)));
    await admin.click(`.streamer[data-streamer="${s.a.id}"]`);
    await admin.click('.slot[data-slot="2"]');
    await waitFor(async () => JSON.stringify(ids(await stageIds())) === JSON.stringify(ids(pad([s.b.id, null, s.a.id]))), {
      what: "Alice moved to slot 3 by clicks",
    });
    await admin.click(`.streamer[data-streamer="${s.a.id}"]`);
    await admin.click('.slot[data-slot="1"]');
    await waitFor(async () => JSON.stringify(ids(await stageIds())) === JSON.stringify(ids(pad([s.b.id, s.a.id]))), {
      what: "Alice back on slot 2",
    });
    await admin.click('#layouts button[data-layout="3"]');
    await waitFor(async () => (await api.stage()).layout === 3, { what: "layout 3 saved" });
    await waitFor(() => pages.b.evaluate(() => window.venue.state?.layout === 3), { what: "viewer shows layout 3" });
    await admin.click('#layouts button[data-layout="2"]');
    await waitFor(async () => (await api.stage()).layout === 2, { what: "layout 2 saved" });

    // Create a streamer from the form: the key is shown once; then delete it.
    await admin.fill("#newname", "Carol");
    await admin.click("#create button[type=submit]");
    await waitFor(() => admin.evaluate(() => !document.querySelector("#keybox").hidden), { what: "key box" });
    const shown = await admin.evaluate(() => [...document.querySelectorAll("#keybox code")].map((c) => c.textContent));
    assert.equal(shown.length, 3, "key, WHIP URL, RTMP URL");
    assert.match(shown[1], /\/api\/whip$/);
    assert.match(shown[2], /^rtmp:\/\//);
    const carol = (await api.streamers()).find((x) => x.name === "Carol");
    assert.ok(carol, "Carol created");
    await admin.screenshot({ path: join(OUT, "admin-created.png"), fullPage: true });
    admin.once("dialog", (d) => d.accept());
    await admin.click(`.streamer[data-streamer="${carol.id}"] button.danger`);
    await waitFor(async () => !(await api.streamers()).some((x) => x.name === "Carol"), { what: "Carol deleted" });
    await waitFor(() => admin.evaluate(() => document.querySelectorAll(".streamer").length === 2), {
      what: "two streamer cards again",
    });
  });

  it("(d) after a server restart, publishers and the viewer reconnect on their own; the stage persists", async (t) => {
    assert.ok(pages.c, "needs (b)");
    const postsBefore = await pages.b.evaluate(() => window.venue.posts);
    const { httpPort, mediaBase, dataDir } = venue;
    await venue.stop({ keepData: true });
    const down = Date.now();
    venue = await startVenue({ httpPort, mediaBase, dataDir });
    const info = await roomInfo(venue.base);
    assert.deepEqual(
      info.slots.slice(0, 2).map((x) => x.name),
      ["Bob", "Alice"],
      "stage kept across the restart",
    );
    assert.equal(info.layout, 2);
    for (const k of ["a", "c"]) {
      await waitFor(() => pages[k].evaluate(() => window.venue.state === "live" && window.venue.pc?.connectionState === "connected"), {
        timeout: 45000,
        interval: 250,
        what: `publisher ${k} live again`,
      });
    }
    await waitFor(
      () =>
        pages.b.evaluate(
          (n) => window.venue.posts > n && window.venue.pc.connectionState === "connected",
          postsBefore,
        ),
      { timeout: 45000, interval: 250, what: "viewer reconnected with a new WHEP session" },
    );
    const first0 = await waitFramesAbove(pages.b, 0, 0, { timeout: 20000 });
    const first1 = await waitFramesAbove(pages.b, 1, 0, { timeout: 20000 });
    await waitFramesAbove(pages.b, 0, first0 + 10, { timeout: 10000 });
    await waitFramesAbove(pages.b, 1, first1 + 10, { timeout: 10000 });
    t.diagnostic(`viewer decoding both tiles again ${((Date.now() - down) / 1000).toFixed(1)} s after the server went down`);
    assert.equal(await pages.b.evaluate(() => window.venue.pc !== window.__pc0), true, "a new PeerConnection");
  });
});
