//! [`SfuHandle`], the thread-safe handle the control plane drives the media plane with, and
//! [`BridgeHandle`], the sending side of a bridge publisher.
//!
//! Every call sends one command over a shard's bounded `mpsc` queue (actors, not locks); those
//! that want an answer carry a [`RequestId`] and a `oneshot` the shard's shell completes when
//! the core replies.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use str0m::Candidate;
use str0m::change::SdpAnswer;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::api::{
    ChannelClass, MediaAddrs, ParticipantId, PatchOutcome, RelayOffer, RoomId, SessionAnswer,
    SessionId, SfuError, SfuEvent, SubscribeTarget,
};
use crate::bridge::BridgeMedia;
use crate::config::SfuConfig;
use crate::health::{BridgeInfo, PublisherHealth};
use crate::offer::Offer;
use crate::shard::{Command, Reply, RequestId, ShardCore, TapId, candidate_addrs};
use crate::shell::{self, IceTcpCounters, IceTcpIo, IceTcpStats, REMOTE_QUEUE, ShardIo, ToShard};
use crate::tap::{TAP_QUEUE, TapHandle};

/// Depth of each shard's command queue.
const COMMAND_QUEUE: usize = 1024;
/// Depth of the event queue towards the control plane.
const EVENT_QUEUE: usize = 65536;

/// Request ids, unique in the process.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);
/// Tap ids, unique in the process.
static NEXT_TAP: AtomicU64 = AtomicU64::new(1);

/// Thread-safe, cloneable handle to the running media plane.
#[derive(Clone, Debug)]
pub struct SfuHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<mpsc::Sender<ToShard>>,
    addrs: MediaAddrs,
    max_slots: usize,
    next_shard: AtomicUsize,
    ice_tcp: Arc<IceTcpCounters>,
}

/// `Full` → [`SfuError::Overloaded`], `Closed` → [`SfuError::Stopped`].
fn queue_error<T>(e: mpsc::error::TrySendError<T>) -> SfuError {
    match e {
        mpsc::error::TrySendError::Full(_) => SfuError::Overloaded,
        mpsc::error::TrySendError::Closed(_) => SfuError::Stopped,
    }
}

