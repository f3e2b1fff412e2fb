//! The IO shell around a [`ShardCore`]: one OS thread, one current-thread tokio runtime and
//! one UDP socket per shard. It only moves bytes and time in and out of the core.
//!
//! Sending uses UDP generic segmentation offload (Linux `UDP_SEGMENT`, through quinn-udp):
//! consecutive datagrams to the same destination with the same size (the last may be
//! shorter) — typically the packets of one video frame to one viewer, which per-viewer
//! batching in the core puts next to each other — leave in one `sendmsg`. Where GSO is not
//! available quinn-udp reports one segment and every datagram is sent alone.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use std::io::IoSliceMut;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::api::SfuEvent;
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

/// The channels and socket of one shard.
pub struct ShardIo {
    /// The shard's socket (non-blocking std socket; registered with tokio on the shard thread).
    pub socket: std::net::UdpSocket,
    /// Commands from the control plane.
    pub commands: mpsc::Receiver<ShardCommand>,
    /// Messages from other shards.
    pub remote: mpsc::Receiver<ShardMsg>,
    /// Inboxes of the other shards.
    pub others: Vec<mpsc::Sender<ShardMsg>>,
    /// Events for the control plane.
    pub events: mpsc::Sender<SfuEvent>,
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
        mut commands,
        mut remote,
        others,
        events,
    } = io;
    socket.set_nonblocking(true)?;
    let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
    let socket = UdpSocket::from_std(socket)?;
    let mut rx = RecvBufs::new(state.gro_segments());
    let mut out = Sender {
        socket: &socket,
        state: &state,
        batch: Vec::with_capacity(64 * 1024),
        dest: None,
        segment: 0,
        count: 0,
        dropped_remote: 0,
    };
    loop {
        let timeout = flush(core, &mut out, &others, &events).await;
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
            msg = remote.recv() => {
                if let Some(m) = msg {
                    core.handle_remote(Instant::now(), m);
                    for _ in 1..RECV_BATCH {
                        match remote.try_recv() {
                            Ok(m) => core.handle_remote(Instant::now(), m),
                            Err(_) => break,
                        }
                    }
                }
            }
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
            let stride = if m.stride == 0 {
                data.len().max(1)
            } else {
                m.stride
            };
            for datagram in data.chunks(stride) {
                core.handle_datagram(now, m.addr, m.dst_ip, datagram);
            }
        }
    }
}

/// Coalesces datagrams into GSO batches and sends them.
struct Sender<'a> {
    socket: &'a UdpSocket,
    state: &'a UdpSocketState,
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
    others: &[mpsc::Sender<ShardMsg>],
    events: &mpsc::Sender<SfuEvent>,
) -> Instant {
    loop {
        match core.poll_output() {
            ShardOutput::Transmit {
                destination,
                contents,
                ..
            } => out.push(destination, &contents).await,
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
