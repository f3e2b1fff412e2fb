//! Venue's Prometheus metrics on the `prometheus` crate (text exposition format 0.0.4, served
//! at `GET /metrics` by `http::metrics`).
//!
//! Two kinds of numbers:
//! - counters the gateway owns and updates as things happen ([`Metrics::record_response`],
//!   [`RtmpCounters`]): `prometheus` counters and gauges in one [`Registry`];
//! - numbers other components keep (the state actor, the hubs, webhooks, recordings, the SFU's
//!   ICE-TCP listener, TURN, the overflow CPU sample), read at scrape time into a plain
//!   [`Readings`] by the handler and turned into metric families by [`Metrics::render`].
//!
//! This module knows no HTTP type and no component: it names every metric (names, types, HELP
//! texts and labels are an interface: dashboards and tests read them), the handler fills the
//! numbers. Counters end in `_total`; gauges are "now" values.

use prometheus::core::Collector;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry, TextEncoder};

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Status classes of `venue_http_requests_total{class}`, index = status / 100 - 1.
const HTTP_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The gateway's own metrics; shared as one `Arc` (updates are atomic, lock-free).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `venue_http_requests_total{class}`, one counter per [`HTTP_CLASSES`] entry.
    http_responses: [IntCounter; 5],
    /// RTMP ingest counters (updated by `crate::media::rtmp`).
    pub rtmp: RtmpCounters,
    /// Cluster metrics, registered on first use ([`Metrics::cluster`]): a single-node
    /// `/metrics` has no `venue_cluster_*`.
    cluster: std::sync::OnceLock<ClusterMetrics>,
}

/// Cluster mode's metrics (`crate::cluster`); clones share the same series.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// `venue_cluster_nodes`: live nodes in the registry whose registration verified, this
    /// one included (draining ones too).
    pub nodes: IntGauge,
    /// `venue_cluster_bus_lag_seconds`: publish (sender's clock) → receive (this node's clock)
    /// of bus messages from other nodes.
    pub bus_lag: Histogram,
    /// `venue_cluster_bus_dropped_total`: bus messages not published because the outgoing
    /// queue was full (Redis slow or away).
    pub bus_dropped: IntCounter,
    /// `venue_cluster_bus_rejected_total`: bus messages received and dropped: malformed, or
    /// signed with another cluster secret.
    pub bus_rejected: IntCounter,
    /// `venue_cluster_program_rooms`: rooms whose program this node composes (it holds their
    /// `program:{room}` lease).
    pub program_rooms: IntGauge,
    /// `venue_cluster_forwarded_total{result}`: requests forwarded to another node (HLS,
    /// recordings) by outcome: `ok` (answered, whatever the status), `unreachable`, `timeout`.
    pub forwarded: [IntCounter; 3],
    /// `venue_cluster_hubs_owned`: rooms whose living-room hub this node owns now.
    pub hubs_owned: IntGauge,
    /// `venue_cluster_hub_dropped_total`: living-room messages between nodes dropped (a
    /// queue full, or PUBLISH failed while Redis was away).
    pub hub_dropped: IntCounter,
}

/// The `result` labels of `venue_cluster_forwarded_total`, in [`ClusterMetrics::forwarded`]'s
/// order.
pub const FORWARD_RESULTS: [&str; 3] = ["ok", "unreachable", "timeout"];

/// Buckets of `venue_cluster_bus_lag_seconds`: 0.5 ms to 2.5 s.
pub const BUS_LAG_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 1.0, 2.5,
];

/// RTMP ingest counters.
#[derive(Debug)]
pub struct RtmpCounters {
    /// `venue_rtmp_connections`: connections open now.
    pub connections: IntGauge,
    /// `venue_rtmp_refused_over_cap_total`: refused because `[rtmp] max_connections` were open.
    pub refused_over_cap: IntCounter,
    /// `venue_rtmp_protocol_errors_total`: closed for malformed RTMP (handshake, chunk
    /// stream, AMF) input.
    pub protocol_errors: IntCounter,
    /// `venue_rtmp_publish_timeouts_total`: closed because no publish was accepted within the
    /// publish timeout.
    pub publish_timeouts: IntCounter,
    /// `venue_rtmp_bad_media_total`: AAC frames or FLV audio/video tags that did not parse or
    /// decode (dropped).
    pub bad_media: IntCounter,
}

