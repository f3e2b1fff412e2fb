//! FLV video and audio tag bodies (Venue's own parsers) and the AAC → Opus transcoder: no
//! input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    venue_gateway::rtmp::fuzzing::flv_tags(data);
});
