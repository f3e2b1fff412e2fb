// Helpers shared by the viewer, publish and admin pages: DOM building, HTTP errors,
// WHIP/WHEP session plumbing.

/** Attributes for `h()`: `class`, `text`, `on<event>` handlers, `data-*` and plain attributes. */
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Builds an element: `h("button", { class: "x", onclick: fn }, "label")`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "text") {
      el.textContent = String(v);
    } else if (k === "class") {
      el.className = String(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
  return el;
}

/** `document.querySelector` that throws when the page is missing an element. */
export function $<T extends HTMLElement = HTMLElement>(sel: string): T {
  const el = document.querySelector<T>(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el;
}

/** An HTTP response that was not what we asked for; `message` is the server's explanation. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Turns a non-2xx response into an `HttpError` with the server's message (JSON `error`/`message` or text). */
export async function httpError(res: Response): Promise<HttpError> {
  let detail = "";
  try {
    const text = (await res.text()).trim();
    detail = text;
    if (text.startsWith("{")) {
      const j = JSON.parse(text) as Record<string, unknown>;
      const m = j.error ?? j.message ?? j.detail;
      if (typeof m === "string") detail = m;
    }
  } catch {
    // body unreadable: status line is all we have
  }
  const base = `${res.status} ${res.statusText || ""}`.trim();
  return new HttpError(res.status, detail ? `${base}: ${detail.slice(0, 300)}` : base);
}

/** fetch + JSON with errors as `HttpError`. */
export async function getJson<T>(url: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(url, init);
  if (!res.ok) throw await httpError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** A WHIP/WHEP session: the resource URL from `Location`, and how to delete it. */
export interface SdpSession {
  /** Absolute resource URL (RFC 9725 §4.2 `Location`). */
  location: string;
  answer: string;
  headers: Record<string, string>;
}

/**
 * POSTs an SDP offer (WHIP RFC 9725 §4.2 / WHEP) and returns the session resource and answer.
 * Throws `HttpError` for non-201 answers.
 */
export async function postOffer(
  url: string,
  offer: string,
  headers: Record<string, string> = {},
): Promise<SdpSession> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", ...headers },
    body: offer,
  });
  if (res.status !== 201 && res.status !== 200) throw await httpError(res);
  const loc = res.headers.get("Location");
  if (!loc) throw new HttpError(res.status, "server answer has no Location header");
  const answer = await res.text();
  // `Location` is relative to where the offer was answered: after a redirect (a cluster node
  // that is full sends the offer to another, 307) that is `res.url`, not `url`.
  const base = res.url || new URL(url, location.href).href;
  return { location: new URL(loc, base).href, answer, headers };
}

/** `GET /api/ice-servers`: TURN servers with fresh time-limited credentials (empty without TURN). */
interface IceServersAnswer {
  ice_servers: RTCIceServer[];
  ttl_s: number;
}

/**
 * The `RTCConfiguration` of every page's peer connection: one bundle, and the server's TURN
 * servers (`GET /api/ice-servers`; without them, or when the server cannot be asked, host and
 * ICE-TCP candidates only). `?ice=relay` in the page URL forces relayed candidates
 * (`iceTransportPolicy: "relay"`) — for tests and for checking a TURN setup.
 */
export async function rtcConfiguration(): Promise<RTCConfiguration> {
  const config: RTCConfiguration = { bundlePolicy: "max-bundle" };
  try {
    const answer = await getJson<IceServersAnswer>("/api/ice-servers", { cache: "no-store" });
    if (Array.isArray(answer.ice_servers) && answer.ice_servers.length) config.iceServers = answer.ice_servers;
  } catch {
    // No TURN from here: host and ICE-TCP candidates still work on most networks.
  }
  if (new URLSearchParams(location.search).get("ice") === "relay") config.iceTransportPolicy = "relay";
  return config;
}

/**
 * How a connected peer connection reaches the server, from its selected candidate pair:
 * `"udp"` (direct), `"tcp"` (ICE-TCP, RFC 6544), `"turn/udp"`, `"turn/tcp"`, `"turn/tls"`
 * (relayed by TURN over that transport); null when not known yet.
 */
export async function mediaPath(pc: RTCPeerConnection): Promise<string | null> {
  const stats = await pc.getStats();
  let path: string | null = null;
  stats.forEach((s) => {
    if (s.type !== "transport" || !s.selectedCandidatePairId) return;
    const pair = stats.get(s.selectedCandidatePairId);
    const local = pair && stats.get(pair.localCandidateId);
    if (!local) return;
    path = local.candidateType === "relay" ? `turn/${local.relayProtocol ?? "udp"}` : String(local.protocol ?? "udp");
  });
  return path;
}

/**
 * Watches a connected peer connection for a dead server, faster than the browser's own
 * `disconnected` (~5 s): every `everyMs` it reads the selected ICE candidate pair's stats
 * (`lastPacketReceivedTimestamp`, `requestsSent`, `responsesReceived`; W3C webrtc-stats
 * §RTCIceCandidatePairStats). Nothing received for `silenceMs` (media, RTCP, data channel and
 * ICE all count) while at least `unanswered` of the browser's ICE consent checks (RFC 7675)
 * went out without an answer since the last packet: `onDead()` is called once. The server
 * answers every check at once, so silence alone (an empty stage) is not taken for death.
 * Returns a function that stops the watch.
 */
export function watchConsent(
  pc: RTCPeerConnection,
  onDead: (silentMs: number) => void,
  { everyMs = 500, silenceMs = 2000, unanswered = 2 } = {},
): () => void {
  /** Checks without an answer when a packet last came in. */
  let baseline: number | null = null;
  let stopped = false;
  const timer = setInterval(async () => {
    if (stopped || pc.connectionState === "closed") return;
    let stats: RTCStatsReport;
    try {
      stats = await pc.getStats();
    } catch {
      return;
    }
    let pair: RTCIceCandidatePairStats | undefined;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair || stopped || pair.lastPacketReceivedTimestamp === undefined) return;
    const silent = pair.timestamp - pair.lastPacketReceivedTimestamp;
    const missing = (pair.requestsSent ?? 0) - (pair.responsesReceived ?? 0);
    if (silent < silenceMs / 2 || baseline === null) {
      baseline = missing;
      return;
    }
    if (silent >= silenceMs && missing - baseline >= unanswered) {
      stop();
      onDead(silent);
    }
  }, everyMs);
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  return stop;
}

/** Best-effort DELETE of a session resource; survives page unload (`keepalive`). */
export function deleteSession(s: SdpSession | null | undefined): void {
  if (!s) return;
  fetch(s.location, { method: "DELETE", headers: s.headers, keepalive: true }).catch(() => {});
}

/** Reconnect delays: 1 s, 2 s, then 5 s for every later attempt. */
export function backoffMs(attempt: number): number {
  return [1000, 2000, 5000][Math.min(attempt, 2)];
}

/** Doubling delays for re-joining a cluster: 1 s, 2 s, 4 s, 8 s, then `capMs` (default 15 s). */
export function doublingBackoffMs(attempt: number, capMs = 15000): number {
  return Math.min(1000 * 2 ** Math.min(Math.max(0, attempt), 20), capMs);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Copies text to the clipboard; falls back to a hidden textarea where the Clipboard API is unavailable (plain http). */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    const ta = h("textarea", { style: "position:fixed;left:-9999px" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
}
