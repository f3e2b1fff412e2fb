//! A minimal sans-IO TURN client message builder (RFC 8656 §7–§12) for tests, probes and the
//! benchmark: it signs requests with the long-term credential (RFC 8489 §9.2) once the server
//! has sent REALM and NONCE. It keeps no transaction state; callers match responses.
//!
//! The same bytes go over UDP, TCP and TLS (RFC 8656 §12.5): on a stream, pass `stream = true`
//! to [`channel_data`] (padding to 4 bytes) and split what the server sends with
//! [`stun::StreamFrames`]; the caller owns the socket or TLS stream.

use std::net::SocketAddr;

use crate::auth::long_term_key;
use crate::stun::{self, Builder, Class, Message, attr, method};

/// Credentials and the server's current REALM/NONCE.
#[derive(Debug, Clone)]
pub struct Client {
    /// USERNAME (a TURN REST username).
    pub username: String,
    /// The password (the REST password).
    pub password: String,
    /// REALM learnt from a 401; empty before.
    pub realm: String,
    /// NONCE learnt from a 401/438; empty before.
    pub nonce: String,
    /// Add MESSAGE-INTEGRITY-SHA256 after MESSAGE-INTEGRITY.
    pub sha256: bool,
    next_txid: u64,
}

impl Client {
    /// A client with these credentials; REALM/NONCE are learnt with [`Client::learn`].
    pub fn new(username: &str, password: &str) -> Self {
        Client {
            username: username.into(),
            password: password.into(),
            realm: String::new(),
            nonce: String::new(),
            sha256: false,
            next_txid: 1,
        }
    }

    /// The long-term key (RFC 8489 §9.2.2).
    pub fn key(&self) -> [u8; 16] {
        long_term_key(&self.username, &self.realm, &self.password)
    }

    fn txid(&mut self) -> [u8; 12] {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(b"vtrn");
        t[4..].copy_from_slice(&self.next_txid.to_be_bytes());
        self.next_txid += 1;
        t
    }

    /// Takes REALM and NONCE from a 401/438 error response; returns the error code of any
    /// error response (`None` for a success or something unparsable).
    pub fn learn(&mut self, response: &[u8]) -> Option<u16> {
        let m = Message::parse(response).ok()?;
        if let Some(r) = m.get_str(attr::REALM) {
            self.realm = r.into();
        }
        if let Some(n) = m.get_str(attr::NONCE) {
            self.nonce = n.into();
        }
        error_code(&m)
    }

    fn request(
        &mut self,
        method: u16,
        signed: bool,
        add: impl FnOnce(&mut Builder<'_>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let txid = self.txid();
        let key = self.key();
        let mut b = Builder::new(&mut out, method, Class::Request, txid);
        add(&mut b);
        if signed {
            b.attr(attr::USERNAME, self.username.as_bytes())
                .attr(attr::REALM, self.realm.as_bytes())
                .attr(attr::NONCE, self.nonce.as_bytes())
                .integrity(&key);
            if self.sha256 {
                b.integrity_sha256(&key);
            }
        }
        b.fingerprint();
        out
    }

    /// Binding request (RFC 8489 §3).
    pub fn binding(&mut self) -> Vec<u8> {
        self.request(method::BINDING, false, |_| {})
    }

    /// Allocate for a UDP relay (RFC 8656 §7.1); unsigned before REALM/NONCE are known.
    pub fn allocate(&mut self) -> Vec<u8> {
        self.allocate_transport(17)
    }

    /// Allocate with any REQUESTED-TRANSPORT protocol number (17 UDP, 6 TCP).
    pub fn allocate_transport(&mut self, protocol: u8) -> Vec<u8> {
        let signed = !self.nonce.is_empty();
        self.request(method::ALLOCATE, signed, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[protocol, 0, 0, 0]);
        })
    }

    /// Refresh with LIFETIME `seconds` (0 deletes, RFC 8656 §8).
    pub fn refresh(&mut self, seconds: u32) -> Vec<u8> {
        self.request(method::REFRESH, true, |b| {
            b.u32(attr::LIFETIME, seconds);
        })
    }

    /// CreatePermission for `peer`'s IP (RFC 8656 §10).
    pub fn create_permission(&mut self, peer: SocketAddr) -> Vec<u8> {
        self.request(method::CREATE_PERMISSION, true, |b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, peer);
        })
    }

    /// ChannelBind `channel` (0x4000..=0x4FFF) to `peer` (RFC 8656 §12).
    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Vec<u8> {
        self.request(method::CHANNEL_BIND, true, |b| {
            b.attr(
                attr::CHANNEL_NUMBER,
                &[(channel >> 8) as u8, channel as u8, 0, 0],
            )
            .xor_addr(attr::XOR_PEER_ADDRESS, peer);
        })
    }

    /// Send indication carrying `data` to `peer` (RFC 8656 §11.1).
    pub fn send(&mut self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let txid = self.txid();
        Builder::new(&mut out, method::SEND, Class::Indication, txid)
            .xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, data);
        out
    }
}

