// Cluster helpers of the browser tests (issue 11): a throwaway redis-server and PostgreSQL 15
// on free loopback ports in temp dirs, `venue` nodes on them, and a small TCP load balancer
// that sends each new connection to the first node whose `/readyz` says ready. Every process
// is started here and stopped by pid (`stop()`), even when a test fails.
import { spawn, spawnSync } from "node:child_process";
import { chownSync, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OUT, ensureOut, freeTcpPort, startVenue, waitFor } from "./lib.mjs";

export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";
export const CLUSTER_SECRET = "e2e-cluster-secret-0123456789";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Waits for a child's exit, at most `ms`; true when it exited. */
export function exited(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const t = setTimeout(() => res(false), ms);
    proc.once("exit", () => {
      clearTimeout(t);
      res(true);
    });
  });
}

/** Sends `signal`, then SIGKILL if the process is still there after `graceMs`. */
export async function stopProc(proc, signal = "SIGTERM", graceMs = 5000) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(proc.pid, signal);
  } catch {
    return;
  }
  if (!(await exited(proc, graceMs))) {
    try {
      process.kill(proc.pid, "SIGKILL");
    } catch {
      // gone
    }
    await exited(proc, 2000);
  }
}

function logTo(proc, name) {
  ensureOut();
  const log = createWriteStream(join(OUT, name), { flags: "a" });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  return join(OUT, name);
}

/** One TCP round trip: sends `line`, resolves with what comes back first (or rejects). */
function ask(port, line) {
  return new Promise((res, rej) => {
    const s = connect(port, "127.0.0.1");
    const t = setTimeout(() => {
      s.destroy();
      rej(new Error("no answer"));
    }, 1000);
    s.on("connect", () => s.write(line));
    s.on("data", (d) => {
      clearTimeout(t);
      s.destroy();
      res(String(d));
    });
    s.on("error", (e) => {
      clearTimeout(t);
      rej(e);
    });
  });
}

/** `redis-server` on a free loopback port, no persistence, in a temp dir. `{ url, port, proc, stop }`. */
export async function startRedis() {
  const port = await freeTcpPort();
  const dir = mkdtempSync(join(tmpdir(), "venue-e2e-redis-"));
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = logTo(proc, `redis-${port}.log`);
  const stop = async () => {
    await stopProc(proc, "SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}), see ${log}`);
        return (await ask(port, "PING\r\n")).startsWith("+PONG");
      },
      { timeout: 15000, what: `redis-server on ${port}` },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis://127.0.0.1:${port}`, port, proc, stop };
}

/**
 * A throwaway PostgreSQL 15 (trust auth, user `postgres`, fsync off) on a free loopback port,
 * its socket and data in a temp dir, with a database `venue`. As root, initdb and the server
 * run as the `postgres` user (PostgreSQL refuses root). `{ url, port, proc, stop }`.
 */
export async function startPostgres() {
  const port = await freeTcpPort();
  const dir = mkdtempSync(join(tmpdir(), "venue-e2e-pg-"));
  let asUser = [];
  if (isRoot) {
    const uid = Number(spawnSync("id", ["-u", "postgres"]).stdout);
    const gid = Number(spawnSync("id", ["-g", "postgres"]).stdout);
    if (!uid) throw new Error("no `postgres` user: install Debian's postgresql package");
    chownSync(dir, uid, gid);
    asUser = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig=INT", "--"];
  }
  const run = (bin, args, opts) =>
    asUser.length ? spawn(asUser[0], [...asUser.slice(1), `${PG_BIN}/${bin}`, ...args], opts) : spawn(`${PG_BIN}/${bin}`, args, opts);
  const data = join(dir, "data");
  const init = run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], { stdio: ["ignore", "pipe", "pipe"] });
  logTo(init, `postgres-${port}.log`);
  const code = await new Promise((res) => init.on("exit", (c) => res(c)));
  if (code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${code}), see ${join(OUT, `postgres-${port}.log`)}`);
  }
  // setpriv execs postgres: the pid is the postmaster's; SIGINT is its fast shutdown.
  const proc = run(
    "postgres",
    ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = logTo(proc, `postgres-${port}.log`);
  const stop = async () => {
    await stopProc(proc, "SIGINT", 10000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`postgres exited (${proc.exitCode}), see ${log}`);
        return spawnSync(`${PG_BIN}/pg_isready`, ["-h", "127.0.0.1", "-p", String(port)]).status === 0;
      },
      { timeout: 30000, interval: 200, what: `PostgreSQL on ${port}` },
    );
    const created = spawnSync(`${PG_BIN}/createdb`, ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "venue"]);
    if (created.status !== 0) throw new Error(`createdb failed: ${created.stderr}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/venue`, port, proc, stop };
}

/**
 * A cluster node: `venue` on Redis and PostgreSQL with the shared secret, its own HTTP, media
 * and RTMP ports and data dir (`startVenue`). Pass `{ httpPort, mediaBase, dataDir }` of a
 * stopped node to start it again where it was. `drainS`: `VENUE_DRAIN_TIMEOUT_S`.
 */
export async function startNode({ redis, pg, id, drainS = 2, httpPort, mediaBase, dataDir, env = {} }) {
  httpPort ??= await freeTcpPort();
  const rtmpPort = await freeTcpPort();
  const node = await startVenue({
    name: `node-${id}`,
    httpPort,
    mediaBase,
    dataDir,
    env: {
      VENUE_REDIS_URL: redis.url,
      VENUE_DATABASE_URL: pg.url,
      VENUE_CLUSTER_SECRET: CLUSTER_SECRET,
      VENUE_NODE_ID: id,
      VENUE_INTERNAL_URL: `http://127.0.0.1:${httpPort}`,
      VENUE_DRAIN_TIMEOUT_S: String(drainS),
      VENUE_RTMP_LISTEN: `127.0.0.1:${rtmpPort}`,
      VENUE_TURN_ENABLED: "false",
      VENUE_RECORDING_ENABLED: "false",
      ...env,
    },
  });
  await waitFor(async () => (await fetch(`${node.base}/readyz`).catch(() => null))?.status === 200, {
    timeout: 20000,
    what: `node ${id} ready`,
  });
  return { ...node, id, rtmpPort };
}

