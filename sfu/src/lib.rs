//! Venue's media plane: a selective forwarding unit on str0m.
//!
//! Contract: the gateway drives it only through [`SfuHandle`] (bounded command channels,
//! `oneshot` replies) and hears back through [`SfuEvent`]s. The SFU knows nothing of HTTP or
//! the store. Protocol logic lives in sans-IO cores that take time as a parameter; only
//! `shell` does IO (one thread, one UDP socket and one ICE-TCP listener per shard).

pub mod api;
pub mod bridge;
pub mod config;
pub mod egress;
pub mod forward;
pub mod framing;
pub mod health;
pub mod ingest;
pub mod keyframe;
pub mod shard;
pub mod shell;
pub mod tap;

pub use api::*;
pub use config::SfuConfig;

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use str0m::Candidate;
use str0m::change::SdpOffer;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::shard::{MidLayout, ShardCommand, ShardCore, candidate_addrs};
use crate::shell::{IceTcpCounters, IceTcpIo, IceTcpStats, REMOTE_QUEUE, ShardIo};

/// Depth of each shard's command queue.
const COMMAND_QUEUE: usize = 1024;
/// Depth of the event queue towards the control plane.
const EVENT_QUEUE: usize = 65536;

/// Thread-safe, cloneable handle to the running media plane.
#[derive(Clone, Debug)]
pub struct SfuHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<mpsc::Sender<ShardCommand>>,
    addrs: MediaAddrs,
    max_slots: usize,
    next_shard: AtomicUsize,
    ice_tcp: Arc<IceTcpCounters>,
}

