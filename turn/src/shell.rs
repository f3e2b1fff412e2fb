//! The tokio IO shell around [`TurnCore`]: a UDP listener, a TCP listener (RFC 8656 §12.5
//! framing), one UDP relay socket per allocation, and one actor task that owns the core and
//! carries out its [`Output`]s. Socket tasks talk to the actor through a bounded channel; no
//! locks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::core::{CoreConfig, FiveTuple, Output, Stats, Transport, TurnCore};
use crate::stun;

/// Shell configuration: where to listen and where relay sockets bind.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// UDP listener (default `0.0.0.0:3478`); `None` disables UDP.
    pub udp_listen: Option<SocketAddr>,
    /// TCP listener (default `0.0.0.0:3478`); `None` disables TCP.
    pub tcp_listen: Option<SocketAddr>,
    /// IPv4 address relay sockets bind to (port chosen by the OS) and advertise in
    /// XOR-RELAYED-ADDRESS. Must be an address peers (the SFU) can reach.
    pub relay_ipv4: Ipv4Addr,
    /// IPv4 address advertised in XOR-RELAYED-ADDRESS instead of `relay_ipv4` (1:1 NAT, or
    /// `relay_ipv4` unspecified); the port is the relay socket's.
    pub relay_public_ipv4: Option<Ipv4Addr>,
    /// IPv6 address for relays when REQUESTED-ADDRESS-FAMILY asks for IPv6; `None` → 440.
    pub relay_ipv6: Option<Ipv6Addr>,
    /// TCP connections open at once; more are closed on accept.
    pub max_tcp_connections: usize,
    /// The core's configuration (realm, secret, policy, quotas).
    pub core: CoreConfig,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            udp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            tcp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            relay_ipv4: Ipv4Addr::UNSPECIFIED,
            relay_public_ipv4: None,
            relay_ipv6: None,
            max_tcp_connections: 4096,
            core: CoreConfig::default(),
        }
    }
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not bind.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// "UDP" or "TCP".
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Relays would advertise 0.0.0.0: set `relay_ipv4` or `relay_public_ipv4`.
    #[error("TURN relay address unknown: set a relay IP or a public relay IP")]
    NoRelayAddress,
}

enum Event {
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
    TcpOpen {
        from: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        from: SocketAddr,
    },
    Stats(oneshot::Sender<Stats>),
}

/// Aborts its task when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running TURN server; dropping it stops every task and closes every socket.
pub struct TurnServer {
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    tx: mpsc::Sender<Event>,
    _tasks: Vec<Task>,
}

const QUEUE: usize = 4096;
/// Time a new TCP connection has to send its first complete frame.
const TCP_FIRST_FRAME: Duration = Duration::from_secs(10);
/// Time a TCP connection may stay silent once it has spoken.
const TCP_IDLE: Duration = Duration::from_secs(330);
const MAX_DATAGRAM: usize = 65_536;

