//! Slot-bound stream keys: when a key may publish, and the timer that ends sessions when a
//! booked window closes.
//!
//! Contract:
//! - A streamer never booked (a host) publishes with its key at any time. A streamer booked at
//!   least once is *slot-bound*: its key works from `grace_before` before one of its windows
//!   (contiguous bookings merged) to that window's end, and is refused outside with a reason
//!   that says when it opens or when it closed ([`Schedule::authorize`], the one check WHIP
//!   and RTMP both call).
//! - When a window closes, the streamer's publisher sessions are ended `grace_after` later,
//!   within one second: one task sleeps until the next closing instant
//!   (`tokio::time::sleep_until`), re-armed whenever events or bookings change
//!   ([`Schedule::changed`]); it never polls. Sessions are closed through the state actor's
//!   path that closes a streamer's sessions (`StateHandle::close_publishers`).
//! - The same task emits the `slot.started` / `slot.ended` webhooks (when webhooks are
//!   configured): it also wakes at every window start and end, and a [`SlotTracker`] decides
//!   what fired. A window is one booking row (contiguous slots of one artist merged); its
//!   start and end are the booked times, without the graces. Each window gets at most one
//!   `slot.started` and, after it, one `slot.ended`, however often the timer is re-armed:
//!   - windows already in progress when the server starts get no `slot.started` (the start
//!     happened while nobody was watching; a late "started" would mislead), but do get their
//!     `slot.ended`; windows that start and end while the server runs get both;
//!   - instants the timer slept through (a moved clock, a suspended host) are caught up in
//!     time order, ends before starts at the same instant;
//!   - a window booked, moved or extended while in progress is announced started when the
//!     timer next sees it in progress; one deleted or moved out of `now` while announced gets
//!     its `slot.ended` at once (with the window as last seen).
//! - Wall-clock time comes from a [`Clock`] that tests can set; timers run on tokio's clock.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::sync::Notify;

use crate::bus::{Announcement, Bus};
use crate::config::ScheduleConfig;
use crate::ids::BookingId;
use crate::rooms::{StateError, StateHandle};
use crate::store::schedule::BookedWindow;
use crate::store::{Store, StoreError, Streamer};
use crate::webhooks::{Event, SlotData};

/// UTC wall clock with an adjustable offset (tests move it; production leaves it at 0).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The current time, UTC.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Makes [`Clock::now`] read `now` at this instant (and run on from there).
    pub fn set(&self, now: DateTime<Utc>) {
        let offset = (now - Utc::now()).num_milliseconds();
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

/// RFC 3339 in UTC with a `Z` and whole seconds (`2026-11-21T20:55:00Z`).
pub fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Public sign-ups allowed per client IP per minute.
pub const SIGNUPS_PER_MINUTE: u32 = 5;

/// Why a stream key may not publish now ([`Schedule::authorize`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No streamer has this key.
    #[error("unknown stream key")]
    Unknown,
    /// A slot-bound key outside its booked window; the string says when it opens or closed.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The schedule's settings, clock, re-arm signal and sign-up rate limit; cheap to clone.
#[derive(Clone)]
pub struct Schedule {
    signups: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    clock: Clock,
    grace_before: Duration,
    grace_after: Duration,
    rearm: Arc<Notify>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("clock", &self.clock)
            .field("grace_before", &self.grace_before)
            .field("grace_after", &self.grace_after)
            .finish_non_exhaustive()
    }
}

