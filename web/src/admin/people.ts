// Admin console: the people in the room (GET …/users, refreshed with the stage) with
// moderation (star, mute, kick, ban; clear chat / stickers: POST …/moderation).
import { $, errorMessage, h } from "../common";
import type { AdminHost } from "./host";

export interface UserJson {
  id: number | string;
  display_name: string;
  starred: boolean;
  admin: boolean;
  muted_until_ms: number;
  transport?: string;
}

/** The mounted people card. */
export interface PeopleCard {
  /** Re-reads the room's users (with each stage refresh). */
  refresh(my: number): Promise<void>;
  /** The users as last read (`window.venue.users`). */
  users(): UserJson[];
}

/** Wires the people card and the clear buttons. */
export function mountPeople(host: AdminHost): PeopleCard {
  const { api, roomPath, toast } = host;
  const usersEl = $("#users");
  const noUsersEl = $("#nousers");
  const userCountEl = $("#usercount");
  let users: UserJson[] = [];

  async function refreshUsers(my: number) {
    try {
      const r = await api<{ user_count?: number; users?: UserJson[] } | UserJson[]>("GET", `${roomPath()}/users`);
      if (my !== host.epoch()) return;
      const list = Array.isArray(r) ? r : (r?.users ?? []);
      const count = Array.isArray(r) ? r.length : (r?.user_count ?? list.length);
      users = list;
      renderUsers(count);
    } catch {
      // reported by the stage refresh already, or not there yet
    }
  }

  async function moderate(body: Record<string, unknown>, done: string) {
    try {
      await api<void>("POST", `${roomPath()}/moderation`, body);
      toast(done);
    } catch (e) {
      toast(`Not done: ${errorMessage(e)}`, true);
    }
    await refreshUsers(host.epoch());
  }

  function timeOf(ms: number): string {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderUsers(count: number) {
    userCountEl.textContent = `· ${count} here`;
    const now = Date.now();
    const named = users
      .filter((u) => u.display_name)
      .sort(
        (a, b) =>
          Number(b.admin) - Number(a.admin) ||
          Number(b.starred) - Number(a.starred) ||
          a.display_name.localeCompare(b.display_name, undefined, { sensitivity: "base" }),
      );
    noUsersEl.hidden = named.length > 0;
    usersEl.replaceChildren(
      ...named.map((u) => {
        const id = Number(u.id);
        const muted = u.muted_until_ms > now;
        const b = (text: string, title: string, fn: () => void, cls = "small") =>
          h("button", { class: cls, title, text, onclick: fn, "data-action": text });
        return h(
          "div",
          { class: "user", "data-user": String(u.id) },
          h(
            "div",
            { class: "uname" },
            h("span", { class: "name", text: u.display_name }),
            u.starred ? h("span", { class: "star", text: "★", title: "verified" }) : null,
            u.admin ? h("span", { class: "badge", text: "admin" }) : null,
            muted ? h("span", { class: "mutedtag", text: `muted till ${timeOf(u.muted_until_ms)}` }) : null,
            u.transport ? h("span", { class: "muted via", text: u.transport === "websocket" || u.transport === "web_socket" ? "ws" : "webrtc" }) : null,
          ),
          h(
            "div",
            { class: "uacts" },
            b(u.starred ? "unstar" : "star", u.starred ? "remove the star" : "verify (a star next to the name)", () =>
              void moderate({ action: u.starred ? "unstar" : "star", user_id: id }, `${u.starred ? "Unstarred" : "Starred"} ${u.display_name}`),
            ),
            muted
              ? b("unmute", "lift the mute", () => void moderate({ action: "mute", user_id: id, duration_s: 0 }, `Unmuted ${u.display_name}`))
              : b("mute 5m", "mute for 5 minutes", () => void moderate({ action: "mute", user_id: id, duration_s: 300 }, `Muted ${u.display_name} for 5 minutes`)),
            b("kick", "disconnect (they can come back)", () => void moderate({ action: "kick", user_id: id }, `Kicked ${u.display_name}`), "small warn"),
            b(
              "ban",
              "ban by session and IP",
              () => {
                if (confirm(`Ban ${u.display_name} from the room?`)) void moderate({ action: "ban", user_id: id, duration_s: 0 }, `Banned ${u.display_name}`);
              },
              "small danger",
            ),
          ),
        );
      }),
    );
  }

  $("#m-clearchat").addEventListener("click", () => {
    if (confirm("Clear the whole chat?")) void moderate({ action: "clear_chat" }, "Chat cleared");
  });
  $("#m-clearstickers").addEventListener("click", () => {
    if (confirm("Clear every sticker from the board?")) void moderate({ action: "clear_stickers" }, "Stickers cleared");
  });

  return { refresh: refreshUsers, users: () => users };
}
