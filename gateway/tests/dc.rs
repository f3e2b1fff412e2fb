//! The living room over WebRTC data channels, through the real server: a str0m viewer joins
//! over WHEP with the `venue` channel (loopback UDP, real ICE, DTLS and SCTP), says hello on
//! it, and chats with a WebSocket client in the same room; each sees the other's message.
//! The str0m client is paced by its 1 ms socket read timeout, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::Method;
use common::*;
use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind};
use venue_gateway::hub::codec::decode_server;
use venue_proto::Message;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as C;
use venue_proto::v1::event::Kind as E;
use venue_proto::v1::server_message::Body as S;
use venue_tests::peer::LoopbackPeer;

/// A loopback str0m viewer with the `venue` channel, and what it heard on it.
struct Viewer {
    peer: LoopbackPeer,
    channel: Option<ChannelId>,
    hello: Option<v1::Hello>,
    snapshot: Option<v1::Snapshot>,
    chats: Vec<v1::ChatMessage>,
}

impl Viewer {
    fn new() -> Viewer {
        Viewer {
            peer: LoopbackPeer::new(false).unwrap(),
            channel: None,
            hello: None,
            snapshot: None,
            chats: Vec::new(),
        }
    }

    fn send(&mut self, body: C) {
        let bytes = v1::ClientMessage { body: Some(body) }.encode_to_vec();
        let id = self.channel.expect("channel open");
        self.peer
            .rtc
            .channel(id)
            .unwrap()
            .write(true, &bytes)
            .unwrap();
    }

    fn step(&mut self) {
        let Viewer {
            peer,
            channel,
            hello,
            snapshot,
            chats,
        } = self;
        peer.step(|_, e| match e {
            Event::ChannelOpen(id, label) if label == "venue" => *channel = Some(id),
            Event::ChannelData(d) => {
                let Ok(msg) = decode_server(&d.data) else {
                    return;
                };
                match msg.body {
                    Some(S::Hello(h)) => *hello = Some(h),
                    Some(S::Snapshot(s)) => *snapshot = Some(s),
                    Some(S::Batch(b)) => {
                        for e in b.events {
                            if let Some(E::Chat(m)) = e.kind {
                                chats.push(m);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        })
        .unwrap();
    }

    /// Steps until `done` or the deadline; returns whether `done` became true.
    fn drive(&mut self, secs: u64, done: impl Fn(&Viewer) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_channel_viewer_and_a_websocket_client_chat_with_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(config(dir.path())).await;

    let mut viewer = Viewer::new();
    let mut api = viewer.peer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_channel("venue".into());
    let (offer, pending) = api.apply().unwrap();
    let answer = server.whep("main", &offer.to_sdp_string()).await;
    viewer
        .peer
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let mut ws = Client::join(&server.ws_url("main"), "Webby").await;

    let dc = tokio::task::spawn_blocking(move || {
        assert!(
            viewer.drive(15, |v| v.channel.is_some()),
            "venue channel opens"
        );
        viewer.send(C::Hello(v1::ClientHello {
            protocol_version: venue_proto::PROTOCOL_VERSION,
            display_name: "Rtc".into(),
            admin_token: String::new(),
        }));
        assert!(
            viewer.drive(10, |v| v.snapshot.is_some()),
            "hello and snapshot over the data channel"
        );
        viewer.send(C::Chat(v1::ChatSend {
            text: "hi from WebRTC".into(),
        }));
        let got = viewer.drive(15, |v| {
            v.chats.iter().any(|m| m.text == "hi from WebSocket")
        });
        (viewer, got)
    });

    // The WebSocket client sees the viewer join and chat, and answers.
    ws.until_event(|e| matches!(e, E::UserJoined(u) if u.display_name == "Rtc"))
        .await;
    let E::Chat(m) = ws
        .until_event(|e| matches!(e, E::Chat(m) if m.text == "hi from WebRTC"))
        .await
    else {
        unreachable!()
    };
    assert_eq!(m.display_name, "Rtc");
    ws.send(chat("hi from WebSocket")).await;

    let (viewer, got) = dc.await.unwrap();
    assert!(got, "the data-channel viewer saw the WebSocket chat");
    let hello = viewer.hello.unwrap();
    assert_eq!(hello.display_name, "Rtc");
    assert!(
        viewer
            .snapshot
            .unwrap()
            .users
            .iter()
            .any(|u| u.display_name == "Webby")
    );
    let (_, users) = server
        .admin(Method::GET, "/api/admin/rooms/main/users", None)
        .await;
    let transports: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["transport"].as_str().unwrap())
        .collect();
    assert!(transports.contains(&"data_channel"), "{users}");
    assert!(transports.contains(&"websocket"), "{users}");
}
