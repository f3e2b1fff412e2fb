//! The gateway's configuration: one typed struct, layered
//! defaults → TOML file → `VENUE_*` environment → CLI flags → validated.
//!
//! The media plane's section `[media]` is [`venue_sfu::SfuConfig`] itself. Secrets (the admin
//! token) are wrapped in [`Secret`], whose `Debug` never prints them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;
use venue_sfu::SfuConfig;

pub mod cluster;
mod error;
mod sections;

pub use cluster::ClusterConfig;
pub use error::ConfigError;
pub use sections::*;

/// The whole configuration of the `venue` binary.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[http]`: the HTTP listener.
    pub http: HttpConfig,
    /// `[media]`: the SFU (UDP shards, stage slots).
    pub media: SfuConfig,
    /// Directory for the SQLite database and the generated admin token. Default `./venue-data`.
    pub data_dir: PathBuf,
    /// `[database]`: where the store lives (SQLite in `data_dir` unless `url` says otherwise).
    pub database: DatabaseConfig,
    /// Bearer token of the admin API. `None`: read `data_dir/admin-token`, generating it on
    /// first start.
    pub admin_token: Option<Secret>,
    /// `[interaction]`: the living room (cursors, stickers, fireworks, chat).
    pub interaction: InteractionConfig,
    /// `[schedule]`: slot-bound stream keys.
    pub schedule: ScheduleConfig,
    /// `[rtmp]`: RTMP ingest.
    pub rtmp: RtmpConfig,
    /// `[webhooks]`: signed POSTs on publish start/stop and slot start/end.
    pub webhooks: WebhooksConfig,
    /// `[hls]`: the LL-HLS program and overflow (when viewers get HLS instead of WebRTC).
    pub hls: HlsConfig,
    /// `[recording]`: recordings of artists' sets ([`crate::media::recording`]).
    pub recording: RecordingConfig,
    /// `[turn]`: the embedded TURN server (`enabled`), or an external one sharing `secret`
    /// (`enabled = false` with `urls`); see [`crate::ice`] and [`venue_turn::TurnConfig`].
    pub turn: venue_turn::TurnConfig,
    /// `[cluster]`: cluster mode on Redis ([`crate::cluster`]); unset `redis_url` (default) is
    /// single-node mode.
    pub cluster: ClusterConfig,
}

