//! The IO shell around a [`ShardCore`]: one OS thread, one current-thread tokio runtime and
//! one UDP socket per shard. It only moves bytes and time in and out of the core.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::api::SfuEvent;
use crate::shard::{ShardCommand, ShardCore, ShardMsg, ShardOutput};

/// Depth of each shard's inbox of messages from other shards, in messages. A full inbox drops
/// media (counted) rather than block the sending shard.
pub const REMOTE_QUEUE: usize = 8192;
/// Largest datagram read, bytes.
const RECV_BUF: usize = 2048;
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
    let socket = UdpSocket::from_std(socket)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut dropped_remote: u64 = 0;
    loop {
        let timeout = flush(core, &socket, &others, &events, &mut dropped_remote).await;
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                Some(c) => core.handle_command(Instant::now(), c),
                None => return Ok(()),
            },
            r = socket.recv_from(&mut buf) => {
                match r {
                    Ok((n, src)) => {
                        core.handle_datagram(Instant::now(), src, buf.get(..n).unwrap_or_default());
                        for _ in 1..RECV_BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, src)) => core.handle_datagram(Instant::now(), src, buf.get(..n).unwrap_or_default()),
                                Err(_) => break,
                            }
                        }
                    }
                    // ICMP port unreachable and friends surface here on Linux; not fatal.
                    Err(e) => debug!(error = %e, "recv_from"),
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

/// Performs every pending output of the core; returns its next timeout.
async fn flush(
    core: &mut ShardCore,
    socket: &UdpSocket,
    others: &[mpsc::Sender<ShardMsg>],
    events: &mpsc::Sender<SfuEvent>,
    dropped_remote: &mut u64,
) -> Instant {
    loop {
        match core.poll_output() {
            ShardOutput::Transmit {
                destination,
                contents,
                ..
            } => send(socket, destination, &contents).await,
            ShardOutput::Broadcast(msg) => {
                for o in others {
                    if o.try_send(msg.clone()).is_err() {
                        *dropped_remote += 1;
                        if dropped_remote.is_power_of_two() {
                            warn!(
                                dropped = *dropped_remote,
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
            ShardOutput::Timeout(t) => return t,
        }
    }
}

async fn send(socket: &UdpSocket, destination: SocketAddr, contents: &[u8]) {
    match socket.try_send_to(contents, destination) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            if let Err(e) = socket.send_to(contents, destination).await {
                debug!(error = %e, %destination, "send_to");
            }
        }
        Err(e) => debug!(error = %e, %destination, "send_to"),
    }
}
