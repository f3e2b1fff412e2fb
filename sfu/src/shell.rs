//! The IO shell around a [`ShardCore`]: one OS thread, one current-thread tokio runtime, one
//! UDP socket and (with `ice_tcp`) one ICE-TCP listener per shard. It only moves bytes and
//! time in and out of the core.
//!
//! Sending uses UDP generic segmentation offload (Linux `UDP_SEGMENT`, through quinn-udp):
//! consecutive datagrams to the same destination with the same size (the last may be
//! shorter) — typically the packets of one video frame to one viewer, which per-viewer
//! batching in the core puts next to each other — leave in one `sendmsg`. Where GSO is not
//! available quinn-udp reports one segment and every datagram is sent alone.
//!
//! ICE-TCP (RFC 6544, passive side): the listener accepts connections up to
//! `ice_tcp_max_connections` (all shards together; over that a connection is closed at once,
//! counted). Each connection is a task of the shard's runtime that splits the stream into RFC
//! 4571 frames ([`crate::framing`]) and hands them to the shard loop, which gives them to the
//! core as `Protocol::Tcp` input from the connection's remote address; the core's TCP
//! transmits go back through a bounded per-connection write queue (full → dropped, counted;
//! the shard never waits on a TCP peer). A connection is closed, and counted, when its first
//! frame is not STUN (or is over 2 KiB), a frame has length 0, the core has not answered it within
//! [`TCP_FIRST_ANSWER_TIMEOUT`], nothing arrives for [`TCP_IDLE_TIMEOUT`], or a write stalls
//! for [`TCP_WRITE_TIMEOUT`]; the core then forgets its address.
//!
//! Dual-stack sockets (`bind_ip` = `::`) report IPv4 peers as `::ffff:a.b.c.d`; the shell
//! hands the core plain IPv4 addresses ([`canonical`]) and maps them back when sending.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::io::IoSliceMut;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

use crate::api::SfuEvent;
use crate::framing::{Deframer, MAX_FRAME, encode, looks_like_stun};
use crate::shard::{ShardCommand, ShardCore, ShardMsg, ShardOutput};

/// Depth of each shard's inbox of messages from other shards, in messages. A full inbox drops
/// media (counted) rather than block the sending shard.
pub const REMOTE_QUEUE: usize = 2048;
/// Largest datagram read, bytes.
const RECV_BUF: usize = 2048;
/// Buffers per `recvmmsg`.
const RECV_BUFS: usize = 16;
/// Datagrams read per wake-up before the shard looks at its other inputs.
const RECV_BATCH: usize = 64;

/// ICE-TCP connections that have not had an answer from the core (no valid STUN Binding
/// request, RFC 6544 §10) this long after being accepted are closed.
pub const TCP_FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Answered ICE-TCP connections on which nothing arrives for this long are closed (browsers
/// send ICE consent checks every few seconds, RFC 7675).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A write to an ICE-TCP connection that makes no progress for this long closes it.
pub const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets queued for one ICE-TCP connection's writer; more are dropped (counted).
const TCP_WRITE_QUEUE: usize = 512;
/// Frames from all of a shard's ICE-TCP connections waiting for the shard loop; a full queue
/// makes the connections' readers wait (TCP flow control), never the shard.
const TCP_INBOX: usize = 1024;
/// Largest first frame of an ICE-TCP connection, bytes: it must be a STUN Binding request
/// (a few hundred bytes), so a peer that is not ICE cannot make us buffer 64 KiB.
const TCP_FIRST_FRAME_MAX: usize = 2048;
/// Bytes read from an ICE-TCP connection at once.
const TCP_READ_BUF: usize = 16 * 1024;
/// Frames coalesced into one write, bytes.
const TCP_WRITE_BATCH: usize = 64 * 1024;

/// The channels and sockets of one shard.
pub struct ShardIo {
    /// The shard's socket (non-blocking std socket; registered with tokio on the shard thread).
    pub socket: std::net::UdpSocket,
    /// The shard's ICE-TCP listener (same port number as `socket`), when ICE-TCP is on.
    pub tcp: Option<IceTcpIo>,
    /// Commands from the control plane.
    pub commands: mpsc::Receiver<ShardCommand>,
    /// Messages from other shards.
    pub remote: mpsc::Receiver<ShardMsg>,
    /// Inboxes of the other shards.
    pub others: Vec<mpsc::Sender<ShardMsg>>,
    /// Events for the control plane.
    pub events: mpsc::Sender<SfuEvent>,
}

/// The ICE-TCP side of a shard.
pub struct IceTcpIo {
    /// Listening, non-blocking std socket (registered with tokio on the shard thread).
    pub listener: std::net::TcpListener,
    /// Limits and counters shared by every shard.
    pub counters: Arc<IceTcpCounters>,
}

/// ICE-TCP connection limit and counters, shared by all shards of a media plane.
#[derive(Debug)]
pub struct IceTcpCounters {
    max: usize,
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    not_stun: AtomicU64,
    bad_frames: AtomicU64,
    unanswered: AtomicU64,
    idle: AtomicU64,
    write_stalled: AtomicU64,
    write_dropped: AtomicU64,
    unrouted: AtomicU64,
}

/// A snapshot of [`IceTcpCounters`]: connections and packets since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IceTcpStats {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted (within the limit).
    pub accepted: u64,
    /// Connections closed at once because `ice_tcp_max_connections` were open.
    pub refused: u64,
    /// Connections closed because their first frame was not STUN.
    pub not_stun: u64,
    /// Connections closed for a frame of length 0.
    pub bad_frames: u64,
    /// Connections closed because the core never answered them (no valid STUN) within
    /// [`TCP_FIRST_ANSWER_TIMEOUT`].
    pub unanswered: u64,
    /// Answered connections closed after [`TCP_IDLE_TIMEOUT`] without input.
    pub idle: u64,
    /// Connections closed because a write made no progress for [`TCP_WRITE_TIMEOUT`].
    pub write_stalled: u64,
    /// Packets dropped because a connection's write queue was full.
    pub write_dropped: u64,
    /// Packets for a TCP address with no open connection, dropped.
    pub unrouted: u64,
}

