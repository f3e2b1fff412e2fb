//! TCP and TLS clients (RFC 8656 §3.1, §12.5 framing: STUN messages and ChannelData padded to
//! 4 bytes), one code path for both: the accept loops (TLS wraps the TCP stream first), the
//! bound on open connections, and per connection a reader that frames what arrives for the
//! actor and a writer that drains what the actor sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;

use crate::core::{FiveTuple, Transport};
use crate::stun;
use crate::tls::TlsConfig;

use super::actor::{Counters, Event, Task};
use super::coalesce::Coalesce;

/// Time a new TCP connection has to send its first complete frame.
const TCP_FIRST_FRAME: Duration = Duration::from_secs(10);
/// Time a TCP connection may stay silent once it has spoken.
const TCP_IDLE: Duration = Duration::from_secs(330);
/// Bytes a stream writer takes from its queue before it flushes.
const WRITE_BATCH: usize = 16_384;

/// Shared by the TCP and TLS accept loops: the one bound on open stream connections, the
/// shell's counters and the actor's queue.
#[derive(Clone)]
pub(super) struct Streams {
    pub(super) open: Arc<AtomicUsize>,
    pub(super) max: usize,
    pub(super) counters: Arc<Counters>,
    pub(super) tx: mpsc::Sender<Event>,
}

/// How an accept loop wraps its connections before the common framing code runs.
#[derive(Clone)]
pub(super) enum Wrap {
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
pub(super) async fn accept_loop(listener: TcpListener, wrap: Wrap, streams: Streams) {
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
