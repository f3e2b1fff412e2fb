//! The running LL-HLS programs by room ([`HlsPrograms`]): each an [`HlsProgram`], a
//! `std::sync::Mutex<LlHlsPackager>` (held only to push one picture or render one answer)
//! and a `watch` generation that wakes held playlist requests. Fed by the program supervisor
//! ([`crate::media::program`]); served over HTTP by `http::hls`, which records `last_watched`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use venue_sfu::egress::hls::{HlsConfig, HlsError, LlHlsPackager};
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

/// One running program of a room: its packager and a generation counter that moves every
/// time a part is published (held requests wait on it).
#[derive(Debug)]
pub struct HlsProgram {
    packager: Mutex<LlHlsPackager>,
    generation: watch::Sender<u64>,
    target_duration: Duration,
}

impl HlsProgram {
    fn lock(&self) -> MutexGuard<'_, LlHlsPackager> {
        // The packager never panics on input; if a bug did, keep serving what it holds.
        self.packager.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes one program picture (see [`LlHlsPackager::push_video`]); wakes held requests
    /// when a part was published. Never blocks on IO; the lock is held for the packaging of
    /// one picture.
    pub fn push_video(&self, frame: ProgramVideo, now: SystemTime) {
        let generation = {
            let mut p = self.lock();
            p.push_video(frame, now).then(|| p.generation())
        };
        if let Some(g) = generation {
            self.generation.send_replace(g);
        }
    }

    /// Pushes one Opus packet (see [`LlHlsPackager::push_audio`]).
    pub fn push_audio(&self, packet: ProgramAudio) {
        self.lock().push_audio(packet);
    }

    /// The packager's `EXT-X-TARGETDURATION`.
    pub fn target_duration(&self) -> Duration {
        self.target_duration
    }

    /// A receiver of the generation counter, which moves every time a part is published
    /// (held requests wait on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Runs `f` on the packager (for tests and diagnostics).
    pub fn with<R>(&self, f: impl FnOnce(&LlHlsPackager) -> R) -> R {
        f(&self.lock())
    }
}

#[derive(Debug)]
struct Registry {
    programs: Mutex<HashMap<String, Arc<HlsProgram>>>,
    /// Room name → when a playlist of it was last requested.
    watched: Mutex<HashMap<String, Instant>>,
    /// Room name → the media sequence number after the last program's last one.
    next_msn: Mutex<HashMap<String, u64>>,
    /// Moves when a program starts (requests waiting for one).
    started: watch::Sender<u64>,
    /// Overrides 3 × target duration as the blocking timeout.
    block_timeout: Mutex<Option<Duration>>,
}

/// The running LL-HLS programs by room name, shared by the HTTP handlers and whoever feeds
/// them (the compositor wiring). Cheap to clone.
///
/// Feeding side: [`start`](Self::start) a program with the compositor's format, then
/// [`publish_video`](Self::publish_video) / [`publish_audio`](Self::publish_audio) (or push
/// on the returned [`HlsProgram`]), [`stop`](Self::stop) when done. Run the compositor only
/// while [`last_watched`](Self::last_watched) is recent.
#[derive(Debug, Clone)]
pub struct HlsPrograms {
    inner: Arc<Registry>,
}

impl Default for HlsPrograms {
    fn default() -> Self {
        HlsPrograms {
            inner: Arc::new(Registry {
                programs: Mutex::default(),
                watched: Mutex::default(),
                next_msn: Mutex::default(),
                started: watch::Sender::new(0),
                block_timeout: Mutex::new(None),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HlsPrograms {
    /// Starts (or replaces) the program of `room`. Its first media sequence number is the
    /// largest of `config.first_msn`, the wall clock in segment targets since the Unix epoch
    /// and one past the previous program of the room, so that URIs are never reused and
    /// caches may keep media as immutable. Errors: [`HlsError`] from
    /// [`LlHlsPackager::new`].
    pub fn start(
        &self,
        room: &str,
        mut config: HlsConfig,
        format: ProgramFormat,
    ) -> Result<Arc<HlsProgram>, HlsError> {
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let by_clock =
            u64::try_from(wall.as_millis() / config.segment_target.as_millis().max(1)).unwrap_or(0);
        let after_previous = lock(&self.inner.next_msn).get(room).copied().unwrap_or(0);
        config.first_msn = config.first_msn.max(by_clock).max(after_previous);
        let packager = LlHlsPackager::new(config, format)?;
        let target_duration = Duration::from_secs(packager.target_duration_s());
        let program = Arc::new(HlsProgram {
            packager: Mutex::new(packager),
            generation: watch::Sender::new(0),
            target_duration,
        });
        if let Some(old) = lock(&self.inner.programs).insert(room.to_owned(), program.clone()) {
            self.remember_end(room, &old);
        }
        self.inner.started.send_modify(|n| *n += 1);
        tracing::info!(room, "LL-HLS program started");
        Ok(program)
    }

    /// Stops the program of `room` (its media is no longer served). No-op without one.
    pub fn stop(&self, room: &str) {
        let old = lock(&self.inner.programs).remove(room);
        if let Some(old) = old {
            self.remember_end(room, &old);
            tracing::info!(room, "LL-HLS program stopped");
        }
    }

    fn remember_end(&self, room: &str, program: &HlsProgram) {
        if let Some((msn, _)) = program.with(|p| p.next_part()) {
            lock(&self.inner.next_msn).insert(room.to_owned(), msn + 1);
        }
    }

    /// The running program of `room`.
    pub fn get(&self, room: &str) -> Option<Arc<HlsProgram>> {
        lock(&self.inner.programs).get(room).cloned()
    }

    /// Pushes a picture into `room`'s program. Returns false when none runs.
    pub fn publish_video(&self, room: &str, frame: ProgramVideo, now: SystemTime) -> bool {
        self.get(room).map(|p| p.push_video(frame, now)).is_some()
    }

    /// Pushes an Opus packet into `room`'s program. Returns false when none runs.
    pub fn publish_audio(&self, room: &str, packet: ProgramAudio) -> bool {
        self.get(room).map(|p| p.push_audio(packet)).is_some()
    }

    /// When a playlist of `room` was last requested (rooms that exist only), if ever.
    pub fn last_watched(&self, room: &str) -> Option<Instant> {
        lock(&self.inner.watched).get(room).copied()
    }

    /// Records that `room` is watched now.
    pub fn watched(&self, room: &str, now: Instant) {
        let mut watched = lock(&self.inner.watched);
        // Every playlist request lands here: no allocation once the room is known.
        match watched.get_mut(room) {
            Some(at) => *at = now,
            None => {
                watched.insert(room.to_owned(), now);
            }
        }
    }

    /// Sets how long held requests wait (`None`: 3 × the program's target duration; 6 s while
    /// no program runs).
    pub fn set_block_timeout(&self, timeout: Option<Duration>) {
        *lock(&self.inner.block_timeout) = timeout;
    }

    pub(crate) fn block_timeout(&self, program: Option<&HlsProgram>) -> Duration {
        lock(&self.inner.block_timeout)
            .unwrap_or_else(|| program.map_or(Duration::from_secs(6), |p| p.target_duration * 3))
    }

    /// The program of `room`, waiting up to the blocking timeout for one to start.
    pub(crate) async fn wait_program(&self, room: &str) -> Option<Arc<HlsProgram>> {
        let mut started = self.inner.started.subscribe();
        let deadline = tokio::time::Instant::now() + self.block_timeout(None);
        loop {
            if let Some(p) = self.get(room) {
                return Some(p);
            }
            match tokio::time::timeout_at(deadline, started.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}
