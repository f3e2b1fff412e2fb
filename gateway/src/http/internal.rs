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
//! - `POST /internal/relay/{room id}` (`application/sdp`, an edge's relay offer,
//!   [`crate::cluster::tracks`]): this node (the origin of some of the room's stage) answers
//!   as a relay subscriber of the room's stage (`SubscribeTarget::Relay`), registered as
//!   [`SessionKind::Relay`] (not a viewer): 201 + `Location: /internal/relay/{room}/{session}`
//!   + the SDP answer; 404 unknown room, 400 bad offer, 503 overloaded.
//! - `DELETE /internal/relay/{room id}/{session}`: the edge closed its relay → 200.
//! - HLS programs and recordings (issue 11 item 8), the routes other nodes forward to:
//!   `GET /internal/hls/{room}/index.m3u8` and `/internal/hls/{room}/{file}` (this node's
//!   programs, answered as `/hls/...` is: [`crate::http::hls::internal_routes`]);
//!   `GET /internal/recordings/{id}/file` (the file in this node's data dir, `Range` honoured)
//!   and `DELETE /internal/recordings/{id}` (file and row), as the admin routes answer them
//!   ([`crate::http::recordings`]).
//!
//! Hub forwarding (issue 11) will be added here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use super::AppState;
use super::error::{ApiError, TextError};
use super::extract::{require_content_type, sdp_offer, session_id};
use super::session::{self, SDP};
use crate::cluster::Cluster;
use crate::cluster::auth::NODE_HEADER;
use crate::ids::RoomId;
use crate::rooms::SessionKind;

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

/// The `/internal` routes that reach the media plane (relays), behind [`require_node`].
pub fn media_routes<S: Clone + Send + Sync + 'static>(
    state: AppState,
    cluster: Arc<Cluster>,
) -> Router<S> {
    Router::new()
        .route("/internal/relay/{room}", post(relay))
        .route("/internal/relay/{room}/{session}", delete(relay_delete))
        .route_layer(middleware::from_fn_with_state(cluster, require_node))
        .with_state(state)
}

/// `POST /internal/relay/{room id}`: see the module docs.
async fn relay(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, TextError> {
    let room = room_by_id(&app, &room).await?;
    require_content_type(&headers, SDP)?;
    let offer = sdp_offer(body)?;
    let resource = format!("/internal/relay/{}", room.0);
    let (session, response) =
        session::create(&app, room, SessionKind::Relay, offer, &resource).await?;
    let caller = headers
        .get(NODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(room = room.0, %session, edge = caller, "relay to an edge node opened");
    Ok(response)
}

/// `DELETE /internal/relay/{room id}/{session}`.
async fn relay_delete(
    State(app): State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Result<StatusCode, TextError> {
    let room = room_by_id(&app, &room).await?;
    let id = session_id(&session)?;
    match app.state.session(id).await? {
        Some(info) if info.room == room && info.kind == SessionKind::Relay => {}
        _ => return Err(ApiError::NotFound("no such relay".into()).into()),
    }
    session::delete(&app, id).await
}

async fn room_by_id(app: &AppState, room: &str) -> Result<RoomId, ApiError> {
    let id: i64 = room
        .parse()
        .map_err(|_| ApiError::NotFound("no such room".into()))?;
    app.store
        .rooms()
        .await?
        .into_iter()
        .find(|r| r.id.0 == id)
        .map(|r| r.id)
        .ok_or_else(|| ApiError::NotFound("no such room".into()))
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
