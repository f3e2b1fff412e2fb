// Publish page (`/publish`): camera + microphone (or, with `?canvas=1`, a timecode canvas)
// sent over WHIP (RFC 9725) to `POST /api/whip` with the stream key as Bearer token.
// H.264 preferred (then VP8), three simulcast layers when the camera gives ≥ 720p,
// Opus in stereo at music bitrates without DTX.
//
// URL parameters: `key=` prefills the stream key, `autostart=1` goes live at once,
// `canvas=1` publishes the timecode pattern from timecode.ts instead of the camera.
import "./style.css";
import {
  $,
  HttpError,
  backoffMs,
  deleteSession,
  errorMessage,
  h,
  postOffer,
  type SdpSession,
  rtcConfiguration,
  watchConsent,
} from "./common";
import { timecodeTrack } from "./timecode";

type PublishState = "idle" | "connecting" | "live" | "error";

interface PublishGlobal {
  pc: RTCPeerConnection | null;
  state: PublishState;
  /** Last error message (HTTP status and the server's reason, or the media error). */
  error: string | null;
  stream: MediaStream | null;
  /** Simulcast RIDs sent, empty for a single encoding. */
  rids: string[];
}

const KEY_STORAGE = "venue.streamKey";
const SIMULCAST: RTCRtpEncodingParameters[] = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 300_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 900_000 },
  { rid: "f", maxBitrate: 2_500_000 },
];

const params = new URLSearchParams(location.search);
const canvasMode = params.get("canvas") === "1";

const venue: PublishGlobal = { pc: null, state: "idle", error: null, stream: null, rids: [] };
// Exposed for tests and the console.
(window as unknown as { venue: PublishGlobal }).venue = venue;

const keyInput = $<HTMLInputElement>("#key");
const cameraSel = $<HTMLSelectElement>("#camera");
const micSel = $<HTMLSelectElement>("#mic");
const goBtn = $<HTMLButtonElement>("#golive");
const stopBtn = $<HTMLButtonElement>("#stop");
const statusEl = $("#status");
const messageEl = $("#message");
const preview = $<HTMLVideoElement>("#preview");
const liveBadge = $("#livebadge");
const statsEl = $("#stats");

keyInput.value = params.get("key") ?? localStorage.getItem(KEY_STORAGE) ?? "";

function setState(state: PublishState, text: string, detail = "") {
  venue.state = state;
  venue.error = state === "error" ? detail || text : null;
  const kind = state === "live" ? "live" : state === "error" ? "err" : state === "connecting" ? "warn" : "";
  statusEl.textContent = text;
  statusEl.className = `status ${kind}`;
  messageEl.textContent = detail;
  messageEl.className = `meta ${state === "error" ? "error" : "muted"}`;
  liveBadge.hidden = state !== "live";
  const busy = state === "connecting" || state === "live" || retryTimer !== null;
  goBtn.disabled = busy;
  stopBtn.disabled = !busy;
  keyInput.disabled = busy;
}

// ---------- capture ----------

let canvasSource: { stream: MediaStream; stop: () => void } | null = null;

