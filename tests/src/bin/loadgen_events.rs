//! `loadgen-events`: the interaction-layer benchmark (issue 3, "Measure").
//!
//! N WebSocket clients join one room (`GET /api/rooms/{room}/ws`, protobuf frames); a fraction
//! of them move their cursor at a fixed rate, everyone chats now and then. A sample of clients
//! (the "observers") decode every frame and measure send → receipt latency of other clients'
//! cursors and chat on the same host clock; the rest read and count bytes only (decoding
//! everything for thousands of clients would measure the load generator, not the server).
//!
//! Latency stamps: a moving client encodes its send time in the cursor's x coordinate
//! (milliseconds modulo 100 s, scaled into [0, 1): f32 resolution ≈ 6 µs) and its y is fixed;
//! chat text carries the send time in nanoseconds. Server CPU and RSS come from /proc.
//! Loopback only; bounded in time; stops by itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use venue_proto::v1::{self, client_message, server_message};
use venue_tests::load::events::{batch_latencies, client_frame, decode, now_us, stamp_x};
use venue_tests::load::procstat;
use venue_tests::load::server::spawn_server;
use venue_tests::load::stats::percentile;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen-events",
    about = "Venue interaction benchmark: N WebSocket clients in one room"
)]
struct Args {
    /// Base URL of a running venue (loopback only). Ignored with --spawn-server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// PID of the server (for CPU and memory), implied by --spawn-server.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start this `venue` binary on free loopback ports and stop it at the end.
    #[arg(long)]
    spawn_server: Option<PathBuf>,
    /// Extra argument for the spawned server (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Room to join.
    #[arg(long, default_value = "main")]
    room: String,
    /// Number of WebSocket clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Fraction of clients moving their cursor.
    #[arg(long, default_value_t = 0.1)]
    cursor_fraction: f64,
    /// Cursor moves per second of a moving client.
    #[arg(long, default_value_t = 20)]
    cursor_hz: u32,
    /// Seconds between one client's chat messages.
    #[arg(long, default_value_t = 60)]
    chat_interval_secs: u64,
    /// Clients that decode every frame and measure latency.
    #[arg(long, default_value_t = 50)]
    observers: usize,
    /// Connections opened at once while joining.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Time after everyone joined before measuring, seconds.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Counters shared by all clients.
#[derive(Default)]
struct Shared {
    measuring: std::sync::atomic::AtomicBool,
    bytes: AtomicU64,
    frames: AtomicU64,
    connected: AtomicUsize,
    failed: AtomicUsize,
    closed_by_server: AtomicUsize,
    cursor_lat_us: Mutex<Vec<u64>>,
    chat_lat_us: Mutex<Vec<u64>>,
    notices: AtomicU64,
}

fn now_ms() -> u64 {
    now_us() / 1000
}

struct ClientSpec {
    index: usize,
    moving: bool,
    observer: bool,
}

async fn client(
    url: String,
    spec: ClientSpec,
    shared: Arc<Shared>,
    end: Instant,
    chat_every: Duration,
    cursor_period: Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let connecting = tokio_tungstenite::connect_async(url.as_str()).await;
    drop(permit);
    let ws = match connecting {
        Ok((ws, _)) => ws,
        Err(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let hello = client_frame(client_message::Body::Hello(v1::ClientHello {
        protocol_version: venue_proto::PROTOCOL_VERSION,
        display_name: format!("lg-{}", spec.index),
        admin_token: String::new(),
    }));
    if tx.send(Message::Binary(hello.into())).await.is_err() {
        return;
    }
    let my_y = 0.5f32;
    let mut my_id = 0u64;
    // Spread chat over the interval.
    let mut next_chat = Instant::now() + chat_every.mul_f64((spec.index % 997) as f64 / 997.0);
    let mut cursor_tick = tokio::time::interval(cursor_period);
    cursor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else {
                    if Instant::now() < end {
                        shared.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                };
                let Message::Binary(bytes) = msg else { continue };
                if shared.measuring.load(Ordering::Relaxed) {
                    shared.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                }
                if !spec.observer && my_id != 0 {
                    continue;
                }
                let Some(m) = decode(&bytes) else { continue };
                let now = now_us();
                match m.body {
                    Some(server_message::Body::Hello(h)) => my_id = h.user_id,
                    Some(server_message::Body::Notice(_)) => { shared.notices.fetch_add(1, Ordering::Relaxed); }
                    Some(server_message::Body::Batch(b)) if spec.observer && shared.measuring.load(Ordering::Relaxed) => {
                        let (lat, chat) = batch_latencies(&b, my_id, my_y, now);
                        if !lat.is_empty() { shared.cursor_lat_us.lock().await.extend(lat); }
                        if !chat.is_empty() { shared.chat_lat_us.lock().await.extend(chat); }
                    }
                    _ => {}
                }
            }
            _ = cursor_tick.tick(), if spec.moving => {
                let f = client_frame(client_message::Body::Cursor(v1::CursorMove { x: stamp_x(now_us()), y: my_y }));
                if tx.send(Message::Binary(f.into())).await.is_err() { return; }
            }
            _ = tokio::time::sleep_until(next_chat.into()) => {
                next_chat += chat_every;
                let f = client_frame(client_message::Body::Chat(v1::ChatSend { text: format!("t={}", now_us()) }));
                if tx.send(Message::Binary(f.into())).await.is_err() { return; }
            }
            _ = tokio::time::sleep_until(end.into()) => {
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.duration_secs == 0 || args.cursor_hz == 0 {
        bail!("--clients, --duration-secs and --cursor-hz must be positive");
    }
    // Thousands of sockets: raise our own descriptor limit to the hard limit.
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut spawned = None;
    let (base, pid) = match &args.spawn_server {
        Some(path) => {
            let (s, url, _token) = spawn_server(path, &args.server_arg).await?;
            let pid = s.child.id();
            spawned = Some(s);
            (url, Some(pid))
        }
        None => (args.server.clone(), args.server_pid),
    };
    let ws_url = format!(
        "{}/api/rooms/{}/ws",
        base.replacen("http://", "ws://", 1),
        args.room
    );
    if !ws_url.starts_with("ws://127.") && !ws_url.starts_with("ws://localhost") {
        bail!("loopback servers only");
    }
    let ticks = procstat::clock_ticks_per_sec();
    let rss_before = pid.and_then(rss_kib);
    let shared = Arc::new(Shared::default());
    let moving = ((args.clients as f64) * args.cursor_fraction).round() as usize;
    let join_start = Instant::now();
    let total_secs = args.warmup_secs + args.duration_secs;
    // Everyone stays until `end`; joining is part of the run time budget (≤ 120 s).
    let end = Instant::now() + Duration::from_secs(total_secs + 120);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let mut handles = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let spec = ClientSpec {
            index: i,
            moving: i < moving,
            observer: i >= args.clients.saturating_sub(args.observers),
        };
        let permit = sem.clone().acquire_owned().await.context("semaphore")?;
        let (url, shared2) = (ws_url.clone(), shared.clone());
        let chat_every = Duration::from_secs(args.chat_interval_secs.max(1));
        let period = Duration::from_secs(1) / args.cursor_hz;
        handles.push(tokio::spawn(client(
            url, spec, shared2, end, chat_every, period, permit,
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < args.clients
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let joined_s = join_start.elapsed().as_secs_f64();
    eprintln!(
        "loadgen-events: {} connected, {} failed after {joined_s:.1} s; warming up",
        shared.connected.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let cpu0 = match pid {
        Some(p) => Some(procstat::cpu_time(&p.to_string(), ticks)?),
        None => None,
    };
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = match pid {
        Some(p) => Some(procstat::cpu_time(&p.to_string(), ticks)?),
        None => None,
    };
    let rss_after = pid.and_then(rss_kib);
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    for h in &handles {
        h.abort();
    }
    let mut cursor = shared.cursor_lat_us.lock().await.clone();
    let mut chat = shared.chat_lat_us.lock().await.clone();
    cursor.sort_unstable();
    chat.sort_unstable();
    let ms = |v: &[u64], p: f64| percentile(v, p).map(|x| x as f64 / 1000.0);
    let connected = shared.connected.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "clients": args.clients,
        "connected": connected,
        "failed": shared.failed.load(Ordering::Relaxed),
        "closed_by_server": shared.closed_by_server.load(Ordering::Relaxed),
        "moving_clients": moving,
        "cursor_hz": args.cursor_hz,
        "chat_interval_s": args.chat_interval_secs,
        "observers": args.observers,
        "join_s": joined_s,
        "window_s": window,
        "server_cpu_s": server_cpu_s,
        "server_cpu_percent": server_cpu_s.map(|c| 100.0 * c / window),
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_kib_per_client": match (rss_before, rss_after) { (Some(a), Some(b)) if connected > 0 => Some((b.saturating_sub(a)) as f64 / connected as f64), _ => None },
        "bytes_per_client_per_s": shared.bytes.load(Ordering::Relaxed) as f64 / window / connected.max(1) as f64,
        "frames_per_client_per_s": shared.frames.load(Ordering::Relaxed) as f64 / window / connected.max(1) as f64,
        "cursor_latency_ms": { "samples": cursor.len(), "p50": ms(&cursor, 50.0), "p99": ms(&cursor, 99.0), "max": cursor.last().map(|x| *x as f64 / 1000.0) },
        "chat_latency_ms": { "samples": chat.len(), "p50": ms(&chat, 50.0), "p99": ms(&chat, 99.0), "max": chat.last().map(|x| *x as f64 / 1000.0) },
        "notices": shared.notices.load(Ordering::Relaxed),
        "server_time_ms_at_end": now_ms(),
    });
    drop(spawned);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report:#}");
    }
    Ok(())
}