impl IceTcpCounters {
    /// Counters for at most `max_connections` open connections.
    pub fn new(max_connections: usize) -> IceTcpCounters {
        IceTcpCounters {
            max: max_connections,
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            not_stun: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            write_stalled: AtomicU64::new(0),
            write_dropped: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> IceTcpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IceTcpStats {
            open: self.open.load(Ordering::Relaxed),
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            not_stun: get(&self.not_stun),
            bad_frames: get(&self.bad_frames),
            unanswered: get(&self.unanswered),
            idle: get(&self.idle),
            write_stalled: get(&self.write_stalled),
            write_dropped: get(&self.write_dropped),
            unrouted: get(&self.unrouted),
        }
    }

    /// Takes a connection slot; `false` when `max` are open.
    fn try_open(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 peer) turned into plain IPv4; any other address unchanged.
#[inline]
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The address to give a socket of the IPv6 family (`v6_socket`) for `addr`: IPv4 becomes
/// IPv4-mapped; anything else unchanged.
#[inline]
pub fn for_socket(addr: SocketAddr, v6_socket: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => addr,
    }
}

/// Runs a shard until its command channel closes. Blocks the calling thread.
pub fn run(mut core: ShardCore, io: ShardIo) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(&mut core, io))
}

async fn run_async(core: &mut ShardCore, io: ShardIo) -> std::io::Result<()> {
    let ShardIo {
        socket,
        tcp,
        mut commands,
        mut remote,
        others,
        events,
    } = io;
    socket.set_nonblocking(true)?;
    let v6_socket = socket.local_addr()?.is_ipv6();
    let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
    let socket = UdpSocket::from_std(socket)?;
    let mut rx = RecvBufs::new(state.gro_segments());
    let mut out = Sender {
        socket: &socket,
        state: &state,
        v6_socket,
        batch: Vec::with_capacity(64 * 1024),
        dest: None,
        segment: 0,
        count: 0,
        dropped_remote: 0,
    };
    let (listener, counters) = match tcp {
        Some(t) => {
            t.listener.set_nonblocking(true)?;
            (Some(TcpListener::from_std(t.listener)?), t.counters)
        }
        None => (None, Arc::new(IceTcpCounters::new(0))),
    };
    let (tcp_tx, mut tcp_rx) = mpsc::channel(TCP_INBOX);
    let mut tcp = TcpConns {
        conns: HashMap::new(),
        inbox: tcp_tx,
        counters,
        next_id: 0,
    };
    let accept = || async {
        match &listener {
            Some(l) => l.accept().await,
            None => std::future::pending().await,
        }
    };
    loop {
        let timeout = flush(core, &mut out, &mut tcp, &others, &events).await;
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                Some(c) => core.handle_command(Instant::now(), c),
                None => return Ok(()),
            },
            r = socket.readable() => {
                match r {
                    Ok(()) => receive(core, &socket, &state, &mut rx),
                    Err(e) => debug!(error = %e, "readable"),
                }
            }
            // With one shard nobody holds a sender of `remote`: `recv` is `None` at once, and
            // the pattern turns the branch off (instead of winning every biased poll).
            Some(m) = remote.recv() => {
                core.handle_remote(Instant::now(), m);
                for _ in 1..RECV_BATCH {
                    match remote.try_recv() {
                        Ok(m) => core.handle_remote(Instant::now(), m),
                        Err(_) => break,
                    }
                }
            }
            Some(input) = tcp_rx.recv() => {
                tcp.input(core, input);
                for _ in 1..RECV_BATCH {
                    match tcp_rx.try_recv() {
                        Ok(input) => tcp.input(core, input),
                        Err(_) => break,
                    }
                }
            }
            accepted = accept() => match accepted {
                Ok((stream, peer)) => tcp.accept(core, stream, peer),
                Err(e) => {
                    // Out of file descriptors and friends: back off instead of spinning.
                    debug!(error = %e, "ICE-TCP accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tokio::time::sleep_until(timeout.into()) => {}
        }
        let now = Instant::now();
        if now >= timeout {
            core.handle_timeout(now);
        }
    }
}

/// Receive buffers for `recvmmsg`; each holds up to `gro_segments` coalesced datagrams.
struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBufs {
    fn new(gro_segments: usize) -> RecvBufs {
        let size = RECV_BUF * gro_segments.clamp(1, 64);
        RecvBufs {
            bufs: (0..RECV_BUFS).map(|_| vec![0u8; size]).collect(),
            meta: vec![RecvMeta::default(); RECV_BUFS],
        }
    }
}

/// Reads every datagram waiting on the socket (at most `RECV_BATCH` reads) into the core.
/// quinn-udp gives each datagram's local IP (`IP_PKTINFO`), which str0m needs to match the
/// local ICE candidate, and splits GRO-coalesced buffers by their stride.
fn receive(core: &mut ShardCore, socket: &UdpSocket, state: &UdpSocketState, rx: &mut RecvBufs) {
    for _ in 0..RECV_BATCH / RECV_BUFS {
        let RecvBufs { bufs, meta } = rx;
        let mut iov: [IoSliceMut<'_>; RECV_BUFS] = {
            let mut it = bufs.iter_mut();
            std::array::from_fn(|_| {
                IoSliceMut::new(it.next().map(|b| b.as_mut_slice()).unwrap_or_default())
            })
        };
        let r = socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(socket), &mut iov, meta)
        });
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // ICMP port unreachable and friends surface here on Linux; not fatal.
            Err(e) => {
                debug!(error = %e, "recv");
                return;
            }
        };
        let now = Instant::now();
        for (m, buf) in meta.iter().zip(iov.iter()).take(n) {
            let data = buf.get(..m.len).unwrap_or_default();
            let source = canonical(m.addr);
            let dst_ip = m.dst_ip.map(|ip| ip.to_canonical());
            let stride = if m.stride == 0 {
                data.len().max(1)
            } else {
                m.stride
            };
            for datagram in data.chunks(stride) {
                core.handle_datagram(now, source, dst_ip, datagram);
            }
        }
    }
}

