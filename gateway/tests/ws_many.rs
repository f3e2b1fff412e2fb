//! More than 1,100 concurrent WebSocket clients in one room (the old 1,024-descriptor trap):
//! every client joins, gets its snapshot, and receives the batch carrying one chat message.
//! Loopback only, bounded in time; the test raises its own RLIMIT_NOFILE soft limit first
//! (server and clients share this process: two descriptors per client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use venue_gateway::hub::codec::decode_server;
use venue_proto::Message;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as C;
use venue_proto::v1::event::Kind as E;
use venue_proto::v1::server_message::Body as S;

const CLIENTS: usize = 1_150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_1100_websocket_clients_in_one_room_each_receive_the_batch() {
    let (before, soft, hard) = venue_gateway::raise_nofile_limit().unwrap();
    assert!(
        soft >= (2 * CLIENTS + 200) as u64,
        "RLIMIT_NOFILE soft {soft} (was {before}, hard {hard}) is too low for {CLIENTS} clients"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;
    let url = server.ws_url("main");
    let started = Instant::now();

    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let mut tasks = Vec::with_capacity(CLIENTS);
    for wave in 0..CLIENTS.div_ceil(100) {
        let mut connecting = Vec::new();
        for _ in 0..100.min(CLIENTS - wave * 100) {
            let url = url.clone();
            connecting.push(tokio::spawn(async move {
                let (ws, _) = tokio_tungstenite::connect_async_with_config(
                    url.as_str(),
                    Some(small_config()),
                    false,
                )
                .await
                .expect("connects");
                ws
            }));
        }
        for c in connecting {
            let mut ws = c.await.unwrap();
            let ready = ready_tx.clone();
            tasks.push(tokio::spawn(async move {
                let hello = v1::ClientMessage {
                    body: Some(C::Hello(v1::ClientHello {
                        protocol_version: venue_proto::PROTOCOL_VERSION,
                        display_name: String::new(),
                        admin_token: String::new(),
                    })),
                };
                ws.send(WsMessage::Binary(hello.encode_to_vec().into()))
                    .await
                    .unwrap();
                let mut snapshot = false;
                while let Some(Ok(msg)) = ws.next().await {
                    let WsMessage::Binary(b) = msg else { continue };
                    match decode_server(&b).unwrap().body {
                        Some(S::Snapshot(_)) if !snapshot => {
                            snapshot = true;
                            ready.send(()).await.unwrap();
                        }
                        Some(S::Batch(batch))
                            if snapshot
                                && batch.events.iter().any(|e| {
                                    matches!(&e.kind, Some(E::Chat(m)) if m.text == "hello, everyone")
                                }) =>
                        {
                            return true;
                        }
                        _ => {}
                    }
                }
                false
            }));
        }
    }
    drop(ready_tx);
    let deadline = Duration::from_secs(90);
    for i in 0..CLIENTS {
        tokio::time::timeout(deadline.saturating_sub(started.elapsed()), ready_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {i} of {CLIENTS} clients got their snapshot"))
            .unwrap();
    }
    let joined = started.elapsed();
    let (_, users) = server
        .admin(axum::http::Method::GET, "/api/admin/rooms/main/users", None)
        .await;
    assert_eq!(users["user_count"], CLIENTS);

    let mut speaker = Client::join(&url, "Speaker").await;
    speaker.send(chat("hello, everyone")).await;
    let mut received = 0;
    for t in tasks {
        let got = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), t)
            .await
            .expect("every client receives the batch in time")
            .unwrap();
        received += usize::from(got);
    }
    assert_eq!(received, CLIENTS);
    eprintln!(
        "{CLIENTS} clients joined in {joined:?}; all received the chat batch after {:?}",
        started.elapsed()
    );
}
