//! `loadgen`: the SFU forwarding benchmark (DESIGN.md §4 "Benchmarks are not tests", issue 2
//! "Measure").
//!
//! One synthetic publisher (H.264 Annex-B frames at `--video-bitrate` and `--fps` with a
//! keyframe each second or on PLI/FIR, plus 20 ms Opus frames) and `--subscribers` WHEP
//! viewers, all real str0m peers in this process on their own loopback UDP sockets with ICE and
//! DTLS-SRTP, against a running `venue` (or one it spawns with `--spawn-server`).
//!
//! Every slice and Opus packet carries its send time (see `venue_tests::load::media`), so
//! viewers measure the forwarding delay on the same clock. After `--warmup-secs` it measures
//! for `--duration-secs`: RTP packets the viewers received, the server's CPU time from
//! `/proc/PID/stat`, delay percentiles, loss from sequence gaps, and how fast viewers got their
//! first video packet. Then it deletes its sessions and stops. Everything stays on loopback.

use std::net::UdpSocket as StdUdpSocket;
use std::path::PathBuf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use venue_proto::v1::server_message;
use venue_tests::load::events;
use venue_tests::load::http::{self, Server};
use venue_tests::load::server::spawn_server;
use venue_tests::load::stats::{SeqLoss, percentile};
use venue_tests::load::{media, procstat};

/// Phases shared with the peers.
const PHASE_SETUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// Longest a peer's event loop sleeps before it looks at the phase again.
const POLL_CAP: Duration = Duration::from_millis(100);

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Venue SFU benchmark: one synthetic WHIP publisher, N WHEP subscribers on loopback"
)]
struct Args {
    /// Base URL of a running venue (loopback only). Ignored with --spawn-server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Admin API token of that server (also VENUE_ADMIN_TOKEN).
    #[arg(long, env = "VENUE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Room to publish into and view.
    #[arg(long, default_value = "main")]
    room: String,
    /// Number of WHEP subscribers.
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Time between all subscribers being set up and the measurement window, seconds.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// PID of the server process whose CPU time is measured (implied by --spawn-server).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Cluster runs: a node's base URL the WHEP subscribers join (repeat for several: they
    /// are spread round-robin). Default: --server. The publisher always goes to --server.
    #[arg(long, value_name = "URL")]
    view_server: Vec<String>,
    /// Another process whose CPU over the window is reported, `NAME=PID` (repeat), e.g. each
    /// cluster node: `--measure-pid edge1=1234`.
    #[arg(long, value_name = "NAME=PID")]
    measure_pid: Vec<String>,
    /// Start this `venue` binary on free loopback ports with a temporary data dir, measure it,
    /// and stop it at the end.
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<PathBuf>,
    /// Extra argument for the spawned server (repeat for several), e.g. --server-arg=--media-shards=1.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Worker threads running the subscribers (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// WHEP offers in flight at once while subscribers join.
    #[arg(long, default_value_t = 16)]
    connect_concurrency: usize,
    /// Longest wait for every subscriber to receive video before warm-up starts anyway, seconds.
    #[arg(long, default_value_t = 60)]
    connect_timeout_secs: u64,
    /// Video bitrate of the synthetic publisher, bit/s.
    #[arg(long, default_value_t = 2_500_000)]
    video_bitrate: u64,
    /// Video frame rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Opus bitrate, bit/s (20 ms frames).
    #[arg(long, default_value_t = 128_000)]
    audio_bitrate: u64,
    /// Publish over RTMP instead of WHIP (issue 4's bridge latency): the venue RTMP listener,
    /// `host:port`. With --spawn-server, `--rtmp spawn` picks a free loopback port and passes
    /// `--rtmp-listen` to the server. The publisher sends FLV AVC tags (one per picture, the
    /// slice stamped with its send time) over one TCP connection; video only, so the viewers'
    /// video delay is RTMP message written → RTP received.
    #[arg(long, value_name = "ADDR")]
    rtmp: Option<String>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Interaction workload over the viewers' data channels (issue 3): every viewer opens
    /// `venue` + `venue-lossy`, joins with a name, a fraction moves its cursor, all chat.
    #[arg(long)]
    events: bool,
    /// With --events: fraction of viewers moving their cursor.
    #[arg(long, default_value_t = 0.1)]
    cursor_fraction: f64,
    /// With --events: cursor moves per second of a moving viewer.
    #[arg(long, default_value_t = 20)]
    cursor_hz: u32,
    /// With --events: seconds between one viewer's chat messages.
    #[arg(long, default_value_t = 60)]
    chat_interval_secs: u64,
}

/// The interaction workload of one run (`--events`).
#[derive(Debug, Clone, Copy)]
struct EventsCfg {
    moving: usize,
    cursor_period: Duration,
    chat_every: Duration,
}

/// What the viewers measured of the interaction layer.
#[derive(Debug, Default)]
struct EventsStats {
    cursor_lat_us: Vec<u64>,
    chat_lat_us: Vec<u64>,
    bytes: u64,
    frames: u64,
    joined: usize,
}

