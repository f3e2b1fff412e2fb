//! STUN/TURN parsing (`venue_turn::stun`) and the TURN core on arbitrary client and peer bytes
//! (UDP datagram, TCP frame, relay datagram): no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut core = venue_turn::fuzzing::core();
    venue_turn::fuzzing::feed(&mut core, data);
});
