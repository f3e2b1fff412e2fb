//! Unit tests of `schedule.rs` (kept in their own file): the slot tracker's exactly-once
//! starts and ends on plain integer time.

use super::*;
use crate::ids::{EventId, RoomId, StreamerId};

fn window(id: i64, start_at: i64, end_at: i64) -> BookedWindow {
    BookedWindow {
        booking_id: BookingId(id),
        event_id: EventId(1),
        room_id: RoomId(1),
        room: "main".into(),
        streamer_id: StreamerId(10 + id),
        artist_name: format!("artist {id}"),
        start_at,
        end_at,
    }
}

/// What the store would answer for `windows` (the query's filter).
fn feed(tracker: &mut SlotTracker, now: i64, all: &[BookedWindow]) -> Vec<(char, i64)> {
    let since = tracker.since(now);
    let rows = all
        .iter()
        .filter(|w| w.start_at <= now && w.end_at > since)
        .cloned()
        .collect();
    tracker
        .advance(now, rows)
        .into_iter()
        .map(|e| match e {
            SlotEdge::Started(w) => ('s', w.booking_id.0),
            SlotEdge::Ended(w) => ('e', w.booking_id.0),
        })
        .collect()
}

#[test]
fn each_window_starts_and_ends_once_however_often_the_timer_wakes() {
    let all = [window(1, 100, 200), window(2, 200, 300)];
    let mut t = SlotTracker::default();
    assert!(feed(&mut t, 50, &all).is_empty(), "boot before any window");
    // Re-arms (changed(), spurious wakes) at the same or nearby instants fire nothing twice.
    assert!(feed(&mut t, 99, &all).is_empty());
    assert_eq!(feed(&mut t, 100, &all), vec![('s', 1)]);
    assert!(feed(&mut t, 100, &all).is_empty());
    assert!(feed(&mut t, 150, &all).is_empty());
    // Back to back: window 1 ends before window 2 starts at the same instant.
    assert_eq!(feed(&mut t, 200, &all), vec![('e', 1), ('s', 2)]);
    assert!(feed(&mut t, 201, &all).is_empty());
    assert_eq!(feed(&mut t, 300, &all), vec![('e', 2)]);
    assert!(feed(&mut t, 400, &all).is_empty());
}

#[test]
fn a_window_in_progress_at_boot_gets_no_start_but_its_end() {
    let all = [window(1, 100, 200), window(2, 250, 300)];
    let mut t = SlotTracker::default();
    assert!(feed(&mut t, 150, &all).is_empty());
    assert_eq!(feed(&mut t, 200, &all), vec![('e', 1)]);
    assert_eq!(feed(&mut t, 250, &all), vec![('s', 2)]);
}

#[test]
fn instants_slept_through_are_caught_up_in_time_order() {
    let all = [
        window(1, 100, 200),
        window(2, 200, 300),
        window(3, 350, 400),
    ];
    let mut t = SlotTracker::default();
    assert!(feed(&mut t, 0, &all).is_empty());
    assert_eq!(
        feed(&mut t, 360, &all),
        vec![('s', 1), ('e', 1), ('s', 2), ('e', 2), ('s', 3)]
    );
    assert_eq!(feed(&mut t, 1000, &all), vec![('e', 3)]);
}

#[test]
fn edits_while_in_progress_start_late_extend_or_end_at_once() {
    let mut t = SlotTracker::default();
    assert!(feed(&mut t, 0, &[]).is_empty());
    // Booked while its window is already in progress: announced when seen.
    let mut all = vec![window(1, 100, 200)];
    assert_eq!(feed(&mut t, 150, &all), vec![('s', 1)]);
    // Extended (a contiguous booking merged into it): no new start, the end moves.
    all[0].end_at = 260;
    assert!(feed(&mut t, 200, &all).is_empty());
    assert_eq!(feed(&mut t, 260, &all), vec![('e', 1)]);
    // Deleted while in progress: ended at once, with the window as last seen.
    let mut all = vec![window(2, 300, 400)];
    assert_eq!(feed(&mut t, 300, &all), vec![('s', 2)]);
    all.clear();
    let edges = t.advance(310, Vec::new());
    assert_eq!(edges, vec![SlotEdge::Ended(window(2, 300, 400))]);
    assert!(feed(&mut t, 400, &all).is_empty());
}
