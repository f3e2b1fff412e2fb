//! The hub's inputs of time and its tunables.

use std::time::{Duration, Instant};

use super::codec;
use super::limits::LimitConfig;

/// The time of an input: monotonic for limits and ticks, wall clock for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// Tunables of a hub.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    /// Batch period. Default 50 ms.
    pub tick: Duration,
    /// Stickers kept on the board. Default 2000.
    pub board_size: usize,
    /// Chat messages in a snapshot. Default 200.
    pub chat_history: usize,
    /// Users listed in a snapshot. Default 500.
    pub users_listed: usize,
    /// Frames above this many bytes are deflated. Default 512.
    pub deflate_threshold: usize,
    pub limits: LimitConfig,
    /// Bad frames within `offence_window` that close a connection. Default 10.
    pub max_offences: usize,
    /// Default 60 s.
    pub offence_window: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            tick: Duration::from_millis(50),
            board_size: 2000,
            chat_history: 200,
            users_listed: 500,
            deflate_threshold: codec::DEFAULT_DEFLATE_THRESHOLD,
            limits: LimitConfig::default(),
            max_offences: 10,
            offence_window: Duration::from_secs(60),
        }
    }
}
