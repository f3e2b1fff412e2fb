//! Node-to-node routes under `/internal` (cluster mode only; single-node mode has none: 404).
//!
//! Every route sits behind [`require_node`]: the caller names its node in the
//! `venue-node-id` header and signs with the cluster's node key
//! (`Authorization: Bearer v1.<seconds>.<hmac>`, [`crate::cluster::auth`]). Anything else is
//! 401 with a JSON `{"error": …}` saying what is wrong (e.g. "signed with another cluster
//! secret"), and the refusal is logged with the caller's node id and address.
//!
//! - `GET /internal/node`: this node's registration now (id, internal URL, protocol version,
//!   ready/draining, load), the same JSON as in the registry
//!   ([`crate::cluster::registry::NodeInfo`]).
//!
//! - HLS programs and recordings (issue 11 item 8), the routes other nodes forward to:
//!   `GET /internal/hls/{room}/index.m3u8` and `/internal/hls/{room}/{file}` (this node's
//!   programs, answered as `/hls/...` is: [`crate::http::hls::internal_routes`]);
//!   `GET /internal/recordings/{id}/file` (the file in this node's data dir, `Range` honoured)
//!   and `DELETE /internal/recordings/{id}` (file and row), as the admin routes answer them
//!   ([`crate::http::recordings`]).
//!
//! Relay set-up and hub forwarding (issue 11) will be added here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::cluster::Cluster;
use crate::cluster::auth::NODE_HEADER;

/// The `/internal` routes of `cluster`, behind [`require_node`]; `state` for the routes
/// that serve this node's media.
pub fn routes<S: Clone + Send + Sync + 'static>(
    cluster: Arc<Cluster>,
    state: &AppState,
) -> Router<S> {
    // ---- HLS programs and recordings (issue 11 item 8) ----
    let media = super::hls::internal_routes(state.hls.clone(), state.state.clone()).merge(
        Router::new()
            .route(
                "/internal/recordings/{id}/file",
                get(super::recordings::internal_file),
            )
            .route(
                "/internal/recordings/{id}",
                axum::routing::delete(super::recordings::internal_delete),
            )
            .with_state(state.clone()),
    );
    // ---- end of issue 11 item 8 ----
    Router::new()
        .route("/internal/node", get(node))
        .merge(media)
        .route_layer(middleware::from_fn_with_state(
            cluster.clone(),
            require_node,
        ))
        .with_state(cluster)
}

/// Middleware: only nodes of this cluster pass ([`crate::cluster::auth::NodeAuth::check_call`]).
/// Otherwise 401 + `WWW-Authenticate: Bearer` and a JSON reason.
pub async fn require_node(
    State(cluster): State<Arc<Cluster>>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let node = headers.get(NODE_HEADER).and_then(|v| v.to_str().ok());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match cluster
        .auth()
        .check_call(node, authorization, crate::cluster::unix_ms() / 1000)
    {
        Ok(()) => next.run(req).await,
        Err(why) => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string());
            tracing::warn!(
                caller = node.unwrap_or("-"),
                peer = peer.as_deref().unwrap_or("-"),
                path = %req.uri().path(),
                reason = %why,
                "refused a node-to-node call"
            );
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(serde_json::json!({ "error": why.to_string() })),
            )
                .into_response()
        }
    }
}

/// `GET /internal/node`.
async fn node(State(cluster): State<Arc<Cluster>>) -> Json<crate::cluster::registry::NodeInfo> {
    Json(cluster.current().await)
}
