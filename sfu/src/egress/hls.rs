//! The LL-HLS packager: the program's pictures and Opus packets in, fMP4 parts, segments and
//! media playlists out — sans-IO (no clock, no tasks, no sockets; time comes in as arguments).
//!
//! Implements the server side of HTTP Live Streaming 2nd edition (draft-pantos-hls-rfc8216bis-17,
//! "8216bis" below) with Apple's Low-Latency HLS extensions:
//! - Media segments are fMP4 (8216bis §3.1.2) made by the CMAF [`Fragmenter`] (boxes by
//!   [`super::cmaf`]; the sample and decode-time rules are the fragmenter's, shared with the
//!   recorder): one `moof`+`mdat` fragment per **partial segment** (§4.4.4.9 `EXT-X-PART`), a segment being the
//!   concatenation of its parts. Segments start only at keyframes (§6.2.3: each segment starts
//!   independently decodable); a part starting with a keyframe is `INDEPENDENT=YES`.
//! - The playlist carries `EXT-X-VERSION:9`, `EXT-X-TARGETDURATION` (§4.4.3.1),
//!   `EXT-X-SERVER-CONTROL` with `CAN-BLOCK-RELOAD=YES`, `PART-HOLD-BACK` = 3 × part target and
//!   `CAN-SKIP-UNTIL` = 6 × target duration (§4.4.3.8), `EXT-X-PART-INF` (§4.4.3.7), `EXT-X-MAP`
//!   (§4.4.4.5), `EXT-X-PROGRAM-DATE-TIME` on every segment (§4.4.4.6), `EXT-X-PART` for the
//!   segments within three target durations of the live edge (§6.2.2), and one
//!   `EXT-X-PRELOAD-HINT:TYPE=PART` for the next part (§4.4.5.3).
//! - Blocking playlist reload (§6.2.5.2, `_HLS_msn` / `_HLS_part`) is decided by
//!   [`LlHlsPackager::playlist`]: ready, not yet (the caller holds the request and asks again
//!   when [`LlHlsPackager::generation`] moves), or bad request (a part beyond the Advance Part
//!   Limit, a segment more than two past the last one, `_HLS_part` without `_HLS_msn`).
//! - Playlist delta updates (§6.2.5.1, `_HLS_skip=YES`): segments older than the skip boundary
//!   are replaced by `EXT-X-SKIP:SKIPPED-SEGMENTS=n` (§4.4.5.2).
//!
//! A sliding window of segments ([`HlsConfig::window`]) is kept in memory; parts of a finished
//! segment are slices of the segment's bytes (one copy of the media).
//!
//! URIs are relative to the playlist: `init-{run}.mp4`, `seg{msn}.m4s`, `part{msn}.{part}.m4s`,
//! where `run` is [`HlsConfig::first_msn`]. Media sequence numbers start at `first_msn`, so a
//! caller that derives it from the wall clock never reuses a URI across program restarts —
//! which is what lets caches keep parts, segments and the init segment as immutable.

// A sans-IO core: it takes the time as a parameter and never reads the clock (DESIGN §2).
#![deny(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use super::cmaf::CmafError;
use super::fragmenter::{AudioTail, Fragmenter, FragmenterConfig, TICKS, Timeline, VideoPush};
use super::{ProgramAudio, ProgramFormat, ProgramVideo};

/// Packager settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsConfig {
    /// Segment target duration. Segments are cut at the first keyframe at or after it (within
    /// half a frame). `EXT-X-TARGETDURATION` is this rounded up to whole seconds.
    /// Default 2 s; 0.5 s..=10 s.
    pub segment_target: Duration,
    /// Part target duration (`PART-TARGET`): a part closes before the picture that would
    /// make it longer. Default 1/3 s; 50 ms..=`segment_target`.
    pub part_target: Duration,
    /// How much media the playlist and memory keep: finished segments are dropped once the
    /// rest still cover this. Default 30 s; at least 4 × `segment_target`.
    pub window: Duration,
    /// Media sequence number of the first segment (also names the init segment). Default 0;
    /// callers that restart programs should pass something that grows with the wall clock.
    pub first_msn: u64,
    /// `PreSkip` written into `dOps`, 48 kHz samples (the Opus encoder's lookahead,
    /// RFC 7845 §4.2). Default 0: the program timeline is the encoder's output timeline.
    pub opus_pre_skip: u16,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_nanos(333_333_333),
            window: Duration::from_secs(30),
            first_msn: 0,
            opus_pre_skip: 0,
        }
    }
}

