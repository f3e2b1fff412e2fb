//! Recordings of artists' sets (issue 5 item 4): the room's program (the composed stage, the
//! same pictures and sound as the LL-HLS program) written to one fragmented MP4 file per set.
//!
//! **What a set is.** A set is a *stage session*: the time one streamer is live on stage slot
//! 0 of a room. It starts when a live streamer is on slot 0 (put there while live, or going
//! live while there) and ends when that streamer goes offline, leaves slot 0, or another one
//! takes it ([`SetTracker`]). Other slots do not start or end sets (they are in the picture).
//!
//! **Naming rule.** A set is named after a booking when one of the streamer's bookings in the
//! room has a window that, opened `schedule.grace_before_s` early (when the key starts to
//! work), contains the set's start; if several do, the one whose own window contains the start
//! wins, else the one starting soonest ([`booking_for`]). Otherwise the set takes the
//! streamer's name. The file is `data_dir/recordings/{room}-{UTC start, 20261121T203000Z}-
//! {artist slug}.mp4` ([`file_name`]; `-2`, `-3`… when taken).
//!
//! **Files.** fMP4/CMAF as the packager's ([`venue_sfu::egress::cmaf`]): the init segment,
//! then one `moof`+`mdat` per ~1 s ([`FRAGMENT`]), each appended as soon as it is complete, so
//! a crash or a full disk leaves a playable file up to the last second. Timestamps start at 0
//! at the first program keyframe after the set began (the program has an IDR every 2 s). A set
//! with less than [`MIN_SET`] of media is discarded (file and row deleted).
//!
//! **Never stalls the program.** The compositor thread hands outputs to a [`RecorderFeed`],
//! which `try_send`s them into a bounded queue ([`QUEUE`]) to the set's writer thread; when the
//! queue is full the output is dropped and counted (and video waits for the next keyframe so
//! the file stays decodable). A write error (full disk) is logged and counted, the file is cut
//! back to its last whole fragment and that recording ends; the server and the program go on.
//!
//! Metadata (room, artist, streamer, booking, start, end, duration, bytes) lives in SQLite
//! ([`crate::store::recordings`]); rows a stopped server left without an end are finished from
//! the file on the next start ([`Recordings::open`]).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use venue_sfu::egress::cmaf::{self, AUDIO_TRACK_ID, CmafError, Sample, TrackRun, VIDEO_TRACK_ID};
use venue_sfu::egress::compositor::ProgramOutput;
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

use crate::config::RecordingConfig;
use crate::store::recordings::{BookingWindow, NewRecording, Recording};
use crate::store::{Store, StoreError};

/// Sets with less media than this are discarded.
pub const MIN_SET: Duration = Duration::from_secs(2);
/// Target length of one fragment (`moof`+`mdat`): a fragment is closed at the first picture
/// at or past it.
pub const FRAGMENT: Duration = Duration::from_secs(1);
/// Program outputs queued between the compositor thread and a writer (about 2.5 s of 30 fps
/// video with 20 ms audio); past it outputs are dropped and counted.
pub const QUEUE: usize = 256;
/// Sub-directory of the data dir holding the files.
pub const DIR: &str = "recordings";
/// How long a signed download URL works.
pub const SIGNED_URL_TTL: Duration = Duration::from_secs(3600);

/// 90 kHz ticks per second (video timescale).
const TICKS: u64 = 90_000;
/// A gap between two pictures above this (90 kHz) is not believed: nominal duration instead.
const MAX_FRAME_GAP: u64 = TICKS;
/// Longest artist slug in a file name, chars.
const MAX_SLUG: usize = 48;

// ---------------------------------------------------------------------------------------------
// Set rules (sans-IO)
// ---------------------------------------------------------------------------------------------

/// Who sits on stage slot 0 of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub streamer_id: i64,
    /// The streamer's name.
    pub name: String,
    /// Whether the streamer is publishing.
    pub live: bool,
}