impl Schedule {
    /// A schedule with `config`'s graces on `clock`.
    pub fn new(config: ScheduleConfig, clock: Clock) -> Schedule {
        let quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(SIGNUPS_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN),
        );
        Schedule {
            signups: Arc::new(governor::RateLimiter::keyed(quota)),
            clock,
            grace_before: Duration::from_secs(config.grace_before_s),
            grace_after: Duration::from_secs(config.grace_after_s),
            rearm: Arc::new(Notify::new()),
        }
    }

    /// Whether `ip` may make another public sign-up now (counts it).
    pub fn signup_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.signups.retain_recent();
        self.signups.check_key(&ip).is_ok()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Moves the clock to `now` and re-arms the timer (tests).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.clock.set(now);
        self.changed();
    }

    /// Events, bookings or the clock changed: the timer re-reads the schedule and closes
    /// sessions that are now outside their windows.
    pub fn changed(&self) {
        self.rearm.notify_one();
    }

    fn before_s(&self) -> i64 {
        i64::try_from(self.grace_before.as_secs()).unwrap_or(i64::MAX)
    }

    fn after_s(&self) -> i64 {
        i64::try_from(self.grace_after.as_secs()).unwrap_or(i64::MAX)
    }

    /// The streamer whose stream key is `key`, if the key may publish now. Errors:
    /// [`KeyError::Unknown`], [`KeyError::Refused`] with the reason a slot-bound key is refused
    /// now ("this key opens at 2026-11-21T20:55:00Z", "this key's slot ended at …", "this key
    /// has no booked slot"), [`KeyError::Store`] (HTTP answers 401, 401 and 500).
    pub async fn authorize(&self, store: &Store, key: &str) -> Result<Streamer, KeyError> {
        let access = store.key_access(key).await?.ok_or(KeyError::Unknown)?;
        if !access.slot_bound {
            return Ok(access.streamer);
        }
        let now = self.clock.now().timestamp();
        let before = self.before_s();
        if access
            .windows
            .iter()
            .any(|&(start, end)| start.saturating_sub(before) <= now && now < end)
        {
            return Ok(access.streamer);
        }
        let reason =
            if let Some(&(start, _)) = access.windows.iter().find(|(start, _)| *start > now) {
                format!(
                    "this key opens at {} ({} s before the booked slot at {})",
                    rfc3339(start.saturating_sub(before)),
                    before,
                    rfc3339(start)
                )
            } else if let Some(&(_, end)) = access.windows.last() {
                format!("this key's slot ended at {}", rfc3339(end))
            } else {
                "this key has no booked slot".to_owned()
            };
        tracing::info!(streamer = access.streamer.id.0, %reason, "stream key refused outside its window");
        Err(KeyError::Refused(reason))
    }

    /// Ends the sessions of slot-bound streamers outside their windows now; returns the
    /// next closing instant (window end + `grace_after`), if any.
    async fn sweep(&self, store: &Store, state: &StateHandle) -> Result<Option<i64>, StateError> {
        let now = self.clock.now().timestamp();
        let after = self.after_s();
        let outside = store
            .streamers_outside_windows(now, self.before_s(), after)
            .await?;
        if !outside.is_empty() {
            state.close_publishers(outside).await?;
        }
        let next = store
            .next_window_end_after(now.saturating_sub(after))
            .await?;
        Ok(next.map(|end| end.saturating_add(after)))
    }

    /// Emits the slot webhooks due at the clock's `now`; returns the next window start or end
    /// after it, if any.
    async fn slots(
        &self,
        store: &Store,
        tracker: &mut SlotTracker,
        bus: &dyn Bus,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now();
        let t = now.timestamp();
        let windows = store.windows_between(tracker.since(t), t).await?;
        for edge in tracker.advance(t, windows) {
            let (started, w) = match edge {
                SlotEdge::Started(w) => (true, w),
                SlotEdge::Ended(w) => (false, w),
            };
            // Every node's timer sees this edge; one announces it (cluster mode).
            let key = format!(
                "slot:{}:{}:{}:{}",
                w.booking_id.0,
                if started { "started" } else { "ended" },
                w.start_at,
                w.end_at
            );
            if !bus.claim_once(key).await {
                continue;
            }
            tracing::info!(
                booking = w.booking_id.0,
                streamer = w.streamer_id.0,
                started,
                "slot webhook"
            );
            bus.publish(Announcement::Webhook(Event::slot(
                started,
                w.room,
                SlotData {
                    event_id: w.event_id,
                    booking_id: w.booking_id,
                    streamer_id: w.streamer_id,
                    artist_name: w.artist_name,
                    start: rfc3339(w.start_at),
                    end: rfc3339(w.end_at),
                },
                now,
            )));
        }
        Ok(store.next_window_edge_after(t).await?)
    }

    /// Starts the timer task that ends sessions when windows close and, when `bus` carries
    /// webhooks, announces `slot.started` / `slot.ended` on it. It holds the state actor weakly
    /// and stops when the actor has stopped.
    pub fn spawn_enforcer(&self, store: Store, state: &StateHandle, bus: Arc<dyn Bus>) {
        let schedule = self.clone();
        let state = state.downgrade();
        tokio::spawn(async move {
            let mut tracker = SlotTracker::default();
            loop {
                let Some(handle) = state.upgrade() else {
                    break;
                };
                let swept = schedule.sweep(&store, &handle).await;
                drop(handle);
                let mut next = match swept {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "schedule sweep failed; retrying in 1 s");
                        Some(schedule.clock.now().timestamp().saturating_add(1))
                    }
                };
                if bus.wants_webhooks() {
                    let edge = match schedule.slots(&store, &mut tracker, bus.as_ref()).await {
                        Ok(edge) => edge,
                        Err(e) => {
                            tracing::warn!(error = %e, "slot webhooks failed; retrying in 1 s");
                            Some(schedule.clock.now().timestamp().saturating_add(1))
                        }
                    };
                    next = match (next, edge) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                let sleep = next.map(|at| {
                    let at = DateTime::<Utc>::from_timestamp(at, 0).unwrap_or_default();
                    let wait = (at - schedule.clock.now()).to_std().unwrap_or_default();
                    tokio::time::Instant::now() + wait
                });
                tokio::select! {
                    () = async {
                        match sleep {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                    () = schedule.rearm.notified() => {}
                }
            }
            tracing::debug!("schedule timer stopped");
        });
    }
}

