//! The long-term credential mechanism (RFC 8489 §9.2) applied to TURN requests, with TURN REST
//! usernames (`"<expiry unix s>:<id>"`, password `base64(HMAC-SHA1(secret, username))`):
//! 401 with REALM and a fresh stateless NONCE when a request has no or bad credentials,
//! 438 Stale Nonce, 400 for missing or oversized USERNAME / REALM / NONCE, then 420 for
//! unknown comprehension-required attributes.

use std::time::{Duration, SystemTime};

use crate::auth::{self, NonceState, Nonces};
use crate::stun::{Message, attr};

use super::io::{FiveTuple, Output, Stats};
use super::reply;

/// What authentication of a request found.
pub(super) enum Auth {
    /// Answered (401 / 438 / 400 / 420); nothing more to do.
    Refused,
    /// Valid: the username, its user id, the long-term key.
    Ok {
        username: String,
        user_id: String,
        key: [u8; 16],
    },
}

/// Checks requests against the realm and the REST secret, and issues the nonces.
pub(super) struct Authenticator {
    nonces: Nonces,
    realm: String,
    secret: Vec<u8>,
}

impl Authenticator {
    /// Nonces are signed with a key derived from the REST `secret` and stay valid for
    /// `nonce_ttl`.
    pub(super) fn new(realm: &str, secret: &[u8], nonce_ttl: Duration) -> Self {
        let nonce_key = {
            use hmac::{Hmac, Mac};
            match Hmac::<sha2::Sha256>::new_from_slice(secret) {
                Ok(mut mac) => {
                    mac.update(b"venue-turn nonce key");
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => secret.to_vec(),
            }
        };
        Authenticator {
            nonces: Nonces::new(&nonce_key, nonce_ttl),
            realm: realm.to_owned(),
            secret: secret.to_vec(),
        }
    }

    /// The long-term credential mechanism (RFC 8489 §9.2.4) with TURN REST usernames; what
    /// it refuses is answered in `out` and counted in `stats`.
    pub(super) fn authenticate(
        &self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        stats: &mut Stats,
        out: &mut Vec<Output>,
    ) -> Auth {
        if !msg.has_integrity() {
            self.challenge(now, msg, ft, 401, stats, out);
            return Auth::Refused;
        }
        let (Some(username), Some(realm), Some(nonce)) = (
            msg.get_str(attr::USERNAME),
            msg.get_str(attr::REALM),
            msg.get_str(attr::NONCE),
        ) else {
            reply::error(msg, ft, 400, "Bad Request", None, |_| {}, out);
            return Auth::Refused;
        };
        // RFC 8489 §14.3, §14.9, §14.10: USERNAME < 513 bytes, REALM and NONCE < 763 bytes.
        if username.len() > 512 || nonce.len() > 762 || realm.len() > 762 {
            stats.malformed += 1;
            reply::error(msg, ft, 400, "Bad Request", None, |_| {}, out);
            return Auth::Refused;
        }
        if self.nonces.check(nonce, now) == NonceState::Stale {
            self.challenge(now, msg, ft, 438, stats, out);
            return Auth::Refused;
        }
        let user_id = match auth::check_rest_username(username, now) {
            Ok(id) => id.to_owned(),
            Err(e) => {
                tracing::debug!(client = %ft.client, error = %e, "turn: credential refused");
                self.challenge(now, msg, ft, 401, stats, out);
                return Auth::Refused;
            }
        };
        let password = auth::rest_password(&self.secret, username);
        let key = auth::long_term_key(username, &self.realm, &password);
        if !msg.check_integrity(&key) {
            self.challenge(now, msg, ft, 401, stats, out);
            return Auth::Refused;
        }
        if reply::unknown_attributes(msg, ft, Some(&key), out) {
            return Auth::Refused;
        }
        Auth::Ok {
            username: username.to_owned(),
            user_id,
            key,
        }
    }

    /// 401 or 438 with REALM and a fresh NONCE (RFC 8489 §9.2.4).
    fn challenge(
        &self,
        now: SystemTime,
        msg: &Message<'_>,
        ft: FiveTuple,
        code: u16,
        stats: &mut Stats,
        out: &mut Vec<Output>,
    ) {
        stats.unauthorized += 1;
        let nonce = self.nonces.issue(now);
        let reason = if code == 438 {
            "Stale Nonce"
        } else {
            "Unauthorized"
        };
        reply::error(
            msg,
            ft,
            code,
            reason,
            None,
            |b| {
                b.attr(attr::REALM, self.realm.as_bytes())
                    .attr(attr::NONCE, nonce.as_bytes());
            },
            out,
        );
    }
}
