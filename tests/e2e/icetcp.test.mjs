// Browser end-to-end of ICE-TCP (issue 6, items 4–5): a viewer whose network drops all UDP
// still watches the stage, over the SFU's passive TCP candidates (RFC 6544).
//
// The viewer's Chromium runs inside a network namespace joined to the host by a veth pair
// (10.213.N.1 host side, 10.213.N.2 namespace side) whose iptables drop every UDP packet in
// and out. `venue` listens (HTTP and media) on the host-side address and advertises it as its
// candidate; the publisher's Chromium stays on the host (UDP). Playwright drives the
// namespaced Chromium over its pipe, through a wrapper that runs
// `ip netns exec NS /usr/bin/chromium "$@"`. Checks: the viewer decodes the stage tile and its
// selected candidate pair is TCP to the SFU's host candidate; and, as a control, with
// `[media] ice_tcp = false` the same viewer never connects.
//
// Needs root (CAP_NET_ADMIN: `ip netns`, veth, iptables — the `iptables` Debian package);
// without it the test fails with the reason. Namespaces and links it leaves behind (a killed
// run) are removed at the next start.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && node --test icetcp.test.mjs)
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CHROMIUM,
  adminApi,
  ensureOut,
  launchChromium,
  newPage,
  roomInfo,
  startVenue,
  viewerVideoStats,
  waitFor,
  waitFramesAbove,
} from "./lib.mjs";

const IP = "/usr/sbin/ip";
const IPTABLES = "/usr/sbin/iptables";
const NS_PREFIX = "venue-icetcp-";
const LINK_PREFIX = "vit";

