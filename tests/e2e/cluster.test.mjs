// Issue 11 (cluster mode), items 3 and 10: a viewer page moves between nodes.
//
// redis-server and a throwaway PostgreSQL 15 on free loopback ports, two `venue` nodes A and B
// on them (same cluster secret, own ports and data dirs), and a TCP load balancer in this test
// that sends each new connection to the first node whose `/readyz` is 200 (A while it is
// ready). The publisher (`/publish`, fake camera) and the viewer both come through the
// balancer: relays between nodes are not built yet, so the publisher's media is seen only by
// viewers on its own node, and both must move for the viewer to decode again.
// (1) SIGTERM A: A drains (`/readyz` 503, `ServerMessage.moving` to its pages, exit after the
//     drain timeout): the viewer shows the notice, re-joins through `/join` on B, its event
//     channel opens there and, once the publisher is on B too, it decodes again; name and chat
//     kept.
// (2) A restarted; SIGKILL B (no moving notice): the viewer notices within ~3 s (ICE
//     `disconnected`) and comes back through A, decoding again.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { OUT, adminApi, ensureOut, launchChromium, newPage, roomInfo, viewerVideoStats, waitFor } from "./lib.mjs";
import { exited, mediaPort, startBalancer, startNode, startPostgres, startRedis, stopProc } from "./cluster-lib.mjs";

/** The viewer's page state the test looks at. */
function viewerState(page) {
  return page.evaluate(() => {
    const v = window.venue;
    const notice = document.querySelector(".movenotice");
    return {
      mode: v.mode,
      pc: v.pc?.connectionState ?? null,
      dc: v.dc?.readyState ?? null,
      transport: v.room.transport,
      joined: v.room.joined,
      name: v.room.me?.displayName ?? null,
      chat: v.room.chat.map((m) => m.text),
      relocations: v.relocations.map((r) => ({ ...r })),
      notice: notice && !notice.hidden ? notice.textContent : null,
      moving: v.room.moving,
      posts: v.posts,
      fallback: v.fallback,
      status: document.querySelector("#status")?.textContent ?? "",
    };
  });
}

/** Whether slot 0 decodes: framesDecoded grows by more than 5 within ~1 s. */
async function decoding(page) {
  const a = (await viewerVideoStats(page))[0]?.framesDecoded ?? 0;
  await new Promise((r) => setTimeout(r, 700));
  const b = (await viewerVideoStats(page))[0]?.framesDecoded ?? 0;
  return b > a + 5;
}

const inRange = (port, node) => port !== null && port >= node.mediaBase && port < node.mediaBase + 4;

