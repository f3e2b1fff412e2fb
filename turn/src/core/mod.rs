//! The sans-IO TURN server core (RFC 8656): allocations, permissions, channels, the
//! long-term credential mechanism with TURN REST usernames, quotas and the peer policy.
//!
//! It never reads the clock, never touches a socket: every call takes `now`, and what must be
//! sent comes back as [`Output`]s for the shell (or a test) to carry out. Reading the clock
//! here is a lint error (`clippy::disallowed_methods`, listed in the workspace's clippy.toml).
//!
//! [`TurnCore`] handles each request (this file) over the parts it owns: the allocation table
//! ([`allocation`]: allocations by 5-tuple and relay, per-user counts, bandwidth buckets),
//! each allocation's permissions and channels ([`permission`]), the credential check
//! ([`authenticate`]) and the response builders ([`reply`]); [`io`] holds what crosses the
//! boundary.

#![deny(clippy::disallowed_methods)]

mod allocation;
mod authenticate;
mod io;
mod permission;
mod reply;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::policy::PeerPolicy;
use crate::stun::{self, Builder, Class, Message, attr, method};

use self::allocation::{Allocation, Allocations, TokenBucket};
use self::authenticate::{Auth, Authenticator};
pub use self::io::{FiveTuple, Output, Stats, Transport};
use self::permission::later;
use self::reply::finish;

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

/// Largest application data relayed.
const MAX_DATA: usize = 65_535 - 36;

/// The TURN server state machine. Feed it client bytes ([`TurnCore::handle`]), peer bytes
/// ([`TurnCore::handle_peer`]), relay binds ([`TurnCore::relay_bound`]), closed TCP
/// connections ([`TurnCore::connection_closed`]) and time ([`TurnCore::expire`]); carry out
/// the [`Output`]s.
pub struct TurnCore {
    config: CoreConfig,
    auth: Authenticator,
    allocations: Allocations,
    stats: Stats,
}

