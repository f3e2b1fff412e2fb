// Admin console, schedule card: the box that shows a new booking's stream key once (it is
// stored hashed), with the WHIP and RTMP URLs the artist needs.
import { copyText, h } from "../common";
import type { CreatedBookingJson } from "./api";
import { span } from "./time";

/** The server part of the booking's RTMP URL (OBS: Server), or null when RTMP ingest is off. */
function rtmpServer(c: CreatedBookingJson): string | null {
  const i = c.rtmp_url ? c.rtmp_url.lastIndexOf("/") : -1;
  return c.rtmp_url && i > "rtmp://".length ? c.rtmp_url.slice(0, i) : null;
}

/** Shows what a new booking gives the artist in `keyBox`: the stream key (once), WHIP and
 * RTMP URLs with copy buttons; for an existing streamer, that their key is unchanged. */
export function showBookingKey(keyBox: HTMLElement, c: CreatedBookingJson) {
  const b = c.booking;
  const when = span(new Date(b.start), new Date(b.end));
  const row = (label: string, value: string, what: string) =>
    h(
      "div",
      { class: "kv", "data-copy": what },
      h("span", { class: "muted", text: label }),
      h("code", { text: value }),
      h("button", {
        class: "small",
        type: "button",
        text: "Copy",
        onclick: async (ev: Event) => {
          await copyText(value);
          (ev.target as HTMLButtonElement).textContent = "Copied";
        },
      }),
    );
  const hide = h("div", {}, h("button", { class: "small", type: "button", text: "I saved it — hide", onclick: () => (keyBox.hidden = true, keyBox.replaceChildren()) }));
  if (!c.stream_key) {
    keyBox.replaceChildren(
      h("strong", { text: `“${b.artist_name}” booked ${when}${c.merged ? " (merged into their booking next to it)" : ""}` }),
      h("div", { class: "muted", text: "An existing streamer: their stream key is unchanged and now opens only around their booked slots." }),
      hide,
    );
    keyBox.hidden = false;
    return;
  }
  const whip = new URL(c.whip_url, location.href).href;
  keyBox.replaceChildren(
    h("strong", { text: `“${b.artist_name}” booked ${when}` }),
    h("div", { class: "error", text: "Copy the stream key now: it is stored hashed and will not be shown again. It opens shortly before the slot and closes at its end." }),
    ...(rtmpServer(c) ? [row("RTMP server", rtmpServer(c) ?? "", "rtmp")] : []),
    row("Stream key", c.stream_key, "key"),
    row("WHIP URL", whip, "whip"),
    h(
      "div",
      { class: "muted", style: "font-size:13px" },
      "OBS over RTMP: Server + Stream key. OBS over WHIP: Server = WHIP URL, Bearer token = stream key. In the browser: ",
      h("a", { href: `/publish?key=${encodeURIComponent(c.stream_key)}`, target: "_blank", rel: "noopener", text: "/publish" }),
      ".",
    ),
    hide,
  );
  keyBox.hidden = false;
  keyBox.scrollIntoView({ block: "nearest" });
}
