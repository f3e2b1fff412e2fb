//! Venue's media plane: a selective forwarding unit on str0m.
//!
//! Contract: the gateway drives it only through [`SfuHandle`] (bounded command channels,
//! `oneshot` replies) and hears back through [`SfuEvent`]s. The SFU knows nothing of HTTP or
//! the store. An SDP offer is parsed once, where it enters, into an [`Offer`]. Protocol logic
//! lives in sans-IO cores that take time as a parameter ([`shard::ShardCore`]:
//! `handle_input` / `poll_output`); only the shell does IO (one thread, one UDP socket and one
//! ICE-TCP listener per shard).
//!
//! The facade: the handle and its types at the crate root; [`bridge`] (neutral frames for
//! non-WebRTC publishers), [`health`] (streamer health), [`tap`] (stage taps), [`egress`]
//! (compositor, LL-HLS, CMAF), [`ingest`] (FLV/AVC tags, AAC → Opus), [`config`], and the sans-IO [`shard`] core and [`framing`]
//! for in-process tests. Everything else is internal.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// The shells read the clock; the sans-IO core (`shard/`) denies `Instant::now` and
// `SystemTime::now` (clippy.toml `disallowed-methods`).
#![allow(clippy::disallowed_methods)]

mod api;
pub mod bridge;
pub mod config;
pub mod egress;
mod forward;
pub mod framing;
mod handle;
pub mod health;
pub mod ingest;
mod keyframe;
mod offer;
pub mod shard;
mod shell;
pub mod tap;

pub use api::*;
pub use config::{ConfigError, SfuConfig};
pub use handle::{BridgeHandle, SfuHandle};
pub use offer::{MidLayout, Offer, OfferError};
pub use shard::relay::relayed_packets;
pub use shell::IceTcpStats;
pub use shell::udp::sent_bytes;
