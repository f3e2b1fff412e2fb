//! RTMP ingest: `rtmp://host:1935/live/<stream key>` (what OBS and ffmpeg send), bridged into
//! the SFU as a publisher like a WHIP one (issue 4).
//!
//! Layers: the RTMP handshake, chunk stream and AMF0 commands are rml_rtmp's (a sans-IO
//! server session, so this module owns the socket and the crate owns the protocol); the FLV
//! AVC video tag (`VideoData` of the FLV spec v10.1 §E.4.3, `AVCDecoderConfigurationRecord` of
//! ISO/IEC 14496-15 §5.2.4.1) is parsed here into neutral frames for `venue_sfu::bridge`.
//!
//! Keys go through `Schedule::authorize` like WHIP keys: a key outside its booked window, or an
//! unknown one, closes the connection with the reason logged. H.264 passes through without
//! transcoding; SPS/PPS from the sequence header go out before every IDR. A non-zero
//! composition time offset (B-frames) is logged as a warning with the OBS fix.
//!
//! Audio: the FLV AAC audio tag (FLV v10.1 §E.4.2: `AudioTagHeader` with `SoundFormat` 10,
//! `AACPacketType` 0 = `AudioSpecificConfig`, 1 = raw frame) is transcoded to Opus by
//! [`crate::audio::AacToOpus`] (48 kHz, the stream's channels, `[rtmp] opus_bitrate_kbps`). Other
//! audio codecs (MP3, Speex, Enhanced RTMP FourCCs) are dropped with one warning per connection;
//! the video goes on either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use venue_sfu::bridge::{BridgeMedia, VideoFrame};
use venue_sfu::health::{BridgeInfo, Protocol as HealthProtocol, SourceAudio};
use venue_sfu::{BridgeHandle, RoomId};

use crate::audio::{AacToOpus, OpusSettings, SourceAudioInfo};
use crate::config::RtmpConfig;
use crate::http::AppState;
use crate::rooms::{SessionInfo, SessionKind, participant};

/// Largest read from a connection at once, bytes.
const READ_BUF: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts RTMP connections on `listener` forever; each runs in its own task. An accept error
/// is logged and survived.
pub async fn serve(app: AppState, listener: TcpListener, config: RtmpConfig) {
    let limits = Limits {
        opus: OpusSettings {
            bitrate_bps: config.opus_bitrate_kbps.saturating_mul(1000),
        },
        publish_timeout: Duration::from_secs(config.publish_timeout_s),
    };
    let permits = Arc::new(Semaphore::new(config.max_connections));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let counters = &app.metrics.rtmp;
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    counters.refused_over_cap.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "RTMP connection refused: max_connections open");
                    drop(stream);
                    continue;
                };
                let app = app.clone();
                tokio::spawn(async move {
                    let counters = &app.metrics.rtmp;
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    if let Err(reason) = connection(&app, stream, limits).await {
                        match reason {
                            Closed::Protocol(_) => {
                                counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Closed::PublishTimeout => {
                                counters.publish_timeouts.fetch_add(1, Ordering::Relaxed);
                            }
                            Closed::Other(_) => {}
                        }
                        tracing::info!(%peer, %reason, "RTMP connection closed");
                    }
                    // Place freed before the gauge drops: a gauge of n means at most n held.
                    drop(permit);
                    counters.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Per-connection limits from `[rtmp]`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    opus: OpusSettings,
    publish_timeout: Duration,
}

/// Why a connection ended.
#[derive(Debug)]
enum Closed {
    /// Malformed handshake, chunk stream or AMF (counted).
    Protocol(String),
    /// No publish accepted in time (counted).
    PublishTimeout,
    /// Anything else: refused key, the peer left, the session was ended.
    Other(String),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Protocol(why) => write!(f, "malformed RTMP input: {why}"),
            Closed::PublishTimeout => f.write_str("no publish within the publish timeout"),
            Closed::Other(why) => f.write_str(why),
        }
    }
}

impl From<String> for Closed {
    fn from(s: String) -> Self {
        Closed::Other(s)
    }
}

