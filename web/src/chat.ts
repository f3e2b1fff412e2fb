// The viewer's chat panel: messages (name in the user's cursor colour, ★ for starred users,
// an admin badge), the people list with the count, personal notices (muted until…, slow mode,
// rate limited), the input (500 characters), the name prompt, and for admins the moderation
// buttons per message and per user plus the room tools (clear chat / stickers, slow mode).
import { $, h } from "./common";
import { hueOf } from "./fx";
import { chatLength, type ChatView, type NoticeView, type RoomClient, type UserView } from "./room";

const NAME_STORAGE = "venue.displayName";
const ASKED_STORAGE = "venue.nameAsked";
const MAX_DOM_MESSAGES = 200;
const MUTE_S = 300;

function graphemes(s: string): number {
  const Seg = (Intl as unknown as { Segmenter?: new (l?: string, o?: object) => { segment(s: string): Iterable<unknown> } })
    .Segmenter;
  if (Seg) return [...new Seg(undefined, { granularity: "grapheme" }).segment(s)].length;
  return [...s].length;
}

/** Why a display name cannot be used (the server decides in the end), or null. */
export function nameProblem(name: string): string | null {
  const n = name.normalize("NFC").trim();
  if (!n) return "Pick a name (1–24 characters).";
  if (graphemes(n) > 24) return "At most 24 characters.";
  if (/[\p{Cc}\p{Cf}]/u.test(n)) return "No control or invisible characters, please.";
  return null;
}

