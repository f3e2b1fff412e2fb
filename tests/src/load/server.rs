//! Starting a `venue` process for a benchmark run: free loopback ports, a temp data dir, a
//! fresh admin token; killed and cleaned up on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::load::http::{self, Server};

/// A `venue` process started by loadgen; killed and cleaned up on drop.
pub struct SpawnedServer {
    /// The server process.
    pub child: Child,
    /// Its temporary data directory (removed on drop).
    pub data_dir: PathBuf,
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Starts `venue` on a free loopback HTTP port, ephemeral media ports, a temp data dir and a
/// fresh admin token; waits for `/healthz`.
pub async fn spawn_server(
    path: &PathBuf,
    extra: &[String],
) -> Result<(SpawnedServer, String, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let nonce = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let data_dir = std::env::temp_dir().join(format!("venue-loadgen-{nonce}"));
    std::fs::create_dir_all(&data_dir)?;
    let token = format!("loadgen-{nonce}");
    let log = std::fs::File::create(data_dir.join("venue.log"))?;
    let mut cmd = Command::new(path);
    cmd.arg("--http-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--media-bind-ip")
        .arg("127.0.0.1")
        .arg("--media-candidate-ips")
        .arg("127.0.0.1")
        .arg("--media-base-port")
        .arg("0")
        .args(extra)
        // A load test measures the media plane: no overflow to HLS (a flag in `extra` still
        // sets --max-webrtc-viewers).
        .env("VENUE_MAX_WEBRTC_VIEWERS", "1000000")
        .env("VENUE_MAX_CPU_PERCENT", "0")
        .env("VENUE_ADMIN_TOKEN", &token)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let mut s = SpawnedServer { child, data_dir };
    let url = format!("http://127.0.0.1:{port}");
    let server = Server::parse(&url)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = s.child.try_wait()? {
            let log = std::fs::read_to_string(s.data_dir.join("venue.log")).unwrap_or_default();
            bail!("venue exited at start ({status}):\n{}", tail(&log, 2000));
        }
        if let Ok(r) = http::request(&server, "GET", "/healthz", &[], b"").await
            && r.status == 200
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("venue did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "loadgen: spawned venue pid {} on {url} (data {})",
        s.child.id(),
        s.data_dir.display()
    );
    Ok((s, url, token))
}

pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or(s)
}
