//! The program runner: a stage tap ([`crate::tap`]) → per-slot H.264 depacketization →
//! the [`Compositor`] → whoever takes the program (the LL-HLS packager, a recorder), on a
//! thread of its own so that decoding and encoding never run on a media shard.
//!
//! The thread keeps the compositor's cadence (it sleeps on the tap until the next picture or
//! audio packet is due), asks a slot's source for a keyframe when that slot's stream broke or
//! the compositor waits for one (a slot just assigned or shown again; at most every
//! [`KEYFRAME_RETRY`]), and widens the tap's 32-bit RTP timestamps into the
//! 64-bit ones the compositor takes. VP8 tiles are not decoded (the compositor is H.264 only;
//! Venue's publish page and OBS send H.264): such a slot shows its card.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::MediaKind;

use super::ProgramFormat;
use super::compositor::{Compositor, CompositorConfig, CompositorError, ProgramOutput};
use crate::tap::{H264Depacketizer, TapHandle};

/// Shortest time between two keyframe requests for one slot.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(500);
/// Largest number of stage slots a program shows.
const MAX_SLOTS: usize = 9;

/// How the stage looks: the layout (tiles shown), who is on each slot, the room title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLook {
    /// Tiles shown, 1..=9 (the room's layout).
    pub layout: u32,
    /// The artist on each slot (`None`: empty slot, shows the card).
    pub names: Vec<Option<String>>,
    /// The room title (on the cards).
    pub title: String,
}

/// What the runner hands over: each output with the program's format (known from the first
/// encoded picture on).
pub type ProgramSink = Box<dyn FnMut(ProgramOutput, Option<&ProgramFormat>) + Send>;

/// A running program thread; dropping it stops the thread (and closes the tap).
#[derive(Debug)]
pub struct ProgramRunner {
    stop: Arc<AtomicBool>,
    look: std::sync::mpsc::Sender<StageLook>,
    thread: Option<JoinHandle<()>>,
}

/// Widens a wrapping 32-bit RTP timestamp into a 64-bit one that only moves forward.
#[derive(Debug, Default, Clone, Copy)]
struct Widen {
    last: Option<(u32, u64)>,
}

impl Widen {
    fn widen(&mut self, ts: u32) -> u64 {
        let wide = match self.last {
            None => u64::from(ts),
            Some((prev, wide)) => {
                let delta = ts.wrapping_sub(prev) as i32;
                wide.saturating_add_signed(i64::from(delta))
            }
        };
        self.last = Some((ts, wide));
        wide
    }
}

impl ProgramRunner {
    /// Starts the compositor on its own thread, fed by `tap`, showing `look`; every output
    /// goes to `sink` (called on that thread). Errors: [`CompositorError`] when the compositor
    /// cannot be made (bad config, encoder failure) or the thread cannot be spawned.
    pub fn spawn(
        mut tap: TapHandle,
        config: CompositorConfig,
        look: StageLook,
        mut sink: ProgramSink,
    ) -> Result<ProgramRunner, CompositorError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (look_tx, look_rx) = std::sync::mpsc::channel::<StageLook>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), CompositorError>>(1);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("venue-program".into())
            .spawn(move || {
                let mut comp = match Compositor::new(config) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                comp.set_stage(look.layout, look.names, &look.title);
                let mut depack: Vec<H264Depacketizer> =
                    (0..MAX_SLOTS).map(|_| H264Depacketizer::new()).collect();
                let mut asked: Vec<Option<Instant>> = vec![None; MAX_SLOTS];
                let mut video_ts = [Widen::default(); MAX_SLOTS];
                let mut audio_ts = [Widen::default(); MAX_SLOTS];
                while !flag.load(Ordering::Relaxed) {
                    while let Ok(l) = look_rx.try_recv() {
                        comp.set_stage(l.layout, l.names, &l.title);
                    }
                    let now = Instant::now();
                    let due = comp.next_due().unwrap_or(now + Duration::from_millis(10));
                    let wait = due
                        .saturating_duration_since(now)
                        .min(Duration::from_millis(20));
                    let mut first = match tap.recv_timeout(wait) {
                        Ok(p) => p,
                        Err(_) => break, // the media plane stopped
                    };
                    // Take what is queued (bounded, so the cadence holds under a burst).
                    for _ in 0..512 {
                        let Some(p) = first.take().or_else(|| tap.try_recv().ok().flatten()) else {
                            break;
                        };
                        let slot = p.slot;
                        if slot >= MAX_SLOTS {
                            continue;
                        }
                        match (p.kind, p.codec) {
                            (MediaKind::Video, Codec::H264) => {
                                let d = &mut depack[slot];
                                if let Some(au) = d.push(p.seq, p.rtp_time, p.marker, &p.payload) {
                                    let pts = video_ts[slot].widen(au.rtp_time);
                                    comp.push_tile_video(slot, &au.nalus, au.keyframe, pts);
                                }
                                if (d.needs_keyframe() || comp.needs_keyframe(slot))
                                    && asked[slot].is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY)
                                {
                                    asked[slot] = Some(Instant::now());
                                    tap.request_keyframe(slot);
                                }
                            }
                            (MediaKind::Audio, Codec::Opus) => {
                                let ts = audio_ts[slot].widen(p.rtp_time);
                                comp.push_tile_audio(slot, &p.payload, ts);
                            }
                            _ => {}
                        }
                    }
                    let now = Instant::now();
                    if comp.next_due().is_none_or(|d| d <= now) {
                        for out in comp.poll(now) {
                            sink(out, comp.format());
                        }
                    }
                }
            })
            .map_err(|e| {
                CompositorError::Config(format!("cannot start the program thread: {e}"))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ProgramRunner {
                stop,
                look: look_tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(CompositorError::Config("the program thread died".into())),
        }
    }

    /// Changes how the stage looks (layout, names, title); applied before the next picture.
    pub fn set_look(&self, look: StageLook) {
        let _ = self.look.send(look);
    }

    /// Whether the thread still runs (it ends when the media plane stops).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for ProgramRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
