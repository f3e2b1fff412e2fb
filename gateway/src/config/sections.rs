//! The sections of the configuration file, one type each (`[http]`, `[database]`,
//! `[recording]`, `[hls]`, `[webhooks]`, `[rtmp]`, `[schedule]`, `[interaction]`), with their
//! defaults, and [`Secret`]. `[cluster]` is [`super::cluster`]; the whole is [`super::Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::error::ConfigError;

/// `[database]` section: the store's database ([`crate::store::DatabaseUrl`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (a SQLite file, created if needed) or `postgres://user:password@host:
    /// port/database` (an existing PostgreSQL ≥ 15 database; Venue creates its tables). Default
    /// none: `data_dir/venue.db`. Env `VENUE_DATABASE_URL`. Never logged with its password.
    pub url: Option<Secret>,
}

/// `[recording]` section: each artist's set on stage slot 0 recorded to
/// `data_dir/recordings` ([`crate::media::recording`]).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record sets: while a streamer is live on slot 0 the room's program runs (even if no one
    /// watches HLS) and is written to an fMP4 file. Default true. Env
    /// `VENUE_RECORDING_ENABLED` (`true`/`false`).
    pub enabled: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig { enabled: true }
    }
}

/// `[hls]` section: overflow from WebRTC to the LL-HLS program ([`crate::overflow`]).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// WebRTC viewers a room takes, 0..=1000000; at this many, `GET /api/rooms/{room}/join`
    /// answers `hls` and new WHEP viewers are refused with 503. Admin previews do not count.
    /// 0 sends every viewer to HLS. Default 500. Env `VENUE_MAX_WEBRTC_VIEWERS`, flag
    /// `--max-webrtc-viewers`.
    pub max_webrtc_viewers: usize,
    /// The server counts as overloaded while this process uses more than this share of all
    /// CPU cores, percent, 0..=100 (sampled from `/proc/self/stat` every second); then new
    /// viewers get HLS and new WHEP viewers 503. 0 = no CPU check. Default 85. Env
    /// `VENUE_MAX_CPU_PERCENT`.
    pub max_cpu_percent: u32,
    /// Compose a room's stage into the LL-HLS program while someone requests its playlist
    /// ([`crate::media::program`]). `false`: no program for watchers (the playlist answers 404;
    /// recordings, if enabled, still compose). Default true.
    pub compose: bool,
    /// Program width and height, pixels: even, 128x72..=3840x2160. Default 1280x720 (1920x1080
    /// for a full-HD program).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Program frame rate, 1..=60. Default 30.
    pub fps: u32,
    /// Program H.264 bitrate, kbit/s, 100..=50000. Default 3000.
    pub video_bitrate_kbps: u32,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            max_webrtc_viewers: 500,
            max_cpu_percent: 85,
            compose: true,
            width: 1280,
            height: 720,
            fps: 30,
            video_bitrate_kbps: 3000,
        }
    }
}

/// `[webhooks]` section: where and how [`crate::webhooks`] delivers events.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Receivers (`http://` or `https://` URLs), each sent every event. Default none: no
    /// webhooks. Env `VENUE_WEBHOOKS_URLS` (comma-separated).
    pub urls: Vec<String>,
    /// HMAC-SHA256 key of the `Venue-Signature` header, at least 16 characters; required
    /// when `urls` is not empty. Env `VENUE_WEBHOOKS_SECRET`. Never logged.
    pub secret: Option<Secret>,
    /// Time limit of one delivery attempt (connect + response), ms, 100..=60000. Default 5000.
    pub timeout_ms: u64,
    /// Attempts per event and URL, first included, 1..=20. Default 6.
    pub max_attempts: u32,
    /// Wait before the first retry, ms, 1..=60000; doubles per retry, capped at 60 s, with
    /// jitter. Default 1000.
    pub retry_initial_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            urls: Vec::new(),
            secret: None,
            timeout_ms: 5000,
            max_attempts: 6,
            retry_initial_ms: 1000,
        }
    }
}

/// `[rtmp]` section: RTMP ingest (`rtmp://host:1935/live/<stream key>`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Listen for RTMP publishers. Default true.
    pub enabled: bool,
    /// Address of the RTMP listener. Default `0.0.0.0:1935`.
    pub listen: SocketAddr,
    /// Bitrate of the Opus made from an RTMP stream's AAC, kbit/s, 6..=510. Default 128.
    pub opus_bitrate_kbps: u32,
    /// RTMP connections open at once, 1..=10000; more are closed on accept. Default 64.
    pub max_connections: usize,
    /// A connection must have its publish accepted within this many seconds of connecting,
    /// 1..=300. Default 10.
    pub publish_timeout_s: u64,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            opus_bitrate_kbps: 128,
            max_connections: 64,
            publish_timeout_s: 10,
        }
    }
}

