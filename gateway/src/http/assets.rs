//! The web front end (`web/dist`, built by `build.rs`), embedded with rust-embed.
//!
//! Pages: `/` and `/r/{room}` → `index.html` (viewer), `/publish` → `publish.html`,
//! `/admin` → `admin.html`; `/assets/*` and other root files by path. Hashed assets are cached
//! for a year, pages revalidated.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
struct Web;

fn file(path: &str) -> Option<Response> {
    let file = Web::get(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let content_type = HeaderValue::from_str(mime.as_ref())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Some(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            file.data.into_owned(),
        )
            .into_response(),
    )
}

fn page(name: &str) -> Response {
    file(name).unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("{name} is not part of this build of the web front end\n"),
        )
            .into_response()
    })
}

/// `GET /` and `GET /r/{room}`: the viewer page.
pub async fn index() -> Response {
    page("index.html")
}

/// `GET /r/{room}`.
pub async fn room_page(Path(_room): Path<String>) -> Response {
    page("index.html")
}

/// `GET /publish`: the artist page.
pub async fn publish() -> Response {
    page("publish.html")
}

/// `GET /admin`: the admin console.
pub async fn admin() -> Response {
    page("admin.html")
}

/// Any other path: an embedded file, or 404 (JSON under `/api/`).
pub async fn fallback(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" {
        return super::error::ApiError::NotFound(format!("no API endpoint {}", uri.path()))
            .into_response();
    }
    if !path.is_empty()
        && !path.ends_with('/')
        && let Some(r) = file(path)
    {
        return r;
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
