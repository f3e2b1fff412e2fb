//! RTMP ingest: `rtmp://host:1935/live/<stream key>` (what OBS and ffmpeg send), bridged into
//! the SFU as a publisher like a WHIP one (issue 4).
//!
//! Layers: the RTMP handshake, chunk stream and AMF0 commands are rml_rtmp's (a sans-IO
//! server session, so this module owns the socket and the crate owns the protocol); the FLV
//! tags it yields go to [`venue_sfu::ingest::FlvIngest`] (sans-IO: the FLV AVC video tag, FLV
//! spec v10.1 §E.4.3, and the AAC audio tag, §E.4.2), whose neutral frames this module hands to
//! `venue_sfu::bridge`. This module keeps the connection only: the socket, the session, keys,
//! limits and counters.
//!
//! Keys go through `Schedule::authorize` like WHIP keys: a key outside its booked window, or an
//! unknown one, closes the connection with the reason logged. H.264 passes through without
//! transcoding; SPS/PPS from the sequence header go out before every IDR. A non-zero
//! composition time offset (B-frames) is logged as a warning with the OBS fix.
//!
//! Audio: the FLV AAC audio tag (FLV v10.1 §E.4.2: `AudioTagHeader` with `SoundFormat` 10,
//! `AACPacketType` 0 = `AudioSpecificConfig`, 1 = raw frame) is transcoded to Opus by
//! [`venue_sfu::ingest::AacToOpus`] (48 kHz, the stream's channels, `[rtmp] opus_bitrate_kbps`). Other
//! audio codecs (MP3, Speex, Enhanced RTMP FourCCs) are dropped with one warning per connection;
//! the video goes on either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use venue_sfu::bridge::BridgeMedia;
use venue_sfu::health::{BridgeInfo, Protocol as HealthProtocol, SourceAudio};
use venue_sfu::ingest::{AudioTagOutcome, FlvIngest, OpusSettings, VideoTagOutcome};
use venue_sfu::{BridgeHandle, RoomId, SfuHandle};

use crate::config::RtmpConfig;
use crate::metrics::Metrics;
use crate::rooms::{SessionInfo, SessionKind, StateHandle, new_participant};
use crate::schedule::Schedule;
use crate::store::Store;

/// Largest read from a connection at once, bytes.
const READ_BUF: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The handles the RTMP listener uses (built where it is spawned). Cheap to clone.
#[derive(Clone, Debug)]
pub struct RtmpDeps {
    /// Checks stream keys (`Schedule::authorize`) and hears of new sessions.
    pub schedule: Schedule,
    /// The store the key check reads.
    pub store: Store,
    /// The media plane: one bridge per publishing connection.
    pub sfu: SfuHandle,
    /// The state actor: session created/closed, and the sessions it ends.
    pub state: StateHandle,
    /// `rtmp` counters (`metrics.rtmp`).
    pub metrics: Arc<Metrics>,
}

