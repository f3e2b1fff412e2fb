//! TURN over TLS (RFC 8656 §3.1, `turns:` URIs of RFC 7065; default port 5349, 443 is
//! common): the server's certificate, key and rustls configuration.
//!
//! rustls with the aws-lc-rs provider (the crates the gateway's HTTPS already uses), TLS 1.2
//! and 1.3. ALPN (RFC 7443): a client that offers `stun.turn` gets it echoed; a client that
//! offers only other protocols, or none, is still served without ALPN (as coturn does) —
//! rustls alone would abort such a handshake, so the shell reads the ClientHello first and
//! picks one of two configurations ([`TlsConfig::for_client_hello`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::ClientHello;

/// The ALPN protocol id of TURN (RFC 7443 §3).
pub const ALPN_TURN: &[u8] = b"stun.turn";

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no item of the expected kind.
    #[error("{key} {path}: {reason}")]
    Pem {
        /// The config key: `tls_cert` or `tls_key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate, or its algorithm
    /// is unsupported).
    #[error("tls_cert / tls_key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads a PEM certificate chain (leaf first, then intermediates) and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC) — also what the gateway's HTTPS listener loads.
///
/// # Errors
/// [`TlsError::Pem`] naming the key (`tls_cert` / `tls_key`) and the path when a file is
/// unreadable or holds no certificate / key.
pub fn read_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let pem_error = |key: &'static str, path: &Path, reason: String| TlsError::Pem {
        key,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error("tls_cert", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("tls_cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            "tls_cert",
            cert,
            "no CERTIFICATE block in the file".into(),
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("tls_key", key, e.to_string()))?;
    Ok((chain, private))
}

/// The server side of TURN over TLS: certificate chain and key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// No ALPN: for clients that offer none, or none we speak.
    plain: Arc<rustls::ServerConfig>,
    /// ALPN `stun.turn`, for clients that offer it.
    turn: Arc<rustls::ServerConfig>,
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first, then intermediates) and a PEM private key
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC).
    ///
    /// # Errors
    /// [`TlsError::Pem`] naming the key (`tls_cert` / `tls_key`) and the path when a file is
    /// unreadable or holds no certificate / key; [`TlsError::Rustls`] when the key does not
    /// fit the certificate or its algorithm is unsupported.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let (chain, private) = read_pem_files(cert, key)?;
        TlsConfig::from_der(chain, private)
    }

    /// Like [`from_pem_files`](Self::from_pem_files) from DER values already in memory.
    ///
    /// # Errors
    /// [`TlsError::Rustls`] when the key does not fit the certificate.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let plain = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let mut turn = plain.clone();
        turn.alpn_protocols = vec![ALPN_TURN.to_vec()];
        Ok(TlsConfig {
            plain: Arc::new(plain),
            turn: Arc::new(turn),
        })
    }

    /// The configuration for a client's ClientHello: ALPN `stun.turn` when the client offers
    /// it (RFC 7443), else none, so that no ALPN offer makes the handshake fail.
    pub fn for_client_hello(&self, hello: &ClientHello<'_>) -> Arc<rustls::ServerConfig> {
        let offers_turn = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ALPN_TURN));
        if offers_turn {
            self.turn.clone()
        } else {
            self.plain.clone()
        }
    }
}
