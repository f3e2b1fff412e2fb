//! Venue's control plane: HTTP API (WHIP, WHEP, admin, rooms), SQLite store, live room state,
//! embedded web front end, metrics. The `venue` binary (`main.rs`) is a thin shell over
//! [`build_app`] and [`App::serve`].
//!
//! Contract: the gateway never touches RTP; it drives the media plane only through
//! [`venue_sfu::SfuHandle`] and learns about it through `SfuEvent`s, which one actor
//! ([`rooms`]) owns. Bad input is answered 4xx with a reason, never 500. Secrets (stream keys,
//! the admin token) are never logged.
//!
//! Single-node by default; with `[cluster] redis_url` the node joins a cluster on Redis
//! ([`cluster`]: registry, bus, leases, node-to-node auth, drain on SIGTERM via [`Drainer`]).
//!
//! Use from another crate (tests, e2e):
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let mut config = venue_gateway::config::Config::default();
//! config.data_dir = "/tmp/venue-test".into();
//! config.media.base_port = 0;
//! config.admin_token = Some(venue_gateway::config::Secret::new("test-admin-token"));
//! let app = venue_gateway::build_app(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(app.serve(listener, std::future::pending()));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bus;
pub mod cluster;
pub mod config;
pub mod http;
pub mod hub;
pub mod ice;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod overflow;
pub mod rooms;
pub mod schedule;
pub mod store;
pub mod url;
pub mod webhooks;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use base64::Engine;
use venue_sfu::SfuHandle;

use crate::cluster::drain::{Drain, DrainOutcome};
use crate::cluster::readiness::Readiness;
use crate::cluster::registry::{Load, LoadFn};
use crate::cluster::secrets::ClusterSecrets;
use crate::cluster::{Cluster, ClusterDeps};
use crate::config::{Config, Secret};
use crate::http::{HttpSettings, router, tls};
use crate::media::hls_programs::HlsPrograms;
use crate::rooms::StateHandle;
use crate::store::Store;

/// The gateway's running parts, as handles (each cheap to clone): what [`build_app`] starts
/// and the HTTP layer, the RTMP listener and the tests reach them through.
#[derive(Clone, Debug)]
pub struct Services {
    pub store: Store,
    pub sfu: SfuHandle,
    /// The room state actor: stage, sessions, the living room's hubs.
    pub state: StateHandle,
    pub metrics: Arc<metrics::Metrics>,
    /// Slot-bound stream keys: the key check and the window-closing timer.
    pub schedule: schedule::Schedule,
    /// Signed webhook deliveries (`[webhooks]`); `emit` never waits.
    pub webhooks: webhooks::Webhooks,
    /// Overflow to HLS: `[hls]` limits and the CPU sample (`/join`, WHEP admission).
    pub overflow: overflow::Overflow,
    /// Running LL-HLS programs by room (`/hls/...`); fed by the program supervisor.
    pub hls: HlsPrograms,
    /// Recordings of artists' sets (`[recording]`), fed by the program supervisor.
    pub recordings: media::recording::Recordings,
    /// TURN credentials handed to clients (`[turn]`): WHIP/WHEP `Link` headers, `/api/ice-servers`.
    pub ice: ice::IceServers,
    /// The embedded TURN server when `[turn] enabled` (its counters go to `/metrics`).
    pub turn: Option<ice::EmbeddedTurn>,
    /// Starting / serving / draining, for `/readyz`.
    pub readiness: Readiness,
    /// Cluster mode: this node's membership (`/internal` routes, registry); `None` in
    /// single-node mode.
    pub cluster: Option<Arc<Cluster>>,
    /// Which node composes each room's program (single-node: this one); the program
    /// supervisor and `/hls` ask it.
    pub program: media::program_node::ProgramNodes,
    /// Cluster mode: signed calls to the other nodes (HLS and recording forwarding).
    pub node_client: Option<cluster::proxy::NodeClient>,
}

/// A built application: router, services and HTTP settings, ready to serve.
#[derive(Debug)]
pub struct App {
    pub router: Router,
    pub services: Services,
    /// What the router was built with (a test builds a second router over changed services).
    pub http: HttpSettings,
    /// What the RTMP listener needs: `media::rtmp::spawn(app.rtmp.clone(), config.rtmp)`.
    pub rtmp: media::rtmp::RtmpDeps,
    /// The node's drain switch (readiness and the hubs' "moving" notice).
    pub drain: Drain,
    /// Cluster mode: this node's membership; `None` in single-node mode.
    pub cluster: Option<Arc<Cluster>>,
}