/// Builds and registers one metric. Names and HELP texts are constants, so the only failure
/// (an invalid or twice-registered name) is a bug caught by the unit tests.
#[allow(clippy::expect_used)]
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    make: fn(Opts) -> prometheus::Result<M>,
    name: &str,
    help: &str,
) -> M {
    let metric = make(Opts::new(name, help)).expect("valid metric name"); // invariant: constant names, each registered once
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once"); // invariant: constant names, each registered once
    metric
}

impl Default for Metrics {
    /// The registry with every owned metric at 0. Names are constants (see [`registered`]).
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        let registry = Registry::new();
        let http = prometheus::IntCounterVec::new(
            Opts::new(
                "venue_http_requests_total",
                "HTTP requests answered, by status class.",
            ),
            &["class"],
        )
        .expect("valid metric name"); // invariant: constant names, each registered once
        // Every class is exposed from the start, at 0.
        let http_responses = HTTP_CLASSES.map(|class| http.with_label_values(&[class]));
        registry
            .register(Box::new(http))
            .expect("metric registered once"); // invariant: constant names, each registered once
        let rtmp = RtmpCounters {
            connections: registered(
                &registry,
                IntGauge::with_opts,
                "venue_rtmp_connections",
                "RTMP connections open.",
            ),
            refused_over_cap: registered(
                &registry,
                IntCounter::with_opts,
                "venue_rtmp_refused_over_cap_total",
                "RTMP connections refused: max_connections were open.",
            ),
            protocol_errors: registered(
                &registry,
                IntCounter::with_opts,
                "venue_rtmp_protocol_errors_total",
                "RTMP connections closed for malformed handshake, chunk or AMF input.",
            ),
            publish_timeouts: registered(
                &registry,
                IntCounter::with_opts,
                "venue_rtmp_publish_timeouts_total",
                "RTMP connections closed for not publishing within the publish timeout.",
            ),
            bad_media: registered(
                &registry,
                IntCounter::with_opts,
                "venue_rtmp_bad_media_total",
                "FLV tags or AAC frames from RTMP publishers dropped as malformed.",
            ),
        };
        Metrics {
            registry,
            http_responses,
            rtmp,
            cluster: std::sync::OnceLock::new(),
        }
    }
}

/// Numbers read from other components at scrape time. Counts are cumulative since start
/// unless a field says "now".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// Rooms (now).
    pub rooms: u64,
    /// WebRTC sessions known to the gateway (now).
    pub sessions: u64,
    /// Streamers with a publisher session up (now).
    pub publishers_live: u64,
    /// WHEP viewer sessions connected (now).
    pub viewers: u64,
    /// The interaction hubs of all rooms, summed.
    pub interaction: InteractionReadings,
    /// WHEP viewers refused (503) by the overflow rule.
    pub whep_refused_overflow: u64,
    pub recordings: RecordingReadings,
    pub webhooks: WebhookReadings,
    pub ice_tcp: IceTcpReadings,
    /// The embedded TURN server's counters; `None` when it is off (no `venue_turn_*` then).
    pub turn: Option<TurnReadings>,
    /// This process's CPU over the last sampled second, percent of all cores; `None` before
    /// the first sample (no `venue_process_cpu_percent` then).
    pub cpu_percent: Option<f64>,
    /// Cluster mode: relays open now, (edge side: from other nodes, origin side: to other
    /// nodes); `None` in single-node mode (no `venue_cluster_relays` then).
    pub relays: Option<(u64, u64)>,
    /// Cluster mode: media packets received over relays since start (`None`: single node).
    pub relayed_packets: Option<u64>,
}

/// The interaction hubs' counters, summed over rooms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InteractionReadings {
    /// Clients that said hello (now).
    pub users: u64,
    pub frames: u64,
    pub bad_frames: u64,
    pub rate_limited: u64,
    pub nan_dropped: u64,
    pub closed_for_offences: u64,
    pub batches: u64,
}

/// Recordings of sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingReadings {
    pub started: u64,
    pub discarded: u64,
    pub dropped: u64,
    pub write_errors: u64,
}

/// Webhook deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookReadings {
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
    pub retried: u64,
}

/// ICE-TCP on the media shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceTcpReadings {
    /// Connections open (now).
    pub open: u64,
    pub accepted: u64,
    /// Packets dropped: a full write queue, or no connection for the address.
    pub dropped_packets: u64,
    /// Closed or refused, by reason: `limit`, `not_stun`, `bad_frame`, `unanswered`, `idle`,
    /// `write_stalled`.
    pub closed: [(&'static str, u64); 6],
}

/// The embedded TURN server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnReadings {
    pub allocations_created: u64,
    pub relayed_to_peer: u64,
    pub relayed_to_client: u64,
    pub unauthorized: u64,
    pub forbidden: u64,
    pub quota_refused: u64,
    pub bandwidth_dropped_packets: u64,
    pub malformed: u64,
    pub unroutable: u64,
}

