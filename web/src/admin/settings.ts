// Admin console: the room's settings card (title, now playing, background colour,
// interactivity mode, sticker set, slow mode: GET/PUT …/settings) and the sticker set upload
// (PUT /api/admin/sticker-sets/{set}/images/{id}, then PUT …/sticker-sets/{set}).
import { $, HttpError, errorMessage, h, httpError } from "../common";
import type { AdminHost } from "./host";

export type ModeName = "everything" | "chat_only" | "stickers_off" | "quiet";

export interface RoomSettingsJson {
  title: string;
  now_playing: string;
  background_color: string;
  mode: ModeName;
  sticker_set: string;
  slow_mode_s: number;
}

export interface StickerSetJson {
  id: string;
  name: string;
  stickers: { id: string; url: string; label?: string }[];
}

/** What admin.ts hands over: the console plus a redraw of what shows the sticker sets. */
export interface SettingsHost extends AdminHost {
  /** The sticker sets or the settings were (re)loaded: redraw the streamer cards. */
  setsChanged(): void;
}

/** The mounted settings card. */
export interface SettingsCard {
  /** Loads the room's settings and the sticker sets (room change). */
  load(my: number): Promise<void>;
  /** Re-reads the room's active set after a stage change; keeps an unsaved choice in the form. */
  followRoomSet(my: number): Promise<void>;
  /** The settings as last loaded or saved (`window.venue.settings`). */
  settings(): RoomSettingsJson | null;
  /** Every sticker set, as last loaded. */
  stickerSets(): StickerSetJson[];
  /** A set's name, or its id. */
  setName(id: string): string;
}

/** Selects `value` in `sel`, adding it as an option when missing. */
export function selectOption(sel: HTMLSelectElement, value: string, label = value) {
  if (![...sel.options].some((o) => o.value === value)) sel.append(h("option", { value, text: label }));
  sel.value = value;
}

