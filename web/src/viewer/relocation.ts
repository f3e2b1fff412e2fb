// Moving to another cluster node (issue 11): the notice shown over the stage while the page
// re-joins elsewhere, and the record of each move (`window.venue.relocations`, read by tests).
// What triggers a move (`ServerMessage.moving`, a dead node) and the re-join itself stay in
// viewer.ts, which owns the connections.

import { h } from "../common";
import type { RoomClient } from "../room";
import type { Relocation, VenueGlobal } from "./venue";

/** A page told to move, or one whose node died, re-joins after a random delay below this (ms). */
export const MOVE_JITTER_MS = 900;
/**
 * How long a connection may stay `disconnected` before the page takes its node for dead and
 * re-joins, ms. Browsers report `disconnected` after ~2–3 s without a packet from the server
 * (media and consent-check answers both count), so a dead node is noticed within ~3 s.
 */
export const DEAD_GRACE_MS = 500;

/** The move notice over the stage and the moves of this page. */
export class Moves {
  private readonly notice = h("div", { class: "movenotice", role: "status", "aria-live": "polite" });
  private hideTimer: ReturnType<typeof setTimeout> | null = null;
  /** The move in progress (or the last one). */
  private current: Relocation | null = null;

  /** `mediaOk` says whether the page's media is watching again (always true without WebRTC media). */
  constructor(
    roomEl: HTMLElement,
    private readonly venue: VenueGlobal,
    private readonly client: RoomClient,
    private readonly mediaOk: () => boolean,
  ) {
    this.notice.hidden = true;
    roomEl.append(this.notice);
  }

  /** Starts a move (once until it is back): records it, shows the notice, keeps the chat shown. */
  start(why: Relocation["why"], detail: string): Relocation {
    if (this.current && this.current.back === null) return this.current;
    const r: Relocation = { why, detail, at: performance.now(), back: null };
    this.current = r;
    this.venue.relocations.push(r);
    this.client.carryOverChat();
    if (this.hideTimer) clearTimeout(this.hideTimer);
    this.hideTimer = null;
    this.notice.dataset.why = why;
    this.notice.replaceChildren(
      h("span", { class: "spinner", "aria-hidden": "true" }),
      why === "moving" ? "Moving you to another server…" : "Connection lost — reconnecting…",
    );
    this.notice.classList.remove("done");
    this.notice.hidden = false;
    return r;
  }

  /** Ends the move once the page watches again: media back (see the constructor) and the event channel joined. */
  maybeBack() {
    const r = this.current;
    if (!r || r.back !== null) return;
    if (!this.mediaOk() || !this.client.state.joined) return;
    r.back = performance.now();
    console.info(`venue: back after ${r.why} in ${Math.round(r.back - r.at)} ms`);
    this.notice.replaceChildren("You're back in the room");
    this.notice.classList.add("done");
    this.hideTimer = setTimeout(() => {
      this.hideTimer = null;
      if (this.current?.back !== null) this.notice.hidden = true;
    }, 1500);
  }
}
