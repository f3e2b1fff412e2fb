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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, trace};

use super::udp::canonical;
use crate::framing::{Deframer, MAX_FRAME, encode, looks_like_stun};
use crate::shard::{Input, ShardCore};

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
pub(super) const TCP_INBOX: usize = 1024;
/// Largest first frame of an ICE-TCP connection, bytes: it must be a STUN Binding request
/// (a few hundred bytes), so a peer that is not ICE cannot make us buffer 64 KiB.
const TCP_FIRST_FRAME_MAX: usize = 2048;
/// Bytes read from an ICE-TCP connection at once.
const TCP_READ_BUF: usize = 16 * 1024;
/// Frames coalesced into one write, bytes.
const TCP_WRITE_BATCH: usize = 64 * 1024;

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
    pub(super) fn try_open(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }
}

pub(super) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Input from an ICE-TCP connection task to the shard loop.
#[derive(Debug)]
pub(super) enum TcpInput {
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
pub(super) struct TcpConns {
    pub(super) conns: HashMap<SocketAddr, TcpConn>,
    pub(super) inbox: mpsc::Sender<TcpInput>,
    pub(super) counters: Arc<IceTcpCounters>,
    pub(super) next_id: u64,
}

pub(super) struct TcpConn {
    pub(super) id: u64,
    pub(super) writes: mpsc::Sender<Vec<u8>>,
}

impl TcpConns {
    /// A new connection: within the limit, it gets a task; else it is closed (counted).
    pub(super) fn accept(&mut self, core: &mut ShardCore, stream: TcpStream, remote: SocketAddr) {
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
            core.handle_input(Instant::now(), Input::TcpClosed { source: remote });
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
    pub(super) fn input(&mut self, core: &mut ShardCore, input: TcpInput) {
        match input {
            TcpInput::Frame {
                id,
                remote,
                local_ip,
                data,
            } => {
                if self.conns.get(&remote).is_some_and(|c| c.id == id) {
                    core.handle_input(
                        Instant::now(),
                        Input::TcpFrame {
                            source: remote,
                            destination_ip: local_ip,
                            contents: &data,
                        },
                    );
                }
            }
            TcpInput::Closed { id, remote } => {
                if self.conns.get(&remote).is_some_and(|c| c.id == id) {
                    self.conns.remove(&remote);
                    core.handle_input(Instant::now(), Input::TcpClosed { source: remote });
                }
            }
        }
    }

    /// Queues one packet for the connection from `destination`; never waits.
    pub(super) fn send(&mut self, destination: SocketAddr, contents: Vec<u8>) {
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
pub(super) struct OpenSlot(pub(super) Arc<IceTcpCounters>);

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
