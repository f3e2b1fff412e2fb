//! What crosses the core's boundary: the client's 5-tuple and transport (RFC 8656 §3.1), the
//! [`Output`]s the shell carries out, and the [`Stats`] counters.

use std::net::SocketAddr;

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
    /// [`TurnCore::relay_bound`](crate::TurnCore::relay_bound) with its address (or the failure).
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
