//! Cluster test helpers: a real `redis-server` (Debian's) on a free loopback port in a temp
//! dir, stopped by pid when dropped (even on panic), and in-process cluster nodes sharing it.
//!
//! The nodes run on SQLite: `build_app` does not re-validate its `Config`, and the refusal of
//! cluster mode without PostgreSQL lives in `Config::validate` (the binary's path), so these
//! tests bypass it until the PostgreSQL store lands.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use venue_gateway::Services;
use venue_gateway::cluster::Cluster;
use venue_gateway::config::{ClusterConfig, Config, Secret};
use venue_gateway::{App, build_app};

pub const SECRET: &str = "test-cluster-secret-0123456789";

/// A `redis-server` child on 127.0.0.1:`port`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts one on a free port and waits (up to 10 s) until it answers PING.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL, by pid) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster node served on a loopback port.
pub struct Node {
    pub addr: SocketAddr,
    pub state: Services,
    pub cluster: Arc<Cluster>,
    pub drainer: venue_gateway::Drainer,
    pub dir: tempfile::TempDir,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The config of node `id` of the cluster on `redis` with `secret`, data in `dir`.
pub fn node_config(dir: &std::path::Path, redis: &str, id: &str, secret: &str) -> Config {
    let mut config = super::config(dir);
    config.cluster = ClusterConfig {
        redis_url: Some(Secret::new(redis)),
        node_id: Some(id.into()),
        secret: Some(Secret::new(secret)),
        drain_timeout_s: 5,
        ..Default::default()
    };
    config.hls.max_cpu_percent = 0;
    config.recording.enabled = false;
    config
}

/// Builds node `id` (not served yet): its listener is bound first, so its internal URL is
/// its real address. Errors: whatever `build_app` refuses (e.g. an incompatible cluster).
pub async fn build(
    redis: &str,
    id: &str,
    secret: &str,
) -> anyhow::Result<(App, tokio::net::TcpListener, tempfile::TempDir)> {
    build_on(redis, id, secret, None).await
}

/// Like [`build`], with the store on `database` (a `postgres://` URL shared by the nodes)
/// instead of the node's own SQLite file.
pub async fn build_on(
    redis: &str,
    id: &str,
    secret: &str,
    database: Option<&str>,
) -> anyhow::Result<(App, tokio::net::TcpListener, tempfile::TempDir)> {
    build_with(redis, id, secret, database, |_| {}).await
}

/// Like [`build_on`], with `tweak` applied to the node's config last (e.g. recording on).
pub async fn build_with(
    redis: &str,
    id: &str,
    secret: &str,
    database: Option<&str>,
    tweak: impl FnOnce(&mut Config),
) -> anyhow::Result<(App, tokio::net::TcpListener, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = node_config(dir.path(), redis, id, secret);
    config.database.url = database.map(Secret::new);
    config.cluster.internal_url = Some(format!("http://{addr}"));
    tweak(&mut config);
    let app = build_app(&config).await?;
    Ok((app, listener, dir))
}

/// Starts node `id` of the cluster on `redis` and serves it.
pub async fn node(redis: &str, id: &str, secret: &str) -> Node {
    let (app, listener, dir) = build(redis, id, secret).await.expect("node starts");
    serve(app, listener, dir)
}

/// Serves a built node.
pub fn serve(app: App, listener: tokio::net::TcpListener, dir: tempfile::TempDir) -> Node {
    let addr = listener.local_addr().unwrap();
    let state = app.services.clone();
    let cluster = app.cluster.clone().expect("cluster mode");
    let drainer = app.drainer().expect("cluster mode");
    let serve = tokio::spawn(app.serve(listener, std::future::pending()));
    Node {
        addr,
        state,
        cluster,
        drainer,
        dir,
        serve,
    }
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops as a crash would: no goodbye to the registry, the HTTP server gone.
    pub fn crash(&self) {
        self.cluster.halt();
        self.serve.abort();
    }

    /// The ids of the live nodes as this node sees them.
    pub async fn live(&self) -> Vec<String> {
        match self.cluster.nodes().await {
            Ok(v) => v.live.into_iter().map(|n| n.node_id).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Polls `cond` every 50 ms until it holds; returns how long that took, or panics after
/// `limit` with `what`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