/// Runs rml_rtmp's parsing of peer input, turning a panic inside it into a protocol error:
/// the crate indexes slices and subtracts lengths from peer-supplied values without checks
/// (found by the fuzz target), and one bad peer must not take the task down without cleanup.
fn guarded<T, E: std::fmt::Debug>(f: impl FnOnce() -> Result<T, E>) -> Result<T, Closed> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Closed::Protocol(format!("{e:?}"))),
        Err(_) => Err(Closed::Protocol(
            "the RTMP parser rejected the input (panic)".into(),
        )),
    }
}

/// What an AVC video tag carried.
#[derive(Debug, PartialEq, Eq)]
pub enum AvcTag {
    /// `AVCDecoderConfigurationRecord`: NAL length size and the SPS/PPS units.
    SequenceHeader {
        length_size: usize,
        parameter_sets: Vec<Bytes>,
    },
    /// Coded NAL units of one picture.
    Nalus {
        keyframe: bool,
        composition_time_ms: i32,
        nalus: Vec<Bytes>,
    },
    /// End of sequence, or a codec other than AVC (ignored).
    Other,
}

/// Why a tag could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlvError {
    /// The tag ends before a field it announces.
    #[error("truncated FLV video tag")]
    Truncated,
    /// A NAL length size other than 1, 2 or 4.
    #[error("bad AVC NAL length size {0}")]
    LengthSize(usize),
}

/// Parses one FLV video tag body (FLV v10.1 §E.4.3.1 `VideoTagHeader` + `AVCVIDEOPACKET`).
/// `length_size` is the NAL length size of the stream's sequence header (4 until one arrives).
/// Errors: [`FlvError`]; never panics on any input.
pub fn parse_video_tag(data: &[u8], length_size: usize) -> Result<AvcTag, FlvError> {
    let [first, packet_type, c0, c1, c2, body @ ..] = data else {
        return if data.first().is_some_and(|b| b & 0x0f != 7) {
            Ok(AvcTag::Other)
        } else {
            Err(FlvError::Truncated)
        };
    };
    if first & 0x0f != 7 {
        return Ok(AvcTag::Other);
    }
    let keyframe = first >> 4 == 1;
    // SI24 composition time offset.
    let raw = (u32::from(*c0) << 16) | (u32::from(*c1) << 8) | u32::from(*c2);
    let composition_time_ms = ((raw << 8) as i32) >> 8;
    match packet_type {
        0 => parse_decoder_config(body),
        1 => {
            if !matches!(length_size, 1 | 2 | 4) {
                return Err(FlvError::LengthSize(length_size));
            }
            let mut nalus = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_at_checked(length_size)
                    .ok_or(FlvError::Truncated)?;
                let n = len
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                let (nalu, tail) = tail.split_at_checked(n).ok_or(FlvError::Truncated)?;
                if !nalu.is_empty() {
                    nalus.push(Bytes::copy_from_slice(nalu));
                }
                rest = tail;
            }
            Ok(AvcTag::Nalus {
                keyframe,
                composition_time_ms,
                nalus,
            })
        }
        _ => Ok(AvcTag::Other),
    }
}

/// ISO/IEC 14496-15 §5.2.4.1 `AVCDecoderConfigurationRecord`.
fn parse_decoder_config(b: &[u8]) -> Result<AvcTag, FlvError> {
    let [
        _version,
        _profile,
        _compat,
        _level,
        len_byte,
        num_sps,
        rest @ ..,
    ] = b
    else {
        return Err(FlvError::Truncated);
    };
    let length_size = usize::from(len_byte & 0x03) + 1;
    let mut sets = Vec::new();
    let mut rest = rest;
    let take = |rest: &mut &[u8], count: usize, sets: &mut Vec<Bytes>| -> Result<(), FlvError> {
        for _ in 0..count {
            let (len, tail) = rest.split_at_checked(2).ok_or(FlvError::Truncated)?;
            let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (unit, tail) = tail.split_at_checked(n).ok_or(FlvError::Truncated)?;
            sets.push(Bytes::copy_from_slice(unit));
            *rest = tail;
        }
        Ok(())
    };
    take(&mut rest, usize::from(num_sps & 0x1f), &mut sets)?;
    let (num_pps, tail) = rest.split_first().ok_or(FlvError::Truncated)?;
    rest = tail;
    take(&mut rest, usize::from(*num_pps), &mut sets)?;
    Ok(AvcTag::SequenceHeader {
        length_size,
        parameter_sets: sets,
    })
}

