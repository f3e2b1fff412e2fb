//! Counters of a shard core, for metrics and tests.

/// Counters of a shard, since it started.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardStats {
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets written to subscriber tracks.
    pub rtp_forwarded: u64,
    /// Datagrams (and ICE-TCP frames) dropped: unparseable or from an unknown address and
    /// not STUN.
    pub datagrams_dropped: u64,
    /// Packets for an ICE-TCP address with no connection (it closed) that were not sent.
    pub tcp_unrouted: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Peers dropped because str0m returned an error or panicked.
    pub peers_failed: u64,
    /// Media from other shards dropped because it waited longer than `MAX_REMOTE_AGE`.
    pub stale_dropped: u64,
    /// Lossy data-channel frames dropped because the SCTP buffer was full.
    pub lossy_dropped: u64,
}
