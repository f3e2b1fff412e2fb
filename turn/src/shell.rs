//! The tokio IO shell around [`TurnCore`]: a UDP listener, a TCP listener and a TLS listener
//! (RFC 8656 §12.5 framing on both, one code path: the TLS listener wraps the TCP stream and
//! hands it to the same connection handler), one UDP relay socket per allocation, and one
//! actor task that owns the core and carries out its [`Output`]s. The actor reads the UDP
//! listener itself, up to 64 datagrams per wakeup straight from one buffer into the core
//! (no task hop, no copy); relay and stream tasks talk to it through a bounded channel, which
//! it also drains up to 64 events at a time. No locks. Sends that fail are dropped and
//! counted ([`Stats::send_dropped`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;

use crate::core::{CoreConfig, FiveTuple, Output, Stats, Transport, TurnCore};
use crate::stun;
use crate::tls::TlsConfig;

/// Shell configuration: where to listen and where relay sockets bind.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// UDP listener (default `0.0.0.0:3478`); `None` disables UDP.
    pub udp_listen: Option<SocketAddr>,
    /// TCP listener (default `0.0.0.0:3478`); `None` disables TCP.
    pub tcp_listen: Option<SocketAddr>,
    /// TURN over TLS listener (RFC 8656 §3.1); `None` (the default) disables TLS.
    pub tls: Option<TlsListen>,
    /// IPv4 address relay sockets bind to (port chosen by the OS) and advertise in
    /// XOR-RELAYED-ADDRESS. Must be an address peers (the SFU) can reach.
    pub relay_ipv4: Ipv4Addr,
    /// IPv4 address advertised in XOR-RELAYED-ADDRESS instead of `relay_ipv4` (1:1 NAT, or
    /// `relay_ipv4` unspecified); the port is the relay socket's.
    pub relay_public_ipv4: Option<Ipv4Addr>,
    /// IPv6 address for relays when REQUESTED-ADDRESS-FAMILY asks for IPv6; `None` → 440.
    pub relay_ipv6: Option<Ipv6Addr>,
    /// TCP and TLS connections open at once, both listeners together; more are closed on
    /// accept and counted in [`Stats::connections_refused`].
    pub max_tcp_connections: usize,
    /// The core's configuration (realm, secret, policy, quotas).
    pub core: CoreConfig,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            udp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            tcp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            tls: None,
            relay_ipv4: Ipv4Addr::UNSPECIFIED,
            relay_public_ipv4: None,
            relay_ipv6: None,
            max_tcp_connections: 4096,
            core: CoreConfig::default(),
        }
    }
}

/// The TURN-over-TLS listener (RFC 8656 §3.1, `turns:` URIs of RFC 7065).
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// Address to listen on (5349 is the standard port; 443 passes most firewalls).
    pub listen: SocketAddr,
    /// Certificate and key ([`TlsConfig::from_pem_files`]).
    pub config: TlsConfig,
    /// A TLS handshake must finish this long after the TCP accept, else the connection is
    /// closed and counted in [`Stats::tls_handshakes_failed`]. Default
    /// [`TLS_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
}

/// Default [`TlsListen::handshake_timeout`]: 10 s.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not bind.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// "UDP", "TCP" or "TLS".
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
    tls_addr: Option<SocketAddr>,
    tx: mpsc::Sender<Event>,
    _tasks: Vec<Task>,
}

const QUEUE: usize = 4096;
/// Time a new TCP connection has to send its first complete frame.
const TCP_FIRST_FRAME: Duration = Duration::from_secs(10);
/// Time a TCP connection may stay silent once it has spoken.
const TCP_IDLE: Duration = Duration::from_secs(330);
const MAX_DATAGRAM: usize = 65_536;
/// Events or UDP datagrams the actor takes per wakeup.
const BATCH: usize = 64;
/// Bytes a stream writer takes from its queue before it flushes.
const WRITE_BATCH: usize = 16_384;