/// Accepts RTMP connections on `listener` forever; each runs in its own task. An accept error
/// is logged and survived.
pub async fn serve(app: RtmpDeps, listener: TcpListener, config: RtmpConfig) {
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
                    counters.refused_over_cap.inc();
                    tracing::debug!(%peer, "RTMP connection refused: max_connections open");
                    drop(stream);
                    continue;
                };
                let app = app.clone();
                tokio::spawn(async move {
                    let counters = &app.metrics.rtmp;
                    counters.connections.inc();
                    if let Err(reason) = connection(&app, stream, limits).await {
                        match reason {
                            Closed::Protocol(_) => {
                                counters.protocol_errors.inc();
                            }
                            Closed::PublishTimeout => {
                                counters.publish_timeouts.inc();
                            }
                            Closed::Other(_) => {}
                        }
                        tracing::info!(%peer, %reason, "RTMP connection closed");
                    }
                    // Place freed before the gauge drops: a gauge of n means at most n held.
                    drop(permit);
                    counters.connections.dec();
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

/// Per-connection publishing state.
struct Publishing {
    bridge: BridgeHandle,
    /// The stream's FLV tags → frames (AVC sequence header, AAC transcoder).
    ingest: FlvIngest,
    /// What the health report shows that the SFU cannot see (B-frames, the source audio).
    info: BridgeInfo,
    /// One warning per connection for audio Venue cannot take.
    audio_warned: bool,
    /// AAC frames or audio tags that did not decode (logged at debug level each, summarised
    /// at the end).
    bad_audio: u64,
    audio_out: Vec<venue_sfu::bridge::AudioFrame>,
}

impl Publishing {
    /// Handles one audio tag at RTMP time `ms`: Opus packets into the bridge, the source's
    /// description into the health info when a sequence header (re)configured the
    /// transcoder, one warning per connection for audio Venue cannot take, bad frames counted.
    fn audio_tag(&mut self, app: &RtmpDeps, data: &[u8], ms: i64) {
        let session = self.bridge.session();
        self.audio_out.clear();
        match self.ingest.audio_tag(data, ms, &mut self.audio_out) {
            AudioTagOutcome::Transcoded => {}
            AudioTagOutcome::Configured(source) => {
                tracing::info!(%session, ?source, "RTMP AAC audio → Opus");
                self.info.source_audio = Some(SourceAudio {
                    codec: "AAC".into(),
                    channels: source.channels,
                    sample_rate_hz: source.sample_rate_hz,
                });
                let _ = self.bridge.set_info(self.info.clone());
            }
            AudioTagOutcome::Unsupported(what) => {
                if !self.audio_warned {
                    self.audio_warned = true;
                    tracing::warn!(%session, "RTMP audio dropped: {what}; the video goes on");
                }
            }
            AudioTagOutcome::Bad(error) => {
                self.bad_audio += 1;
                app.metrics.rtmp.bad_media.inc();
                tracing::debug!(%session, %error, "AAC frame or audio tag dropped");
            }
        }
        for packet in self.audio_out.drain(..) {
            if let Err(e) = self.bridge.send(BridgeMedia::Audio(packet)) {
                tracing::debug!(error = %e, "bridge audio dropped");
            }
        }
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

async fn connection(app: &RtmpDeps, mut stream: TcpStream, limits: Limits) -> Result<(), Closed> {
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
    app: &RtmpDeps,
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
    app: &RtmpDeps,
    publishing: Option<Publishing>,
    result: Result<(), Closed>,
) -> Result<(), Closed> {
    if let Some(p) = publishing {
        let session = p.bridge.session();
        if p.bad_audio > 0 {
            tracing::info!(%session, bad_frames = p.bad_audio, "AAC frames or audio tags dropped on this connection");
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
    app: &RtmpDeps,
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
            let room: RoomId = streamer.room_id.into();
            let p = new_participant();
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
                        kind: SessionKind::Publisher {
                            streamer: streamer.id,
                            participant: p,
                            protocol: crate::webhooks::Protocol::Rtmp,
                        },
                        etag: String::new(),
                    },
                )
                .await
                .map_err(|e| format!("state: {e}"))?;
            app.schedule.changed();
            tracing::info!(room = streamer.room_id.0, streamer = streamer.id.0, session = %bridge.session(), "RTMP publisher session created");
            *publishing = Some(Publishing {
                bridge,
                ingest: FlvIngest::new(opus),
                info,
                audio_warned: false,
                bad_audio: 0,
                audio_out: Vec::new(),
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
            match p.ingest.video_tag(&data, timestamp.value) {
                Ok(VideoTagOutcome::Frame {
                    frame,
                    b_frames_found,
                }) => {
                    if b_frames_found && !p.info.b_frames {
                        p.info.b_frames = true;
                        let _ = p.bridge.set_info(p.info.clone());
                        tracing::warn!(session = %p.bridge.session(), "the RTMP stream has B-frames (composition time offsets); WebRTC viewers may stutter — in OBS set the x264 profile to baseline or B-frames to 0");
                    }
                    if let Err(e) = p.bridge.send(BridgeMedia::Video(frame)) {
                        tracing::debug!(error = %e, "bridge frame dropped");
                    }
                }
                Ok(VideoTagOutcome::SequenceHeader | VideoTagOutcome::Ignored) => {}
                Err(e) => {
                    app.metrics.rtmp.bad_media.inc();
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
            p.audio_tag(app, &data, i64::from(timestamp.value));
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
pub async fn spawn(app: RtmpDeps, config: RtmpConfig) -> Option<SocketAddr> {
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

/// Fuzzing entry point of the connection layer: everything an RTMP peer's bytes reach before
/// the SFU, run without a socket. Used by the cargo-fuzz target `rtmp_session` in `fuzz/` and
/// by the seeded random-input test `gateway/tests/rtmp_fuzz.rs` that CI runs; the FLV tag
/// layer alone is [`venue_sfu::ingest::fuzzing::flv_tags`]. It may not panic or abort on any
/// input (a panic inside rml_rtmp is caught, as the connection task catches it).
pub mod fuzzing {
    use rml_rtmp::sessions::{
        ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
    };
    use venue_sfu::ingest::{FlvIngest, OpusSettings};

    use super::guarded;

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
        let mut ingest = FlvIngest::new(OpusSettings::default());
        let mut out = Vec::new();
        let mut tags = 0;
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
                    ServerSessionEvent::VideoDataReceived {
                        data, timestamp, ..
                    } => {
                        tags += 1;
                        let _ = ingest.video_tag(&data, timestamp.value);
                    }
                    ServerSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => {
                        tags += 1;
                        out.clear();
                        let _ = ingest.audio_tag(&data, i64::from(timestamp.value), &mut out);
                    }
                    _ => {}
                }
            }
        }
        tags
    }
}
