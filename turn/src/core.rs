//! The sans-IO TURN server core (RFC 8656): allocations, permissions, channels, the
//! long-term credential mechanism with TURN REST usernames, quotas and the peer policy.
//!
//! It never reads the clock, never touches a socket: every call takes `now`, and what must be
//! sent comes back as [`Output`]s for the shell (or a test) to carry out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use crate::auth::{self, NonceState, Nonces};
use crate::policy::PeerPolicy;
use crate::stun::{self, Builder, Class, Message, attr, method};

/// The transport a client reached the server over (RFC 8656 §3.1, the 5-tuple's protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP 3478.
    Udp,
    /// TCP 3478 (RFC 8656 §12.5 framing).
    Tcp,
    /// TLS over TCP 5349 (RFC 8656 §3.1; the same framing inside TLS).
    Tls,
}

impl Transport {
    /// TCP or TLS: a byte stream, where ChannelData is padded to 4 bytes (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// A client's 5-tuple as the core sees it: its transport and source address (the server side
/// is the one listener of that transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// The client's address as seen by the server (its reflexive address).
    pub client: SocketAddr,
}

/// Core configuration (the shell's config embeds it).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// REALM (RFC 8489 §14.9).
    pub realm: String,
    /// Shared secret of the TURN REST credentials (the gateway signs usernames with it).
    pub secret: Vec<u8>,
    /// Which peers relays may reach.
    pub policy: PeerPolicy,
    /// Allocation lifetime when the client asks for none (RFC 8656 §7.2: 600 s).
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted (3600 s).
    pub max_lifetime: Duration,
    /// How long a NONCE stays valid before 438 Stale Nonce (RFC 8489 §9.2).
    pub nonce_ttl: Duration,
    /// Allocations one REST user id may hold at once (486 Allocation Quota Reached beyond).
    pub max_allocations_per_user: usize,
    /// Relayed bytes per second per allocation, both directions together (token bucket with a
    /// one-second burst); excess packets are dropped and counted. 0 = unlimited.
    pub bandwidth_bytes_per_s: u64,
    /// Allocations in all (508 Insufficient Capacity beyond).
    pub max_allocations: usize,
    /// IPv6 relays can be bound; without, REQUESTED-ADDRESS-FAMILY IPv6 gets 440 (RFC 8656
    /// §7.2). The shell sets it from its configuration.
    pub ipv6_relays: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            realm: "venue".into(),
            secret: Vec::new(),
            policy: PeerPolicy::default(),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(600),
            max_allocations_per_user: 5,
            bandwidth_bytes_per_s: 5_000_000 / 8,
            max_allocations: 10_000,
            ipv6_relays: false,
        }
    }
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` to the client over `transport` (a STUN response, Data indication or
    /// ChannelData).
    ToClient {
        /// The client's 5-tuple.
        to: FiveTuple,
        /// Wire bytes (ChannelData is padded on TCP and TLS).
        bytes: Vec<u8>,
    },
    /// Send `bytes` from the relay socket `relay` to `peer` (UDP).
    ToPeer {
        /// The allocation's relayed transport address.
        relay: SocketAddr,
        /// Destination peer.
        peer: SocketAddr,
        /// Application data.
        bytes: Vec<u8>,
    },
    /// Bind a UDP relay socket for the client's new allocation, then call
    /// [`TurnCore::relay_bound`] with its address (or the failure).
    BindRelay {
        /// The allocation's 5-tuple.
        client: FiveTuple,
        /// Relay address family: true for IPv6 (REQUESTED-ADDRESS-FAMILY, RFC 8656 §18.11).
        ipv6: bool,
    },
    /// Close the relay socket of a deleted or expired allocation.
    ReleaseRelay {
        /// The relayed transport address.
        relay: SocketAddr,
    },
}

/// Counters (Prometheus-ready, monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs dropped as malformed (bad lengths, cookie, attributes, FINGERPRINT, ChannelData).
    pub malformed: u64,
    /// Responses 401 / 438 sent.
    pub unauthorized: u64,
    /// Requests or indications refused by the peer policy (403, or a dropped Send).
    pub forbidden: u64,
    /// Allocate refused by quota (486) or capacity (508).
    pub quota_refused: u64,
    /// Packets dropped by the bandwidth quota.
    pub bandwidth_dropped_packets: u64,
    /// Bytes dropped by the bandwidth quota.
    pub bandwidth_dropped_bytes: u64,
    /// Packets dropped for no permission / no channel / no allocation.
    pub unroutable: u64,
    /// Packets relayed client → peer.
    pub relayed_to_peer: u64,
    /// Packets relayed peer → client.
    pub relayed_to_client: u64,
    /// Allocations created.
    pub allocations_created: u64,
    /// TLS handshakes that failed or timed out (filled in by the shell; the core never sees
    /// TLS).
    pub tls_handshakes_failed: u64,
    /// TCP and TLS connections closed on accept because `max_tcp_connections` were open
    /// (filled in by the shell).
    pub connections_refused: u64,
    /// Packets the shell could not send: the kernel refused a datagram (full socket send
    /// buffer, ICMP error) or a TCP/TLS connection's write queue was full (filled in by the
    /// shell).
    pub send_dropped: u64,
}

struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: SystemTime,
}

struct Allocation {
    user_id: String,
    username: String,
    key: [u8; 16],
    relay: Option<SocketAddr>,
    expires: SystemTime,
    /// Allocate's transaction id and its requested lifetime (for the pending response and
    /// retransmissions, RFC 8656 §7.2).
    allocate_txid: [u8; 12],
    allocate_sha256: bool,
    /// The lifetime granted by Allocate, in seconds (reported in LIFETIME).
    granted: u32,
    permissions: Vec<(IpAddr, SystemTime)>,
    channels: Vec<Channel>,
    tokens: f64,
    refilled: SystemTime,
}

/// Permission lifetime (RFC 8656 §9: 300 s).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12: 600 s).
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Permissions per allocation.
const MAX_PERMISSIONS: usize = 64;
/// Channels per allocation.
const MAX_CHANNELS: usize = 64;
/// Largest application data relayed.
const MAX_DATA: usize = 65_535 - 36;

/// The TURN server state machine. Feed it client bytes ([`TurnCore::handle`]), peer bytes
/// ([`TurnCore::handle_peer`]), relay binds ([`TurnCore::relay_bound`]), closed TCP
/// connections ([`TurnCore::connection_closed`]) and time ([`TurnCore::expire`]); carry out
/// the [`Output`]s.
pub struct TurnCore {
    config: CoreConfig,
    nonces: Nonces,
    allocations: HashMap<FiveTuple, Allocation>,
    by_relay: HashMap<SocketAddr, FiveTuple>,
    per_user: HashMap<String, usize>,
    stats: Stats,
}

/// What authentication of a request found.
enum Auth {
    /// Answered (401 / 438 / 400); nothing more to do.
    Refused,
    /// Valid: the username, its user id, the long-term key.
    Ok {
        username: String,
        user_id: String,
        key: [u8; 16],
    },
}

impl TurnCore {
    /// A core with `config`. Nonces are signed with a key derived from the REST secret.
    pub fn new(config: CoreConfig) -> Self {
        let nonce_key = {
            use hmac::{Hmac, Mac};
            match Hmac::<sha2::Sha256>::new_from_slice(&config.secret) {
                Ok(mut mac) => {
                    mac.update(b"venue-turn nonce key");
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => config.secret.clone(),
            }
        };
        TurnCore {
            nonces: Nonces::new(&nonce_key, config.nonce_ttl),
            config,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_user: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Allocations now (pending ones included).
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Handles bytes from a client (one UDP datagram or one TCP frame, see
    /// [`stun::tcp_frame_len`]): STUN requests (Binding, Allocate, Refresh, CreatePermission,
    /// ChannelBind; RFC 8656 §7–§12), Send indications (§11.2) and ChannelData (§12.6).
    /// Malformed input is dropped and counted in [`Stats::malformed`]; nothing panics.
    pub fn handle(
        &mut self,
        now: SystemTime,
        transport: Transport,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let ft = FiveTuple {
            transport,
            client: from,
        };
        if stun::is_channel_data(bytes) {
            self.channel_data(now, ft, bytes, &mut out);
            return out;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return out;
            }
        };
        match (msg.class, msg.method) {
            (Class::Request, _) => {
                // RFC 8489 §6.3.1 / RFC 5389 §7.3.1: unknown comprehension-required
                // attributes → 420, after authentication (done in `authenticate`) for the
                // TURN methods; Binding is unauthenticated.
                if msg.method == method::BINDING
                    && self.unknown_attributes(&msg, ft, None, &mut out)
                {
                    return out;
                }
                match msg.method {
                    method::BINDING => self.binding(&msg, ft, &mut out),
                    method::ALLOCATE => self.allocate(now, &msg, ft, &mut out),
                    method::REFRESH => self.refresh(now, &msg, ft, &mut out),
                    method::CREATE_PERMISSION => self.create_permission(now, &msg, ft, &mut out),
                    method::CHANNEL_BIND => self.channel_bind(now, &msg, ft, &mut out),
                    _ => self.error(&msg, ft, 400, "Bad Request", None, |_| {}, &mut out),
                }
            }
            (Class::Indication, method::SEND) => self.send_indication(now, &msg, ft, &mut out),
            // Binding indications (keepalives) and anything else: nothing to answer.
            _ => {}
        }
        out
    }

    /// Handles a datagram that arrived on relay socket `relay` from `peer` (RFC 8656 §11.3,
    /// §12.7): forwarded to the client as ChannelData when a channel is bound to `peer`, else
    /// as a Data indication, if a permission for the peer's IP exists, the policy allows the
    /// peer and the bandwidth quota has room; otherwise dropped and counted.
    pub fn handle_peer(
        &mut self,
        now: SystemTime,
        relay: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(ft) = self.by_relay.get(&relay).copied() else {
            self.stats.unroutable += 1;
            return out;
        };
        let Some(a) = self.allocations.get_mut(&ft) else {
            self.stats.unroutable += 1;
            return out;
        };
        if bytes.len() > MAX_DATA
            || !self.config.policy.permits(peer)
            || !a
                .permissions
                .iter()
                .any(|(ip, exp)| *ip == peer.ip() && *exp > now)
        {
            self.stats.unroutable += 1;
            return out;
        }
        if !take_tokens(a, &self.config, now, bytes.len(), &mut self.stats) {
            return out;
        }
        let mut wire = Vec::with_capacity(bytes.len() + 40);
        if let Some(ch) = a
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
        {
            stun::write_channel_data(&mut wire, ch.number, bytes, ft.transport.is_stream());
        } else {
            let mut txid = [0u8; 12];
            let n = self.stats.relayed_to_client.to_be_bytes();
            txid[4..].copy_from_slice(&n);
            Builder::new(&mut wire, method::DATA, Class::Indication, txid)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer)
                .attr(attr::DATA, bytes);
        }
        self.stats.relayed_to_client += 1;
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
        out
    }

    /// The shell bound (or failed to bind) the relay socket asked for by
    /// [`Output::BindRelay`]: answers the pending Allocate with success (XOR-RELAYED-ADDRESS,
    /// LIFETIME, XOR-MAPPED-ADDRESS, RFC 8656 §7.2) or 508 Insufficient Capacity.
    pub fn relay_bound(&mut self, client: FiveTuple, relay: Result<SocketAddr, ()>) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(a) = self.allocations.get_mut(&client) else {
            if let Ok(relay) = relay {
                out.push(Output::ReleaseRelay { relay });
            }
            return out;
        };
        match relay {
            Ok(addr) => {
                a.relay = Some(addr);
                self.by_relay.insert(addr, client);
                let lifetime = a.granted;
                let key = a.key;
                let sha = a.allocate_sha256;
                let txid = a.allocate_txid;
                let mut wire = Vec::with_capacity(128);
                let mut b = Builder::new(&mut wire, method::ALLOCATE, Class::Success, txid);
                b.xor_addr(attr::XOR_RELAYED_ADDRESS, addr)
                    .u32(attr::LIFETIME, lifetime)
                    .xor_addr(attr::XOR_MAPPED_ADDRESS, client.client);
                finish(&mut b, &key, sha);
                out.push(Output::ToClient {
                    to: client,
                    bytes: wire,
                });
            }
            Err(()) => {
                let a = self.remove(&client, &mut out);
                if let Some(a) = a {
                    let mut wire = Vec::new();
                    let mut b =
                        Builder::new(&mut wire, method::ALLOCATE, Class::Error, a.allocate_txid);
                    b.error(508, "Insufficient Capacity");
                    finish(&mut b, &a.key, a.allocate_sha256);
                    out.push(Output::ToClient {
                        to: client,
                        bytes: wire,
                    });
                }
            }
        }
        out
    }

    /// A TCP connection closed: its allocation goes (RFC 8656 §3.1, the 5-tuple is gone).
    pub fn connection_closed(&mut self, client: FiveTuple) -> Vec<Output> {
        let mut out = Vec::new();
        self.remove(&client, &mut out);
        out
    }

    /// Drops expired allocations, permissions and channels (RFC 8656 §7, §9, §12); call
    /// about once a second.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Output> {
        let mut out = Vec::new();
        let dead: Vec<FiveTuple> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for ft in dead {
            self.remove(&ft, &mut out);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|(_, e)| *e > now);
            a.channels.retain(|c| c.expires > now);
        }
        out
    }

    fn remove(&mut self, ft: &FiveTuple, out: &mut Vec<Output>) -> Option<Allocation> {
        let a = self.allocations.remove(ft)?;
        tracing::debug!(client = %ft.client, transport = ?ft.transport, relay = ?a.relay, "turn: allocation removed");
        if let Some(relay) = a.relay {
            self.by_relay.remove(&relay);
            out.push(Output::ReleaseRelay { relay });
        }
        if let Some(n) = self.per_user.get_mut(&a.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&a.user_id);
            }
        }
        Some(a)
    }

    fn binding(&mut self, msg: &Message<'_>, ft: FiveTuple, out: &mut Vec<Output>) {
        let mut wire = Vec::with_capacity(64);
        Builder::new(
            &mut wire,
            method::BINDING,
            Class::Success,
            msg.transaction_id,
        )
        .xor_addr(attr::XOR_MAPPED_ADDRESS, ft.client)
        .fingerprint();
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
    }

    /// Sends an error response; `key` adds MESSAGE-INTEGRITY (authenticated requests).
    #[allow(clippy::too_many_arguments)]
    fn error(
        &mut self,
        msg: &Message<'_>,
        ft: FiveTuple,
        code: u16,
        reason: &str,
        key: Option<&[u8; 16]>,
        extra: impl FnOnce(&mut Builder<'_>),
        out: &mut Vec<Output>,
    ) {
        let mut wire = Vec::with_capacity(128);
        let mut b = Builder::new(&mut wire, msg.method, Class::Error, msg.transaction_id);
        b.error(code, reason);
        extra(&mut b);
        match key {
            Some(k) => finish(&mut b, k, msg.has_integrity_sha256()),
            None => {
                b.fingerprint();
            }
        }
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
    }

    /// 401 or 438 with REALM and a fresh NONCE (RFC 8489 §9.2.4).
    fn challenge(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        code: u16,
        out: &mut Vec<Output>,
    ) {
        self.stats.unauthorized += 1;
        let nonce = self.nonces.issue(now);
        let realm = self.config.realm.clone();
        let reason = if code == 438 {
            "Stale Nonce"
        } else {
            "Unauthorized"
        };
        self.error(
            msg,
            ft,
            code,
            reason,
            None,
            |b| {
                b.attr(attr::REALM, realm.as_bytes())
                    .attr(attr::NONCE, nonce.as_bytes());
            },
            out,
        );
    }

    /// The long-term credential mechanism (RFC 8489 §9.2.4) with TURN REST usernames.
    fn authenticate(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) -> Auth {
        if !msg.has_integrity() {
            self.challenge(now, msg, ft, 401, out);
            return Auth::Refused;
        }
        let (Some(username), Some(realm), Some(nonce)) = (
            msg.get_str(attr::USERNAME),
            msg.get_str(attr::REALM),
            msg.get_str(attr::NONCE),
        ) else {
            self.error(msg, ft, 400, "Bad Request", None, |_| {}, out);
            return Auth::Refused;
        };
        // RFC 8489 §14.3, §14.9, §14.10: USERNAME < 513 bytes, REALM and NONCE < 763 bytes.
        if username.len() > 512 || nonce.len() > 762 || realm.len() > 762 {
            self.stats.malformed += 1;
            self.error(msg, ft, 400, "Bad Request", None, |_| {}, out);
            return Auth::Refused;
        }
        if self.nonces.check(nonce, now) == NonceState::Stale {
            self.challenge(now, msg, ft, 438, out);
            return Auth::Refused;
        }
        let user_id = match auth::check_rest_username(username, now) {
            Ok(id) => id.to_owned(),
            Err(e) => {
                tracing::debug!(client = %ft.client, error = %e, "turn: credential refused");
                self.challenge(now, msg, ft, 401, out);
                return Auth::Refused;
            }
        };
        let password = auth::rest_password(&self.config.secret, username);
        let key = auth::long_term_key(username, &self.config.realm, &password);
        if !msg.check_integrity(&key) {
            self.challenge(now, msg, ft, 401, out);
            return Auth::Refused;
        }
        if self.unknown_attributes(msg, ft, Some(&key), out) {
            return Auth::Refused;
        }
        Auth::Ok {
            username: username.to_owned(),
            user_id,
            key,
        }
    }

    /// Answers 420 with UNKNOWN-ATTRIBUTES (RFC 8489 §14.13) when `msg` has
    /// comprehension-required attributes we do not know; true when it did.
    fn unknown_attributes(
        &mut self,
        msg: &Message<'_>,
        ft: FiveTuple,
        key: Option<&[u8; 16]>,
        out: &mut Vec<Output>,
    ) -> bool {
        if msg.attribute_types().all(attr::known) {
            return false;
        }
        let v: Vec<u8> = msg
            .attribute_types()
            .filter(|t| !attr::known(*t))
            .flat_map(|t| t.to_be_bytes())
            .collect();
        self.error(
            msg,
            ft,
            420,
            "Unknown Attribute",
            key,
            |b| {
                b.attr(attr::UNKNOWN_ATTRIBUTES, &v);
            },
            out,
        );
        true
    }

    fn lifetime(&self, msg: &Message<'_>) -> Duration {
        match msg.get_u32(attr::LIFETIME) {
            None => self.config.default_lifetime,
            // RFC 8656 §7.2 / §8.2: max(default, min(requested, maximum)).
            Some(s) => Duration::from_secs(u64::from(s))
                .min(self.config.max_lifetime)
                .max(self.config.default_lifetime.min(self.config.max_lifetime)),
        }
    }

    fn allocate(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) {
        // Retransmission of the Allocate that made an existing allocation (RFC 8656 §7.2).
        if let Some(a) = self.allocations.get(&ft)
            && a.allocate_txid == msg.transaction_id
        {
            if let Some(relay) = a.relay {
                let mut o = self.relay_bound(ft, Ok(relay));
                out.append(&mut o);
            }
            return;
        }
        let (username, user_id, key) = match self.authenticate(now, msg, ft, out) {
            Auth::Refused => return,
            Auth::Ok {
                username,
                user_id,
                key,
            } => (username, user_id, key),
        };
        let k = Some(&key);
        if self.allocations.contains_key(&ft) {
            self.error(msg, ft, 437, "Allocation Mismatch", k, |_| {}, out);
            return;
        }
        match msg.get(attr::REQUESTED_TRANSPORT) {
            None => {
                self.error(msg, ft, 400, "Bad Request", k, |_| {}, out);
                return;
            }
            Some(v) if v.first() != Some(&17) => {
                self.error(
                    msg,
                    ft,
                    442,
                    "Unsupported Transport Protocol",
                    k,
                    |_| {},
                    out,
                );
                return;
            }
            Some(_) => {}
        }
        let ipv6 = match msg
            .get(attr::REQUESTED_ADDRESS_FAMILY)
            .and_then(|v| v.first())
        {
            None | Some(0x01) => false,
            Some(0x02) if self.config.ipv6_relays => true,
            Some(_) => {
                self.error(msg, ft, 440, "Address Family not Supported", k, |_| {}, out);
                return;
            }
        };
        if msg.get(attr::RESERVATION_TOKEN).is_some()
            || msg
                .get(attr::EVEN_PORT)
                .is_some_and(|v| v.first().is_some_and(|b| b & 0x80 != 0))
        {
            // Reservations are not supported (RFC 8656 §7.2 allows refusing them).
            self.error(msg, ft, 508, "Insufficient Capacity", k, |_| {}, out);
            return;
        }
        let used = self.per_user.get(&user_id).copied().unwrap_or(0);
        if used >= self.config.max_allocations_per_user {
            self.stats.quota_refused += 1;
            self.error(msg, ft, 486, "Allocation Quota Reached", k, |_| {}, out);
            return;
        }
        if self.allocations.len() >= self.config.max_allocations {
            self.stats.quota_refused += 1;
            self.error(msg, ft, 508, "Insufficient Capacity", k, |_| {}, out);
            return;
        }
        let lifetime = self.lifetime(msg).max(Duration::from_secs(1));
        *self.per_user.entry(user_id.clone()).or_insert(0) += 1;
        self.allocations.insert(
            ft,
            Allocation {
                user_id,
                username,
                key,
                relay: None,
                expires: later(now, lifetime),
                allocate_txid: msg.transaction_id,
                allocate_sha256: msg.has_integrity_sha256(),
                granted: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
                permissions: Vec::new(),
                channels: Vec::new(),
                tokens: self.config.bandwidth_bytes_per_s as f64,
                refilled: now,
            },
        );
        self.stats.allocations_created += 1;
        tracing::debug!(client = %ft.client, transport = ?ft.transport, lifetime_s = lifetime.as_secs(), "turn: allocation");
        out.push(Output::BindRelay { client: ft, ipv6 });
    }

    /// Authenticates a request on an existing allocation: 437 if there is none or the
    /// username differs (RFC 8656 §5).
    fn authenticate_existing(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) -> Option<[u8; 16]> {
        let (username, key) = match self.authenticate(now, msg, ft, out) {
            Auth::Refused => return None,
            Auth::Ok { username, key, .. } => (username, key),
        };
        match self.allocations.get(&ft) {
            Some(a) if a.relay.is_some() && a.username == username => Some(key),
            _ => {
                self.error(msg, ft, 437, "Allocation Mismatch", Some(&key), |_| {}, out);
                None
            }
        }
    }

    fn refresh(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) {
        let Some(key) = self.authenticate_existing(now, msg, ft, out) else {
            return;
        };
        let requested = msg.get_u32(attr::LIFETIME);
        let granted = if requested == Some(0) {
            self.remove(&ft, out);
            0
        } else {
            let lifetime = self.lifetime(msg);
            if let Some(a) = self.allocations.get_mut(&ft) {
                a.expires = later(now, lifetime);
            }
            lifetime.as_secs() as u32
        };
        let mut wire = Vec::with_capacity(96);
        let mut b = Builder::new(
            &mut wire,
            method::REFRESH,
            Class::Success,
            msg.transaction_id,
        );
        b.u32(attr::LIFETIME, granted);
        finish(&mut b, &key, msg.has_integrity_sha256());
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
    }

    fn create_permission(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) {
        let Some(key) = self.authenticate_existing(now, msg, ft, out) else {
            return;
        };
        // Every XOR-PEER-ADDRESS (RFC 8656 §10.2); all or nothing.
        let mut peers: Vec<SocketAddr> = Vec::new();
        for (typ, v) in msg_attrs(msg) {
            if typ == attr::XOR_PEER_ADDRESS {
                match msg_xor(v, msg) {
                    Some(p) => peers.push(p),
                    None => {
                        self.error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
                        return;
                    }
                }
            }
        }
        if peers.is_empty() {
            self.error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        // Stricter than the per-IP permission itself: the full peer address (port included)
        // must pass the policy, so a permission cannot be asked for an unlisted port either.
        if peers.iter().any(|p| !self.config.policy.permits(*p)) {
            self.stats.forbidden += 1;
            tracing::debug!(client = %ft.client, "turn: peer refused by policy (403)");
            self.error(msg, ft, 403, "Forbidden", Some(&key), |_| {}, out);
            return;
        }
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        for ip in peers.iter().map(|p| p.ip()) {
            if let Some(p) = a.permissions.iter_mut().find(|(p, _)| *p == ip) {
                p.1 = later(now, PERMISSION_LIFETIME);
            } else if a.permissions.len() < MAX_PERMISSIONS {
                a.permissions.push((ip, later(now, PERMISSION_LIFETIME)));
            } else {
                self.stats.quota_refused += 1;
                self.error(
                    msg,
                    ft,
                    508,
                    "Insufficient Capacity",
                    Some(&key),
                    |_| {},
                    out,
                );
                return;
            }
        }
        let mut wire = Vec::with_capacity(64);
        let mut b = Builder::new(
            &mut wire,
            method::CREATE_PERMISSION,
            Class::Success,
            msg.transaction_id,
        );
        finish(&mut b, &key, msg.has_integrity_sha256());
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
    }

    fn channel_bind(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) {
        let Some(key) = self.authenticate_existing(now, msg, ft, out) else {
            return;
        };
        let number = msg
            .get(attr::CHANNEL_NUMBER)
            .filter(|v| v.len() == 4)
            .and_then(|v| Some(u16::from_be_bytes([*v.first()?, *v.get(1)?])));
        let peer = msg.get_xor_addr(attr::XOR_PEER_ADDRESS);
        let (Some(number), Some(peer)) = (number, peer) else {
            self.error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        };
        if !(0x4000..=0x4FFF).contains(&number) {
            self.error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        if !self.config.policy.permits(peer) {
            self.stats.forbidden += 1;
            tracing::debug!(client = %ft.client, "turn: peer refused by policy (403)");
            self.error(msg, ft, 403, "Forbidden", Some(&key), |_| {}, out);
            return;
        }
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        // The number must not be bound to another peer, nor the peer to another number
        // (RFC 8656 §12.2).
        let clash = a
            .channels
            .iter()
            .any(|c| (c.number == number) != (c.peer == peer));
        if clash
            || (a.channels.len() >= MAX_CHANNELS && !a.channels.iter().any(|c| c.number == number))
        {
            self.error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        match a.channels.iter_mut().find(|c| c.number == number) {
            Some(c) => c.expires = later(now, CHANNEL_LIFETIME),
            None => a.channels.push(Channel {
                number,
                peer,
                expires: later(now, CHANNEL_LIFETIME),
            }),
        }
        // A channel binding installs or refreshes the permission too (§12.2).
        match a.permissions.iter().position(|(p, _)| *p == peer.ip()) {
            Some(i) => {
                if let Some(p) = a.permissions.get_mut(i) {
                    p.1 = later(now, PERMISSION_LIFETIME);
                }
            }
            None if a.permissions.len() < MAX_PERMISSIONS => a
                .permissions
                .push((peer.ip(), later(now, PERMISSION_LIFETIME))),
            None => {}
        }
        let mut wire = Vec::with_capacity(64);
        let mut b = Builder::new(
            &mut wire,
            method::CHANNEL_BIND,
            Class::Success,
            msg.transaction_id,
        );
        finish(&mut b, &key, msg.has_integrity_sha256());
        out.push(Output::ToClient {
            to: ft,
            bytes: wire,
        });
    }

    fn send_indication(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) {
        let (Some(peer), Some(data)) = (
            msg.get_xor_addr(attr::XOR_PEER_ADDRESS),
            msg.get(attr::DATA),
        ) else {
            self.stats.malformed += 1;
            return;
        };
        if !self.config.policy.permits(peer) {
            self.stats.forbidden += 1;
            return;
        }
        self.relay_out(now, ft, peer, data, out);
    }

    fn channel_data(
        &mut self,
        now: SystemTime,
        ft: FiveTuple,
        bytes: &[u8],
        out: &mut Vec<Output>,
    ) {
        let Ok((number, data)) = stun::parse_channel_data(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let peer = self
            .allocations
            .get(&ft)
            .and_then(|a| {
                a.channels
                    .iter()
                    .find(|c| c.number == number && c.expires > now)
            })
            .map(|c| c.peer);
        let Some(peer) = peer else {
            self.stats.unroutable += 1;
            return;
        };
        self.relay_out(now, ft, peer, data, out);
    }

    /// Client → peer: needs an allocation with a relay, a live permission for the peer's IP
    /// (RFC 8656 §11.2) and room in the bandwidth quota.
    fn relay_out(
        &mut self,
        now: SystemTime,
        ft: FiveTuple,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<Output>,
    ) {
        let Some(a) = self.allocations.get_mut(&ft) else {
            self.stats.unroutable += 1;
            return;
        };
        let Some(relay) = a.relay else {
            self.stats.unroutable += 1;
            return;
        };
        if !a
            .permissions
            .iter()
            .any(|(ip, exp)| *ip == peer.ip() && *exp > now)
        {
            self.stats.unroutable += 1;
            return;
        }
        if !take_tokens(a, &self.config, now, data.len(), &mut self.stats) {
            return;
        }
        self.stats.relayed_to_peer += 1;
        out.push(Output::ToPeer {
            relay,
            peer,
            bytes: data.to_vec(),
        });
    }
}

/// `now + d`, saturating instead of panicking on an overflowing clock or configuration.
fn later(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d).unwrap_or(now)
}

/// MESSAGE-INTEGRITY (and -SHA256 when the request used it), then FINGERPRINT.
fn finish(b: &mut Builder<'_>, key: &[u8; 16], sha256: bool) {
    b.integrity(key);
    if sha256 {
        b.integrity_sha256(key);
    }
    b.fingerprint();
}

/// Token bucket: refills at `bandwidth_bytes_per_s`, holds one second's worth.
fn take_tokens(
    a: &mut Allocation,
    config: &CoreConfig,
    now: SystemTime,
    n: usize,
    stats: &mut Stats,
) -> bool {
    let rate = config.bandwidth_bytes_per_s as f64;
    if rate <= 0.0 {
        return true;
    }
    if let Ok(dt) = now.duration_since(a.refilled) {
        a.tokens = (a.tokens + dt.as_secs_f64() * rate).min(rate);
        a.refilled = now;
    }
    if a.tokens >= n as f64 {
        a.tokens -= n as f64;
        true
    } else {
        stats.bandwidth_dropped_packets += 1;
        stats.bandwidth_dropped_bytes += n as u64;
        false
    }
}

/// All attributes (type, value) before MESSAGE-INTEGRITY, in order.
fn msg_attrs<'m, 'a>(msg: &'m Message<'a>) -> impl Iterator<Item = (u16, &'a [u8])> + 'm {
    msg.attributes()
}

fn msg_xor(v: &[u8], msg: &Message<'_>) -> Option<SocketAddr> {
    stun::decode_xor_addr(v, &msg.transaction_id)
}

#[cfg(test)]
#[path = "tests/core.rs"]
mod tests;
