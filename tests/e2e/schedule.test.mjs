// The admin console's schedule, by clicks: create an event starting now, book its first slot
// for a new artist (the stream key is shown once, with the RTMP server and WHIP URL), see the
// booking on the timeline and in the public schedule, publish with the key over RTMP (Debian's
// ffmpeg) and see the block turn LIVE, get the API's 400 shown inline when resizing wrongly,
// move it by drag and drop and stretch it in its panel (PUT …/bookings/{id}), then delete the
// booking and the event from the console.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, OUT, ensureOut, freeTcpPort, launchChromium, startVenue, waitFor } from "./lib.mjs";

const FFMPEG = process.env.FFMPEG ?? "/usr/bin/ffmpeg";

/** `HH:MM` of an RFC 3339 instant in the browser's zone (the test's, as it runs beside it). */
const hhmm = (t) => new Date(t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

async function publicSchedule(base) {
  const r = await fetch(`${base}/api/rooms/main/schedule`);
  assert.equal(r.status, 200);
  return r.json();
}

test("admin schedules an artist by clicks; the timeline shows them live", async (t) => {
  ensureOut();
  const rtmpPort = await freeTcpPort();
  const venue = await startVenue({ name: "schedule", extraArgs: ["--rtmp-listen", `127.0.0.1:${rtmpPort}`] });
  const browser = await launchChromium();
  let ffmpeg = null;
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addInitScript((tok) => localStorage.setItem("venue.adminToken", tok), ADMIN_TOKEN);
    const admin = await ctx.newPage();
    const errors = [];
    admin.on("pageerror", (e) => errors.push(String(e)));
    admin.on("dialog", (d) => d.accept());
    await admin.goto(`${venue.base}/admin`);
    await admin.waitForSelector("#schedule #sched-new", { state: "visible" });
    assert.match(await admin.textContent("#schedule .sched-zoneline"), /UTC/, "the admin's zone and offset are shown");

    // Create an event that starts now, 10-minute slots.
    await admin.click("#sched-new");
    await admin.fill("#schedule .sched-create input[name=title]", "Sunday Sessions");
    await admin.click("#schedule .sched-create button:text-is('now')");
    await admin.fill("#schedule .sched-create input[name=slot_minutes]", "10");
    await admin.click("#schedule .sched-create button[type=submit]");
    const ev = await waitFor(async () => (await publicSchedule(venue.base)).events[0], { what: "the event in the public schedule" });
    assert.equal(ev.title, "Sunday Sessions");
    assert.equal(ev.slot_minutes, 10);
    assert.ok(Date.parse(ev.start) <= Date.now() && Date.now() < Date.parse(ev.end), "the event is on now");
    await admin.waitForSelector(`.sched-event[data-event="${ev.id}"] .tl-now`);

    // Book the first (current) slot for a new artist.
    await admin.click(`.sched-event[data-event="${ev.id}"] .tl-block.free[data-slot-start="${ev.slots[0].start}"]`);
    const form = `.sched-event[data-event="${ev.id}"] .sched-bookform`;
    await admin.waitForSelector(form);
    assert.equal(await admin.$eval(`${form} select[name=slot_start]`, (s) => s.value), ev.slots[0].start);
    assert.ok((await admin.$eval(`${form} input[name=timezone]`, (i) => i.value)).length > 0, "time zone defaults to the browser's");
    await admin.fill(`${form} input[name=artist_name]`, "Nova Lights");
    await admin.fill(`${form} input[name=description]`, "synth-pop duo");
    await admin.fill(`${form} input[name=location]`, "Lisbon");
    await admin.fill(`${form} input[name=timezone]`, "Europe/Lisbon");
    await admin.fill(`${form} input[name=email]`, "nova@example.org");
    await admin.click(`${form} button[type=submit]`);

    // The key, once, with the RTMP server and the WHIP URL.
    await admin.waitForSelector("#sched-key:not([hidden])");
    const shown = Object.fromEntries(
      await admin.$$eval("#sched-key .kv", (rows) => rows.map((r) => [r.dataset.copy, r.querySelector("code").textContent])),
    );
    assert.ok(shown.key?.length >= 32, `a stream key: ${JSON.stringify(shown)}`);
    assert.equal(shown.rtmp, `rtmp://127.0.0.1:${rtmpPort}/live`, "the RTMP server shown is the configured listener");
    assert.match(shown.whip, /\/api\/whip$/);
    await admin.screenshot({ path: join(OUT, "schedule-booked.png"), fullPage: true });
    await admin.click("#sched-key button:text-is('I saved it — hide')");
    assert.equal(await admin.evaluate((k) => document.body.innerHTML.includes(k), shown.key), false, "the key is gone from the page");

    // The block on the timeline, and the booking in the public schedule (no email, no key).
    const block = await admin.waitForSelector(`.sched-event[data-event="${ev.id}"] .tl-block.booked`);
    assert.match(await block.textContent(), /Nova Lights/);
    assert.match(await block.getAttribute("title"), /their time: .*Europe\/Lisbon/);
    const bookingId = Number(await block.getAttribute("data-booking"));
    const pub = await publicSchedule(venue.base);
    const booked = pub.events[0].slots[0].booking;
    assert.equal(booked?.artist_name, "Nova Lights");
    assert.equal(booked.id, bookingId);
    assert.equal(booked.timezone, "Europe/Lisbon");
    assert.ok(!JSON.stringify(pub).includes("nova@example.org"), "no email in public");
    assert.ok(!JSON.stringify(pub).includes(shown.key), "no key in public");

    // Publish with the key over RTMP: the block shows LIVE (the console reads every 5 s).
    if (existsSync(FFMPEG)) {
      ffmpeg = spawn(
        FFMPEG,
        ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
          "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
          "-f", "flv", `rtmp://127.0.0.1:${rtmpPort}/live/${shown.key}`],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let ffErr = "";
      ffmpeg.stderr.on("data", (d) => (ffErr += d));
      await waitFor(
        () => admin.$eval(`.tl-block.booked[data-booking="${bookingId}"]`, (b) => b.dataset.live === "1" && !!b.querySelector(".tl-live")),
        { timeout: 20000, interval: 250, what: `the booking block LIVE (ffmpeg: ${ffErr.slice(0, 300)})` },
      );
      assert.equal(await admin.textContent(`.tl-block.booked[data-booking="${bookingId}"] .tl-live`), "LIVE");
      assert.match(await admin.textContent(`.sched-event[data-event="${ev.id}"] .sched-head`), /live: Nova Lights/);
      assert.equal((await publicSchedule(venue.base)).events[0].slots[0].booking.live, true);
      await admin.screenshot({ path: join(OUT, "schedule-live.png"), fullPage: true });
      ffmpeg.kill("SIGTERM");
    } else {
      t.diagnostic(`no ffmpeg at ${FFMPEG}: LIVE not checked`);
    }

    // Resizing the event wrongly: the API's 400 is shown inline, nothing changes.
    const ed = `.sched-event[data-event="${ev.id}"] .sched-editbox`;
    await admin.click(`.sched-event[data-event="${ev.id}"] button[data-action=edit]`);
    await admin.waitForSelector(`${ed} form`);
    const startValue = await admin.$eval(`${ed} input[name=start]`, (i) => i.value);
    await admin.fill(`${ed} input[name=end]`, startValue);
    await admin.click(`${ed} button[type=submit]`);
    await waitFor(async () => /400.*end must be after start/.test(await admin.textContent(`${ed} .sched-error`)), { what: "the 400 inline" });
    await admin.click(`${ed} button:text-is('Cancel')`);

    // Move the booking: drag it onto the third slot, then stretch it to two slots in its panel.
    const onSlot = async (k) => (await publicSchedule(venue.base)).events[0].slots[k].booking?.id === bookingId;
    await admin.dragAndDrop(
      `.tl-block.booked[data-booking="${bookingId}"]`,
      `.sched-event[data-event="${ev.id}"] .tl-block.free[data-slot-start="${ev.slots[2].start}"]`,
    );
    await waitFor(() => onSlot(2), { what: "the booking dragged to slot 3" });
    assert.equal(await onSlot(0), false);
    await admin.waitForSelector(`.tl-block.booked[data-booking="${bookingId}"] >> text=${hhmm(ev.slots[2].start)}`);
    await admin.click(`.tl-block.booked[data-booking="${bookingId}"]`);
    const panel = `.sched-event[data-event="${ev.id}"] .sched-bookbox[data-booking="${bookingId}"]`;
    await admin.waitForSelector(`${panel} .sched-moveform`);
    await admin.fill(`${panel} input[name=slots]`, "2");
    await admin.click(`${panel} button[type=submit]`);
    await waitFor(async () => (await onSlot(2)) && (await onSlot(3)), { what: "the booking stretched over slots 3 and 4" });
    await admin.waitForSelector(panel, { state: "hidden" });

    // Delete the booking from the timeline, then the event.
    await admin.hover(`.tl-block.booked[data-booking="${bookingId}"]`);
    await admin.click(`.tl-block.booked[data-booking="${bookingId}"] .tl-x`);
    await waitFor(async () => (await publicSchedule(venue.base)).events[0].slots.every((s) => s.booking === null), { what: "booking deleted" });
    await admin.waitForSelector(`.sched-event[data-event="${ev.id}"] .tl-block.booked`, { state: "detached" });
    await admin.click(`.sched-event[data-event="${ev.id}"] button[data-action=delete]`);
    await waitFor(async () => (await publicSchedule(venue.base)).events.length === 0, { what: "event deleted" });
    await admin.waitForSelector(`.sched-event[data-event="${ev.id}"]`, { state: "detached" });
    assert.deepEqual(errors, [], "no page errors");
  } finally {
    ffmpeg?.kill("SIGKILL");
    await browser.close();
    await venue.stop();
  }
});
