// The living room's client: joins a room over the viewer's WebRTC data channels (`venue`
// reliable + `venue-lossy` unreliable) or the room WebSocket (`/api/rooms/{room}/ws`), speaks
// `venue.v1` protobuf (ClientMessage out, ServerMessage in, `deflated` frames inflated with
// DecompressionStream("deflate-raw")), and keeps the room state the page draws:
// users, cursors, the sticker board, chat, settings, notices.
//
// Coordinates are normalized to the room area (`.room`, the stage and the floor around it):
// x, y in [0, 1], 0,0 = its top-left corner.
//
// State is plain JSON-friendly data (ids as numbers) so tests can read `window.venue.room`.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AdminCommandSchema,
  ClientMessageSchema,
  InteractivityMode,
  NoticeCode,
  ProtocolVersion,
  ServerMessageSchema,
  type ChatMessage,
  type Event as RoomEvent,
  type RoomSettings,
  type ServerMessage,
  type StageState,
  type Sticker,
  type User,
} from "./gen/venue_pb";
import { backoffMs } from "./common";

/** An `AdminCommand.command` to send, e.g. `{ case: "mute", value: { userId, durationS } }`. */
export type AdminCommandInit = MessageInitShape<typeof AdminCommandSchema>["command"];

export type Mode = "everything" | "chat_only" | "stickers_off" | "quiet";

export interface UserView {
  id: number;
  name: string;
  starred: boolean;
  admin: boolean;
  mutedUntilMs: number;
}

export interface ChatView {
  id: number;
  userId: number;
  name: string;
  text: string;
  sentMs: number;
  starred: boolean;
  admin: boolean;
}

export interface StickerView {
  id: number;
  stickerId: string;
  x: number;
  y: number;
  rotationDeg: number;
  scale: number;
  userId: number;
  placedMs: number;
}

export interface StickerDefView {
  id: string;
  url: string;
  label: string;
}

export interface SettingsView {
  title: string;
  nowPlaying: string;
  backgroundColor: string;
  mode: Mode;
  stickerSet: { id: string; name: string; stickers: StickerDefView[] };
  slowModeS: number;
}

export type NoticeKind =
  | "unsupported_version"
  | "bad_message"
  | "rate_limited"
  | "muted"
  | "kicked"
  | "banned"
  | "name_rejected"
  | "slow_mode"
  | "not_allowed"
  | "too_slow"
  | "message_rejected"
  | "unknown";

export interface NoticeView {
  code: NoticeKind;
  text: string;
  untilMs: number;
  /** Date.now() when it arrived. */
  at: number;
}

export interface FireworkView {
  userId: number;
  x: number;
  y: number;
  hue: number;
}

export type TransportKind = "datachannel" | "websocket";

/** `ServerMessage.moving`: the node serving this connection drains (cluster mode). */
export interface MovingView {
  reason: string;
  /** When that node exits at the latest, ms since the epoch. */
  deadlineMs: number;
  /** Date.now() when it arrived. */
  at: number;
}

/** Exposed as `window.venue.room`. */
export interface RoomState {
  transport: TransportKind | null;
  /** The server answered our hello on the current connection. */
  joined: boolean;
  /** A snapshot arrived on the current connection (comes one tick after the hello). */
  synced: boolean;
  me: { userId: number; displayName: string; admin: boolean } | null;
  tickMs: number;
  tick: number;
  /** Named users present, by id. */
  users: Record<string, UserView>;
  /** Everyone connected (named or not). */
  userCount: number;
  /** Latest cursor per user (not ours), normalized. */
  cursors: Record<string, { x: number; y: number; at: number }>;
  /** The sticker board, oldest first. */
  stickers: StickerView[];
  /** Recent chat, oldest first (at most 200 kept). */
  chat: ChatView[];
  fireworksSeen: number;
  notices: NoticeView[];
  settings: SettingsView;
  /** Set when the server ended our session for good (kicked, banned, too slow, old version). */
  ended: NoticeView | null;
  framesIn: number;
  /** The last moving notice (cluster mode: our node drains), null when none came. */
  moving: MovingView | null;
}

