//! The gateway's one error type, [`ApiError`], and its HTTP mapping.
//!
//! 4xx are the caller's faults and carry a helpful message; 500 ([`ApiError::Internal`]) is
//! only for our bugs and answers a generic body while the detail goes to the log. JSON bodies
//! (`{"error": "..."}`) by default; WHIP/WHEP handlers answer text/plain through [`TextError`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use venue_sfu::SfuError;

use crate::rooms::StateError;
use crate::schedule::KeyError;
use crate::store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed; the string says why.
    #[error("{0}")]
    BadRequest(String),
    /// 401 + `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401 + `WWW-Authenticate: Bearer`: a known stream key used outside its booked window;
    /// the string says when it opens or closed.
    #[error("{0}")]
    KeyRefused(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` does not match the session's ETag.
    #[error("If-Match does not match the session's ETag")]
    PreconditionFailed,
    /// 413: the body exceeds the limit (bytes).
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the expected content type.
    #[error("Content-Type must be {0}")]
    UnsupportedMediaType(&'static str),
    /// 422: ICE restart requested; not supported.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: the caller is over a rate limit.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: the media plane is overloaded or stopped.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an infrastructure failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::KeyRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client (generic for 500).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn into_response_with(self, json: bool) -> Response {
        let status = self.status();
        let unauthorized = matches!(self, ApiError::Unauthorized(_) | ApiError::KeyRefused(_));
        let unavailable = matches!(self, ApiError::Unavailable(_));
        let message = self.public_message();
        let mut response = if json {
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
        } else {
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{message}\n"),
            )
                .into_response()
        };
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if unavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with(true)
    }
}

/// An [`ApiError`] answered as `text/plain` (WHIP/WHEP resources).
#[derive(Debug)]
pub struct TextError(pub ApiError);

impl From<ApiError> for TextError {
    fn from(e: ApiError) -> Self {
        TextError(e)
    }
}

impl From<StoreError> for TextError {
    fn from(e: StoreError) -> Self {
        TextError(e.into())
    }
}

impl From<SfuError> for TextError {
    fn from(e: SfuError) -> Self {
        TextError(e.into())
    }
}

impl From<StateError> for TextError {
    fn from(e: StateError) -> Self {
        TextError(e.into())
    }
}

impl From<KeyError> for TextError {
    fn from(e: KeyError) -> Self {
        TextError(e.into())
    }
}

impl IntoResponse for TextError {
    fn into_response(self) -> Response {
        self.0.into_response_with(false)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Stopped => ApiError::Internal("state actor stopped".into()),
            StateError::NoSuchRoom => ApiError::NotFound("no such room".into()),
            StateError::Store(e) => e.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unknown => ApiError::Unauthorized("unknown stream key"),
            KeyError::Refused(reason) => ApiError::KeyRefused(reason),
            KeyError::Store(e) => e.into(),
        }
    }
}

impl From<SfuError> for ApiError {
    fn from(e: SfuError) -> Self {
        match e {
            SfuError::BadOffer(_) | SfuError::BadFragment(_) | SfuError::Unsupported(_) => {
                ApiError::BadRequest(e.to_string())
            }
            SfuError::IceRestartUnsupported => ApiError::Unprocessable(e.to_string()),
            SfuError::UnknownSession => ApiError::NotFound("no such session".into()),
            SfuError::Overloaded | SfuError::Stopped => ApiError::Unavailable(e.to_string()),
            // Another node's relay answer was refused: an upstream failure, not the caller's.
            SfuError::BadAnswer(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(format!("media plane: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfu_errors_map_to_statuses() {
        let cases = [
            (SfuError::BadOffer("x".into()), 400),
            (SfuError::BadFragment("x".into()), 400),
            (SfuError::Unsupported("x".into()), 400),
            (SfuError::IceRestartUnsupported, 422),
            (SfuError::UnknownSession, 404),
            (SfuError::Overloaded, 503),
            (SfuError::Stopped, 503),
            (SfuError::BadAnswer("x".into()), 503),
            (SfuError::Io(std::io::Error::other("x")), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status().as_u16(), status);
        }
    }

    #[test]
    fn internal_detail_is_not_sent() {
        let r = ApiError::Internal("secret detail".into()).public_message();
        assert_eq!(r, "internal server error");
    }
}
