//! The gateway's media shells: the IO around the sans-IO media work of `venue_sfu::ingest` and
//! `venue_sfu::egress`. Each takes a small struct of the handles it uses, built where it is
//! spawned (`lib.rs`), never the whole HTTP state.
//!
//! - [`rtmp`]: the RTMP listener (rml_rtmp session, stream keys, limits, counters) feeding
//!   `venue_sfu::ingest::FlvIngest` and a bridge publisher per connection.
//! - [`program`]: the program supervisor: a room's composed program runs while watched (LL-HLS)
//!   or while a set is recorded.
//! - [`recording`]: recordings of artists' sets: the set rule, naming, the writer threads and
//!   the service the admin API lists.

pub mod hls_programs;
pub mod program;
pub mod program_node;
pub mod recording;
pub mod rtmp;