/** What the page listens to. Every callback is optional. */
export interface RoomHandlers {
  hello?(): void;
  snapshot?(): void;
  stage?(s: StageState): void;
  settings?(s: SettingsView, prev: SettingsView): void;
  users?(): void;
  cursor?(userId: number, x: number, y: number): void;
  userLeft?(userId: number): void;
  stickerPlaced?(s: StickerView): void;
  stickersRemoved?(ids: number[]): void;
  stickersCleared?(): void;
  firework?(f: FireworkView): void;
  chat?(m: ChatView): void;
  chatDeleted?(id: number): void;
  chatCleared?(): void;
  notice?(n: NoticeView): void;
  connection?(connected: boolean): void;
  /** Our node drains: re-join through `/join` (another node answers). */
  moving?(m: MovingView): void;
}

/** A way to send frames; `lossy` frames (cursors, fireworks) may be dropped. */
export interface Transport {
  kind: TransportKind;
  send(bytes: Uint8Array, lossy: boolean): void;
  close(): void;
}

const MAX_CHAT = 200;
const MAX_NOTICES = 50;
/** Cursor sends per second at most (the server's limit is 30/s). */
const CURSOR_HZ = 30;
/** Lossy frames are dropped while this much is queued on the sending channel. */
const LOSSY_BACKLOG = 64 * 1024;

export const DEFAULT_STICKERS: StickerDefView[] = [
  "heart",
  "star",
  "fire",
  "sparkles",
  "music",
  "rainbow",
  "clap",
  "moon",
].map((id) => ({ id, url: `/stickers/default/${id}.svg`, label: id }));

export function defaultSettings(): SettingsView {
  return {
    title: "",
    nowPlaying: "",
    backgroundColor: "",
    mode: "everything",
    stickerSet: { id: "default", name: "Default", stickers: DEFAULT_STICKERS },
    slowModeS: 0,
  };
}

export function modeName(m: InteractivityMode): Mode {
  switch (m) {
    case InteractivityMode.CHAT_ONLY:
      return "chat_only";
    case InteractivityMode.STICKERS_OFF:
      return "stickers_off";
    case InteractivityMode.QUIET:
      return "quiet";
    default:
      return "everything";
  }
}

const NOTICE_NAMES: Record<number, NoticeKind> = {
  [NoticeCode.UNSUPPORTED_VERSION]: "unsupported_version",
  [NoticeCode.BAD_MESSAGE]: "bad_message",
  [NoticeCode.RATE_LIMITED]: "rate_limited",
  [NoticeCode.MUTED]: "muted",
  [NoticeCode.KICKED]: "kicked",
  [NoticeCode.BANNED]: "banned",
  [NoticeCode.NAME_REJECTED]: "name_rejected",
  [NoticeCode.SLOW_MODE]: "slow_mode",
  [NoticeCode.NOT_ALLOWED]: "not_allowed",
  [NoticeCode.TOO_SLOW]: "too_slow",
  [NoticeCode.MESSAGE_REJECTED]: "message_rejected",
};

/** Notices after which the server closes the connection and we do not come back on our own. */
const FINAL: NoticeKind[] = ["kicked", "banned", "too_slow", "unsupported_version"];

const clamp01 = (v: number) => (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0.5);

export function userView(u: User): UserView {
  return {
    id: Number(u.id),
    name: u.displayName,
    starred: u.starred,
    admin: u.admin,
    mutedUntilMs: Number(u.mutedUntilMs),
  };
}

function chatView(m: ChatMessage): ChatView {
  return {
    id: Number(m.id),
    userId: Number(m.userId),
    name: m.displayName,
    text: m.text,
    sentMs: Number(m.sentMs),
    starred: m.starred,
    admin: m.admin,
  };
}

function stickerView(s: Sticker): StickerView {
  return {
    id: Number(s.id),
    stickerId: s.stickerId,
    x: clamp01(s.x),
    y: clamp01(s.y),
    rotationDeg: Number.isFinite(s.rotationDeg) ? s.rotationDeg : 0,
    scale: Number.isFinite(s.scale) && s.scale > 0 ? s.scale : 1,
    userId: Number(s.userId),
    placedMs: Number(s.placedMs),
  };
}

