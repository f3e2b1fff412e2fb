// The admin console uploads a sticker set (two SVG pictures) and makes it the room's active set;
// a viewer's sticker dock then offers those pictures, served from /stickers/custom/….
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ADMIN_TOKEN, OUT, ensureOut, launchChromium, newPage, startVenue, waitFor } from "./lib.mjs";

test("admin uploads a sticker set, viewers get it", async () => {
  ensureOut();
  const dir = mkdtempSync(join(tmpdir(), "venue-stickers-"));
  const svg = (c) => `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="28" fill="${c}"/></svg>`;
  const files = [join(dir, "glow-pink.svg"), join(dir, "glow-cyan.svg")];
  writeFileSync(files[0], svg("#ff4fa3"));
  writeFileSync(files[1], svg("#37e0ff"));
  const venue = await startVenue({ name: "stickers" });
  const browser = await launchChromium();
  try {
    const ctx = await browser.newContext();
    await ctx.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
    const admin = await ctx.newPage();
    await admin.goto(`${venue.base}/admin`);
    await admin.waitForSelector("#s-upload");
    await admin.click("#s-upload summary");
    await admin.fill("#u-name", "Glow Set");
    await admin.setInputFiles("#u-files", files);
    await admin.click("#u-go");
    await waitFor(async () => (await admin.textContent("#u-state"))?.includes("uploaded"), { what: "upload finished" });
    assert.equal(await admin.$eval("#s-set", (s) => s.value), "glow-set");
    await admin.click("#s-save");
    await waitFor(async () => (await admin.textContent("#settingsstate"))?.includes("saved"), { what: "settings saved" });
    await admin.screenshot({ path: `${OUT}/admin-sticker-upload.png` });

    const viewer = await newPage(browser);
    await viewer.goto(`${venue.base}/?name=Uploader&media=0`);
    const urls = await waitFor(
      async () => {
        const set = await viewer.evaluate(() => window.venue?.room?.settings?.stickerSet);
        return set?.id === "glow-set" ? set.stickers.map((s) => s.url) : null;
      },
      { what: "the viewer's active sticker set" },
    );
    assert.deepEqual(urls, ["/stickers/custom/glow-set/glow-pink", "/stickers/custom/glow-set/glow-cyan"]);
    const res = await fetch(`${venue.base}${urls[0]}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/svg+xml");
    assert.match(res.headers.get("content-security-policy") ?? "", /sandbox/);
  } finally {
    await browser.close();
    await venue.stop();
  }
});
