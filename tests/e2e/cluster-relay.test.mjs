// Issue 11 item 4 (cluster mode, media origin → edge), in Chromium.
//
// redis-server and a throwaway PostgreSQL 15 on free loopback ports, three `venue` nodes A, B
// and C on them. Venue's own `/publish` page (fake camera, simulcast) publishes on A directly
// and is put on stage slot 0; Debian's ffmpeg publishes a 640x360 test pattern over RTMP to C,
// on slot 1. The viewer page comes through a TCP balancer that prefers B: B has neither
// publisher, so it decodes both tiles through relays (A → B, C → B). The admin API on C swaps
// the slots: B's viewer shows Carl on slot 0 on the same PeerConnection (no new offer).
// Then B is killed (SIGKILL): the viewer notices, comes back through the balancer on A and
// decodes both tiles again (Carl now relayed C → A), and the origins' relays to B close by
// themselves (`venue_cluster_relays_out` on A falls to 0). A takes one viewer
// (`VENUE_CLUSTER_MAX_VIEWERS=1`): a second page opened on A is placed on C by `/join`.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { OUT, adminApi, ensureOut, launchChromium, newPage, roomInfo, viewerVideoStats, waitFor } from "./lib.mjs";
import { mediaPort, startBalancer, startNode, startPostgres, startRedis, stopProc } from "./cluster-lib.mjs";

const FFMPEG = process.env.FFMPEG ?? "/usr/bin/ffmpeg";
const inRange = (port, node) => port !== null && port >= node.mediaBase && port < node.mediaBase + 4;

/** Frames decoded per slot now. */
async function frames(page) {
  const s = await viewerVideoStats(page);
  return [0, 1].map((i) => s[i]?.framesDecoded ?? 0);
}

/** Whether slots 0 and 1 both decode: each grows by more than 5 frames within ~0.7 s. */
async function bothDecoding(page) {
  const a = await frames(page);
  await new Promise((r) => setTimeout(r, 700));
  const b = await frames(page);
  return b[0] > a[0] + 5 && b[1] > a[1] + 5;
}

/** A gauge's value in a node's `/metrics` (null when absent or the node is down). */
async function gauge(node, name) {
  const text = await fetch(`${node.base}/metrics`).then((r) => r.text()).catch(() => "");
  const m = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  return m ? Number(m[1]) : null;
}