/** Wires the settings card and the upload form; returns what the rest of the console uses. */
export function mountSettings(host: SettingsHost): SettingsCard {
  const { api, roomPath, toast } = host;
  const settingsForm = $<HTMLFormElement>("#settings");
  const sTitle = $<HTMLInputElement>("#s-title");
  const sNow = $<HTMLInputElement>("#s-now");
  const sBg = $<HTMLInputElement>("#s-bg");
  const sBgHex = $<HTMLInputElement>("#s-bghex");
  const sSlow = $<HTMLSelectElement>("#s-slow");
  const sSet = $<HTMLSelectElement>("#s-set");
  const sSetPreview = $("#s-setpreview");
  const sError = $("#s-error");
  const sState = $("#settingsstate");
  let settings: RoomSettingsJson | null = null;
  let stickerSets: StickerSetJson[] = [];

  async function loadSettings(my: number) {
    try {
      const [st, sets] = await Promise.all([
        api<RoomSettingsJson>("GET", `${roomPath()}/settings`),
        api<StickerSetJson[]>("GET", "/api/admin/sticker-sets").catch(() => [] as StickerSetJson[]),
      ]);
      if (my !== host.epoch()) return;
      stickerSets = sets;
      showSettings(st);
      host.setsChanged();
    } catch (e) {
      if (my === host.epoch() && !(e instanceof HttpError && e.status === 401)) {
        sState.textContent = `settings unavailable (${errorMessage(e)})`;
      }
    }
  }


  function showSettings(st: RoomSettingsJson) {
    settings = st;
    sTitle.value = st.title ?? "";
    sNow.value = st.now_playing ?? "";
    const bg = /^#[0-9a-fA-F]{6}$/.test(st.background_color) ? st.background_color.toLowerCase() : "#1a1033";
    sBg.value = bg;
    sBgHex.value = bg;
    selectOption(sSlow, String(st.slow_mode_s ?? 0), `${st.slow_mode_s} s`);
    for (const r of settingsForm.querySelectorAll<HTMLInputElement>('input[name="mode"]')) r.checked = r.value === st.mode;
    const sets = stickerSets.length ? stickerSets : [{ id: st.sticker_set || "default", name: st.sticker_set || "default", stickers: [] }];
    sSet.replaceChildren(...sets.map((x) => h("option", { value: x.id, text: x.name || x.id })));
    selectOption(sSet, st.sticker_set || "default");
    renderSetPreview();
    sError.textContent = "";
    sState.textContent = "";
    settingsForm.style.setProperty("--bg", bg);
  }

  /** Re-reads the room's active set after a stage change; keeps an unsaved choice in the form. */
  async function followRoomSet(my: number) {
    try {
      const st = await api<RoomSettingsJson>("GET", `${roomPath()}/settings`);
      if (my !== host.epoch() || !settings) return;
      const untouched = sSet.value === settings.sticker_set;
      settings = { ...settings, sticker_set: st.sticker_set };
      if (untouched) {
        selectOption(sSet, st.sticker_set);
        renderSetPreview();
      }
    } catch {
      // the next settings load shows it
    }
  }

  function renderSetPreview() {
    const set = stickerSets.find((x) => x.id === sSet.value);
    sSetPreview.replaceChildren(
      ...(set?.stickers ?? []).slice(0, 10).map((d) => h("img", { src: d.url, alt: d.label ?? d.id, title: d.label ?? d.id })),
    );
  }

  sSet.addEventListener("change", renderSetPreview);

  // Sticker set upload.

  const uName = $<HTMLInputElement>("#u-name");
  const uFiles = $<HTMLInputElement>("#u-files");
  const uState = $("#u-state");

  /** `Nova Lights!` → `nova-lights`: the id rule of the upload API (1–64 of a-z, 0-9, - and _). */
  function slug(s: string): string {
    return s
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 64);
  }

  $("#u-go").addEventListener("click", async () => {
    const name = uName.value.trim();
    const setId = slug(name);
    const files = [...(uFiles.files ?? [])];
    if (!setId || setId === "default" || files.length === 0) {
      uState.textContent = "Give the set a name (not “default”) and pick at least one picture.";
      return;
    }
    const stickers: { id: string; url: string; label: string }[] = [];
    try {
      for (const [i, f] of files.entries()) {
        const base = f.name.replace(/\.[^.]*$/, "");
        const id = slug(base) || `s${i + 1}`;
        uState.textContent = `uploading ${i + 1}/${files.length}: ${f.name}…`;
        const res = await fetch(`/api/admin/sticker-sets/${setId}/images/${id}`, {
          method: "PUT",
          headers: { Authorization: `Bearer ${host.token()}`, "Content-Type": f.type || "application/octet-stream" },
          body: f,
        });
        if (!res.ok) throw await httpError(res);
        const { url } = (await res.json()) as { url: string };
        stickers.push({ id, url, label: base.slice(0, 64) || id });
      }
      await api("PUT", `/api/admin/sticker-sets/${setId}`, { name, stickers });
      stickerSets = await api<StickerSetJson[]>("GET", "/api/admin/sticker-sets");
      const current = sSet.value;
      sSet.replaceChildren(...stickerSets.map((x) => h("option", { value: x.id, text: x.name || x.id })));
      selectOption(sSet, setId);
      renderSetPreview();
      host.setsChanged();
      uState.textContent = `“${name}” uploaded (${stickers.length} stickers) — save to make it active (was ${current}).`;
      toast("Sticker set uploaded");
    } catch (e) {
      uState.textContent = `upload failed: ${errorMessage(e)}`;
    }
  });
  sBg.addEventListener("input", () => {
    sBgHex.value = sBg.value;
    settingsForm.style.setProperty("--bg", sBg.value);
  });
  sBgHex.addEventListener("input", () => {
    if (/^#[0-9a-fA-F]{6}$/.test(sBgHex.value)) {
      sBg.value = sBgHex.value.toLowerCase();
      settingsForm.style.setProperty("--bg", sBg.value);
    }
  });
  $("#s-reset").addEventListener("click", () => settings && showSettings(settings));

  settingsForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const my = host.epoch();
    const mode = settingsForm.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value as ModeName | undefined;
    const body: Partial<RoomSettingsJson> = {
      title: sTitle.value.trim(),
      now_playing: sNow.value.trim(),
      background_color: /^#[0-9a-fA-F]{6}$/.test(sBgHex.value) ? sBgHex.value.toLowerCase() : sBg.value,
      slow_mode_s: Number(sSlow.value) || 0,
      sticker_set: sSet.value,
      ...(mode ? { mode } : {}),
    };
    sError.textContent = "";
    sState.textContent = "saving…";
    try {
      const st = await api<RoomSettingsJson>("PUT", `${roomPath()}/settings`, body);
      if (my !== host.epoch()) return;
      showSettings(st ?? ({ ...settings, ...body } as RoomSettingsJson));
      sState.textContent = "saved ✓";
      toast("Room settings saved");
    } catch (e) {
      if (my !== host.epoch()) return;
      sState.textContent = "";
      sError.textContent = errorMessage(e);
    }
  });

  const setName = (id: string) => stickerSets.find((x) => x.id === id)?.name || id;
  return {
    load: loadSettings,
    followRoomSet,
    settings: () => settings,
    stickerSets: () => stickerSets,
    setName,
  };
}
