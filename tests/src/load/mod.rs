//! Building blocks of the `loadgen` benchmark (DESIGN.md §4 "Benchmarks are not tests").

pub mod events;
pub mod http;
pub mod media;
pub mod procstat;
pub mod server;
pub mod stats;
