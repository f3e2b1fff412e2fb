//! Prometheus text exposition (`GET /metrics`), hand-written: HTTP request counts by status
//! class (counted by [`count_requests`]), gauges from the state actor, webhook delivery
//! counters.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::ApiError;

/// Counters updated by the HTTP middleware.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    http_responses: [AtomicU64; 5],
    /// RTMP ingest counters (updated by `crate::rtmp`).
    pub rtmp: RtmpCounters,
}

/// RTMP ingest counters.
#[derive(Debug, Default)]
pub struct RtmpCounters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections refused because `[rtmp] max_connections` were open.
    pub refused_over_cap: AtomicU64,
    /// Connections closed for malformed RTMP (handshake, chunk stream, AMF) input.
    pub protocol_errors: AtomicU64,
    /// Connections closed because no publish was accepted within the publish timeout.
    pub publish_timeouts: AtomicU64,
    /// AAC frames or FLV audio/video tags that did not parse or decode (dropped).
    pub bad_media: AtomicU64,
}

impl Metrics {
    fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = self.http_responses.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Middleware: counts every response by status class. Its state is the counters alone (one
/// `Arc` clone per request, not the whole `AppState`'s dozen).
pub async fn count_requests(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    metrics.record(res.status().as_u16());
    res
}

/// `GET /metrics`.
/// Appends one Prometheus counter (HELP, TYPE, value).
fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
    ));
}

