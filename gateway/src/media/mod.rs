//! Media IO of the gateway: the running LL-HLS programs ([`hls_programs`]).
//! (RTMP ingest, the program supervisor and recording join here.)

pub mod hls_programs;
