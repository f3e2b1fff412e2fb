//! Responses to a client's requests (RFC 8489 §6.3): success and error responses with
//! MESSAGE-INTEGRITY (and -SHA256 when the request used it) and FINGERPRINT, and 420 Unknown
//! Attribute for comprehension-required attributes we do not know (§14.13).

use crate::stun::{Builder, Class, Message, attr};

use super::io::{FiveTuple, Output};

/// MESSAGE-INTEGRITY (and -SHA256 when the request used it), then FINGERPRINT.
pub(super) fn finish(b: &mut Builder<'_>, key: &[u8; 16], sha256: bool) {
    b.integrity(key);
    if sha256 {
        b.integrity_sha256(key);
    }
    b.fingerprint();
}

/// Sends the success response to the authenticated request `msg` (same method and
/// transaction id): the attributes `attrs` writes, then integrity with `key` and FINGERPRINT.
pub(super) fn success(
    msg: &Message<'_>,
    ft: FiveTuple,
    key: &[u8; 16],
    attrs: impl FnOnce(&mut Builder<'_>),
    out: &mut Vec<Output>,
) {
    let mut wire = Vec::with_capacity(96);
    let mut b = Builder::new(&mut wire, msg.method, Class::Success, msg.transaction_id);
    attrs(&mut b);
    finish(&mut b, key, msg.has_integrity_sha256());
    out.push(Output::ToClient {
        to: ft,
        bytes: wire,
    });
}

/// Sends an error response; `key` adds MESSAGE-INTEGRITY (authenticated requests), `extra`
/// writes attributes after ERROR-CODE.
pub(super) fn error(
    msg: &Message<'_>,
    ft: FiveTuple,
    code: u16,
    reason: &str,
    key: Option<&[u8; 16]>,
    extra: impl FnOnce(&mut Builder<'_>),
    out: &mut Vec<Output>,
) {
    let mut wire = Vec::with_capacity(128);
    let mut b = Builder::new(&mut wire, msg.method, Class::Error, msg.transaction_id);
    b.error(code, reason);
    extra(&mut b);
    match key {
        Some(k) => finish(&mut b, k, msg.has_integrity_sha256()),
        None => {
            b.fingerprint();
        }
    }
    out.push(Output::ToClient {
        to: ft,
        bytes: wire,
    });
}

/// Answers 420 with UNKNOWN-ATTRIBUTES (RFC 8489 §14.13) when `msg` has
/// comprehension-required attributes we do not know; true when it did.
pub(super) fn unknown_attributes(
    msg: &Message<'_>,
    ft: FiveTuple,
    key: Option<&[u8; 16]>,
    out: &mut Vec<Output>,
) -> bool {
    if msg.attribute_types().all(attr::known) {
        return false;
    }
    let v: Vec<u8> = msg
        .attribute_types()
        .filter(|t| !attr::known(*t))
        .flat_map(|t| t.to_be_bytes())
        .collect();
    error(
        msg,
        ft,
        420,
        "Unknown Attribute",
        key,
        |b| {
            b.attr(attr::UNKNOWN_ATTRIBUTES, &v);
        },
        out,
    );
    true
}
