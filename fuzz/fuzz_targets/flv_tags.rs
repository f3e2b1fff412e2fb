//! FLV video and audio tag bodies (Venue's own parsers, `venue_sfu::ingest`) and the AAC → Opus
//! transcoder: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    venue_sfu::ingest::fuzzing::flv_tags(data);
});
