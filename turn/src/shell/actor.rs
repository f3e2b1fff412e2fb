//! The actor that owns the [`TurnCore`]: it reads the UDP listener itself (up to [`BATCH`]
//! datagrams per wakeup, straight from one buffer into the core), drains the events of the
//! relay and stream tasks, ticks the core's expiry once a second, and carries out the core's
//! [`Output`]s: sends to clients (UDP, or a stream's writer) and peers, binds and releases one
//! UDP relay socket per allocation. Sends that fail are dropped and counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::core::{FiveTuple, Output, Stats, Transport, TurnCore};

/// Largest datagram read (listener and relay sockets).
const MAX_DATAGRAM: usize = 65_536;
/// Events or UDP datagrams the actor takes per wakeup.
const BATCH: usize = 64;

/// What the relay and stream tasks (and [`super::TurnServer::stats`]) tell the actor.
pub(super) enum Event {
    Client {
        transport: Transport,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Peer {
        relay: SocketAddr,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    StreamOpen {
        client: FiveTuple,
        writer: mpsc::Sender<Vec<u8>>,
    },
    StreamClosed {
        client: FiveTuple,
    },
    Stats(oneshot::Sender<Stats>),
}

/// Aborts its task when dropped.
pub(super) struct Task(pub(super) JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the shell counts itself (the core never sees it); merged into [`Stats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) tls_handshakes_failed: AtomicU64,
    pub(super) connections_refused: AtomicU64,
}

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max`/`wmem_max`): bursts
/// from many clients must not overflow the default ~200 KiB while the actor catches up.
const SOCKET_BUFFER: usize = 4 << 20;

/// A non-blocking tokio UDP socket with large send and receive buffers.
pub(super) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// One datagram from the UDP listener; never ready when there is none.
async fn recv_udp(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(sock) => sock.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

struct Relay {
    socket: Arc<UdpSocket>,
    _reader: Task,
}

pub(super) struct Actor {
    core: TurnCore,
    udp: Option<Arc<UdpSocket>>,
    /// Writers of the open TCP and TLS connections.
    streams: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
    counters: Arc<Counters>,
    /// Sends that failed ([`Stats::send_dropped`]).
    send_dropped: u64,
    relays: HashMap<SocketAddr, Relay>,
    relay_ipv4: Ipv4Addr,
    relay_public_ipv4: Option<Ipv4Addr>,
    relay_ipv6: Option<Ipv6Addr>,
    tx: mpsc::Sender<Event>,
}

impl Actor {
    /// The actor for `core`: it reads the UDP listener `udp` itself, takes events on the queue
    /// that `tx` feeds, binds relay sockets on `relay_ipv4` / `relay_ipv6` (advertised as
    /// `relay_public_ipv4` where set) and merges the stream tasks' `counters` into [`Stats`].
    pub(super) fn new(
        core: TurnCore,
        udp: Option<Arc<UdpSocket>>,
        counters: Arc<Counters>,
        relay_ipv4: Ipv4Addr,
        relay_public_ipv4: Option<Ipv4Addr>,
        relay_ipv6: Option<Ipv6Addr>,
        tx: mpsc::Sender<Event>,
    ) -> Self {
        Actor {
            core,
            udp,
            streams: HashMap::new(),
            counters,
            send_dropped: 0,
            relays: HashMap::new(),
            relay_ipv4,
            relay_public_ipv4,
            relay_ipv6,
            tx,
        }
    }

    /// The actor loop: events from the relay and stream tasks, datagrams from the UDP
    /// listener (read here, in batches of up to [`BATCH`] per wakeup, straight into the core),
    /// and a once-a-second expiry tick.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut events = Vec::with_capacity(BATCH);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let udp = self.udp.clone();
        loop {
            tokio::select! {
                n = rx.recv_many(&mut events, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    for ev in events.drain(..) {
                        self.event(ev).await;
                    }
                }
                first = recv_udp(udp.as_deref(), &mut buf) => {
                    let now = SystemTime::now();
                    let mut next = first;
                    for taken in 1..=BATCH {
                        match next {
                            Ok((n, from)) => {
                                let bytes = buf.get(..n).unwrap_or_default();
                                let outs = self.core.handle(now, Transport::Udp, from, bytes);
                                self.carry_out(outs).await;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            // ICMP errors (connection refused) surface here on some systems.
                            Err(e) => tracing::trace!(error = %e, "turn: UDP recv"),
                        }
                        // Only read another datagram if it will be handled in this batch.
                        if taken == BATCH {
                            break;
                        }
                        next = match &udp {
                            Some(sock) => sock.try_recv_from(&mut buf),
                            None => break,
                        };
                    }
                }
                _ = tick.tick() => {
                    let outs = self.core.expire(SystemTime::now());
                    self.carry_out(outs).await;
                }
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        let now = SystemTime::now();
        let outs = match ev {
            Event::Client {
                transport,
                from,
                bytes,
            } => self.core.handle(now, transport, from, &bytes),
            Event::Peer { relay, from, bytes } => self.core.handle_peer(now, relay, from, &bytes),
            Event::StreamOpen { client, writer } => {
                self.streams.insert(client, writer);
                Vec::new()
            }
            Event::StreamClosed { client } => {
                self.streams.remove(&client);
                self.core.connection_closed(client)
            }
            Event::Stats(reply) => {
                let mut stats = self.core.stats();
                stats.tls_handshakes_failed =
                    self.counters.tls_handshakes_failed.load(Ordering::Relaxed);
                stats.connections_refused =
                    self.counters.connections_refused.load(Ordering::Relaxed);
                stats.send_dropped = self.send_dropped;
                let _ = reply.send(stats);
                Vec::new()
            }
        };
        self.carry_out(outs).await;
    }

    async fn carry_out(&mut self, mut outs: Vec<Output>) {
        while let Some(o) = outs.pop() {
            match o {
                Output::ToClient { to, bytes } => match to.transport {
                    Transport::Udp => {
                        if let Some(udp) = &self.udp
                            && udp.try_send_to(&bytes, to.client).is_err()
                        {
                            self.send_dropped += 1;
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        if let Some(w) = self.streams.get(&to)
                            && w.try_send(bytes).is_err()
                        {
                            self.send_dropped += 1;
                        }
                    }
                },
                Output::ToPeer { relay, peer, bytes } => {
                    if let Some(r) = self.relays.get(&relay)
                        && r.socket.try_send_to(&bytes, peer).is_err()
                    {
                        self.send_dropped += 1;
                    }
                }
                Output::BindRelay { client, ipv6 } => {
                    let ip = if ipv6 {
                        self.relay_ipv6.map(IpAddr::V6)
                    } else {
                        Some(IpAddr::V4(self.relay_ipv4))
                    };
                    let bound = match ip {
                        Some(ip) => self.bind_relay(ip).await,
                        None => Err(()),
                    };
                    let more = self.core.relay_bound(client, bound);
                    outs.extend(more);
                }
                Output::ReleaseRelay { relay } => {
                    self.relays.remove(&relay);
                }
            }
        }
    }

    async fn bind_relay(&mut self, ip: IpAddr) -> Result<SocketAddr, ()> {
        let socket = bind_udp(SocketAddr::new(ip, 0)).map_err(|e| {
            tracing::warn!(error = %e, %ip, "turn: cannot bind a relay socket");
        })?;
        let local = socket.local_addr().map_err(|_| ())?;
        // The address the core and the client know this relay by.
        let addr = match (local.ip(), self.relay_public_ipv4) {
            (IpAddr::V4(_), Some(public)) => SocketAddr::new(IpAddr::V4(public), local.port()),
            _ => local,
        };
        let socket = Arc::new(socket);
        let rs = socket.clone();
        let tx = self.tx.clone();
        let reader = Task(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match rs.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let bytes = buf.get(..n).unwrap_or_default().to_vec();
                        if tx
                            .send(Event::Peer {
                                relay: addr,
                                from,
                                bytes,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => tracing::trace!(error = %e, "turn: relay recv"),
                }
            }
        }));
        tracing::debug!(relay = %addr, "turn: relay bound");
        Ok(addr).inspect(|_| {
            self.relays.insert(
                addr,
                Relay {
                    socket,
                    _reader: reader,
                },
            );
        })
    }
}