impl SfuHandle {
    /// Binds one UDP socket per shard (`base_port + i`, or ephemeral when `base_port` is 0)
    /// and, with `ice_tcp`, a TCP listener on the same port number (RFC 6544 passive
    /// candidates), then starts the shard threads. With `bind_ip` = `::` both are dual-stack.
    /// Returns the handle and the event stream. Errors: [`SfuError::Io`] when binding (the
    /// message names the address) or spawning fails.
    pub fn start(config: SfuConfig) -> Result<(SfuHandle, mpsc::Receiver<SfuEvent>), SfuError> {
        let n = match config.shards {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
        .min(64);
        let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|v| v.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_else(|_| vec![IpAddr::from([127, 0, 0, 1])]);
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        let ice_tcp = Arc::new(IceTcpCounters::new(config.ice_tcp_max_connections));
        let mut sockets = Vec::with_capacity(n);
        for i in 0..n {
            let port = if config.base_port == 0 {
                0
            } else {
                config.base_port.saturating_add(i as u16)
            };
            let (udp, tcp) = bind_shard(config.bind_ip, port, config.ice_tcp)?;
            let tcp = tcp.map(|listener| IceTcpIo {
                listener,
                counters: ice_tcp.clone(),
            });
            sockets.push((udp, tcp));
        }
        let mut remote_tx = Vec::with_capacity(n);
        let mut remote_rx = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(REMOTE_QUEUE);
            remote_tx.push(tx);
            remote_rx.push(rx);
        }
        let mut shard_tx = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        let now = Instant::now();
        for (i, ((socket, tcp), remote)) in sockets.into_iter().zip(remote_rx).enumerate() {
            let local = socket.local_addr()?;
            addrs.push(local);
            let candidates = candidate_addrs(&config, local.port(), &interfaces);
            info!(shard = i, %local, ice_tcp = tcp.is_some(), ?candidates, "media shard listening");
            let core = ShardCore::new(i, n, config.clone(), candidates, now);
            let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
            shard_tx.push(tx);
            let others = remote_tx
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, t)| t.clone())
                .collect();
            let io = ShardIo {
                socket,
                tcp,
                commands: rx,
                remote,
                others,
                events: event_tx.clone(),
            };
            std::thread::Builder::new()
                .name(format!("venue-shard-{i}"))
                .spawn(move || {
                    if let Err(e) = shell::run(core, io) {
                        tracing::error!(shard = i, error = %e, "media shard stopped");
                    }
                })?;
        }
        let inner = Inner {
            shards: shard_tx,
            addrs: MediaAddrs { shards: addrs },
            max_slots: config.max_slots,
            next_shard: AtomicUsize::new(0),
            ice_tcp,
        };
        Ok((
            SfuHandle {
                inner: Arc::new(inner),
            },
            event_rx,
        ))
    }

    fn pick_shard(&self) -> usize {
        self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % self.inner.shards.len().max(1)
    }

    fn new_session(shard: usize) -> SessionId {
        SessionId((rand::random::<u64>() & !0xff) | (shard as u64 & 0xff))
    }

    async fn send(&self, shard: usize, cmd: ShardCommand) -> Result<(), SfuError> {
        let tx = self
            .inner
            .shards
            .get(shard)
            .ok_or(SfuError::UnknownSession)?;
        tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SfuError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SfuError::Stopped,
        })
    }

    async fn call<T>(
        &self,
        shard: usize,
        make: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> ShardCommand,
    ) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.send(shard, make(tx)).await?;
        rx.await.map_err(|_| SfuError::Stopped)?
    }

    /// Accepts a WHIP publisher's offer (RFC 9725 §4.2) for `participant` in `room`. An
    /// existing session of the same participant is closed first (reconnect replaces).
    /// Errors: [`SfuError::BadOffer`] (unparseable SDP), [`SfuError::Unsupported`] (nothing to
    /// publish), [`SfuError::Overloaded`], [`SfuError::Stopped`].
    pub async fn publish(
        &self,
        room: RoomId,
        participant: ParticipantId,
        offer_sdp: &str,
    ) -> Result<SessionAnswer, SfuError> {
        let offer = parse_offer(offer_sdp)?;
        let layout = MidLayout::from_sdp(offer_sdp);
        if layout.video.is_empty() && layout.audio.is_empty() {
            return Err(SfuError::Unsupported(
                "the offer has no audio or video m-line".into(),
            ));
        }
        if offer_sdp.lines().any(|l| l.trim_end() == "a=recvonly")
            && !offer_sdp
                .lines()
                .any(|l| matches!(l.trim_end(), "a=sendonly" | "a=sendrecv"))
        {
            return Err(SfuError::Unsupported(
                "a WHIP offer must send media (sendonly)".into(),
            ));
        }
        for i in 0..self.inner.shards.len() {
            self.send(i, ShardCommand::DropParticipant { participant })
                .await?;
        }
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        self.call(shard, |reply| ShardCommand::Publish {
            session,
            room,
            participant,
            offer,
            reply,
        })
        .await
    }

    /// Accepts a WHEP viewer's recvonly offer (WHEP draft §4). For [`SubscribeTarget::Stage`]
    /// the i-th video and i-th audio m-line carry stage slot i (up to `max_slots`); an SCTP
    /// m-line opens the `venue` data channel. Errors as for [`SfuHandle::publish`].
    pub async fn subscribe(
        &self,
        room: RoomId,
        target: SubscribeTarget,
        offer_sdp: &str,
    ) -> Result<SessionAnswer, SfuError> {
        let offer = parse_offer(offer_sdp)?;
        let layout = MidLayout::from_sdp(offer_sdp);
        let has_sctp = offer_sdp.lines().any(|l| l.starts_with("m=application"));
        if layout.video.is_empty() && layout.audio.is_empty() && !has_sctp {
            return Err(SfuError::Unsupported(
                "the offer has no audio, video or data m-line".into(),
            ));
        }
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        self.call(shard, |reply| ShardCommand::Subscribe {
            session,
            room,
            target,
            offer,
            layout,
            reply,
        })
        .await
    }

    /// Applies a trickle-ICE SDP fragment (RFC 8840 §4.4, RFC 9725 §4.3.1): adds its
    /// `a=candidate` lines. A fragment whose `a=ice-ufrag` differs from the session's is an ICE
    /// restart, which Venue answers with [`SfuError::IceRestartUnsupported`] (RFC 9725 §4.3.2
    /// allows 422). Errors: [`SfuError::BadFragment`], [`SfuError::UnknownSession`].
    pub async fn patch(
        &self,
        session: SessionId,
        fragment: &str,
    ) -> Result<PatchOutcome, SfuError> {
        let mut candidates = Vec::new();
        let mut ufrag = None;
        for line in fragment
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
        {
            if let Some(c) = line
                .strip_prefix("a=candidate:")
                .or_else(|| line.strip_prefix("a=candidate"))
            {
                let full = format!("candidate:{}", c.trim_start_matches(':'));
                let cand = Candidate::from_sdp_string(&full)
                    .map_err(|e| SfuError::BadFragment(format!("bad candidate: {e}")))?;
                candidates.push(cand);
            } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
                ufrag = Some(u.to_string());
            } else if line.starts_with("a=") || line.starts_with("m=") || line.starts_with("c=") {
                // a=ice-pwd, a=mid, a=end-of-candidates, m= and c= lines: allowed, nothing to do.
            } else {
                return Err(SfuError::BadFragment(format!(
                    "unexpected line {:?}",
                    line.chars().take(60).collect::<String>()
                )));
            }
        }
        self.call(session.shard(), |reply| ShardCommand::Patch {
            session,
            ufrag,
            candidates,
            reply,
        })
        .await
    }

    /// Ends a session. Errors: [`SfuError::UnknownSession`].
    pub async fn close(&self, session: SessionId) -> Result<(), SfuError> {
        self.call(session.shard(), |reply| ShardCommand::Close {
            session,
            reply,
        })
        .await
    }

    /// Routes publishers to a room's stage slots: `slots[i]` is shown on slot i
    /// (`slots.len() <= max_slots`, missing entries are empty). Viewers switch without
    /// renegotiation on the new source's next keyframe.
    pub async fn set_stage(
        &self,
        room: RoomId,
        slots: Vec<Option<ParticipantId>>,
    ) -> Result<(), SfuError> {
        for i in 0..self.inner.shards.len() {
            self.send(
                i,
                ShardCommand::SetStage {
                    room,
                    slots: slots.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Sets the room's state frame (an encoded `venue.v1.ServerMessage`): sent now to every
    /// subscriber's open `venue` channel in the room, and to each new one when it opens.
    pub async fn set_room_state(&self, room: RoomId, frame: Bytes) -> Result<(), SfuError> {
        for i in 0..self.inner.shards.len() {
            self.send(
                i,
                ShardCommand::SetRoomState {
                    room,
                    frame: frame.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Opens a stage tap of `room` (see [`tap`]): the returned handle receives every stage
    /// slot's packets, following the stage like a viewer, until it is dropped. For the
    /// compositor and recorder; read it from a thread of its own. Errors:
    /// [`SfuError::Overloaded`], [`SfuError::Stopped`].
    pub async fn open_tap(&self, room: RoomId) -> Result<tap::TapHandle, SfuError> {
        static NEXT_TAP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_TAP.fetch_add(1, Ordering::Relaxed);
        let shard = self.pick_shard();
        let (tx, rx) = mpsc::channel(tap::TAP_QUEUE);
        self.send(shard, ShardCommand::OpenTap { id, room, tx })
            .await?;
        let shard_tx = self
            .inner
            .shards
            .get(shard)
            .cloned()
            .ok_or(SfuError::Stopped)?;
        Ok(tap::TapHandle {
            id,
            rx,
            shard: shard_tx,
        })
    }

    /// Opens a bridge publisher (RTMP ingest or another non-WebRTC source) for `participant`
    /// in `room`: an existing session of the participant is closed first, `PublisherUp` is
    /// reported at once, and frames sent through the returned [`BridgeHandle`] are packetized
    /// and forwarded like a WHIP publisher's. Errors: [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`].
    pub async fn bridge(
        &self,
        room: RoomId,
        participant: ParticipantId,
    ) -> Result<BridgeHandle, SfuError> {
        for i in 0..self.inner.shards.len() {
            self.send(i, ShardCommand::DropParticipant { participant })
                .await?;
        }
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        self.send(
            shard,
            ShardCommand::BridgeOpen {
                session,
                room,
                participant,
            },
        )
        .await?;
        let tx = self
            .inner
            .shards
            .get(shard)
            .cloned()
            .ok_or(SfuError::Stopped)?;
        Ok(BridgeHandle { session, tx })
    }

    /// The health of a publisher session (WHIP or bridge): protocol, video layers (codec,
    /// `profile-level-id`, size, fps, bit/s, keyframe interval), audio (codec, channels, sample
    /// rate, bit/s, the bridge's source audio), ingress packet loss, B-frames and warnings (see
    /// [`health::PublisherHealth`] for the JSON shape). `Ok(None)` when the session is not a
    /// live publisher (unknown, ended, or a subscriber). Errors: [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`].
    pub async fn publisher_health(
        &self,
        session: SessionId,
    ) -> Result<Option<health::PublisherHealth>, SfuError> {
        if session.shard() >= self.inner.shards.len() {
            return Ok(None);
        }
        self.call(session.shard(), |reply| ShardCommand::PublisherHealth {
            session,
            reply,
        })
        .await
    }

    /// Sends one frame to one subscriber's data channel (see [`ChannelClass`]). Fire and
    /// forget: a session without an open channel drops it. Errors: [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`]; an unknown session is not an error (it may have just left).
    pub async fn send_channel(
        &self,
        session: SessionId,
        class: ChannelClass,
        frame: Bytes,
    ) -> Result<(), SfuError> {
        self.send(
            session.shard(),
            ShardCommand::SendChannel {
                session,
                class,
                frame,
            },
        )
        .await
    }

    /// Sends the same frame to every subscriber of `room` whose channel is open, on every shard
    /// (encode once, fan out the same bytes).
    pub async fn broadcast_channel(
        &self,
        room: RoomId,
        class: ChannelClass,
        frame: Bytes,
    ) -> Result<(), SfuError> {
        for i in 0..self.inner.shards.len() {
            self.send(
                i,
                ShardCommand::BroadcastChannel {
                    room,
                    class,
                    frame: frame.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Local addresses of the shards.
    pub fn addrs(&self) -> MediaAddrs {
        self.inner.addrs.clone()
    }

    /// Stage slots per room (K).
    pub fn max_slots(&self) -> usize {
        self.inner.max_slots
    }

    /// ICE-TCP connections and packets since start, all shards together (for metrics).
    pub fn ice_tcp_stats(&self) -> IceTcpStats {
        self.inner.ice_tcp.snapshot()
    }
}

/// Binds one shard's UDP socket on `ip:port` and, with `ice_tcp`, its TCP listener on the
/// same port number. Port 0: the UDP socket gets an ephemeral port and the listener that
/// number (retried when it is taken on TCP). IPv6 sockets are dual-stack (`IPV6_V6ONLY` off).
fn bind_shard(
    ip: IpAddr,
    port: u16,
    ice_tcp: bool,
) -> Result<(UdpSocket, Option<TcpListener>), SfuError> {
    let context = |what: &str, addr: SocketAddr, e: std::io::Error| {
        SfuError::Io(std::io::Error::new(
            e.kind(),
            format!("media {what} socket on {addr}: {e}"),
        ))
    };
    let tries = if port == 0 && ice_tcp { 32 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let addr = SocketAddr::new(ip, port);
        let udp = bind_udp(addr).map_err(|e| context("UDP", addr, e))?;
        if !ice_tcp {
            return Ok((udp, None));
        }
        let tcp_addr = SocketAddr::new(ip, udp.local_addr()?.port());
        match bind_tcp(tcp_addr) {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            Err(e) => last = Some(context("ICE-TCP", tcp_addr, e)),
        }
    }
    Err(last.unwrap_or_else(|| SfuError::Io(std::io::ErrorKind::AddrInUse.into())))
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // A restarted server gets its port back while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The sending side of a bridge publisher (see [`SfuHandle::bridge`]). Dropping it does not
/// end the session; call [`BridgeHandle::close`] (or [`SfuHandle::close`] with its session).
#[derive(Debug, Clone)]
pub struct BridgeHandle {
    session: SessionId,
    tx: mpsc::Sender<ShardCommand>,
}

impl BridgeHandle {
    /// The bridge's session (for `SfuHandle::close` and the `PublisherUp/Down` events).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Hands one frame to the shard without waiting. Errors: [`SfuError::Overloaded`] when the
    /// shard's queue is full (the frame is dropped: a live source must not block),
    /// [`SfuError::Stopped`].
    pub fn send(&self, media: bridge::BridgeMedia) -> Result<(), SfuError> {
        self.tx
            .try_send(ShardCommand::BridgeMedia {
                session: self.session,
                media,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SfuError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => SfuError::Stopped,
            })
    }

    /// Tells the SFU what the bridge knows about its source that the media cannot show (the
    /// protocol, B-frames, the audio before transcoding), for
    /// [`SfuHandle::publisher_health`]. The protocol and B-frames replace what was set before;
    /// a `None` `source_audio` keeps the earlier one. Does not wait. Errors:
    /// [`SfuError::Overloaded`] when the shard's queue is full (the info is dropped; set it
    /// again), [`SfuError::Stopped`].
    pub fn set_info(&self, info: health::BridgeInfo) -> Result<(), SfuError> {
        self.tx
            .try_send(ShardCommand::BridgeInfo {
                session: self.session,
                info,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SfuError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => SfuError::Stopped,
            })
    }

    /// Ends the bridge session (`PublisherDown` follows).
    pub async fn close(self) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ShardCommand::Close {
                session: self.session,
                reply,
            })
            .await
            .map_err(|_| SfuError::Stopped)?;
        rx.await.map_err(|_| SfuError::Stopped)?
    }
}

/// Parses an SDP offer. Errors: [`SfuError::BadOffer`] with the parser's reason.
fn parse_offer(sdp: &str) -> Result<SdpOffer, SfuError> {
    if !sdp.starts_with("v=0") {
        return Err(SfuError::BadOffer("an SDP body starts with \"v=0\"".into()));
    }
    SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadOffer(e.to_string()))
}