impl TurnServer {
    /// Binds the listeners (UDP, TCP, TLS: each when configured) and starts the actor. Must
    /// run inside a tokio runtime.
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
            // The actor reads this socket itself (no task hop, no copy per datagram).
            udp = Some(Arc::new(sock));
        }
        let counters = Arc::new(Counters::default());
        let streams = Streams {
            open: Arc::new(AtomicUsize::new(0)),
            max: config.max_tcp_connections,
            counters: counters.clone(),
            tx: tx.clone(),
        };
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
            let streams = streams.clone();
            tasks.push(Task(tokio::spawn(accept_loop(
                listener,
                Wrap::Tcp,
                streams,
            ))));
        }
        let mut tls_addr = None;
        if let Some(tls) = &config.tls {
            let addr = tls.listen;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    what: "TLS",
                    addr,
                    source,
                })?;
            tls_addr = listener.local_addr().ok();
            let wrap = Wrap::Tls {
                config: tls.config.clone(),
                handshake_timeout: tls.handshake_timeout,
            };
            tasks.push(Task(tokio::spawn(accept_loop(listener, wrap, streams))));
        }
        tracing::info!(udp = ?udp_addr, tcp = ?tcp_addr, tls = ?tls_addr, realm = %config.core.realm, "TURN server listening");
        let actor = Actor {
            core: TurnCore::new(CoreConfig {
                ipv6_relays: config.relay_ipv6.is_some(),
                ..config.core.clone()
            }),
            udp,
            streams: HashMap::new(),
            counters,
            send_dropped: 0,
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
            tls_addr,
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

    /// The bound TLS listener address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The core's counters and the shell's ([`Stats::tls_handshakes_failed`],
    /// [`Stats::connections_refused`]); `None` if the actor has stopped.
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

/// Shared by the TCP and TLS accept loops: the one bound on open stream connections, the
/// shell's counters and the actor's queue.
#[derive(Clone)]
struct Streams {
    open: Arc<AtomicUsize>,
    max: usize,
    counters: Arc<Counters>,
    tx: mpsc::Sender<Event>,
}

/// What the shell counts itself (the core never sees it); merged into [`Stats`].
#[derive(Default)]
struct Counters {
    tls_handshakes_failed: AtomicU64,
    connections_refused: AtomicU64,
}

/// How an accept loop wraps its connections before the common framing code runs.
#[derive(Clone)]
enum Wrap {
    Tcp,
    Tls {
        config: TlsConfig,
        handshake_timeout: Duration,
    },
}

/// One slot of [`Streams::open`], given back when the connection's task ends or is aborted.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts TCP connections, wraps them (TLS: handshake within `handshake_timeout`) and runs
/// [`stream_connection`] on each. Connection tasks live in a `JoinSet`, so aborting this task
/// (dropping the server) closes them all.
async fn accept_loop(listener: TcpListener, wrap: Wrap, streams: Streams) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, from) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "turn: TCP accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if streams.open.load(Ordering::Relaxed) >= streams.max {
            streams
                .counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, "turn: too many TCP/TLS connections");
            continue;
        }
        let _ = stream.set_nodelay(true);
        streams.open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(streams.open.clone());
        let streams = streams.clone();
        let wrap = wrap.clone();
        conns.spawn(async move {
            let _slot = slot;
            match wrap {
                Wrap::Tcp => {
                    let client = FiveTuple {
                        transport: Transport::Tcp,
                        client: from,
                    };
                    let stream = Coalesce::new(stream, true);
                    stream_connection(stream, client, &streams.tx).await;
                }
                Wrap::Tls {
                    config,
                    handshake_timeout,
                } => {
                    let failed = match timeout(handshake_timeout, tls_accept(stream, &config)).await
                    {
                        Ok(Ok(mut tls)) => {
                            // Handshake done: from now on records are gathered until flush.
                            tls.get_mut().0.coalesce = true;
                            let client = FiveTuple {
                                transport: Transport::Tls,
                                client: from,
                            };
                            stream_connection(tls, client, &streams.tx).await;
                            return;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".to_owned(),
                    };
                    streams
                        .counters
                        .tls_handshakes_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, error = %failed, "turn: TLS handshake failed");
                }
            }
        });
    }
}

/// The server side of a TLS handshake: reads the ClientHello first to pick the ALPN
/// configuration ([`TlsConfig::for_client_hello`]), then completes the handshake. Handshake
/// messages and alerts go out unbuffered (the [`Coalesce`] is off).
async fn tls_accept(
    stream: TcpStream,
    config: &TlsConfig,
) -> std::io::Result<tokio_rustls::server::TlsStream<Coalesce<TcpStream>>> {
    let stream = Coalesce::new(stream, false);
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
    let server_config = config.for_client_hello(&start.client_hello());
    start.into_stream(server_config).await
}

