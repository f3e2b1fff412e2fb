//! Which peers a relay may reach: no open relay (RFC 8656 §21.3 "Server Misuse", RFC 8155 §9).
//!
//! By default only the allow-listed peer addresses (the SFU's media sockets) are reachable.
//! Special-purpose ranges (private, loopback, link-local, CGNAT, multicast, documentation,
//! cloud metadata, …) are refused unless allow-listed; global unicast addresses are refused
//! too unless `allow_public_peers` is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The peer address policy.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Exactly these peers are allowed; port 0 allows every port of that IP.
    pub allowed: Vec<SocketAddr>,
    /// Allow global unicast peers (never the special ranges).
    pub allow_public_peers: bool,
}

/// True for addresses a relay must never reach unless explicitly allowed: 0.0.0.0/8,
/// 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local, incl. 169.254.169.254 metadata),
/// 172.16/12, 192.0.0/24, 192.0.2/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24,
/// 224/4 (multicast), 240/4 (incl. broadcast); ::, ::1, fc00::/7 (incl. fd00:ec2::254
/// metadata), fe80::/10, ff00::/8, 2001:db8::/32, 100::/64, and IPv4-mapped / NAT64 /
/// 6to4 addresses whose embedded IPv4 is special.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => is_special_v6(v6),
    }
}

fn is_special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || a == 10
        || (a == 100 && (64..128).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224
}

fn is_special_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_special_v4(v4);
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_special_v4(v4);
    }
    // 6to4 2002::/16 embeds an IPv4 in the next 32 bits.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return is_special_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || s[0] & 0xfe00 == 0xfc00
        || s[0] & 0xffc0 == 0xfe80
        || s[0] & 0xff00 == 0xff00
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated) ::a.b.c.d
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b)
}

impl PeerPolicy {
    /// May a permission be installed for `ip` (RFC 8656 §10: permissions are per IP)? True
    /// when some allow-list entry has this IP, or the IP is global and public peers are on.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|a| same_ip(a.ip(), ip))
            || (self.allow_public_peers && !is_special(ip))
    }

    /// May traffic go to or come from `peer` (IP and port)? True when allow-listed exactly
    /// (or its IP with port 0), or global with public peers on.
    pub fn permits(&self, peer: SocketAddr) -> bool {
        self.allowed
            .iter()
            .any(|a| same_ip(a.ip(), peer.ip()) && (a.port() == 0 || a.port() == peer.port()))
            || (self.allow_public_peers && !is_special(peer.ip()))
    }
}

#[cfg(test)]
#[path = "tests/policy.rs"]
mod tests;
