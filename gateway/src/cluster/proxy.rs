//! Node-to-node HTTP forwarding (issue 11 item 8): a node that does not hold what a client
//! asks for (a room's HLS program, a recording's file) forwards the request to the node that
//! does, on its `/internal/...` routes, signed with this node's [`super::auth::NodeAuth`].
//!
//! One `reqwest` client per node (connection reuse, HTTP/1.1 keep-alive to each peer),
//! redirects off, connect timeout [`CONNECT_TIMEOUT`], and a read timeout (`read_timeout`:
//! the longest wait for the next bytes, headers included; a blocking playlist reload waits
//! that long at most). Callers may bound the whole exchange with a per-request timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method};

use super::Cluster;
use crate::metrics::ClusterMetrics;

/// The longest wait for a TCP connection to another node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait for the next bytes of an answer (longer than any blocking playlist
/// reload: 2 × 3 × a 2 s target duration).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a forwarded request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The node could not be reached (refused, reset, DNS): answer 502.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: String, reason: String },
    /// The node did not answer in time: answer 504.
    #[error("node {node} did not answer in time")]
    Timeout { node: String },
}

/// Signs and sends this node's calls to other nodes; cheap to clone.
#[derive(Clone)]
pub struct NodeClient {
    client: reqwest::Client,
    cluster: Arc<Cluster>,
    metrics: ClusterMetrics,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient").finish_non_exhaustive()
    }
}

impl NodeClient {
    /// A client of `cluster`'s nodes whose reads wait at most `read_timeout` for the next
    /// bytes; outcomes counted in `metrics.forwarded`. Errors: the TLS backend cannot be
    /// initialised (start-up).
    pub fn new(
        cluster: Arc<Cluster>,
        read_timeout: Duration,
        metrics: ClusterMetrics,
    ) -> Result<NodeClient, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(NodeClient {
            client,
            cluster,
            metrics,
        })
    }

    /// Sends `method url` to node `node` with `headers` (the caller's, already filtered) and
    /// this node's signature; `timeout` bounds the whole exchange when set. The answer is the
    /// node's, whatever its status. Errors: [`ForwardError`].
    pub async fn send(
        &self,
        node: &str,
        method: Method,
        url: &str,
        headers: HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ForwardError> {
        let mut request = self.client.request(method, url).headers(headers);
        for (name, value) in self.cluster.auth().headers(super::unix_ms() / 1000) {
            request = request.header(name, value);
        }
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let result = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ForwardError::Timeout {
                    node: node.to_owned(),
                }
            } else {
                ForwardError::Unreachable {
                    node: node.to_owned(),
                    reason: error_chain(&e),
                }
            }
        });
        let outcome = match &result {
            Ok(_) => 0,
            Err(ForwardError::Unreachable { .. }) => 1,
            Err(ForwardError::Timeout { .. }) => 2,
        };
        if let Some(c) = self.metrics.forwarded.get(outcome) {
            c.inc();
        }
        result
    }
}

/// An error and its sources, one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
