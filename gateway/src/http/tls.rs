//! HTTPS: the listener [`crate::App::serve_tls`] runs when `[http] tls_cert` / `tls_key` are
//! set — rustls (aws-lc-rs provider, TLS 1.2 and 1.3) with ALPN `h2` then `http/1.1`, and
//! hyper-util's auto connection builder, which speaks HTTP/2 when the client picked `h2` and
//! HTTP/1.1 otherwise (WebSocket upgrades ride HTTP/1.1; a browser that negotiated `h2` opens a
//! separate HTTP/1.1 connection for them because the server does not offer RFC 8441).
//!
//! Why tokio-rustls + hyper-util rather than axum-server: both crates are already in the tree
//! (reqwest brings them), so TLS adds no new dependency but `h2`, and the accept loop stays
//! ours — the same error policy and graceful shutdown as the plain listener, `ConnectInfo` for
//! the per-IP limits, and a handshake timeout so a silent client never holds an accept slot.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

/// A TLS handshake must finish within this time after the TCP accept, else the connection is
/// closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN protocols offered, in the server's order of preference (RFC 7301; RFC 9113 §3.2).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no item of the expected kind.
    #[error("http.{key} {path}: {reason}")]
    Pem {
        /// `tls_cert` or `tls_key`.
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("http.tls_cert / http.tls_key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server-side TLS configuration: the certificate chain and key, ALPN `h2` + `http/1.1`.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first, then intermediates) and a PEM private key
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC). Errors: [`TlsError::Pem`] naming the config key and the
    /// path when a file is unreadable or holds no certificate / key; [`TlsError::Rustls`] when
    /// the key does not fit the certificate or its algorithm is unsupported.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let (chain, private) = venue_turn::tls::read_pem_files(cert, key).map_err(|e| match e {
            venue_turn::tls::TlsError::Pem { key, path, reason } => {
                TlsError::Pem { key, path, reason }
            }
            venue_turn::tls::TlsError::Rustls(e) => TlsError::Rustls(e),
            other => TlsError::Pem {
                key: "tls_cert",
                path: cert.to_owned(),
                reason: other.to_string(),
            },
        })?;
        TlsConfig::from_der(chain, private)
    }

    /// Like [`from_pem_files`](Self::from_pem_files) from DER values already in memory.
    /// Errors: [`TlsError::Rustls`].
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(TlsConfig {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration (for tests and diagnostics).
    pub fn rustls(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then lets open
/// connections finish their in-flight requests (HTTP/2: GOAWAY; HTTP/1.1: close after the
/// current response) and returns. Each request carries `ConnectInfo<SocketAddr>` of its TCP
/// peer. Accept errors never end the server: per-connection ones are ignored, others (e.g.
/// `EMFILE`) are logged and retried after one second, as `axum::serve` does. A failed or slow
/// (> [`HANDSHAKE_TIMEOUT`]) handshake closes that connection only.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: TlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls.config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Every connection task holds a clone of `done_rx`; `done_tx.closed()` resolves when all
    // are gone.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting an HTTPS connection; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            tokio::pin!(connection);
            let result = tokio::select! {
                r = connection.as_mut() => r,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    stop_tx.send_replace(());
    done_tx.closed().await;
    Ok(())
}

/// Errors of one connection that say nothing about the listener (axum 0.8 ignores the same).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
