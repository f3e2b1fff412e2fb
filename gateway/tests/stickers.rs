//! Uploaded sticker sets through the real router: pictures are type-checked, size-limited,
//! stored, served sandboxed, usable in a set definition, and the set can be made active.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const SVG: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><circle cx=\"5\" cy=\"5\" r=\"4\" fill=\"#f0a\"/></svg>";
const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR";

async fn put_image(
    s: &Server,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    auth: bool,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(Method::PUT)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if auth {
        req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    }
    let res = s
        .router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn upload_serve_and_activate_a_sticker_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(config(dir.path())).await;
    let path = "/api/admin/sticker-sets/party/images/dot";

    // Admin only.
    assert_eq!(
        put_image(&s, path, "image/svg+xml", SVG.to_vec(), false)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The body must be what the Content-Type says, of an allowed type.
    assert_eq!(
        put_image(&s, path, "image/png", SVG.to_vec(), true).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        put_image(&s, path, "text/html", b"<html>".to_vec(), true)
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        put_image(&s, path, "image/svg+xml", b"<html><svg>".to_vec(), true)
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    // Too large, bad ids.
    let mut big = PNG_HEAD.to_vec();
    big.resize(300 * 1024, 0);
    assert_eq!(
        put_image(&s, path, "image/png", big, true).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        put_image(
            &s,
            "/api/admin/sticker-sets/Bad%20Set/images/x",
            "image/svg+xml",
            SVG.to_vec(),
            true
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );

    let (status, body) =
        put_image(&s, path, "image/svg+xml; charset=utf-8", SVG.to_vec(), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap().to_string();
    assert_eq!(url, "/stickers/custom/party/dot");
    let (status, _) = put_image(
        &s,
        "/api/admin/sticker-sets/party/images/spark",
        "image/png",
        PNG_HEAD.to_vec(),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Served publicly, with the stored type, nosniff and a sandboxing CSP.
    let res = s
        .router
        .clone()
        .oneshot(Request::get(&url).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes().as_ref(),
        SVG
    );
    let res = s
        .router
        .clone()
        .oneshot(
            Request::get("/stickers/custom/party/nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A set made of the uploads becomes the room's active set, and clients get it.
    let (status, body) = s
        .admin(
            Method::PUT,
            "/api/admin/sticker-sets/party",
            Some(json!({"name": "Party", "stickers": [
                {"id": "dot", "url": url, "label": "Dot"},
                {"id": "spark", "url": "/stickers/custom/party/spark", "label": "Spark"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut viewer = Client::join(&s.ws_url("main"), "Vi").await;
    let (status, body) = s
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/settings",
            Some(json!({"sticker_set": "party"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kind = viewer
        .saw_event(|k| matches!(k, venue_proto::v1::event::Kind::Settings(st) if st.sticker_set.as_ref().is_some_and(|set| set.id == "party")))
        .await;
    let venue_proto::v1::event::Kind::Settings(st) = kind else {
        panic!()
    };
    let set = st.sticker_set.unwrap();
    assert_eq!(set.stickers.len(), 2);
    assert_eq!(set.stickers[0].url, "/stickers/custom/party/dot");
}
