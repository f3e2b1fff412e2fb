// Admin console, schedule card: the form that creates an event or moves / resizes one (title,
// start and end in the admin's zone, slot minutes, public sign-up), with a live summary of
// its length and slots. The caller sends the body (`{title, start, end, slot_minutes,
// public_signup}`, times RFC 3339 UTC); a throw shows its message under the form.
import { errorMessage, h } from "../common";
import { adminZone, fromLocalInput, HOUR, MINUTE, relative, toLocalInput, utcOffset } from "./time";

/** The form's first values. */
export interface FormInit {
  title: string;
  start: Date;
  end: Date;
  slotMinutes: number;
  publicSignup: boolean;
}

export function eventForm(
  init: FormInit,
  submitText: string,
  onSubmit: (body: Record<string, unknown>, err: HTMLElement) => Promise<void>,
  onCancel: () => void,
): HTMLFormElement {
  const title = h("input", { name: "title", maxlength: 200, required: true, placeholder: "Friday Night Session" });
  title.value = init.title;
  const start = h("input", { name: "start", type: "datetime-local", required: true });
  start.value = toLocalInput(init.start);
  const end = h("input", { name: "end", type: "datetime-local", required: true });
  end.value = toLocalInput(init.end);
  const slot = h("input", { name: "slot_minutes", type: "number", min: 1, max: 1440, step: 1, required: true });
  slot.value = String(init.slotMinutes);
  const pub = h("input", { name: "public_signup", type: "checkbox" });
  pub.checked = init.publicSignup;
  const err = h("span", { class: "error sched-error", role: "alert" });
  const zone = `${adminZone()}, ${utcOffset(init.start)}`;
  const nowBtn = h("button", {
    type: "button",
    class: "small",
    text: "now",
    title: "start now (keeps the length)",
    onclick: () => {
      const len = (new Date(end.value).getTime() - new Date(start.value).getTime()) || 3 * HOUR;
      const n = new Date();
      n.setSeconds(0, 0);
      start.value = toLocalInput(n);
      end.value = toLocalInput(new Date(n.getTime() + Math.max(len, MINUTE)));
    },
  });
  const summary = h("span", { class: "muted sched-slotsummary" });
  const updateSummary = () => {
    const a = new Date(start.value).getTime();
    const b = new Date(end.value).getTime();
    const m = Number(slot.value);
    if (!(b > a) || !(m >= 1)) {
      summary.textContent = "";
      return;
    }
    const n = Math.ceil((b - a) / (m * MINUTE));
    const last = ((b - a) / MINUTE) % m;
    summary.textContent = `${relative(b - a)} · ${n} slot${n === 1 ? "" : "s"}${last ? ` (the last ${Math.round(last)} min)` : ""}`;
  };
  for (const el of [start, end, slot]) el.addEventListener("input", updateSummary);
  nowBtn.addEventListener("click", updateSummary);
  updateSummary();
  const form = h(
    "form",
    { class: "sched-form", autocomplete: "off" },
    h("div", { class: "sched-field sched-title" }, h("label", { text: "Title" }), title),
    h("div", { class: "sched-field sched-start" }, h("label", { text: `Start (${zone})` }), h("div", { class: "sched-inline" }, start, nowBtn)),
    h("div", { class: "sched-field" }, h("label", { text: `End (${zone})` }), end),
    h("div", { class: "sched-field sched-narrow" }, h("label", { text: "Slot minutes" }), slot),
    h("label", { class: "sched-check" }, pub, h("span", { text: "public sign-up" })),
    h(
      "div",
      { class: "row sched-actions" },
      h("button", { class: "primary", type: "submit", text: submitText }),
      h("button", { type: "button", text: "Cancel", onclick: onCancel }),
      summary,
      err,
    ),
  );
  // Labels point at their inputs.
  for (const f of form.querySelectorAll<HTMLElement>(".sched-field")) {
    const input = f.querySelector("input");
    const label = f.querySelector("label");
    if (input && label) {
      input.id ||= `sched-${input.name}-${Math.random().toString(36).slice(2, 8)}`;
      label.setAttribute("for", input.id);
    }
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const s = fromLocalInput(start.value);
    const e = fromLocalInput(end.value);
    if (!s || !e) {
      err.textContent = "Give a start and an end.";
      return;
    }
    const body = { title: title.value.trim(), start: s, end: e, slot_minutes: Number(slot.value), public_signup: pub.checked };
    const btn = form.querySelector<HTMLButtonElement>('button[type="submit"]');
    if (btn) btn.disabled = true;
    try {
      await onSubmit(body, err);
    } catch (x) {
      err.textContent = errorMessage(x);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  return form;
}
