//! The recorder's media path: [`RecorderFeed`] on the compositor thread hands program outputs
//! to a set's writer thread without ever blocking; the writer ([`write_loop`]) turns them into
//! the file's fragments with a [`SetFile`] and appends them. See the module docs of [`super`]
//! for the error handling.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use bytes::Bytes;
use venue_sfu::egress::cmaf::CmafError;
use venue_sfu::egress::compositor::ProgramOutput;
use venue_sfu::egress::fragmenter::{
    AudioTail, Fragmenter, FragmenterConfig, TICKS, Timeline, VideoPush,
};
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

use super::FRAGMENT;

// ---------------------------------------------------------------------------------------------
// A set's file: the CMAF fragmenter cut every ~1 s
// ---------------------------------------------------------------------------------------------

/// The fragments of one set's file: the program on the CMAF [`Fragmenter`] (decode times from
/// the first keyframe, Opus pre-skip 0 as the packager's; a fragment's last audio packet keeps
/// its own length), cut at the first picture at or past [`FRAGMENT`].
#[derive(Debug)]
pub struct SetFile {
    fragmenter: Fragmenter,
}

impl SetFile {
    /// A file for `format` and its init segment (`ftyp`+`moov`). Errors: [`CmafError`] when
    /// the format cannot make an init segment.
    pub fn new(format: &ProgramFormat) -> Result<(SetFile, Bytes), CmafError> {
        let fragmenter = Fragmenter::new(
            FragmenterConfig {
                timeline: Timeline::FirstKeyframe,
                audio_tail: AudioTail::Own,
                opus_pre_skip: 0,
            },
            format,
        )?;
        let init = fragmenter.init().clone();
        Ok((SetFile { fragmenter }, init))
    }

    /// Pushes one picture; returns a finished fragment when this picture starts a new one.
    pub fn push_video(&mut self, frame: ProgramVideo) -> Option<Bytes> {
        let VideoPush::Packaged { .. } = self.fragmenter.push_video(frame) else {
            return None;
        };
        let f = &self.fragmenter;
        if f.packaged_end() - f.fragment_start() >= fragment_ticks() {
            return self.fragmenter.cut().map(|f| f.data);
        }
        None
    }

    /// Pushes one Opus packet (48 kHz timestamps on the program's clock).
    pub fn push_audio(&mut self, packet: ProgramAudio) {
        self.fragmenter.push_audio(packet);
    }

    /// Packages the last picture (nominal duration) and what audio falls before its end: the
    /// last fragment, if there is anything to write.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.fragmenter.finish().map(|f| f.data)
    }

    /// Media in the fragments returned so far.
    pub fn written(&self) -> Duration {
        self.fragmenter.fragmented()
    }
}