/**
 * A TCP load balancer on a free loopback port: each new connection goes to the first of
 * `backends` (`{ id, port }`) whose `GET /readyz` answered 200 at the last check (every
 * `checkMs`); none ready: the connection is closed. When a backend stops being ready its
 * open connections are closed (as a balancer draining a server does), so a browser's
 * kept-alive HTTP connection does not stay pinned to a draining node. `{ port, base, ready(),
 * routed, close() }`; `routed[id]` counts the connections sent to each backend.
 */
export async function startBalancer(backends, { checkMs = 150 } = {}) {
  const port = await freeTcpPort();
  const ready = new Map(backends.map((b) => [b.id, false]));
  const open = new Map(backends.map((b) => [b.id, new Set()]));
  const routed = Object.fromEntries(backends.map((b) => [b.id, 0]));
  let closed = false;
  const check = async () => {
    await Promise.all(
      backends.map(async (b) => {
        const ok = await fetch(`http://127.0.0.1:${b.port}/readyz`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.status === 200)
          .catch(() => false);
        if (ready.get(b.id) && !ok) {
          for (const s of open.get(b.id)) s.destroy();
        }
        ready.set(b.id, ok);
      }),
    );
  };
  await check();
  let timer = null;
  const loop = async () => {
    if (closed) return;
    await check();
    if (!closed) timer = setTimeout(loop, checkMs);
  };
  timer = setTimeout(loop, checkMs);
  const server = createServer((client) => {
    const b = backends.find((x) => ready.get(x.id));
    if (!b) {
      client.destroy();
      return;
    }
    routed[b.id]++;
    const upstream = connect(b.port, "127.0.0.1");
    const set = open.get(b.id);
    set.add(client);
    const done = () => {
      set.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((res) => server.listen(port, "127.0.0.1", res));
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    routed,
    ready: () => Object.fromEntries(ready),
    /** Re-reads every backend's readiness now. */
    check,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const set of open.values()) for (const s of set) s.destroy();
      await new Promise((res) => server.close(() => res()));
    },
  };
}

/**
 * Where a viewer page's media goes: the remote port of its selected ICE candidate pair (a
 * node's media shard port), or null while not connected.
 */
export function mediaPort(page) {
  return page.evaluate(async () => {
    const pc = window.venue?.pc;
    if (!pc || pc.connectionState !== "connected") return null;
    const stats = await pc.getStats();
    let port = null;
    stats.forEach((s) => {
      if (s.type !== "transport" || !s.selectedCandidatePairId) return;
      const pair = stats.get(s.selectedCandidatePairId);
      const remote = pair && stats.get(pair.remoteCandidateId);
      if (remote) port = remote.port;
    });
    return port;
  });
}
