//! Node-to-node authentication: every node of a cluster holds the same HMAC-SHA256 key,
//! derived from the cluster secret ([`crate::cluster::secrets::NODE_AUTH`]); a node with
//! another secret can neither call another node's internal routes nor be listed in the
//! registry nor be heard on the bus.
//!
//! - **Internal HTTP calls** (`/internal/...`) carry two headers: [`NODE_HEADER`] (the caller's
//!   node id) and `Authorization: Bearer v1.<unix seconds>.<hex HMAC-SHA256(key,
//!   "venue-internal\0" node id "\0" seconds)>`. A token is accepted within [`MAX_SKEW`] of the
//!   receiver's clock (NTP-synced nodes; a captured token is useless after that). The axum
//!   middleware is `crate::http::internal::require_node`.
//! - **Registrations and bus messages** are stored as `v1.<hex HMAC(key, json)>.<json>`
//!   ([`NodeAuth::seal`] / [`NodeAuth::open`]).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::cluster::NodeId;

/// Header naming the calling node on internal routes.
pub const NODE_HEADER: &str = "venue-node-id";
/// How far an internal call's timestamp may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(60);
/// Version prefix of bearer tokens and sealed records.
const V1: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a sealed record or an internal call was refused. The texts are for the log and the 401
/// body: they say what to fix and never contain a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("missing the {NODE_HEADER} header (node-to-node calls name their node)")]
    NoNode,
    #[error("missing or malformed Authorization: Bearer v1.<seconds>.<hmac> (node-to-node token)")]
    Malformed,
    #[error(
        "the node-to-node token is {0} s away from this node's clock (more than 60 s: sync the clocks)"
    )]
    Stale(u64),
    #[error(
        "signed with another cluster secret: cluster.secret (VENUE_CLUSTER_SECRET) differs between the nodes"
    )]
    BadSignature,
}

/// The node-to-node key and this node's id. `Debug` does not print the key.
#[derive(Clone)]
pub struct NodeAuth {
    /// HMAC-SHA256 keyed once; cloned per message.
    keyed: HmacSha256,
    node: NodeId,
}