/// Coalesces datagrams into GSO batches and sends them.
struct Sender<'a> {
    socket: &'a UdpSocket,
    state: &'a UdpSocketState,
    /// The socket is IPv6 (dual-stack): IPv4 destinations are given IPv4-mapped.
    v6_socket: bool,
    /// Datagrams of the current batch, back to back.
    batch: Vec<u8>,
    dest: Option<SocketAddr>,
    /// Size of each datagram of the batch (the last may be shorter).
    segment: usize,
    count: usize,
    dropped_remote: u64,
}

/// Largest GSO batch in bytes (the kernel limit is 64 KiB per `sendmsg`).
const MAX_BATCH_BYTES: usize = 60 * 1024;

impl Sender<'_> {
    /// Adds one datagram, sending the current batch first if this one cannot join it.
    async fn push(&mut self, destination: SocketAddr, contents: &[u8]) {
        let max_segments = self.state.max_gso_segments().min(64);
        let fits = self.dest == Some(destination)
            && self.count > 0
            // Every datagram but the last must be `segment` long.
            && self.batch.len() == self.segment * self.count
            && contents.len() <= self.segment
            && self.count < max_segments
            && self.batch.len() + contents.len() <= MAX_BATCH_BYTES;
        if !fits {
            self.send_batch().await;
            self.dest = Some(destination);
            self.segment = contents.len();
        }
        self.batch.extend_from_slice(contents);
        self.count += 1;
    }

    /// Sends the current batch, if any.
    async fn send_batch(&mut self) {
        let Some(destination) = self.dest.take() else {
            return;
        };
        let count = std::mem::take(&mut self.count);
        let destination = for_socket(destination, self.v6_socket);
        let transmit = quinn_udp::Transmit {
            destination,
            ecn: None,
            contents: &self.batch,
            segment_size: (count > 1).then_some(self.segment),
            src_ip: None,
        };
        let sent = loop {
            match self
                .state
                .try_send(UdpSockRef::from(self.socket), &transmit)
            {
                Ok(()) => break true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        debug!(error = %e, "socket not writable");
                        break false;
                    }
                }
                Err(e) => {
                    debug!(error = %e, %destination, count, "send");
                    break false;
                }
            }
        };
        // A batch the kernel refused as a whole (e.g. no GSO on the route) goes one by one.
        if !sent && count > 1 && self.segment > 0 {
            for datagram in self.batch.chunks(self.segment) {
                if let Err(e) = self.socket.try_send_to(datagram, destination) {
                    debug!(error = %e, %destination, "send_to");
                }
            }
        }
        self.batch.clear();
    }
}