/// Why a packager could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    /// A configuration value is out of range; the string says which.
    #[error("invalid HLS configuration: {0}")]
    Config(&'static str),
    /// The program format cannot be written as an init segment.
    #[error("invalid program format: {0}")]
    Format(#[from] CmafError),
}

/// Delivery directives of a playlist request (8216bis §6.2.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaylistQuery {
    /// `_HLS_msn`: the media sequence number the client waits for.
    pub msn: Option<u64>,
    /// `_HLS_part`: the part index (within `msn`) the client waits for.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` (or `v2`): a delta update is welcome.
    pub skip: bool,
}

/// The answer to a playlist request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaylistAnswer {
    /// The playlist (UTF-8 M3U8 text) satisfying the request.
    Ready(String),
    /// The requested segment/part does not exist yet (or nothing was published yet): hold the
    /// request and ask again when [`LlHlsPackager::generation`] changes.
    NotYet,
    /// 400 Bad Request (8216bis §6.2.5.2); the string says why.
    BadRequest(String),
}

#[derive(Debug, Clone)]
struct Part {
    data: Bytes,
    /// 90 kHz ticks.
    duration: u64,
    independent: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    msn: u64,
    /// Decode time of its first picture, 90 kHz ticks.
    start: u64,
    /// Wall-clock time of its first picture.
    date: SystemTime,
    parts: Vec<Part>,
    /// The whole segment, once finished.
    data: Option<Bytes>,
}