impl std::fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuth")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeAuth {
    /// This node (`node`) with the cluster's node-to-node `key`
    /// ([`crate::cluster::secrets::ClusterSecrets::node_auth`]).
    // generic-array 0.14 (what hmac 0.12 takes) is marked deprecated in favour of 1.x.
    #[allow(deprecated)]
    pub fn new(key: [u8; 32], node: NodeId) -> NodeAuth {
        // RFC 2104: a key shorter than the block (64 bytes) is zero-padded to it, so keying
        // with the padded block is the same HMAC, through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        let block = hmac::digest::generic_array::GenericArray::clone_from_slice(&block);
        NodeAuth {
            keyed: <HmacSha256 as hmac::digest::KeyInit>::new(&block),
            node,
        }
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// `v1.<hex HMAC(key, json)>.<json>`: a record other nodes accept with [`NodeAuth::open`].
    pub fn seal(&self, json: &str) -> String {
        let tag = self.mac(&[json.as_bytes()]).finalize().into_bytes();
        format!("{V1}.{}.{json}", hex::encode(tag))
    }

    /// The JSON of a sealed record. Errors: [`AuthError::Malformed`],
    /// [`AuthError::BadSignature`] (sealed with another cluster secret).
    pub fn open<'a>(&self, sealed: &'a str) -> Result<&'a str, AuthError> {
        let rest = sealed
            .strip_prefix(V1)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(AuthError::Malformed)?;
        let (tag, json) = rest.split_once('.').ok_or(AuthError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| AuthError::Malformed)?;
        self.mac(&[json.as_bytes()])
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadSignature)?;
        Ok(json)
    }

    fn call_mac(&self, node: &str, seconds: u64) -> HmacSha256 {
        self.mac(&[
            b"venue-internal\0",
            node.as_bytes(),
            b"\0",
            seconds.to_string().as_bytes(),
        ])
    }

    /// The `Authorization` value of an internal call made now (`unix_s`, seconds since the
    /// epoch) by this node.
    pub fn bearer(&self, unix_s: u64) -> String {
        let tag = self
            .call_mac(self.node.as_str(), unix_s)
            .finalize()
            .into_bytes();
        format!("Bearer {V1}.{unix_s}.{}", hex::encode(tag))
    }

    /// The two headers of an internal call made at `unix_s`: ([`NODE_HEADER`], node id) and
    /// (`authorization`, [`NodeAuth::bearer`]).
    pub fn headers(&self, unix_s: u64) -> [(&'static str, String); 2] {
        [
            (NODE_HEADER, self.node.to_string()),
            ("authorization", self.bearer(unix_s)),
        ]
    }

    /// Checks an internal call: `node` the [`NODE_HEADER`] value, `authorization` the header,
    /// `unix_s` this node's clock. Errors: see [`AuthError`].
    pub fn check_call(
        &self,
        node: Option<&str>,
        authorization: Option<&str>,
        unix_s: u64,
    ) -> Result<(), AuthError> {
        let node = node.filter(|n| !n.is_empty()).ok_or(AuthError::NoNode)?;
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| t.strip_prefix(V1))
            .and_then(|t| t.strip_prefix('.'))
            .ok_or(AuthError::Malformed)?;
        let (seconds, tag) = token.split_once('.').ok_or(AuthError::Malformed)?;
        let seconds: u64 = seconds.parse().map_err(|_| AuthError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| AuthError::Malformed)?;
        // The signature first: a stranger learns nothing about our clock.
        self.call_mac(node, seconds)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadSignature)?;
        let skew = seconds.abs_diff(unix_s);
        if skew > MAX_SKEW.as_secs() {
            return Err(AuthError::Stale(skew));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: u8, node: &str) -> NodeAuth {
        NodeAuth::new([key; 32], NodeId::parse(node).unwrap())
    }

    #[test]
    fn the_padded_key_is_the_plain_hmac() {
        let a = auth(7, "a");
        let plain = HmacSha256::new_from_slice(&[7; 32]).unwrap();
        assert_eq!(
            a.mac(&[b"x"]).finalize().into_bytes(),
            plain.chain_update(b"x").finalize().into_bytes()
        );
    }

    #[test]
    fn sealed_records_open_only_with_the_same_key() {
        let (a, b, stranger) = (auth(1, "a"), auth(1, "b"), auth(2, "c"));
        let sealed = a.seal(r#"{"x":1}"#);
        assert_eq!(b.open(&sealed), Ok(r#"{"x":1}"#));
        assert_eq!(stranger.open(&sealed), Err(AuthError::BadSignature));
        let tampered = sealed.replace("\"x\":1", "\"x\":2");
        assert_eq!(b.open(&tampered), Err(AuthError::BadSignature));
        for bad in ["", "v1", "v1.zz.{}", "v2.00.{}", "{\"x\":1}"] {
            assert_eq!(b.open(bad), Err(AuthError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn internal_calls_need_the_node_header_a_fresh_token_and_the_same_key() {
        let (a, b, stranger) = (auth(1, "a"), auth(1, "b"), auth(2, "a"));
        let t = 1_800_000_000;
        let bearer = a.bearer(t);
        assert_eq!(b.check_call(Some("a"), Some(&bearer), t + 5), Ok(()));
        assert_eq!(
            b.check_call(Some("a"), Some(&stranger.bearer(t)), t),
            Err(AuthError::BadSignature)
        );
        // The token names its node: another id does not verify.
        assert_eq!(
            b.check_call(Some("x"), Some(&bearer), t),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            b.check_call(Some("a"), Some(&bearer), t + 61),
            Err(AuthError::Stale(61))
        );
        assert_eq!(b.check_call(None, Some(&bearer), t), Err(AuthError::NoNode));
        assert_eq!(b.check_call(Some("a"), None, t), Err(AuthError::Malformed));
        assert_eq!(
            b.check_call(Some("a"), Some("Bearer v1.x.00"), t),
            Err(AuthError::Malformed)
        );
        let e = AuthError::BadSignature.to_string();
        assert!(e.contains("VENUE_CLUSTER_SECRET"), "{e}");
        let [(h1, v1), (h2, v2)] = a.headers(t);
        assert_eq!((h1, v1.as_str()), (NODE_HEADER, "a"));
        assert_eq!((h2, v2), ("authorization", bearer));
    }
}
