//! ICE servers handed to clients: TURN REST credentials (draft-uberti-behave-turn-rest-00
//! §2.2) for Venue's embedded TURN server (`[turn] enabled = true`, [`venue_turn`]) or an
//! external one sharing the secret (coturn `use-auth-secret` + `static-auth-secret`:
//! `[turn] enabled = false`, `secret`, `urls`).
//!
//! Clients get them two ways, with the same credentials:
//! - WHIP/WHEP `201 Created` answers carry one `Link: <uri>; rel="ice-server"; username="…";
//!   credential="…"; credential-type="password"` header per URI (RFC 9725 §4.6, the WHEP draft
//!   §4.4 says the same);
//! - `GET /api/ice-servers` → `{"ice_servers": [RTCIceServer…], "ttl_s": n}` for the web pages,
//!   which need them before they create their `RTCPeerConnection` (served by `http::ice`).
//!
//! Each issue gets its own random credential id (TURN quotas are per id: allocations per user,
//! bandwidth per allocation), except WHIP/WHEP sessions, whose id is the session id.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Serialize;
use venue_sfu::SfuConfig;
use venue_turn::{TurnConfig, TurnSecret, TurnServer};

/// One ICE server as `RTCIceServer` (W3C WebRTC §4.2.2) wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// TURN URIs (RFC 7065): `turn:host:port?transport=udp|tcp`, `turns:host:port?transport=tcp`.
    pub urls: Vec<String>,
    /// `"<expiry unix s>:<id>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// The body of `GET /api/ice-servers`.
#[derive(Debug, Clone, Serialize)]
pub struct IceServersAnswer {
    /// Empty when no TURN server is configured (host and ICE-TCP candidates only).
    pub ice_servers: Vec<IceServer>,
    /// How long the credentials stay valid, seconds (fetch new ones for a later connection).
    pub ttl_s: u64,
}

/// Issues TURN credentials for the configured URIs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    urls: Vec<String>,
    secret: Vec<u8>,
    ttl: Duration,
}

impl IceServers {
    /// No TURN server: nothing is issued.
    pub fn none() -> IceServers {
        IceServers::default()
    }

    /// Credentials for `urls` under `secret`, valid `ttl`. Empty `urls` → [`IceServers::none`].
    pub fn new(urls: Vec<String>, secret: &[u8], ttl: Duration) -> IceServers {
        if urls.is_empty() {
            return IceServers::none();
        }
        IceServers {
            inner: Some(Arc::new(Inner {
                urls,
                secret: secret.to_vec(),
                ttl,
            })),
        }
    }

    /// The URIs handed out (empty when none).
    pub fn urls(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |i| &i.urls)
    }

    /// Credential lifetime, seconds (0 when none).
    pub fn ttl_s(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.ttl.as_secs())
    }

    /// The ICE servers for credential id `id` at `now` (one entry, every URI; empty when none).
    pub fn issue(&self, id: &str, now: SystemTime) -> Vec<IceServer> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let (username, credential) =
            venue_turn::rest_credentials(&inner.secret, id, inner.ttl, now);
        vec![IceServer {
            urls: inner.urls.clone(),
            username,
            credential,
        }]
    }

    /// One `Link` header value per URI for credential id `id` at `now` (RFC 9725 §4.6):
    /// `<uri>; rel="ice-server"; username="…"; credential="…"; credential-type="password"`.
    pub fn link_values(&self, id: &str, now: SystemTime) -> Vec<String> {
        let mut values = Vec::new();
        for server in self.issue(id, now) {
            for url in &server.urls {
                values.push(format!(
                    "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    server.username, server.credential
                ));
            }
        }
        values
    }
}

/// The running embedded TURN server, shared by the app state (dropping the last clone stops it).
#[derive(Clone)]
pub struct EmbeddedTurn(Arc<TurnServer>);

impl EmbeddedTurn {
    /// Wraps a started server.
    pub fn new(server: TurnServer) -> EmbeddedTurn {
        EmbeddedTurn(Arc::new(server))
    }
    /// The server itself (listener addresses, counters).
    pub fn server(&self) -> &TurnServer {
        &self.0
    }
}

impl std::fmt::Debug for EmbeddedTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedTurn")
            .field("udp", &self.0.udp_addr())
            .field("tcp", &self.0.tcp_addr())
            .finish()
    }
}