/// Runs one stream client, TCP or TLS alike: registers a writer with the actor, reads
/// RFC 8656 §12.5 frames until the connection ends, goes silent or cannot be framed, then
/// tells the actor it closed.
async fn stream_connection<S>(stream: S, client: FiveTuple, tx: &mpsc::Sender<Event>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(256);
    let writer = Task(tokio::spawn(async move {
        // Each frame is one write (over TLS: one record, as naive clients that take one
        // record for one message expect); what is queued is flushed together, so with the
        // `Coalesce` underneath a batch leaves in one syscall.
        while let Some(first) = wrx.recv().await {
            let mut written = 0;
            let mut next = Some(first);
            while let Some(bytes) = next {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
                written += bytes.len();
                next = if written < WRITE_BATCH {
                    wrx.try_recv().ok()
                } else {
                    None
                };
            }
            if wr.flush().await.is_err() {
                return;
            }
        }
    }));
    if tx
        .send(Event::StreamOpen {
            client,
            writer: wtx,
        })
        .await
        .is_err()
    {
        return;
    }
    read_frames(&mut rd, client, tx).await;
    drop(writer);
    let _ = tx.send(Event::StreamClosed { client }).await;
}

/// Reads RFC 8656 §12.5 frames from one stream client into the actor's queue; returns when
/// the connection ends, stays silent too long or cannot be framed.
async fn read_frames<R>(rd: &mut R, client: FiveTuple, tx: &mpsc::Sender<Event>)
where
    R: AsyncRead + Unpin,
{
    let from = client.client;
    let mut frames = stun::StreamFrames::default();
    let mut chunk = vec![0u8; 16384];
    let mut seen = 0u64;
    loop {
        // A silent connection is closed: TCP_FIRST_FRAME before the first frame (idle
        // connections cannot hold slots), TCP_IDLE after (clients refresh permissions every
        // 300 s at the latest, RFC 8656 §9).
        let limit = if seen == 0 { TCP_FIRST_FRAME } else { TCP_IDLE };
        let n = match timeout(limit, rd.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => n,
        };
        frames.push(chunk.get(..n).unwrap_or_default());
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    seen += 1;
                    let ev = Event::Client {
                        transport: client.transport,
                        from,
                        bytes: frame,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::debug!(%from, transport = ?client.transport, "turn: unframeable stream, closing");
                    return;
                }
            }
        }
    }
}

/// A TCP stream that, while `coalesce` is on, gathers writes until `flush`, so that a batch of
/// frames (over TLS, a batch of records) leaves in one syscall. Off during the TLS handshake,
/// so that handshake messages and alerts go out as rustls writes them. Reads pass through.
struct Coalesce<S> {
    inner: S,
    coalesce: bool,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    sent: usize,
}

/// Gathered bytes past which a write first flushes.
const COALESCE_MAX: usize = 64 * 1024;

impl<S> Coalesce<S> {
    fn new(inner: S, coalesce: bool) -> Self {
        Coalesce {
            inner,
            coalesce,
            buf: Vec::new(),
            sent: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes out what was gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some(rest) = self.buf.get(self.sent..).filter(|r| !r.is_empty()) {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, rest)) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if !self.coalesce {
            ready!(self.poll_drain(cx))?;
            return Pin::new(&mut self.inner).poll_write(cx, data);
        }
        if self.buf.len() >= COALESCE_MAX {
            ready!(self.poll_drain(cx))?;
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if !self.coalesce {
            ready!(self.poll_drain(cx))?;
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        if self.buf.len() >= COALESCE_MAX {
            ready!(self.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            self.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Relay {
    socket: Arc<UdpSocket>,
    _reader: Task,
}

struct Actor {
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
    /// The actor loop: events from the relay and stream tasks, datagrams from the UDP
    /// listener (read here, in batches of up to [`BATCH`] per wakeup, straight into the core),
    /// and a once-a-second expiry tick.
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
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

#[cfg(test)]
#[path = "tests/shell.rs"]
mod tests;
