//! The slow-client policy of the shells' bounded per-client send queues: lossy frames are
//! dropped first, a client whose reliable backlog fills is closed with `TOO_SLOW`.

use bytes::Bytes;
use venue_proto::v1::NoticeCode;

use super::Class;
use super::codec::{encode, notice};

/// What a bounded per-client send queue does with one more frame (the slow-client policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Enqueue,
    /// Drop this lossy frame: the client is behind.
    Drop,
    /// Close the client with `NOTICE_CODE_TOO_SLOW`: its reliable backlog is full.
    Close,
}

/// The slow-client policy: lossy frames only while the queue is short, reliable frames until
/// the queue is full; a client whose reliable backlog reaches the cap is closed. Nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Frames a client's queue holds (the hard cap).
    pub capacity: usize,
    /// Lossy frames are dropped once this many frames are queued.
    pub lossy_below: usize,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            capacity: 256,
            lossy_below: 4,
        }
    }
}

impl QueuePolicy {
    /// The decision for a frame of `class` when `queued` frames wait.
    pub fn admit(&self, queued: usize, class: Class) -> Admit {
        match class {
            Class::Lossy if queued >= self.lossy_below => Admit::Drop,
            Class::Reliable if queued >= self.capacity => Admit::Close,
            _ => Admit::Enqueue,
        }
    }
}

/// The `TOO_SLOW` notice frame.
pub fn too_slow_notice() -> Bytes {
    encode(
        notice(
            NoticeCode::TooSlow,
            "your connection could not keep up and was closed",
            0,
        ),
        usize::MAX,
    )
}
