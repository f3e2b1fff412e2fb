// Admin console: one streamer's health line (codec, size, frame rate, bitrate, GOP, audio,
// loss) and its warnings, as measured by the SFU and listed by GET …/streamers every poll.
import { h } from "../common";

/** GET …/streamers → `health` (see gateway/src/api/admin.rs for the shape). */
export interface Health {
  protocol: "whip" | "rtmp";
  video: {
    rid: string | null;
    codec: string;
    profile_level_id: string | null;
    width: number | null;
    height: number | null;
    fps: number;
    bitrate_bps: number;
    keyframe_interval_s: number | null;
  }[];
  audio: {
    codec: string;
    channels: number;
    sample_rate_hz: number;
    bitrate_bps: number;
    source: { codec: string; channels: number; sample_rate_hz: number } | null;
  } | null;
  packet_loss: number;
  b_frames: boolean;
  warnings: string[];
}

/** The two elements of a streamer card the health goes into. */
export interface HealthView {
  health: HTMLDivElement;
  warnings: HTMLDivElement;
}

// Numbers stay with their units when the line wraps (U+00A0).
const kHz = (hz: number) => `${Number((hz / 1000).toFixed(1))}\u00a0kHz`;
const channels = (n: number) => (n === 1 ? "mono" : n === 2 ? "stereo" : `${n} ch`);

function bitrate(bps: number): string {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)}\u00a0Mbit/s`;
  return `${Math.round(bps / 1e3)}\u00a0kbit/s`;
}

/** One compact line: "H.264 1280×720 30 fps 2.9 Mbit/s · GOP 1.0 s · Opus stereo 48 kHz (from
 * AAC 44.1 kHz) · loss 0.2%", after a protocol badge; warnings in a box below. */
export function renderHealth(card: HealthView, hl: Health | null) {
  card.health.hidden = hl === null;
  card.warnings.hidden = hl === null || hl.warnings.length === 0;
  if (hl === null) {
    card.health.replaceChildren();
    card.warnings.replaceChildren();
    return;
  }
  const parts: string[] = [];
  // The largest layer first (simulcast sends several).
  const layers = [...hl.video].sort((a, b) => (b.height ?? 0) - (a.height ?? 0) || b.bitrate_bps - a.bitrate_bps);
  const v = layers[0];
  if (v) {
    const size = v.width && v.height ? ` ${v.width}×${v.height}` : "";
    const total = layers.reduce((n, l) => n + l.bitrate_bps, 0);
    let text = `${v.codec}${size} ${Math.round(v.fps)}\u00a0fps ${bitrate(total)}`;
    if (layers.length > 1) text += ` (${layers.length} layers)`;
    parts.push(text);
    if (v.keyframe_interval_s !== null) parts.push(`GOP\u00a0${v.keyframe_interval_s.toFixed(1)}\u00a0s`);
  } else {
    parts.push("no video");
  }
  const a = hl.audio;
  if (a) {
    let text = `${a.codec} ${channels(a.channels)} ${kHz(a.sample_rate_hz)}`;
    if (a.source) text += ` (from ${a.source.codec} ${kHz(a.source.sample_rate_hz)}${a.source.channels !== a.channels ? ` ${channels(a.source.channels)}` : ""})`;
    parts.push(text);
  } else {
    parts.push("no audio");
  }
  parts.push(`loss\u00a0${Number((hl.packet_loss * 100).toFixed(1))}%`);
  const title = v?.profile_level_id ? `profile-level-id ${v.profile_level_id}` : "";
  card.health.replaceChildren(
    h("span", { class: `proto ${hl.protocol}`, text: hl.protocol.toUpperCase() }),
    h("span", { class: `healthtext${hl.packet_loss > 0.05 ? " bad" : ""}`, text: parts.join(" · "), title }),
  );
  card.warnings.replaceChildren(...hl.warnings.map((w) => h("div", { class: "healthwarn", role: "alert", text: `⚠ ${w}` })));
}