/// A family of one metric per label set (`labels` empty: one unlabelled sample).
fn family(name: &str, help: &str, kind: MetricType, samples: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(samples);
    f
}

fn counter_sample(v: u64, label: Option<(&str, &str)>) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::default();
    m.set_counter(c);
    if let Some((name, value)) = label {
        let mut pair = LabelPair::default();
        pair.set_name(name.to_owned());
        pair.set_value(value.to_owned());
        m.set_label(vec![pair]);
    }
    m
}

fn counter(name: &str, help: &str, v: u64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        vec![counter_sample(v, None)],
    )
}

fn gauge(name: &str, help: &str, v: f64) -> MetricFamily {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::default();
    m.set_gauge(g);
    family(name, help, MetricType::GAUGE, vec![m])
}

impl Readings {
    /// The metric families of these readings (names, types and HELP texts of `/metrics`).
    fn families(&self) -> Vec<MetricFamily> {
        let hubs = &self.interaction;
        let rec = &self.recordings;
        let hooks = &self.webhooks;
        let tcp = &self.ice_tcp;
        let mut out = vec![
            gauge("venue_rooms", "Rooms.", self.rooms as f64),
            gauge(
                "venue_sessions",
                "WebRTC sessions (WHIP publishers, WHEP viewers, previews) known to the gateway.",
                self.sessions as f64,
            ),
            gauge(
                "venue_publishers_live",
                "Streamers with a publisher session up.",
                self.publishers_live as f64,
            ),
            gauge(
                "venue_viewers",
                "WHEP viewer sessions connected.",
                self.viewers as f64,
            ),
            gauge(
                "venue_interaction_users",
                "Interaction clients (WebSocket or data channel) that said hello.",
                hubs.users as f64,
            ),
            counter(
                "venue_interaction_frames_total",
                "Client frames received by the interaction hubs.",
                hubs.frames,
            ),
            counter(
                "venue_interaction_bad_frames_total",
                "Oversized, undecodable or out-of-place client frames dropped.",
                hubs.bad_frames,
            ),
            counter(
                "venue_interaction_rate_limited_total",
                "Client commands dropped by rate limits.",
                hubs.rate_limited,
            ),
            counter(
                "venue_interaction_nan_dropped_total",
                "Client commands with NaN coordinates dropped.",
                hubs.nan_dropped,
            ),
            counter(
                "venue_interaction_closed_for_offences_total",
                "Connections closed for repeated bad frames.",
                hubs.closed_for_offences,
            ),
            counter(
                "venue_interaction_batches_total",
                "Event batches broadcast (reliable and lossy).",
                hubs.batches,
            ),
            counter(
                "venue_whep_refused_overflow_total",
                "WHEP viewers refused (503) because the room was full or the server overloaded.",
                self.whep_refused_overflow,
            ),
            counter(
                "venue_recordings_started_total",
                "Recordings of sets started.",
                rec.started,
            ),
            counter(
                "venue_recordings_discarded_total",
                "Recorded sets discarded as shorter than the minimum.",
                rec.discarded,
            ),
            counter(
                "venue_recordings_dropped_total",
                "Program outputs not recorded because a writer's queue was full (slow disk).",
                rec.dropped,
            ),
            counter(
                "venue_recordings_write_errors_total",
                "Recording write errors (each ends its recording).",
                rec.write_errors,
            ),
            counter(
                "venue_webhooks_delivered_total",
                "Webhook deliveries (event x URL) answered 2xx.",
                hooks.delivered,
            ),
            counter(
                "venue_webhooks_failed_total",
                "Webhook deliveries given up (final answer or attempts used up).",
                hooks.failed,
            ),
            counter(
                "venue_webhooks_dropped_total",
                "Webhook deliveries dropped because a queue was full.",
                hooks.dropped,
            ),
            counter(
                "venue_webhooks_retried_total",
                "Webhook attempts after the first.",
                hooks.retried,
            ),
            gauge(
                "venue_ice_tcp_connections",
                "ICE-TCP connections open on the media shards.",
                tcp.open as f64,
            ),
            family(
                "venue_ice_tcp_closed_total",
                "ICE-TCP connections refused or closed by the SFU, by reason.",
                MetricType::COUNTER,
                tcp.closed
                    .iter()
                    .map(|&(reason, v)| counter_sample(v, Some(("reason", reason))))
                    .collect(),
            ),
            counter(
                "venue_ice_tcp_accepted_total",
                "ICE-TCP connections accepted.",
                tcp.accepted,
            ),
            counter(
                "venue_ice_tcp_dropped_packets_total",
                "ICE-TCP packets dropped: a connection's write queue full, or no connection for the address.",
                tcp.dropped_packets,
            ),
        ];
        if let Some(t) = &self.turn {
            out.extend([
                counter(
                    "venue_turn_allocations_created_total",
                    "TURN allocations created.",
                    t.allocations_created,
                ),
                counter(
                    "venue_turn_relayed_to_peer_total",
                    "TURN packets relayed client to peer (the SFU).",
                    t.relayed_to_peer,
                ),
                counter(
                    "venue_turn_relayed_to_client_total",
                    "TURN packets relayed peer to client.",
                    t.relayed_to_client,
                ),
                counter(
                    "venue_turn_unauthorized_total",
                    "TURN 401/438 answers (missing, expired or forged credentials).",
                    t.unauthorized,
                ),
                counter(
                    "venue_turn_forbidden_total",
                    "TURN requests or packets refused by the peer policy (403: not Venue's media address).",
                    t.forbidden,
                ),
                counter(
                    "venue_turn_quota_refused_total",
                    "TURN allocations refused by quota (486) or capacity (508).",
                    t.quota_refused,
                ),
                counter(
                    "venue_turn_bandwidth_dropped_packets_total",
                    "TURN packets dropped by the per-allocation bandwidth quota.",
                    t.bandwidth_dropped_packets,
                ),
                counter(
                    "venue_turn_malformed_total",
                    "Malformed STUN/TURN/ChannelData input dropped.",
                    t.malformed,
                ),
                counter(
                    "venue_turn_unroutable_total",
                    "TURN packets dropped for no allocation, permission or channel.",
                    t.unroutable,
                ),
            ]);
        }
        if let Some((edge, origin)) = self.relays {
            out.push(gauge(
                "venue_cluster_relays_in",
                "Relays from other nodes open on this node (edge side: one per origin node and room).",
                edge as f64,
            ));
            out.push(gauge(
                "venue_cluster_relays_out",
                "Other nodes' relays of this node's stages (origin side).",
                origin as f64,
            ));
        }
        if let Some(n) = self.relayed_packets {
            out.push(counter(
                "venue_cluster_relayed_packets_total",
                "RTP media packets received over relays from origin nodes.",
                n,
            ));
        }
        if let Some(cpu) = self.cpu_percent {
            out.push(gauge(
                "venue_process_cpu_percent",
                "This process's CPU over the last sampled second, percent of all cores (the overflow check).",
                (cpu * 100.0).round() / 100.0,
            ));
        }
        out
    }
}

