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
//! **Files.** fMP4/CMAF made by the same fragmenter as the LL-HLS packager's
//! ([`venue_sfu::egress::fragmenter`], one per file): the init segment,
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
//!
//! **Cluster mode** (issue 11 item 8): sets are recorded by the room's program node
//! ([`crate::media::program_node`]) into its own data dir, and each row names that node
//! ([`Recordings::open_on`], [`Recordings::elsewhere`]); the index is in the shared
//! PostgreSQL store, so every node lists every recording, and a download or delete on a node
//! without the file is forwarded to the node holding it (`http::recordings`). When the
//! program node dies mid-set, the node taking over starts a **new file** for the rest of the
//! set (the first one is cut where the dead node stopped writing, and is finished from its
//! file when that node starts again).

//!
//! Layout: [`sets`] holds the set rule and naming (sans-IO), [`writer`] the compositor-thread
//! feed and the writer thread, this module the service.

mod sets;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use sets::{Seat, SetChange, SetTracker, booking_for, file_name, keep, slug};
use writer::write_loop;
pub use writer::{
    FeedControl, Progress, RecorderFeed, RecordingStats, SetFile, WriteOutcome, WriterMsg,
};

use crate::config::RecordingConfig;
use crate::ids::{BookingId, RecordingId, RoomId, StreamerId};
use crate::store::recordings::{NewRecording, Recording};
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
    /// Cluster mode: this node's id, stored with each recording it writes; `None`: single-node.
    node: Option<String>,
    /// Recordings in progress by id.
    active: Mutex<HashMap<RecordingId, Arc<Progress>>>,
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
    pub id: RecordingId,
    pub artist: String,
    pub streamer_id: StreamerId,
    pub booking_id: Option<BookingId>,
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
        Self::open_on(store, data_dir, config, grace_before_s, url_key, None).await
    }

    /// [`Recordings::open`] on cluster node `node` (`None`: single-node mode): the recordings
    /// it writes name it, and only its own unfinished rows are finished at start (the other
    /// nodes' files are not in this data dir).
    pub async fn open_on(
        store: Store,
        data_dir: &Path,
        config: RecordingConfig,
        grace_before_s: u64,
        url_key: [u8; 32],
        node: Option<String>,
    ) -> Result<Recordings, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir)?;
        let unfinished = match &node {
            None => store.unfinished_recordings().await?,
            Some(n) => store.unfinished_recordings_of(n).await?,
        };
        for row in unfinished {
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
                node,
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

    fn active(&self) -> MutexGuard<'_, HashMap<RecordingId, Arc<Progress>>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording the set of `streamer_id` (`name`) in room `room` (id `room_id`) that
    /// began at `start`: names it (module docs), creates the file and its row, spawns the
    /// writer thread. Returns the recording and the sender to attach to the room's feed.
    /// Errors: the file cannot be created, the database fails (a message for the log).
    pub async fn start(
        &self,
        room_id: RoomId,
        room: &str,
        streamer_id: StreamerId,
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
            .create_recording_on(
                &NewRecording {
                    room_id,
                    streamer_id,
                    booking_id: booking.map(|b| b.booking_id),
                    artist,
                    file: file_name.clone(),
                    start_ms: unix_ms(start),
                },
                self.inner.node.as_deref(),
            )
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
    pub async fn list(&self, room_id: RoomId) -> Result<Vec<RecordingJson>, StoreError> {
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
        // Being recorded on another node: no progress here (the row's 0 s, 0 bytes).
        let elsewhere = r.end_ms.is_none() && self.elsewhere(&r).is_some();
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
            recording: live.is_some() || elsewhere,
            file: r.file,
        }
    }

    /// Cluster mode: the id of the node holding `row`'s file when that is another node
    /// (downloads and deletes go there); `None` when the file is in this data dir.
    pub fn elsewhere<'a>(&self, row: &'a Recording) -> Option<&'a str> {
        match (&row.node, &self.inner.node) {
            (Some(theirs), Some(mine)) if theirs != mine => Some(theirs),
            _ => None,
        }
    }

    /// Whether recording `id` is being written now.
    pub fn in_progress(&self, id: RecordingId) -> bool {
        self.active().contains_key(&id)
    }

    /// The row of recording `id`.
    pub async fn get(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        self.inner.store.recording(id).await
    }

    /// Deletes recording `id` (file and row). Returns false when there is no such recording.
    /// Errors: `Conflict` while it is being recorded; `Io` when the file cannot be removed.
    pub async fn delete(&self, id: RecordingId) -> Result<bool, StoreError> {
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
    fn sign(&self, id: RecordingId, expires: i64) -> String {
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
    pub fn verify(&self, id: RecordingId, expires: i64, sig: &str, now: SystemTime) -> bool {
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
