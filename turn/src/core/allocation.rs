//! Allocations (RFC 8656 §2.2, §7): the table the core holds, one allocation per client
//! 5-tuple, found by 5-tuple or by its relayed transport address, with each REST user's count
//! for the per-user quota. An allocation carries its credentials, lifetime, permissions and
//! channels ([`super::permission`]) and its bandwidth bucket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use super::io::{FiveTuple, Stats};
use super::permission::{Channels, Permissions};

/// One allocation.
pub(super) struct Allocation {
    /// The REST user id (the quota key).
    pub(super) user_id: String,
    /// The USERNAME that made it: later requests must use the same (RFC 8656 §5).
    pub(super) username: String,
    /// The long-term key (MESSAGE-INTEGRITY of the responses).
    pub(super) key: [u8; 16],
    /// The relayed transport address; `None` while the shell binds the relay socket.
    pub(super) relay: Option<SocketAddr>,
    pub(super) expires: SystemTime,
    /// Allocate's transaction id and whether it used MESSAGE-INTEGRITY-SHA256 (for the
    /// pending response and retransmissions, RFC 8656 §7.2).
    pub(super) allocate_txid: [u8; 12],
    pub(super) allocate_sha256: bool,
    /// The lifetime granted by Allocate, in seconds (reported in LIFETIME).
    pub(super) granted: u32,
    pub(super) permissions: Permissions,
    pub(super) channels: Channels,
    /// The bandwidth quota.
    pub(super) bucket: TokenBucket,
}

/// The bandwidth quota of an allocation (both directions together): a token bucket that
/// refills at the configured bytes per second and holds one second's worth.
pub(super) struct TokenBucket {
    /// Bytes available.
    tokens: f64,
    /// When last refilled.
    refilled: SystemTime,
}

impl TokenBucket {
    /// A full bucket for `bytes_per_s`.
    pub(super) fn full(bytes_per_s: u64, now: SystemTime) -> Self {
        TokenBucket {
            tokens: bytes_per_s as f64,
            refilled: now,
        }
    }

    /// Takes `n` bytes at a rate of `bytes_per_s` (0: unlimited). False, counted in `stats`
    /// ([`Stats::bandwidth_dropped_packets`], [`Stats::bandwidth_dropped_bytes`]), when the
    /// bucket is short.
    pub(super) fn take(
        &mut self,
        bytes_per_s: u64,
        now: SystemTime,
        n: usize,
        stats: &mut Stats,
    ) -> bool {
        let rate = bytes_per_s as f64;
        if rate <= 0.0 {
            return true;
        }
        if let Ok(dt) = now.duration_since(self.refilled) {
            self.tokens = (self.tokens + dt.as_secs_f64() * rate).min(rate);
            self.refilled = now;
        }
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            stats.bandwidth_dropped_packets += 1;
            stats.bandwidth_dropped_bytes += n as u64;
            false
        }
    }
}

/// Every allocation, by client 5-tuple and by relayed address, with allocations per user.
#[derive(Default)]
pub(super) struct Allocations {
    by_client: HashMap<FiveTuple, Allocation>,
    by_relay: HashMap<SocketAddr, FiveTuple>,
    per_user: HashMap<String, usize>,
}

impl Allocations {
    /// Allocations now (pending ones included).
    pub(super) fn len(&self) -> usize {
        self.by_client.len()
    }

    pub(super) fn get(&self, client: &FiveTuple) -> Option<&Allocation> {
        self.by_client.get(client)
    }

    pub(super) fn get_mut(&mut self, client: &FiveTuple) -> Option<&mut Allocation> {
        self.by_client.get_mut(client)
    }

    pub(super) fn contains(&self, client: &FiveTuple) -> bool {
        self.by_client.contains_key(client)
    }

    /// The allocation whose relayed transport address is `relay`, with its client.
    pub(super) fn by_relay_mut(
        &mut self,
        relay: &SocketAddr,
    ) -> Option<(FiveTuple, &mut Allocation)> {
        let client = *self.by_relay.get(relay)?;
        Some((client, self.by_client.get_mut(&client)?))
    }

    /// Allocations REST user `user_id` holds.
    pub(super) fn user_count(&self, user_id: &str) -> usize {
        self.per_user.get(user_id).copied().unwrap_or(0)
    }

    /// Adds `a` for `client` (its relay still to bind) and counts it for its user.
    pub(super) fn insert(&mut self, client: FiveTuple, a: Allocation) {
        *self.per_user.entry(a.user_id.clone()).or_insert(0) += 1;
        self.by_client.insert(client, a);
    }

    /// Records the relay socket bound for `client`'s allocation; `None` when it is gone.
    pub(super) fn set_relay(
        &mut self,
        client: FiveTuple,
        relay: SocketAddr,
    ) -> Option<&mut Allocation> {
        let a = self.by_client.get_mut(&client)?;
        a.relay = Some(relay);
        self.by_relay.insert(relay, client);
        Some(a)
    }

    /// Removes `client`'s allocation (the caller releases its relay) and uncounts it.
    pub(super) fn remove(&mut self, client: &FiveTuple) -> Option<Allocation> {
        let a = self.by_client.remove(client)?;
        if let Some(relay) = a.relay {
            self.by_relay.remove(&relay);
        }
        if let Some(n) = self.per_user.get_mut(&a.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&a.user_id);
            }
        }
        Some(a)
    }

    /// The clients whose allocations expired by `now`.
    pub(super) fn expired(&self, now: SystemTime) -> Vec<FiveTuple> {
        self.by_client
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Drops the expired permissions and channels of every allocation.
    pub(super) fn expire_permissions(&mut self, now: SystemTime) {
        for a in self.by_client.values_mut() {
            a.permissions.expire(now);
            a.channels.expire(now);
        }
    }
}
