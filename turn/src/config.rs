//! `[turn]`: the TURN server's typed configuration, ready to be embedded in the gateway's
//! config (`deny_unknown_fields`, every field defaulted) and validated into a [`ShellConfig`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::core::CoreConfig;
use crate::policy::PeerPolicy;
use crate::shell::{ShellConfig, TLS_HANDSHAKE_TIMEOUT, TlsListen};
use crate::tls::TlsConfig;

/// The shared REST secret; its `Debug` never prints it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct TurnSecret(String);

impl TurnSecret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        TurnSecret(s.into())
    }
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(***)")
    }
}

/// `[turn]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// Run the embedded TURN server. Default false.
    pub enabled: bool,
    /// UDP listener; `None` disables it. Default `0.0.0.0:3478`.
    pub udp_listen: Option<SocketAddr>,
    /// TCP listener (RFC 8656 §12.5 framing); `None` disables it. Default `0.0.0.0:3478`.
    pub tcp_listen: Option<SocketAddr>,
    /// TURN over TLS listener (RFC 8656 §3.1, `turns:` URIs; 5349 is the standard port, 443
    /// gets through most firewalls); `None` disables it. Needs `tls_cert` and `tls_key`.
    /// Default none.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for `tls_listen` (leaf first). Required when `tls_listen` is set.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Required when `tls_listen` is
    /// set.
    pub tls_key: Option<PathBuf>,
    /// IPv4 address relay sockets bind to. Default `0.0.0.0` (then `relay_public_ip` is
    /// required).
    pub relay_ip: Ipv4Addr,
    /// IPv4 address advertised in XOR-RELAYED-ADDRESS (the public IP behind 1:1 NAT, or the
    /// host's IP when `relay_ip` is unspecified). Default: `relay_ip`.
    pub relay_public_ip: Option<Ipv4Addr>,
    /// IPv6 address for IPv6 relays (REQUESTED-ADDRESS-FAMILY); `None`: 440. Default none.
    pub relay_ipv6: Option<Ipv6Addr>,
    /// REALM (RFC 8489 §14.9). Default `"venue"`.
    pub realm: String,
    /// Shared secret of the TURN REST credentials, at least 16 characters; required when
    /// enabled. coturn's `static-auth-secret` with `use-auth-secret` takes the same value.
    pub secret: TurnSecret,
    /// Lifetime of the credentials the gateway issues, seconds, 60..=604800. Default 86400.
    pub credential_ttl_s: u64,
    /// Peers relays may reach (the SFU's media addresses; port 0 = every port of that IP).
    /// Private, loopback, link-local and metadata addresses are only reachable when listed.
    pub allowed_peers: Vec<SocketAddr>,
    /// Also allow global unicast peers (never the special ranges). Default false: Venue only
    /// needs its own SFU.
    pub allow_public_peers: bool,
    /// Allocation lifetime when the client asks for none, seconds (RFC 8656 §7.2). Default 600.
    pub default_lifetime_s: u64,
    /// Longest allocation lifetime, seconds, `default_lifetime_s..=86400`. Default 3600.
    pub max_lifetime_s: u64,
    /// NONCE validity, seconds, 30..=86400 (438 Stale Nonce after). Default 600.
    pub nonce_ttl_s: u64,
    /// Allocations one credential id may hold at once (486 beyond), ≥ 1. Default 5.
    pub max_allocations_per_user: usize,
    /// Allocations in all (508 beyond), ≥ 1. Default 10000.
    pub max_allocations: usize,
    /// Relayed bit/s per allocation, both directions together; excess dropped and counted.
    /// 0 = unlimited. Default 5000000.
    pub bandwidth_bps: u64,
    /// TCP and TLS connections open at once (both listeners together), ≥ 1. Default 4096.
    pub max_tcp_connections: usize,
    /// TURN URIs handed to clients (RFC 7065 syntax, e.g. `turn:turn.example.org:3478?transport=udp`,
    /// `turns:turn.example.org:5349?transport=tcp`). Empty with `enabled`: the gateway derives
    /// them from the listeners and [`TurnConfig::advertised_ip`]. Non-empty with `enabled = false`:
    /// an external TURN server (coturn with `use-auth-secret` and `static-auth-secret` = `secret`)
    /// for which the gateway issues credentials. Default empty.
    pub urls: Vec<String>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            enabled: false,
            udp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            tcp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            relay_ip: Ipv4Addr::UNSPECIFIED,
            relay_public_ip: None,
            relay_ipv6: None,
            realm: "venue".into(),
            secret: TurnSecret::default(),
            credential_ttl_s: 86_400,
            allowed_peers: Vec::new(),
            allow_public_peers: false,
            default_lifetime_s: 600,
            max_lifetime_s: 3600,
            nonce_ttl_s: 600,
            max_allocations_per_user: 5,
            max_allocations: 10_000,
            bandwidth_bps: 5_000_000,
            max_tcp_connections: 4096,
            urls: Vec::new(),
        }
    }
}

