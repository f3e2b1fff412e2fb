//! The shard's UDP socket: batched receive (`recvmmsg`, GRO, `IP_PKTINFO` through quinn-udp)
//! and GSO send. Consecutive datagrams to the same destination with the same size (the last
//! may be shorter) — typically the packets of one video frame to one viewer, which per-viewer
//! batching in the core puts next to each other — leave in one `sendmsg`. Where GSO is not
//! available quinn-udp reports one segment and every datagram is sent alone.
//!
//! Dual-stack sockets (`bind_ip` = `::`) report IPv4 peers as `::ffff:a.b.c.d`; the shell
//! hands the core plain IPv4 addresses ([`canonical`]) and maps them back when sending.

use std::io::{ErrorKind, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::shard::{Input, ShardCore};

/// Largest datagram read, bytes.
const RECV_BUF: usize = 2048;
/// Buffers per `recvmmsg`.
const RECV_BUFS: usize = 16;
/// Datagrams read per wake-up before the shard looks at its other inputs.
pub(super) const RECV_BATCH: usize = 64;

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

/// Receive buffers for `recvmmsg`; each holds up to `gro_segments` coalesced datagrams.
pub(super) struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBufs {
    pub(super) fn new(gro_segments: usize) -> RecvBufs {
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
pub(super) fn receive(
    core: &mut ShardCore,
    socket: &UdpSocket,
    state: &UdpSocketState,
    rx: &mut RecvBufs,
) {
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
                core.handle_input(
                    now,
                    Input::Datagram {
                        source,
                        destination_ip: dst_ip,
                        contents: datagram,
                    },
                );
            }
        }
    }
}

/// Coalesces datagrams into GSO batches and sends them.
pub(super) struct Sender<'a> {
    pub(super) socket: &'a UdpSocket,
    pub(super) state: &'a UdpSocketState,
    /// The socket is IPv6 (dual-stack): IPv4 destinations are given IPv4-mapped.
    pub(super) v6_socket: bool,
    /// Datagrams of the current batch, back to back.
    pub(super) batch: Vec<u8>,
    pub(super) dest: Option<SocketAddr>,
    /// Size of each datagram of the batch (the last may be shorter).
    pub(super) segment: usize,
    pub(super) count: usize,
    pub(super) dropped_remote: u64,
}

/// UDP payload bytes handed to the kernel by every media socket of this process (media,
/// RTCP, STUN, DTLS, SCTP); read with [`sent_bytes`].
static SENT_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// UDP payload bytes this process's media sockets sent since start (all media planes
/// together: one per process outside tests). Cluster heartbeats derive egress bit/s from it.
pub fn sent_bytes() -> u64 {
    SENT_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Largest GSO batch in bytes (the kernel limit is 64 KiB per `sendmsg`).
const MAX_BATCH_BYTES: usize = 60 * 1024;

impl Sender<'_> {
    /// Adds one datagram, sending the current batch first if this one cannot join it.
    pub(super) async fn push(&mut self, destination: SocketAddr, contents: &[u8]) {
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
    pub(super) async fn send_batch(&mut self) {
        let Some(destination) = self.dest.take() else {
            return;
        };
        let count = std::mem::take(&mut self.count);
        SENT_BYTES.fetch_add(
            self.batch.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
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