/// A fresh random credential id (96 bits, base64url): one per page asking.
pub fn random_id() -> String {
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SFU's media addresses a relay may reach: every advertised host candidate IP (the
/// configured `candidate_ips`, else the bind IP when specific, else the machine's interface
/// addresses) at every shard port. Exact ports: nothing else on those hosts is reachable.
pub fn media_peers(media: &SfuConfig, shard_addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    let mut peers = Vec::new();
    for shard in shard_addrs {
        for addr in venue_sfu::shard::candidate_addrs(media, shard.port(), &interfaces) {
            if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
        // Whatever the candidates say, the socket's own specific address is Venue's too.
        if !shard.ip().is_unspecified() && !peers.contains(shard) {
            peers.push(*shard);
        }
    }
    peers
}

/// The URIs of an embedded server (RFC 7065 §3.1): `turn:<advertised ip>:<port>?transport=udp`
/// and `…?transport=tcp` for the bound listeners, and `turns:<tls host>:<port>?transport=tcp`
/// for TURN over TLS, where the host must be one the certificate names (`http.public_url`'s
/// host when set, else the advertised IP). IPv6 hosts are bracketed.
pub fn embedded_urls(
    advertised: IpAddr,
    tls_host: Option<&str>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
) -> Vec<String> {
    let host = match advertised {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut urls = Vec::new();
    if let Some(a) = udp {
        urls.push(format!("turn:{host}:{}?transport=udp", a.port()));
    }
    if let Some(a) = tcp {
        urls.push(format!("turn:{host}:{}?transport=tcp", a.port()));
    }
    if let Some(a) = tls {
        let tls_host = tls_host.unwrap_or(&host);
        urls.push(format!("turns:{tls_host}:{}?transport=tcp", a.port()));
    }
    urls
}

/// What `[turn] enabled = true` alone leaves open, filled in: an empty `secret` becomes
/// `secret` (the gateway's generated `data_dir/turn-secret`), and with `relay_ip` 0.0.0.0 and
/// no `relay_public_ip` the relays advertise [`default_relay_ip`] — so the embedded server is
/// one switch. Explicit settings are kept.
pub fn completed(turn: &TurnConfig, media: &SfuConfig, secret: &TurnSecret) -> TurnConfig {
    let mut t = turn.clone();
    if t.secret.expose().is_empty() {
        t.secret = secret.clone();
    }
    if t.relay_ip.is_unspecified() && t.relay_public_ip.is_none() {
        t.relay_public_ip = Some(default_relay_ip(media));
    }
    t
}

/// The IPv4 address clients reach this host at, as the SFU advertises it: the first IPv4
/// `media.candidate_ips` (public IP / 1:1 NAT), else a specific `media.bind_ip`, else the first
/// non-loopback interface address, else 127.0.0.1.
pub fn default_relay_ip(media: &SfuConfig) -> Ipv4Addr {
    let v4 = |ip: &IpAddr| match ip {
        IpAddr::V4(v) if !v.is_unspecified() => Some(*v),
        _ => None,
    };
    media
        .candidate_ips
        .iter()
        .find_map(v4)
        .or_else(|| v4(&media.bind_ip))
        .or_else(|| {
            if_addrs::get_if_addrs()
                .ok()?
                .iter()
                .map(|i| i.ip())
                .filter(|ip| !ip.is_loopback())
                .find_map(|ip| v4(&ip))
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

/// The TURN secret generated on first start when `[turn] secret` is empty:
/// `data_dir/turn-secret` (32 random bytes, base64url), kept across restarts so credentials
/// issued before a restart stay valid. Errors: the file cannot be read or written.
pub fn stored_secret(data_dir: &std::path::Path) -> anyhow::Result<TurnSecret> {
    let path = data_dir.join("turn-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(TurnSecret::new(text.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    std::fs::create_dir_all(data_dir)?;
    crate::write_private(&path, &secret)
        .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))?;
    Ok(TurnSecret::new(secret))
}

/// Starts the embedded TURN server when `[turn] enabled`, allowing relays to the SFU's media
/// addresses on top of `allowed_peers`, and returns it with the ICE servers to hand out.
/// `[turn] enabled = false` with `urls`: credentials for that external server, nothing started.
///
/// # Errors
/// The `[turn]` section is invalid (secret, relay address, ranges), or a listener cannot bind.
pub async fn start(
    turn: &TurnConfig,
    media: &SfuConfig,
    shard_addrs: &[SocketAddr],
    public_url: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Option<TurnServer>, IceServers)> {
    let ttl = Duration::from_secs(turn.credential_ttl_s);
    if !turn.enabled {
        if turn.urls.is_empty() {
            return Ok((None, IceServers::none()));
        }
        // External TURN server: only the secret and the TTL matter here.
        if turn.secret.expose().len() < 16 {
            anyhow::bail!("turn.secret must be at least 16 characters (turn.urls is set)");
        }
        return Ok((
            None,
            IceServers::new(turn.urls.clone(), turn.secret.expose().as_bytes(), ttl),
        ));
    }
    let secret = if turn.secret.expose().is_empty() {
        stored_secret(data_dir)?
    } else {
        turn.secret.clone()
    };
    let turn = &completed(turn, media, &secret);
    let mut config = turn.clone();
    for peer in media_peers(media, shard_addrs) {
        if !config.allowed_peers.contains(&peer) {
            config.allowed_peers.push(peer);
        }
    }
    let shell = config.validate()?;
    let server = TurnServer::start(shell).await?;
    let urls = if !turn.urls.is_empty() {
        turn.urls.clone()
    } else {
        let Some(ip) = turn.advertised_ip() else {
            anyhow::bail!("turn.relay_public_ip or turn.urls is required when relay_ip is 0.0.0.0");
        };
        embedded_urls(
            ip,
            public_url
                .map(crate::url::url_host)
                .filter(|h| !h.is_empty()),
            server.udp_addr(),
            server.tcp_addr(),
            server.tls_addr(),
        )
    };
    tracing::info!(
        udp = ?server.udp_addr(),
        tcp = ?server.tcp_addr(),
        tls = ?server.tls_addr(),
        ?urls,
        peers = ?config.allowed_peers,
        "TURN server listening"
    );
    let ice = IceServers::new(urls, turn.secret.expose().as_bytes(), ttl);
    Ok((Some(server), ice))
}

#[cfg(test)]
#[path = "tests/ice.rs"]
mod tests;