/// A window starting or ending (for the slot webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotEdge {
    Started(BookedWindow),
    Ended(BookedWindow),
}

/// Which windows have been announced started, sans IO: the timer feeds it the windows the
/// store has between [`SlotTracker::since`] and `now` and emits what it returns. See the
/// module docs for the rules (boot, catch-up, edits).
#[derive(Debug, Default)]
pub struct SlotTracker {
    /// The `now` of the last [`SlotTracker::advance`]; `None` before the first (boot).
    seen_until: Option<i64>,
    /// Windows announced started and not yet ended, by booking id.
    announced: BTreeMap<BookingId, BookedWindow>,
}

impl SlotTracker {
    /// The lower bound of the windows [`SlotTracker::advance`] needs at `now` (Unix seconds):
    /// every window with `start_at ≤ now` and `end_at > since(now)`.
    pub fn since(&self, now: i64) -> i64 {
        self.seen_until.map_or(now, |seen| seen.min(now))
    }

    /// Takes the windows with `start_at ≤ now` and `end_at > self.since(now)` (others are
    /// ignored) and returns the edges to announce, in time order (ends before starts at the
    /// same instant).
    pub fn advance(&mut self, now: i64, windows: Vec<BookedWindow>) -> Vec<SlotEdge> {
        let boot = self.seen_until.is_none();
        let since = self.since(now);
        // (instant, ends first, edge)
        let mut edges: Vec<(i64, u8, SlotEdge)> = Vec::new();
        let mut present = HashSet::new();
        for w in windows {
            if w.start_at > now || w.end_at <= since {
                continue;
            }
            present.insert(w.booking_id);
            let in_progress = w.end_at > now;
            if let Some(seen) = self.announced.get_mut(&w.booking_id) {
                if in_progress {
                    *seen = w;
                } else {
                    self.announced.remove(&w.booking_id);
                    edges.push((w.end_at, 0, SlotEdge::Ended(w)));
                }
                continue;
            }
            if boot {
                // In progress before we started: no start, but its end will be announced.
                self.announced.insert(w.booking_id, w);
                continue;
            }
            edges.push((w.start_at.max(since), 1, SlotEdge::Started(w.clone())));
            if in_progress {
                self.announced.insert(w.booking_id, w);
            } else {
                edges.push((w.end_at, 0, SlotEdge::Ended(w)));
            }
        }
        let gone: Vec<BookingId> = self
            .announced
            .keys()
            .filter(|id| !present.contains(*id))
            .copied()
            .collect();
        for id in gone {
            if let Some(w) = self.announced.remove(&id) {
                edges.push((now, 0, SlotEdge::Ended(w)));
            }
        }
        edges.sort_by_key(|(at, order, _)| (*at, *order));
        self.seen_until = Some(now);
        edges.into_iter().map(|(_, _, edge)| edge).collect()
    }
}

#[cfg(test)]
#[path = "tests/schedule.rs"]
mod tests;
