//! STUN message codec (RFC 8489 §5, §14, §15) and TURN's ChannelData framing (RFC 8656 §12.4).
//!
//! Parsing borrows the input and allocates nothing: a [`Message`] is the header plus up to
//! [`MAX_ATTRIBUTES`] attribute positions. Building writes into a caller's `Vec<u8>` through
//! [`Builder`]. Every length is checked before it is used; malformed input is an [`Error`],
//! never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The STUN magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// STUN header size in bytes (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;
/// Attributes kept per message; a message with more is refused as malformed.
pub const MAX_ATTRIBUTES: usize = 32;
/// FINGERPRINT XOR constant (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// STUN/TURN methods (RFC 8489 §18.2, RFC 8656 §17).
pub mod method {
    /// Binding (RFC 8489).
    pub const BINDING: u16 = 0x001;
    /// Allocate (RFC 8656 §7).
    pub const ALLOCATE: u16 = 0x003;
    /// Refresh (RFC 8656 §8).
    pub const REFRESH: u16 = 0x004;
    /// Send indication (RFC 8656 §11).
    pub const SEND: u16 = 0x006;
    /// Data indication (RFC 8656 §11).
    pub const DATA: u16 = 0x007;
    /// CreatePermission (RFC 8656 §10).
    pub const CREATE_PERMISSION: u16 = 0x008;
    /// ChannelBind (RFC 8656 §12).
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Message classes (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Request.
    Request,
    /// Indication.
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

/// Attribute types (RFC 8489 §18.3, RFC 8656 §18).
pub mod attr {
    #![allow(missing_docs)]
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub const USERHASH: u16 = 0x001E;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;

    /// Comprehension-required attributes this server understands (RFC 8489 §14: types below
    /// 0x8000 must be understood or the request answered with 420).
    pub fn known(t: u16) -> bool {
        t >= 0x8000
            || matches!(
                t,
                MAPPED_ADDRESS
                    | USERNAME
                    | MESSAGE_INTEGRITY
                    | ERROR_CODE
                    | UNKNOWN_ATTRIBUTES
                    | CHANNEL_NUMBER
                    | LIFETIME
                    | XOR_PEER_ADDRESS
                    | DATA
                    | REALM
                    | NONCE
                    | XOR_RELAYED_ADDRESS
                    | REQUESTED_ADDRESS_FAMILY
                    | EVEN_PORT
                    | REQUESTED_TRANSPORT
                    | DONT_FRAGMENT
                    | MESSAGE_INTEGRITY_SHA256
                    | PASSWORD_ALGORITHM
                    | XOR_MAPPED_ADDRESS
                    | PRIORITY
                    | USE_CANDIDATE
            )
    }
}

/// Why bytes are not a STUN message or ChannelData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the header or the declared length.
    #[error("truncated message")]
    Truncated,
    /// The two leading bits are not 00, the cookie is wrong or the length is not a multiple of 4.
    #[error("not a STUN message")]
    NotStun,
    /// An attribute runs past the end of the message.
    #[error("attribute overruns the message")]
    BadAttribute,
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("too many attributes")]
    TooManyAttributes,
    /// Something other than FINGERPRINT follows MESSAGE-INTEGRITY(-SHA256), or anything follows
    /// FINGERPRINT (RFC 8489 §14.5, §14.7).
    #[error("attribute after FINGERPRINT")]
    AttributeAfterFingerprint,
    /// FINGERPRINT present but wrong (RFC 8489 §14.7).
    #[error("wrong FINGERPRINT")]
    BadFingerprint,
    /// ChannelData with a number outside 0x4000..=0x4FFF or bad length (RFC 8656 §12.4).
    #[error("bad ChannelData")]
    BadChannelData,
}

/// One attribute's position inside the message bytes.
#[derive(Debug, Clone, Copy, Default)]
struct AttrPos {
    typ: u16,
    /// Offset of the value (after the 4-byte attribute header).
    start: u16,
    len: u16,
}