/// `[schedule]` section: when booked stream keys open and close.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// A booked key works from this many seconds before its window, 0..=86400. Default 300.
    pub grace_before_s: u64,
    /// A live session is ended this many seconds after its window closes, 0..=3600. Default 0.
    pub grace_after_s: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            grace_before_s: 300,
            grace_after_s: 0,
        }
    }
}

/// `[interaction]` section: the rooms' interaction hubs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InteractionConfig {
    /// Batch period in ms, 10..=1000. Default 50.
    pub tick_ms: u64,
    /// Stickers kept on a room's board, 1..=100000. Default 2000.
    pub board_size: usize,
    /// Frames a WebSocket client's send queue holds before it is closed as too slow,
    /// 16..=65536. Default 256.
    pub ws_queue_frames: usize,
    /// `[interaction.limits]`: rate limits (per connection; per IP = `per_ip_factor` ×).
    pub limits: crate::hub::limits::LimitConfig,
}

impl Default for InteractionConfig {
    fn default() -> Self {
        let hub = crate::hub::HubConfig::default();
        InteractionConfig {
            tick_ms: 50,
            board_size: hub.board_size,
            ws_queue_frames: crate::hub::QueuePolicy::default().capacity,
            limits: hub.limits,
        }
    }
}

impl InteractionConfig {
    /// The hub configuration this section describes.
    pub fn hub_config(&self) -> crate::hub::HubConfig {
        crate::hub::HubConfig {
            tick: std::time::Duration::from_millis(self.tick_ms),
            board_size: self.board_size,
            limits: self.limits,
            ..Default::default()
        }
    }

    /// The WebSocket send-queue policy.
    pub fn queue_policy(&self) -> crate::hub::QueuePolicy {
        crate::hub::QueuePolicy {
            capacity: self.ws_queue_frames,
            ..Default::default()
        }
    }
}

/// `[http]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server binds. Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Public base URL (`https://venue.example.org`), used for the WHIP and RTMP URLs handed
    /// to streamers. Default: derived from each request's `Host` header.
    pub public_url: Option<String>,
    /// Reverse proxies (e.g. `127.0.0.1` for an nginx on the same host) whose
    /// `X-Forwarded-For` is believed: for their requests the client IP (per-IP limits, bans)
    /// is the rightmost address in that header that is not itself a trusted proxy. Default
    /// none: the TCP peer is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// PEM certificate chain (leaf first) for HTTPS on `listen`. Set together with `tls_key`;
    /// then the listener speaks TLS only, with ALPN `h2` and `http/1.1` ([`crate::http::tls`]).
    /// Default none: plain HTTP. Env `VENUE_TLS_CERT`, flag `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Env `VENUE_TLS_KEY`, flag
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            public_url: None,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl HttpConfig {
    /// Checks that `tls_cert` and `tls_key` are set together and not empty. The files are
    /// read, and their PEM contents checked, when the listener starts
    /// ([`crate::http::tls::TlsConfig::from_pem_files`], whose errors name the key and the path).
    pub fn validate_tls(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::Invalid(
                "http.tls_cert and http.tls_key (VENUE_TLS_CERT / VENUE_TLS_KEY, --tls-cert / \
                 --tls-key) must be set together: HTTPS needs both the certificate chain and \
                 its private key"
                    .into(),
            )),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key)] {
                    if path.as_os_str().is_empty() {
                        return Err(ConfigError::Invalid(format!(
                            "http.{name} must not be empty"
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}

impl WebhooksConfig {
    /// Checks URLs, secret and ranges. Errors name the key, never the secret's value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for url in &self.urls {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "webhooks.urls: {url:?} is not an http:// or https:// URL"
                )));
            }
        }
        if !self.urls.is_empty() {
            match &self.secret {
                None => {
                    return Err(ConfigError::Invalid(
                        "webhooks.secret (or VENUE_WEBHOOKS_SECRET) is required when \
                         webhooks.urls is set: receivers verify the Venue-Signature with it"
                            .into(),
                    ));
                }
                Some(s) if s.expose().chars().count() < 16 => {
                    return Err(ConfigError::Invalid(
                        "webhooks.secret must be at least 16 characters".into(),
                    ));
                }
                Some(_) => {}
            }
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "webhooks.timeout_ms must be 100..=60000, got {}",
                self.timeout_ms
            )));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(ConfigError::Invalid(format!(
                "webhooks.max_attempts must be 1..=20, got {}",
                self.max_attempts
            )));
        }
        if !(1..=60_000).contains(&self.retry_initial_ms) {
            return Err(ConfigError::Invalid(format!(
                "webhooks.retry_initial_ms must be 1..=60000, got {}",
                self.retry_initial_ms
            )));
        }
        Ok(())
    }
}

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
