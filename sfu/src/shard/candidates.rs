//! The host candidates a shard advertises (ICE-lite, RFC 8445 §2.5): configured public IPs
//! (1:1 NAT), the bind IP, or the interfaces' addresses.

use std::net::{IpAddr, SocketAddr};

use crate::config::SfuConfig;

/// Host candidate addresses for a shard socket on `port`: the configured IPs (public IP /
/// 1:1 NAT mapping), else the bind IP when specific, else the local interface addresses the
/// socket can be reached at: every IPv4 one (loopback included) and, when the socket is
/// dual-stack (`bind_ip` = `::`), every global or unique-local IPv6 one (see
/// [`is_advertised_ipv6`]). IPv4-mapped addresses are listed as IPv4; duplicates are dropped.
pub fn candidate_addrs(config: &SfuConfig, port: u16, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let ips: Vec<IpAddr> = if !config.candidate_ips.is_empty() {
        config.candidate_ips.clone()
    } else if !config.bind_ip.is_unspecified() {
        vec![config.bind_ip]
    } else {
        let dual_stack = config.bind_ip.is_ipv6();
        interfaces
            .iter()
            .map(|ip| ip.to_canonical())
            .filter(|ip| match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => dual_stack && is_advertised_ipv6(v6),
            })
            .collect()
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        let addr = SocketAddr::new(ip.to_canonical(), port);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Whether an interface's IPv6 address is worth a default candidate: global unicast or
/// unique-local (`fc00::/7`, RFC 4193); not loopback, link-local (`fe80::/10`, needs a scope
/// id a candidate cannot carry), multicast, unspecified or IPv4-mapped.
pub fn is_advertised_ipv6(ip: &std::net::Ipv6Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unicast_link_local()
        || ip.to_ipv4_mapped().is_some())
}
