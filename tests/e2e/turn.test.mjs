// Browser end-to-end through Venue's embedded TURN server (issue 6): Chromium publishes and
// views with `iceTransportPolicy: "relay"` (the pages' `?ice=relay`), once with a TURN/UDP URI
// and once with TURN/TCP only; the viewer's frames decode, both peer connections' selected
// candidate pairs are relayed over the asked transport, and the server counts relayed packets.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && npm ci && node --test turn.test.mjs)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { OUT, adminApi, ensureOut, freeTcpPort, launchChromium, newPage, startVenue, waitFor, waitFramesAbove } from "./lib.mjs";

/** The selected candidate pair of `window.venue.pc`: local type and relay protocol. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.venue?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    return { state: pair.state, type: local?.candidateType, relayProtocol: local?.relayProtocol, protocol: local?.protocol };
  });
}

/** A counter from `/metrics`. */
async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

/** A self-signed certificate for localhost / 127.0.0.1 (openssl), for TURN over TLS. */
function selfSignedCert(dir) {
  const cert = join(dir, "turn-cert.pem");
  const key = join(dir, "turn-key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], { stdio: "ignore" });
  return { cert, key };
}

for (const transport of (process.env.TURN_TRANSPORTS ?? "udp,tcp,tls").split(",")) {
  describe(`TURN relay over ${transport} in the browser`, { timeout: 120_000 }, () => {
    let venue;
    let browser;
    const pages = [];

    before(async () => {
      ensureOut();
      const port = await freeTcpPort();
      const tlsPort = await freeTcpPort();
      const dir = mkdtempSync(join(tmpdir(), "venue-turn-"));
      const config = join(dir, "venue.toml");
      const { cert, key } = selfSignedCert(dir);
      // Every listener runs; the clients are only told about the transport under test.
      const url =
        transport === "tls" ? `turns:localhost:${tlsPort}?transport=tcp` : `turn:127.0.0.1:${port}?transport=${transport}`;
      writeFileSync(
        config,
        [
          "[turn]",
          "enabled = true",
          `udp_listen = "127.0.0.1:${port}"`,
          `tcp_listen = "127.0.0.1:${port}"`,
          `tls_listen = "127.0.0.1:${tlsPort}"`,
          `tls_cert = "${cert}"`,
          `tls_key = "${key}"`,
          `relay_ip = "127.0.0.1"`,
          `secret = "e2e-turn-secret-0123456789"`,
          `urls = ["${url}"]`,
          "",
        ].join("\n"),
      );
      venue = await startVenue({ name: `turn-${transport}`, extraArgs: ["--config", config] });
      // The test's certificate is self-signed: Chromium must not refuse it (a real deployment has a CA-signed one).
      browser = await launchChromium({ extraArgs: transport === "tls" ? ["--ignore-certificate-errors"] : [] });
    });

    after(async () => {
      for (const p of pages) if (p.errors.length) console.log(`# page errors on ${p.url()}: ${p.errors.join(" | ")}`);
      await browser?.close().catch(() => {});
      await venue?.stop();
    });

    it("publishes and views through the relay only", async () => {
      const api = adminApi(venue.base);
      const s = await api.createStreamer(`Relay ${transport}`);
      const pub = await newPage(browser);
      pages.push(pub);
      await pub.goto(`${venue.base}/publish?key=${encodeURIComponent(s.stream_key)}&autostart=1&ice=relay`);
      await waitFor(() => pub.evaluate(() => window.venue.state === "live"), { timeout: 30000, what: "publisher live via TURN" });
      const pubPair = await waitFor(() => selectedPair(pub), { what: "publisher's selected pair" });
      assert.equal(pubPair.type, "relay", JSON.stringify(pubPair));
      assert.equal(pubPair.relayProtocol, transport, JSON.stringify(pubPair));

      await api.putStage({ layout: 1, slots: [s.id] });
      const viewer = await newPage(browser);
      pages.push(viewer);
      await viewer.goto(`${venue.base}/?name=RelayViewer&mode=webrtc&ice=relay`);
      const frames = await waitFramesAbove(viewer, 0, 30, { timeout: 30000 });
      assert.ok(frames > 30);
      const viewPair = await selectedPair(viewer);
      assert.equal(viewPair?.type, "relay", JSON.stringify(viewPair));
      assert.equal(viewPair?.relayProtocol, transport, JSON.stringify(viewPair));

      // The page says how it is connected.
      const label = `via TURN/${transport.toUpperCase()}`;
      await waitFor(() => viewer.evaluate((l) => document.querySelector("#modebadge")?.textContent?.includes(l), label), {
        what: `badge "${label}"`,
      });
      mkdirSync(join(OUT, "screens"), { recursive: true });
      await viewer.screenshot({ path: join(OUT, "screens", `turn-viewer-${transport}.png`) });

      // The server relayed it: allocations for both, packets both ways.
      assert.ok((await metric(venue.base, "venue_turn_allocations_created_total")) >= 2);
      assert.ok((await metric(venue.base, "venue_turn_relayed_to_peer_total")) > 100);
      assert.ok((await metric(venue.base, "venue_turn_relayed_to_client_total")) > 100);
    });
  });
}