/// Performs every pending output of the core; returns its next timeout.
async fn flush(
    core: &mut ShardCore,
    out: &mut Sender<'_>,
    tcp: &mut TcpConns,
    others: &[mpsc::Sender<ShardMsg>],
    events: &mpsc::Sender<SfuEvent>,
) -> Instant {
    loop {
        match core.poll_output() {
            ShardOutput::Transmit {
                proto: Protocol::Udp,
                destination,
                contents,
                ..
            } => out.push(destination, &contents).await,
            ShardOutput::Transmit {
                destination,
                contents,
                ..
            } => tcp.send(destination, contents),
            ShardOutput::Broadcast(msg) => {
                for o in others {
                    if o.try_send(msg.clone()).is_err() {
                        out.dropped_remote += 1;
                        if out.dropped_remote.is_power_of_two() {
                            warn!(
                                dropped = out.dropped_remote,
                                "inter-shard queue full, media dropped"
                            );
                        }
                    }
                }
            }
            ShardOutput::Event(e) => {
                if events.try_send(e).is_err() {
                    warn!("event queue full or closed, event dropped");
                }
            }
            ShardOutput::Timeout(t) => {
                out.send_batch().await;
                return t;
            }
        }
    }
}

/// Input from an ICE-TCP connection task to the shard loop.
#[derive(Debug)]
enum TcpInput {
    /// One frame's payload.
    Frame {
        id: u64,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        data: Vec<u8>,
    },
    /// The connection ended.
    Closed { id: u64, remote: SocketAddr },
}

/// The open ICE-TCP connections of a shard, by (plain) remote address.
struct TcpConns {
    conns: HashMap<SocketAddr, TcpConn>,
    inbox: mpsc::Sender<TcpInput>,
    counters: Arc<IceTcpCounters>,
    next_id: u64,
}

struct TcpConn {
    id: u64,
    writes: mpsc::Sender<Vec<u8>>,
}

impl TcpConns {
    /// A new connection: within the limit, it gets a task; else it is closed (counted).
    fn accept(&mut self, core: &mut ShardCore, stream: TcpStream, remote: SocketAddr) {
        let remote = canonical(remote);
        if !self.counters.try_open() {
            inc(&self.counters.refused);
            debug!(%remote, "ICE-TCP connection refused: too many open");
            return;
        }
        inc(&self.counters.accepted);
        let local_ip = stream.local_addr().ok().map(|a| a.ip().to_canonical());
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "ICE-TCP nodelay");
        }
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        // The same remote address again (another local address): the old connection's
        // address mapping goes with it.
        if self
            .conns
            .insert(remote, TcpConn { id, writes: tx })
            .is_some()
        {
            core.handle_tcp_closed(Instant::now(), remote);
        }
        trace!(%remote, ?local_ip, "ICE-TCP connection accepted");
        let guard = OpenSlot(self.counters.clone());
        tokio::spawn(connection(
            stream,
            Conn {
                id,
                remote,
                local_ip,
            },
            self.inbox.clone(),
            rx,
            guard,
        ));
    }

    /// A frame or the end of a connection, into the core.
    fn input(&mut self, core: &mut ShardCore, input: TcpInput) {
        match input {
            TcpInput::Frame {
                id,
                remote,
                local_ip,
                data,
            } => {
                if self.conns.get(&remote).is_some_and(|c| c.id == id) {
                    core.handle_tcp_frame(Instant::now(), remote, local_ip, &data);
                }
            }
            TcpInput::Closed { id, remote } => {
                if self.conns.get(&remote).is_some_and(|c| c.id == id) {
                    self.conns.remove(&remote);
                    core.handle_tcp_closed(Instant::now(), remote);
                }
            }
        }
    }

    /// Queues one packet for the connection from `destination`; never waits.
    fn send(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        let Some(conn) = self.conns.get(&destination) else {
            inc(&self.counters.unrouted);
            return;
        };
        match conn.writes.try_send(contents) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                inc(&self.counters.write_dropped);
                trace!(%destination, "ICE-TCP write queue full, packet dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => inc(&self.counters.unrouted),
        }
    }
}