impl Metrics {
    /// The cluster metrics, registered in this registry on the first call (cluster mode only).
    #[allow(clippy::expect_used)]
    pub fn cluster(&self) -> &ClusterMetrics {
        self.cluster.get_or_init(|| {
            let lag = Histogram::with_opts(
                HistogramOpts::new(
                    "venue_cluster_bus_lag_seconds",
                    "Cluster bus messages from other nodes: seconds from publish (sender's clock) to receive.",
                )
                .buckets(BUS_LAG_BUCKETS.to_vec()),
            )
            .expect("valid metric name"); // invariant: constant name and increasing buckets
            self.registry
                .register(Box::new(lag.clone()))
                .expect("metric registered once"); // invariant: OnceLock registers once
            let forwarded = prometheus::IntCounterVec::new(
                Opts::new(
                    "venue_cluster_forwarded_total",
                    "Requests forwarded to another node (HLS, recordings), by outcome.",
                ),
                &["result"],
            )
            .expect("valid metric name"); // invariant: constant name and labels
            self.registry
                .register(Box::new(forwarded.clone()))
                .expect("metric registered once"); // invariant: OnceLock registers once
            ClusterMetrics {
                program_rooms: registered(
                    &self.registry,
                    IntGauge::with_opts,
                    "venue_cluster_program_rooms",
                    "Rooms whose program this node composes (holder of their program lease).",
                ),
                forwarded: FORWARD_RESULTS.map(|r| forwarded.with_label_values(&[r])),
                nodes: registered(
                    &self.registry,
                    IntGauge::with_opts,
                    "venue_cluster_nodes",
                    "Live cluster nodes in the registry (verified registrations, this one included).",
                ),
                bus_lag: lag,
                bus_dropped: registered(
                    &self.registry,
                    IntCounter::with_opts,
                    "venue_cluster_bus_dropped_total",
                    "Cluster bus messages not published: the outgoing queue was full.",
                ),
                bus_rejected: registered(
                    &self.registry,
                    IntCounter::with_opts,
                    "venue_cluster_bus_rejected_total",
                    "Cluster bus messages dropped on receipt: malformed or signed with another cluster secret.",
                ),
                hubs_owned: registered(
                    &self.registry,
                    IntGauge::with_opts,
                    "venue_cluster_hubs_owned",
                    "Rooms whose living-room hub this node owns now.",
                ),
                hub_dropped: registered(
                    &self.registry,
                    IntCounter::with_opts,
                    "venue_cluster_hub_dropped_total",
                    "Living-room messages between nodes dropped: a queue was full or Redis was away.",
                ),
            }
        })
    }

