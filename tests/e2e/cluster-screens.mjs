// Screenshots of the viewer page moving between cluster nodes (not a test): two nodes behind
// the test balancer (cluster-lib.mjs), a publisher and two viewers (desktop 1280×720, phone
// 390×844) on node A; SIGTERM A → out/screens/cluster-moving-{desktop,phone}.png while the
// notice shows, cluster-back-*.png once they watch again on B; A restarted, SIGKILL B →
// cluster-lost-*.png. `node cluster-screens.mjs` (needs the venue binary, redis-server,
// PostgreSQL 15, Chromium).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { OUT, adminApi, launchChromium, newPage, roomInfo, waitFor } from "./lib.mjs";
import { startBalancer, startNode, startPostgres, startRedis, stopProc } from "./cluster-lib.mjs";

const dir = join(OUT, "screens");
mkdirSync(dir, { recursive: true });
const procs = { nodes: {} };
try {
  procs.redis = await startRedis();
  procs.pg = await startPostgres();
  const { redis, pg } = procs;
  procs.nodes.a = await startNode({ redis, pg, id: "node-a", drainS: 3 });
  procs.nodes.b = await startNode({ redis, pg, id: "node-b", drainS: 3 });
  const lb = (procs.lb = await startBalancer([
    { id: "a", port: procs.nodes.a.httpPort },
    { id: "b", port: procs.nodes.b.httpPort },
  ]));
  const browser = (procs.browser = await launchChromium());
  const api = adminApi(lb.base);
  const maxSlots = (await roomInfo(lb.base)).max_slots ?? 4;
  const alice = await api.createStreamer("Alice");
  const pub = await newPage(browser);
  await pub.goto(`${lb.base}/publish?key=${encodeURIComponent(alice.stream_key)}&autostart=1`);
  await waitFor(() => pub.evaluate(() => window.venue.state === "live"), { timeout: 20000, what: "publisher live" });
  await api.putStage({ layout: 1, slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? alice.id : null)) });

  const desktop = await newPage(browser);
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const phone = await phoneCtx.newPage();
  phone.errors = [];
  const pages = { desktop, phone };
  for (const [name, p] of Object.entries(pages)) {
    await p.goto(`${lb.base}/?name=${name === "desktop" ? "Dana" : "Pip"}`);
    await waitFor(() => p.evaluate(() => window.venue.room.joined && window.venue.pc?.connectionState === "connected"), {
      timeout: 20000,
      what: `${name} viewer connected`,
    });
  }
  await desktop.evaluate(() => window.venue.client.sendChat("see you on the other side"));
  await new Promise((r) => setTimeout(r, 1500));

  const shootWhen = async (what, cond) => {
    await Promise.all(
      Object.entries(pages).map(async ([name, p]) => {
        await waitFor(() => p.evaluate(cond), { timeout: 10000, interval: 30, what: `${name}: ${what}` });
        await p.screenshot({ path: join(dir, `cluster-${what}-${name}.png`) });
      }),
    );
  };
  process.kill(procs.nodes.a.proc.pid, "SIGTERM");
  await shootWhen("moving", () => !document.querySelector(".movenotice")?.hidden && window.venue.relocations.length === 1);
  await shootWhen("back", () => window.venue.relocations[0]?.back !== null && !document.querySelector(".movenotice")?.hidden);
  await waitFor(() => procs.nodes.a.proc.exitCode !== null || procs.nodes.a.proc.signalCode !== null, { timeout: 15000, what: "A exited" });
  procs.nodes.a = await startNode({ redis, pg, id: "node-a", drainS: 3, httpPort: procs.nodes.a.httpPort, mediaBase: procs.nodes.a.mediaBase, dataDir: procs.nodes.a.dataDir });
  await lb.check();
  await new Promise((r) => setTimeout(r, 1500));
  process.kill(procs.nodes.b.proc.pid, "SIGKILL");
  await shootWhen("lost", () => window.venue.relocations.length === 2 && !document.querySelector(".movenotice")?.hidden);
  console.log(`screenshots in ${dir}`);
} finally {
  await procs.browser?.close().catch(() => {});
  await procs.lb?.close().catch(() => {});
  for (const n of Object.values(procs.nodes)) {
    await stopProc(n.proc, "SIGKILL");
    await n.stop().catch(() => {});
  }
  await procs.redis?.stop().catch(() => {});
  await procs.pg?.stop().catch(() => {});
}
