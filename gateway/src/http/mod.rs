//! The HTTP face of the gateway (axum): the router over [`AppState`], one module per
//! resource, the one error type ([`error::ApiError`]) and what handlers read from requests
//! ([`extract`]).
//!
//! - WHIP (RFC 9725, [`whip`]), WHEP (draft-ietf-wish-whep, [`whep`]) and what their session
//!   resources share ([`session`]: creation, trickle ICE, delete, ETag / `If-Match`, CORS);
//! - the admin API under `/api/admin` ([`admin`], [`interaction`], [`schedule`],
//!   [`recordings`]), behind the admin token ([`extract::require_admin`]);
//! - public room information and the join decision ([`rooms`]), the room's events over a
//!   WebSocket ([`ws`]), ICE servers ([`ice`]), LL-HLS serving ([`hls`]), `/metrics`,
//!   `/healthz`, `/readyz` ([`readyz`]), the embedded web pages ([`assets`]); HTTPS ([`tls`]);
//! - cluster mode: node-to-node routes under `/internal` ([`internal`]), behind
//!   [`internal::require_node`].
//!
//! Nothing outside this module names [`AppState`]: the domain actors below it take the
//! handles they use.

pub mod admin;
pub mod assets;
pub mod error;
pub mod extract;
pub mod forward;
pub mod hls;
pub mod ice;
pub mod interaction;
pub mod internal;
pub mod metrics;
pub mod readyz;
pub mod recordings;
pub mod rooms;
pub mod schedule;
pub mod session;
pub mod tls;
pub mod whep;
pub mod whip;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::{Services, config, hub};

/// What the HTTP layer adds to the gateway's [`Services`]: settings of `[http]` and friends.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// SHA-256 of the admin token (compared in constant time).
    pub admin_token_digest: [u8; 32],
    /// `http.public_url`, normalised (no trailing slash).
    pub public_url: Option<String>,
    /// Send-queue policy of WebSocket clients.
    pub ws_queue: hub::QueuePolicy,
    /// `http.trusted_proxies`.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// `[rtmp]`, for the RTMP URLs handed to streamers.
    pub rtmp: config::RtmpConfig,
}

/// Everything a request handler needs: the gateway's [`Services`] (reached through `Deref`:
/// `state.store`, `state.sfu`, …) and the [`HttpSettings`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub services: Services,
    pub settings: Arc<HttpSettings>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

/// The HTTP router over `services` with `settings`.
pub fn router(services: Services, settings: HttpSettings) -> Router {
    router_over(AppState {
        services,
        settings: Arc::new(settings),
    })
}

/// The HTTP router over `state`.
pub fn router_over(state: AppState) -> Router {
    let whip_whep = Router::new()
        .route(
            "/api/whip",
            post(whip::post).options(session::options_endpoint),
        )
        .route(
            "/api/whip/{session}",
            axum::routing::patch(whip::patch)
                .delete(whip::delete)
                .options(session::options_resource),
        )
        .route(
            "/api/whep/{room}",
            post(whep::post).options(session::options_endpoint),
        )
        .route(
            "/api/whep/{room}/{session}",
            axum::routing::patch(whep::patch)
                .delete(whep::delete)
                .options(session::options_resource),
        )
        .layer(middleware::from_fn(session::cors));

    let admin = Router::new()
        .route(
            "/api/admin/rooms",
            get(admin::list_rooms).post(admin::create_room),
        )
        .route(
            "/api/admin/rooms/{room}/streamers",
            get(admin::list_streamers).post(admin::create_streamer),
        )
        .route(
            "/api/admin/rooms/{room}/streamers/{id}",
            axum::routing::delete(admin::delete_streamer).put(admin::put_streamer),
        )
        .route(
            "/api/admin/rooms/{room}/streamers/{id}/whep",
            post(admin::preview),
        )
        .route(
            "/api/admin/rooms/{room}/streamers/{id}/health",
            get(admin::streamer_health),
        )
        .route(
            "/api/admin/rooms/{room}/stage",
            get(rooms::get).put(admin::put_stage),
        )
        .route(
            "/api/admin/rooms/{room}/settings",
            get(interaction::get_settings).put(interaction::put_settings),
        )
        .route("/api/admin/rooms/{room}/users", get(interaction::users))
        .route(
            "/api/admin/rooms/{room}/moderation",
            post(interaction::moderate),
        )
        .route(
            "/api/admin/rooms/{room}/events",
            get(schedule::list_events).post(schedule::create_event),
        )
        .route(
            "/api/admin/rooms/{room}/events/{id}",
            axum::routing::put(schedule::put_event).delete(schedule::delete_event),
        )
        .route(
            "/api/admin/rooms/{room}/events/{id}/bookings",
            post(schedule::create_booking),
        )
        .route(
            "/api/admin/rooms/{room}/events/{id}/bookings/{booking}",
            axum::routing::put(schedule::put_booking).delete(schedule::delete_booking),
        )
        .route("/api/admin/sticker-sets", get(interaction::sticker_sets))
        .route(
            "/api/admin/sticker-sets/{id}",
            axum::routing::put(interaction::put_sticker_set),
        )
        .route(
            "/api/admin/sticker-sets/{set}/images/{sticker}",
            axum::routing::put(interaction::put_sticker_image)
                .layer(DefaultBodyLimit::max(interaction::MAX_STICKER_IMAGE_BYTES)),
        )
        .route("/api/admin/rooms/{room}/recordings", get(recordings::list))
        .route(
            "/api/admin/recordings/{id}",
            get(recordings::download).delete(recordings::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_admin,
        ));

    let internal = match &state.cluster {
        Some(cluster) => internal::routes(cluster.clone(), &state)
            .merge(internal::media_routes(state.clone(), cluster.clone())),
        None => Router::new(),
    };
    let forwarding = state.node_client.clone().map(|client| hls::Forwarding {
        program: state.program.clone(),
        client,
        hls: state.hls.clone(),
        rooms: state.state.clone(),
    });

    Router::new()
        .merge(whip_whep)
        .merge(admin)
        .merge(internal)
        .merge(hls::routes(
            state.hls.clone(),
            state.state.clone(),
            forwarding,
        ))
        .route("/api/rooms/{room}", get(rooms::get))
        .route("/api/rooms/{room}/ws", get(ws::upgrade))
        .route(
            "/api/recordings/{id}/file",
            get(recordings::signed_download),
        )
        .route("/api/rooms/{room}/join", get(rooms::join))
        .route("/api/ice-servers", get(ice::get))
        .route("/api/rooms/{room}/schedule", get(schedule::public_schedule))
        .route(
            "/api/rooms/{room}/events/{id}/signup",
            post(schedule::signup),
        )
        .route(
            "/stickers/custom/{set}/{sticker}",
            get(interaction::sticker_image),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::get))
        .route("/metrics", get(metrics::get))
        .route("/", get(assets::index))
        .route("/r/{room}", get(assets::room_page))
        .route("/publish", get(assets::publish))
        .route("/admin", get(assets::admin))
        .fallback(assets::fallback)
        .layer(DefaultBodyLimit::max(extract::MAX_SDP_BYTES))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::count_requests,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
