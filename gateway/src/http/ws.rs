//! `GET /api/rooms/{room}/ws`: the room's events over a WebSocket (RFC 6455), for HLS viewers
//! and clients without WebRTC. Same protobuf frames as the data channels: binary messages,
//! one `ClientMessage` / `ServerMessage` each (see `proto/venue.proto`).
//!
//! - 404 for an unknown room (before the upgrade), 400/426 for a request that is no upgrade.
//! - Text messages are offences (`NOTICE_CODE_BAD_MESSAGE`); messages over
//!   [`MAX_MESSAGE_BYTES`] end the connection at the protocol layer; messages over 16 KiB but
//!   under that are dropped and counted by the hub.
//! - The client's IP is the TCP peer address (needs `into_make_service_with_connect_info`),
//!   or, when that peer is one of `http.trusted_proxies`, the rightmost untrusted address of
//!   `X-Forwarded-For` ([`client_ip`]); the hub only keeps its salted hash.
//! - One reader (this handler) and one writer task per connection; the writer drains the
//!   connection's bounded queue ([`crate::hub::QueuePolicy`]) and sends a ping every
//!   [`PING_INTERVAL`]; a connection silent for [`IDLE_TIMEOUT`] is closed. When the hub closes
//!   a connection its notice is sent, then a close frame (1008 policy violation, or 1013 for a
//!   client that was too slow). The notice jumps the queue: it is written directly.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};

use super::AppState;
use super::error::ApiError;
use crate::hub::shell::{HubHandle, WsSession};

/// Largest message the WebSocket layer accepts before closing the connection (bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Interval of the server's keep-alive pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// A connection that sends nothing (not even a pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// A write that takes longer than this ends the connection (the peer stopped reading).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the writer waits to deliver the closing notice.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /api/rooms/{room}/ws`.
pub async fn upgrade(
    State(app): State<AppState>,
    Path(room): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let hub = match app.state.hub(&room).await {
        Ok(Some(hub)) => hub,
        Ok(None) => return ApiError::NotFound(format!("no room {room:?}")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let ip = peer.map(|Extension(ConnectInfo(addr))| {
        super::extract::client_ip(addr.ip(), &headers, &app.settings.trusted_proxies)
    });
    let capacity = app.settings.ws_queue.capacity;
    // Frames are fed into a write buffer and flushed once per burst (see `write`).
    ws.read_buffer_size(1024)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            match hub.ws_connect(ip, capacity).await {
                Ok(session) => serve(socket, hub, session).await,
                Err(e) => tracing::debug!(error = %e, "WebSocket refused"),
            }
        })
}

/// Bytes collected before tungstenite writes to the socket; every burst is flushed anyway.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

async fn serve(socket: WebSocket, hub: HubHandle, session: WsSession) {
    let WsSession { conn, queue, kill } = session;
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write(sink, queue, kill));
    loop {
        tokio::select! {
            _ = &mut writer => break,
            msg = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => {
                let result = match msg {
                    Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(Message::Binary(data)))) => hub.ws_frame(conn, data).await,
                    Ok(Some(Ok(Message::Text(_)))) => {
                        hub.ws_bad(conn, "text frames are not part of the protocol; send binary protobuf").await
                    }
                    Ok(Some(Ok(_))) => Ok(()),
                };
                if result.is_err() {
                    break;
                }
            }
        }
    }
    hub.ws_closed(conn).await;
    writer.abort();
}

async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: tokio::sync::mpsc::Receiver<Bytes>,
    mut kill: tokio::sync::oneshot::Receiver<Bytes>,
) {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            notice = &mut kill => {
                if let Ok(notice) = notice {
                    let too_slow = is_too_slow(&notice);
                    let code = if too_slow { close_code::AGAIN } else { close_code::POLICY };
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                        sink.send(Message::Binary(notice)).await?;
                        sink.send(Message::Close(Some(CloseFrame {
                            code,
                            reason: "closed by the server".into(),
                        })))
                        .await
                    })
                    .await;
                }
                break;
            }
            frame = queue.recv() => {
                let Some(frame) = frame else { break };
                // Everything already queued (a tick's reliable and lossy batch, say) goes out in
                // one write: feed into the write buffer, then one flush.
                let burst = async {
                    sink.feed(Message::Binary(frame)).await?;
                    while let Ok(more) = queue.try_recv() {
                        sink.feed(Message::Binary(more)).await?;
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(SEND_TIMEOUT, burst).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Whether `notice` is the too-slow notice (closed with 1013, "try again later").
fn is_too_slow(notice: &Bytes) -> bool {
    matches!(
        crate::hub::codec::decode_server(notice),
        Ok(venue_proto::v1::ServerMessage {
            body: Some(venue_proto::v1::server_message::Body::Notice(n)),
        }) if n.code == venue_proto::v1::NoticeCode::TooSlow as i32
    )
}
