// Screenshots of the living room for a person to look at (not a test): starts `venue`, fills a
// room with a few people who move, drop stickers, launch fireworks and chat, and saves the
// viewer at desktop and phone size, the name prompt, and the admin console, to out/screens/.
//
// Run: cargo build -p venue-gateway && (cd tests/e2e && node screens.mjs)
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, OUT, adminApi, launchChromium, startVenue, waitFor } from "./lib.mjs";

const DIR = join(OUT, "screens");
mkdirSync(DIR, { recursive: true });

const venue = await startVenue({ name: "screens" });
const browser = await launchChromium({ extraArgs: ["--enable-unsafe-swiftshader"] });
const api = adminApi(venue.base);
const shot = (page, name, opts = {}) => page.screenshot({ path: join(DIR, `${name}.png`), ...opts });

async function viewer(name, { width = 1440, height = 900, query = "", mobile = false, admin = false } = {}) {
  const ctx = await browser.newContext({
    viewport: { width, height },
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
  });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.log(`[${name}] page error: ${e}`));
  page.on("console", (m) => m.type() === "error" && console.log(`[${name}] ${m.text()}`));
  if (admin) await ctx.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
  const q = name ? `?name=${encodeURIComponent(name)}${query}` : `?${query.replace(/^&/, "")}`;
  await page.goto(`${venue.base}/${q}`);
  if (name) await waitFor(() => page.evaluate(() => window.venue?.room?.synced), { timeout: 15000, what: `${name} joined` });
  return page;
}

try {
  await api.call("PUT", "/api/admin/rooms/main/settings", {
    title: "Friday Night Session",
    now_playing: "Nova Lights — Midnight Drive",
  }).catch((e) => console.log(`settings: ${e.message}`));

  // First visit: the name prompt.
  const fresh = await viewer("", { width: 1280, height: 800 });
  await fresh.waitForTimeout(800);
  await shot(fresh, "name-prompt");
  await fresh.context().close();

  const a = await viewer("Aurora", { admin: true });
  const others = [];
  for (const n of ["Bea", "Cosmo", "Dj Kit", "Elif"]) others.push(await viewer(n, { width: 1280, height: 800, query: "&transport=ws&media=0" }));

  // Stickers around the stage, from several people.
  const spots = [
    [0.06, 0.2], [0.1, 0.55], [0.08, 0.85], [0.93, 0.15], [0.9, 0.5], [0.95, 0.82], [0.3, 0.93], [0.7, 0.94], [0.5, 0.04], [0.2, 0.05],
  ];
  const ids = ["heart", "star", "fire", "sparkles", "music", "rainbow", "clap", "moon"];
  let i = 0;
  for (const [x, y] of spots) {
    const p = others[i % others.length];
    await p.evaluate(([id, x, y]) => window.venue.client.placeSticker(id, x, y, Math.random() * 40 - 20, 0.9 + Math.random() * 0.4), [ids[i % ids.length], x, y]);
    i++;
    await p.waitForTimeout(260);
  }
  const lines = [
    ["Bea", "this bassline!!"],
    ["Cosmo", "hello from Lisbon"],
    ["Dj Kit", "who else is here for the encore"],
    ["Elif", "first time here, love the stickers"],
    ["Bea", "heart wall at the bottom left, go go go"],
  ];
  for (const [who, text] of lines) {
    const p = others[["Bea", "Cosmo", "Dj Kit", "Elif"].indexOf(who)];
    await p.evaluate((t) => window.venue.client.sendChat(t), text);
    await p.waitForTimeout(1100);
  }
  await a.fill("#chatinput", "welcome everyone");
  await a.press("#chatinput", "Enter");

  // Cursors moving and fireworks, then the shot mid-motion.
  const moves = others.map((p, k) =>
    (async () => {
      for (let t = 0; t < 40; t++) {
        const x = 0.2 + 0.6 * (0.5 + 0.5 * Math.sin(t / 6 + k * 1.7));
        const y = 0.2 + 0.6 * (0.5 + 0.5 * Math.cos(t / 5 + k));
        await p.evaluate(([x, y]) => window.venue.client.moveCursor(x, y), [x, y]);
        await p.waitForTimeout(40);
      }
    })(),
  );
  await a.mouse.move(300, 400);
  for (let t = 0; t < 12; t++) await a.mouse.move(300 + t * 20, 400 - t * 8);
  await Promise.all(moves);
  await others[1].evaluate(() => window.venue.client.launchFirework(0.3, 0.3, 320));
  await others[2].evaluate(() => window.venue.client.launchFirework(0.7, 0.25, 190));
  await a.waitForTimeout(700);
  await shot(a, "viewer-desktop");
  await a.waitForTimeout(200);
  await a.click("#tabpeople");
  await a.hover(".person:nth-child(3)");
  await shot(a, "viewer-desktop-people");
  await a.click("#tabchat");

  // Phone.
  const phone = await viewer("Fin", { width: 390, height: 844, mobile: true });
  await phone.waitForTimeout(500);
  await phone.tap(".room", { position: { x: 30, y: 60 } }).catch(() => {});
  await others[0].evaluate(() => window.venue.client.launchFirework(0.5, 0.3, 40));
  await phone.waitForTimeout(700);
  await shot(phone, "viewer-phone");
  await shot(phone, "viewer-phone-full", { fullPage: true });

  // Admin console.
  const adm = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await adm.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
  const ap = await adm.newPage();
  ap.on("pageerror", (e) => console.log(`[admin] page error: ${e}`));
  await ap.goto(`${venue.base}/admin`);
  await ap.waitForTimeout(2000);
  await shot(ap, "admin-desktop", { fullPage: true });
  const admPhone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  await admPhone.addInitScript((t) => localStorage.setItem("venue.adminToken", t), ADMIN_TOKEN);
  const ap2 = await admPhone.newPage();
  await ap2.goto(`${venue.base}/admin`);
  await ap2.waitForTimeout(2000);
  await shot(ap2, "admin-phone", { fullPage: true });
  console.log(`screenshots in ${DIR}`);
} finally {
  await browser.close();
  await venue.stop();
}
