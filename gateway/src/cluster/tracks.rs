//! Who owns a publisher's tracks, and how an edge asks an origin for a relay (issue 11 item 4).
//!
//! **Ownership**: the node a streamer's active publisher session (WHIP or RTMP) is connected to
//! owns its tracks. It writes `venue:tracks:{streamer id}` = its node id with a TTL of
//! [`OWNER_TTL`] when the streamer goes live there ([`Tracks::claim`]), refreshes it every
//! [`REFRESH_INTERVAL`] while it stays live, and deletes it when the streamer goes offline
//! there ([`Tracks::release`], only if the key is still its own). A node that dies stops
//! refreshing and its claims expire: the others see the streamer offline at most
//! [`OWNER_TTL`] later. Every node reads the owners of its rooms' stage streamers
//! ([`Tracks::owners`]) after each room change and every [`REFRESH_INTERVAL`].
//!
//! **Relays**: a node whose WebRTC viewers need a stage slot owned by node O opens one relay
//! per (O, room): its SFU makes the offer ([`venue_sfu::SfuHandle::open_relay`]) and
//! [`Tracks::request_relay`] posts it to O's `POST /internal/relay/{room id}` (signed with the
//! cluster's node key, [`super::auth`]), whose 201 carries O's SDP answer. The origin registers
//! the session as a relay (not a viewer) and forwards its stage into it.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use super::auth::NodeAuth;
use super::registry::Registry;
use crate::config::cluster::NodeId;
use crate::ids::{RoomId, StreamerId};

/// Lifetime of an ownership claim without a refresh.
pub const OWNER_TTL: Duration = Duration::from_secs(6);
/// How often a node refreshes its claims and re-reads the owners of its stage streamers.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait for an origin's answer to a relay offer.
pub const RELAY_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const RELEASE: &str = r"
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    n = n + redis.call('DEL', key)
  end
end
return n
";

/// The Redis key of streamer `id`'s owner.
pub fn owner_key(id: StreamerId) -> String {
    format!("venue:tracks:{}", id.0)
}

/// Why a relay request failed. The texts are for the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("node {0} is not a live node of this cluster")]
    UnknownNode(String),
    #[error("cluster Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("relay request to {node}: {source}")]
    Http {
        node: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("node {node} refused the relay: HTTP {status}: {body}")]
    Refused {
        node: String,
        status: u16,
        body: String,
    },
}

/// Track ownership and relay requests of one node; cheap to clone.
#[derive(Clone)]
pub struct Tracks {
    conn: ConnectionManager,
    node: NodeId,
    auth: NodeAuth,
    registry: Registry,
    client: reqwest::Client,
}

impl std::fmt::Debug for Tracks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracks")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Tracks {
    /// Ownership on `conn` for `node`; relay requests signed with `auth`, origins found in
    /// `registry`.
    pub fn new(conn: ConnectionManager, auth: NodeAuth, registry: Registry) -> Tracks {
        let client = reqwest::Client::builder()
            .timeout(RELAY_REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Tracks {
            conn,
            node: auth.node().clone(),
            auth,
            registry,
            client,
        }
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Claims (or refreshes the claim on) `streamers`' tracks for this node for [`OWNER_TTL`].
    /// Errors: Redis.
    pub async fn claim(&self, streamers: &[StreamerId]) -> Result<(), redis::RedisError> {
        if streamers.is_empty() {
            return Ok(());
        }
        let ttl = u64::try_from(OWNER_TTL.as_millis()).unwrap_or(6000);
        let mut pipe = redis::pipe();
        for id in streamers {
            pipe.cmd("SET")
                .arg(owner_key(*id))
                .arg(self.node.as_str())
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.exec_async(&mut conn).await
    }

    /// Drops this node's claims on `streamers` (claims another node made since are kept).
    /// Errors: Redis.
    pub async fn release(&self, streamers: &[StreamerId]) -> Result<(), redis::RedisError> {
        if streamers.is_empty() {
            return Ok(());
        }
        let script = Script::new(RELEASE);
        let mut invocation = script.prepare_invoke();
        for id in streamers {
            invocation.key(owner_key(*id));
        }
        invocation.arg(self.node.as_str());
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// The owner node of each of `streamers` (same order), `None` where nobody owns it (the
    /// streamer is offline everywhere). Errors: Redis.
    pub async fn owners(
        &self,
        streamers: &[StreamerId],
    ) -> Result<Vec<Option<String>>, redis::RedisError> {
        if streamers.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = streamers.iter().map(|id| owner_key(*id)).collect();
        let mut conn = self.conn.clone();
        redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
    }

    /// Posts the relay offer `offer_sdp` (an edge's [`venue_sfu::RelayOffer::offer_sdp`]) for
    /// `room` to node `origin`'s `POST /internal/relay/{room}` and returns its SDP answer.
    /// Errors: [`RelayError`] (origin not live, HTTP failure, a non-201 answer).
    pub async fn request_relay(
        &self,
        origin: &str,
        room: RoomId,
        offer_sdp: String,
    ) -> Result<String, RelayError> {
        let nodes = self.registry.nodes().await?;
        let url = nodes
            .live
            .iter()
            .find(|n| n.node_id == origin)
            .map(|n| n.internal_url.trim_end_matches('/').to_owned())
            .ok_or_else(|| RelayError::UnknownNode(origin.to_owned()))?;
        let http = |source| RelayError::Http {
            node: origin.to_owned(),
            source,
        };
        let mut request = self
            .client
            .post(format!("{url}/internal/relay/{}", room.0))
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer_sdp);
        for (name, value) in self.auth.headers(super::unix_ms() / 1000) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let body = response.text().await.map_err(http)?;
        if status != reqwest::StatusCode::CREATED {
            return Err(RelayError::Refused {
                node: origin.to_owned(),
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        Ok(body)
    }
}