/// A parsed STUN message borrowing its bytes (RFC 8489 §5).
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    /// Method (12 bits).
    pub method: u16,
    /// Class.
    pub class: Class,
    /// Transaction id (96 bits).
    pub transaction_id: [u8; 12],
    attrs: [AttrPos; MAX_ATTRIBUTES],
    n_attrs: usize,
    /// Offset of the MESSAGE-INTEGRITY attribute header, if any.
    integrity: Option<usize>,
    /// Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, if any.
    integrity_sha256: Option<usize>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Rounds up to a multiple of 4 (attribute and TCP ChannelData padding).
pub fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a 16-bit message type into method and class (RFC 8489 §5, figure 3).
pub fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    let class = match ((t >> 7) & 0b10) | ((t >> 4) & 0b01) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

/// Joins method and class into the 16-bit message type (RFC 8489 §5).
pub fn join_type(method: u16, class: Class) -> u16 {
    let c: u16 = match class {
        Class::Request => 0,
        Class::Indication => 1,
        Class::Success => 2,
        Class::Error => 3,
    };
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
}

/// True when the first byte looks like a STUN message (leading bits 00, RFC 8656 §12.4 demux).
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xC0 == 0)
}

/// True when the first byte looks like ChannelData (leading bits 01, RFC 8656 §12.4 demux).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xC0 == 0x40)
}

/// Length in bytes of the next TCP frame at the start of `buf` (RFC 8656 §12.5: STUN messages
/// are `20 + length`, ChannelData `4 + length` padded to a multiple of 4): `Ok(None)` when
/// more bytes are needed, `Err` when the stream cannot be framed (close the connection).
pub fn tcp_frame_len(buf: &[u8]) -> Result<Option<usize>, Error> {
    let Some(len) = be16(buf, 2) else {
        return Ok(None);
    };
    let len = usize::from(len);
    if is_stun(buf) {
        if len % 4 != 0 {
            return Err(Error::NotStun);
        }
        Ok(Some(HEADER_LEN + len))
    } else if is_channel_data(buf) {
        let num = be16(buf, 0).unwrap_or(0);
        if !(0x4000..=0x4FFF).contains(&num) {
            return Err(Error::BadChannelData);
        }
        Ok(Some(4 + pad4(len)))
    } else {
        Err(Error::NotStun)
    }
}

/// Splits a TCP or TLS byte stream into frames (RFC 8656 §12.5) with [`tcp_frame_len`]: push
/// what was read, pop whole STUN messages and ChannelData (padding included). The server's
/// stream connections and the test clients share it. Holds at most one partial frame
/// (< 64 KiB + 20 bytes) besides what was last pushed.
#[derive(Debug, Default)]
pub struct StreamFrames {
    buf: Vec<u8>,
}