/// What an FLV audio tag carried.
#[derive(Debug, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
    AacConfig(Bytes),
    /// One raw AAC frame.
    AacFrame(Bytes),
    /// Another `SoundFormat` (FLV v10.1 §E.4.2.1; 9 = Enhanced RTMP `ExHeader`).
    Other { sound_format: u8 },
}

/// Parses one FLV audio tag body (FLV v10.1 §E.4.2.1 `AudioTagHeader` + `AACAUDIODATA`).
/// Errors: [`FlvError::Truncated`] for an empty tag or an AAC tag without its packet type;
/// never panics on any input.
pub fn parse_audio_tag(data: &[u8]) -> Result<AudioTag, FlvError> {
    let Some((first, rest)) = data.split_first() else {
        return Err(FlvError::Truncated);
    };
    let sound_format = first >> 4;
    if sound_format != 10 {
        return Ok(AudioTag::Other { sound_format });
    }
    match rest.split_first() {
        Some((0, asc)) => Ok(AudioTag::AacConfig(Bytes::copy_from_slice(asc))),
        Some((1, frame)) => Ok(AudioTag::AacFrame(Bytes::copy_from_slice(frame))),
        Some((_, _)) => Ok(AudioTag::Other { sound_format }),
        None => Err(FlvError::Truncated),
    }
}

/// Per-connection publishing state.
struct Publishing {
    bridge: BridgeHandle,
    length_size: usize,
    parameter_sets: Vec<Bytes>,
    /// What the health report shows that the SFU cannot see (B-frames, the source audio).
    info: BridgeInfo,
    audio: AudioState,
}

/// Per-connection audio state.
struct AudioState {
    settings: OpusSettings,
    transcoder: Option<AacToOpus>,
    /// One warning per connection for audio Venue cannot take.
    warned: bool,
    /// AAC frames that did not decode (logged at debug level each, summarised at the end).
    bad_frames: u64,
    out: Vec<venue_sfu::bridge::AudioFrame>,
}

impl AudioState {
    fn new(settings: OpusSettings) -> Self {
        AudioState {
            settings,
            transcoder: None,
            warned: false,
            bad_frames: 0,
            out: Vec::new(),
        }
    }

    fn warn_once(&mut self, session: venue_sfu::SessionId, what: &str) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(%session, "RTMP audio dropped: {what}; the video goes on");
        }
    }

    /// Handles one audio tag at RTMP time `ms`, sending Opus packets into `bridge`. Returns
    /// the source's description when a sequence header (re)configured the transcoder.
    fn tag(&mut self, bridge: &BridgeHandle, data: &[u8], ms: i64) -> Option<SourceAudioInfo> {
        match parse_audio_tag(data) {
            Ok(AudioTag::AacConfig(asc)) => match AacToOpus::new(&asc, self.settings) {
                Ok(t) => {
                    let source = t.source();
                    tracing::info!(session = %bridge.session(), ?source, "RTMP AAC audio → Opus");
                    self.transcoder = Some(t);
                    return Some(source);
                }
                Err(e) => {
                    self.transcoder = None;
                    self.warn_once(bridge.session(), &e.to_string());
                }
            },
            Ok(AudioTag::AacFrame(frame)) => {
                let Some(t) = self.transcoder.as_mut() else {
                    self.warn_once(bridge.session(), "AAC frames before their sequence header");
                    return None;
                };
                self.out.clear();
                if let Err(e) = t.push(&frame, ms, &mut self.out) {
                    self.bad_frames += 1;
                    tracing::debug!(session = %bridge.session(), error = %e, "AAC frame dropped");
                }
                for packet in self.out.drain(..) {
                    if let Err(e) = bridge.send(BridgeMedia::Audio(packet)) {
                        tracing::debug!(error = %e, "bridge audio dropped");
                    }
                }
            }
            Ok(AudioTag::Other { sound_format }) => self.warn_once(
                bridge.session(),
                &format!(
                    "FLV SoundFormat {sound_format} is not AAC (set the encoder's audio to AAC)"
                ),
            ),
            Err(e) => {
                self.bad_frames += 1;
                tracing::debug!(error = %e, "bad FLV audio tag dropped");
            }
        }
        None
    }
}

async fn write_results(
    stream: &mut TcpStream,
    results: &[ServerSessionResult],
) -> Result<(), Closed> {
    for r in results {
        if let ServerSessionResult::OutboundResponse(packet) = r {
            write_all(stream, &packet.bytes).await?;
        }
    }
    Ok(())
}

