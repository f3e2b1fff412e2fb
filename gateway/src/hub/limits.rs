//! Rate limits (governor, GCRA) per connection and per hashed IP, on the hub's virtual clock,
//! and the offence counter that closes connections sending garbage.
//!
//! The limiters run on a [`governor::clock::FakeRelativeClock`] that the hub advances to the
//! `now` of each input: the core stays sans-IO and unit tests drive it on virtual time.
//! A connection's limiters live in its own state ([`ConnLimits`], four direct limiters);
//! the per-IP limiters are keyed by [`IpHash`] and allow `per_ip_factor` times the
//! per-connection rate and burst (0 turns them off), so one host cannot multiply its budget
//! by opening connections while a household or a NAT behind one address still fits.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::IpHash;

/// A rate: `per_second` commands per second on average, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained commands per second, ≥ 1.
    pub per_second: u32,
    /// Largest burst, ≥ 1.
    pub burst: u32,
}

impl Rate {
    fn quota(self, factor: u32) -> Quota {
        let per = NonZeroU32::new(self.per_second.saturating_mul(factor).max(1))
            .unwrap_or(NonZeroU32::MIN);
        let burst =
            NonZeroU32::new(self.burst.saturating_mul(factor).max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(per).allow_burst(burst)
    }
}

/// Limits of each rate-limited command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Chat messages: default 1/s, burst 5.
    pub chat: Rate,
    /// Sticker placements: default 5/s, burst 10.
    pub sticker: Rate,
    /// Fireworks: default 1/s, burst 3.
    pub firework: Rate,
    /// Cursor moves: default 30/s, burst 30.
    pub cursor: Rate,
    /// Per-IP limit = this × the per-connection rate and burst; 0 = no per-IP limits.
    /// Default 10.
    pub per_ip_factor: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            chat: Rate {
                per_second: 1,
                burst: 5,
            },
            sticker: Rate {
                per_second: 5,
                burst: 10,
            },
            firework: Rate {
                per_second: 1,
                burst: 3,
            },
            cursor: Rate {
                per_second: 30,
                burst: 30,
            },
            per_ip_factor: 10,
        }
    }
}

/// A rate-limited command kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat = 0,
    Sticker = 1,
    Firework = 2,
    Cursor = 3,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Chat, Kind::Sticker, Kind::Firework, Kind::Cursor];

    fn rate(self, config: &LimitConfig) -> Rate {
        match self {
            Kind::Chat => config.chat,
            Kind::Sticker => config.sticker,
            Kind::Firework => config.firework,
            Kind::Cursor => config.cursor,
        }
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<Nanos>>;
type Keyed =
    RateLimiter<IpHash, HashMapStateStore<IpHash>, FakeRelativeClock, NoOpMiddleware<Nanos>>;

/// One connection's limiters and whether it was told about the current burst.
pub struct ConnLimits {
    limiters: [Direct; 4],
    notified: [bool; 4],
}

impl std::fmt::Debug for ConnLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLimits")
            .field("notified", &self.notified)
            .finish_non_exhaustive()
    }
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Over the limit: drop it. `notify` is true for the first drop of a burst.
    Limited { notify: bool },
}

/// The hub's limiters and their virtual clock.
pub struct Limits {
    config: LimitConfig,
    clock: FakeRelativeClock,
    epoch: Option<Instant>,
    at: Duration,
    per_ip: Option<[Keyed; 4]>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("config", &self.config)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limiters for `config`, with the clock at zero.
    pub fn new(config: LimitConfig) -> Limits {
        let clock = FakeRelativeClock::default();
        let per_ip = (config.per_ip_factor > 0).then(|| {
            Kind::ALL.map(|k| {
                Keyed::hashmap_with_clock(
                    k.rate(&config).quota(config.per_ip_factor),
                    clock.clone(),
                )
            })
        });
        Limits {
            config,
            clock,
            epoch: None,
            at: Duration::ZERO,
            per_ip,
        }
    }

    /// Moves the virtual clock to `now` (never backwards).
    pub fn advance(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let t = now.saturating_duration_since(epoch);
        if t > self.at {
            self.clock.advance(t - self.at);
            self.at = t;
        }
    }

    /// Fresh limiters for a new connection (full bursts).
    pub fn conn(&self) -> ConnLimits {
        ConnLimits {
            limiters: Kind::ALL.map(|k| {
                Direct::direct_with_clock(k.rate(&self.config).quota(1), self.clock.clone())
            }),
            notified: [false; 4],
        }
    }

    /// Checks one command of `kind` against the connection's and its IP's limits.
    pub fn check(&self, conn: &mut ConnLimits, ip: Option<&IpHash>, kind: Kind) -> Verdict {
        let i = kind as usize;
        let conn_ok = conn.limiters.get(i).is_some_and(|l| l.check().is_ok());
        let ip_ok = conn_ok
            && match (&self.per_ip, ip) {
                (Some(per_ip), Some(ip)) => per_ip.get(i).is_some_and(|l| l.check_key(ip).is_ok()),
                _ => true,
            };
        let Some(notified) = conn.notified.get_mut(i) else {
            return Verdict::Allowed;
        };
        if ip_ok {
            *notified = false;
            Verdict::Allowed
        } else {
            let notify = !*notified;
            *notified = true;
            Verdict::Limited { notify }
        }
    }

    /// Forgets per-IP state that is back to full (call now and then).
    pub fn retain_recent(&self) {
        if let Some(per_ip) = &self.per_ip {
            for l in per_ip {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

/// Counts a connection's offences (garbage, oversized or undecodable frames); `max` of them
/// within `window` close the connection.
#[derive(Debug, Default)]
pub struct Offences {
    times: VecDeque<Instant>,
}

impl Offences {
    /// Records one offence at `now`; true when the connection must be closed.
    pub fn record(&mut self, now: Instant, max: usize, window: Duration) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() >= max.max(1)
    }

    /// Offences within the current window (including the one just recorded).
    pub fn count(&self) -> usize {
        self.times.len()
    }
}