describe("cluster: pages move between nodes", { timeout: 240_000 }, () => {
  let redis;
  let pg;
  const nodes = {};
  let lb;
  let browser;
  let viewer;
  let publisher;

  before(async () => {
    ensureOut();
    redis = await startRedis();
    pg = await startPostgres();
    nodes.a = await startNode({ redis, pg, id: "node-a", drainS: 2 });
    nodes.b = await startNode({ redis, pg, id: "node-b", drainS: 2 });
    lb = await startBalancer([
      { id: "a", port: nodes.a.httpPort },
      { id: "b", port: nodes.b.httpPort },
    ]);
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of [viewer, publisher]) {
      if (p?.errors.length) console.log(`# page errors on ${p.url()}: ${p.errors.join(" | ")}`);
    }
    await browser?.close().catch(() => {});
    await lb?.close().catch(() => {});
    for (const n of Object.values(nodes)) {
      await stopProc(n.proc, "SIGKILL");
      await n.stop().catch(() => {});
    }
    await redis?.stop().catch(() => {});
    await pg?.stop().catch(() => {});
  });

  it("moves on SIGTERM (moving notice) and comes back after SIGKILL (dead node)", async (t) => {
    const api = adminApi(lb.base);
    const maxSlots = (await roomInfo(lb.base)).max_slots ?? 4;
    const alice = await api.createStreamer("Alice");

    publisher = await newPage(browser);
    await publisher.goto(`${lb.base}/publish?key=${encodeURIComponent(alice.stream_key)}&autostart=1`);
    await waitFor(() => publisher.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live" });
    await api.putStage({ layout: 1, slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? alice.id : null)) });

    viewer = await newPage(browser);
    await viewer.goto(`${lb.base}/?name=Mover`);
    await waitFor(async () => (await viewerState(viewer)).joined && (await decoding(viewer)), {
      timeout: 25000,
      what: "viewer joined and decoding on node A",
    });
    assert.ok(inRange(await mediaPort(viewer), nodes.a), "the viewer's media is on node A");
    await viewer.evaluate(() => window.venue.client.sendChat("before the move"));
    await waitFor(async () => (await viewerState(viewer)).chat.includes("before the move"), { what: "own chat echoed" });

    // (1) SIGTERM A: drain, moving notice, re-join on B.
    const termAt = Date.now();
    process.kill(nodes.a.proc.pid, "SIGTERM");
    await waitFor(async () => (await fetch(`http://127.0.0.1:${nodes.a.httpPort}/readyz`)).status === 503, {
      timeout: 5000,
      interval: 50,
      what: "A's /readyz 503 while draining",
    });
    const noticed = await waitFor(
      async () => {
        const s = await viewerState(viewer);
        return s.relocations[0]?.why === "moving" && s.notice ? s : null;
      },
      { timeout: 5000, interval: 50, what: "the moving notice on the page" },
    );
    const noticeMs = Date.now() - termAt;
    assert.match(noticed.notice, /Moving you to another server/);
    assert.ok(noticed.moving?.reason, "the moving reason is kept");
    await viewer.screenshot({ path: join(OUT, "cluster-moving.png") }).catch(() => {});

    const events = await waitFor(
      async () => {
        const s = await viewerState(viewer);
        const port = await mediaPort(viewer);
        return s.pc === "connected" && s.dc === "open" && s.joined && inRange(port, nodes.b) ? s : null;
      },
      { timeout: 10000, interval: 100, what: "viewer on node B: WebRTC connected, event channel open, joined" },
    );
    const eventsMs = Date.now() - termAt;
    assert.equal(events.name, "Mover", "the name is kept");
    assert.ok(events.chat.includes("before the move"), `the chat is kept: ${JSON.stringify(events.chat)}`);
    assert.equal(events.mode, "webrtc");
    assert.ok(await exited(nodes.a.proc, 10000), "A exits after its drain");
    await waitFor(() => decoding(viewer), { timeout: 20000, interval: 200, what: "viewer decoding again on B (publisher moved too)" });
    const videoMs = Date.now() - termAt;
    const st1 = await viewerState(viewer);
    t.diagnostic(
      `SIGTERM A → notice ${noticeMs} ms, on B with the event channel open ${eventsMs} ms, decoding ${videoMs} ms ` +
        `(page: moved in ${Math.round(st1.relocations[0].back - st1.relocations[0].at)} ms); balancer ${JSON.stringify(lb.routed)}`,
    );
    assert.ok(eventsMs < 10000, `event channel back within 10 s (${eventsMs} ms)`);

    // (2) A back; SIGKILL B: no moving notice, the page must notice by itself.
    nodes.a = { ...(await startNode({ redis, pg, id: "node-a", drainS: 2, httpPort: nodes.a.httpPort, mediaBase: nodes.a.mediaBase, dataDir: nodes.a.dataDir })) };
    await lb.check();
    await waitFor(() => lb.ready().a, { what: "balancer sees A ready" });
    await new Promise((r) => setTimeout(r, 1500)); // let the page settle on B
    const before = (await viewerState(viewer)).relocations.length;
    const killAt = Date.now();
    process.kill(nodes.b.proc.pid, "SIGKILL");
    const lost = await waitFor(
      async () => {
        const s = await viewerState(viewer);
        return s.relocations.length > before ? s : null;
      },
      { timeout: 8000, interval: 50, what: "the page notices B is gone" },
    );
    const detectMs = Date.now() - killAt;
    assert.equal(lost.relocations.at(-1).why, "lost");
    assert.ok(!lost.relocations.at(-1).detail.includes("moving"), "no moving notice from a killed node");
    const back = await waitFor(
      async () => {
        const s = await viewerState(viewer);
        const port = await mediaPort(viewer);
        return s.pc === "connected" && s.dc === "open" && s.joined && inRange(port, nodes.a) ? s : null;
      },
      { timeout: 10000, interval: 100, what: "viewer back on A: connected, event channel open" },
    );
    const backMs = Date.now() - killAt;
    await waitFor(() => decoding(viewer), { timeout: 20000, interval: 200, what: "viewer decoding again on A" });
    const videoMs2 = Date.now() - killAt;
    assert.equal(back.name, "Mover");
    assert.ok(back.chat.includes("before the move"), "the chat is kept after the second move");
    t.diagnostic(`SIGKILL B → noticed ${detectMs} ms, on A with the event channel open ${backMs} ms, decoding ${videoMs2} ms`);
    assert.ok(detectMs < 4500, `a dead node noticed within ~3 s (${detectMs} ms)`);
    assert.equal(viewer.errors.length, 0, `no page errors: ${viewer.errors.join(" | ")}`);
  });
});