async fn connection(app: &AppState, mut stream: TcpStream, limits: Limits) -> Result<(), Closed> {
    let _ = stream.set_nodelay(true);
    let publish_deadline = tokio::time::Instant::now() + limits.publish_timeout;
    let mut buf = vec![0u8; READ_BUF];
    // Handshake.
    let mut handshake = Handshake::new(PeerType::Server);
    let remaining = loop {
        let n = read(&mut stream, &mut buf, Some(publish_deadline)).await?;
        let input = buf.get(..n).unwrap_or_default();
        match guarded(|| handshake.process_bytes(input))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                write_all(&mut stream, &response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                write_all(&mut stream, &response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, initial) = guarded(|| ServerSession::new(ServerSessionConfig::new()))?;
    write_results(&mut stream, &initial).await?;
    // Subscribed before any session exists, so no close can be missed.
    let mut closed = app.state.closed_sessions();
    let mut publishing: Option<Publishing> = None;
    let mut input = remaining;
    let result = loop {
        let results = match guarded(|| session.handle_input(&input)) {
            Ok(r) => r,
            Err(e) => break Err(e),
        };
        let mut out = Vec::new();
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(_) => out.push(r),
                ServerSessionResult::RaisedEvent(event) => {
                    match handle_event(app, &mut session, &mut publishing, event, limits.opus).await
                    {
                        Ok(more) => out.extend(more),
                        Err(reason) => {
                            write_results(&mut stream, &out).await.ok();
                            return finish(app, publishing, Err(reason.into())).await;
                        }
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        if let Err(e) = write_results(&mut stream, &out).await {
            break Err(e);
        }
        let deadline = publishing.is_none().then_some(publish_deadline);
        let read = tokio::select! {
            r = read(&mut stream, &mut buf, deadline) => r,
            ended = session_ended(&mut closed, app, publishing.as_ref().map(|p| p.bridge.session())) => {
                debug_assert!(ended);
                break Err(Closed::Other(
                    "the publisher session was ended (key window closed or streamer removed)"
                        .into(),
                ));
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        input = buf.get(..n).unwrap_or_default().to_vec();
    };
    finish(app, publishing, result).await
}

/// Resolves when the gateway ends the `publishing` session; pending forever while not
/// publishing.
async fn session_ended(
    closed: &mut tokio::sync::broadcast::Receiver<venue_sfu::SessionId>,
    app: &AppState,
    publishing: Option<venue_sfu::SessionId>,
) -> bool {
    let Some(mine) = publishing else {
        return std::future::pending().await;
    };
    loop {
        match closed.recv().await {
            Ok(s) if s == mine => return true,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                if !matches!(app.state.session(mine).await, Ok(Some(_))) {
                    return true;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return std::future::pending().await;
            }
        }
    }
}

async fn finish(
    app: &AppState,
    publishing: Option<Publishing>,
    result: Result<(), Closed>,
) -> Result<(), Closed> {
    if let Some(p) = publishing {
        let session = p.bridge.session();
        if p.audio.bad_frames > 0 {
            tracing::info!(%session, bad_frames = p.audio.bad_frames, "AAC frames or audio tags dropped on this connection");
        }
        let _ = p.bridge.close().await;
        let _ = app.state.session_closed(session).await;
    }
    result
}

/// Reads what is there; fails when the peer closes, after [`IDLE_TIMEOUT`] of silence, or at
/// `publish_deadline` (a connection that has not published yet).
async fn read(
    stream: &mut TcpStream,
    buf: &mut [u8],
    publish_deadline: Option<tokio::time::Instant>,
) -> Result<usize, Closed> {
    let idle = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let until = publish_deadline.map_or(idle, |d| d.min(idle));
    match tokio::time::timeout_at(until, stream.read(buf)).await {
        Ok(Ok(0)) => Err(Closed::Other("peer closed".into())),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Closed::Other(format!("read: {e}"))),
        Err(_) if publish_deadline.is_some_and(|d| d <= idle) => Err(Closed::PublishTimeout),
        Err(_) => Err(Closed::Other("idle for 30 s".into())),
    }
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), Closed> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| Closed::Other(format!("write: {e}")))
}

async fn handle_event(
    app: &AppState,
    session: &mut ServerSession,
    publishing: &mut Option<Publishing>,
    event: ServerSessionEvent,
    opus: OpusSettings,
) -> Result<Vec<ServerSessionResult>, String> {
    match event {
        ServerSessionEvent::ConnectionRequested {
            request_id,
            app_name,
        } => {
            if app_name != "live" {
                return Err(format!(
                    "unknown RTMP application {app_name:?} (use rtmp://host/live)"
                ));
            }
            session
                .accept_request(request_id)
                .map_err(|e| format!("{e:?}"))
        }
        ServerSessionEvent::PublishStreamRequested {
            request_id,
            stream_key,
            ..
        } => {
            if publishing.is_some() {
                return Err("a second publish on one connection".into());
            }
            let streamer = app
                .schedule
                .authorize(&app.store, &stream_key)
                .await
                .map_err(|e| format!("stream key refused: {e}"))?;
            let room = RoomId(streamer.room_id as u64);
            let p = participant(crate::ids::StreamerId(streamer.id));
            let bridge = app
                .sfu
                .bridge(room, p)
                .await
                .map_err(|e| format!("media plane: {e}"))?;
            let info = BridgeInfo {
                protocol: HealthProtocol::Rtmp,
                b_frames: false,
                source_audio: None,
            };
            let _ = bridge.set_info(info.clone());
            app.state
                .session_created(
                    bridge.session(),
                    SessionInfo {
                        room: room.into(),
                        kind: SessionKind::Publisher(p, crate::webhooks::Protocol::Rtmp),
                        etag: String::new(),
                    },
                )
                .await
                .map_err(|e| format!("state: {e}"))?;
            app.schedule.changed();
            tracing::info!(room = streamer.room_id, streamer = streamer.id, session = %bridge.session(), "RTMP publisher session created");
            *publishing = Some(Publishing {
                bridge,
                length_size: 4,
                parameter_sets: Vec::new(),
                info,
                audio: AudioState::new(opus),
            });
            session
                .accept_request(request_id)
                .map_err(|e| format!("{e:?}"))
        }
        ServerSessionEvent::VideoDataReceived {
            data, timestamp, ..
        } => {
            let Some(p) = publishing.as_mut() else {
                return Ok(Vec::new());
            };
            match parse_video_tag(&data, p.length_size) {
                Ok(AvcTag::SequenceHeader {
                    length_size,
                    parameter_sets,
                }) => {
                    p.length_size = length_size;
                    p.parameter_sets = parameter_sets;
                }
                Ok(AvcTag::Nalus {
                    keyframe,
                    composition_time_ms,
                    nalus,
                }) => {
                    if composition_time_ms != 0 && !p.info.b_frames {
                        p.info.b_frames = true;
                        let _ = p.bridge.set_info(p.info.clone());
                        tracing::warn!(session = %p.bridge.session(), "the RTMP stream has B-frames (composition time offsets); WebRTC viewers may stutter — in OBS set the x264 profile to baseline or B-frames to 0");
                    }
                    let pts_ms = i64::from(timestamp.value) + i64::from(composition_time_ms);
                    let frame = VideoFrame {
                        nalus,
                        pts_90k: (pts_ms.max(0) as u64) * 90,
                        keyframe,
                        parameter_sets: if keyframe {
                            p.parameter_sets.clone()
                        } else {
                            Vec::new()
                        },
                    };
                    if let Err(e) = p.bridge.send(BridgeMedia::Video(frame)) {
                        tracing::debug!(error = %e, "bridge frame dropped");
                    }
                }
                Ok(AvcTag::Other) => {}
                Err(e) => {
                    app.metrics.rtmp.bad_media.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "bad FLV video tag dropped");
                }
            }
            Ok(Vec::new())
        }
        ServerSessionEvent::AudioDataReceived {
            data, timestamp, ..
        } => {
            let Some(p) = publishing.as_mut() else {
                return Ok(Vec::new());
            };
            let bad_before = p.audio.bad_frames;
            let source = p.audio.tag(&p.bridge, &data, i64::from(timestamp.value));
            app.metrics
                .rtmp
                .bad_media
                .fetch_add(p.audio.bad_frames - bad_before, Ordering::Relaxed);
            if let Some(source) = source {
                p.info.source_audio = Some(SourceAudio {
                    codec: "AAC".into(),
                    channels: source.channels,
                    sample_rate_hz: source.sample_rate_hz,
                });
                let _ = p.bridge.set_info(p.info.clone());
            }
            Ok(Vec::new())
        }
        ServerSessionEvent::PublishStreamFinished { .. } => {
            Err("the encoder stopped publishing".into())
        }
        _ => Ok(Vec::new()),
    }
}

/// Binds `config.listen` and serves RTMP in the background; a bind failure is logged and Venue runs
/// without RTMP ingest.
pub async fn spawn(app: AppState, config: RtmpConfig) -> Option<SocketAddr> {
    let addr = config.listen;
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let local = listener.local_addr().ok();
            tokio::spawn(serve(app, listener, config));
            local
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for RTMP; running without RTMP ingest");
            None
        }
    }
}

