//! The set rule and naming of recordings (sans-IO): who is on stage slot 0 → set starts and
//! ends ([`SetTracker`]), the booking a set is named after ([`booking_for`]), the file name
//! ([`file_name`], [`slug`]) and whether a set is kept ([`keep`]). See the module docs of
//! [`super`].

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use unicode_normalization::UnicodeNormalization;

use super::MIN_SET;
use crate::ids::StreamerId;
use crate::store::recordings::BookingWindow;

/// Longest artist slug in a file name, chars.
const MAX_SLUG: usize = 48;

/// Who sits on stage slot 0 of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub streamer_id: StreamerId,
    /// The streamer's name.
    pub name: String,
    /// Whether the streamer is publishing.
    pub live: bool,
}

/// A set starting or ending, as [`SetTracker::observe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetChange {
    /// `streamer_id` (called `name`) is now live on slot 0 with recording wanted.
    Start {
        streamer_id: StreamerId,
        name: String,
    },
    /// The set of `streamer_id` ended.
    End { streamer_id: StreamerId },
}

/// The set rule of one room: fed slot 0 as it is now, says when sets start and end.
#[derive(Debug, Default, Clone)]
pub struct SetTracker {
    current: Option<StreamerId>,
}

impl SetTracker {
    /// Compares slot 0 now (`seat`; `None`: empty) with the set in progress. `enabled`:
    /// recording is on. Returns at most an `End` followed by a `Start` (a streamer replaced by
    /// another live one), in that order.
    pub fn observe(&mut self, enabled: bool, seat: Option<&Seat>) -> Vec<SetChange> {
        let now = seat.filter(|s| enabled && s.live);
        let mut changes = Vec::new();
        match (self.current, now) {
            (Some(cur), Some(s)) if cur == s.streamer_id => {}
            (cur, now) => {
                if let Some(streamer_id) = cur {
                    changes.push(SetChange::End { streamer_id });
                }
                if let Some(s) = now {
                    changes.push(SetChange::Start {
                        streamer_id: s.streamer_id,
                        name: s.name.clone(),
                    });
                }
                self.current = now.map(|s| s.streamer_id);
            }
        }
        changes
    }

    /// The streamer whose set is in progress.
    pub fn current(&self) -> Option<StreamerId> {
        self.current
    }
}

/// The booking a set starting at `start` (Unix seconds) is named after (see the module docs):
/// among `bookings` of the streamer in the room, those whose window opened `grace_before_s`
/// early contains `start`; the one whose own window contains `start` first, else the one
/// starting soonest. `None`: no booking covers it.
pub fn booking_for(
    start: i64,
    bookings: &[BookingWindow],
    grace_before_s: i64,
) -> Option<&BookingWindow> {
    bookings
        .iter()
        .filter(|b| b.start_at.saturating_sub(grace_before_s) <= start && start < b.end_at)
        .min_by_key(|b| (b.start_at > start, (b.start_at - start).abs(), b.booking_id))
}

/// A file-name-safe slug of an artist name: accents stripped (NFKD), ASCII letters and digits
/// lowercased, runs of anything else one `-`, at most 48 chars; `set` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.nfkd() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
            if out.len() >= MAX_SLUG {
                break;
            }
        } else if !unicode_normalization::char::is_combining_mark(c) {
            dash = true;
        }
    }
    if out.is_empty() {
        "set".to_owned()
    } else {
        out
    }
}

/// `{room}-{YYYYMMDDTHHMMSSZ}-{slug}.mp4` for a set of `artist` in `room` starting at `start`.
pub fn file_name(room: &str, start: SystemTime, artist: &str) -> String {
    let at: DateTime<Utc> = start.into();
    format!(
        "{room}-{}-{}.mp4",
        at.format("%Y%m%dT%H%M%SZ"),
        slug(artist)
    )
}

/// Whether a set with `media` of program in its file is kept (at least [`MIN_SET`]).
pub fn keep(media: Duration) -> bool {
    media >= MIN_SET
}
