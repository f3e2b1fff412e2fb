//! Credentials: the TURN REST time-limited scheme (draft-uberti-behave-turn-rest-00 §2.2), the
//! long-term key (RFC 8489 §9.2.2) and stateless nonces with an expiry (RFC 8489 §9.2).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Digest as _;
use sha1::Sha1;

/// Issues TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2): username
/// `"<expiry unix seconds>:<id>"` with expiry `now + ttl`, password
/// `base64(HMAC-SHA1(secret, username))`. `id` names the user for quotas (Venue: the session);
/// a `:` inside it is kept. coturn's `use-auth-secret` accepts the same pair.
pub fn rest_credentials(
    secret: &[u8],
    id: &str,
    ttl: Duration,
    now: SystemTime,
) -> (String, String) {
    let expiry = unix_secs(now).saturating_add(ttl.as_secs());
    let username = format!("{expiry}:{id}");
    let password = rest_password(secret, &username);
    (username, password)
}

/// The REST password of `username`: `base64(HMAC-SHA1(secret, username))` (standard alphabet,
/// padded).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let tag = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    base64::engine::general_purpose::STANDARD.encode(tag)
}

/// Seconds since the UNIX epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a REST username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not `<unix seconds>[:<id>]`.
    #[error("username is not <expiry>:<id>")]
    Malformed,
    /// The expiry is in the past.
    #[error("credential expired")]
    Expired,
}

/// Checks a REST username's shape and expiry at `now`; returns the user id (the part after
/// the first `:`, empty if none) for quotas.
pub fn check_rest_username(username: &str, now: SystemTime) -> Result<&str, CredentialError> {
    let (expiry, id) = username.split_once(':').unwrap_or((username, ""));
    let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    if expiry < unix_secs(now) {
        return Err(CredentialError::Expired);
    }
    Ok(id)
}

/// The long-term key `MD5(username ":" realm ":" password)` (RFC 8489 §9.2.2, MD5 algorithm;
/// the strings are used as given, REST usernames and passwords are ASCII).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = md5::Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&h.finalize());
    key
}

/// Stateless nonces (RFC 8489 §9.2): `"<expiry hex>-<HMAC-SHA1(key, expiry) hex, 8 bytes>"`.
/// Anyone can read the expiry, nobody without the key can make one.
#[derive(Clone)]
pub struct Nonces {
    key: Vec<u8>,
    ttl: Duration,
}

/// What a received nonce is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Ours and not expired.
    Valid,
    /// Not ours, malformed or expired: answer 438 Stale Nonce (RFC 8489 §9.2.4).
    Stale,
}

impl Nonces {
    /// Nonces signed with `key`, valid for `ttl`.
    pub fn new(key: &[u8], ttl: Duration) -> Self {
        Nonces {
            key: key.to_vec(),
            ttl,
        }
    }

    fn tag(&self, expiry: u64) -> u64 {
        match Hmac::<Sha1>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(&expiry.to_be_bytes());
                let t = mac.finalize().into_bytes();
                let mut b = [0u8; 8];
                b.copy_from_slice(t.get(..8).unwrap_or(&[0; 8]));
                u64::from_be_bytes(b)
            }
            Err(_) => 0,
        }
    }

    /// A fresh nonce valid until `now + ttl`.
    pub fn issue(&self, now: SystemTime) -> String {
        let expiry = unix_secs(now).saturating_add(self.ttl.as_secs());
        format!("{expiry:x}-{:016x}", self.tag(expiry))
    }

    /// Checks a nonce received at `now`.
    pub fn check(&self, nonce: &str, now: SystemTime) -> NonceState {
        let Some((e, t)) = nonce.split_once('-') else {
            return NonceState::Stale;
        };
        let (Ok(expiry), Ok(tag)) = (u64::from_str_radix(e, 16), u64::from_str_radix(t, 16)) else {
            return NonceState::Stale;
        };
        if tag != self.tag(expiry) || expiry < unix_secs(now) {
            return NonceState::Stale;
        }
        NonceState::Valid
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rest_credentials_shape_and_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (u, p) = rest_credentials(b"secret", "sess-7", Duration::from_secs(3600), now);
        assert_eq!(u, "1003600:sess-7");
        assert_eq!(p, rest_password(b"secret", &u));
        assert_ne!(p, rest_password(b"other", &u));
        // Known value: python -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'secret', b'1003600:sess-7', hashlib.sha1).digest()))"
        assert_eq!(p.len(), 28);
        assert_eq!(check_rest_username(&u, now), Ok("sess-7"));
        assert_eq!(
            check_rest_username(&u, now + Duration::from_secs(3601)),
            Err(CredentialError::Expired)
        );
        assert_eq!(
            check_rest_username("alice", now),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            check_rest_username("", now),
            Err(CredentialError::Malformed)
        );
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let n = Nonces::new(b"k", Duration::from_secs(60));
        let t0 = UNIX_EPOCH + Duration::from_secs(5_000);
        let nonce = n.issue(t0);
        assert_eq!(n.check(&nonce, t0), NonceState::Valid);
        assert_eq!(
            n.check(&nonce, t0 + Duration::from_secs(61)),
            NonceState::Stale
        );
        assert_eq!(
            Nonces::new(b"other", Duration::from_secs(60)).check(&nonce, t0),
            NonceState::Stale
        );
        let forged = format!("{:x}-0000000000000000", 5_060);
        assert_eq!(n.check(&forged, t0), NonceState::Stale);
        assert_eq!(n.check("garbage", t0), NonceState::Stale);
    }
}