/// ChannelData (RFC 8656 §12.4), padded to 4 bytes when `stream` (TCP or TLS, §12.5).
pub fn channel_data(channel: u16, data: &[u8], stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    stun::write_channel_data(&mut out, channel, data, stream);
    out
}

/// The ERROR-CODE of an error response (RFC 8489 §14.8), `None` otherwise.
pub fn error_code(m: &Message<'_>) -> Option<u16> {
    if m.class != Class::Error {
        return None;
    }
    let v = m.get(attr::ERROR_CODE)?;
    Some(u16::from(*v.get(2)? & 0x7) * 100 + u16::from(*v.get(3)?))
}

/// What a server sent to a client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A success response: method, XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS, LIFETIME.
    Success {
        /// Method.
        method: u16,
        /// XOR-RELAYED-ADDRESS if present.
        relayed: Option<SocketAddr>,
        /// XOR-MAPPED-ADDRESS if present.
        mapped: Option<SocketAddr>,
        /// LIFETIME if present.
        lifetime: Option<u32>,
        /// MESSAGE-INTEGRITY checked with the key given to [`decode`].
        integrity_ok: bool,
    },
    /// An error response with its code.
    Error {
        /// Method.
        method: u16,
        /// ERROR-CODE.
        code: u16,
    },
    /// A Data indication (RFC 8656 §11.4).
    Data {
        /// XOR-PEER-ADDRESS.
        peer: SocketAddr,
        /// DATA.
        data: Vec<u8>,
    },
    /// ChannelData (RFC 8656 §12.4).
    ChannelData {
        /// Channel number.
        channel: u16,
        /// Application data.
        data: Vec<u8>,
    },
    /// Anything else.
    Other,
}

/// Decodes bytes a server sent, checking MESSAGE-INTEGRITY with `key`.
pub fn decode(bytes: &[u8], key: &[u8]) -> Received {
    if stun::is_channel_data(bytes) {
        return match stun::parse_channel_data(bytes) {
            Ok((channel, data)) => Received::ChannelData {
                channel,
                data: data.to_vec(),
            },
            Err(_) => Received::Other,
        };
    }
    let Ok(m) = Message::parse(bytes) else {
        return Received::Other;
    };
    match m.class {
        Class::Success => Received::Success {
            method: m.method,
            relayed: m.get_xor_addr(attr::XOR_RELAYED_ADDRESS),
            mapped: m.get_xor_addr(attr::XOR_MAPPED_ADDRESS),
            lifetime: m.get_u32(attr::LIFETIME),
            integrity_ok: m.check_integrity(key),
        },
        Class::Error => Received::Error {
            method: m.method,
            code: error_code(&m).unwrap_or(0),
        },
        Class::Indication if m.method == method::DATA => {
            match (m.get_xor_addr(attr::XOR_PEER_ADDRESS), m.get(attr::DATA)) {
                (Some(peer), Some(d)) => Received::Data {
                    peer,
                    data: d.to_vec(),
                },
                _ => Received::Other,
            }
        }
        _ => Received::Other,
    }
}