/// One open connection slot; given back when the connection task ends (or is dropped with
/// the runtime).
struct OpenSlot(Arc<IceTcpCounters>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    id: u64,
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
}

/// Why a connection task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed, a read or write failed, or the shard went away.
    Closed,
    NotStun,
    BadFrame,
    Unanswered,
    Idle,
    WriteStalled,
}

/// One ICE-TCP connection: reads RFC 4571 frames into the shard's inbox and writes what the
/// shard queued, until either side ends it.
async fn connection(
    mut stream: TcpStream,
    conn: Conn,
    inbox: mpsc::Sender<TcpInput>,
    mut writes: mpsc::Receiver<Vec<u8>>,
    slot: OpenSlot,
) {
    let answered = AtomicBool::new(false);
    let (mut rd, mut wr) = stream.split();
    let reader = async {
        let accepted = tokio::time::Instant::now();
        let mut last_input = accepted;
        let mut deframer = Deframer::new(TCP_FIRST_FRAME_MAX);
        let mut buf = vec![0u8; TCP_READ_BUF];
        let mut first = true;
        loop {
            let deadline = if answered.load(Ordering::Relaxed) {
                last_input + TCP_IDLE_TIMEOUT
            } else {
                accepted + TCP_FIRST_ANSWER_TIMEOUT
            };
            let n = match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
                Err(_) => {
                    // The answer may have come while this read waited on the older deadline.
                    let now = tokio::time::Instant::now();
                    if answered.load(Ordering::Relaxed) {
                        if now < last_input + TCP_IDLE_TIMEOUT {
                            continue;
                        }
                        return End::Idle;
                    }
                    return End::Unanswered;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
                Ok(Ok(n)) => n,
            };
            last_input = tokio::time::Instant::now();
            deframer.push(buf.get(..n).unwrap_or_default());
            loop {
                let data = match deframer.next_frame() {
                    Ok(Some(frame)) => {
                        if std::mem::take(&mut first) {
                            if !looks_like_stun(frame) {
                                return End::NotStun;
                            }
                            let frame = frame.to_vec();
                            deframer.set_max_frame(MAX_FRAME);
                            frame
                        } else {
                            frame.to_vec()
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(remote = %conn.remote, error = %e, "ICE-TCP framing");
                        return End::BadFrame;
                    }
                };
                let input = TcpInput::Frame {
                    id: conn.id,
                    remote: conn.remote,
                    local_ip: conn.local_ip,
                    data,
                };
                if inbox.send(input).await.is_err() {
                    return End::Closed;
                }
            }
        }
    };
    let writer = async {
        let mut out: Vec<u8> = Vec::with_capacity(TCP_WRITE_BATCH);
        while let Some(packet) = writes.recv().await {
            out.clear();
            if encode(&packet, &mut out).is_err() {
                continue;
            }
            while out.len() < TCP_WRITE_BATCH {
                match writes.try_recv() {
                    Ok(p) => {
                        let _ = encode(&p, &mut out);
                    }
                    Err(_) => break,
                }
            }
            match tokio::time::timeout(TCP_WRITE_TIMEOUT, wr.write_all(&out)).await {
                Ok(Ok(())) => answered.store(true, Ordering::Relaxed),
                Ok(Err(_)) => return End::Closed,
                Err(_) => return End::WriteStalled,
            }
        }
        End::Closed
    };
    let end = tokio::select! {
        end = reader => end,
        end = writer => end,
    };
    let counters = &slot.0;
    match end {
        End::Closed => {}
        End::NotStun => inc(&counters.not_stun),
        End::BadFrame => inc(&counters.bad_frames),
        End::Unanswered => inc(&counters.unanswered),
        End::Idle => inc(&counters.idle),
        End::WriteStalled => inc(&counters.write_stalled),
    }
    debug!(remote = %conn.remote, ?end, "ICE-TCP connection closed");
    drop(stream);
    drop(slot);
    let _ = inbox
        .send(TcpInput::Closed {
            id: conn.id,
            remote: conn.remote,
        })
        .await;
}

#[cfg(test)]
#[path = "tests/shell.rs"]
mod tests;