/// A set starting or ending, as [`SetTracker::observe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetChange {
    /// `streamer_id` (called `name`) is now live on slot 0 with recording wanted.
    Start { streamer_id: i64, name: String },
    /// The set of `streamer_id` ended.
    End { streamer_id: i64 },
}

/// The set rule of one room: fed slot 0 as it is now, says when sets start and end.
#[derive(Debug, Default, Clone)]
pub struct SetTracker {
    current: Option<i64>,
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
    pub fn current(&self) -> Option<i64> {
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

// ---------------------------------------------------------------------------------------------
// Fragmenter (sans-IO): program outputs → init segment + ~1 s fragments
// ---------------------------------------------------------------------------------------------

struct QueuedAudio {
    /// Decode time, 48 kHz, from the file's start.
    dts: u64,
    samples: u32,
    data: Bytes,
}

/// Turns program pictures and Opus packets into the fragments of one file. Pictures before the
/// first keyframe, and audio from before it, are dropped; the first keyframe is time 0. A
/// picture is packaged when the next one arrives (its duration is the difference).
pub struct Fragmenter {
    frame_ticks: u64,
    fragment_ticks: u64,
    /// pts (90 kHz) of the first keyframe.
    base: Option<u64>,
    pending: Option<ProgramVideo>,
    /// Decode time of `pending`, 90 kHz from the start.
    video_dts: u64,
    video: Vec<Sample>,
    /// Start of the fragment being filled, 90 kHz.
    fragment_start: u64,
    audio: VecDeque<QueuedAudio>,
    audio_next: Option<u64>,
    sequence: u32,
}

impl std::fmt::Debug for Fragmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fragmenter")
            .field("written_ticks", &self.fragment_start)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl Fragmenter {
    /// A fragmenter for `format` and its init segment (`ftyp`+`moov`, Opus pre-skip 0 as the
    /// packager's). Errors: [`CmafError`] when the format cannot make an init segment.
    pub fn new(format: &ProgramFormat) -> Result<(Fragmenter, Bytes), CmafError> {
        let init = cmaf::init_segment(format, 0)?;
        let fps = u64::from(format.fps.clamp(1, 240));
        Ok((
            Fragmenter {
                frame_ticks: TICKS / fps,
                fragment_ticks: ticks(FRAGMENT),
                base: None,
                pending: None,
                video_dts: 0,
                video: Vec::new(),
                fragment_start: 0,
                audio: VecDeque::new(),
                audio_next: None,
                sequence: 1,
            },
            init,
        ))
    }

    /// Pushes one picture; returns a finished fragment when this picture starts a new one.
    pub fn push_video(&mut self, frame: ProgramVideo) -> Option<Bytes> {
        let Some(base) = self.base else {
            if !frame.keyframe {
                return None;
            }
            self.base = Some(frame.pts_90k);
            self.pending = Some(frame);
            return None;
        };
        if frame.pts_90k < base {
            return None;
        }
        let prev = self.pending.replace(frame)?;
        let gap = self
            .pending
            .as_ref()
            .map_or(0, |f| f.pts_90k.saturating_sub(prev.pts_90k));
        let duration = if gap == 0 || gap > MAX_FRAME_GAP {
            self.frame_ticks
        } else {
            gap
        };
        self.video.push(Sample {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            sync: prev.keyframe,
            data: cmaf::avcc_sample(&prev.nalus),
        });
        self.video_dts += duration;
        if self.video_dts - self.fragment_start >= self.fragment_ticks {
            return self.fragment(self.video_dts);
        }
        None
    }

    /// Pushes one Opus packet (48 kHz timestamps on the program's clock). Its decode time is
    /// its timestamp, or the end of the previous packet when later. Packets from before the
    /// first keyframe and malformed ones are dropped.
    pub fn push_audio(&mut self, packet: ProgramAudio) {
        let Some(base) = self.base else { return };
        let Some(samples) = cmaf::opus_packet_samples(&packet.opus) else {
            return;
        };
        let base_48k = base.saturating_mul(8) / 15;
        let Some(ts) = packet.ts_48k.checked_sub(base_48k) else {
            return;
        };
        let dts = self.audio_next.map_or(ts, |next| ts.max(next));
        self.audio_next = Some(dts + u64::from(samples));
        self.audio.push_back(QueuedAudio {
            dts,
            samples,
            data: packet.opus,
        });
    }

    /// Packages the last picture (nominal duration) and what audio falls before its end: the
    /// last fragment, if there is anything to write.
    pub fn finish(&mut self) -> Option<Bytes> {
        let prev = self.pending.take()?;
        self.video.push(Sample {
            duration: u32::try_from(self.frame_ticks).unwrap_or(u32::MAX),
            sync: prev.keyframe,
            data: cmaf::avcc_sample(&prev.nalus),
        });
        self.video_dts += self.frame_ticks;
        self.fragment(self.video_dts)
    }

    /// Media in the fragments returned so far.
    pub fn written(&self) -> Duration {
        Duration::from_micros(self.fragment_start.saturating_mul(100) / 9)
    }

    /// The fragment of the pictures gathered since `fragment_start`, with the audio before
    /// `end` (90 kHz).
    fn fragment(&mut self, end: u64) -> Option<Bytes> {
        if self.video.is_empty() {
            return None;
        }
        let video = std::mem::take(&mut self.video);
        let end_x8 = end.saturating_mul(8);
        let mut taken = Vec::new();
        while self
            .audio
            .front()
            .is_some_and(|a| a.dts.saturating_mul(15) < end_x8)
        {
            if let Some(a) = self.audio.pop_front() {
                taken.push(a);
            }
        }
        // A packet's duration reaches to the next one in the fragment (gaps kept); the last one
        // lasts its own samples: the next fragment's `tfdt` places what follows, so a late
        // packet never stretches the end of the file.
        let audio: Vec<Sample> = taken
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let next = taken.get(i + 1).map(|n| n.dts);
                let duration = next.map_or(u64::from(a.samples), |n| n.saturating_sub(a.dts));
                Sample {
                    duration: u32::try_from(duration).unwrap_or(u32::MAX),
                    sync: true,
                    data: a.data.clone(),
                }
            })
            .collect();
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: self.fragment_start,
                samples: &video,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: taken.first().map_or(0, |a| a.dts),
                samples: &audio,
            },
        ];
        let data = cmaf::fragment(self.sequence, &runs).ok();
        self.sequence = self.sequence.wrapping_add(1);
        self.fragment_start = end;
        data
    }
}