describe("cluster: media relayed origin → edge", { timeout: 240_000 }, () => {
  let redis;
  let pg;
  const nodes = {};
  let lb;
  let browser;
  let viewer;
  let publisher;
  let ffmpeg;

  before(async () => {
    ensureOut();
    redis = await startRedis();
    pg = await startPostgres();
    for (const id of ["a", "b", "c"]) {
      const env = id === "a" ? { VENUE_CLUSTER_MAX_VIEWERS: "1" } : {};
      nodes[id] = await startNode({ redis, pg, id: `node-${id}`, drainS: 2, env });
    }
    lb = await startBalancer([
      { id: "b", port: nodes.b.httpPort },
      { id: "a", port: nodes.a.httpPort },
    ]);
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of [viewer, publisher]) {
      if (p?.errors.length) console.log(`# page errors on ${p.url()}: ${p.errors.join(" | ")}`);
    }
    ffmpeg?.kill("SIGKILL");
    await browser?.close().catch(() => {});
    await lb?.close().catch(() => {});
    for (const n of Object.values(nodes)) {
      await stopProc(n.proc, "SIGKILL");
      await n.stop().catch(() => {});
    }
    await redis?.stop().catch(() => {});
    await pg?.stop().catch(() => {});
  });

  it("a viewer on B decodes slots published on A (WHIP) and C (RTMP), and moves to A when B dies", async (t) => {
    const { a, b, c } = nodes;
    const api = adminApi(c.base);
    const maxSlots = (await roomInfo(c.base)).max_slots ?? 4;
    const alice = await api.createStreamer("Alice");
    const carl = await api.createStreamer("Carl");
    await api.putStage({
      layout: 2,
      slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? alice.id : i === 1 ? carl.id : null)),
    });

    publisher = await newPage(browser);
    await publisher.goto(`${a.base}/publish?key=${encodeURIComponent(alice.stream_key)}&autostart=1`);
    await waitFor(() => publisher.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live on A" });
    ffmpeg = spawn(
      FFMPEG,
      ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", "-f", "flv", `rtmp://127.0.0.1:${c.rtmpPort}/live/${carl.stream_key}`],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let ffErr = "";
    ffmpeg.stderr.on("data", (d) => (ffErr += d));
    await waitFor(
      async () => {
        const r = await roomInfo(b.base);
        return r.slots[0]?.live && r.slots[1]?.live;
      },
      { timeout: 20000, what: `B shows both slots live (ffmpeg: ${ffErr.slice(0, 300)})` },
    );

    viewer = await newPage(browser);
    const joinAt = Date.now();
    await viewer.goto(`${lb.base}/?name=Edge`);
    await waitFor(() => bothDecoding(viewer), { timeout: 30000, interval: 200, what: "viewer on B decoding both slots" });
    const decodeMs = Date.now() - joinAt;
    assert.ok(inRange(await mediaPort(viewer), b), "the viewer's media is on node B");
    const sizes = await viewerVideoStats(viewer);
    assert.equal(sizes[1].frameWidth, 640, "slot 1 is the RTMP stream from C");
    assert.equal(await gauge(b, "venue_cluster_relays_in"), 2, "B relays from A and from C");
    assert.equal(await gauge(a, "venue_cluster_relays_out"), 1, "A feeds one relay");
    assert.equal(await gauge(c, "venue_cluster_relays_out"), 1, "C feeds one relay");
    assert.equal((await roomInfo(a.base)).viewer_count, 0, "a relay is not a viewer on A");
    await viewer.screenshot({ path: join(OUT, "cluster-relay-edge.png") }).catch(() => {});

    // The admin API on C swaps the slots: B's viewer shows Carl (640x360, from C) on slot 0 on
    // the same PeerConnection — no new WHEP offer.
    const posts = await viewer.evaluate(() => window.venue.posts);
    const pc = await viewer.evaluate(() => { window.__pcBefore = window.venue.pc; return true; });
    assert.ok(pc);
    await api.putStage({
      layout: 2,
      slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? carl.id : i === 1 ? alice.id : null)),
    });
    const switchAt = Date.now();
    await waitFor(
      async () => {
        const st = await viewerVideoStats(viewer);
        return st[0]?.frameWidth === 640 && st[0]?.frameHeight === 360 && (await bothDecoding(viewer));
      },
      { timeout: 15000, interval: 200, what: "slot 0 shows Carl after the swap" },
    );
    const switchMs = Date.now() - switchAt;
    assert.equal(await viewer.evaluate(() => window.venue.posts), posts, "no new WHEP offer");
    assert.ok(await viewer.evaluate(() => window.__pcBefore === window.venue.pc), "the same PeerConnection");

    // B dies: the page comes back through the balancer on A and decodes both slots again.
    const killAt = Date.now();
    process.kill(b.proc.pid, "SIGKILL");
    await waitFor(
      async () => inRange(await mediaPort(viewer), a) && (await bothDecoding(viewer)),
      { timeout: 30000, interval: 200, what: "viewer back on A, decoding both slots" },
    );
    const backMs = Date.now() - killAt;
    // The origins' relays to the dead edge close by themselves.
    await waitFor(async () => (await gauge(a, "venue_cluster_relays_out")) === 0, {
      timeout: 60000,
      interval: 250,
      what: "A's relay to the dead B closed",
    });
    const closedMs = Date.now() - killAt;
    assert.equal(await gauge(a, "venue_cluster_relays_in"), 1, "A now relays slot 1 from C");

    // Placement: A takes one viewer (VENUE_CLUSTER_MAX_VIEWERS=1) and has it. A second page
    // opened on A itself is placed on C (the other live node), posts its offer there and
    // decodes both slots (slot 0 relayed A → C).
    const second = await newPage(browser);
    const secondAt = Date.now();
    await second.goto(`${a.base}/?name=Placed`);
    await waitFor(() => bothDecoding(second), { timeout: 30000, interval: 200, what: "second viewer decoding on C" });
    const placedMs = Date.now() - secondAt;
    const placed = await second.evaluate(() => window.venue.join);
    assert.equal(placed.node, "node-c", `placed on C: ${JSON.stringify(placed)}`);
    assert.ok(inRange(await mediaPort(second), c), "the second viewer's media is on node C");
    assert.equal(second.errors.length, 0, `no page errors: ${second.errors.join(" | ")}`);
    t.diagnostic(
      `viewer on B decoding both relayed slots ${decodeMs} ms after page load; slots swapped on C → shown on B ${switchMs} ms; SIGKILL B → decoding on A ${backMs} ms; ` +
        `A's relay to B closed after ${closedMs} ms; a page opened on full A decoding on C after ${placedMs} ms`,
    );
    assert.equal(viewer.errors.length, 0, `no page errors: ${viewer.errors.join(" | ")}`);
  });
});