/// What a cluster node's SIGTERM runs before the HTTP server stops: see [`Drainer::run`].
#[derive(Debug, Clone)]
pub struct Drainer {
    drain: Drain,
    cluster: Arc<Cluster>,
    state: StateHandle,
}

impl Drainer {
    /// Drains this node ([`cluster::drain`]): `/readyz` 503, heartbeat `draining`, "moving"
    /// to every page, then waits until no WebRTC session and no interaction client remains or
    /// the drain timeout passes, and leaves the registry.
    pub async fn run(&self) -> DrainOutcome {
        let state = self.state.clone();
        let timeout = self.cluster.settings().drain_timeout;
        let outcome = self
            .drain
            .run(timeout, move || {
                let state = state.clone();
                async move { sessions_left(&state).await }
            })
            .await;
        tracing::info!(
            remaining = outcome.remaining,
            timed_out = outcome.timed_out,
            took_ms = u64::try_from(outcome.took.as_millis()).unwrap_or(u64::MAX),
            "drain finished"
        );
        self.cluster.leave().await;
        outcome
    }
}

/// WebRTC sessions plus interaction clients (WebSocket and data channel) on this node; 0 when
/// the state actor has stopped.
async fn sessions_left(state: &StateHandle) -> usize {
    let sessions = state.stats().await.map_or(0, |s| s.sessions);
    let mut clients = 0;
    if let Ok(hubs) = state.hubs().await {
        for hub in hubs {
            if let Ok(h) = hub.stats().await {
                clients += usize::try_from(h.users).unwrap_or(usize::MAX);
            }
        }
    }
    sessions.saturating_add(clients)
}

impl App {
    /// Serves HTTP on `listener` until `shutdown` completes, then finishes in-flight requests.
    /// Each request sees its TCP peer address (`ConnectInfo<SocketAddr>`; the WebSocket hashes
    /// it for per-IP limits and bans).
    ///
    /// An error accepting a connection never ends the server: axum's `TcpListener` accept loop
    /// ignores per-connection errors (reset, aborted) and, for others such as `EMFILE` (out of
    /// file descriptors), logs them at error level and retries after one second (axum 0.8
    /// `serve::listener::handle_accept_error`). `raise_nofile_limit` at start keeps EMFILE far.
    ///
    /// `/readyz` turns ready here: the listener is bound and about to accept.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.services.readiness.set_serving();
        axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Like [`serve`](Self::serve) but HTTPS: TLS with ALPN `h2` and `http/1.1` (HTTP/2 for
    /// clients that offer it, HTTP/1.1 and WebSocket upgrades otherwise), see [`tls::serve`].
    /// `tls` comes from [`tls::TlsConfig::from_pem_files`] (`[http] tls_cert` / `tls_key`).
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: tls::TlsConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.services.readiness.set_serving();
        tls::serve(listener, self.router, tls, shutdown).await
    }

    /// Cluster mode: what SIGTERM runs before the server stops ([`Drainer::run`]); `None` in
    /// single-node mode (SIGTERM stops at once, as it always did).
    pub fn drainer(&self) -> Option<Drainer> {
        self.cluster.as_ref().map(|cluster| Drainer {
            drain: self.drain.clone(),
            cluster: cluster.clone(),
            state: self.services.state.clone(),
        })
    }
}

