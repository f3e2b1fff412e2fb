//! Shared helpers of the interaction integration tests: a real server on a loopback port and
//! WebSocket clients (tokio-tungstenite) that speak the protobuf protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;
use venue_gateway::build_app;
use venue_gateway::config::{Config, RtmpConfig, Secret};
use venue_gateway::hub::codec::decode_server;
use venue_proto::Message;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as C;
use venue_proto::v1::server_message::Body as S;

pub mod cluster;
pub mod peers;

pub const ADMIN: &str = "test-admin-token";

pub struct Server {
    pub addr: SocketAddr,
    pub router: Router,
    pub dir: std::path::PathBuf,
}

pub fn config(dir: &std::path::Path) -> Config {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut config = Config {
        data_dir: dir.to_owned(),
        admin_token: Some(Secret::new(ADMIN)),
        media: venue_sfu::SfuConfig {
            base_port: 0,
            shards: 1,
            bind_ip: loopback,
            candidate_ips: vec![loopback],
            ..Default::default()
        },
        ..Default::default()
    };
    // Every test client comes from 127.0.0.1: per-IP limits would make them share one budget.
    config.interaction.limits.per_ip_factor = 0;
    config
}

/// Builds the app on `dir` and serves it on an ephemeral loopback port.
pub async fn serve(config: Config) -> Server {
    let dir = config.data_dir.clone();
    let app = build_app(&config).await.expect("app builds");
    let router = app.router.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    Server { addr, router, dir }
}

/// Like [`serve`], and RTMP ingest with `rtmp` on an ephemeral loopback port (its `listen` is
/// replaced). Returns the server, the RTMP address and the services (schedule clock, stores).
pub async fn serve_rtmp(
    config: Config,
    rtmp: RtmpConfig,
) -> (Server, SocketAddr, venue_gateway::Services) {
    let dir = config.data_dir.clone();
    let app = build_app(&config).await.expect("app builds");
    let state = app.services.clone();
    let rtmp = venue_gateway::media::rtmp::spawn(
        app.rtmp.clone(),
        RtmpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..rtmp
        },
    )
    .await
    .expect("RTMP listens");
    let router = app.router.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    (Server { addr, router, dir }, rtmp, state)
}

