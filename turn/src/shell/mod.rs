//! The tokio IO shell around [`TurnCore`]: a UDP listener, a TCP listener and a TLS listener
//! (RFC 8656 §12.5 framing on both, one code path: the TLS listener wraps the TCP stream and
//! hands it to the same connection handler), one UDP relay socket per allocation, and one
//! actor task that owns the core and carries out its [`Output`](crate::core::Output)s. The
//! actor reads the UDP listener itself, up to 64 datagrams per wakeup straight from one
//! buffer into the core (no task hop, no copy); relay and stream tasks talk to it through a
//! bounded channel, which it also drains up to 64 events at a time. No locks. Sends that fail
//! are dropped and counted ([`Stats::send_dropped`]).
//!
//! Parts: [`actor`] (the actor, its events, relay sockets), [`stream`] (TCP and TLS clients),
//! [`coalesce`] (write coalescing under the streams). The shell reads the clock; the core
//! does not.

#![allow(clippy::disallowed_methods)]

mod actor;
mod coalesce;
mod stream;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::core::{CoreConfig, Stats, TurnCore};
use crate::tls::TlsConfig;

use self::actor::{Actor, Counters, Event, Task, bind_udp};
use self::stream::{Streams, Wrap, accept_loop};

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

/// A running TURN server; dropping it stops every task and closes every socket.
pub struct TurnServer {
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    tx: mpsc::Sender<Event>,
    _tasks: Vec<Task>,
}

/// Events queued for the actor.
const QUEUE: usize = 4096;

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
        let actor = Actor::new(
            TurnCore::new(CoreConfig {
                ipv6_relays: config.relay_ipv6.is_some(),
                ..config.core.clone()
            }),
            udp,
            counters,
            config.relay_ipv4,
            config.relay_public_ipv4,
            config.relay_ipv6,
            tx.clone(),
        );
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
