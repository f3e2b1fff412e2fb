//! Overflow: whether a new viewer watches over WebRTC (WHEP) or the room's LL-HLS program.
//!
//! A viewer page asks `GET /api/rooms/{room}/join` (`http::rooms::join`) first, and
//! `POST /api/whep/{room}` refuses new viewers with the same rule, so a page that skipped the
//! question cannot overload the server. The rule ([`decide`], pure):
//!
//! - **capacity**: the room has `hls.max_webrtc_viewers` WebRTC viewers or more. Viewers are the
//!   state actor's count ([`crate::rooms::Core::webrtc_viewers`]): WHEP sessions from the
//!   answer on (before ICE completes, so a burst of offers is counted as it is answered), until
//!   DELETE or the SFU drops them (a session that never connects is dropped after the SFU's
//!   connect timeout). Admin previews are not viewers. The limit is soft by the offers in
//!   flight at the same moment.
//! - **CPU**: this process used more than `hls.max_cpu_percent` of all cores in each of the
//!   last [`SUSTAIN`] seconds (a burst is not overload): `utime + stime` from `/proc/self/stat`
//!   (clock ticks of [`USER_HZ`]) sampled every [`SAMPLE_INTERVAL`] by a task, divided by wall
//!   time × cores; the lowest of the last [`SUSTAIN`] samples counts ([`CpuMeter`], sans-IO). The
//!   media plane's cost grows with every WebRTC viewer, the HLS program's does not, so a busy
//!   server sends newcomers to HLS before it starts losing packets for everyone. Where
//!   `/proc/self/stat` is unreadable (not Linux) the check is off. Viewers already watching keep
//!   their connections: overflow only steers new ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::HlsConfig;
use crate::ids::RoomId;
use crate::rooms::{StateError, StateHandle};

/// How often the CPU sampler reads `/proc/self/stat`.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Clock ticks per second of the times in `/proc/[pid]/stat` (`USER_HZ`, 100 on every Linux ABI
/// Venue runs on; proc(5)).
pub const USER_HZ: u64 = 100;
/// Samples that must all be over the limit: the meter reports the lowest of the last this many.
pub const SUSTAIN: usize = 3;
/// `Retry-After` of a refused WHEP offer, seconds: the page plays HLS meanwhile.
pub const RETRY_AFTER_S: u64 = 30;

/// How a viewer should watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinMode {
    /// WHEP: sub-second latency.
    Webrtc,
    /// The LL-HLS program at `/hls/{room}/index.m3u8`.
    Hls,
}

/// Why a viewer is sent to HLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The room has `max_webrtc_viewers` WebRTC viewers.
    Capacity,
    /// This process is over `max_cpu_percent`.
    Cpu,
}

/// The answer for one new viewer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub mode: JoinMode,
    /// `None` in WebRTC mode.
    pub cause: Option<Cause>,
    /// For people: why this mode.
    pub reason: String,
    /// WebRTC viewers of the room now.
    pub webrtc_viewers: usize,
    pub max_webrtc_viewers: usize,
    /// This process's CPU over the last second, percent of all cores; `None` when unmeasured.
    pub cpu_percent: Option<f32>,
}

/// The overflow rule. `cpu_percent` is the last sample (percent of all cores, `None`:
/// unmeasured), `max_cpu_percent` 0 turns the CPU check off. Capacity is checked first.
pub fn decide(
    viewers: usize,
    max_viewers: usize,
    cpu_percent: Option<f32>,
    max_cpu_percent: u32,
) -> Decision {
    let mut d = Decision {
        mode: JoinMode::Webrtc,
        cause: None,
        reason: format!("{viewers} of {max_viewers} WebRTC places in this room are taken"),
        webrtc_viewers: viewers,
        max_webrtc_viewers: max_viewers,
        cpu_percent,
    };
    if viewers >= max_viewers {
        d.mode = JoinMode::Hls;
        d.cause = Some(Cause::Capacity);
        d.reason = format!(
            "this room is at its WebRTC capacity ({viewers} of {max_viewers} viewers): \
             watching the HLS program (a few seconds behind)"
        );
    } else if let Some(cpu) = cpu_percent
        && max_cpu_percent > 0
        && cpu > max_cpu_percent as f32
    {
        d.mode = JoinMode::Hls;
        d.cause = Some(Cause::Cpu);
        d.reason = format!(
            "the server is busy (CPU {cpu:.0}% > {max_cpu_percent}%): watching the HLS program \
             (a few seconds behind)"
        );
    }
    d
}

/// Process CPU as a share of all cores between two samples, sans-IO: feed it the instant and
/// the process's `utime + stime` in clock ticks ([`USER_HZ`]).
#[derive(Debug, Clone)]
pub struct CpuMeter {
    cores: u32,
    last: Option<(Instant, u64)>,
    /// The last [`SUSTAIN`] one-interval shares, newest last.
    recent: std::collections::VecDeque<f32>,
}

