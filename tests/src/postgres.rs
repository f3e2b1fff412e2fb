//! A throwaway PostgreSQL 15 for tests (Debian's `postgresql` package; `.ci/run` installs it,
//! its system cluster stays off).
//!
//! [`Postgres::start`] makes a temp dir, `initdb`s it (trust auth, user `postgres`, no fsync)
//! and runs `postgres` on a free loopback port with its socket in the same dir. PostgreSQL
//! refuses to run as root: when the test runs as root (CI does) both run as the `postgres`
//! user (`setpriv --reuid postgres`), the dir owned by it. The server runs under a small
//! `sh` that stops it (fast shutdown) and removes the dir when it gets `SIGTERM`; that `sh` is
//! what [`Drop`] kills by pid, and it also gets `SIGTERM` from the kernel when the test
//! process dies (`setpriv --pdeathsig`), so no server outlives a panicking or killed test.
//!
//! [`Postgres::shared`] is the one server of a test binary (started on first use); each test
//! takes its own database from it with [`Postgres::create_database`].

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where Debian puts PostgreSQL 15's programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the server in the foreground; on TERM/INT stops it (fast shutdown), waits, removes
/// the dir. `$1` dir, `$2` port, `$3` bin dir.
const SUPERVISOR: &str = r#"
"$3/postgres" -D "$1/data" -p "$2" -k "$1" -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off >"$1/log" 2>&1 &
pid=$!
trap 'kill -INT $pid; wait $pid; rm -rf "$1"' TERM INT
wait $pid
"#;

/// A running throwaway PostgreSQL; stopped (and its dir removed) on drop.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    /// Pid of the supervising `sh`.
    pid: u32,
    /// Waits on the `sh`: the thread that spawned it, alive as long as it runs (the parent-
    /// death signal is tied to that thread).
    waiter: Option<JoinHandle<()>>,
    databases: AtomicU32,
}

static SHARED: OnceLock<Postgres> = OnceLock::new();
static DIRS: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    /// Starts a server. Errors: PostgreSQL 15 is not installed (the message says how to get
    /// it), `initdb` or the server failed (with their output).
    pub fn start() -> anyhow::Result<Postgres> {
        if !Path::new(BIN).join("initdb").is_file() {
            bail!(
                "PostgreSQL 15 is not installed ({BIN}/initdb is missing): the store tests run \
                 against a throwaway PostgreSQL. Install it with `apt-get install postgresql` \
                 (CI's .ci/run does); its system service need not run"
            );
        }
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "venue-pg-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let user_args: Vec<String> = if root {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", dir.display()))?;
            vec![
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--init-groups".into(),
            ]
        } else {
            Vec::new()
        };
        let data = dir.join("data");
        let out = Command::new("setpriv")
            .args(&user_args)
            .arg("--")
            .arg(Path::new(BIN).join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "-D"])
            .arg(&data)
            .output()
            .context("running initdb through setpriv")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let (started_tx, started_rx) = mpsc::channel::<std::io::Result<u32>>();
        let (exit_tx, exit_rx) = mpsc::channel::<ExitStatus>();
        let mut command = Command::new("setpriv");
        command
            .args(&user_args)
            .args([
                "--pdeathsig",
                "TERM",
                "--",
                "/bin/sh",
                "-c",
                SUPERVISOR,
                "sh",
            ])
            .arg(&dir)
            .arg(port.to_string())
            .arg(BIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let waiter = std::thread::Builder::new()
            .name("postgres-waiter".into())
            .spawn(move || match command.spawn() {
                Ok(mut child) => {
                    let _ = started_tx.send(Ok(child.id()));
                    if let Ok(status) = child.wait() {
                        let _ = exit_tx.send(status);
                    }
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            })
            .context("spawning the waiter thread")?;
        let pid = started_rx
            .recv()
            .context("the waiter thread ended")?
            .context("starting postgres through setpriv")?;
        let server = Postgres {
            port,
            dir,
            pid,
            waiter: Some(waiter),
            databases: AtomicU32::new(0),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(status) = exit_rx.try_recv() {
                bail!(
                    "postgres exited ({status}) before accepting connections: {}",
                    server.log()
                );
            }
            let ready = Command::new(Path::new(BIN).join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within {READY_TIMEOUT:?}: {}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server of this test binary, started on first use and stopped when the process
    /// exits. Panics (failing the test) with [`Postgres::start`]'s message when it cannot
    /// start.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| match Postgres::start() {
            Ok(pg) => pg,
            Err(e) => panic!("{e:#}"),
        })
    }

    /// Creates a new empty database `venue_N` and returns its URL
    /// (`postgres://postgres@127.0.0.1:PORT/venue_N`).
    pub fn create_database(&self) -> anyhow::Result<String> {
        let name = format!("venue_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(Path::new(BIN).join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .output()
            .context("running createdb")?;
        if !out.status.success() {
            bail!("createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(self.url(&name))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (data in `data/`, the socket, `log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log, for error messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// uid and gid of the `postgres` user.
fn postgres_ids() -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!(
                "there is no `postgres` user (PostgreSQL refuses to run as root; the Debian \
                 package creates it)"
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// A loopback TCP port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