/// Opens the store, resolves the admin token, starts the SFU and the state actor, joins the
/// cluster when `[cluster] redis_url` is set, and builds the router. `config` is used as given
/// (not validated again: [`Config::load`] validates). Errors: store, data dir, SFU or
/// cluster start-up failures ([`cluster::ClusterError`]).
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let cluster_settings = config
        .cluster
        .resolve(&config.http, &config.data_dir)
        .context("[cluster]")?;
    // Cluster mode: the secrets are the cluster's (cluster::secrets), not this data dir's.
    let secrets = cluster_settings
        .as_ref()
        .map(|s| ClusterSecrets::derive(&s.secret));
    if secrets.is_some() && config.admin_token.is_none() {
        anyhow::bail!(
            "admin_token (VENUE_ADMIN_TOKEN) is required in cluster mode: every node must accept \
             the same admin token"
        );
    }
    let url = config.database.url.as_ref().map(|u| u.expose());
    let store = Store::connect(url, &config.data_dir)
        .await
        .with_context(
            || match store::DatabaseUrl::or_default(url, &config.data_dir) {
                Ok(url) => format!("opening the store at {url}"),
                Err(_) => "opening the store".to_owned(),
            },
        )?;
    let token = admin_token(config.admin_token.as_ref(), &config.data_dir)?;
    let salt = match &secrets {
        Some(s) => s.ip_salt,
        None => ip_salt(&config.data_dir)?,
    };
    let readiness = Readiness::new();
    let drain = Drain::new(readiness.clone());
    let metrics = Arc::new(metrics::Metrics::default());
    let (sfu, events) =
        SfuHandle::start(config.media.clone()).context("starting the media plane")?;
    let admin_digest = http::extract::token_digest(token.expose());
    let webhooks =
        webhooks::Webhooks::start(&config.webhooks).context("starting webhook delivery")?;
    let overflow = overflow::Overflow::start(config.hls);
    let local_bus = bus::LocalBus::new(webhooks.clone());
    // The heartbeat reads the state actor, which needs the bus first: it is filled in below.
    let load_state: Arc<std::sync::OnceLock<StateHandle>> = Arc::default();
    let cluster = match cluster_settings {
        None => None,
        Some(settings) => Some(Arc::new(
            Cluster::start(
                settings,
                ClusterDeps {
                    local: local_bus.clone(),
                    metrics: metrics.cluster().clone(),
                    readiness: readiness.clone(),
                    load: load_reader(load_state.clone(), overflow.clone()),
                },
            )
            .await
            .context("joining the cluster")?,
        )),
    };
    let hub_deps = hub::shell::HubDeps {
        store: store.clone(),
        sfu: sfu.clone(),
        config: config.interaction.hub_config(),
        queue: config.interaction.queue_policy(),
        admin_digest,
        ip_salt: Arc::new(salt),
        moving: drain.subscribe(),
        cluster: cluster.clone(),
    };
    let bus: Arc<dyn bus::Bus> = match &cluster {
        Some(c) => c.bus(),
        None => Arc::new(local_bus),
    };
    let state_handle = rooms::spawn(
        store.clone(),
        sfu.clone(),
        events,
        hub_deps,
        bus.clone(),
        cluster.as_ref().map(|c| c.tracks().clone()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("loading room state: {e}"))?;
    let _ = load_state.set(state_handle.clone());
    let recordings = media::recording::Recordings::open_on(
        store.clone(),
        &config.data_dir,
        config.recording,
        config.schedule.grace_before_s,
        secrets.as_ref().map_or(admin_digest, |s| s.recording_link),
        cluster
            .as_ref()
            .map(|c| c.settings().node_id.as_str().to_owned()),
    )
    .await
    .context("opening the recordings")?;
    let mut turn_config = config.turn.clone();
    if let Some(s) = &secrets
        && turn_config.secret.expose().is_empty()
    {
        turn_config.secret = s.turn_secret.clone();
    }
    let (turn, ice) = ice::start(
        &turn_config,
        &config.media,
        &sfu.addrs().shards,
        config.http.public_url.as_deref(),
        &config.data_dir,
    )
    .await
    .context("starting the TURN server")?;
    let schedule = schedule::Schedule::new(config.schedule, schedule::Clock::default());
    schedule.spawn_enforcer(store.clone(), &state_handle, bus);
    let services = Services {
        webhooks,
        schedule,
        store,
        sfu,
        state: state_handle,
        metrics: metrics.clone(),
        overflow,
        hls: HlsPrograms::default(),
        recordings,
        ice,
        turn: turn.map(ice::EmbeddedTurn::new),
        readiness,
        cluster: cluster.clone(),
        program: match &cluster {
            Some(c) => {
                media::program_node::ProgramNodes::cluster(c.clone(), metrics.cluster().clone())
            }
            None => media::program_node::ProgramNodes::single(),
        },
        node_client: match &cluster {
            Some(c) => Some(
                cluster::proxy::NodeClient::new(
                    c.clone(),
                    cluster::proxy::READ_TIMEOUT,
                    metrics.cluster().clone(),
                )
                .context("the node-to-node HTTP client")?,
            ),
            None => None,
        },
    };
    let http = HttpSettings {
        admin_token_digest: admin_digest,
        public_url: config.http.public_url.clone(),
        ws_queue: config.interaction.queue_policy(),
        trusted_proxies: config.http.trusted_proxies.clone().into(),
        rtmp: config.rtmp,
    };
    media::program::spawn_supervisor(
        media::program::ProgramDeps {
            store: services.store.clone(),
            state: services.state.clone(),
            sfu: services.sfu.clone(),
            hls: services.hls.clone(),
            recordings: services.recordings.clone(),
            program: services.program.clone(),
        },
        config.hls,
    );
    let rtmp = media::rtmp::RtmpDeps {
        schedule: services.schedule.clone(),
        store: services.store.clone(),
        sfu: services.sfu.clone(),
        state: services.state.clone(),
        metrics: services.metrics.clone(),
    };
    Ok(App {
        router: router(services.clone(), http.clone()),
        services,
        http,
        rtmp,
        drain,
        cluster,
    })
}