/// Fuzzing entry points: everything an RTMP peer's bytes reach before the SFU, run without a
/// socket. Used by the cargo-fuzz targets in `fuzz/` and by the seeded random-input test
/// `gateway/tests/rtmp_fuzz.rs` that CI runs. Neither function may panic or abort on any input
/// (a panic inside rml_rtmp is caught, as the connection task catches it).
pub mod fuzzing {
    use rml_rtmp::sessions::{
        ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
    };

    use super::{AudioTag, AvcTag, guarded, parse_audio_tag, parse_video_tag};
    use crate::audio::{AacToOpus, OpusSettings};

    /// Feeds `data` (the bytes after the handshake) into a server session in pieces of
    /// `1 + data[0]` bytes, accepting every connect and publish, and parses every video and
    /// audio tag it yields (AAC transcoded as the connection would). Returns the number of
    /// media tags parsed.
    pub fn session_input(data: &[u8]) -> usize {
        let Some((&step, data)) = data.split_first() else {
            return 0;
        };
        let Ok((mut session, _)) = guarded(|| ServerSession::new(ServerSessionConfig::new()))
        else {
            return 0;
        };
        let mut media = Media::default();
        for piece in data.chunks(usize::from(step) + 1) {
            let Ok(results) = guarded(|| session.handle_input(piece)) else {
                break;
            };
            for r in results {
                let ServerSessionResult::RaisedEvent(event) = r else {
                    continue;
                };
                match event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                        let _ = guarded(|| session.accept_request(request_id));
                    }
                    ServerSessionEvent::VideoDataReceived { data, .. } => media.video(&data),
                    ServerSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => {
                        media.audio(&data, i64::from(timestamp.value));
                    }
                    _ => {}
                }
            }
        }
        media.tags
    }

    /// Parses `data` as a sequence of FLV tag bodies, each prefixed by a 1-byte kind (even:
    /// video, odd: audio) and a 2-byte big-endian length: the FLV/AAC layer alone, with the
    /// AAC transcoder. Returns the number of tags parsed.
    pub fn flv_tags(mut data: &[u8]) -> usize {
        let mut media = Media::default();
        while let [kind, hi, lo, rest @ ..] = data {
            let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
            let (tag, tail) = rest.split_at(n);
            if kind % 2 == 0 {
                media.video(tag);
            } else {
                media.audio(tag, media.tags as i64 * 21);
            }
            data = tail;
        }
        media.tags
    }

    #[derive(Default)]
    struct Media {
        length_size: Option<usize>,
        aac: Option<AacToOpus>,
        out: Vec<venue_sfu::bridge::AudioFrame>,
        tags: usize,
    }

    impl Media {
        fn video(&mut self, tag: &[u8]) {
            self.tags += 1;
            if let Ok(AvcTag::SequenceHeader { length_size, .. }) =
                parse_video_tag(tag, self.length_size.unwrap_or(4))
            {
                self.length_size = Some(length_size);
            }
        }

        fn audio(&mut self, tag: &[u8], ms: i64) {
            self.tags += 1;
            match parse_audio_tag(tag) {
                Ok(AudioTag::AacConfig(asc)) => {
                    self.aac = AacToOpus::new(&asc, OpusSettings::default()).ok();
                }
                Ok(AudioTag::AacFrame(frame)) => {
                    if let Some(t) = self.aac.as_mut() {
                        self.out.clear();
                        let _ = t.push(&frame, ms, &mut self.out);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/rtmp.rs"]
mod tests;
