//! The cluster's secrets: identical on every node, never generated per data dir.
//!
//! In single-node mode each data dir generates its own (`admin-token`, `turn-secret`,
//! `ip-salt`; the recording links are signed with the admin token's digest) and nothing here
//! runs. In cluster mode a viewer, a streamer or an admin may reach any node, so:
//!
//! | secret | cluster mode |
//! | --- | --- |
//! | admin token | from the config or `VENUE_ADMIN_TOKEN`, required (people type it) |
//! | webhook signing key | `webhooks.secret` / `VENUE_WEBHOOKS_SECRET`, required with `webhooks.urls` as in single-node mode (receivers must know it) |
//! | TURN secret | `turn.secret` / `VENUE_TURN_SECRET` when set, else derived: label [`TURN_SECRET`] |
//! | recording-link signing key | derived: label [`RECORDING_LINK`] |
//! | salt of the IP hashes (bans by IP) | derived: label [`IP_SALT`] |
//! | node-to-node authentication (internal calls, registrations, bus messages) | derived: label [`NODE_AUTH`] |
//!
//! Derived keys are HKDF-SHA256 (RFC 5869) of the cluster secret's UTF-8 bytes, salt
//! [`HKDF_SALT`], `info` = the per-purpose label, 32 bytes each: one secret to distribute,
//! and no derived key reveals another or the cluster secret.

use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use venue_turn::TurnSecret;

use crate::config::Secret;

/// HKDF salt of every derived key.
pub const HKDF_SALT: &[u8] = b"venue cluster v1";
/// HKDF label of the embedded TURN server's REST-credential secret (used as the base64url
/// text of the 32 derived bytes).
pub const TURN_SECRET: &str = "venue/turn-secret/v1";
/// HKDF label of the key that signs recording download links.
pub const RECORDING_LINK: &str = "venue/recording-link/v1";
/// HKDF label of the salt of the IP hashes (so a ban by IP holds on every node).
pub const IP_SALT: &str = "venue/ip-salt/v1";
/// HKDF label of the HMAC key that authenticates nodes to each other
/// ([`crate::cluster::auth`]).
pub const NODE_AUTH: &str = "venue/node-auth/v1";

/// The keys derived from the cluster secret. `Debug` prints none of them.
#[derive(Clone)]
pub struct ClusterSecrets {
    /// The embedded TURN server's secret when `[turn] secret` is not set.
    pub turn_secret: TurnSecret,
    /// Key of the signed recording download URLs.
    pub recording_link: [u8; 32],
    /// Salt of the IP hashes.
    pub ip_salt: [u8; 32],
    /// HMAC-SHA256 key of node-to-node authentication.
    pub node_auth: [u8; 32],
}

impl std::fmt::Debug for ClusterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecrets(***)")
    }
}

/// HKDF-SHA256 of `secret` with [`HKDF_SALT`] and `label`, 32 bytes.
pub fn derive(secret: &Secret, label: &str) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.expose().as_bytes());
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit (255 × 32), so expand cannot fail; were it
    // to, a random key (this node then disagrees with the others, loudly) beats a known one.
    if hk.expand(label.as_bytes(), &mut out).is_err() {
        tracing::error!(label, "HKDF refused a 32-byte output");
        out = rand::random();
    }
    out
}

impl ClusterSecrets {
    /// Derives every key from the cluster secret.
    pub fn derive(secret: &Secret) -> ClusterSecrets {
        let turn = derive(secret, TURN_SECRET);
        ClusterSecrets {
            turn_secret: TurnSecret::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(turn),
            ),
            recording_link: derive(secret, RECORDING_LINK),
            ip_salt: derive(secret, IP_SALT),
            node_auth: derive(secret, NODE_AUTH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HKDF-SHA256(salt "venue cluster v1", ikm "cluster-secret-number-one", info NODE_AUTH),
    /// computed independently with Python's hmac module (RFC 5869 §2.2-2.3, one block).
    const PINNED_NODE_AUTH: &str =
        "3f7510b300245659cdea949e57364f1180bbb3029deef00e7590830f2ce4f842";

    #[test]
    fn keys_are_per_purpose_deterministic_and_differ_between_secrets() {
        let a = Secret::new("cluster-secret-number-one");
        let b = Secret::new("cluster-secret-number-two");
        let (x, y) = (ClusterSecrets::derive(&a), ClusterSecrets::derive(&a));
        assert_eq!(x.node_auth, y.node_auth);
        assert_eq!(x.turn_secret.expose(), y.turn_secret.expose());
        let keys = [
            x.recording_link,
            x.ip_salt,
            x.node_auth,
            derive(&a, TURN_SECRET),
        ];
        for (i, k) in keys.iter().enumerate() {
            for other in &keys[i + 1..] {
                assert_ne!(k, other, "labels give different keys");
            }
        }
        let z = ClusterSecrets::derive(&b);
        assert_ne!(x.node_auth, z.node_auth);
        assert_ne!(x.ip_salt, z.ip_salt);
        assert!(x.turn_secret.expose().len() >= 16);
        assert_eq!(format!("{x:?}"), "ClusterSecrets(***)");
        // Pinned: a change of salt, label or construction would split a rolling upgrade's
        // cluster in two (old and new nodes would refuse each other).
        assert_eq!(hex::encode(derive(&a, NODE_AUTH)), PINNED_NODE_AUTH);
    }
}