pub async fn get(State(app): State<AppState>) -> Result<Response, ApiError> {
    let s = app.state.stats().await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: usize| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    };
    gauge("venue_rooms", "Rooms.", s.rooms);
    gauge(
        "venue_sessions",
        "WebRTC sessions (WHIP publishers, WHEP viewers, previews) known to the gateway.",
        s.sessions,
    );
    gauge(
        "venue_publishers_live",
        "Streamers with a publisher session up.",
        s.publishers_live,
    );
    gauge(
        "venue_viewers",
        "WHEP viewer sessions connected.",
        s.viewers,
    );
    let mut hubs = crate::hub::HubStats::default();
    for hub in app.state.hubs().await? {
        if let Ok(h) = hub.stats().await {
            hubs.users += h.users;
            hubs.frames_in += h.frames_in;
            hubs.bad_frames += h.bad_frames;
            hubs.rate_limited += h.rate_limited;
            hubs.nan_dropped += h.nan_dropped;
            hubs.closed_for_offences += h.closed_for_offences;
            hubs.batches += h.batches;
        }
    }
    let webhooks = app.webhooks.stats();
    gauge(
        "venue_rtmp_connections",
        "RTMP connections open.",
        app.metrics.rtmp.connections.load(Ordering::Relaxed) as usize,
    );
    let rtmp = &app.metrics.rtmp;
    let recording = app.recordings.stats().clone();
    gauge(
        "venue_interaction_users",
        "Interaction clients (WebSocket or data channel) that said hello.",
        hubs.users as usize,
    );
    for (name, help, v) in [
        (
            "venue_interaction_frames_total",
            "Client frames received by the interaction hubs.",
            hubs.frames_in,
        ),
        (
            "venue_interaction_bad_frames_total",
            "Oversized, undecodable or out-of-place client frames dropped.",
            hubs.bad_frames,
        ),
        (
            "venue_interaction_rate_limited_total",
            "Client commands dropped by rate limits.",
            hubs.rate_limited,
        ),
        (
            "venue_interaction_nan_dropped_total",
            "Client commands with NaN coordinates dropped.",
            hubs.nan_dropped,
        ),
        (
            "venue_interaction_closed_for_offences_total",
            "Connections closed for repeated bad frames.",
            hubs.closed_for_offences,
        ),
        (
            "venue_interaction_batches_total",
            "Event batches broadcast (reliable and lossy).",
            hubs.batches,
        ),
        (
            "venue_rtmp_refused_over_cap_total",
            "RTMP connections refused: max_connections were open.",
            rtmp.refused_over_cap.load(Ordering::Relaxed),
        ),
        (
            "venue_rtmp_protocol_errors_total",
            "RTMP connections closed for malformed handshake, chunk or AMF input.",
            rtmp.protocol_errors.load(Ordering::Relaxed),
        ),
        (
            "venue_rtmp_publish_timeouts_total",
            "RTMP connections closed for not publishing within the publish timeout.",
            rtmp.publish_timeouts.load(Ordering::Relaxed),
        ),
        (
            "venue_rtmp_bad_media_total",
            "FLV tags or AAC frames from RTMP publishers dropped as malformed.",
            rtmp.bad_media.load(Ordering::Relaxed),
        ),
        (
            "venue_whep_refused_overflow_total",
            "WHEP viewers refused (503) because the room was full or the server overloaded.",
            app.overflow.refused(),
        ),
        (
            "venue_recordings_started_total",
            "Recordings of sets started.",
            recording.started.load(Ordering::Relaxed),
        ),
        (
            "venue_recordings_discarded_total",
            "Recorded sets discarded as shorter than the minimum.",
            recording.discarded.load(Ordering::Relaxed),
        ),
        (
            "venue_recordings_dropped_total",
            "Program outputs not recorded because a writer's queue was full (slow disk).",
            recording.dropped.load(Ordering::Relaxed),
        ),
        (
            "venue_recordings_write_errors_total",
            "Recording write errors (each ends its recording).",
            recording.write_errors.load(Ordering::Relaxed),
        ),
        (
            "venue_webhooks_delivered_total",
            "Webhook deliveries (event x URL) answered 2xx.",
            webhooks.delivered,
        ),
        (
            "venue_webhooks_failed_total",
            "Webhook deliveries given up (final answer or attempts used up).",
            webhooks.failed,
        ),
        (
            "venue_webhooks_dropped_total",
            "Webhook deliveries dropped because a queue was full.",
            webhooks.dropped,
        ),
        (
            "venue_webhooks_retried_total",
            "Webhook attempts after the first.",
            webhooks.retried,
        ),
    ] {
        counter(&mut out, name, help, v);
    }
    let tcp = app.sfu.ice_tcp_stats();
    out.push_str(&format!(
        "# HELP venue_ice_tcp_connections ICE-TCP connections open on the media shards.\n# TYPE venue_ice_tcp_connections gauge\nvenue_ice_tcp_connections {}\n",
        tcp.open
    ));
    out.push_str("# HELP venue_ice_tcp_closed_total ICE-TCP connections refused or closed by the SFU, by reason.\n# TYPE venue_ice_tcp_closed_total counter\n");
    for (reason, v) in [
        ("limit", tcp.refused),
        ("not_stun", tcp.not_stun),
        ("bad_frame", tcp.bad_frames),
        ("unanswered", tcp.unanswered),
        ("idle", tcp.idle),
        ("write_stalled", tcp.write_stalled),
    ] {
        out.push_str(&format!(
            "venue_ice_tcp_closed_total{{reason=\"{reason}\"}} {v}\n"
        ));
    }
    for (name, help, v) in [
        (
            "venue_ice_tcp_accepted_total",
            "ICE-TCP connections accepted.",
            tcp.accepted,
        ),
        (
            "venue_ice_tcp_dropped_packets_total",
            "ICE-TCP packets dropped: a connection's write queue full, or no connection for the address.",
            tcp.write_dropped + tcp.unrouted,
        ),
    ] {
        counter(&mut out, name, help, v);
    }
    if let Some(turn) = &app.turn
        && let Some(t) = turn.server().stats().await
    {
        for (name, help, v) in [
            (
                "venue_turn_allocations_created_total",
                "TURN allocations created.",
                t.allocations_created,
            ),
            (
                "venue_turn_relayed_to_peer_total",
                "TURN packets relayed client to peer (the SFU).",
                t.relayed_to_peer,
            ),
            (
                "venue_turn_relayed_to_client_total",
                "TURN packets relayed peer to client.",
                t.relayed_to_client,
            ),
            (
                "venue_turn_unauthorized_total",
                "TURN 401/438 answers (missing, expired or forged credentials).",
                t.unauthorized,
            ),
            (
                "venue_turn_forbidden_total",
                "TURN requests or packets refused by the peer policy (403: not Venue's media address).",
                t.forbidden,
            ),
            (
                "venue_turn_quota_refused_total",
                "TURN allocations refused by quota (486) or capacity (508).",
                t.quota_refused,
            ),
            (
                "venue_turn_bandwidth_dropped_packets_total",
                "TURN packets dropped by the per-allocation bandwidth quota.",
                t.bandwidth_dropped_packets,
            ),
            (
                "venue_turn_malformed_total",
                "Malformed STUN/TURN/ChannelData input dropped.",
                t.malformed,
            ),
            (
                "venue_turn_unroutable_total",
                "TURN packets dropped for no allocation, permission or channel.",
                t.unroutable,
            ),
        ] {
            counter(&mut out, name, help, v);
        }
    }
    if let Some(cpu) = app.overflow.cpu_percent() {
        out.push_str(&format!(
            "# HELP venue_process_cpu_percent This process's CPU over the last sampled second, percent of all cores (the overflow check).\n# TYPE venue_process_cpu_percent gauge\nvenue_process_cpu_percent {cpu:.2}\n"
        ));
    }
    out.push_str("# HELP venue_http_requests_total HTTP requests answered, by status class.\n");
    out.push_str("# TYPE venue_http_requests_total counter\n");
    for (i, c) in app.metrics.http_responses.iter().enumerate() {
        out.push_str(&format!(
            "venue_http_requests_total{{class=\"{}xx\"}} {}\n",
            i + 1,
            c.load(Ordering::Relaxed)
        ));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
