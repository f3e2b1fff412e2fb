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
//! - Wall-clock time comes from a [`Clock`] that tests can set; timers run on tokio's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::sync::Notify;

use crate::config::ScheduleConfig;
use crate::error::ApiError;
use crate::state::StateHandle;
use crate::store::{Store, Streamer};

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

    /// The streamer whose stream key is `key`, if the key may publish now. Errors: 401
    /// `unknown stream key`, or 401 with the reason a slot-bound key is refused now
    /// ("this key opens at 2026-11-21T20:55:00Z", "this key's slot ended at …", "this key has
    /// no booked slot"); 500 store failure.
    pub async fn authorize(&self, store: &Store, key: &str) -> Result<Streamer, ApiError> {
        let access = store
            .key_access(key)
            .await?
            .ok_or(ApiError::Unauthorized("unknown stream key"))?;
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
        tracing::info!(streamer = access.streamer.id, %reason, "stream key refused outside its window");
        Err(ApiError::KeyRefused(reason))
    }

    /// Ends the sessions of slot-bound streamers outside their windows now; returns the
    /// next closing instant (window end + `grace_after`), if any.
    async fn sweep(&self, store: &Store, state: &StateHandle) -> Result<Option<i64>, ApiError> {
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

    /// Starts the timer task that ends sessions when windows close. It holds the state actor
    /// weakly and stops when the actor has stopped.
    pub fn spawn_enforcer(&self, store: Store, state: &StateHandle) {
        let schedule = self.clone();
        let state = state.downgrade();
        tokio::spawn(async move {
            loop {
                let Some(handle) = state.upgrade() else {
                    break;
                };
                let swept = schedule.sweep(&store, &handle).await;
                drop(handle);
                let next = match swept {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "schedule sweep failed; retrying in 1 s");
                        Some(schedule.clock.now().timestamp().saturating_add(1))
                    }
                };
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