impl StreamFrames {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed and not yet popped as frames.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame; `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// The stream cannot be framed ([`tcp_frame_len`]): close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match tcp_frame_len(&self.buf)? {
            Some(len) if self.buf.len() >= len => Ok(Some(self.buf.drain(..len).collect())),
            _ => Ok(None),
        }
    }
}

/// Parses ChannelData (RFC 8656 §12.4): `(channel number, application data)`. Trailing
/// padding (TCP) is allowed; a declared length past the end is [`Error::Truncated`].
pub fn parse_channel_data(bytes: &[u8]) -> Result<(u16, &[u8]), Error> {
    let num = be16(bytes, 0).ok_or(Error::Truncated)?;
    let len = usize::from(be16(bytes, 2).ok_or(Error::Truncated)?);
    if !(0x4000..=0x4FFF).contains(&num) {
        return Err(Error::BadChannelData);
    }
    let data = bytes.get(4..4 + len).ok_or(Error::Truncated)?;
    if bytes.len() > 4 + pad4(len) {
        return Err(Error::BadChannelData);
    }
    Ok((num, data))
}

/// Writes ChannelData (RFC 8656 §12.4) into `out` (cleared first); `pad` adds the padding
/// TCP requires (§12.5).
pub fn write_channel_data(out: &mut Vec<u8>, channel: u16, data: &[u8], pad: bool) {
    out.clear();
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(data.len().min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(data);
    if pad {
        out.resize(4 + pad4(data.len()), 0);
    }
}

impl<'a> Message<'a> {
    /// Parses one STUN message occupying all of `bytes` (RFC 8489 §5, §14). Checks the cookie,
    /// the length, each attribute's bounds, the attribute order around MESSAGE-INTEGRITY and
    /// FINGERPRINT, and FINGERPRINT's CRC when present. MESSAGE-INTEGRITY is checked later with
    /// [`Message::check_integrity`], once the key is known.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let t = be16(bytes, 0).ok_or(Error::Truncated)?;
        let len = usize::from(be16(bytes, 2).ok_or(Error::Truncated)?);
        if t & 0xC000 != 0 || be32(bytes, 4) != Some(MAGIC_COOKIE) || len % 4 != 0 {
            return Err(Error::NotStun);
        }
        if bytes.len() != HEADER_LEN + len {
            return Err(Error::Truncated);
        }
        let (method, class) = split_type(t);
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(bytes.get(8..20).ok_or(Error::Truncated)?);
        let mut msg = Message {
            raw: bytes,
            method,
            class,
            transaction_id,
            attrs: [AttrPos::default(); MAX_ATTRIBUTES],
            n_attrs: 0,
            integrity: None,
            integrity_sha256: None,
        };
        let mut at = HEADER_LEN;
        let mut fingerprint = None;
        while at < bytes.len() {
            if fingerprint.is_some() {
                return Err(Error::AttributeAfterFingerprint);
            }
            let typ = be16(bytes, at).ok_or(Error::BadAttribute)?;
            let alen = usize::from(be16(bytes, at + 2).ok_or(Error::BadAttribute)?);
            let start = at + 4;
            if start + alen > bytes.len() {
                return Err(Error::BadAttribute);
            }
            match typ {
                attr::FINGERPRINT => {
                    if alen != 4 {
                        return Err(Error::BadAttribute);
                    }
                    fingerprint = Some(at);
                }
                attr::MESSAGE_INTEGRITY if msg.integrity.is_none() => {
                    if alen != 20 || msg.integrity_sha256.is_some() {
                        return Err(Error::BadAttribute);
                    }
                    msg.integrity = Some(at);
                }
                attr::MESSAGE_INTEGRITY_SHA256 if msg.integrity_sha256.is_none() => {
                    if !(16..=32).contains(&alen) || alen % 4 != 0 {
                        return Err(Error::BadAttribute);
                    }
                    msg.integrity_sha256 = Some(at);
                }
                _ if msg.integrity.is_some() || msg.integrity_sha256.is_some() => {
                    // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are ignored, except
                    // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT.
                }
                _ => {
                    if msg.n_attrs >= MAX_ATTRIBUTES {
                        return Err(Error::TooManyAttributes);
                    }
                    msg.attrs[msg.n_attrs] = AttrPos {
                        typ,
                        start: start as u16,
                        len: alen as u16,
                    };
                    msg.n_attrs += 1;
                }
            }
            at = start + pad4(alen);
        }
        if at != bytes.len() {
            return Err(Error::BadAttribute);
        }
        if let Some(fp) = fingerprint {
            let want = be32(bytes, fp + 4).ok_or(Error::BadAttribute)?;
            if fingerprint_crc(bytes.get(..fp).ok_or(Error::BadAttribute)?, bytes.len()) != want {
                return Err(Error::BadFingerprint);
            }
        }
        Ok(msg)
    }

    /// The value of the first attribute of type `typ` (before MESSAGE-INTEGRITY).
    pub fn get(&self, typ: u16) -> Option<&'a [u8]> {
        let a = self
            .attrs
            .iter()
            .take(self.n_attrs)
            .find(|a| a.typ == typ)?;
        let start = usize::from(a.start);
        self.raw.get(start..start + usize::from(a.len))
    }

    /// The types of attributes present, in order (before MESSAGE-INTEGRITY).
    pub fn attribute_types(&self) -> impl Iterator<Item = u16> + '_ {
        self.attrs.iter().take(self.n_attrs).map(|a| a.typ)
    }

    /// Every attribute `(type, value)` before MESSAGE-INTEGRITY, in order.
    pub fn attributes(&self) -> impl Iterator<Item = (u16, &'a [u8])> + '_ {
        let raw = self.raw;
        self.attrs.iter().take(self.n_attrs).filter_map(move |a| {
            let start = usize::from(a.start);
            Some((a.typ, raw.get(start..start + usize::from(a.len))?))
        })
    }

    /// A UTF-8 attribute (USERNAME, REALM, NONCE), `None` if absent or not UTF-8.
    pub fn get_str(&self, typ: u16) -> Option<&'a str> {
        std::str::from_utf8(self.get(typ)?).ok()
    }

    /// A 32-bit attribute (LIFETIME).
    pub fn get_u32(&self, typ: u16) -> Option<u32> {
        let v = self.get(typ)?;
        if v.len() != 4 {
            return None;
        }
        be32(v, 0)
    }

    /// An XOR-encoded address attribute (RFC 8489 §14.2), `None` if absent or malformed.
    pub fn get_xor_addr(&self, typ: u16) -> Option<SocketAddr> {
        decode_xor_addr(self.get(typ)?, &self.transaction_id)
    }

    /// True when MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some() || self.integrity_sha256.is_some()
    }

    /// True when MESSAGE-INTEGRITY-SHA256 is present (the response then carries it too).
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 if present (RFC 8489 §14.6), else MESSAGE-INTEGRITY
    /// (§14.5), with `key` (the long-term key, §9.2.2, or the short-term password). False
    /// when neither is present or the HMAC differs.
    pub fn check_integrity(&self, key: &[u8]) -> bool {
        if let Some(at) = self.integrity_sha256 {
            let Some(alen) = be16(self.raw, at + 2) else {
                return false;
            };
            let alen = usize::from(alen);
            let Some(want) = self.raw.get(at + 4..at + 4 + alen) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                return false;
            };
            hash_prefix(&mut mac, self.raw, at, at + 4 + alen);
            let got = mac.finalize().into_bytes();
            return got.get(..alen).is_some_and(|g| ct_eq(g, want));
        }
        if let Some(at) = self.integrity {
            let Some(want) = self.raw.get(at + 4..at + 24) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
                return false;
            };
            hash_prefix(&mut mac, self.raw, at, at + 24);
            return ct_eq(&mac.finalize().into_bytes(), want);
        }
        false
    }
}

/// Feeds `raw[..upto]` to `mac` with the header length rewritten to end at `end` (RFC 8489
/// §14.5: the length covers up to and including the integrity attribute).
fn hash_prefix<M: Mac>(mac: &mut M, raw: &[u8], upto: usize, end: usize) {
    let len = (end.saturating_sub(HEADER_LEN)) as u16;
    mac.update(raw.get(..2).unwrap_or_default());
    mac.update(&len.to_be_bytes());
    mac.update(raw.get(4..upto).unwrap_or_default());
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// CRC-32 of `prefix` with its header length rewritten to `total - 20`, XOR 0x5354554e
/// (RFC 8489 §14.7).
fn fingerprint_crc(prefix: &[u8], total: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(prefix.get(..2).unwrap_or_default());
    h.update(&((total - HEADER_LEN) as u16).to_be_bytes());
    h.update(prefix.get(4..).unwrap_or_default());
    h.finalize() ^ FINGERPRINT_XOR
}

pub(crate) fn decode_xor_addr(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    let family = *v.get(1)?;
    let port = be16(v, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
    match (family, v.len()) {
        (0x01, 8) => {
            let ip = be32(v, 4)? ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (0x02, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v.get(4 + i)? ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// Writes a STUN message into a `Vec<u8>` (RFC 8489 §5): header, attributes with padding,
/// then optionally MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, fixing the length each time.
pub struct Builder<'b> {
    out: &'b mut Vec<u8>,
    txid: [u8; 12],
}

impl<'b> Builder<'b> {
    /// Starts a message in `out` (cleared first).
    pub fn new(out: &'b mut Vec<u8>, method: u16, class: Class, txid: [u8; 12]) -> Self {
        out.clear();
        out.extend_from_slice(&join_type(method, class).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&txid);
        Builder { out, txid }
    }

    fn set_len(&mut self) {
        let len = (self.out.len() - HEADER_LEN) as u16;
        if let Some(b) = self.out.get_mut(2..4) {
            b.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Appends an attribute, padded to 4 bytes. Values over 65,535 bytes are cut.
    pub fn attr(&mut self, typ: u16, value: &[u8]) -> &mut Self {
        let value = value.get(..value.len().min(0xFFFF)).unwrap_or_default();
        self.out.extend_from_slice(&typ.to_be_bytes());
        self.out
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(value);
        let padded = self.out.len() + pad4(value.len()) - value.len();
        self.out.resize(padded, 0);
        self.set_len();
        self
    }

    /// Appends a 32-bit attribute (LIFETIME).
    pub fn u32(&mut self, typ: u16, v: u32) -> &mut Self {
        self.attr(typ, &v.to_be_bytes())
    }

    /// Appends an XOR-encoded address (RFC 8489 §14.2).
    pub fn xor_addr(&mut self, typ: u16, addr: SocketAddr) -> &mut Self {
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        match addr.ip() {
            IpAddr::V4(ip) => {
                let mut v = [0u8; 8];
                v[1] = 0x01;
                v[2..4].copy_from_slice(&port.to_be_bytes());
                v[4..].copy_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
                self.attr(typ, &v)
            }
            IpAddr::V6(ip) => {
                let mut v = [0u8; 20];
                v[1] = 0x02;
                v[2..4].copy_from_slice(&port.to_be_bytes());
                let mut key = [0u8; 16];
                key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                key[4..].copy_from_slice(&self.txid);
                for (i, b) in ip.octets().iter().enumerate() {
                    v[4 + i] = b ^ key[i];
                }
                self.attr(typ, &v)
            }
        }
    }

    /// Appends ERROR-CODE (RFC 8489 §14.8) with `code` (300..=699) and a reason phrase.
    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &v)
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with `key`, RFC 8489 §14.5).
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let at = self.out.len();
        if let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) {
            hash_prefix(&mut mac, self.out, at, at + 24);
            let tag = mac.finalize().into_bytes();
            self.attr(attr::MESSAGE_INTEGRITY, &tag);
        }
        self
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256 with `key`, RFC 8489 §14.6).
    pub fn integrity_sha256(&mut self, key: &[u8]) -> &mut Self {
        let at = self.out.len();
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
            hash_prefix(&mut mac, self.out, at, at + 36);
            let tag = mac.finalize().into_bytes();
            self.attr(attr::MESSAGE_INTEGRITY_SHA256, &tag);
        }
        self
    }

    /// Appends FINGERPRINT (RFC 8489 §14.7); call last.
    pub fn fingerprint(&mut self) -> &mut Self {
        let total = self.out.len() + 8;
        let crc = fingerprint_crc(self.out, total);
        self.u32(attr::FINGERPRINT, crc)
    }
}

#[cfg(test)]
#[path = "tests/stun.rs"]
mod tests;
