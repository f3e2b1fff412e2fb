//! The IO shell around a [`ShardCore`]: one OS thread, one current-thread tokio runtime, one
//! UDP socket (`udp.rs`: batched receive, GSO send) and (with `ice_tcp`) one ICE-TCP listener
//! (`tcp.rs`) per shard. It only moves bytes and time in and out of the core, and delivers
//! what the core answers: command replies to the `oneshot` senders it keeps by request id,
//! tap packets to the tap channels it keeps by tap id (a full tap queue drops, counted).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{UdpSockRef, UdpSocketState};
use str0m::net::Protocol;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

mod tcp;
pub mod udp;

pub use tcp::{IceTcpCounters, IceTcpIo, IceTcpStats};

use crate::api::{RoomId, SfuError, SfuEvent};
use crate::shard::{
    Command, Input, Output, Reply, RequestId, ShardCore, ShardMsg, TapId, TapPacket,
};
use tcp::{TCP_INBOX, TcpConns};
use udp::{RECV_BATCH, RecvBufs, Sender, receive};

/// Depth of each shard's inbox of messages from other shards, in messages. A full inbox drops
/// media (counted) rather than block the sending shard.
pub const REMOTE_QUEUE: usize = 2048;

/// What the control plane sends a shard (through its bounded command queue).
#[derive(Debug)]
pub enum ToShard {
    /// A command that wants no answer.
    Tell(Command),
    /// A command with a [`RequestId`] (see [`Command::request`]); the core's
    /// [`Output::Reply`] for it goes to `reply`.
    Ask {
        command: Command,
        reply: oneshot::Sender<Reply>,
    },
    /// Opens stage tap `tap` of `room`; its packets go to `tx`.
    OpenTap {
        tap: TapId,
        room: RoomId,
        tx: mpsc::Sender<TapPacket>,
    },
}

/// The channels and sockets of one shard.
pub struct ShardIo {
    /// The shard's socket (non-blocking std socket; registered with tokio on the shard thread).
    pub socket: StdUdpSocket,
    /// The shard's ICE-TCP listener (same port number as `socket`), when ICE-TCP is on.
    pub tcp: Option<IceTcpIo>,
    /// Commands from the control plane.
    pub commands: mpsc::Receiver<ToShard>,
    /// Messages from other shards.
    pub remote: mpsc::Receiver<ShardMsg>,
    /// Inboxes of the other shards.
    pub others: Vec<mpsc::Sender<ShardMsg>>,
    /// Events for the control plane.
    pub events: mpsc::Sender<SfuEvent>,
}

/// Where the core's replies and tap packets go.
#[derive(Debug, Default)]
struct Deliveries {
    replies: HashMap<RequestId, oneshot::Sender<Reply>>,
    taps: HashMap<TapId, mpsc::Sender<TapPacket>>,
    /// Tap packets dropped because the reader's queue was full (or it went away).
    tap_dropped: u64,
}

impl Deliveries {
    /// Hands a command to the core, keeping its reply sender or tap channel.
    fn command(&mut self, core: &mut ShardCore, msg: ToShard) {
        let command = match msg {
            ToShard::Tell(c) => c,
            ToShard::Ask { command, reply } => {
                if let Some(request) = command.request() {
                    self.replies.insert(request, reply);
                }
                command
            }
            ToShard::OpenTap { tap, room, tx } => {
                self.taps.insert(tap, tx);
                Command::OpenTap { tap, room }
            }
        };
        if let Command::CloseTap { tap } = &command {
            self.taps.remove(tap);
        }
        core.handle_input(Instant::now(), Input::Command(command));
    }

    fn reply(&mut self, request: RequestId, reply: Box<Reply>) {
        if let Some(tx) = self.replies.remove(&request) {
            let _ = tx.send(*reply);
        }
    }

    fn tap(&mut self, tap: TapId, packet: TapPacket) {
        if let Some(tx) = self.taps.get(&tap)
            && tx.try_send(packet).is_err()
        {
            self.tap_dropped += 1;
            if self.tap_dropped.is_power_of_two() {
                debug!(
                    dropped = self.tap_dropped,
                    "stage tap queue full, packet dropped"
                );
            }
        }
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
    let mut deliveries = Deliveries::default();
    let accept = || async {
        match &listener {
            Some(l) => l.accept().await,
            None => std::future::pending().await,
        }
    };
    loop {
        let timeout = flush(core, &mut out, &mut tcp, &mut deliveries, &others, &events).await;
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                Some(c) => deliveries.command(core, c),
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
                core.handle_input(Instant::now(), Input::Remote(m));
                for _ in 1..RECV_BATCH {
                    match remote.try_recv() {
                        Ok(m) => core.handle_input(Instant::now(), Input::Remote(m)),
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
            core.handle_input(now, Input::Timeout);
        }
    }
}

async fn flush(
    core: &mut ShardCore,
    out: &mut Sender<'_>,
    tcp: &mut TcpConns,
    deliveries: &mut Deliveries,
    others: &[mpsc::Sender<ShardMsg>],
    events: &mpsc::Sender<SfuEvent>,
) -> Instant {
    loop {
        match core.poll_output() {
            Output::Transmit {
                proto: Protocol::Udp,
                destination,
                contents,
                ..
            } => out.push(destination, &contents).await,
            Output::Transmit {
                destination,
                contents,
                ..
            } => tcp.send(destination, contents),
            Output::Broadcast(msg) => {
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
            Output::Event(e) => {
                if events.try_send(e).is_err() {
                    warn!("event queue full or closed, event dropped");
                }
            }
            Output::Reply { request, reply } => deliveries.reply(request, reply),
            Output::Tap { tap, packet } => deliveries.tap(tap, packet),
            Output::Timeout(t) => {
                out.send_batch().await;
                return t;
            }
        }
    }
}

/// Binds one shard's UDP socket on `ip:port` and, with `ice_tcp`, its TCP listener on the
/// same port number. Port 0: the UDP socket gets an ephemeral port and the listener that
/// number (retried when it is taken on TCP). IPv6 sockets are dual-stack (`IPV6_V6ONLY` off).
/// Errors: [`SfuError::Io`], the message naming the address.
pub fn bind_shard(
    ip: IpAddr,
    port: u16,
    ice_tcp: bool,
) -> Result<(StdUdpSocket, Option<StdTcpListener>), SfuError> {
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

fn bind_udp(addr: SocketAddr) -> std::io::Result<StdUdpSocket> {
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

fn bind_tcp(addr: SocketAddr) -> std::io::Result<StdTcpListener> {
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

#[cfg(test)]
#[path = "../tests/shell.rs"]
mod tests;
