//! Unit tests of `overflow.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn capacity_then_cpu() {
    let d = decide(0, 1, None, 85);
    assert_eq!((d.mode, d.cause), (JoinMode::Webrtc, None));
    let d = decide(1, 1, None, 85);
    assert_eq!((d.mode, d.cause), (JoinMode::Hls, Some(Cause::Capacity)));
    assert!(d.reason.contains("capacity"), "{}", d.reason);
    let d = decide(0, 0, None, 85);
    assert_eq!(d.mode, JoinMode::Hls, "0 sends everyone to HLS");
    let d = decide(3, 10, Some(90.0), 85);
    assert_eq!((d.mode, d.cause), (JoinMode::Hls, Some(Cause::Cpu)));
    assert!(d.reason.contains("busy"), "{}", d.reason);
    let d = decide(3, 10, Some(85.0), 85);
    assert_eq!(d.mode, JoinMode::Webrtc, "at the limit is not over it");
    let d = decide(3, 10, Some(100.0), 0);
    assert_eq!(d.mode, JoinMode::Webrtc, "0 turns the CPU check off");
    let d = decide(10, 10, Some(99.0), 85);
    assert_eq!(d.cause, Some(Cause::Capacity), "capacity is reported first");
}

#[test]
fn cpu_meter_is_busy_ticks_over_wall_time_and_cores() {
    let t0 = Instant::now();
    let mut m = CpuMeter::new(2);
    assert_eq!(m.observe(t0, 1000), None, "first sample");
    // 1 s later, 100 more ticks = one core busy = 50 % of two; then 2 s with 400 ticks =
    // 100 % (clamped). Nothing is reported before SUSTAIN intervals.
    assert_eq!(m.observe(t0 + Duration::from_secs(1), 1100), None);
    assert_eq!(m.observe(t0 + Duration::from_secs(3), 1500), None);
    // The lowest of the last three counts.
    let p = m.observe(t0 + Duration::from_secs(4), 1700).unwrap();
    assert!(
        (p - 50.0).abs() < 0.01,
        "still within {SUSTAIN} samples: {p}"
    );
    let p = m.observe(t0 + Duration::from_secs(5), 1900).unwrap();
    assert_eq!(p, 100.0, "busy for {SUSTAIN} samples in a row");
    // No time passing: no sample.
    assert_eq!(m.observe(t0 + Duration::from_secs(5), 1900), None);
    // Idle once is enough to stop being overloaded.
    let p = m.observe(t0 + Duration::from_secs(6), 1900).unwrap();
    assert_eq!(p, 0.0);
    // A counter that went backwards is 0, not a wrap.
    let mut m = CpuMeter::new(1);
    m.observe(t0, 1000);
    m.observe(t0 + Duration::from_secs(1), 1100);
    m.observe(t0 + Duration::from_secs(2), 1200);
    assert_eq!(m.observe(t0 + Duration::from_secs(3), 10), Some(0.0));
}

#[test]
fn proc_stat_fields_are_counted_from_the_last_parenthesis() {
    let line = "4242 (venue (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 \
                100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 17990 0 0 0 17 1 0 \
                0 0 0 0";
    assert_eq!(parse_proc_stat(line), Some(325));
    assert_eq!(parse_proc_stat("1 (short) S 1 2"), None);
    assert_eq!(parse_proc_stat("no parens at all"), None);
    assert_eq!(parse_proc_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 7"), None);
    assert!(
        read_proc_self().is_some() || !cfg!(target_os = "linux"),
        "this process's own stat parses"
    );
}

#[test]
fn overflow_cpu_cell_round_trips() {
    let o = Overflow::new(HlsConfig::default());
    assert_eq!(o.cpu_percent(), None);
    o.set_cpu_percent(Some(42.5));
    assert_eq!(o.cpu_percent(), Some(42.5));
    o.set_cpu_percent(None);
    assert_eq!(o.cpu_percent(), None);
}
