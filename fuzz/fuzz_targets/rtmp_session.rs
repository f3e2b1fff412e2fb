//! Bytes after the RTMP handshake → rml_rtmp's chunk stream and AMF0 commands → FLV tags → the
//! AAC transcoder. rml_rtmp panics on some malformed input; Venue catches those panics (the
//! connection is closed), so the libFuzzer panic hook is replaced: what this target hunts is
//! anything that still escapes — aborts, runaway memory, hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        venue_gateway::media::rtmp::fuzzing::session_input(data);
    }
);