/// A configuration value out of range; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("turn.{0}")]
pub struct ConfigError(pub String);

impl TurnConfig {
    /// Checks ranges and builds the shell configuration; with `tls_listen` set it also reads
    /// `tls_cert` and `tls_key` (start-up is where a bad certificate should surface).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key: a short secret, an unspecified relay IP without
    /// `relay_public_ip`, lifetimes, TTLs or quotas out of range, `tls_listen` without
    /// `tls_cert` / `tls_key`, an unreadable or empty PEM file (with its path), a key that does
    /// not fit the certificate.
    pub fn validate(&self) -> Result<ShellConfig, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.secret.expose().len() < 16 {
            return err("secret must be at least 16 characters".into());
        }
        if self.relay_ip.is_unspecified() && self.relay_public_ip.is_none() {
            return err("relay_public_ip is required when relay_ip is 0.0.0.0".into());
        }
        if !(60..=604_800).contains(&self.credential_ttl_s) {
            return err(format!(
                "credential_ttl_s must be 60..=604800, got {}",
                self.credential_ttl_s
            ));
        }
        if self.default_lifetime_s == 0
            || self.max_lifetime_s < self.default_lifetime_s
            || self.max_lifetime_s > 86_400
        {
            return err("default_lifetime_s must be ≥ 1 and ≤ max_lifetime_s ≤ 86400".into());
        }
        if !(30..=86_400).contains(&self.nonce_ttl_s) {
            return err(format!(
                "nonce_ttl_s must be 30..=86400, got {}",
                self.nonce_ttl_s
            ));
        }
        if self.max_allocations_per_user == 0
            || self.max_allocations == 0
            || self.max_tcp_connections == 0
        {
            return err(
                "max_allocations_per_user, max_allocations and max_tcp_connections must be ≥ 1"
                    .into(),
            );
        }
        if self.realm.is_empty() || self.realm.len() > 763 {
            return err("realm must be 1..=763 bytes (RFC 8489 §14.9)".into());
        }
        let tls = match (self.tls_listen, &self.tls_cert, &self.tls_key) {
            (None, _, _) => None,
            (Some(_), None, _) => return err("tls_cert is required when tls_listen is set".into()),
            (Some(_), _, None) => return err("tls_key is required when tls_listen is set".into()),
            (Some(listen), Some(cert), Some(key)) => Some(TlsListen {
                listen,
                config: TlsConfig::from_pem_files(cert, key)
                    .map_err(|e| ConfigError(e.to_string()))?,
                handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            }),
        };
        Ok(ShellConfig {
            udp_listen: self.udp_listen,
            tcp_listen: self.tcp_listen,
            tls,
            relay_ipv4: self.relay_ip,
            relay_public_ipv4: self.relay_public_ip,
            relay_ipv6: self.relay_ipv6,
            max_tcp_connections: self.max_tcp_connections,
            core: CoreConfig {
                realm: self.realm.clone(),
                secret: self.secret.expose().as_bytes().to_vec(),
                policy: PeerPolicy {
                    allowed: self.allowed_peers.clone(),
                    allow_public_peers: self.allow_public_peers,
                },
                default_lifetime: Duration::from_secs(self.default_lifetime_s),
                max_lifetime: Duration::from_secs(self.max_lifetime_s),
                nonce_ttl: Duration::from_secs(self.nonce_ttl_s),
                max_allocations_per_user: self.max_allocations_per_user,
                bandwidth_bytes_per_s: self.bandwidth_bps / 8,
                max_allocations: self.max_allocations,
                ipv6_relays: self.relay_ipv6.is_some(),
            },
        })
    }

    /// The relays' advertised IP, if it is known (for ICE server URLs).
    pub fn advertised_ip(&self) -> Option<IpAddr> {
        self.relay_public_ip
            .or((!self.relay_ip.is_unspecified()).then_some(self.relay_ip))
            .map(IpAddr::V4)
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
