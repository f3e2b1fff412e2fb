//! Dev-only support code: the cross-crate integration tests and the `loadgen` benchmark tool
//! (`src/bin/loadgen.rs`). Nothing here ships in the `venue` binary.
//!
//! [`load`] holds the pieces of `loadgen` that are worth unit-testing on their own: the
//! statistics (percentiles, RTP sequence-gap loss with wraparound), the send-time stamps
//! embedded in synthetic media payloads, `/proc` CPU accounting and a tiny loopback HTTP/1.1
//! client.

pub mod audio;
pub mod h264;
pub mod load;
pub mod media_files;
pub mod media_peer;
pub mod mp4;
pub mod peer;
pub mod postgres;