/// Command-line flags (each overrides the file and the environment).
#[derive(Debug, Default, Parser)]
#[command(
    name = "venue",
    version,
    about = "Venue: a self-hosted online concert venue"
)]
pub struct Cli {
    /// TOML configuration file (also `VENUE_CONFIG`).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// HTTP listen address, e.g. 0.0.0.0:8080 (also `VENUE_HTTP_LISTEN`).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// RTMP listen address, e.g. 0.0.0.0:1935 (also `VENUE_RTMP_LISTEN`).
    #[arg(long, value_name = "ADDR")]
    pub rtmp_listen: Option<SocketAddr>,
    /// Public base URL used in WHIP/RTMP URLs (also `VENUE_PUBLIC_URL`).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Data directory (also `VENUE_DATA_DIR`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin API token (also `VENUE_ADMIN_TOKEN`; prefer the environment over the flag).
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Bind IP of the media shards' UDP and ICE-TCP sockets; `::` = dual-stack (also
    /// `VENUE_MEDIA_BIND_IP`).
    #[arg(long, value_name = "IP")]
    pub media_bind_ip: Option<IpAddr>,
    /// UDP port of media shard 0; shard i uses base+i; 0 = ephemeral (also `VENUE_MEDIA_BASE_PORT`).
    #[arg(long, value_name = "PORT")]
    pub media_base_port: Option<u16>,
    /// Number of media shards, 0 = one per core (also `VENUE_MEDIA_SHARDS`).
    #[arg(long, value_name = "N")]
    pub media_shards: Option<usize>,
    /// IPs advertised as ICE host candidates, comma-separated (also `VENUE_MEDIA_CANDIDATE_IPS`).
    #[arg(long, value_name = "IP,IP", value_delimiter = ',')]
    pub media_candidate_ips: Option<Vec<IpAddr>>,
    /// Stage slots per room, 1..=9 (also `VENUE_MEDIA_MAX_SLOTS`).
    #[arg(long, value_name = "K")]
    pub media_max_slots: Option<usize>,
    /// WebRTC viewers per room before new viewers get HLS (also `VENUE_MAX_WEBRTC_VIEWERS`).
    #[arg(long, value_name = "N")]
    pub max_webrtc_viewers: Option<usize>,
    /// PEM certificate chain: serve HTTPS with HTTP/2 (also `VENUE_TLS_CERT`; needs --tls-key).
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (also `VENUE_TLS_KEY`).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// A one-off task instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `venue <command>`: tasks that run and exit.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Copies a venue's SQLite database into an empty PostgreSQL database (every table, ids
    /// kept, sequences moved past them); refuses a target that holds data. Stop `venue` first.
    Migrate {
        /// The SQLite database, e.g. sqlite://venue-data/venue.db.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The PostgreSQL database, e.g. postgres://venue:secret@127.0.0.1:5432/venue (better
        /// given through the environment of a script than typed: it holds the password).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig::default(),
            media: SfuConfig::default(),
            data_dir: PathBuf::from("./venue-data"),
            database: DatabaseConfig::default(),
            admin_token: None,
            interaction: InteractionConfig::default(),
            schedule: ScheduleConfig::default(),
            rtmp: RtmpConfig::default(),
            webhooks: WebhooksConfig::default(),
            hls: HlsConfig::default(),
            recording: RecordingConfig::default(),
            turn: venue_turn::TurnConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// Loads the configuration from the process environment and the given flags.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        Config::load_with_env(cli, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] with an explicit environment lookup (tests).
    pub fn load_with_env(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = cli
            .config
            .clone()
            .or_else(|| env("VENUE_CONFIG").map(PathBuf::from));
        let mut config = match path {
            Some(path) => Config::from_file(&path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.apply_cli(cli);
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file (no env, no flags, not validated).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text (no env, no flags, not validated).
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                reason: e.to_string(),
            })
        }
        if let Some(v) = env("VENUE_HTTP_LISTEN") {
            self.http.listen = parse("VENUE_HTTP_LISTEN", &v)?;
        }
        if let Some(v) = env("VENUE_RTMP_LISTEN") {
            self.rtmp.listen = parse("VENUE_RTMP_LISTEN", &v)?;
        }
        if let Some(v) = env("VENUE_RTMP_OPUS_BITRATE_KBPS") {
            self.rtmp.opus_bitrate_kbps = parse("VENUE_RTMP_OPUS_BITRATE_KBPS", &v)?;
        }
        if let Some(v) = env("VENUE_PUBLIC_URL") {
            self.http.public_url = Some(v);
        }
        if let Some(v) = env("VENUE_TRUSTED_PROXIES") {
            self.http.trusted_proxies = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse("VENUE_TRUSTED_PROXIES", s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("VENUE_TLS_CERT") {
            self.http.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = env("VENUE_TLS_KEY") {
            self.http.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = env("VENUE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("VENUE_DATABASE_URL") {
            self.database.url = Some(Secret::new(v));
        }
        if let Some(v) = env("VENUE_ADMIN_TOKEN") {
            self.admin_token = Some(Secret::new(v));
        }
        if let Some(v) = env("VENUE_TURN_ENABLED") {
            self.turn.enabled = parse("VENUE_TURN_ENABLED", &v)?;
        }
        if let Some(v) = env("VENUE_TURN_SECRET") {
            self.turn.secret = venue_turn::TurnSecret::new(v);
        }
        if let Some(v) = env("VENUE_MEDIA_BIND_IP") {
            self.media.bind_ip = parse("VENUE_MEDIA_BIND_IP", &v)?;
        }
        if let Some(v) = env("VENUE_MEDIA_ICE_TCP") {
            self.media.ice_tcp = parse("VENUE_MEDIA_ICE_TCP", &v)?;
        }
        if let Some(v) = env("VENUE_MEDIA_BASE_PORT") {
            self.media.base_port = parse("VENUE_MEDIA_BASE_PORT", &v)?;
        }
        if let Some(v) = env("VENUE_MEDIA_SHARDS") {
            self.media.shards = parse("VENUE_MEDIA_SHARDS", &v)?;
        }
        if let Some(v) = env("VENUE_MEDIA_CANDIDATE_IPS") {
            self.media.candidate_ips = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse("VENUE_MEDIA_CANDIDATE_IPS", s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("VENUE_MEDIA_MAX_SLOTS") {
            self.media.max_slots = parse("VENUE_MEDIA_MAX_SLOTS", &v)?;
        }
        if let Some(v) = env("VENUE_WEBHOOKS_URLS") {
            self.webhooks.urls = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env("VENUE_WEBHOOKS_SECRET") {
            self.webhooks.secret = Some(Secret::new(v));
        }
        if let Some(v) = env("VENUE_MAX_WEBRTC_VIEWERS") {
            self.hls.max_webrtc_viewers = parse("VENUE_MAX_WEBRTC_VIEWERS", &v)?;
        }
        if let Some(v) = env("VENUE_MAX_CPU_PERCENT") {
            self.hls.max_cpu_percent = parse("VENUE_MAX_CPU_PERCENT", &v)?;
        }
        if let Some(v) = env("VENUE_RECORDING_ENABLED") {
            self.recording.enabled = parse("VENUE_RECORDING_ENABLED", &v)?;
        }
        if let Some(v) = env("VENUE_REDIS_URL") {
            self.cluster.redis_url = Some(Secret::new(v));
        }
        if let Some(v) = env("VENUE_NODE_ID") {
            self.cluster.node_id = Some(v.trim().to_owned());
        }
        if let Some(v) = env("VENUE_INTERNAL_URL") {
            self.cluster.internal_url = Some(v);
        }
        if let Some(v) = env("VENUE_CLUSTER_SECRET") {
            self.cluster.secret = Some(Secret::new(v));
        }
        if let Some(v) = env("VENUE_CLUSTER_MAX_VIEWERS") {
            self.cluster.max_viewers = parse("VENUE_CLUSTER_MAX_VIEWERS", &v)?;
        }
        if let Some(v) = env("VENUE_DRAIN_TIMEOUT_S") {
            self.cluster.drain_timeout_s = parse("VENUE_DRAIN_TIMEOUT_S", &v)?;
        }
        if let Some(v) = env("VENUE_INTERACTION_PER_IP_FACTOR") {
            self.interaction.limits.per_ip_factor = parse("VENUE_INTERACTION_PER_IP_FACTOR", &v)?;
        }
        Ok(())
    }

    fn apply_cli(&mut self, cli: &Cli) {
        if let Some(v) = cli.http_listen {
            self.http.listen = v;
        }
        if let Some(v) = cli.rtmp_listen {
            self.rtmp.listen = v;
        }
        if let Some(v) = &cli.public_url {
            self.http.public_url = Some(v.clone());
        }
        if let Some(v) = &cli.tls_cert {
            self.http.tls_cert = Some(v.clone());
        }
        if let Some(v) = &cli.tls_key {
            self.http.tls_key = Some(v.clone());
        }
        if let Some(v) = &cli.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &cli.admin_token {
            self.admin_token = Some(Secret::new(v.clone()));
        }
        if let Some(v) = cli.media_bind_ip {
            self.media.bind_ip = v;
        }
        if let Some(v) = cli.media_base_port {
            self.media.base_port = v;
        }
        if let Some(v) = cli.media_shards {
            self.media.shards = v;
        }
        if let Some(v) = &cli.media_candidate_ips {
            self.media.candidate_ips = v.clone();
        }
        if let Some(v) = cli.media_max_slots {
            self.media.max_slots = v;
        }
        if let Some(v) = cli.max_webrtc_viewers {
            self.hls.max_webrtc_viewers = v;
        }
    }

    /// Checks ranges and normalises `public_url` (no trailing slash).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.media.validate()?;
        if let Some(url) = &self.database.url {
            crate::store::DatabaseUrl::parse(url.expose())
                .map_err(|e| ConfigError::Invalid(format!("database.url: {e}")))?;
        }
        if let Some(url) = &mut self.http.public_url {
            let trimmed = url.trim().trim_end_matches('/').to_owned();
            let rest = trimmed
                .strip_prefix("https://")
                .or_else(|| trimmed.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                    *url = trimmed
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "http.public_url must look like https://host[:port][/path], got {url:?}"
                    )));
                }
            }
        }
        self.http.validate_tls()?;
        if self.turn.enabled {
            // An empty secret is generated at start (data_dir/turn-secret) and the relay address
            // derived from [media] (crate::ice::completed): check the rest with stand-ins.
            let placeholder = venue_turn::TurnSecret::new("generated-at-start-0123456789");
            crate::ice::completed(&self.turn, &self.media, &placeholder)
                .validate()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        } else if !self.turn.urls.is_empty() && self.turn.secret.expose().len() < 16 {
            return Err(ConfigError::Invalid(
                "turn.secret (at least 16 characters, the external TURN server's shared secret) is required with turn.urls".into(),
            ));
        }
        if let Some(token) = &self.admin_token {
            let t = token.expose();
            if t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::Invalid(
                    "admin_token must be at least 8 characters without whitespace".into(),
                ));
            }
        }
        if !(1..=10_000).contains(&self.rtmp.max_connections)
            || !(1..=300).contains(&self.rtmp.publish_timeout_s)
        {
            return Err(ConfigError::Invalid(
                "rtmp.max_connections must be 1..=10000 and rtmp.publish_timeout_s 1..=300".into(),
            ));
        }
        if !(6..=510).contains(&self.rtmp.opus_bitrate_kbps) {
            return Err(ConfigError::Invalid(format!(
                "rtmp.opus_bitrate_kbps must be 6..=510, got {}",
                self.rtmp.opus_bitrate_kbps
            )));
        }
        let i = &self.interaction;
        if !(10..=1000).contains(&i.tick_ms) {
            return Err(ConfigError::Invalid(format!(
                "interaction.tick_ms must be 10..=1000, got {}",
                i.tick_ms
            )));
        }
        if !(1..=100_000).contains(&i.board_size) {
            return Err(ConfigError::Invalid(
                "interaction.board_size must be 1..=100000".into(),
            ));
        }
        if !(16..=65_536).contains(&i.ws_queue_frames) {
            return Err(ConfigError::Invalid(
                "interaction.ws_queue_frames must be 16..=65536".into(),
            ));
        }
        let l = &i.limits;
        if [l.chat, l.sticker, l.firework, l.cursor]
            .iter()
            .any(|r| r.per_second == 0 || r.burst == 0)
        {
            return Err(ConfigError::Invalid(
                "interaction.limits rates and bursts must be at least 1".into(),
            ));
        }
        if self.schedule.grace_before_s > 86_400 || self.schedule.grace_after_s > 3_600 {
            return Err(ConfigError::Invalid(
                "schedule.grace_before_s must be 0..=86400 and schedule.grace_after_s 0..=3600"
                    .into(),
            ));
        }
        self.webhooks.validate()?;
        let h = &self.hls;
        if !(128..=3840).contains(&h.width)
            || !(72..=2160).contains(&h.height)
            || !h.width.is_multiple_of(2)
            || !h.height.is_multiple_of(2)
            || !(1..=60).contains(&h.fps)
            || !(100..=50_000).contains(&h.video_bitrate_kbps)
        {
            return Err(ConfigError::Invalid(format!(
                "hls.width x hls.height must be even and 128x72..=3840x2160, hls.fps 1..=60, \
                 hls.video_bitrate_kbps 100..=50000; got {}x{} at {} fps, {} kbit/s",
                h.width, h.height, h.fps, h.video_bitrate_kbps
            )));
        }
        if self.hls.max_webrtc_viewers > 1_000_000 || self.hls.max_cpu_percent > 100 {
            return Err(ConfigError::Invalid(format!(
                "hls.max_webrtc_viewers must be 0..=1000000 and hls.max_cpu_percent 0..=100, got {} and {}",
                self.hls.max_webrtc_viewers, self.hls.max_cpu_percent
            )));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("data_dir must not be empty".into()));
        }
        self.validate_cluster()
    }

    /// `[cluster]`, in cluster mode only: the section itself, the admin token (every node must
    /// accept the same one: it cannot be generated per data dir), and a shared PostgreSQL
    /// database ([`cluster::check_cluster_database`]).
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if !self.cluster.enabled() {
            return Ok(());
        }
        self.cluster.validate().map_err(ConfigError::Invalid)?;
        if self.admin_token.is_none() {
            return Err(ConfigError::Invalid(
                "admin_token (VENUE_ADMIN_TOKEN) is required in cluster mode: every node must \
                 accept the same admin token, so it cannot be generated per data dir"
                    .into(),
            ));
        }
        let database = self.database.url.as_ref().map(Secret::expose);
        cluster::check_cluster_database(true, database).map_err(ConfigError::Invalid)
    }
}

/// `rtmp://<host>:<port>/live/<key>` (the RTMP URL a streamer puts in OBS) for base URL
/// `base` (its host) and `[rtmp]` (its listen port), or `None` when RTMP ingest is off.
pub fn rtmp_url(rtmp: &RtmpConfig, base: &str, key: &str) -> Option<String> {
    rtmp.enabled.then(|| {
        format!(
            "rtmp://{}:{}/live/{key}",
            crate::url::url_host(base),
            rtmp.listen.port()
        )
    })
}

#[cfg(test)]
#[path = "../tests/config.rs"]
mod tests;