/// Sends `make(request)` to `tx` and waits for its reply, which `take` unpacks.
async fn ask<T>(
    tx: &mpsc::Sender<ToShard>,
    wait_for_room: bool,
    make: impl FnOnce(RequestId) -> Command,
    take: impl FnOnce(Reply) -> Option<Result<T, SfuError>>,
) -> Result<T, SfuError> {
    let request = RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed));
    let (reply, rx) = oneshot::channel();
    let msg = ToShard::Ask {
        command: make(request),
        reply,
    };
    if wait_for_room {
        tx.send(msg).await.map_err(|_| SfuError::Stopped)?;
    } else {
        tx.try_send(msg).map_err(queue_error)?;
    }
    let reply = rx.await.map_err(|_| SfuError::Stopped)?;
    take(reply).unwrap_or(Err(SfuError::Stopped))
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
            let (udp, tcp) = shell::bind_shard(config.bind_ip, port, config.ice_tcp)?;
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

    fn shard(&self, shard: usize) -> Result<&mpsc::Sender<ToShard>, SfuError> {
        self.inner.shards.get(shard).ok_or(SfuError::UnknownSession)
    }

    fn tell(&self, shard: usize, cmd: Command) -> Result<(), SfuError> {
        self.shard(shard)?
            .try_send(ToShard::Tell(cmd))
            .map_err(queue_error)
    }

    /// Tells every shard.
    fn tell_all(&self, cmd: impl Fn() -> Command) -> Result<(), SfuError> {
        for i in 0..self.inner.shards.len() {
            self.tell(i, cmd())?;
        }
        Ok(())
    }

    /// Accepts a WHIP publisher's offer (RFC 9725 §4.2) for `participant` in `room`. An
    /// existing session of the same participant is closed first (reconnect replaces).
    /// Errors: [`SfuError::Unsupported`] (nothing to publish, or a recvonly offer),
    /// [`SfuError::BadOffer`] (str0m refuses to answer it), [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`].
    pub async fn publish(
        &self,
        room: RoomId,
        participant: ParticipantId,
        offer: Offer,
    ) -> Result<SessionAnswer, SfuError> {
        if !offer.has_media() {
            return Err(SfuError::Unsupported(
                "the offer has no audio or video m-line".into(),
            ));
        }
        if offer.is_recv_only() {
            return Err(SfuError::Unsupported(
                "a WHIP offer must send media (sendonly)".into(),
            ));
        }
        self.tell_all(|| Command::DropParticipant { participant })?;
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        let make = |request| Command::Publish {
            request,
            session,
            room,
            participant,
            offer: Box::new(offer),
        };
        ask(self.shard(shard)?, false, make, Reply::into_answer).await
    }

    /// Accepts a WHEP viewer's recvonly offer (WHEP draft §4). For [`SubscribeTarget::Stage`]
    /// the i-th video and i-th audio m-line carry stage slot i (up to `max_slots`); an SCTP
    /// m-line opens the `venue` data channel. Errors as for [`SfuHandle::publish`].
    pub async fn subscribe(
        &self,
        room: RoomId,
        target: SubscribeTarget,
        offer: Offer,
    ) -> Result<SessionAnswer, SfuError> {
        if !offer.has_media() && !offer.has_data_channel() {
            return Err(SfuError::Unsupported(
                "the offer has no audio, video or data m-line".into(),
            ));
        }
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        let make = |request| Command::Subscribe {
            request,
            session,
            room,
            target,
            offer: Box::new(offer),
        };
        ask(self.shard(shard)?, false, make, Reply::into_answer).await
    }

    /// Opens the edge side of a relay of `room` from another node (the origin of its stage
    /// slots): one str0m session carrying, per origin stage slot, its audio and up to
    /// [`crate::RELAY_LAYERS`] simulcast layers of its video (DTLS-SRTP over UDP; the edge is
    /// the controlling ICE agent, RFC 8445 §6.1.1, with its shard's host candidates). Give
    /// [`RelayOffer::offer_sdp`] to the origin's
    /// `subscribe(room, SubscribeTarget::Relay, offer)` and its answer to
    /// [`SfuHandle::relay_answer`]. The relay's participants (one per origin slot, fresh
    /// random ids) are publishers on this node: put them on the room's stage with
    /// [`SfuHandle::set_stage`]; their packets reach every shard like a local publisher's,
    /// keyframe requests for them go upstream (PLI/FIR, throttled per layer). Events:
    /// [`SfuEvent::RelayUp`] / [`SfuEvent::RelayDown`]; [`SfuHandle::close`] ends it.
    /// Errors: [`SfuError::Overloaded`], [`SfuError::Stopped`].
    pub async fn open_relay(&self, room: RoomId) -> Result<RelayOffer, SfuError> {
        let participants: Vec<ParticipantId> = (0..self.inner.max_slots)
            .map(|_| ParticipantId(rand::random()))
            .collect();
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        let ids = participants.clone();
        let make = |request| Command::OpenRelay {
            request,
            session,
            room,
            participants: ids,
        };
        let offer_sdp = ask(self.shard(shard)?, false, make, Reply::into_relay_offer).await?;
        Ok(RelayOffer {
            session,
            offer_sdp,
            participants,
        })
    }

    /// Completes an edge relay opened with [`SfuHandle::open_relay`] with the origin's SDP
    /// answer (RFC 8866; JSEP RFC 8829 §5.3). Errors: [`SfuError::BadAnswer`] (not SDP, it
    /// does not match the offer — then the relay is closed —, the session is not a relay, or
    /// it was answered already), [`SfuError::UnknownSession`], [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`].
    pub async fn relay_answer(&self, session: SessionId, answer_sdp: &str) -> Result<(), SfuError> {
        if !answer_sdp.trim_start().starts_with("v=0") {
            return Err(SfuError::BadAnswer(
                "it must start with \"v=0\" (RFC 8866 §5)".into(),
            ));
        }
        let answer = SdpAnswer::from_sdp_string(answer_sdp)
            .map_err(|e| SfuError::BadAnswer(e.to_string()))?;
        let make = |request| Command::RelayAnswer {
            request,
            session,
            answer: Box::new(answer),
        };
        ask(
            self.shard(session.shard())?,
            false,
            make,
            Reply::into_relay_answered,
        )
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
        let make = |request| Command::Patch {
            request,
            session,
            ufrag,
            candidates,
        };
        ask(
            self.shard(session.shard())?,
            false,
            make,
            Reply::into_patched,
        )
        .await
    }

    /// Ends a session. Errors: [`SfuError::UnknownSession`].
    pub async fn close(&self, session: SessionId) -> Result<(), SfuError> {
        let make = |request| Command::Close { request, session };
        ask(
            self.shard(session.shard())?,
            false,
            make,
            Reply::into_closed,
        )
        .await
    }

    /// Points a subscriber opened with [`SubscribeTarget::Participant`] (an admin preview) at
    /// another publisher, or at none; it switches on the new source's next keyframe, without
    /// renegotiation. Nothing for other sessions. Errors: [`SfuError::UnknownSession`] (no
    /// such shard), [`SfuError::Overloaded`] (queue full), [`SfuError::Stopped`].
    pub fn retarget(
        &self,
        session: SessionId,
        participant: Option<ParticipantId>,
    ) -> Result<(), SfuError> {
        self.tell(
            session.shard(),
            Command::Retarget {
                session,
                participant,
            },
        )
    }

    /// Routes publishers to a room's stage slots: `slots[i]` is shown on slot i
    /// (`slots.len() <= max_slots`, missing entries are empty). Viewers switch without
    /// renegotiation on the new source's next keyframe.
    pub async fn set_stage(
        &self,
        room: RoomId,
        slots: Vec<Option<ParticipantId>>,
    ) -> Result<(), SfuError> {
        self.tell_all(|| Command::SetStage {
            room,
            slots: slots.clone(),
        })
    }

    /// Sets the room's state frame (an encoded `venue.v1.ServerMessage`): sent now to every
    /// subscriber's open `venue` channel in the room, and to each new one when it opens.
    pub async fn set_room_state(&self, room: RoomId, frame: Bytes) -> Result<(), SfuError> {
        self.tell_all(|| Command::SetRoomState {
            room,
            frame: frame.clone(),
        })
    }

    /// Opens a stage tap of `room` (see [`crate::tap`]): the returned handle receives every
    /// stage slot's packets, following the stage like a viewer, until it is dropped. For the
    /// compositor and recorder; read it from a thread of its own. Errors:
    /// [`SfuError::Overloaded`], [`SfuError::Stopped`].
    pub async fn open_tap(&self, room: RoomId) -> Result<TapHandle, SfuError> {
        let id = TapId(NEXT_TAP.fetch_add(1, Ordering::Relaxed));
        let shard = self
            .inner
            .shards
            .get(self.pick_shard())
            .ok_or(SfuError::Stopped)?;
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        shard
            .try_send(ToShard::OpenTap { tap: id, room, tx })
            .map_err(queue_error)?;
        Ok(TapHandle {
            id,
            rx,
            shard: shard.clone(),
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
        self.tell_all(|| Command::DropParticipant { participant })?;
        let shard = self.pick_shard();
        let session = Self::new_session(shard);
        self.tell(
            shard,
            Command::BridgeOpen {
                session,
                room,
                participant,
            },
        )?;
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
    /// [`PublisherHealth`] for the JSON shape). `Ok(None)` when the session is not a live
    /// publisher (unknown, ended, or a subscriber). Errors: [`SfuError::Overloaded`],
    /// [`SfuError::Stopped`].
    pub async fn publisher_health(
        &self,
        session: SessionId,
    ) -> Result<Option<PublisherHealth>, SfuError> {
        let Some(tx) = self.inner.shards.get(session.shard()) else {
            return Ok(None);
        };
        let make = |request| Command::PublisherHealth { request, session };
        ask(tx, false, make, Reply::into_health).await
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
        self.tell(
            session.shard(),
            Command::SendChannel {
                session,
                class,
                frame,
            },
        )
    }

    /// Sends the same frame to every subscriber of `room` whose channel is open, on every shard
    /// (encode once, fan out the same bytes).
    pub async fn broadcast_channel(
        &self,
        room: RoomId,
        class: ChannelClass,
        frame: Bytes,
    ) -> Result<(), SfuError> {
        self.tell_all(|| Command::BroadcastChannel {
            room,
            class,
            frame: frame.clone(),
        })
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

/// The sending side of a bridge publisher (see [`SfuHandle::bridge`]). Dropping it does not
/// end the session; call [`BridgeHandle::close`] (or [`SfuHandle::close`] with its session).
#[derive(Debug, Clone)]
pub struct BridgeHandle {
    session: SessionId,
    tx: mpsc::Sender<ToShard>,
}

impl BridgeHandle {
    /// The bridge's session (for `SfuHandle::close` and the `PublisherUp/Down` events).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Hands one frame to the shard without waiting. Errors: [`SfuError::Overloaded`] when the
    /// shard's queue is full (the frame is dropped: a live source must not block),
    /// [`SfuError::Stopped`].
    pub fn send(&self, media: BridgeMedia) -> Result<(), SfuError> {
        self.tx
            .try_send(ToShard::Tell(Command::BridgeMedia {
                session: self.session,
                media,
            }))
            .map_err(queue_error)
    }

    /// Tells the SFU what the bridge knows about its source that the media cannot show (the
    /// protocol, B-frames, the audio before transcoding), for
    /// [`SfuHandle::publisher_health`]. The protocol and B-frames replace what was set before;
    /// a `None` `source_audio` keeps the earlier one. Does not wait. Errors:
    /// [`SfuError::Overloaded`] when the shard's queue is full (the info is dropped; set it
    /// again), [`SfuError::Stopped`].
    pub fn set_info(&self, info: BridgeInfo) -> Result<(), SfuError> {
        self.tx
            .try_send(ToShard::Tell(Command::BridgeInfo {
                session: self.session,
                info,
            }))
            .map_err(queue_error)
    }

    /// Ends the bridge session (`PublisherDown` follows). Waits for room in the shard's queue.
    pub async fn close(self) -> Result<(), SfuError> {
        let session = self.session;
        let make = |request| Command::Close { request, session };
        ask(&self.tx, true, make, Reply::into_closed).await
    }
}
