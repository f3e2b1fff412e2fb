//! `GET /readyz`: whether a load balancer should send this node new work.
//!
//! 200 `ready` while serving; 503 `starting` before the HTTP listener accepts (the app is
//! built but [`crate::App::serve`] has not started) and 503 `draining` while a cluster node
//! drains ([`crate::cluster::drain`]). `/healthz` stays 200 throughout: the process is alive.
//! Never cached.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::cluster::readiness::Phase;

/// `GET /readyz`.
pub async fn get(State(app): State<AppState>) -> Response {
    let (status, body) = match app.readiness.phase() {
        Phase::Serving => (StatusCode::OK, "ready\n"),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
    };
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}
