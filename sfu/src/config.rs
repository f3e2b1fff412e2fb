//! Media-plane configuration.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// Configuration of the media plane (`[media]` in the TOML file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SfuConfig {
    /// Interface selection: the address the shards' UDP sockets (and ICE-TCP listeners) bind
    /// to. `0.0.0.0` = every IPv4 interface; `::` = every interface, IPv4 and IPv6 (the
    /// sockets are dual-stack: IPv4 peers arrive as IPv4-mapped addresses and are handled as
    /// plain IPv4); a specific address = that interface only. Default `0.0.0.0`.
    pub bind_ip: IpAddr,
    /// UDP port of shard 0; shard i listens on `base_port + i` (UDP, and TCP on the same
    /// number when `ice_tcp` is on). `0` = ephemeral ports (tests). Default 50000.
    pub base_port: u16,
    /// Number of shards (threads, one UDP socket each). `0` = one per CPU core. Default 0.
    pub shards: usize,
    /// Public IP / 1:1 NAT mapping: the IPs advertised as ICE host candidates (UDP, and TCP
    /// when `ice_tcp` is on) *instead of* the local ones. Traffic that arrives at a local
    /// address that is not listed (e.g. the private address behind a 1:1 NAT that forwards
    /// the public one) is matched to the listed candidate of the sender's IP family and scope
    /// (loopback to loopback). Empty = the bind IP if it is specific; else every local IPv4
    /// interface address (loopback included) and, when `bind_ip` is `::`, the global and
    /// unique-local (ULA, `fc00::/7`) IPv6 addresses (no link-local, no `::1`). Default empty.
    pub candidate_ips: Vec<IpAddr>,
    /// ICE-TCP (RFC 6544, passive candidates, RFC 4571 framing) for viewers and publishers
    /// whose network blocks UDP: each shard also listens on TCP at its UDP port number, and
    /// every session's answer carries a `tcptype passive` host candidate per candidate
    /// address (at a lower priority than UDP, so browsers use TCP only when UDP fails).
    /// Default true.
    pub ice_tcp: bool,
    /// Most ICE-TCP connections open at once, all shards together; a connection over the
    /// limit is closed as soon as it is accepted (counted in `IceTcpStats::refused`).
    /// 1..=1_000_000. Default 4096.
    pub ice_tcp_max_connections: usize,
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
            ice_tcp: true,
            ice_tcp_max_connections: 4096,
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
    #[error("media.ice_tcp_max_connections must be 1..=1000000, got {0}")]
    IceTcpMaxConnections(usize),
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
        if !(1..=1_000_000).contains(&self.ice_tcp_max_connections) {
            return Err(ConfigError::IceTcpMaxConnections(
                self.ice_tcp_max_connections,
            ));
        }
        Ok(())
    }

    /// The keyframe request throttle as a `Duration`.
    pub fn keyframe_request_interval(&self) -> Duration {
        Duration::from_millis(self.keyframe_request_interval_ms)
    }
}