impl TurnServer {
    /// Binds the listeners and starts the actor. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Bind`] when a listener cannot bind; [`Error::NoRelayAddress`] when
    /// `relay_ipv4` is unspecified and no `relay_public_ipv4` is given.
    pub async fn start(config: ShellConfig) -> Result<TurnServer, Error> {
        if config.relay_ipv4.is_unspecified() && config.relay_public_ipv4.is_none() {
            return Err(Error::NoRelayAddress);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut tasks = Vec::new();
        let mut udp = None;
        let mut udp_addr = None;
        if let Some(addr) = config.udp_listen {
            let sock = bind_udp(addr).map_err(|source| Error::Bind {
                what: "UDP",
                addr,
                source,
            })?;
            udp_addr = sock.local_addr().ok();
            let sock = Arc::new(sock);
            udp = Some(sock.clone());
            let tx = tx.clone();
            tasks.push(Task(tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let bytes = buf.get(..n).unwrap_or_default().to_vec();
                            let ev = Event::Client {
                                transport: Transport::Udp,
                                from,
                                bytes,
                            };
                            if tx.send(ev).await.is_err() {
                                return;
                            }
                        }
                        // ICMP errors (connection refused) surface here on some systems.
                        Err(e) => tracing::trace!(error = %e, "turn: UDP recv"),
                    }
                }
            })));
        }
        let mut tcp_addr = None;
        if let Some(addr) = config.tcp_listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    what: "TCP",
                    addr,
                    source,
                })?;
            tcp_addr = listener.local_addr().ok();
            let tx = tx.clone();
            let max = config.max_tcp_connections;
            tasks.push(Task(tokio::spawn(accept_loop(listener, tx, max))));
        }
        tracing::info!(udp = ?udp_addr, tcp = ?tcp_addr, realm = %config.core.realm, "TURN server listening");
        let actor = Actor {
            core: TurnCore::new(CoreConfig {
                ipv6_relays: config.relay_ipv6.is_some(),
                ..config.core.clone()
            }),
            udp,
            tcp: HashMap::new(),
            relays: HashMap::new(),
            relay_ipv4: config.relay_ipv4,
            relay_public_ipv4: config.relay_public_ipv4,
            relay_ipv6: config.relay_ipv6,
            tx: tx.clone(),
        };
        tasks.push(Task(tokio::spawn(actor.run(rx))));
        Ok(TurnServer {
            udp_addr,
            tcp_addr,
            tx,
            _tasks: tasks,
        })
    }

    /// The bound UDP listener address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The bound TCP listener address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The core's counters; `None` if the actor has stopped.
    pub async fn stats(&self) -> Option<Stats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Event::Stats(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max`/`wmem_max`): bursts
/// from many clients must not overflow the default ~200 KiB while the actor catches up.
const SOCKET_BUFFER: usize = 4 << 20;

/// A non-blocking tokio UDP socket with large send and receive buffers.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<Event>, max: usize) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "turn: TCP accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= max {
            tracing::debug!(%from, "turn: too many TCP connections");
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let tx = tx.clone();
        let open = open.clone();
        tokio::spawn(async move {
            tcp_connection(stream, from, &tx).await;
            let _ = tx.send(Event::TcpClosed { from }).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reads RFC 8656 §12.5 frames from one TCP client; returns when the connection ends or the
/// stream cannot be framed.
async fn tcp_connection(stream: TcpStream, from: SocketAddr, tx: &mpsc::Sender<Event>) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(256);
    let writer = Task(tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    }));
    if tx.send(Event::TcpOpen { from, writer: wtx }).await.is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    let mut frames = 0u64;
    loop {
        // A silent connection is closed: TCP_FIRST_FRAME before the first frame (idle
        // connections cannot hold slots), TCP_IDLE after (clients refresh permissions every
        // 300 s at the latest, RFC 8656 §9).
        let limit = if frames == 0 {
            TCP_FIRST_FRAME
        } else {
            TCP_IDLE
        };
        let n = match tokio::time::timeout(limit, rd.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            match stun::tcp_frame_len(&buf) {
                Ok(Some(len)) if buf.len() >= len => {
                    frames += 1;
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    let ev = Event::Client {
                        transport: Transport::Tcp,
                        from,
                        bytes: frame,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                Ok(_) => break,
                Err(_) => {
                    tracing::debug!(%from, "turn: unframeable TCP stream, closing");
                    drop(writer);
                    return;
                }
            }
        }
    }
    drop(writer);
}

struct Relay {
    socket: Arc<UdpSocket>,
    _reader: Task,
}

struct Actor {
    core: TurnCore,
    udp: Option<Arc<UdpSocket>>,
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    relays: HashMap<SocketAddr, Relay>,
    relay_ipv4: Ipv4Addr,
    relay_public_ipv4: Option<Ipv4Addr>,
    relay_ipv6: Option<Ipv6Addr>,
    tx: mpsc::Sender<Event>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    let now = SystemTime::now();
                    let outs = match ev {
                        Event::Client { transport, from, bytes } => {
                            self.core.handle(now, transport, from, &bytes)
                        }
                        Event::Peer { relay, from, bytes } => {
                            self.core.handle_peer(now, relay, from, &bytes)
                        }
                        Event::TcpOpen { from, writer } => {
                            self.tcp.insert(from, writer);
                            Vec::new()
                        }
                        Event::TcpClosed { from } => {
                            self.tcp.remove(&from);
                            self.core.connection_closed(FiveTuple { transport: Transport::Tcp, client: from })
                        }
                        Event::Stats(reply) => {
                            let _ = reply.send(self.core.stats());
                            Vec::new()
                        }
                    };
                    self.carry_out(outs).await;
                }
                _ = tick.tick() => {
                    let outs = self.core.expire(SystemTime::now());
                    self.carry_out(outs).await;
                }
            }
        }
    }

    async fn carry_out(&mut self, mut outs: Vec<Output>) {
        while let Some(o) = outs.pop() {
            match o {
                Output::ToClient { to, bytes } => match to.transport {
                    Transport::Udp => {
                        if let Some(udp) = &self.udp {
                            let _ = udp.try_send_to(&bytes, to.client);
                        }
                    }
                    Transport::Tcp => {
                        if let Some(w) = self.tcp.get(&to.client) {
                            let _ = w.try_send(bytes);
                        }
                    }
                },
                Output::ToPeer { relay, peer, bytes } => {
                    if let Some(r) = self.relays.get(&relay) {
                        let _ = r.socket.try_send_to(&bytes, peer);
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
