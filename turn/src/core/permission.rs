//! Permissions (RFC 8656 §9) and channel bindings (§12) of one allocation: which peer IPs may
//! send through the relay, and which channel numbers stand for which peers. Both expire
//! (permissions after 300 s, channels after 600 s) unless refreshed, and both are bounded per
//! allocation.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

/// Permission lifetime (RFC 8656 §9: 300 s).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12: 600 s).
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Permissions per allocation.
const MAX_PERMISSIONS: usize = 64;
/// Channels per allocation.
const MAX_CHANNELS: usize = 64;

/// `now + d`, saturating instead of panicking on an overflowing clock or configuration.
pub(super) fn later(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d).unwrap_or(now)
}

/// The permissions of an allocation: peer IPs (any port, RFC 8656 §9) and when each expires.
#[derive(Default)]
pub(super) struct Permissions(Vec<(IpAddr, SystemTime)>);

impl Permissions {
    /// A live permission for `ip` exists.
    pub(super) fn allows(&self, ip: IpAddr, now: SystemTime) -> bool {
        self.0.iter().any(|(p, exp)| *p == ip && *exp > now)
    }

    /// Installs or refreshes the permission for `ip` (RFC 8656 §10.2); false when it is new
    /// and the allocation already holds [`MAX_PERMISSIONS`].
    pub(super) fn install(&mut self, ip: IpAddr, now: SystemTime) -> bool {
        if let Some(p) = self.0.iter_mut().find(|(p, _)| *p == ip) {
            p.1 = later(now, PERMISSION_LIFETIME);
            true
        } else if self.0.len() < MAX_PERMISSIONS {
            self.0.push((ip, later(now, PERMISSION_LIFETIME)));
            true
        } else {
            false
        }
    }

    /// Drops the expired permissions.
    pub(super) fn expire(&mut self, now: SystemTime) {
        self.0.retain(|(_, e)| *e > now);
    }
}

/// One channel binding: a number (0x4000–0x4FFF) for a peer's transport address.
struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: SystemTime,
}

/// The channel bindings of an allocation (RFC 8656 §12).
#[derive(Default)]
pub(super) struct Channels(Vec<Channel>);

impl Channels {
    /// The live channel bound to `peer`, if any (peer → client as ChannelData, §12.7).
    pub(super) fn number_of(&self, peer: SocketAddr, now: SystemTime) -> Option<u16> {
        self.0
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    /// The peer of live channel `number`, if any (client → peer ChannelData, §12.6).
    pub(super) fn peer_of(&self, number: u16, now: SystemTime) -> Option<SocketAddr> {
        self.0
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
    }

    /// Binds `number` to `peer` or refreshes that binding (RFC 8656 §12.2). False (400) when
    /// the number is bound to another peer or the peer to another number, or when a new
    /// binding would exceed [`MAX_CHANNELS`].
    pub(super) fn bind(&mut self, number: u16, peer: SocketAddr, now: SystemTime) -> bool {
        let clash = self
            .0
            .iter()
            .any(|c| (c.number == number) != (c.peer == peer));
        if clash || (self.0.len() >= MAX_CHANNELS && !self.0.iter().any(|c| c.number == number)) {
            return false;
        }
        match self.0.iter_mut().find(|c| c.number == number) {
            Some(c) => c.expires = later(now, CHANNEL_LIFETIME),
            None => self.0.push(Channel {
                number,
                peer,
                expires: later(now, CHANNEL_LIFETIME),
            }),
        }
        true
    }

    /// Drops the expired bindings.
    pub(super) fn expire(&mut self, now: SystemTime) {
        self.0.retain(|c| c.expires > now);
    }
}
