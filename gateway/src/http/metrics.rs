//! `GET /metrics` (Prometheus text format 0.0.4) and the middleware that counts every HTTP
//! response by status class. The metrics themselves (names, types, HELP texts) live in
//! [`crate::metrics`]; this module reads the numbers other components keep into
//! [`Readings`] at scrape time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::metrics::{
    CONTENT_TYPE, IceTcpReadings, InteractionReadings, Metrics, Readings, RecordingReadings,
    TurnReadings, WebhookReadings,
};

/// Middleware: counts every response by status class. Its state is the counters alone (one
/// `Arc` clone per request, not the whole `AppState`'s dozen).
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    metrics.record_response(res.status().as_u16());
    res
}

/// `GET /metrics`. Errors: 500 when the state actor has stopped.
pub async fn get(State(app): State<AppState>) -> Result<Response, ApiError> {
    let readings = read(&app).await?;
    let text = app
        .metrics
        .render(&readings)
        .map_err(|e| ApiError::Internal(format!("rendering metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Reads the numbers of the state actor, every room's hub (a stopped hub counts as 0), the
/// webhooks, recordings, overflow check, the SFU's ICE-TCP listener and TURN.
async fn read(app: &AppState) -> Result<Readings, ApiError> {
    let s = app.state.stats().await?;
    let mut interaction = InteractionReadings::default();
    for hub in app.state.hubs().await? {
        if let Ok(h) = hub.stats().await {
            interaction.users += h.users;
            interaction.frames += h.frames_in;
            interaction.bad_frames += h.bad_frames;
            interaction.rate_limited += h.rate_limited;
            interaction.nan_dropped += h.nan_dropped;
            interaction.closed_for_offences += h.closed_for_offences;
            interaction.batches += h.batches;
        }
    }
    let recording = app.recordings.stats();
    let webhooks = app.webhooks.stats();
    let tcp = app.sfu.ice_tcp_stats();
    let turn = match &app.turn {
        Some(turn) => turn.server().stats().await.map(|t| TurnReadings {
            allocations_created: t.allocations_created,
            relayed_to_peer: t.relayed_to_peer,
            relayed_to_client: t.relayed_to_client,
            unauthorized: t.unauthorized,
            forbidden: t.forbidden,
            quota_refused: t.quota_refused,
            bandwidth_dropped_packets: t.bandwidth_dropped_packets,
            malformed: t.malformed,
            unroutable: t.unroutable,
        }),
        None => None,
    };
    Ok(Readings {
        rooms: s.rooms as u64,
        sessions: s.sessions as u64,
        publishers_live: s.publishers_live as u64,
        viewers: s.viewers as u64,
        interaction,
        whep_refused_overflow: app.overflow.refused(),
        recordings: RecordingReadings {
            started: recording.started.load(Ordering::Relaxed),
            discarded: recording.discarded.load(Ordering::Relaxed),
            dropped: recording.dropped.load(Ordering::Relaxed),
            write_errors: recording.write_errors.load(Ordering::Relaxed),
        },
        webhooks: WebhookReadings {
            delivered: webhooks.delivered,
            failed: webhooks.failed,
            dropped: webhooks.dropped,
            retried: webhooks.retried,
        },
        ice_tcp: IceTcpReadings {
            open: tcp.open as u64,
            accepted: tcp.accepted,
            dropped_packets: tcp.write_dropped + tcp.unrouted,
            closed: [
                ("limit", tcp.refused),
                ("not_stun", tcp.not_stun),
                ("bad_frame", tcp.bad_frames),
                ("unanswered", tcp.unanswered),
                ("idle", tcp.idle),
                ("write_stalled", tcp.write_stalled),
            ],
        },
        turn,
        cpu_percent: app.overflow.cpu_percent().map(f64::from),
        relays: app
            .cluster
            .as_ref()
            .map(|_| (s.relays_in as u64, s.relays_out as u64)),
        relayed_packets: app.cluster.as_ref().map(|_| venue_sfu::relayed_packets()),
    })
}
