// Viewer page: the page's state as `window.venue` exposes it (tests, the console, the latency
// scripts), and the stage as the page shows it, built from `GET /api/rooms/{room}` or from a
// data-channel `StageState` (venue.proto).
import type { StageState } from "../gen/venue_pb";
import type { RoomClient, RoomState } from "../room";
import type { RoomFx } from "../fx";

/** The status line's look. */
export type StatusKind = "" | "ok" | "live" | "warn" | "err";

/** One stage slot as the page shows it (same shape as `GET /api/rooms/{room}`). */
export interface SlotView {
  index: number;
  streamer_id: number | null;
  name: string | null;
  live: boolean;
}

/** The stage as last received; exposed as `window.venue.state`. */
export interface ViewState {
  title: string;
  layout: number;
  slots: SlotView[];
  viewer_count: number;
  /** `StageState.revision` from the data channel; null when the state came from HTTP. */
  revision: number | null;
  source: "http" | "datachannel";
}

export interface RoomInfo {
  name: string;
  title: string;
  layout: number;
  max_slots: number;
  slots: { index: number; streamer_id: number | string | null; name: string | null; live: boolean }[];
  viewer_count: number;
}

/** Timings in `performance.now()` ms, for tests and the latency script. */
export interface Timing {
  postStart: number | null;
  answerAt: number | null;
  connectedAt: number | null;
  /** First presented video frame per slot. */
  firstFrame: Record<number, number>;
}

/** `GET /api/rooms/{room}/join`. */
export interface JoinAnswer {
  mode: WatchMode;
  reason: string;
  cause?: "capacity" | "cpu" | null;
  webrtc_viewers?: number;
  max_webrtc_viewers?: number;
  hls_url: string;
  /** Relative on this node; absolute on another node chosen by cluster placement. */
  whep_url: string;
  ws_url: string;
  /** Cluster mode: the node whose URLs these are. */
  node?: string;
}

/**
 * One time the page left its node for another (cluster mode): `moving` (the node drains and
 * said so) or `lost` (the node went silent: ICE disconnected or failed, the event channel
 * closed). Times in `performance.now()` ms; `back` once WebRTC is connected again with the
 * event channel open (or the WebSocket joined), null until then.
 */
export interface Relocation {
  why: "moving" | "lost";
  detail: string;
  at: number;
  back: number | null;
}

/** How the page watches the stage. */
export type WatchMode = "webrtc" | "hls";

/** The parts of an hls.js instance the page and tests use. */
export interface HlsPlayer {
  readonly url: string | null;
  readonly latency: number;
  readonly media: HTMLMediaElement | null;
  destroy(): void;
}

export interface VenueGlobal {
  /** `webrtc` or `hls` once decided; null before. */
  mode: WatchMode | null;
  /** The server's answer to `/join` (or the page's own when forced or unreachable). */
  join: JoinAnswer | null;
  /** Why a WebRTC attempt fell back to HLS; null when it did not. */
  fallback: string | null;
  /** HLS mode: the hls.js player (null with native HLS or between retries), its URL, the video. */
  hls: HlsPlayer | null;
  hlsUrl: string | null;
  program: HTMLVideoElement | null;
  pc: RTCPeerConnection | null;
  /** The living room's state (users, cursors, stickers, chat, notices…). */
  room: RoomState;
  roomName: string;
  client: RoomClient;
  fx: RoomFx;
  state: ViewState | null;
  maxSlots: number;
  timing: Timing;
  /** Number of WHEP POSTs this page made (a reconnect makes a new one). */
  posts: number;
  dc: RTCDataChannel | null;
  lossy: RTCDataChannel | null;
  /** Every move to another node, oldest first (`Relocation`). */
  relocations: Relocation[];
  /** WebRTC: how the media reaches us (`mediaPath`: udp, tcp, turn/udp, turn/tcp, turn/tls). */
  path: string | null;
}

/** The stage from `GET /api/rooms/{room}`. */
export function fromRoomInfo(info: RoomInfo): ViewState {
  return {
    title: info.title,
    layout: info.layout,
    viewer_count: info.viewer_count,
    slots: info.slots.map((s) => ({
      index: s.index,
      streamer_id: s.streamer_id === null || s.streamer_id === undefined ? null : Number(s.streamer_id),
      name: s.name ?? null,
      live: !!s.live,
    })),
    revision: null,
    source: "http",
  };
}

/** The stage from a data-channel `StageState` (streamer id 0: an empty slot). */
export function fromProto(s: StageState): ViewState {
  return {
    title: s.title,
    layout: s.layout,
    viewer_count: s.viewerCount,
    slots: s.slots.map((x) => ({
      index: x.index,
      streamer_id: x.streamerId === 0n ? null : Number(x.streamerId),
      name: x.name === "" ? null : x.name,
      live: x.live,
    })),
    revision: Number(s.revision),
    source: "datachannel",
  };
}