function clock(ms: number): string {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function nameColor(userId: number): string {
  return `hsl(${hueOf(userId)} 95% 70%)`;
}

export interface ChatPanelHooks {
  /** The user picked a (new) name, or "" to watch without one: (re)join with it. */
  rejoin(name: string): void;
}

export class ChatPanel {
  private log = $("#chatlog");
  private people = $("#people");
  private notices = $("#notices");
  private form = $<HTMLFormElement>("#chatform");
  private input = $<HTMLInputElement>("#chatinput");
  private count = $("#chatcount");
  private send = $<HTMLButtonElement>("#chatsend");
  private tabChat = $("#tabchat");
  private tabPeople = $("#tabpeople");
  private peopleCount = $("#peoplecount");
  private meBtn = $<HTMLButtonElement>("#me");
  private adminTools = $("#admintools");
  private dialog = $("#namedialog");
  private nameForm = $<HTMLFormElement>("#nameform");
  private nameInput = $<HTMLInputElement>("#nameinput");
  private nameError = $("#nameerror");
  private badge = $("#chatbadge");
  private slowUntil = 0;
  private mutedUntil = 0;
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;
  private tick: ReturnType<typeof setInterval> | null = null;
  private unread = 0;
  private newPill: HTMLButtonElement;
  /** The chat panel is out of sight (phone toggle). */
  hiddenPanel = false;

  constructor(
    private client: RoomClient,
    private hooks: ChatPanelHooks,
    roomTitle: string,
  ) {
    $("#namedialogtitle").textContent = roomTitle;
    this.newPill = h("button", { class: "newpill", text: "new messages ↓", hidden: true, onclick: () => this.scrollDown() });
    this.log.after(this.newPill);
    this.log.addEventListener("scroll", () => {
      if (this.nearBottom()) this.newPill.hidden = true;
    });
    this.tabChat.addEventListener("click", () => this.showTab("chat"));
    this.tabPeople.addEventListener("click", () => this.showTab("people"));
    this.meBtn.addEventListener("click", () => this.askName(""));
    this.input.addEventListener("input", () => this.updateCount());
    this.input.addEventListener("focus", () => {
      if (client.state.joined && !client.state.me?.displayName) this.askName("Pick a name to chat.");
    });
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.nameForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const name = this.nameInput.value.normalize("NFC").trim();
      const why = nameProblem(name);
      if (why) {
        this.nameError.textContent = why;
        return;
      }
      localStorage.setItem(NAME_STORAGE, name);
      localStorage.setItem(ASKED_STORAGE, "1");
      this.dialog.hidden = true;
      this.hooks.rejoin(name);
    });
    const watch = () => {
      localStorage.setItem(ASKED_STORAGE, "1");
      this.dialog.hidden = true;
      if (!client.state.joined) this.hooks.rejoin("");
    };
    $("#namewatch").addEventListener("click", watch);
    // A click beside the card or Escape: just watch (or keep the name there is).
    this.dialog.addEventListener("click", (ev) => {
      if (ev.target === this.dialog) watch();
    });
    this.dialog.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") watch();
    });

    client.on({
      hello: () => {
        this.renderMe();
        this.renderAdminTools();
        this.updateInput();
      },
      snapshot: () => this.renderAll(),
      users: () => {
        const s = this.client.state;
        const me = s.me ? s.users[s.me.userId] : undefined;
        if (me && me.mutedUntilMs !== this.mutedUntil) {
          this.mutedUntil = me.mutedUntilMs;
          if (!me.mutedUntilMs) this.notices.querySelector(".notice.muted")?.remove();
          this.updateInput();
        }
        this.renderPeople();
      },
      chat: (m) => this.addMessage(m),
      chatDeleted: (id) => this.log.querySelector(`.msg[data-id="${id}"]`)?.remove(),
      chatCleared: () => {
        this.log.replaceChildren();
        this.system("The chat was cleared.");
      },
      settings: (s, prev) => {
        if (s.slowModeS !== prev.slowModeS && this.client.state.joined) {
          this.system(s.slowModeS ? `Slow mode: one message every ${s.slowModeS} s.` : "Slow mode is off.");
        }
        this.renderAdminTools();
        this.updateInput();
      },
      notice: (n) => this.onNotice(n),
      connection: () => this.updateInput(),
    });
    this.updateInput();
  }

  /** The name to join with: `?name=`, then the remembered one; null = ask first. */
  initialName(): string | null {
    const q = new URLSearchParams(location.search).get("name");
    if (q !== null) return q.trim();
    const stored = localStorage.getItem(NAME_STORAGE);
    if (stored) return stored;
    if (localStorage.getItem(ASKED_STORAGE)) return "";
    return null;
  }

  askName(reason: string) {
    this.nameError.textContent = reason;
    this.nameInput.value = this.client.state.me?.displayName || localStorage.getItem(NAME_STORAGE) || "";
    this.dialog.hidden = false;
    setTimeout(() => this.nameInput.focus(), 0);
  }

  setPanelHidden(hidden: boolean) {
    this.hiddenPanel = hidden;
    if (!hidden) {
      this.unread = 0;
      this.badge.hidden = true;
      this.scrollDown();
    }
  }

  private showTab(which: "chat" | "people") {
    const chat = which === "chat";
    this.tabChat.classList.toggle("active", chat);
    this.tabPeople.classList.toggle("active", !chat);
    this.tabChat.setAttribute("aria-selected", String(chat));
    this.tabPeople.setAttribute("aria-selected", String(!chat));
    this.log.hidden = !chat;
    this.people.hidden = chat;
    if (chat) this.scrollDown();
    else this.newPill.hidden = true;
  }

  private renderMe() {
    const me = this.client.state.me;
    this.meBtn.replaceChildren();
    if (me?.displayName) {
      this.meBtn.append(
        h("span", { class: "dot", style: `background:${nameColor(me.userId)}` }),
        h("span", { text: me.displayName }),
      );
    } else {
      this.meBtn.append(h("span", { text: "pick a name" }));
    }
  }

  private renderAll() {
    this.log.replaceChildren();
    for (const m of this.client.state.chat) this.addMessage(m, true);
    this.renderPeople();
    this.renderMe();
    this.scrollDown();
  }

  private nearBottom(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
  }

  private scrollDown() {
    this.log.scrollTop = this.log.scrollHeight;
    this.newPill.hidden = true;
  }

  private system(text: string) {
    const stick = this.nearBottom();
    this.log.append(h("div", { class: "msg system", text }));
    if (stick) this.scrollDown();
  }

  private nameEl(userId: number, name: string, starred: boolean, admin: boolean): HTMLElement {
    return h(
      "span",
      { class: "who" },
      h("span", { class: "name", style: `color:${nameColor(userId)}`, text: name }),
      starred ? h("span", { class: "star", title: "verified by the venue", text: "★" }) : null,
      admin ? h("span", { class: "badge admin", text: "admin" }) : null,
    );
  }

  private addMessage(m: ChatView, bulk = false) {
    const stick = bulk || this.nearBottom();
    const mine = m.userId === this.client.state.me?.userId;
    const el = h(
      "div",
      { class: `msg${mine ? " mine" : ""}`, "data-id": m.id, "data-user": m.userId, title: clock(m.sentMs) },
      this.nameEl(m.userId, m.name, m.starred, m.admin),
      h("span", { class: "text", text: m.text }),
    );
    if (this.client.isAdmin) el.append(this.messageActions(m));
    this.log.append(el);
    while (this.log.childElementCount > MAX_DOM_MESSAGES) this.log.firstElementChild?.remove();
    if (bulk) return;
    if (stick) this.scrollDown();
    else if (!mine) this.newPill.hidden = false;
    if (this.hiddenPanel && !mine) {
      this.unread++;
      this.badge.textContent = this.unread > 9 ? "9+" : String(this.unread);
      this.badge.hidden = false;
    }
  }

  // ---------- moderation (admins) ----------

  private act(label: string, title: string, fn: () => void, cls = ""): HTMLButtonElement {
    return h("button", {
      class: `act ${cls}`,
      type: "button",
      title,
      text: label,
      onclick: (ev: Event) => {
        ev.stopPropagation();
        fn();
      },
    });
  }

  private userActions(userId: number, starred: boolean): HTMLElement[] {
    const c = this.client;
    const id = BigInt(userId);
    return [
      this.act(starred ? "unstar" : "star", starred ? "remove the verified star" : "verify: a star next to the name", () =>
        c.admin({ case: "star", value: { userId: id, starred: !starred } }),
      ),
      this.act("mute 5m", "mute for 5 minutes", () => c.admin({ case: "mute", value: { userId: id, durationS: MUTE_S } })),
      this.act("kick", "disconnect (they can come back)", () => c.admin({ case: "kick", value: { userId: id, reason: "" } }), "warn"),
      this.act(
        "ban",
        "ban (session and IP)",
        () => {
          if (confirm("Ban this user from the room?")) c.admin({ case: "ban", value: { userId: id, durationS: 0, reason: "" } });
        },
        "danger",
      ),
    ];
  }

  private messageActions(m: ChatView): HTMLElement {
    const c = this.client;
    return h(
      "span",
      { class: "acts" },
      this.act("delete", "delete this message", () => c.admin({ case: "deleteMessage", value: { messageId: BigInt(m.id) } }), "danger"),
      ...(m.userId === c.state.me?.userId ? [] : this.userActions(m.userId, m.starred)),
    );
  }

  private renderAdminTools() {
    const c = this.client;
    this.adminTools.hidden = !c.isAdmin;
    if (!c.isAdmin) return;
    const slow = c.state.settings.slowModeS;
    const sel = h(
      "select",
      {
        title: "slow mode",
        onchange: (ev: Event) => {
          const v = Number((ev.target as HTMLSelectElement).value);
          c.admin({ case: "slowMode", value: { intervalS: v } });
        },
      },
      ...[0, 5, 10, 30, 60, 120].map((s) =>
        h("option", { value: s, text: s ? `slow ${s}s` : "slow: off", selected: s === slow }),
      ),
    );
    if (![0, 5, 10, 30, 60, 120].includes(slow)) sel.append(h("option", { value: slow, text: `slow ${slow}s`, selected: true }));
    this.adminTools.replaceChildren(
      h("span", { class: "badge admin", text: "admin" }),
      this.act("clear chat", "delete every message", () => {
        if (confirm("Clear the whole chat?")) c.admin({ case: "clearChat", value: {} });
      }),
      this.act("clear stickers", "empty the sticker board", () => {
        if (confirm("Clear every sticker?")) c.admin({ case: "clearStickers", value: {} });
      }),
      sel,
    );
  }

  private renderPeople() {
    const s = this.client.state;
    const list = Object.values(s.users).sort(
      (a, b) =>
        Number(b.admin) - Number(a.admin) ||
        Number(b.starred) - Number(a.starred) ||
        a.name.localeCompare(b.name, undefined, { sensitivity: "base" }),
    );
    this.peopleCount.textContent = String(s.userCount || list.length);
    const unnamed = Math.max(0, s.userCount - list.length);
    const now = Date.now();
    this.people.replaceChildren(
      h("div", { class: "peoplehead", text: `${s.userCount} here${unnamed ? ` · ${unnamed} just watching` : ""}` }),
      ...list.map((u: UserView) =>
        h(
          "div",
          { class: `person${u.id === s.me?.userId ? " mine" : ""}`, "data-user": u.id },
          this.nameEl(u.id, u.name, u.starred, u.admin),
          u.mutedUntilMs > now ? h("span", { class: "mutedtag", text: `muted till ${clock(u.mutedUntilMs)}` }) : null,
          this.client.isAdmin && u.id !== s.me?.userId ? h("span", { class: "acts" }, ...this.userActions(u.id, u.starred)) : null,
        ),
      ),
    );
  }

  // ---------- notices and the input ----------

  private onNotice(n: NoticeView) {
    switch (n.code) {
      case "muted":
        this.mutedUntil = n.untilMs;
        this.show(n, `You are muted${n.untilMs ? ` until ${clock(n.untilMs)}` : ""}.`, 0);
        break;
      case "slow_mode":
        this.slowUntil = Math.max(this.slowUntil, n.untilMs);
        this.show(n, `Slow mode: wait ${Math.max(1, Math.ceil((n.untilMs - Date.now()) / 1000))} s.`, 4000);
        break;
      case "rate_limited":
        this.show(n, n.text || "Whoa, slow down a little.", 3000);
        break;
      case "name_rejected":
        this.askName(n.text || "That name can't be used. Try another.");
        this.show(n, `Name not accepted: ${n.text || "try another"}`, 6000);
        break;
      case "not_allowed":
        this.show(n, n.text || "That's not allowed right now.", 4000);
        break;
      case "message_rejected":
        this.show(n, n.text || "Message not sent (empty or over 500 characters).", 4000);
        break;
      default:
        if (n.text) this.show(n, n.text, 5000);
        break;
    }
    this.updateInput();
  }

  private show(n: NoticeView, text: string, ms: number) {
    this.notices.replaceChildren(
      h(
        "div",
        { class: `notice ${n.code}`, "data-code": n.code },
        h("span", { text }),
        h("button", { class: "x", type: "button", title: "dismiss", text: "×", onclick: () => this.notices.replaceChildren() }),
      ),
    );
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
    const until = n.code === "muted" && n.untilMs ? n.untilMs - Date.now() : ms;
    if (until > 0) {
      this.noticeTimer = setTimeout(() => {
        this.notices.replaceChildren();
        this.updateInput();
      }, Math.min(until, 2 ** 31 - 1));
    }
  }

  private updateCount() {
    const n = chatLength(this.input.value);
    this.count.textContent = n > 400 ? `${n}/500` : "";
    this.count.classList.toggle("over", n > 500);
  }

  private updateInput() {
    const s = this.client.state;
    const now = Date.now();
    let why = "";
    if (s.ended) why = "You left the room.";
    else if (!s.joined) why = "Connecting to the room…";
    else if (s.settings.mode === "quiet") why = "Quiet set: the chat is resting.";
    else if (!s.me?.displayName) why = "Pick a name to chat…";
    else if (this.mutedUntil > now) why = `Muted until ${clock(this.mutedUntil)}`;
    else if (this.slowUntil > now) why = `Slow mode: ${Math.ceil((this.slowUntil - now) / 1000)} s…`;
    const blocked = !!why && !(s.joined && !s.me?.displayName && s.settings.mode !== "quiet");
    this.input.disabled = blocked;
    this.send.disabled = blocked;
    this.input.placeholder = why || (s.settings.slowModeS ? `Slow mode (${s.settings.slowModeS} s)…` : "Say something nice…");
    const waiting = this.mutedUntil > now || this.slowUntil > now;
    if (waiting && !this.tick) {
      this.tick = setInterval(() => this.updateInput(), 1000);
    } else if (!waiting && this.tick) {
      clearInterval(this.tick);
      this.tick = null;
    }
  }

  private submit() {
    const s = this.client.state;
    if (s.joined && !s.me?.displayName) {
      this.askName("Pick a name to chat.");
      return;
    }
    const why = this.client.sendChat(this.input.value);
    if (why) {
      this.show({ code: "message_rejected", text: why, untilMs: 0, at: Date.now() }, why, 3000);
      return;
    }
    this.input.value = "";
    this.updateCount();
    if (s.settings.slowModeS > 0 && !this.client.isAdmin) {
      this.slowUntil = Date.now() + s.settings.slowModeS * 1000;
      this.updateInput();
    }
  }
}