impl TurnCore {
    /// A core with `config`. Nonces are signed with a key derived from the REST secret.
    pub fn new(config: CoreConfig) -> Self {
        TurnCore {
            auth: Authenticator::new(&config.realm, &config.secret, config.nonce_ttl),
            config,
            allocations: Allocations::default(),
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
                    && reply::unknown_attributes(&msg, ft, None, &mut out)
                {
                    return out;
                }
                match msg.method {
                    method::BINDING => binding(&msg, ft, &mut out),
                    method::ALLOCATE => self.allocate(now, &msg, ft, &mut out),
                    method::REFRESH => self.refresh(now, &msg, ft, &mut out),
                    method::CREATE_PERMISSION => self.create_permission(now, &msg, ft, &mut out),
                    method::CHANNEL_BIND => self.channel_bind(now, &msg, ft, &mut out),
                    _ => reply::error(&msg, ft, 400, "Bad Request", None, |_| {}, &mut out),
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
        let Some((ft, a)) = self.allocations.by_relay_mut(&relay) else {
            self.stats.unroutable += 1;
            return out;
        };
        if bytes.len() > MAX_DATA
            || !self.config.policy.permits(peer)
            || !a.permissions.allows(peer.ip(), now)
        {
            self.stats.unroutable += 1;
            return out;
        }
        if !a.bucket.take(
            self.config.bandwidth_bytes_per_s,
            now,
            bytes.len(),
            &mut self.stats,
        ) {
            return out;
        }
        let mut wire = Vec::with_capacity(bytes.len() + 40);
        if let Some(number) = a.channels.number_of(peer, now) {
            stun::write_channel_data(&mut wire, number, bytes, ft.transport.is_stream());
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
        if !self.allocations.contains(&client) {
            if let Ok(relay) = relay {
                out.push(Output::ReleaseRelay { relay });
            }
            return out;
        }
        match relay {
            Ok(addr) => {
                let Some(a) = self.allocations.set_relay(client, addr) else {
                    return out;
                };
                let mut wire = Vec::with_capacity(128);
                let mut b =
                    Builder::new(&mut wire, method::ALLOCATE, Class::Success, a.allocate_txid);
                b.xor_addr(attr::XOR_RELAYED_ADDRESS, addr)
                    .u32(attr::LIFETIME, a.granted)
                    .xor_addr(attr::XOR_MAPPED_ADDRESS, client.client);
                finish(&mut b, &a.key, a.allocate_sha256);
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
        for ft in self.allocations.expired(now) {
            self.remove(&ft, &mut out);
        }
        self.allocations.expire_permissions(now);
        out
    }

    /// Removes `ft`'s allocation and asks the shell to release its relay socket.
    fn remove(&mut self, ft: &FiveTuple, out: &mut Vec<Output>) -> Option<Allocation> {
        let a = self.allocations.remove(ft)?;
        tracing::debug!(client = %ft.client, transport = ?ft.transport, relay = ?a.relay, "turn: allocation removed");
        if let Some(relay) = a.relay {
            out.push(Output::ReleaseRelay { relay });
        }
        Some(a)
    }

    /// The long-term credential check of a TURN request ([`Authenticator::authenticate`]).
    fn authenticate(
        &mut self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        out: &mut Vec<Output>,
    ) -> Auth {
        self.auth.authenticate(now, msg, ft, &mut self.stats, out)
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
        if self.allocations.contains(&ft) {
            reply::error(msg, ft, 437, "Allocation Mismatch", k, |_| {}, out);
            return;
        }
        match msg.get(attr::REQUESTED_TRANSPORT) {
            None => {
                reply::error(msg, ft, 400, "Bad Request", k, |_| {}, out);
                return;
            }
            Some(v) if v.first() != Some(&17) => {
                reply::error(
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
                reply::error(msg, ft, 440, "Address Family not Supported", k, |_| {}, out);
                return;
            }
        };
        if msg.get(attr::RESERVATION_TOKEN).is_some()
            || msg
                .get(attr::EVEN_PORT)
                .is_some_and(|v| v.first().is_some_and(|b| b & 0x80 != 0))
        {
            // Reservations are not supported (RFC 8656 §7.2 allows refusing them).
            reply::error(msg, ft, 508, "Insufficient Capacity", k, |_| {}, out);
            return;
        }
        if self.allocations.user_count(&user_id) >= self.config.max_allocations_per_user {
            self.stats.quota_refused += 1;
            reply::error(msg, ft, 486, "Allocation Quota Reached", k, |_| {}, out);
            return;
        }
        if self.allocations.len() >= self.config.max_allocations {
            self.stats.quota_refused += 1;
            reply::error(msg, ft, 508, "Insufficient Capacity", k, |_| {}, out);
            return;
        }
        let lifetime = self.lifetime(msg).max(Duration::from_secs(1));
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
                permissions: Default::default(),
                channels: Default::default(),
                bucket: TokenBucket::full(self.config.bandwidth_bytes_per_s, now),
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
                reply::error(msg, ft, 437, "Allocation Mismatch", Some(&key), |_| {}, out);
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
        reply::success(
            msg,
            ft,
            &key,
            |b| {
                b.u32(attr::LIFETIME, granted);
            },
            out,
        );
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
        for (typ, v) in msg.attributes() {
            if typ == attr::XOR_PEER_ADDRESS {
                match stun::decode_xor_addr(v, &msg.transaction_id) {
                    Some(p) => peers.push(p),
                    None => {
                        reply::error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
                        return;
                    }
                }
            }
        }
        if peers.is_empty() {
            reply::error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        // Stricter than the per-IP permission itself: the full peer address (port included)
        // must pass the policy, so a permission cannot be asked for an unlisted port either.
        if peers.iter().any(|p| !self.config.policy.permits(*p)) {
            self.stats.forbidden += 1;
            tracing::debug!(client = %ft.client, "turn: peer refused by policy (403)");
            reply::error(msg, ft, 403, "Forbidden", Some(&key), |_| {}, out);
            return;
        }
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        for ip in peers.iter().map(|p| p.ip()) {
            if !a.permissions.install(ip, now) {
                self.stats.quota_refused += 1;
                reply::error(
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
        reply::success(msg, ft, &key, |_| {}, out);
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
            reply::error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        };
        if !(0x4000..=0x4FFF).contains(&number) {
            reply::error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        if !self.config.policy.permits(peer) {
            self.stats.forbidden += 1;
            tracing::debug!(client = %ft.client, "turn: peer refused by policy (403)");
            reply::error(msg, ft, 403, "Forbidden", Some(&key), |_| {}, out);
            return;
        }
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        // The number must not be bound to another peer, nor the peer to another number
        // (RFC 8656 §12.2).
        if !a.channels.bind(number, peer, now) {
            reply::error(msg, ft, 400, "Bad Request", Some(&key), |_| {}, out);
            return;
        }
        // A channel binding installs or refreshes the permission too (§12.2); a full
        // permission list does not fail the binding.
        a.permissions.install(peer.ip(), now);
        reply::success(msg, ft, &key, |_| {}, out);
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
            .and_then(|a| a.channels.peer_of(number, now));
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
        if !a.permissions.allows(peer.ip(), now) {
            self.stats.unroutable += 1;
            return;
        }
        if !a.bucket.take(
            self.config.bandwidth_bytes_per_s,
            now,
            data.len(),
            &mut self.stats,
        ) {
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

/// Binding (RFC 8489 §3): XOR-MAPPED-ADDRESS and FINGERPRINT, no authentication.
fn binding(msg: &Message<'_>, ft: FiveTuple, out: &mut Vec<Output>) {
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

#[cfg(test)]
#[path = "../tests/core.rs"]
mod tests;