/// State shared by the orchestrator and all subscriber tasks.
struct Ctx {
    /// Where subscribers join (`--view-server`, else `server`), round-robin by index.
    view_servers: Vec<Server>,
    room: String,
    phase: AtomicU8,
    permits: tokio::sync::Semaphore,
    /// RTP packets received by all subscribers (from the start).
    rx_packets: AtomicU64,
    ice_connected: AtomicUsize,
    got_video: AtomicUsize,
    failed: AtomicUsize,
    /// `--events` workload, if any.
    events: Option<EventsCfg>,
    next_index: AtomicUsize,
    events_stats: std::sync::Mutex<EventsStats>,
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct SubReport {
    error: Option<String>,
    connected: bool,
    /// WHEP POST sent → 201 read.
    answer_time: Option<Duration>,
    /// WHEP POST sent → first video RTP packet received.
    first_video: Option<Duration>,
    video_delay_us: Vec<u64>,
    audio_delay_us: Vec<u64>,
    expected: u64,
    lost: u64,
    window_packets: u64,
    deleted: bool,
}

/// Counters of the publisher thread.
#[derive(Default)]
struct PubShared {
    connected: AtomicBool,
    stop: AtomicBool,
    rtp_sent: AtomicU64,
    frames: AtomicU64,
    keyframes: AtomicU64,
    keyframe_requests: AtomicU64,
}

struct PubConfig {
    fps: u32,
    video_bitrate: u64,
    audio_bitrate: u64,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.subscribers == 0 || args.fps == 0 || args.duration_secs == 0 {
        bail!("--subscribers, --fps and --duration-secs must be positive");
    }
    media::epoch();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    // The server: spawned or given.
    let mut spawned = None;
    let mut args = args;
    if args.rtmp.as_deref() == Some("spawn") {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        args.rtmp = Some(format!("127.0.0.1:{port}"));
        args.server_arg
            .push(format!("--rtmp-listen=127.0.0.1:{port}"));
    }
    let (server, admin_token, server_pid) = if let Some(path) = &args.spawn_server {
        let (s, url, token) = spawn_server(path, &args.server_arg).await?;
        let pid = s.child.id();
        spawned = Some(s);
        (Server::parse(&url)?, token, Some(pid))
    } else {
        let token = args
            .admin_token
            .clone()
            .context("--admin-token (or VENUE_ADMIN_TOKEN) is required without --spawn-server")?;
        (Server::parse(&args.server)?, token, args.server_pid)
    };
    let result = bench(&args, server, &admin_token, server_pid).await;
    drop(spawned);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

/// The path part of a `Location` (absolute URL or path).
fn location_path(loc: &str) -> String {
    if let Some(rest) = loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => rest.get(i..).unwrap_or("/").to_owned(),
            None => "/".to_owned(),
        }
    } else {
        loc.to_owned()
    }
}

async fn admin_json(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let auth = format!("Bearer {token}");
    let body = serde_json::to_vec(&body)?;
    let r = http::request(
        server,
        method,
        path,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await?;
    if !(200..300).contains(&r.status) {
        bail!("{method} {path}: {} {}", r.status, r.text());
    }
    if r.body.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::from_slice(&r.body)?)
}