/// The RTMP publisher: Debian's ffmpeg sending `seconds` of a 640x360 test pattern and a tone.
pub fn ffmpeg_rtmp(rtmp: std::net::SocketAddr, key: &str, seconds: u32) -> KillOnDrop {
    let child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size=640x360:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={seconds}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"])
        .args(["-f", "flv", &format!("rtmp://{rtmp}/live/{key}")])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (.ci/run installs Debian's ffmpeg)");
    KillOnDrop(child)
}

/// A child process killed (and reaped) on drop: ffmpeg, nginx.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates streamer `name` in room `main`, puts it on slot 0 of a `layout`-tile stage and has
/// Debian's ffmpeg publish `seconds` of a 640x360 test pattern (x264 zerolatency, GOP 30) with
/// a 440 Hz AAC stereo tone to `rtmp`. Returns the streamer id and the running ffmpeg.
pub async fn tone_on_stage(
    server: &Server,
    rtmp: SocketAddr,
    name: &str,
    layout: u32,
    seconds: u32,
) -> (i64, KillOnDrop) {
    let (status, streamer) = server
        .admin(
            Method::POST,
            "/api/admin/rooms/main/streamers",
            Some(serde_json::json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{streamer}");
    let id = streamer["id"].as_i64().unwrap();
    let key = streamer["stream_key"].as_str().unwrap().to_string();
    let (status, _) = server
        .admin(
            Method::PUT,
            "/api/admin/rooms/main/stage",
            Some(serde_json::json!({"layout": layout, "slots": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ff = ffmpeg_rtmp(rtmp, &key, seconds);
    (id, ff)
}

impl Server {
    /// An admin API call: (status, JSON body or Null).
    pub async fn admin(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `POST /api/whep/{room}` with `offer`; asserts 201 and returns the SDP answer.
    #[allow(dead_code)] // not every test binary uses every helper
    pub async fn whep(&self, room: &str, offer: &str) -> String {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/whep/{room}"))
            .header(header::CONTENT_TYPE, "application/sdp")
            .body(Body::from(offer.to_owned()))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://{}/api/rooms/{room}/ws", self.addr)
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Option<v1::Hello>,
    pub snapshot: Option<v1::Snapshot>,
    /// Every message received, in order.
    pub log: Vec<v1::ServerMessage>,
    pub closed: bool,
}

pub fn small_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(small_config()), false)
                .await
                .expect("WebSocket connects");
        Client {
            ws,
            hello: None,
            snapshot: None,
            log: Vec::new(),
            closed: false,
        }
    }

    pub async fn send(&mut self, body: C) {
        let bytes = v1::ClientMessage { body: Some(body) }.encode_to_vec();
        self.ws.send(WsMessage::Binary(bytes.into())).await.unwrap();
    }

    pub async fn hello(&mut self, name: &str, token: &str) {
        self.send(C::Hello(v1::ClientHello {
            protocol_version: venue_proto::PROTOCOL_VERSION,
            display_name: name.into(),
            admin_token: token.into(),
        }))
        .await;
    }

    /// Joins and waits for `Hello` and the `Snapshot`.
    pub async fn join(url: &str, name: &str) -> Client {
        let mut c = Client::connect(url).await;
        c.hello(name, "").await;
        c.until(|m| matches!(m.body, Some(S::Snapshot(_)))).await;
        c
    }

    /// Reads one message (None: closed or 5 s without one).
    pub async fn next(&mut self) -> Option<v1::ServerMessage> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await;
            match msg {
                Ok(Some(Ok(WsMessage::Binary(b)))) => {
                    let m = decode_server(&b).expect("server frame decodes");
                    match &m.body {
                        Some(S::Hello(h)) => self.hello = Some(h.clone()),
                        Some(S::Snapshot(s)) => self.snapshot = Some(s.clone()),
                        _ => {}
                    }
                    self.log.push(m.clone());
                    return Some(m);
                }
                Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads until a message matches (panics after 5 s without one or on close).
    pub async fn until(&mut self, pred: impl Fn(&v1::ServerMessage) -> bool) -> v1::ServerMessage {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match self.next().await {
                Some(m) if pred(&m) => return m,
                Some(_) => {}
                None => break,
            }
        }
        let kinds: Vec<String> = self
            .log
            .iter()
            .map(|m| match &m.body {
                Some(S::Batch(b)) => format!(
                    "batch {} cursors={} events={:?}",
                    b.tick,
                    b.cursors.len(),
                    b.events
                        .iter()
                        .filter_map(|e| e.kind.as_ref())
                        .map(|k| format!("{k:?}").chars().take(60).collect::<String>())
                        .collect::<Vec<_>>()
                ),
                Some(S::Notice(n)) => format!("notice {n:?}"),
                Some(S::Hello(_)) => "hello".into(),
                Some(S::Snapshot(s)) => format!("snapshot tick {}", s.tick),
                other => format!("{other:?}"),
            })
            .collect();
        panic!("no matching message; closed={} log={kinds:#?}", self.closed);
    }

    /// Reads until an event matches in a batch.
    pub async fn until_event(
        &mut self,
        pred: impl Fn(&v1::event::Kind) -> bool,
    ) -> v1::event::Kind {
        let m = self
            .until(|m| match &m.body {
                Some(S::Batch(b)) => b.events.iter().filter_map(|e| e.kind.as_ref()).any(&pred),
                _ => false,
            })
            .await;
        let Some(S::Batch(b)) = m.body else {
            unreachable!()
        };
        b.events
            .into_iter()
            .filter_map(|e| e.kind)
            .find(|k| pred(k))
            .unwrap()
    }

    /// An event already received, or the next one that matches.
    pub async fn saw_event(&mut self, pred: impl Fn(&v1::event::Kind) -> bool) -> v1::event::Kind {
        let seen = self.log.iter().find_map(|m| match &m.body {
            Some(S::Batch(b)) => b
                .events
                .iter()
                .filter_map(|e| e.kind.as_ref())
                .find(|k| pred(k))
                .cloned(),
            _ => None,
        });
        match seen {
            Some(k) => k,
            None => self.until_event(pred).await,
        }
    }

    /// Reads until a notice arrives.
    pub async fn until_notice(&mut self) -> v1::Notice {
        let m = self.until(|m| matches!(m.body, Some(S::Notice(_)))).await;
        let Some(S::Notice(n)) = m.body else {
            unreachable!()
        };
        n
    }

    pub fn user_id(&self) -> u64 {
        self.hello.as_ref().expect("joined").user_id
    }
}

pub fn chat(text: &str) -> C {
    C::Chat(v1::ChatSend { text: text.into() })
}

/// A WHIP offer (audio + video, sendonly) from a str0m client, without candidates (like OBS).
pub fn publisher_offer() -> String {
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    api.add_media(
        str0m::media::MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, _pending) = api.apply().expect("offer");
    offer.to_sdp_string()
}

/// A WHEP offer from a str0m client: `k` recvonly video+audio pairs and a data channel.
pub fn viewer_offer(k: usize) -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut api = rtc.sdp_api();
    for _ in 0..k {
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    api.add_channel("venue".into());
    let (offer, _pending) = api.apply().expect("offer");
    offer.to_sdp_string()
}