impl CpuMeter {
    /// A meter for a machine with `cores` cores (at least 1).
    pub fn new(cores: u32) -> CpuMeter {
        CpuMeter {
            cores: cores.max(1),
            last: None,
            recent: std::collections::VecDeque::with_capacity(SUSTAIN),
        }
    }

    /// Records a sample; returns the lowest share of the last [`SUSTAIN`] intervals (see
    /// [`CpuMeter::share`]), `None` until there are that many (a start-up burst is not
    /// overload) or when no time passed.
    pub fn observe(&mut self, now: Instant, ticks: u64) -> Option<f32> {
        let share = self.share(now, ticks)?;
        if self.recent.len() == SUSTAIN {
            self.recent.pop_front();
        }
        self.recent.push_back(share);
        if self.recent.len() < SUSTAIN {
            return None;
        }
        self.recent.iter().copied().reduce(f32::min)
    }

    /// Percent of all cores used since the previous sample (0..=100, clamped); `None` for the
    /// first sample or when no time passed.
    fn share(&mut self, now: Instant, ticks: u64) -> Option<f32> {
        let previous = self.last.replace((now, ticks));
        let (then, before) = previous?;
        let wall = now.checked_duration_since(then)?.as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let busy = ticks.saturating_sub(before) as f64 / USER_HZ as f64;
        let percent = 100.0 * busy / (wall * f64::from(self.cores));
        Some(percent.clamp(0.0, 100.0) as f32)
    }
}

/// `utime + stime` (clock ticks) from the text of `/proc/[pid]/stat` (proc(5): fields 14 and
/// 15; the command name in field 2 may hold spaces and parentheses, so fields are counted
/// from its last `)`). `None` when malformed.
pub fn parse_proc_stat(text: &str) -> Option<u64> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    // rest: " state ppid …": field 3 is index 0, so utime (14) is index 11, stime (15) 12.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn read_proc_self() -> Option<u64> {
    parse_proc_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Sentinel of [`Overflow`]'s CPU cell: nothing measured.
const UNMEASURED: u32 = u32::MAX;

/// The overflow policy of one server: its `[hls]` limits and the last CPU sample. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Overflow {
    config: HlsConfig,
    /// Last CPU sample in hundredths of a percent, or [`UNMEASURED`].
    cpu: Arc<AtomicU32>,
    /// WHEP viewers refused (503) because the room was full or the server overloaded.
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Overflow {
    /// The policy of `config`, without a CPU sampler (tests, or `max_cpu_percent = 0`).
    pub fn new(config: HlsConfig) -> Overflow {
        Overflow {
            config,
            cpu: Arc::new(AtomicU32::new(UNMEASURED)),
            refused: Arc::default(),
        }
    }

    /// Like [`Overflow::new`], and when the CPU check is on and `/proc/self/stat` readable,
    /// spawns the sampler (every [`SAMPLE_INTERVAL`], ending when the last clone is dropped).
    /// Call inside a tokio runtime.
    pub fn start(config: HlsConfig) -> Overflow {
        let overflow = Overflow::new(config);
        if config.max_cpu_percent == 0 {
            return overflow;
        }
        let Some(first) = read_proc_self() else {
            tracing::info!("no /proc/self/stat: the overflow CPU check is off");
            return overflow;
        };
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let mut meter = CpuMeter::new(cores);
        meter.observe(Instant::now(), first);
        let cell = Arc::downgrade(&overflow.cpu);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(cell) = cell.upgrade() else { break };
                if let Some(percent) =
                    read_proc_self().and_then(|t| meter.observe(Instant::now(), t))
                {
                    cell.store((percent * 100.0).round() as u32, Ordering::Relaxed);
                }
            }
        });
        overflow
    }

    /// Counts one WHEP viewer refused for overflow.
    pub fn note_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// WHEP viewers refused for overflow since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The `[hls]` limits.
    pub fn config(&self) -> HlsConfig {
        self.config
    }

    /// This process's CPU over the last sampled second, percent of all cores.
    pub fn cpu_percent(&self) -> Option<f32> {
        match self.cpu.load(Ordering::Relaxed) {
            UNMEASURED => None,
            v => Some(v as f32 / 100.0),
        }
    }

    /// Sets the CPU sample by hand (tests of the overload path).
    pub fn set_cpu_percent(&self, percent: Option<f32>) {
        let v = percent.map_or(UNMEASURED, |p| (p.clamp(0.0, 100.0) * 100.0).round() as u32);
        self.cpu.store(v, Ordering::Relaxed);
    }

    /// The decision for a new viewer of room `room_id` (store id). Errors: the state actor
    /// stopped (500).
    pub async fn decide(
        &self,
        state: &StateHandle,
        room_id: RoomId,
    ) -> Result<Decision, StateError> {
        let viewers = state.webrtc_viewers(room_id).await?;
        Ok(decide(
            viewers,
            self.config.max_webrtc_viewers,
            self.cpu_percent(),
            self.config.max_cpu_percent,
        ))
    }
}

#[cfg(test)]
#[path = "tests/overflow.rs"]
mod tests;
