// Vite multi-page build: dist/index.html (viewer, served for `/` and `/r/{room}`),
// dist/publish.html (`/publish`), dist/admin.html (`/admin`), hashed assets under /assets/.
//
// `npm run dev` serves the pages with the same routes and proxies /api to a running
// `venue` (VENUE_URL, default http://127.0.0.1:8080); /hls (the LL-HLS program) likewise.
import { defineConfig, type Plugin } from "vite";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const target = process.env.VENUE_URL ?? "http://127.0.0.1:8080";

/** The gateway's page routes, mirrored for the dev and preview servers. */
function venueRoutes(): Plugin {
  const rewrite = (url: string | undefined): string | undefined => {
    if (!url) return url;
    const [path, query] = url.split("?", 2);
    const q = query ? `?${query}` : "";
    if (path === "/publish" || path === "/publish/") return `/publish.html${q}`;
    if (path === "/admin" || path === "/admin/") return `/admin.html${q}`;
    if (/^\/r\/[^/]+\/?$/.test(path)) return `/index.html${q}`;
    return url;
  };
  return {
    name: "venue-routes",
    configureServer(server) {
      server.middlewares.use((req, _res, next) => {
        req.url = rewrite(req.url);
        next();
      });
    },
    configurePreviewServer(server) {
      server.middlewares.use((req, _res, next) => {
        req.url = rewrite(req.url);
        next();
      });
    },
  };
}

export default defineConfig({
  base: "/",
  plugins: [venueRoutes()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        index: resolve(root, "index.html"),
        publish: resolve(root, "publish.html"),
        admin: resolve(root, "admin.html"),
      },
    },
  },
  server: { proxy: { "/api": { target, changeOrigin: false }, "/hls": { target, changeOrigin: false } } },
  preview: { proxy: { "/api": { target, changeOrigin: false }, "/hls": { target, changeOrigin: false } } },
});