function settingsView(s: RoomSettings): SettingsView {
  const set = s.stickerSet;
  const stickers = set?.stickers.length
    ? set.stickers.map((d) => ({ id: d.id, url: d.url, label: d.label || d.id }))
    : DEFAULT_STICKERS;
  return {
    title: s.title,
    nowPlaying: s.nowPlaying,
    backgroundColor: /^#[0-9a-fA-F]{6}$/.test(s.backgroundColor) ? s.backgroundColor : "",
    mode: modeName(s.mode),
    stickerSet: { id: set?.id || "default", name: set?.name || set?.id || "Default", stickers },
    slowModeS: s.slowModeS,
  };
}

/** Inflates a deflate-raw (RFC 1951) payload. */
async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Chat kept across a move: `ours` (shown now) and `theirs` (the new node's snapshot), one copy
 * of a message found in both (same time, name and text: ids differ between nodes), by time.
 */
function mergeChat(ours: ChatView[], theirs: ChatView[]): ChatView[] {
  const key = (m: ChatView) => `${m.sentMs}\u0000${m.name}\u0000${m.text}`;
  const seen = new Set(theirs.map(key));
  const merged = [...theirs, ...ours.filter((m) => !seen.has(key(m)))];
  return merged.sort((a, b) => a.sentMs - b.sentMs);
}

/** Characters as the server counts them for chat (Unicode scalar values after NFC). */
export function chatLength(text: string): number {
  return [...text.normalize("NFC")].length;
}

export class RoomClient {
  readonly state: RoomState;
  private handlers: RoomHandlers[] = [];
  private transport: Transport | null = null;
  private join: { displayName: string; adminToken: string } | null = null;
  private helloSent = false;
  private chain: Promise<void> = Promise.resolve();
  private pendingInflates = 0;
  private cursorPending: { x: number; y: number } | null = null;
  private cursorLastSent = 0;
  private cursorTimer: ReturnType<typeof setTimeout> | null = null;
  private ws: WebSocket | null = null;
  private wsAttempt = 0;
  private wsTimer: ReturnType<typeof setTimeout> | null = null;
  private wsWanted = false;
  /** The next snapshot keeps the chat we have (after moving to another node). */
  private carryChat = false;

  constructor(readonly room: string) {
    this.state = {
      transport: null,
      joined: false,
      synced: false,
      me: null,
      tickMs: 50,
      tick: 0,
      users: {},
      userCount: 0,
      cursors: {},
      stickers: [],
      chat: [],
      fireworksSeen: 0,
      notices: [],
      settings: defaultSettings(),
      ended: null,
      framesIn: 0,
      moving: null,
    };
  }

  on(h: RoomHandlers) {
    this.handlers.push(h);
  }

  private emit<K extends keyof RoomHandlers>(k: K, ...args: Parameters<NonNullable<RoomHandlers[K]>>) {
    for (const h of this.handlers) {
      const f = h[k] as ((...a: unknown[]) => void) | undefined;
      if (f) {
        try {
          f.apply(h, args);
        } catch (e) {
          console.error(`venue: ${k} handler`, e);
        }
      }
    }
  }

  get connected(): boolean {
    return this.state.joined;
  }

  get isAdmin(): boolean {
    return !!this.state.me?.admin;
  }

  /** The name and token to join with; the hello goes out once this is set and a transport is open. */
  /**
   * Returns false when a hello already went out on the current connection: the new name takes
   * a new connection (the protocol joins once per connection).
   */
  setJoin(displayName: string, adminToken: string): boolean {
    this.join = { displayName, adminToken };
    if (this.helloSent) return false;
    this.maybeHello();
    return true;
  }

  /** Reconnects the WebSocket (to join again with new details). */
  reconnectWebSocket() {
    this.closeWebSocket();
    this.connectWebSocket();
  }

  /**
   * The page moves to another cluster node: the next snapshot keeps the chat shown now, merged
   * with the new node's by time (a message in both counts once), so a node whose hub has not
   * seen the last messages does not wipe them off the page.
   */
  carryOverChat() {
    this.carryChat = true;
  }

  // ---------- transports ----------

  /** Uses the viewer's WHEP data channels (`venue` reliable, `venue-lossy` unreliable). */
  attachDataChannels(reliable: RTCDataChannel, lossy: RTCDataChannel | null) {
    const t: Transport = {
      kind: "datachannel",
      send(bytes, isLossy) {
        const ch = isLossy && lossy?.readyState === "open" ? lossy : reliable;
        if (ch.readyState !== "open") return;
        if (isLossy && ch.bufferedAmount > LOSSY_BACKLOG) return;
        try {
          ch.send(bytes as Uint8Array<ArrayBuffer>);
        } catch {
          // closing
        }
      },
      close() {
        // The WHEP session owns the channels.
      },
    };
    const onMessage = (ev: MessageEvent) => {
      if (this.transport !== t) return;
      if (ev.data instanceof ArrayBuffer) this.receive(new Uint8Array(ev.data));
    };
    reliable.binaryType = "arraybuffer";
    reliable.addEventListener("message", onMessage);
    if (lossy) {
      lossy.binaryType = "arraybuffer";
      lossy.addEventListener("message", onMessage);
    }
    const open = () => {
      this.useTransport(t);
    };
    if (reliable.readyState === "open") open();
    else reliable.addEventListener("open", open, { once: true });
    reliable.addEventListener("close", () => this.transportClosed(t));
  }

  /** Joins over the room WebSocket, reconnecting with back-off until `close()`. */
  connectWebSocket() {
    this.wsWanted = true;
    if (this.ws || this.wsTimer) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/api/rooms/${encodeURIComponent(this.room)}/ws`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const t: Transport = {
      kind: "websocket",
      send(bytes, isLossy) {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (isLossy && ws.bufferedAmount > LOSSY_BACKLOG) return;
        ws.send(bytes as Uint8Array<ArrayBuffer>);
      },
      close() {
        ws.close();
      },
    };
    ws.onopen = () => this.useTransport(t);
    ws.onmessage = (ev) => {
      if (this.transport === t && ev.data instanceof ArrayBuffer) this.receive(new Uint8Array(ev.data));
    };
    let opened = false;
    ws.addEventListener("open", () => (opened = true));
    ws.onclose = () => {
      const current = this.ws === ws;
      if (current) this.ws = null;
      this.transportClosed(t);
      if (!current) return; // replaced on purpose
      if (opened) this.wsAttempt = 0;
      if (this.wsWanted && !this.state.ended) {
        this.wsTimer = setTimeout(() => {
          this.wsTimer = null;
          if (this.wsWanted) this.connectWebSocket();
        }, backoffMs(this.wsAttempt++));
      }
    };
  }

  /** Leaves (WebSocket) and forgets the transport. */
  closeWebSocket() {
    this.wsWanted = false;
    if (this.wsTimer) clearTimeout(this.wsTimer);
    this.wsTimer = null;
    this.ws?.close();
    this.ws = null;
  }

  private useTransport(t: Transport) {
    this.transport = t;
    this.helloSent = false;
    this.state.transport = t.kind;
    this.chain = Promise.resolve();
    this.pendingInflates = 0;
    this.maybeHello();
  }

  private transportClosed(t: Transport) {
    if (this.transport !== t) return;
    this.transport = null;
    this.helloSent = false;
    const was = this.state.joined;
    this.state.joined = false;
    this.state.synced = false;
    this.state.cursors = {};
    if (was) this.emit("connection", false);
  }

  private maybeHello() {
    if (!this.transport || !this.join || this.helloSent) return;
    this.helloSent = true;
    this.send(
      {
        case: "hello",
        value: {
          protocolVersion: ProtocolVersion.CURRENT,
          displayName: this.join.displayName,
          adminToken: this.join.adminToken,
        },
      },
      false,
    );
  }

  private send(body: MessageInitShape<typeof ClientMessageSchema>["body"], lossy: boolean) {
    const t = this.transport;
    if (!t || !this.helloSent) return;
    t.send(toBinary(ClientMessageSchema, create(ClientMessageSchema, { body })), lossy);
  }

  // ---------- commands ----------

  /** Our pointer moved (normalized); sent at most 30/s, coalesced to the latest. */
  moveCursor(x: number, y: number) {
    this.cursorPending = { x: clamp01(x), y: clamp01(y) };
    if (this.cursorTimer) return;
    const wait = this.cursorLastSent + 1000 / CURSOR_HZ - performance.now();
    if (wait <= 0) this.flushCursor();
    else this.cursorTimer = setTimeout(() => this.flushCursor(), wait);
  }

  private flushCursor() {
    this.cursorTimer = null;
    const c = this.cursorPending;
    if (!c || !this.state.joined) return;
    this.cursorPending = null;
    this.cursorLastSent = performance.now();
    this.send({ case: "cursor", value: { x: c.x, y: c.y } }, true);
  }

  placeSticker(stickerId: string, x: number, y: number, rotationDeg: number, scale: number) {
    this.send({ case: "sticker", value: { stickerId, x: clamp01(x), y: clamp01(y), rotationDeg, scale } }, false);
  }

  launchFirework(x: number, y: number, hue: number) {
    this.send({ case: "firework", value: { x: clamp01(x), y: clamp01(y), hue: Math.floor(hue) % 360 } }, true);
  }

  /** Sends a chat message; returns why not when it cannot go. */
  sendChat(text: string): string | null {
    const t = text.trim();
    if (!t) return "Type something first.";
    if (chatLength(t) > 500) return "At most 500 characters.";
    if (!this.state.joined) return "Not connected yet.";
    if (!this.state.me?.displayName) return "Pick a name to chat.";
    this.send({ case: "chat", value: { text: t } }, false);
    return null;
  }

  admin(command: AdminCommandInit) {
    this.send({ case: "admin", value: { command } }, false);
  }

  // ---------- receiving ----------

  private receive(bytes: Uint8Array) {
    this.state.framesIn++;
    let msg: ServerMessage;
    try {
      msg = fromBinary(ServerMessageSchema, bytes);
    } catch (e) {
      console.warn("venue: undecodable server frame", e);
      return;
    }
    if (msg.body.case === "deflated") {
      const packed = msg.body.value;
      const t = this.transport;
      this.pendingInflates++;
      this.chain = this.chain
        .then(() => inflate(packed))
        .then((raw) => {
          if (this.transport !== t) return;
          const inner = fromBinary(ServerMessageSchema, raw);
          if (inner.body.case !== "deflated") this.handle(inner);
        })
        .catch((e) => console.warn("venue: bad deflated frame", e))
        .finally(() => this.pendingInflates--);
      return;
    }
    if (this.pendingInflates > 0) {
      // Keep the order of frames behind an inflate in progress.
      const t = this.transport;
      this.chain = this.chain.then(() => {
        if (this.transport === t) this.handle(msg);
      });
      return;
    }
    this.handle(msg);
  }

  private handle(msg: ServerMessage) {
    const s = this.state;
    switch (msg.body.case) {
      case "hello": {
        const h = msg.body.value;
        s.me = { userId: Number(h.userId), displayName: h.displayName, admin: h.admin };
        s.tickMs = h.tickMs || 50;
        s.joined = true;
        this.emit("hello");
        this.emit("connection", true);
        break;
      }
      case "stage":
        this.emit("stage", msg.body.value);
        break;
      case "notice":
        this.notice(msg.body.value.code, msg.body.value.text, Number(msg.body.value.untilMs));
        break;
      case "snapshot": {
        const snap = msg.body.value;
        s.synced = true;
        s.tick = Number(snap.tick);
        s.users = {};
        for (const u of snap.users) {
          const v = userView(u);
          if (v.name) s.users[v.id] = v;
        }
        s.userCount = snap.userCount;
        s.stickers = snap.stickers.map(stickerView);
        const chat = snap.chat.map(chatView);
        s.chat = (this.carryChat ? mergeChat(s.chat, chat) : chat).slice(-MAX_CHAT);
        this.carryChat = false;
        s.cursors = {};
        const prev = s.settings;
        if (snap.settings) s.settings = settingsView(snap.settings);
        this.emit("snapshot");
        if (snap.settings) this.emit("settings", s.settings, prev);
        if (snap.stage) this.emit("stage", snap.stage);
        this.emit("users");
        break;
      }
      case "moving": {
        const m = msg.body.value;
        const v: MovingView = { reason: m.reason, deadlineMs: Number(m.deadlineMs), at: Date.now() };
        s.moving = v;
        this.emit("moving", v);
        break;
      }
      case "batch": {
        const b = msg.body.value;
        if (Number(b.tick) > s.tick) s.tick = Number(b.tick);
        const me = s.me?.userId;
        const now = Date.now();
        for (const c of b.cursors) {
          const id = Number(c.userId);
          if (id === me) continue;
          const x = clamp01(c.x);
          const y = clamp01(c.y);
          s.cursors[id] = { x, y, at: now };
          this.emit("cursor", id, x, y);
        }
        let usersChanged = false;
        for (const ev of b.events) usersChanged = this.event(ev) || usersChanged;
        if (b.userCount !== s.userCount) {
          s.userCount = b.userCount;
          usersChanged = true;
        }
        if (usersChanged) this.emit("users");
        break;
      }
      default:
        break;
    }
  }

  /** Applies one event; returns true when the user list changed. */
  private event(ev: RoomEvent): boolean {
    const s = this.state;
    const k = ev.kind;
    switch (k.case) {
      case "userJoined":
      case "userUpdated": {
        const v = userView(k.value);
        if (v.name) s.users[v.id] = v;
        else delete s.users[v.id];
        if (s.me && v.id === s.me.userId) {
          s.me.displayName = v.name || s.me.displayName;
          s.me.admin = v.admin || s.me.admin;
        }
        return true;
      }
      case "userLeft": {
        const id = Number(k.value);
        delete s.users[id];
        delete s.cursors[id];
        this.emit("userLeft", id);
        return true;
      }
      case "stickerPlaced": {
        const v = stickerView(k.value);
        s.stickers.push(v);
        this.emit("stickerPlaced", v);
        return false;
      }
      case "stickersExpired": {
        const ids = k.value.ids.map(Number);
        const gone = new Set(ids);
        s.stickers = s.stickers.filter((x) => !gone.has(x.id));
        this.emit("stickersRemoved", ids);
        return false;
      }
      case "stickersCleared":
        s.stickers = [];
        this.emit("stickersCleared");
        return false;
      case "firework": {
        const f = k.value;
        s.fireworksSeen++;
        this.emit("firework", { userId: Number(f.userId), x: clamp01(f.x), y: clamp01(f.y), hue: f.hue % 360 });
        return false;
      }
      case "chat": {
        const m = chatView(k.value);
        s.chat.push(m);
        if (s.chat.length > MAX_CHAT) s.chat.splice(0, s.chat.length - MAX_CHAT);
        this.emit("chat", m);
        return false;
      }
      case "chatDeleted": {
        const id = Number(k.value);
        s.chat = s.chat.filter((m) => m.id !== id);
        this.emit("chatDeleted", id);
        return false;
      }
      case "chatCleared":
        s.chat = [];
        this.emit("chatCleared");
        return false;
      case "settings": {
        const prev = s.settings;
        s.settings = settingsView(k.value);
        this.emit("settings", s.settings, prev);
        return false;
      }
      case "stage":
        this.emit("stage", k.value);
        return false;
      default:
        return false;
    }
  }

  private notice(code: NoticeCode, text: string, untilMs: number) {
    const n: NoticeView = { code: NOTICE_NAMES[code] ?? "unknown", text, untilMs, at: Date.now() };
    const s = this.state;
    s.notices.push(n);
    if (s.notices.length > MAX_NOTICES) s.notices.splice(0, s.notices.length - MAX_NOTICES);
    if (FINAL.includes(n.code)) {
      s.ended = n;
      this.wsWanted = false;
    }
    this.emit("notice", n);
  }
}
