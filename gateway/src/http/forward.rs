//! Answers forwarded from another node (cluster mode, [`crate::cluster::proxy`]): the other
//! node's status, the headers that describe the body and its caching ([`PASSED`]), and its
//! body streamed through as it arrives (never buffered whole: a recording may be gigabytes).
//! A failed forward is 502 (unreachable) or 504 (no answer in time), `no-store`, with a text
//! body naming the node.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cluster::proxy::ForwardError;

/// Response headers copied from the other node's answer; the others (hop-by-hop, `Date`,
/// `Server`, CORS, which this node's layers add) are not.
pub const PASSED: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::RETRY_AFTER,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::CONTENT_DISPOSITION,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// The other node's answer as this node's (see the module docs). A 401 from it means it
/// refused this node's signature (another cluster secret, a clock off by more than the allowed
/// skew): that is this node's upstream failing, 502, not the client's fault.
pub fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    if status == StatusCode::UNAUTHORIZED {
        tracing::warn!(url = %answer.url(), "another node refused this node's signature");
        return text(
            StatusCode::BAD_GATEWAY,
            "the node holding this refused this node's credentials (cluster secret or clock)"
                .to_owned(),
        );
    }
    let mut headers = axum::http::HeaderMap::new();
    for name in PASSED {
        for value in answer.headers().get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let body = futures_util::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        match answer.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(answer))),
            Ok(None) => None,
            // The stream ends after the error (the client sees a cut body).
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// 502 / 504 for a forward that got no answer; `what` says what was asked ("the program of
/// room \"main\"").
pub fn failed(e: &ForwardError, what: &str) -> Response {
    let status = match e {
        ForwardError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    tracing::warn!(error = %e, what, "forwarding to another node failed");
    text(status, format!("{what}: {e}"))
}

/// A `no-store` plain-text answer (errors of the forwarding itself).
pub fn text(status: StatusCode, message: String) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{message}\n"),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