function run(cmd, args) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function tryRun(cmd, args) {
  try {
    return run(cmd, args);
  } catch {
    return null;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/** Removes namespaces and host-side links of earlier runs whose process is gone. */
function cleanLeftovers() {
  for (const line of (tryRun(IP, ["netns", "list"]) ?? "").split("\n")) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)\\b`).exec(line.trim());
    if (m && !alive(Number(m[1]))) tryRun(IP, ["netns", "del", `${NS_PREFIX}${m[1]}`]);
  }
  for (const line of (tryRun(IP, ["-o", "link", "show"]) ?? "").split("\n")) {
    const m = new RegExp(`^\\d+: (${LINK_PREFIX}(\\d+)h)[@:]`).exec(line);
    if (m && !alive(Number(m[2]))) tryRun(IP, ["link", "del", m[1]]);
  }
}

/**
 * A network namespace with a veth pair to the host and all UDP dropped inside. Throws with a
 * clear message when the machine does not let us (no root / CAP_NET_ADMIN, no iptables).
 */
function createUdpBlockedNamespace() {
  cleanLeftovers();
  const pid = process.pid;
  const ns = `${NS_PREFIX}${pid}`;
  const hostIf = `${LINK_PREFIX}${pid}h`;
  const nsIf = `${LINK_PREFIX}${pid}n`;
  const used = tryRun(IP, ["-4", "-o", "addr", "show"]) ?? "";
  let n = 20 + (pid % 200);
  for (let i = 0; i < 230 && used.includes(`10.213.${n}.`); i++) n = 20 + ((n - 19) % 230);
  const hostIp = `10.213.${n}.1`;
  const nsIp = `10.213.${n}.2`;
  const net = { ns, hostIf, nsIf, hostIp, nsIp };
  try {
    run(IP, ["netns", "add", ns]);
  } catch (e) {
    throw new Error(
      `the ICE-TCP browser test needs root (CAP_NET_ADMIN) to create a network namespace; ` +
        `\`ip netns add ${ns}\` failed: ${(e.stderr || e.message).trim()}`,
    );
  }
  try {
    run(IP, ["link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
    run(IP, ["link", "set", nsIf, "netns", ns]);
    run(IP, ["addr", "add", `${hostIp}/24`, "dev", hostIf]);
    run(IP, ["link", "set", hostIf, "up"]);
    const inNs = (...args) => run(IP, ["netns", "exec", ns, ...args]);
    inNs(IP, "addr", "add", `${nsIp}/24`, "dev", nsIf);
    inNs(IP, "link", "set", nsIf, "up");
    inNs(IP, "link", "set", "lo", "up");
    try {
      inNs(IPTABLES, "-A", "OUTPUT", "-p", "udp", "-j", "DROP");
      inNs(IPTABLES, "-A", "INPUT", "-p", "udp", "-j", "DROP");
    } catch (e) {
      throw new Error(`iptables in the namespace failed (is the iptables package installed?): ${(e.stderr || e.message).trim()}`);
    }
    const rules = inNs(IPTABLES, "-S");
    assert.match(rules, /-A OUTPUT -p udp -j DROP/);
    assert.match(rules, /-A INPUT -p udp -j DROP/);
  } catch (e) {
    removeNamespace(net);
    throw e;
  }
  return net;
}

function removeNamespace(net) {
  if (!net) return;
  tryRun(IP, ["link", "del", net.hostIf]);
  tryRun(IP, ["netns", "del", net.ns]);
}

/** A script that runs Chromium inside `ns` (Playwright keeps its pipe: fds 3 and 4 are inherited). */
function chromiumWrapper(dir, ns) {
  const path = join(dir, "chromium-in-netns.sh");
  writeFileSync(path, `#!/bin/sh\nexec ${IP} netns exec '${ns}' '${CHROMIUM}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** The selected ICE candidate pair of the page's RTCPeerConnection, with both candidates. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.venue?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId) ?? pair;
    });
    if (!pair) {
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      });
    }
    if (!pair) return null;
    const pick = (c) =>
      c && {
        protocol: c.protocol,
        candidateType: c.candidateType,
        address: c.address ?? c.ip,
        port: c.port,
        tcpType: c.tcpType ?? null,
      };
    return {
      state: pair.state,
      bytesReceived: pair.bytesReceived ?? 0,
      local: pick(stats.get(pair.localCandidateId)),
      remote: pick(stats.get(pair.remoteCandidateId)),
    };
  });
}

describe("ICE-TCP: a viewer whose network blocks UDP", { timeout: 120_000 }, () => {
  let net;
  let tmp;
  let wrapper;
  let venue;
  let hostBrowser;
  let nsBrowser;
  let setupError = null;
  const pages = [];

  before(async () => {
    ensureOut();
    // A failure here fails each test with the reason (a failed hook would only cancel them).
    try {
      net = createUdpBlockedNamespace();
      tmp = mkdtempSync(join(tmpdir(), "venue-icetcp-"));
      wrapper = chromiumWrapper(tmp, net.ns);
    } catch (e) {
      setupError = e;
    }
  });

  after(async () => {
    for (const p of pages) {
      if (p.errors.length) console.log(`# page errors on ${p.url()}: ${p.errors.join(" | ")}`);
    }
    await nsBrowser?.close().catch(() => {});
    await hostBrowser?.close().catch(() => {});
    await venue?.stop();
    removeNamespace(net);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("watches the stage over ICE-TCP", async (t) => {
    if (setupError) throw setupError;
    venue = await startVenue({ name: "icetcp", host: net.hostIp });
    const api = adminApi(venue.base);
    const maxSlots = (await roomInfo(venue.base)).max_slots ?? 4;
    // http://10.213.N.1 is not a secure context by itself; getUserMedia needs one.
    const secure = `--unsafely-treat-insecure-origin-as-secure=${venue.base}`;

    // Publisher on the host (UDP works there), on slot 0.
    hostBrowser = await launchChromium({ extraArgs: [secure] });
    const streamer = await api.createStreamer("Tcp Tester");
    const pub = await newPage(hostBrowser);
    pages.push(pub);
    await pub.goto(`${venue.base}/publish?key=${encodeURIComponent(streamer.stream_key)}&autostart=1`);
    await waitFor(() => pub.evaluate(() => window.venue.state === "live"), {
      timeout: 20000,
      what: "publisher live",
    }).catch(async (e) => {
      const st = await pub.evaluate(() => ({ state: window.venue.state, error: window.venue.error }));
      throw new Error(`${e.message}; publish page: ${JSON.stringify(st)}`);
    });
    await api.putStage({ layout: 1, slots: Array.from({ length: maxSlots }, (_, i) => (i === 0 ? streamer.id : null)) });

    // The viewer in the namespace: UDP is dropped both ways, only TCP gets through.
    nsBrowser = await launchChromium({ executablePath: wrapper, extraArgs: [secure] });
    const viewer = await newPage(nsBrowser);
    pages.push(viewer);
    await viewer.goto(`${venue.base}/?name=Behind%20a%20firewall&mode=webrtc`);
    const first = await waitFramesAbove(viewer, 0, 0, { timeout: 25000 }).catch(async (e) => {
      const st = await viewer.evaluate(() => ({
        connection: window.venue?.pc?.connectionState,
        ice: window.venue?.pc?.iceConnectionState,
        remote: window.venue?.pc?.remoteDescription?.sdp?.split("\r\n").filter((l) => l.startsWith("a=candidate")),
      }));
      throw new Error(`${e.message}; viewer: ${JSON.stringify(st)}`);
    });
    await waitFramesAbove(viewer, 0, first + 10, { timeout: 10000 });
    const video = (await viewerVideoStats(viewer))[0];
    assert.ok(video.frameWidth > 0 && video.frameHeight > 0, `decoded frames have a size: ${JSON.stringify(video)}`);
    const timing = await viewer.evaluate(() => window.venue.timing);
    t.diagnostic(`viewer over ICE-TCP: POST → first frame ${(timing.firstFrame[0] - timing.postStart).toFixed(0)} ms`);

    const pair = await selectedPair(viewer);
    t.diagnostic(`selected pair: ${JSON.stringify(pair)}`);
    assert.ok(pair, "the viewer has a selected candidate pair");
    assert.equal(pair.remote.protocol, "tcp", "remote candidate is TCP");
    assert.equal(pair.local.protocol, "tcp", "local candidate is TCP");
    assert.equal(pair.remote.candidateType, "host", "the SFU's own (host) candidate, not a relay");
    assert.notEqual(pair.local.candidateType, "relay", "no TURN relay");
    assert.equal(pair.remote.address, net.hostIp);
    assert.ok(
      pair.remote.port >= venue.mediaBase && pair.remote.port < venue.mediaBase + 64,
      `remote port ${pair.remote.port} is a shard port (base ${venue.mediaBase})`,
    );
    const sdp = await viewer.evaluate(() => window.venue.pc.remoteDescription.sdp);
    assert.match(sdp, /a=candidate:\S+ 1 tcp \d+ \S+ \d+ typ host tcptype passive/, "the answer has passive TCP candidates");
    await viewer.close();
    await venue.stop();
    venue = null;
  });

  it("control: with ice_tcp = false the same viewer does not connect", async () => {
    if (setupError) throw setupError;
    const config = join(tmp, "no-ice-tcp.toml");
    writeFileSync(config, "[media]\nice_tcp = false\n");
    await venue?.stop(); // left running when the first test failed half-way
    venue = await startVenue({ name: "icetcp-off", host: net.hostIp, extraArgs: ["--config", config] });
    nsBrowser ??= await launchChromium({ executablePath: wrapper });
    const viewer = await newPage(nsBrowser);
    pages.push(viewer);
    await viewer.goto(`${venue.base}/?name=Still%20behind&mode=webrtc`);
    // The offer is answered (signalling is HTTP over TCP) …
    const sdp = await waitFor(() => viewer.evaluate(() => window.venue?.pc?.remoteDescription?.sdp ?? null), {
      timeout: 15000,
      what: "the WHEP answer",
    });
    assert.match(sdp, / udp \d+ \S+ \d+ typ host/, "UDP candidates are offered");
    assert.doesNotMatch(sdp, / tcp \d+ /, "no TCP candidates without ice_tcp");
    // … but no candidate pair works: in 8 s (the ICE-TCP viewer connected in about one) the
    // connection never comes up.
    const deadline = Date.now() + 8000;
    const states = new Set();
    while (Date.now() < deadline) {
      states.add(await viewer.evaluate(() => window.venue?.pc?.iceConnectionState ?? "none"));
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(!states.has("connected") && !states.has("completed"), `ICE states seen: ${[...states].join(", ")}`);
    const video = await viewerVideoStats(viewer);
    assert.ok(!(video[0]?.framesDecoded > 0), `no frames: ${JSON.stringify(video)}`);
  });
});
