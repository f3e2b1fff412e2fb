//! Media-plane configuration.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// Configuration of the media plane (`[media]` in the TOML file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SfuConfig {
    /// Address the shards' UDP sockets bind to. Default `0.0.0.0`.
    pub bind_ip: IpAddr,
    /// UDP port of shard 0; shard i listens on `base_port + i`. `0` = ephemeral ports
    /// (tests). Default 50000.
    pub base_port: u16,
    /// Number of shards (threads, one UDP socket each). `0` = one per CPU core. Default 0.
    pub shards: usize,
    /// IPs advertised as ICE host candidates. Empty = the bind IP if it is specific, else every
    /// local interface address (loopback included). Default empty.
    pub candidate_ips: Vec<IpAddr>,
    /// Stage slots per room (K), 1..=9. Default 4.
    pub max_slots: usize,
    /// Minimum interval between keyframe requests (PLI/FIR) sent to one publisher's layer, in
    /// milliseconds. Default 250.
    pub keyframe_request_interval_ms: u64,
    /// Initial egress bitrate estimate for subscribers, bit/s. Default 3_000_000.
    pub initial_bitrate_bps: u64,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            base_port: 50000,
            shards: 0,
            candidate_ips: Vec::new(),
            max_slots: 4,
            keyframe_request_interval_ms: 250,
            initial_bitrate_bps: 3_000_000,
        }
    }
}

/// A configuration value out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("media.max_slots must be 1..=9, got {0}")]
    MaxSlots(usize),
    #[error("media.shards must be at most 64, got {0}")]
    Shards(usize),
}

impl SfuConfig {
    /// Checks ranges. Errors: [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=9).contains(&self.max_slots) {
            return Err(ConfigError::MaxSlots(self.max_slots));
        }
        if self.shards > 64 {
            return Err(ConfigError::Shards(self.shards));
        }
        Ok(())
    }

    /// The keyframe request throttle as a `Duration`.
    pub fn keyframe_request_interval(&self) -> Duration {
        Duration::from_millis(self.keyframe_request_interval_ms)
    }
}