/// The heartbeat's load reader: WebRTC viewers from the state actor (once it runs), CPU from
/// the overflow sampler, relays (both sides) from the state actor, egress bit/s from the
/// media plane's UDP byte count between two heartbeats.
fn load_reader(
    state: Arc<std::sync::OnceLock<StateHandle>>,
    overflow: overflow::Overflow,
) -> LoadFn {
    // (when, bytes) of the previous reading: egress bit/s is the growth since.
    let last_sent: Arc<std::sync::Mutex<EgressSample>> = Arc::default();
    Arc::new(move || {
        let state = state.get().cloned();
        let cpu_percent = overflow.cpu_percent();
        let egress_bps = egress_bps(&last_sent);
        Box::pin(async move {
            let stats = match state {
                Some(s) => s.stats().await.ok(),
                None => None,
            };
            let stats = stats.unwrap_or_default();
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            Load {
                cpu_percent,
                webrtc_viewers: count(stats.viewers),
                egress_bps,
                relays: count(stats.relays_in + stats.relays_out),
                rooms: stats
                    .room_loads
                    .iter()
                    .filter(|(_, viewers, media)| *viewers > 0 || *media)
                    .map(|(room, viewers, media)| cluster::registry::RoomLoad {
                        room: room.0,
                        viewers: count(*viewers),
                        media: *media,
                    })
                    .collect(),
            }
        })
    })
}

/// The media plane's UDP egress in bit/s ([`venue_sfu::sent_bytes`], process-wide), over the
/// last second or more: a reading sooner than 1 s after the last sample (placement reads the
/// load on every `/join`) repeats the last rate. `None` until two samples exist.
fn egress_bps(last: &std::sync::Mutex<EgressSample>) -> Option<u64> {
    let (now, bytes) = (std::time::Instant::now(), venue_sfu::sent_bytes());
    let mut last = last.lock().ok()?;
    match last.at {
        Some((at, before)) if now.duration_since(at) >= std::time::Duration::from_secs(1) => {
            let secs = now.duration_since(at).as_secs_f64();
            last.bps = Some((bytes.saturating_sub(before) as f64 * 8.0 / secs) as u64);
            last.at = Some((now, bytes));
        }
        Some(_) => {}
        None => last.at = Some((now, bytes)),
    }
    last.bps
}

/// The previous egress sample: (when, bytes sent then) and the rate computed then.
#[derive(Debug, Default)]
struct EgressSample {
    at: Option<(std::time::Instant, u64)>,
    bps: Option<u64>,
}

/// The admin token: from the config, else `data_dir/admin-token`, generated (and printed to
/// stdout once) when that file does not exist.
pub fn admin_token(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<Secret> {
    if let Some(token) = configured {
        return Ok(token.clone());
    }
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(Secret::new(text.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "Generated admin token (stored in {}): {token}",
        path.display()
    );
    Ok(Secret::new(token))
}

/// The salt of the IP hashes: `data_dir/ip-salt` (32 random bytes, hex), generated on first
/// start. Kept on disk rather than per process so that bans by hashed IP survive a restart;
/// raw IPs are never stored.
pub fn ip_salt(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("ip-salt");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if let Some(salt) = hex::decode(text.trim())
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
            {
                return Ok(salt);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let salt: [u8; 32] = rand::random();
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, &hex::encode(salt))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(salt)
}

/// Raises this process's open-file soft limit (RLIMIT_NOFILE) to its hard limit, so thousands
/// of WebSocket clients do not hit the historical 1,024. Returns (soft before, soft after,
/// hard). Errors: the OS refused.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let raised = rlimit::increase_nofile_limit(hard)?;
    Ok((soft, raised, hard))
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}