fn ticks(d: Duration) -> u64 {
    u64::try_from(d.as_micros() * 9 / 100).unwrap_or(u64::MAX)
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
    /// Sets discarded as shorter than [`MIN_SET`].
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
fn write_loop(
    mut file: std::fs::File,
    rx: Receiver<WriterMsg>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    stats: Arc<RecordingStats>,
) -> WriteOutcome {
    let mut fragmenter: Option<Fragmenter> = None;
    let mut good: u64 = 0;
    let mut error = None;
    let mut write = |bytes: &[u8], good: &mut u64| -> std::io::Result<()> {
        file.write_all(bytes)?;
        *good += bytes.len() as u64;
        progress.bytes.store(*good, Ordering::Relaxed);
        Ok(())
    };
    let mut handle = |msg: WriterMsg,
                      fragmenter: &mut Option<Fragmenter>,
                      good: &mut u64|
     -> Result<(), String> {
        match msg {
            WriterMsg::Format(format) => {
                if fragmenter.is_none() {
                    let (f, init) = Fragmenter::new(&format).map_err(|e| e.to_string())?;
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

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/// A recording in progress: its row, its writer thread.
#[derive(Debug)]
pub struct ActiveRecording {
    /// Its row as inserted.
    pub row: Recording,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<WriteOutcome>>,
}

impl ActiveRecording {
    /// Whether the writer ended by itself (write error, the program went away).
    pub fn writer_ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

struct Inner {
    store: Store,
    dir: PathBuf,
    config: RecordingConfig,
    grace_before_s: i64,
    /// Key of the signed download URLs.
    url_key: [u8; 32],
    /// Recordings in progress by id.
    active: Mutex<HashMap<i64, Arc<Progress>>>,
    stats: Arc<RecordingStats>,
}

/// The recordings of all rooms: starts and finishes sets' files, lists and deletes them.
/// Cheap to clone.
#[derive(Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type HmacSha256 = Hmac<Sha256>;

/// A recording as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordingJson {
    pub id: i64,
    pub artist: String,
    pub streamer_id: i64,
    pub booking_id: Option<i64>,
    /// RFC 3339 UTC.
    pub start: String,
    /// RFC 3339 UTC; `null` while recording.
    pub end: Option<String>,
    /// Media in the file, seconds (grows while recording).
    pub duration_s: f64,
    /// File size, bytes (grows while recording).
    pub bytes: i64,
    /// Being recorded now.
    pub recording: bool,
    /// File name.
    pub file: String,
    /// `GET` with the admin bearer token.
    pub download_url: String,
    /// The same file without a token, for a browser download link; works for
    /// [`SIGNED_URL_TTL`].
    pub signed_url: String,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Recordings {
    /// Opens the service: makes `data_dir/recordings`, and finishes rows a stopped server left
    /// without an end (end = the file's modification time, duration = end − start, bytes =
    /// its size; rows whose file is gone or that are shorter than [`MIN_SET`] are deleted).
    /// `url_key` signs download URLs (the admin token's digest). Errors: the directory cannot
    /// be made, the database fails.
    pub async fn open(
        store: Store,
        data_dir: &Path,
        config: RecordingConfig,
        grace_before_s: u64,
        url_key: [u8; 32],
    ) -> Result<Recordings, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir)?;
        for row in store.unfinished_recordings().await? {
            let path = dir.join(&row.file);
            let meta = tokio::fs::metadata(&path).await.ok();
            let end_ms = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .map_or(row.start_ms, unix_ms)
                .max(row.start_ms);
            let duration_ms = end_ms - row.start_ms;
            let bytes = meta.map_or(0, |m| m.len());
            if bytes == 0 || !keep(Duration::from_millis(duration_ms as u64)) {
                let _ = tokio::fs::remove_file(&path).await;
                store.delete_recording(row.id).await?;
            } else {
                store
                    .finish_recording(row.id, end_ms, duration_ms, bytes as i64)
                    .await?;
                tracing::info!(file = %row.file, "recording cut off by a stop: finished from the file");
            }
        }
        Ok(Recordings {
            inner: Arc::new(Inner {
                store,
                dir,
                config,
                grace_before_s: i64::try_from(grace_before_s).unwrap_or(i64::MAX),
                url_key,
                active: Mutex::default(),
                stats: Arc::default(),
            }),
        })
    }

    /// Whether sets are recorded (`[recording] enabled`).
    pub fn enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<RecordingStats> {
        &self.inner.stats
    }

    /// `data_dir/recordings`.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn active(&self) -> MutexGuard<'_, HashMap<i64, Arc<Progress>>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording the set of `streamer_id` (`name`) in room `room` (id `room_id`) that
    /// began at `start`: names it (module docs), creates the file and its row, spawns the
    /// writer thread. Returns the recording and the sender to attach to the room's feed.
    /// Errors: the file cannot be created, the database fails (a message for the log).
    pub async fn start(
        &self,
        room_id: i64,
        room: &str,
        streamer_id: i64,
        name: &str,
        start: SystemTime,
    ) -> Result<(ActiveRecording, SyncSender<WriterMsg>), String> {
        let start_s = unix_ms(start) / 1000;
        let bookings = self
            .inner
            .store
            .streamer_bookings_between(
                room_id,
                streamer_id,
                start_s,
                start_s
                    .saturating_add(self.inner.grace_before_s)
                    .saturating_add(1),
            )
            .await
            .map_err(|e| e.to_string())?;
        let booking = booking_for(start_s, &bookings, self.inner.grace_before_s);
        let artist = booking.map_or(name, |b| b.artist_name.as_str()).to_owned();
        let base = file_name(room, start, &artist);
        let stem = base.trim_end_matches(".mp4").to_owned();
        let mut attempt = 1;
        let (file, file_name) = loop {
            let candidate = if attempt == 1 {
                base.clone()
            } else {
                format!("{stem}-{attempt}.mp4")
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.inner.dir.join(&candidate))
            {
                Ok(f) => break (f, candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(format!("creating {candidate}: {e}")),
            }
        };
        let row = match self
            .inner
            .store
            .create_recording(&NewRecording {
                room_id,
                streamer_id,
                booking_id: booking.map(|b| b.booking_id),
                artist,
                file: file_name.clone(),
                start_ms: unix_ms(start),
            })
            .await
        {
            Ok(row) => row,
            Err(e) => {
                let _ = std::fs::remove_file(self.inner.dir.join(&file_name));
                return Err(e.to_string());
            }
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let thread = {
            let (stop, progress, stats) =
                (stop.clone(), progress.clone(), self.inner.stats.clone());
            std::thread::Builder::new()
                .name("venue-recorder".into())
                .spawn(move || write_loop(file, rx, stop, progress, stats))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(self.inner.dir.join(&file_name));
                let _ = self.inner.store.delete_recording(row.id).await;
                return Err(format!("recorder thread: {e}"));
            }
        };
        self.active().insert(row.id, progress);
        self.inner.stats.started.fetch_add(1, Ordering::Relaxed);
        tracing::info!(room, file = %file_name, artist = %row.artist, "recording started");
        Ok((
            ActiveRecording {
                row,
                stop,
                thread: Some(thread),
            },
            tx,
        ))
    }

    /// Ends a recording whose set ended at `end`: stops its writer (it writes what is queued
    /// and the last fragment), then keeps the file and records end, duration and size, or
    /// deletes both when shorter than [`MIN_SET`]. Errors are logged.
    pub async fn finish(&self, mut rec: ActiveRecording, end: SystemTime) {
        rec.stop.store(true, Ordering::Relaxed);
        let outcome = match rec.thread.take() {
            Some(t) => tokio::task::spawn_blocking(move || t.join())
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let outcome = outcome.unwrap_or(WriteOutcome {
            media: Duration::ZERO,
            bytes: 0,
            error: Some("the recorder thread failed".into()),
        });
        let path = self.inner.dir.join(&rec.row.file);
        if let Some(e) = &outcome.error {
            tracing::warn!(file = %rec.row.file, error = %e, "recording ended by a write error");
        }
        if keep(outcome.media) {
            let result = self
                .inner
                .store
                .finish_recording(
                    rec.row.id,
                    unix_ms(end).max(rec.row.start_ms),
                    i64::try_from(outcome.media.as_millis()).unwrap_or(i64::MAX),
                    i64::try_from(outcome.bytes).unwrap_or(i64::MAX),
                )
                .await;
            match result {
                Ok(()) => tracing::info!(
                    file = %rec.row.file,
                    media_s = outcome.media.as_secs_f64(),
                    bytes = outcome.bytes,
                    "recording finished"
                ),
                Err(e) => {
                    tracing::warn!(file = %rec.row.file, error = %e, "recording: storing its end failed")
                }
            }
        } else {
            self.inner.stats.discarded.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::fs::remove_file(&path).await;
            if let Err(e) = self.inner.store.delete_recording(rec.row.id).await {
                tracing::warn!(file = %rec.row.file, error = %e, "recording: deleting a short set failed");
            }
            tracing::info!(file = %rec.row.file, media_s = outcome.media.as_secs_f64(), "set shorter than 2 s: recording discarded");
        }
        self.active().remove(&rec.row.id);
    }

    /// The recordings of room `room_id`, newest first, as the admin API shows them.
    pub async fn list(&self, room_id: i64) -> Result<Vec<RecordingJson>, StoreError> {
        let rows = self.inner.store.recordings(room_id).await?;
        let now = SystemTime::now();
        Ok(rows.into_iter().map(|r| self.json(r, now)).collect())
    }

    /// A row as JSON, with progress for a recording in progress.
    pub fn json(&self, r: Recording, now: SystemTime) -> RecordingJson {
        let live = if r.end_ms.is_none() {
            self.active().get(&r.id).cloned()
        } else {
            None
        };
        let (duration_ms, bytes) = match &live {
            Some(p) => (
                p.media_ms.load(Ordering::Relaxed) as i64,
                p.bytes.load(Ordering::Relaxed) as i64,
            ),
            None => (r.duration_ms, r.bytes),
        };
        let expires = unix_ms(now + SIGNED_URL_TTL) / 1000;
        RecordingJson {
            id: r.id,
            download_url: format!("/api/admin/recordings/{}", r.id),
            signed_url: format!(
                "/api/recordings/{}/file?expires={expires}&sig={}",
                r.id,
                self.sign(r.id, expires)
            ),
            artist: r.artist,
            streamer_id: r.streamer_id,
            booking_id: r.booking_id,
            start: rfc3339(r.start_ms),
            end: r.end_ms.map(rfc3339),
            duration_s: duration_ms as f64 / 1000.0,
            bytes,
            recording: live.is_some(),
            file: r.file,
        }
    }

    /// Whether recording `id` is being written now.
    pub fn in_progress(&self, id: i64) -> bool {
        self.active().contains_key(&id)
    }

    /// The row of recording `id`.
    pub async fn get(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        self.inner.store.recording(id).await
    }

    /// Deletes recording `id` (file and row). Returns false when there is no such recording.
    /// Errors: `Conflict` while it is being recorded; `Io` when the file cannot be removed.
    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let Some(row) = self.inner.store.recording(id).await? else {
            return Ok(false);
        };
        if self.in_progress(id) {
            return Err(StoreError::Conflict(
                "the set is being recorded; delete it after it ends".into(),
            ));
        }
        match tokio::fs::remove_file(self.inner.dir.join(&row.file)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.store.delete_recording(id).await
    }

    /// The path of a recording's file.
    pub fn path(&self, row: &Recording) -> PathBuf {
        self.inner.dir.join(&row.file)
    }

    /// Hex HMAC-SHA256 of `"{id}.{expires}"` under the URL key.
    fn sign(&self, id: i64, expires: i64) -> String {
        match HmacSha256::new_from_slice(&self.inner.url_key) {
            Ok(mut mac) => {
                mac.update(format!("{id}.{expires}").as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// Whether `sig` signs recording `id` until `expires` (Unix seconds) and that is not past
    /// `now` (constant-time comparison).
    pub fn verify(&self, id: i64, expires: i64, sig: &str, now: SystemTime) -> bool {
        if expires < unix_ms(now) / 1000 {
            return false;
        }
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.inner.url_key) else {
            return false;
        };
        mac.update(format!("{id}.{expires}").as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

/// A room's recording state in the program supervisor: the set rule, the recording in
/// progress, and the control channel of the room's [`RecorderFeed`].
#[derive(Debug, Default)]
pub struct RoomSets {
    pub tracker: SetTracker,
    pub active: Option<ActiveRecording>,
}

/// A control channel for a new program's [`RecorderFeed`].
pub fn feed_channel() -> (Sender<FeedControl>, Receiver<FeedControl>) {
    std::sync::mpsc::channel()
}

#[cfg(test)]
#[path = "../../tests/recording.rs"]
mod tests;
