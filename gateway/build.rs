//! Builds the web front end (`../web`, Vite) into `../web/dist` so `assets.rs` can embed it.
//!
//! Contract: the Rust build never fails because of node. When npm is missing, `web/` has no
//! `package.json` yet, `VENUE_SKIP_WEB_BUILD` is set, or the npm build fails, this prints a
//! `cargo:warning` and, if `web/dist/index.html` does not exist, writes a minimal placeholder.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLACEHOLDER: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Venue</title></head>\n<body><h1>Venue</h1><p>The web front end was not built (see the build warnings: run <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>).</p></body></html>\n";

/// Inputs of the web build; a change in any of them reruns this script.
const WATCHED: &[&str] = &[
    "src",
    "public",
    "index.html",
    "publish.html",
    "admin.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "vite.config.js",
    "tsconfig.json",
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let web = manifest.join("..").join("web");
    let dist_index = web.join("dist").join("index.html");

    println!("cargo:rerun-if-env-changed=VENUE_SKIP_WEB_BUILD");
    println!("cargo:rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds the migrations; a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    // Only existing paths: cargo reruns the script on every build for a missing one.
    let mut watched_any = false;
    for name in WATCHED {
        let p = web.join(name);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
            watched_any = true;
        }
    }
    let proto = manifest.join("..").join("proto").join("venue.proto");
    if proto.exists() {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    if !watched_any {
        // web/ is still empty: watch the folder so its first files trigger a build. The
        // placeholder is written only when missing, so this settles after one rerun.
        println!("cargo:rerun-if-changed={}", web.display());
    }

    if std::env::var_os("VENUE_SKIP_WEB_BUILD").is_some() {
        placeholder(
            &dist_index,
            "VENUE_SKIP_WEB_BUILD is set; web front end not built",
        );
        return;
    }
    if !web.join("package.json").exists() {
        placeholder(
            &dist_index,
            "web/package.json not found; web front end not built",
        );
        return;
    }
    if let Err(why) = npm_build(&web) {
        placeholder(&dist_index, &format!("web front end build failed: {why}"));
    }
}

fn npm_build(web: &Path) -> Result<(), String> {
    if !web.join("node_modules").exists() {
        run(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    run(web, &["run", "build"])
}

fn run(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("npm {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        Err(format!(
            "npm {} exited with {}: {tail}",
            args.join(" "),
            out.status
        ))
    }
}

fn placeholder(index: &Path, why: &str) {
    println!("cargo:warning={why}");
    if index.exists() {
        return;
    }
    let written = index
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|()| std::fs::write(index, PLACEHOLDER));
    if let Err(e) = written {
        println!("cargo:warning=could not write {}: {e}", index.display());
    }
}