async fn bench(
    args: &Args,
    server: Server,
    admin_token: &str,
    server_pid: Option<u32>,
) -> Result<serde_json::Value> {
    let ticks = procstat::clock_ticks_per_sec();
    let room = &args.room;

    // 1. A streamer on stage slot 0.
    let created = admin_json(
        &server,
        admin_token,
        "POST",
        &format!("/api/admin/rooms/{room}/streamers"),
        serde_json::json!({ "name": "loadgen" }),
    )
    .await?;
    let streamer_id = created
        .get("id")
        .and_then(|v| v.as_i64())
        .context("streamer without id")?;
    let stream_key = created
        .get("stream_key")
        .and_then(|v| v.as_str())
        .context("streamer without stream_key")?
        .to_owned();
    admin_json(
        &server,
        admin_token,
        "PUT",
        &format!("/api/admin/rooms/{room}/stage"),
        serde_json::json!({ "layout": 1, "slots": [streamer_id] }),
    )
    .await?;

    // 2. The publisher on its own thread.
    let pub_shared = Arc::new(PubShared::default());
    let pub_cfg = PubConfig {
        fps: args.fps,
        video_bitrate: args.video_bitrate,
        audio_bitrate: args.audio_bitrate,
    };
    let (pub_thread, whip_location) = match &args.rtmp {
        Some(addr) => {
            let addr: std::net::SocketAddr = addr.parse().context("--rtmp host:port")?;
            let shared = pub_shared.clone();
            let key = stream_key.clone();
            let handle = std::thread::Builder::new()
                .name("loadgen-rtmp".into())
                .spawn(move || rtmp_publisher(addr, &key, pub_cfg, &shared))?;
            (handle, None)
        }
        None => start_publisher(&server, &stream_key, pub_cfg, pub_shared.clone()).await?,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pub_shared.connected.load(Ordering::Relaxed) {
        if pub_thread.is_finished() || Instant::now() > deadline {
            pub_shared.stop.store(true, Ordering::Relaxed);
            let err = match pub_thread.join() {
                Ok(Err(e)) => format!("{e:#}"),
                _ => "no ICE/DTLS connection within 10 s".to_owned(),
            };
            bail!("publisher did not connect: {err}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("loadgen: publisher connected");

    // 3. Subscribers on worker threads.
    let view_servers = if args.view_server.is_empty() {
        vec![server.clone()]
    } else {
        args.view_server
            .iter()
            .map(|u| Server::parse(u))
            .collect::<Result<Vec<_>>>()?
    };
    let ctx = Arc::new(Ctx {
        view_servers,
        room: room.clone(),
        phase: AtomicU8::new(PHASE_SETUP),
        permits: tokio::sync::Semaphore::new(args.connect_concurrency.max(1)),
        rx_packets: AtomicU64::new(0),
        ice_connected: AtomicUsize::new(0),
        got_video: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        events: args.events.then(|| EventsCfg {
            moving: ((args.subscribers as f64) * args.cursor_fraction).round() as usize,
            cursor_period: Duration::from_secs(1) / args.cursor_hz.max(1),
            chat_every: Duration::from_secs(args.chat_interval_secs.max(1)),
        }),
        next_index: AtomicUsize::new(0),
        events_stats: std::sync::Mutex::new(EventsStats::default()),
    });
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, args.subscribers);
    let n = args.subscribers;
    let setup_start = Instant::now();
    let mut workers = Vec::new();
    for t in 0..threads {
        let count = (n + threads - 1 - t) / threads;
        let ctx = ctx.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("loadgen-sub-{t}"))
                .spawn(move || run_worker(ctx, count))?,
        );
    }
    let connect_deadline = setup_start + Duration::from_secs(args.connect_timeout_secs);
    let mut last_print = Instant::now();
    loop {
        let got = ctx.got_video.load(Ordering::Relaxed);
        let failed = ctx.failed.load(Ordering::Relaxed);
        if got + failed >= n || Instant::now() > connect_deadline {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen: joining… {got}/{n} receiving video, {} ICE-connected, {failed} failed",
                ctx.ice_connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let setup_time = setup_start.elapsed();
    eprintln!(
        "loadgen: {} of {n} subscribers receiving video after {:.1} s; warming up {} s",
        ctx.got_video.load(Ordering::Relaxed),
        setup_time.as_secs_f64(),
        args.warmup_secs
    );
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;

    // 4. The measurement window.
    let server_pid_s = server_pid.map(|p| p.to_string());
    let server_cpu0 = match &server_pid_s {
        Some(p) => Some(procstat::cpu_time(p, ticks)?),
        None => None,
    };
    let measured: Vec<(String, String)> = args
        .measure_pid
        .iter()
        .map(|m| {
            m.split_once('=')
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
                .context("--measure-pid NAME=PID")
        })
        .collect::<Result<_>>()?;
    let measured_cpu0: Vec<Duration> = measured
        .iter()
        .map(|(_, p)| procstat::cpu_time(p, ticks))
        .collect::<Result<_>>()?;
    let self_cpu0 = procstat::cpu_time("self", ticks)?;
    let rx0 = ctx.rx_packets.load(Ordering::Relaxed);
    let sent0 = pub_shared.rtp_sent.load(Ordering::Relaxed);
    let loadavg0 = loadavg();
    let t0 = Instant::now();
    ctx.phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let window_end = t0 + Duration::from_secs(args.duration_secs);
    let mut last_rx = rx0;
    while Instant::now() < window_end {
        let step = window_end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(5));
        tokio::time::sleep(step).await;
        let rx = ctx.rx_packets.load(Ordering::Relaxed);
        eprintln!(
            "loadgen: measuring… {:.0} s, {} packets received since last report",
            t0.elapsed().as_secs_f64(),
            rx - last_rx
        );
        last_rx = rx;
    }
    ctx.phase.store(PHASE_STOP, Ordering::Relaxed);
    let window = t0.elapsed();
    let loadavg1 = loadavg();
    let rx1 = ctx.rx_packets.load(Ordering::Relaxed);
    let sent1 = pub_shared.rtp_sent.load(Ordering::Relaxed);
    let self_cpu1 = procstat::cpu_time("self", ticks)?;
    let measured_cpu: serde_json::Map<String, serde_json::Value> = measured
        .iter()
        .zip(&measured_cpu0)
        .map(|((name, pid), c0)| {
            let pct = procstat::cpu_time(pid, ticks)
                .map(|c1| c1.saturating_sub(*c0).as_secs_f64() / window.as_secs_f64() * 100.0)
                .ok();
            (name.clone(), serde_json::json!(pct))
        })
        .collect();
    let server_cpu1 = match &server_pid_s {
        Some(p) => Some(procstat::cpu_time(p, ticks)?),
        None => None,
    };

    // 5. Tear down: subscribers DELETE their sessions, then the publisher.
    let mut reports = Vec::new();
    for w in workers {
        match w.join() {
            Ok(Ok(r)) => reports.extend(r),
            Ok(Err(e)) => eprintln!("loadgen: worker failed: {e:#}"),
            Err(_) => eprintln!("loadgen: worker panicked"),
        }
    }
    pub_shared.stop.store(true, Ordering::Relaxed);
    let pub_result = pub_thread.join();
    let auth = format!("Bearer {stream_key}");
    let whip_deleted = match &whip_location {
        Some(loc) => http::request(
            &server,
            "DELETE",
            &location_path(loc),
            &[("Authorization", auth.as_str())],
            b"",
        )
        .await
        .map(|r| r.status)
        .ok(),
        None => None,
    };
    let pub_error = match pub_result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some("publisher thread panicked".to_owned()),
    };

    // 6. The report.
    let secs = window.as_secs_f64();
    let rx = rx1 - rx0;
    let sent = sent1 - sent0;
    let server_cpu = match (server_cpu0, server_cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let self_cpu = self_cpu1.saturating_sub(self_cpu0).as_secs_f64();
    let mut vd: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.video_delay_us.iter().copied())
        .collect();
    let mut ad: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.audio_delay_us.iter().copied())
        .collect();
    vd.sort_unstable();
    ad.sort_unstable();
    let mut first: Vec<u64> = reports
        .iter()
        .filter_map(|r| r.first_video)
        .map(|d| d.as_micros() as u64)
        .collect();
    first.sort_unstable();
    let mut answer: Vec<u64> = reports
        .iter()
        .filter_map(|r| r.answer_time)
        .map(|d| d.as_micros() as u64)
        .collect();
    answer.sort_unstable();
    let expected: u64 = reports.iter().map(|r| r.expected).sum();
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    let connected = reports.iter().filter(|r| r.connected).count();
    let with_video = reports.iter().filter(|r| r.first_video.is_some()).count();
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    let deleted = reports.iter().filter(|r| r.deleted).count();
    let mut errors: Vec<String> = reports.iter().filter_map(|r| r.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let ratio = |a: f64, b: f64| if b > 0.0 { Some(a / b) } else { None };

    let events_report = ctx.events.map(|cfg| {
        let mut st = ctx
            .events_stats
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default();
        st.cursor_lat_us.sort_unstable();
        st.chat_lat_us.sort_unstable();
        serde_json::json!({
            "moving_viewers": cfg.moving,
            "cursor_hz": args.cursor_hz,
            "chat_interval_s": args.chat_interval_secs,
            "joined": st.joined,
            "bytes_per_viewer_per_s": st.bytes as f64 / secs / with_video.max(1) as f64,
            "frames_per_viewer_per_s": st.frames as f64 / secs / with_video.max(1) as f64,
            "cursor_latency_ms": {
                "samples": st.cursor_lat_us.len(),
                "p50": ms(percentile(&st.cursor_lat_us, 50.0)),
                "p99": ms(percentile(&st.cursor_lat_us, 99.0)),
            },
            "chat_latency_ms": {
                "samples": st.chat_lat_us.len(),
                "p50": ms(percentile(&st.chat_lat_us, 50.0)),
                "p99": ms(percentile(&st.chat_lat_us, 99.0)),
            },
        })
    });
    Ok(serde_json::json!({
        "events": events_report,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "loadavg_before": loadavg0,
        "loadavg_after": loadavg1,
        "subscribers": n,
        "threads": threads,
        "duration_s": secs,
        "warmup_s": args.warmup_secs,
        "setup_s": setup_time.as_secs_f64(),
        "server_pid": server_pid,
        "processes_cpu_percent": measured_cpu,
        "publisher": {
            "video_bitrate_bps": args.video_bitrate,
            "fps": args.fps,
            "audio_bitrate_bps": args.audio_bitrate,
            "rtp_packets_sent": sent,
            "rtp_packets_sent_per_s": sent as f64 / secs,
            "frames": pub_shared.frames.load(Ordering::Relaxed),
            "keyframes": pub_shared.keyframes.load(Ordering::Relaxed),
            "keyframe_requests": pub_shared.keyframe_requests.load(Ordering::Relaxed),
            "error": pub_error,
            "whip_delete_status": whip_deleted,
        },
        "rtp_packets_received": rx,
        "rtp_packets_received_per_s": rx as f64 / secs,
        "delivery_ratio": ratio(rx as f64, sent as f64 * with_video as f64),
        "server_cpu_s": server_cpu,
        "server_cpu_percent": server_cpu.map(|c| c / secs * 100.0),
        "forwarded_packets_per_server_cpu_s": server_cpu.and_then(|c| ratio(rx as f64, c)),
        "loadgen_cpu_percent": self_cpu / secs * 100.0,
        "delay_ms": {
            "video_frame_start": {
                "samples": vd.len(),
                "p50": ms(percentile(&vd, 50.0)),
                "p99": ms(percentile(&vd, 99.0)),
                "max": ms(vd.last().copied()),
            },
            "audio": {
                "samples": ad.len(),
                "p50": ms(percentile(&ad, 50.0)),
                "p99": ms(percentile(&ad, 99.0)),
                "max": ms(ad.last().copied()),
            },
        },
        "loss": {
            "expected": expected,
            "lost": lost,
            "percent": ratio(lost as f64 * 100.0, expected as f64),
        },
        "connect": {
            "ice_connected": connected,
            "receiving_video": with_video,
            "failed": failed,
            "errors": errors,
            "whep_answer_ms_p50": ms(percentile(&answer, 50.0)),
            "whep_answer_ms_p95": ms(percentile(&answer, 95.0)),
            "first_video_packet_ms_p50": ms(percentile(&first, 50.0)),
            "first_video_packet_ms_p95": ms(percentile(&first, 95.0)),
            "first_video_packet_ms_max": ms(first.last().copied()),
            "sessions_deleted": deleted,
        },
    }))
}

/// The 1-minute load average of the machine (other work competing for the cores).
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn print_human(r: &serde_json::Value) {
    let f = |p: &str| -> String {
        match r.pointer(p) {
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(x) if n.is_f64() => format!("{x:.2}"),
                _ => n.to_string(),
            },
            Some(serde_json::Value::Null) | None => "n/a".to_owned(),
            Some(v) => v.to_string(),
        }
    };
    println!("loadgen report");
    if let Some(ev) = r.get("events").filter(|e| !e.is_null()) {
        println!("  events (data channels) {ev}");
    }
    println!(
        "  subscribers            {} ({} ICE-connected, {} receiving video, {} failed)",
        f("/subscribers"),
        f("/connect/ice_connected"),
        f("/connect/receiving_video"),
        f("/connect/failed")
    );
    println!(
        "  window                 {} s after {} s warm-up",
        f("/duration_s"),
        f("/warmup_s")
    );
    println!(
        "  publisher RTP sent     {} ({} /s)",
        f("/publisher/rtp_packets_sent"),
        f("/publisher/rtp_packets_sent_per_s")
    );
    println!(
        "  subscribers RTP recv   {} ({} /s, delivery ratio {} = recv / (sent × viewers))",
        f("/rtp_packets_received"),
        f("/rtp_packets_received_per_s"),
        f("/delivery_ratio")
    );
    println!(
        "  server CPU             {} s ({} %)",
        f("/server_cpu_s"),
        f("/server_cpu_percent")
    );
    println!(
        "  forwarded pkts / CPU-s {}",
        f("/forwarded_packets_per_server_cpu_s")
    );
    println!(
        "  loadgen CPU            {} % (load average {} → {} on {} cores)",
        f("/loadgen_cpu_percent"),
        f("/loadavg_before"),
        f("/loadavg_after"),
        f("/cores")
    );
    println!(
        "  delay video ms         p50 {} p99 {} max {}",
        f("/delay_ms/video_frame_start/p50"),
        f("/delay_ms/video_frame_start/p99"),
        f("/delay_ms/video_frame_start/max")
    );
    println!(
        "  delay audio ms         p50 {} p99 {} max {}",
        f("/delay_ms/audio/p50"),
        f("/delay_ms/audio/p99"),
        f("/delay_ms/audio/max")
    );
    println!(
        "  loss                   {} % ({} of {})",
        f("/loss/percent"),
        f("/loss/lost"),
        f("/loss/expected")
    );
    println!(
        "  WHEP answer ms         p50 {} p95 {}",
        f("/connect/whep_answer_ms_p50"),
        f("/connect/whep_answer_ms_p95")
    );
    println!(
        "  first video packet ms  p50 {} p95 {} max {}",
        f("/connect/first_video_packet_ms_p50"),
        f("/connect/first_video_packet_ms_p95"),
        f("/connect/first_video_packet_ms_max")
    );
    if let Some(e) = r.pointer("/connect/errors").and_then(|v| v.as_array())
        && !e.is_empty()
    {
        println!("  errors                 {e:?}");
    }
    if let Some(e) = r.pointer("/publisher/error").and_then(|v| v.as_str()) {
        println!("  publisher error        {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

/// The RTMP publisher (`--rtmp`): handshake, connect `live`, publish the key, an AVC sequence
/// header, then one FLV AVC tag per picture at `fps` (a keyframe each second, sizes as the WHIP
/// publisher's), the slice stamped with its send time. rml_rtmp's client session does the
/// protocol; this thread does blocking IO on loopback.
fn rtmp_publisher(
    addr: std::net::SocketAddr,
    key: &str,
    cfg: PubConfig,
    sh: &PubShared,
) -> Result<()> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    use rml_rtmp::time::RtmpTimestamp;
    use std::io::{Read, Write};

    let mut tcp = std::net::TcpStream::connect(addr).context("connecting to the RTMP port")?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hs = Handshake::new(PeerType::Client);
    tcp.write_all(
        &hs.generate_outbound_p0_and_p1()
            .map_err(|e| anyhow!("{e:?}"))?,
    )?;
    let rest = loop {
        let n = tcp.read(&mut buf)?;
        if n == 0 {
            bail!("RTMP server closed during the handshake");
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| anyhow!("{e:?}"))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                tcp.write_all(&response_bytes)?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                tcp.write_all(&response_bytes)?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, init) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| anyhow!("{e:?}"))?;
    let send = |tcp: &mut std::net::TcpStream, results: Vec<ClientSessionResult>| -> Result<bool> {
        let mut accepted = false;
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => tcp.write_all(&p.bytes)?,
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestAccepted
                    | ClientSessionEvent::PublishRequestAccepted,
                ) => accepted = true,
                ClientSessionResult::RaisedEvent(e) => {
                    if matches!(e, ClientSessionEvent::ConnectionRequestRejected { .. }) {
                        bail!("RTMP request rejected: {e:?}");
                    }
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(accepted)
    };
    send(&mut tcp, init)?;
    let mut pending = rest;
    // Connect, then publish: each waits for the server's answer.
    for step in 0..2 {
        let request = if step == 0 {
            session.request_connection("live".into())
        } else {
            session.request_publishing(key.to_owned(), PublishRequestType::Live)
        }
        .map_err(|e| anyhow!("{e:?}"))?;
        send(&mut tcp, vec![request])?;
        loop {
            let results = session
                .handle_input(&pending)
                .map_err(|e| anyhow!("{e:?}"))?;
            pending.clear();
            if send(&mut tcp, results)? {
                break;
            }
            let n = tcp.read(&mut buf)?;
            if n == 0 {
                bail!("RTMP server closed the connection (key refused?)");
            }
            pending.extend_from_slice(&buf[..n]);
        }
    }
    tcp.set_nonblocking(true)?;
    sh.connected.store(true, Ordering::Relaxed);
    eprintln!("loadgen: RTMP publisher publishing");

    // SPS (640x360 constrained baseline) and PPS for the AVC sequence header.
    let sps: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00,
    ];
    let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    let mut config = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
    config.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    config.extend_from_slice(sps);
    config.push(1);
    config.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    config.extend_from_slice(pps);
    let packet = session
        .publish_video_data(config.into(), RtmpTimestamp::new(0), false)
        .map_err(|e| anyhow!("{e:?}"))?;
    tcp.set_nonblocking(false)?;
    send(&mut tcp, vec![packet])?;
    let fps = u64::from(cfg.fps);
    let frame_iv = Duration::from_secs(1).div_f64(cfg.fps as f64);
    let unit = (cfg.video_bitrate / 8 / (fps + 2)) as usize;
    let start = Instant::now();
    let mut frame_no = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let due = start + frame_iv.mul_f64(frame_no as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let key = frame_no.is_multiple_of(fps);
        let size = if key { unit * 3 } else { unit };
        let stamp = media::nanos_since_epoch(Instant::now());
        // One slice as an AVCC unit: the Annex-B frame's last unit (the stamped slice).
        let annexb = media::h264_frame(false, stamp, size);
        let slice = &annexb[4..];
        let mut tag = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        let mut unit_bytes = slice.to_vec();
        if key {
            unit_bytes[0] = 0x65;
        }
        tag.extend_from_slice(&(unit_bytes.len() as u32).to_be_bytes());
        tag.extend_from_slice(&unit_bytes);
        let ms = (frame_no * 1000 / fps) as u32;
        let packet = session
            .publish_video_data(tag.into(), RtmpTimestamp::new(ms), false)
            .map_err(|e| anyhow!("{e:?}"))?;
        send(&mut tcp, vec![packet])?;
        sh.frames.fetch_add(1, Ordering::Relaxed);
        if key {
            sh.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        // Drain what the server sent (acknowledgements) without blocking.
        tcp.set_nonblocking(true)?;
        loop {
            match tcp.read(&mut buf) {
                Ok(0) => bail!("RTMP server closed the connection"),
                Ok(n) => {
                    let _ = session.handle_input(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        tcp.set_nonblocking(false)?;
        frame_no += 1;
    }
    Ok(())
}

/// Creates the publishing peer, runs the WHIP exchange and starts its thread.
async fn start_publisher(
    server: &Server,
    stream_key: &str,
    cfg: PubConfig,
    shared: Arc<PubShared>,
) -> Result<(std::thread::JoinHandle<Result<()>>, Option<String>)> {
    let sock = StdUdpSocket::bind("127.0.0.1:0")?;
    let local = sock.local_addr()?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut api = rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().context("no SDP offer")?;
    let auth = format!("Bearer {stream_key}");
    let r = http::request(
        server,
        "POST",
        "/api/whip",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/sdp"),
        ],
        offer.to_sdp_string().as_bytes(),
    )
    .await?;
    if r.status != 201 {
        bail!("WHIP POST: {} {}", r.status, r.text());
    }
    let location = r.header("location").map(str::to_owned);
    let answer = SdpAnswer::from_sdp_string(&r.text()).context("WHIP answer")?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .context("accepting WHIP answer")?;
    let handle = std::thread::Builder::new()
        .name("loadgen-pub".into())
        .spawn(move || publisher_loop(rtc, sock, video, audio, cfg, &shared))?;
    Ok((handle, location))
}

fn publisher_loop(
    mut rtc: Rtc,
    sock: StdUdpSocket,
    video: Mid,
    audio: Mid,
    cfg: PubConfig,
    sh: &PubShared,
) -> Result<()> {
    let local = sock.local_addr()?;
    let mut buf = vec![0u8; 2048];
    let fps = u64::from(cfg.fps);
    let frame_iv = Duration::from_secs(1).div_f64(cfg.fps as f64);
    let audio_iv = Duration::from_millis(20);
    // Bytes: 1 keyframe (3 units) + (fps - 1) delta frames (1 unit) per second.
    let unit = (cfg.video_bitrate / 8 / (fps + 2)) as usize;
    let audio_size = (cfg.audio_bitrate / 8 / 50) as usize;
    let mut media_start: Option<Instant> = None;
    let mut pts = None;
    let (mut frame_no, mut audio_no, mut last_key) = (0u64, 0u64, 0u64);
    let mut want_key = true;
    let at = |start: Instant, iv: Duration, n: u64| start + iv.mul_f64(n as f64);
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            rtc.disconnect();
            return Ok(());
        }
        // Media due now.
        if let (Some(start), Some((vpt, apt))) = (media_start, pts) {
            let now = Instant::now();
            if now >= at(start, frame_iv, frame_no) {
                let key = want_key || frame_no >= last_key + fps;
                if key {
                    want_key = false;
                    last_key = frame_no;
                    sh.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                let size = if key { unit * 3 } else { unit };
                let stamp = media::nanos_since_epoch(Instant::now());
                let frame = media::h264_frame(key, stamp, size);
                let rtp_time = MediaTime::from_90khz(frame_no * 90_000 / fps);
                rtc.writer(video)
                    .context("no video writer")?
                    .write(vpt, now, rtp_time, frame)
                    .context("writing video")?;
                sh.frames.fetch_add(1, Ordering::Relaxed);
                frame_no += 1;
                // Fell more than a second behind (a stall): skip, do not burst.
                if now.saturating_duration_since(at(start, frame_iv, frame_no))
                    > Duration::from_secs(1)
                {
                    frame_no = (now.duration_since(start).as_secs_f64() / frame_iv.as_secs_f64())
                        as u64
                        + 1;
                }
            }
            if now >= at(start, audio_iv, audio_no) {
                let stamp = media::nanos_since_epoch(Instant::now());
                let rtp_time = MediaTime::new(audio_no * 960, Frequency::FORTY_EIGHT_KHZ);
                rtc.writer(audio)
                    .context("no audio writer")?
                    .write(apt, now, rtp_time, media::opus_frame(stamp, audio_size))
                    .context("writing audio")?;
                audio_no += 1;
                if now.saturating_duration_since(at(start, audio_iv, audio_no))
                    > Duration::from_secs(1)
                {
                    audio_no = (now.duration_since(start).as_secs_f64() / 0.02) as u64 + 1;
                }
            }
        }
        // Drain str0m.
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    if t.destination.ip().is_loopback() {
                        if media::is_rtp(&t.contents) {
                            sh.rtp_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = sock.send_to(&t.contents, t.destination);
                    }
                }
                Output::Timeout(t) => break t,
                Output::Event(e) => match e {
                    Event::Connected => {
                        let v = rtc.writer(video).context("no video writer")?;
                        let vpt = v
                            .payload_params()
                            .find(|p| {
                                p.spec().codec == Codec::H264
                                    && p.spec().format.packetization_mode == Some(1)
                            })
                            .map(|p| p.pt())
                            .context("the server did not accept H.264 packetization-mode=1")?;
                        let a = rtc.writer(audio).context("no audio writer")?;
                        let apt = a
                            .payload_params()
                            .find(|p| p.spec().codec == Codec::Opus)
                            .map(|p| p.pt())
                            .context("the server did not accept Opus")?;
                        pts = Some((vpt, apt));
                        media_start = Some(Instant::now());
                        sh.connected.store(true, Ordering::Relaxed);
                    }
                    Event::KeyframeRequest(_) => {
                        want_key = true;
                        sh.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("publisher ICE disconnected");
                    }
                    _ => {}
                },
            }
        };
        if !rtc.is_alive() {
            bail!("publisher peer closed");
        }
        let mut next = timeout.min(Instant::now() + POLL_CAP);
        if let Some(start) = media_start {
            next = next
                .min(at(start, frame_iv, frame_no))
                .min(at(start, audio_iv, audio_no));
        }
        let wait = next.saturating_duration_since(Instant::now());
        if wait < Duration::from_micros(100) {
            rtc.handle_input(Input::Timeout(Instant::now()))?;
            continue;
        }
        sock.set_read_timeout(Some(wait))?;
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => {
                if let Some(data) = buf.get(..n)
                    && let Ok(r) = Receive::new(Protocol::Udp, src, local, data)
                {
                    rtc.handle_input(Input::Receive(Instant::now(), r))?;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscribers

/// One worker thread: a current-thread runtime running `count` subscriber tasks.
fn run_worker(ctx: Arc<Ctx>, count: usize) -> Result<Vec<SubReport>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut handles = Vec::with_capacity(count);
        for _ in 0..count {
            handles.push(tokio::task::spawn_local(subscriber(ctx.clone())));
        }
        let mut out = Vec::with_capacity(count);
        for h in handles {
            out.push(h.await.map_err(|e| anyhow!("subscriber task: {e}"))?);
        }
        Ok(out)
    })
}

async fn subscriber(ctx: Arc<Ctx>) -> SubReport {
    let mut rep = SubReport::default();
    let mut location = None;
    if let Err(e) = subscriber_session(&ctx, &mut rep, &mut location).await {
        if rep.first_video.is_none() {
            ctx.failed.fetch_add(1, Ordering::Relaxed);
        }
        rep.error = Some(format!("{e:#}"));
    }
    if let Some((server, loc)) = location
        && let Ok(r) = http::request(&server, "DELETE", &location_path(&loc), &[], b"").await
    {
        rep.deleted = (200..300).contains(&r.status);
    }
    rep
}

async fn subscriber_session(
    ctx: &Ctx,
    rep: &mut SubReport,
    location: &mut Option<(Server, String)>,
) -> Result<()> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut api = rtc.sdp_api();
    let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let index = ctx.next_index.fetch_add(1, Ordering::Relaxed);
    let mut ev = ctx.events.map(|cfg| DcEvents::new(cfg, index));
    if ev.is_some() {
        api.add_channel("venue".into());
        api.add_channel_with_config(str0m::channel::ChannelConfig {
            label: "venue-lossy".into(),
            ordered: false,
            reliability: str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
    }
    let (offer, pending) = api.apply().context("no SDP offer")?;
    let offer = offer.to_sdp_string();

    let permit = ctx.permits.acquire().await?;
    if ctx.phase.load(Ordering::Relaxed) == PHASE_STOP {
        bail!("stopped before joining");
    }
    let t0 = Instant::now();
    let server = &ctx.view_servers[index % ctx.view_servers.len()];
    let r = http::request(
        server,
        "POST",
        &format!("/api/whep/{}", ctx.room),
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await?;
    drop(permit);
    if r.status != 201 {
        bail!("WHEP POST: {} {}", r.status, r.text().trim());
    }
    rep.answer_time = Some(t0.elapsed());
    *location = r.header("location").map(|l| (server.clone(), l.to_owned()));
    let answer = SdpAnswer::from_sdp_string(&r.text()).context("WHEP answer")?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .context("accepting WHEP answer")?;

    let mut buf = vec![0u8; 2048];
    let mut kinds: Vec<(Ssrc, bool)> = Vec::new();
    let mut losses: Vec<(Ssrc, SeqLoss)> = Vec::new();
    let mut measuring = false;
    let mut disconnected = false;
    let result = loop {
        match ctx.phase.load(Ordering::Relaxed) {
            PHASE_STOP => break Ok(()),
            PHASE_MEASURE if !measuring => {
                measuring = true;
                losses.clear();
            }
            _ => {}
        }
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    if t.destination.ip().is_loopback() {
                        let _ = sock.try_send_to(&t.contents, t.destination);
                    }
                }
                Output::Timeout(t) => break t,
                Output::Event(Event::RtpPacket(pkt)) => {
                    ctx.rx_packets.fetch_add(1, Ordering::Relaxed);
                    let ssrc = pkt.header.ssrc;
                    let is_video = match kinds.iter().find(|(s, _)| *s == ssrc) {
                        Some(&(_, v)) => v,
                        None => match rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid()) {
                            Some(mid) => {
                                kinds.push((ssrc, mid == video_mid));
                                mid == video_mid
                            }
                            None => false,
                        },
                    };
                    if is_video && rep.first_video.is_none() {
                        rep.first_video = Some(pkt.timestamp.saturating_duration_since(t0));
                        ctx.got_video.fetch_add(1, Ordering::Relaxed);
                    }
                    if measuring {
                        rep.window_packets += 1;
                        match losses.iter_mut().find(|(s, _)| *s == ssrc) {
                            Some((_, l)) => l.record(pkt.header.sequence_number),
                            None => {
                                let mut l = SeqLoss::new();
                                l.record(pkt.header.sequence_number);
                                losses.push((ssrc, l));
                            }
                        }
                        let stamp = if is_video {
                            media::h264_payload_stamp(&pkt.payload)
                        } else {
                            media::opus_payload_stamp(&pkt.payload)
                        };
                        if let Some(sent) = stamp {
                            let recv = media::nanos_since_epoch(pkt.timestamp);
                            let us = recv.saturating_sub(sent) / 1000;
                            if is_video {
                                rep.video_delay_us.push(us);
                            } else {
                                rep.audio_delay_us.push(us);
                            }
                        }
                    }
                }
                Output::Event(Event::ChannelOpen(id, label)) => {
                    if let Some(ev) = ev.as_mut() {
                        ev.opened(&mut rtc, id, &label);
                    }
                }
                Output::Event(Event::ChannelData(d)) => {
                    if let Some(ev) = ev.as_mut() {
                        ev.received(&d.data, measuring);
                    }
                }
                Output::Event(Event::Connected) => {
                    rep.connected = true;
                    ctx.ice_connected.fetch_add(1, Ordering::Relaxed);
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    disconnected = true;
                }
                Output::Event(_) => {}
            }
        };
        if disconnected {
            break Err(anyhow!("ICE disconnected"));
        }
        let mut deadline = timeout.min(Instant::now() + POLL_CAP);
        if let Some(ev) = ev.as_mut() {
            ev.send_due(&mut rtc, Instant::now());
            deadline = deadline.min(ev.next_due());
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, src) = r?;
                if let Some(data) = buf.get(..n)
                    && let Ok(recv) = Receive::new(Protocol::Udp, src, local, data)
                {
                    rtc.handle_input(Input::Receive(Instant::now(), recv))?;
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    };
    for (_, l) in &losses {
        rep.expected += l.expected();
        rep.lost += l.lost();
    }
    if let Some(ev) = ev
        && let Ok(mut st) = ctx.events_stats.lock()
    {
        st.cursor_lat_us.extend(ev.cursor_lat_us);
        st.chat_lat_us.extend(ev.chat_lat_us);
        st.bytes += ev.bytes;
        st.frames += ev.frames;
        st.joined += usize::from(ev.my_id != 0);
    }
    rtc.disconnect();
    result
}

/// One viewer's interaction workload over its data channels.
struct DcEvents {
    index: usize,
    moving: bool,
    cursor_period: Duration,
    chat_every: Duration,
    reliable: Option<str0m::channel::ChannelId>,
    lossy: Option<str0m::channel::ChannelId>,
    my_id: u64,
    next_cursor: Instant,
    next_chat: Instant,
    cursor_lat_us: Vec<u64>,
    chat_lat_us: Vec<u64>,
    bytes: u64,
    frames: u64,
}

/// The y coordinate of the benchmark's own cursors.
const BENCH_Y: f32 = 0.5;

impl DcEvents {
    fn new(cfg: EventsCfg, index: usize) -> DcEvents {
        let far = Instant::now() + Duration::from_secs(3600);
        DcEvents {
            index,
            moving: index < cfg.moving,
            cursor_period: cfg.cursor_period,
            chat_every: cfg.chat_every,
            reliable: None,
            lossy: None,
            my_id: 0,
            next_cursor: far,
            next_chat: far,
            cursor_lat_us: Vec::new(),
            chat_lat_us: Vec::new(),
            bytes: 0,
            frames: 0,
        }
    }

    fn opened(&mut self, rtc: &mut Rtc, id: str0m::channel::ChannelId, label: &str) {
        match label {
            "venue" => {
                self.reliable = Some(id);
                if let Some(mut ch) = rtc.channel(id) {
                    let _ = ch.write(true, &events::hello(&format!("dc-{}", self.index)));
                }
                let now = Instant::now();
                self.next_cursor = now + self.cursor_period;
                // Spread chat over the interval.
                self.next_chat = now + self.chat_every.mul_f64((self.index % 997) as f64 / 997.0);
            }
            "venue-lossy" => self.lossy = Some(id),
            _ => {}
        }
    }

    fn received(&mut self, data: &[u8], measuring: bool) {
        if measuring {
            self.bytes += data.len() as u64;
            self.frames += 1;
        }
        let Some(msg) = events::decode(data) else {
            return;
        };
        match msg.body {
            Some(server_message::Body::Hello(h)) => self.my_id = h.user_id,
            Some(server_message::Body::Batch(b)) if measuring => {
                let (c, m) = events::batch_latencies(&b, self.my_id, BENCH_Y, events::now_us());
                self.cursor_lat_us.extend(c);
                self.chat_lat_us.extend(m);
            }
            _ => {}
        }
    }

    fn next_due(&self) -> Instant {
        if self.moving {
            self.next_cursor.min(self.next_chat)
        } else {
            self.next_chat
        }
    }

    fn send_due(&mut self, rtc: &mut Rtc, now: Instant) {
        if self.my_id == 0 {
            return;
        }
        if self.moving && now >= self.next_cursor {
            self.next_cursor += self.cursor_period;
            if self.next_cursor < now {
                self.next_cursor = now + self.cursor_period;
            }
            if let Some(mut ch) = self.lossy.or(self.reliable).and_then(|id| rtc.channel(id)) {
                let _ = ch.write(true, &events::cursor(BENCH_Y));
            }
        }
        if now >= self.next_chat {
            self.next_chat += self.chat_every;
            if let Some(mut ch) = self.reliable.and_then(|id| rtc.channel(id)) {
                let _ = ch.write(true, &events::chat());
            }
        }
    }
}