async function acquire(): Promise<void> {
  const cam = cameraSel.value;
  const mic = micSel.value;
  const audio: MediaTrackConstraints = {
    deviceId: mic ? { exact: mic } : undefined,
    // A concert: keep the music as it is.
    echoCancellation: false,
    noiseSuppression: false,
    autoGainControl: false,
    channelCount: { ideal: 2 },
    sampleRate: { ideal: 48000 },
  };
  let stream: MediaStream;
  if (canvasMode) {
    canvasSource ??= timecodeTrack();
    const tracks = [...canvasSource.stream.getVideoTracks()];
    try {
      const a = await navigator.mediaDevices.getUserMedia({ audio });
      tracks.push(...a.getAudioTracks());
    } catch {
      // no microphone: video only
    }
    stream = new MediaStream(tracks);
  } else {
    stream = await navigator.mediaDevices.getUserMedia({
      video: {
        deviceId: cam ? { exact: cam } : undefined,
        width: { ideal: 1280 },
        height: { ideal: 720 },
        frameRate: { ideal: 30 },
      },
      audio,
    });
  }
  for (const t of stream.getAudioTracks()) t.contentHint = "music";
  const old = venue.stream;
  venue.stream = stream;
  preview.srcObject = stream;
  preview.play().catch(() => {});
  // Swap tracks on a live session without renegotiating.
  if (venue.pc) {
    for (const tr of venue.pc.getTransceivers()) {
      const kind = tr.sender.track?.kind ?? tr.receiver.track.kind;
      const next = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      if (next) await tr.sender.replaceTrack(next).catch(() => {});
    }
  }
  if (old) {
    for (const t of old.getTracks()) if (!stream.getTracks().includes(t)) t.stop();
  }
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const current = (kind: "video" | "audio") =>
    venue.stream?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId ?? "";
  const fill = (sel: HTMLSelectElement, kind: MediaDeviceKind, active: string, none: string) => {
    const list = devices.filter((d) => d.kind === kind);
    sel.replaceChildren(
      ...(list.length
        ? list.map((d, i) =>
            h("option", { value: d.deviceId, text: d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}` }),
          )
        : [h("option", { value: "", text: none })]),
    );
    if (active) sel.value = active;
  };
  if (canvasMode) {
    cameraSel.replaceChildren(h("option", { value: "", text: "Timecode canvas (1280×720)" }));
    cameraSel.disabled = true;
  } else {
    fill(cameraSel, "videoinput", current("video"), "no camera");
  }
  fill(micSel, "audioinput", current("audio"), "no microphone");
}

cameraSel.addEventListener("change", () => void acquire().catch(showCaptureError));
micSel.addEventListener("change", () => void acquire().catch(showCaptureError));

function showCaptureError(e: unknown) {
  setState("error", "no camera", `Could not open camera/microphone: ${errorMessage(e)}`);
}

// ---------- SDP ----------

/** Orders codecs H.264 (constrained baseline, packetization-mode 1 first), then VP8, then RTX/RED/FEC. */
function preferCodecs(t: RTCRtpTransceiver) {
  if (typeof t.setCodecPreferences !== "function") return;
  const caps = RTCRtpSender.getCapabilities?.("video") ?? RTCRtpReceiver.getCapabilities?.("video");
  if (!caps) return;
  const rank = (c: RTCRtpCodec): number => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = c.sdpFmtpLine ?? "";
    if (mime === "video/h264") {
      const pm1 = /packetization-mode=1/.test(fmtp);
      const cb = /profile-level-id=42e0/i.test(fmtp);
      const baseline = /profile-level-id=4200/i.test(fmtp);
      return pm1 ? (cb ? 0 : baseline ? 1 : 2) : cb ? 3 : 4;
    }
    if (mime === "video/vp8") return 10;
    if (mime === "video/rtx" || mime === "video/red" || mime === "video/ulpfec" || mime === "video/flexfec-03") return 20;
    return -1; // VP9, AV1, H.265: the SFU does not take them
  };
  const codecs = caps.codecs
    .map((c, i) => ({ c, r: rank(c), i }))
    .filter((x) => x.r >= 0)
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.c);
  if (!codecs.some((c) => /h264|vp8/i.test(c.mimeType))) return;
  try {
    t.setCodecPreferences(codecs);
  } catch (e) {
    console.warn("venue: setCodecPreferences not accepted; browser default codecs", e);
  }
}

/** Opus for music: stereo both ways, 128 kbit/s average, no DTX. */
export function mungeOpus(sdp: string): string {
  const m = /a=rtpmap:(\d+) opus\/48000(?:\/2)?/i.exec(sdp);
  if (!m) return sdp;
  const pt = m[1];
  const want: [string, string][] = [
    ["stereo", "1"],
    ["sprop-stereo", "1"],
    ["maxaveragebitrate", "128000"],
    ["usedtx", "0"],
  ];
  const fmtpRe = new RegExp(`a=fmtp:${pt} ([^\\r\\n]*)`);
  const f = fmtpRe.exec(sdp);
  if (f) {
    const kv = new Map<string, string>();
    for (const part of f[1].split(";")) {
      const [k, v] = part.split("=", 2).map((s) => s.trim());
      if (k) kv.set(k, v ?? "");
    }
    for (const [k, v] of want) kv.set(k, v);
    const line = [...kv].map(([k, v]) => `${k}=${v}`).join(";");
    return sdp.replace(fmtpRe, `a=fmtp:${pt} ${line}`);
  }
  const rtpmapLine = new RegExp(`(a=rtpmap:${pt} [^\\r\\n]*\\r?\\n)`);
  return sdp.replace(rtpmapLine, `$1a=fmtp:${pt} ${want.map(([k, v]) => `${k}=${v}`).join(";")}\r\n`);
}

// ---------- WHIP ----------

let session: SdpSession | null = null;
let generation = 0;
let attempt = 0;
let retryTimer: ReturnType<typeof setTimeout> | null = null;
let statsTimer: ReturnType<typeof setInterval> | null = null;
/** Stops the dead-server watch of the current connection (`watchConsent`). */
let stopConsentWatch: (() => void) | null = null;

function closePc() {
  stopConsentWatch?.();
  stopConsentWatch = null;
  if (statsTimer) clearInterval(statsTimer);
  statsTimer = null;
  statsEl.textContent = "";
  deleteSession(session);
  session = null;
  if (venue.pc) {
    venue.pc.onconnectionstatechange = null;
    venue.pc.close();
  }
  venue.pc = null;
}

async function goLive() {
  const key = keyInput.value.trim();
  if (!key) {
    setState("error", "no key", "Enter your stream key.");
    keyInput.focus();
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  const gen = ++generation;
  closePc();
  setState("connecting", attempt ? "reconnecting…" : "connecting…");
  try {
    if (!venue.stream) await acquire();
    const stream = venue.stream;
    if (!stream) throw new Error("no media");
    const config = await rtcConfiguration();
    if (gen !== generation) return;
    const pc = new RTCPeerConnection(config);
    venue.pc = pc;
    venue.rids = [];
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0];
    if (video) {
      const height = video.getSettings().height ?? 0;
      const init: RTCRtpTransceiverInit = { direction: "sendonly", streams: [stream] };
      if (height >= 720) {
        init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
        venue.rids = SIMULCAST.map((e) => e.rid ?? "");
      }
      preferCodecs(pc.addTransceiver(video, init));
    }
    if (audio) pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
    if (!video && !audio) throw new Error("nothing to send: no camera and no microphone");

    pc.onconnectionstatechange = () => {
      if (gen !== generation) return;
      const st = pc.connectionState;
      if (st === "connected") {
        attempt = 0;
        setState("live", "live", "You are live. Viewers see you when the venue puts you on stage.");
        startStats(pc);
        // A dead node (killed, cut off) is noticed in ~2–3 s: publish again elsewhere.
        stopConsentWatch ??= watchConsent(pc, (ms) => {
          if (gen === generation) retry(`server silent for ${(ms / 1000).toFixed(1)} s`);
        });
      } else if (st === "failed") {
        retry("connection failed");
      } else if (st === "disconnected") {
        setState("connecting", "connection interrupted…");
        // The browser heard nothing from the server for a few seconds: its node is gone (in a
        // cluster) or the network changed. Not back within 1 s: publish again (through the
        // same URL, which a load balancer sends to a ready node); the same key replaces the
        // old session.
        setTimeout(() => {
          if (gen === generation && pc.connectionState === "disconnected") retry("connection lost");
        }, 1000);
      }
    };

    const offer = await pc.createOffer();
    await pc.setLocalDescription({ type: "offer", sdp: mungeOpus(offer.sdp ?? "") });
    if (gen !== generation) return;
    // The server is ICE-lite and learns our address from our checks: send the offer now.
    const s = await postOffer("/api/whip", pc.localDescription?.sdp ?? "", {
      Authorization: `Bearer ${key}`,
    });
    if (gen !== generation) {
      deleteSession(s);
      return;
    }
    session = s;
    await pc.setRemoteDescription({ type: "answer", sdp: s.answer });
  } catch (e) {
    if (gen !== generation) return;
    const msg = errorMessage(e);
    if (e instanceof HttpError && e.status >= 400 && e.status < 500) {
      closePc();
      const hint = e.status === 401 ? " — check your stream key." : "";
      setState("error", "error", `${msg}${hint}`);
    } else {
      retry(msg);
    }
  }
}

/** Network trouble or a failed connection: try again 1 s, 2 s, 5 s later (same key replaces the old session). */
function retry(reason: string) {
  closePc();
  const delay = backoffMs(attempt++);
  retryTimer = setTimeout(() => {
    retryTimer = null;
    void goLive();
  }, delay);
  setState("error", "error", `${reason} — retrying in ${delay / 1000}s`);
}

function stop() {
  generation++;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
  attempt = 0;
  closePc();
  setState("idle", "idle", "Stopped.");
}

function startStats(pc: RTCPeerConnection) {
  if (statsTimer) clearInterval(statsTimer);
  const last = new Map<string, { bytes: number; ts: number }>();
  statsTimer = setInterval(async () => {
    const report = await pc.getStats().catch(() => null);
    if (!report) return;
    const codecs = new Map<string, string>();
    report.forEach((s) => {
      if (s.type === "codec") codecs.set(s.id, String(s.mimeType).split("/")[1]);
    });
    const lines: string[] = [];
    report.forEach((s) => {
      if (s.type !== "outbound-rtp") return;
      const prev = last.get(s.id);
      last.set(s.id, { bytes: s.bytesSent, ts: s.timestamp });
      const kbps = prev ? Math.round(((s.bytesSent - prev.bytes) * 8) / (s.timestamp - prev.ts)) : 0;
      const codec = codecs.get(s.codecId) ?? "";
      if (s.kind === "video") {
        const res = s.frameWidth ? `${s.frameWidth}×${s.frameHeight}@${Math.round(s.framesPerSecond ?? 0)}` : "paused";
        lines.push(`video${s.rid ? ` ${s.rid}` : ""} ${codec} ${res} ${kbps} kb/s`);
      } else {
        lines.push(`audio ${codec} ${kbps} kb/s`);
      }
    });
    const order = (l: string) => ["audio", "video q", "video h", "video f"].findIndex((p) => l.startsWith(p));
    statsEl.textContent = lines.sort((a, b) => order(a) - order(b)).join("  ·  ");
  }, 1000);
}

goBtn.addEventListener("click", () => {
  attempt = 0;
  void goLive();
});
stopBtn.addEventListener("click", stop);
window.addEventListener("pagehide", () => deleteSession(session));

async function main() {
  setState("idle", "idle");
  try {
    await acquire();
  } catch (e) {
    showCaptureError(e);
    return;
  }
  if (params.get("autostart") === "1") void goLive();
}

void main();