impl Segment {
    fn duration(&self) -> u64 {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// The LL-HLS packager of one program. See the module docs for the spec sections.
///
/// Feed it with [`push_video`](Self::push_video) / [`push_audio`](Self::push_audio) in
/// roughly real time; serve [`playlist`](Self::playlist), [`init`](Self::init),
/// [`part`](Self::part) and [`segment`](Self::segment). A picture is packaged when the next
/// one arrives (its duration is the difference), so a part is published as soon as the first
/// picture of the following part is pushed.
#[derive(Debug)]
pub struct LlHlsPackager {
    config: HlsConfig,
    /// Pictures and audio → one fragment per part (program timeline).
    fragmenter: Fragmenter,
    /// Finished segments, oldest first.
    segments: VecDeque<Segment>,
    /// The segment being filled; `None` before the first keyframe.
    current: Option<Segment>,
    /// (decode time 90 kHz, wall clock) of the first keyframe.
    anchor: Option<(u64, SystemTime)>,
    generation: u64,
    segment_ticks: u64,
    part_ticks: u64,
}

impl LlHlsPackager {
    /// A packager for a program of `format`. Errors: [`HlsError::Config`] for out-of-range
    /// settings, [`HlsError::Format`] when the format cannot make an init segment (bad
    /// SPS/PPS, channels not 1–2, size 0 or above 65 535).
    pub fn new(config: HlsConfig, format: ProgramFormat) -> Result<Self, HlsError> {
        let seg = config.segment_target;
        let part = config.part_target;
        if !(Duration::from_millis(500)..=Duration::from_secs(10)).contains(&seg) {
            return Err(HlsError::Config("segment_target must be 0.5 s..=10 s"));
        }
        if part < Duration::from_millis(50) || part > seg {
            return Err(HlsError::Config(
                "part_target must be 50 ms..=segment_target",
            ));
        }
        if config.window < seg * 4 {
            return Err(HlsError::Config(
                "window must be at least 4 × segment_target",
            ));
        }
        if !(1..=240).contains(&format.fps) {
            return Err(HlsError::Config("fps must be 1..=240"));
        }
        let fragmenter = Fragmenter::new(
            FragmenterConfig {
                timeline: Timeline::Program,
                audio_tail: AudioTail::UntilNext,
                opus_pre_skip: config.opus_pre_skip,
            },
            &format,
        )?;
        Ok(LlHlsPackager {
            segment_ticks: ticks(seg),
            part_ticks: ticks(part),
            config,
            fragmenter,
            segments: VecDeque::new(),
            current: None,
            anchor: None,
            generation: 0,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// Counts publications: grows by one each time a part (and with it, maybe, a segment) is
    /// published. The async layer waits for it to change to re-answer held requests.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `EXT-X-TARGETDURATION`, whole seconds (segment target rounded up).
    pub fn target_duration_s(&self) -> u64 {
        self.segment_ticks.div_ceil(TICKS)
    }

    /// The part target duration.
    pub fn part_target(&self) -> Duration {
        self.config.part_target
    }

    /// The init segment's URI relative to the playlist: `init-{first_msn}.mp4`.
    pub fn init_uri(&self) -> String {
        format!("init-{}.mp4", self.config.first_msn)
    }

    /// Pushes one picture. `now` is the wall clock (used once, on the first keyframe, to date
    /// the program for `EXT-X-PROGRAM-DATE-TIME`). Pictures before the first keyframe are
    /// dropped. The previous picture is packaged now; when this picture starts a new part (part
    /// target reached) or segment (a keyframe at or after the segment target) the finished part
    /// is published. Returns whether something was published.
    pub fn push_video(&mut self, frame: ProgramVideo, now: SystemTime) -> bool {
        let (keyframe, pts_90k) = (frame.keyframe, frame.pts_90k);
        let duration = match self.fragmenter.push_video(frame) {
            VideoPush::Dropped => return false,
            VideoPush::Started => {
                self.anchor = Some((pts_90k, now));
                self.current = Some(self.new_segment(self.config.first_msn, pts_90k));
                return false;
            }
            VideoPush::Packaged { duration } => duration,
        };
        let now_dts = self.fragmenter.packaged_end();
        let part_start = self.fragmenter.fragment_start();
        let slack = self.fragmenter.frame_ticks() / 2;
        let seg_start = self.current.as_ref().map_or(now_dts, |s| s.start);
        if keyframe && now_dts - seg_start + slack >= self.segment_ticks {
            let published = self.close_part();
            self.close_segment(now_dts);
            published
        } else if now_dts - part_start + duration > self.part_ticks {
            // One more picture of the same duration would make the part longer than
            // PART-TARGET, which no part may be (§4.4.3.7).
            self.close_part()
        } else {
            false
        }
    }

    /// Pushes one Opus packet. Its decode time is `ts_48k`, or the end of the previous packet
    /// when that is later (no overlap); the duration comes from the TOC (RFC 6716 §3.1).
    /// Empty or malformed packets and packets from before the first keyframe are dropped.
    pub fn push_audio(&mut self, packet: ProgramAudio) {
        self.fragmenter.push_audio(packet);
    }

    fn new_segment(&self, msn: u64, start: u64) -> Segment {
        let date = match self.anchor {
            Some((dts, wall)) => {
                let since = u128::from(start.saturating_sub(dts));
                let nanos = since * 1_000_000_000 / u128::from(TICKS);
                wall + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            None => SystemTime::UNIX_EPOCH,
        };
        Segment {
            msn,
            start,
            date,
            parts: Vec::new(),
            data: None,
        }
    }

    /// Publishes the pictures packaged since the last part, with the audio before their end.
    fn close_part(&mut self) -> bool {
        let Some(fragment) = self.fragmenter.cut() else {
            return false;
        };
        if let Some(current) = self.current.as_mut() {
            current.parts.push(Part {
                data: fragment.data,
                duration: fragment.duration,
                independent: fragment.independent,
            });
        }
        self.generation += 1;
        true
    }

    /// Finishes the current segment and opens the next one at `start`.
    fn close_segment(&mut self, start: u64) {
        let Some(mut done) = self.current.take() else {
            return;
        };
        let next_msn = done.msn + 1;
        if !done.parts.is_empty() {
            let mut whole = BytesMut::with_capacity(done.parts.iter().map(|p| p.data.len()).sum());
            for p in &done.parts {
                whole.extend_from_slice(&p.data);
            }
            let whole = whole.freeze();
            let mut at = 0;
            for p in &mut done.parts {
                let len = p.data.len();
                p.data = whole.slice(at..at + len);
                at += len;
            }
            done.data = Some(whole);
            self.segments.push_back(done);
        }
        // Sliding window: drop the oldest while the others still cover it.
        let window = ticks(self.config.window);
        let mut total: u64 = self.segments.iter().map(Segment::duration).sum();
        while let Some(front) = self.segments.front() {
            let d = front.duration();
            if total - d < window {
                break;
            }
            total -= d;
            self.segments.pop_front();
        }
        self.current = Some(self.new_segment(next_msn, start));
    }

    /// The init segment (`ftyp` + `moov`, see [`super::cmaf::init_segment`]). Always `Some` once
    /// the packager exists.
    pub fn init(&self) -> Option<Bytes> {
        Some(self.fragmenter.init().clone())
    }

    /// Part `part` of segment `msn` (a `moof`+`mdat`), if published and still in the window.
    pub fn part(&self, msn: u64, part: u32) -> Option<Bytes> {
        let segment = self.find(msn)?;
        segment
            .parts
            .get(usize::try_from(part).ok()?)
            .map(|p| p.data.clone())
    }

    /// Finished segment `msn` (its parts concatenated), if still in the window.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|s| s.msn == msn)
            .and_then(|s| s.data.clone())
    }

    fn find(&self, msn: u64) -> Option<&Segment> {
        match &self.current {
            Some(c) if c.msn == msn => Some(c),
            _ => self.segments.iter().find(|s| s.msn == msn),
        }
    }

    /// The next part to be published: (media sequence number, part index) — the one named by
    /// `EXT-X-PRELOAD-HINT`. `None` before the first keyframe.
    pub fn next_part(&self) -> Option<(u64, u32)> {
        let c = self.current.as_ref()?;
        Some((c.msn, u32::try_from(c.parts.len()).unwrap_or(u32::MAX)))
    }

    /// The last published part, if any.
    fn last_part(&self) -> Option<(u64, u32)> {
        let c = self.current.as_ref()?;
        if let Some(n) = c.parts.len().checked_sub(1) {
            return Some((c.msn, u32::try_from(n).unwrap_or(u32::MAX)));
        }
        let s = self.segments.back()?;
        let n = s.parts.len().checked_sub(1)?;
        Some((s.msn, u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Parts expected per segment: segment target / part target, rounded up.
    fn parts_per_segment(&self) -> u64 {
        self.segment_ticks.div_ceil(self.part_ticks.max(1)).max(1)
    }

    /// The Advance Part Limit (8216bis §6.2.5.2): 3 / part target when the part target is
    /// under one second, else 3 — in parts.
    fn advance_part_limit(&self) -> u64 {
        if self.part_ticks < TICKS {
            (3 * TICKS).div_ceil(self.part_ticks.max(1))
        } else {
            3
        }
    }

    /// How many parts after the last published one (msn, part) would be, assuming
    /// [`Self::parts_per_segment`] parts per future segment; 0 if already published.
    fn parts_ahead(&self, msn: u64, part: u32) -> u64 {
        let Some((lm, lp)) = self.last_part() else {
            return u64::from(part) + 1;
        };
        let (lp, part) = (u64::from(lp), u64::from(part));
        if msn < lm || (msn == lm && part <= lp) {
            return 0;
        }
        if msn == lm {
            return part - lp;
        }
        let per = self.parts_per_segment();
        // Parts left in lm (if the part count there is still open), whole segments between,
        // then part + 1 into msn.
        let left = if Some(lm) == self.current.as_ref().map(|c| c.msn) {
            per.saturating_sub(lp + 1)
        } else {
            0
        };
        left + (msn - lm - 1).saturating_mul(per) + part + 1
    }

    /// Whether part (msn, part) is not published yet but is close enough — within the Advance
    /// Part Limit — that a request for it should be held (preload hints, §6.2.6).
    pub fn part_is_coming(&self, msn: u64, part: u32) -> bool {
        if self.part(msn, part).is_some() {
            return false;
        }
        let Some((next_msn, next_part)) = self.next_part() else {
            return false;
        };
        if (msn, part) < (next_msn, next_part) {
            return false;
        }
        let ahead = self.parts_ahead(msn, part);
        ahead >= 1 && ahead <= self.advance_part_limit()
    }

    /// Answers a playlist request with its delivery directives (8216bis §6.2.5):
    /// - `_HLS_part` without `_HLS_msn`, `_HLS_msn` more than two segments past the last one
    ///   in the playlist, or a part more than the Advance Part Limit past the last published
    ///   part → [`PlaylistAnswer::BadRequest`];
    /// - nothing published yet, or the asked segment (without `_HLS_part`: the whole segment)
    ///   or part not published yet → [`PlaylistAnswer::NotYet`];
    /// - else [`PlaylistAnswer::Ready`] with the playlist (a delta update when `skip`).
    ///
    /// A part index past the end of a finished segment means part 0 of the next one.
    pub fn playlist(&self, query: PlaylistQuery) -> PlaylistAnswer {
        if query.part.is_some() && query.msn.is_none() {
            return PlaylistAnswer::BadRequest("_HLS_part requires _HLS_msn".into());
        }
        let (Some(current), Some((last_msn, _))) = (self.current.as_ref(), self.last_part()) else {
            return match query.msn {
                Some(m) if m > self.config.first_msn + 2 => PlaylistAnswer::BadRequest(format!(
                    "_HLS_msn={m} is more than two segments past the last one"
                )),
                _ => PlaylistAnswer::NotYet,
            };
        };
        if let Some(msn) = query.msn {
            if msn > last_msn + 2 {
                return PlaylistAnswer::BadRequest(format!(
                    "_HLS_msn={msn} is more than two segments past the last one ({last_msn})"
                ));
            }
            let ready = match query.part {
                None => msn < current.msn,
                Some(part) => {
                    let (mut m, mut p) = (msn, part);
                    // Past the end of a finished segment: the next segment's part 0.
                    if m < current.msn
                        && let Some(s) = self.segments.iter().find(|s| s.msn == m)
                        && usize::try_from(p).unwrap_or(usize::MAX) >= s.parts.len()
                    {
                        (m, p) = (m + 1, 0);
                    }
                    let ahead = self.parts_ahead(m, p);
                    if ahead > self.advance_part_limit() {
                        return PlaylistAnswer::BadRequest(format!(
                            "_HLS_msn={msn}&_HLS_part={part} is more than {} parts past the last one",
                            self.advance_part_limit()
                        ));
                    }
                    ahead == 0
                }
            };
            if !ready {
                return PlaylistAnswer::NotYet;
            }
        }
        PlaylistAnswer::Ready(self.render(query.skip))
    }

    /// The media playlist text; `skip` makes it a delta update.
    fn render(&self, skip: bool) -> String {
        let td = self.target_duration_s();
        let part_target = ceil_seconds(self.part_ticks);
        // PART-HOLD-BACK: at least 3 × PART-TARGET (§4.4.3.8), from the printed value.
        let hold_back = part_target * 3.0;
        let skip_until = td * 6;
        let first_msn = self
            .segments
            .front()
            .map(|s| s.msn)
            .or(self.current.as_ref().map(|c| c.msn))
            .unwrap_or(self.config.first_msn);
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{td}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until}.0,PART-HOLD-BACK={hold_back:.5}\n\
             #EXT-X-PART-INF:PART-TARGET={part_target:.5}\n\
             #EXT-X-MEDIA-SEQUENCE:{first_msn}\n\
             #EXT-X-MAP:URI=\"{}\"\n",
            self.init_uri()
        );
        let finished: u64 = self.segments.iter().map(Segment::duration).sum();
        let in_progress = self.current.as_ref().map_or(0, Segment::duration);
        let total = finished + in_progress;
        // Segments whose end is at least the skip boundary from the end are skipped.
        let skip_ticks = skip_until * TICKS;
        let mut skipped = 0;
        if skip {
            let mut end = 0;
            for s in &self.segments {
                end += s.duration();
                if total - end >= skip_ticks {
                    skipped += 1;
                } else {
                    break;
                }
            }
            if skipped > 0 {
                let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
            }
        }
        // Parts are listed for segments ending within 3 target durations of the end.
        let parts_from = total.saturating_sub(3 * td * TICKS);
        let mut end = 0;
        for s in &self.segments {
            end += s.duration();
            if skipped > 0 {
                skipped -= 1;
                continue;
            }
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(s.date));
            if end > parts_from {
                self.write_parts(&mut out, s);
            }
            let _ = writeln!(
                out,
                "#EXTINF:{:.5},\nseg{}.m4s",
                s.duration() as f64 / TICKS as f64,
                s.msn
            );
        }
        if let Some(c) = &self.current {
            if !c.parts.is_empty() {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(c.date));
                self.write_parts(&mut out, c);
            }
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{}.{}.m4s\"",
                c.msn,
                c.parts.len()
            );
        }
        out
    }

    fn write_parts(&self, out: &mut String, s: &Segment) {
        for (i, p) in s.parts.iter().enumerate() {
            let _ = writeln!(
                out,
                "#EXT-X-PART:DURATION={:.5},URI=\"part{}.{i}.m4s\"{}",
                p.duration as f64 / TICKS as f64,
                s.msn,
                if p.independent {
                    ",INDEPENDENT=YES"
                } else {
                    ""
                }
            );
        }
    }
}

/// A duration in 90 kHz ticks (rounded to the nearest tick).
fn ticks(d: Duration) -> u64 {
    let nanos = d.as_nanos();
    u64::try_from((nanos * u128::from(TICKS) + 500_000_000) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// Ticks as seconds rounded up to 5 decimals (so that printed targets are never below the
/// real durations).
fn ceil_seconds(t: u64) -> f64 {
    (t * 100_000).div_ceil(TICKS) as f64 / 100_000.0
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, as 8216bis §4.4.4.6 asks: ISO 8601 with a time zone).
pub fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let secs = u64::try_from(ms / 1000).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
// Tests may read the clock; the core may not.
#[allow(clippy::disallowed_methods)]
#[path = "../tests/hls.rs"]
mod tests;