/// [`FRAGMENT`] in 90 kHz ticks.
fn fragment_ticks() -> u64 {
    u64::try_from(FRAGMENT.as_micros() * u128::from(TICKS) / 1_000_000).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// Counters of all recordings since start (for `/metrics` and tests).
#[derive(Debug, Default)]
pub struct RecordingStats {
    /// Program outputs dropped because a writer's queue was full (slow disk).
    pub dropped: AtomicU64,
    /// Write errors (each ends its recording).
    pub write_errors: AtomicU64,
    /// Recordings started.
    pub started: AtomicU64,
    /// Sets discarded as shorter than [`super::MIN_SET`].
    pub discarded: AtomicU64,
}

// ---------------------------------------------------------------------------------------------
// The compositor-thread side
// ---------------------------------------------------------------------------------------------

/// What the writer thread takes.
#[derive(Debug)]
pub enum WriterMsg {
    Format(ProgramFormat),
    Video(ProgramVideo),
    Audio(ProgramAudio),
}

/// Tells a room's [`RecorderFeed`] where to send the program.
#[derive(Debug)]
pub enum FeedControl {
    /// Send the program to this writer from now on (replacing any other).
    Attach(SyncSender<WriterMsg>),
    /// Stop sending.
    Detach,
}

/// The recorder's end of a room's program sink, called on the compositor thread: forwards
/// outputs to the attached writer without ever blocking (`try_send`; full → dropped and
/// counted, video then waits for the next keyframe).
#[derive(Debug)]
pub struct RecorderFeed {
    control: Receiver<FeedControl>,
    writer: Option<SyncSender<WriterMsg>>,
    sent_format: bool,
    /// Video is skipped until the next keyframe (start, or after a drop).
    need_keyframe: bool,
    stats: Arc<RecordingStats>,
}

impl RecorderFeed {
    /// A feed taking commands from `control`, counting drops in `stats`.
    pub fn new(control: Receiver<FeedControl>, stats: Arc<RecordingStats>) -> Self {
        RecorderFeed {
            control,
            writer: None,
            sent_format: false,
            need_keyframe: true,
            stats,
        }
    }

    /// Hands one program output (with the program's format, once known) to the attached
    /// writer, if any. Never blocks.
    pub fn feed(&mut self, out: &ProgramOutput, format: Option<&ProgramFormat>) {
        loop {
            match self.control.try_recv() {
                Ok(FeedControl::Attach(w)) => {
                    self.writer = Some(w);
                    self.sent_format = false;
                    self.need_keyframe = true;
                }
                Ok(FeedControl::Detach) => self.writer = None,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.writer = None;
                    break;
                }
            }
        }
        let Some(writer) = &self.writer else { return };
        if !self.sent_format {
            let Some(format) = format else { return };
            match writer.try_send(WriterMsg::Format(format.clone())) {
                Ok(()) => self.sent_format = true,
                Err(TrySendError::Full(_)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.writer = None;
                    return;
                }
            }
        }
        let msg = match out {
            ProgramOutput::Video(v) => {
                if self.need_keyframe && !v.keyframe {
                    return;
                }
                WriterMsg::Video(v.clone())
            }
            ProgramOutput::Audio(a) => WriterMsg::Audio(a.clone()),
        };
        let video = matches!(msg, WriterMsg::Video(_));
        match writer.try_send(msg) {
            Ok(()) => {
                if video {
                    self.need_keyframe = false;
                }
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if video {
                    self.need_keyframe = true;
                }
            }
            Err(TrySendError::Disconnected(_)) => self.writer = None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer thread
// ---------------------------------------------------------------------------------------------

/// A recording's progress, updated by its writer after every fragment.
#[derive(Debug, Default)]
pub struct Progress {
    /// Media written, ms.
    pub media_ms: AtomicU64,
    /// Bytes in the file.
    pub bytes: AtomicU64,
}

/// How a writer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Media in the file.
    pub media: Duration,
    /// File size, bytes.
    pub bytes: u64,
    /// The write error that ended it, if any.
    pub error: Option<String>,
}

/// Writes `file` (already created) from `rx` until told to `stop` (then drains what is
/// queued) or the sender side goes away. See the module docs for the error handling.
pub(super) fn write_loop(
    mut file: std::fs::File,
    rx: Receiver<WriterMsg>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    stats: Arc<RecordingStats>,
) -> WriteOutcome {
    let mut fragmenter: Option<SetFile> = None;
    let mut good: u64 = 0;
    let mut error = None;
    let mut write = |bytes: &[u8], good: &mut u64| -> std::io::Result<()> {
        file.write_all(bytes)?;
        *good += bytes.len() as u64;
        progress.bytes.store(*good, Ordering::Relaxed);
        Ok(())
    };
    let mut handle =
        |msg: WriterMsg, fragmenter: &mut Option<SetFile>, good: &mut u64| -> Result<(), String> {
            match msg {
                WriterMsg::Format(format) => {
                    if fragmenter.is_none() {
                        let (f, init) = SetFile::new(&format).map_err(|e| e.to_string())?;
                        write(&init, good).map_err(|e| e.to_string())?;
                        *fragmenter = Some(f);
                    }
                }
                WriterMsg::Video(v) => {
                    if let Some(f) = fragmenter.as_mut()
                        && let Some(frag) = f.push_video(v)
                    {
                        write(&frag, good).map_err(|e| e.to_string())?;
                        progress
                            .media_ms
                            .store(f.written().as_millis() as u64, Ordering::Relaxed);
                    }
                }
                WriterMsg::Audio(a) => {
                    if let Some(f) = fragmenter.as_mut() {
                        f.push_audio(a);
                    }
                }
            }
            Ok(())
        };
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(msg) = msg
            && let Err(e) = handle(msg, &mut fragmenter, &mut good)
        {
            error = Some(e);
            break;
        }
        if stop.load(Ordering::Relaxed) {
            while let Ok(msg) = rx.try_recv() {
                if let Err(e) = handle(msg, &mut fragmenter, &mut good) {
                    error = Some(e);
                    break;
                }
            }
            break;
        }
    }
    drop(rx);
    if error.is_none()
        && let Some(f) = fragmenter.as_mut()
        && let Some(last) = f.finish()
    {
        match write(&last, &mut good) {
            Ok(()) => progress
                .media_ms
                .store(f.written().as_millis() as u64, Ordering::Relaxed),
            Err(e) => error = Some(e.to_string()),
        }
    }
    let media = Duration::from_millis(progress.media_ms.load(Ordering::Relaxed));
    if error.is_some() {
        stats.write_errors.fetch_add(1, Ordering::Relaxed);
        // Cut a half-written fragment off: the file ends with a whole one.
        let _ = file.set_len(good);
    }
    if let Err(e) = file.sync_all()
        && error.is_none()
    {
        error = Some(e.to_string());
    }
    WriteOutcome {
        media,
        bytes: good,
        error,
    }
}