    /// Counts one HTTP response by its status class (1xx … 5xx; others clamp into range).
    pub fn record_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = self.http_responses.get(class) {
            c.inc();
        }
    }

    /// The text exposition of the gateway's own metrics and `readings`, families sorted by
    /// name (format: [`CONTENT_TYPE`]). Errors: a family without samples (a bug).
    pub fn render(&self, readings: &Readings) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        families.extend(readings.families());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = String::new();
        TextEncoder::new().encode_utf8(&families, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_type() {
        let m = Metrics::default();
        m.record_response(200);
        m.record_response(204);
        m.record_response(503);
        m.rtmp.connections.inc();
        m.rtmp.bad_media.inc_by(3);
        let readings = Readings {
            viewers: 4,
            ice_tcp: IceTcpReadings {
                closed: [
                    ("limit", 0),
                    ("not_stun", 2),
                    ("bad_frame", 0),
                    ("unanswered", 0),
                    ("idle", 0),
                    ("write_stalled", 0),
                ],
                ..IceTcpReadings::default()
            },
            cpu_percent: Some(12.340000152587891),
            ..Readings::default()
        };
        let text = m.render(&readings).expect("renders"); // invariant: a unit test
        for line in [
            "# TYPE venue_http_requests_total counter\n",
            "\nvenue_http_requests_total{class=\"1xx\"} 0\n",
            "\nvenue_http_requests_total{class=\"2xx\"} 2\n",
            "\nvenue_http_requests_total{class=\"5xx\"} 1\n",
            "# TYPE venue_rtmp_connections gauge\n",
            "\nvenue_rtmp_connections 1\n",
            "\nvenue_rtmp_bad_media_total 3\n",
            "# HELP venue_viewers WHEP viewer sessions connected.\n",
            "# TYPE venue_viewers gauge\nvenue_viewers 4\n",
            "\nvenue_ice_tcp_closed_total{reason=\"not_stun\"} 2\n",
            "\nvenue_process_cpu_percent 12.34\n",
            "# TYPE venue_webhooks_retried_total counter\nvenue_webhooks_retried_total 0\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(
            !text.contains("venue_turn_"),
            "no TURN metrics when it is off"
        );
        assert!(!text.contains("venue_cluster_"), "none in single-node mode");
    }

    #[test]
    fn cluster_metrics_appear_once_registered() {
        let m = Metrics::default();
        let c = m.cluster().clone();
        c.nodes.set(3);
        c.bus_lag.observe(0.002);
        m.cluster().bus_dropped.inc();
        let text = m.render(&Readings::default()).expect("renders"); // invariant: a unit test
        for line in [
            "# TYPE venue_cluster_nodes gauge\nvenue_cluster_nodes 3\n",
            "# TYPE venue_cluster_bus_lag_seconds histogram\n",
            "venue_cluster_bus_lag_seconds_bucket{le=\"0.0025\"} 1\n",
            "venue_cluster_bus_lag_seconds_count 1\n",
            "venue_cluster_bus_dropped_total 1\n",
            "venue_cluster_bus_rejected_total 0\n",
            "venue_cluster_program_rooms 0\n",
            "venue_cluster_forwarded_total{result=\"timeout\"} 0\n",
            "venue_cluster_hubs_owned 0\n",
            "venue_cluster_hub_dropped_total 0\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
