//! HTTPS through the real server (`App::serve_tls`) on a loopback port with a self-signed
//! certificate made by rcgen: HTTP/2 is negotiated by ALPN for clients that offer it
//! (`/healthz`, an LL-HLS playlist 200 and a 404, a part), HTTP/1.1-only clients still work,
//! a WebSocket upgrade works over HTTP/1.1 on TLS, and a bad certificate/key pair is refused
//! with an error naming the config key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use reqwest::Version;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use venue_gateway::build_app;
use venue_gateway::http::tls::TlsConfig;
use venue_proto::Message as _;
use venue_sfu::egress::hls::HlsConfig;
use venue_sfu::egress::{ProgramAudio, ProgramFormat, ProgramVideo};

struct Tls {
    addr: SocketAddr,
    app_state: venue_gateway::Services,
    /// The self-signed certificate (DER), trusted by the test clients.
    cert: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

/// Writes a self-signed certificate for `localhost` / 127.0.0.1 and its key as PEM files into
/// `dir` and starts the server with them.
async fn serve_tls() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let mut config = common::config(dir.path());
    config.http.tls_cert = Some(cert_path.clone());
    config.http.tls_key = Some(key_path.clone());
    config.validate().unwrap();
    let tls = TlsConfig::from_pem_files(&cert_path, &key_path).unwrap();
    let app = build_app(&config).await.unwrap();
    let app_state = app.services.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve_tls(listener, tls, std::future::pending()));
    Tls {
        addr,
        app_state,
        cert: certified.cert.der().clone(),
        _dir: dir,
    }
}

impl Tls {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A reqwest client trusting only our certificate, `localhost` resolved to the server.
    fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Client {
        builder
            .tls_certs_only([reqwest::Certificate::from_der(&self.cert).unwrap()])
            .resolve("localhost", self.addr)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }
}

fn synthetic_format() -> ProgramFormat {
    ProgramFormat {
        width: 1280,
        height: 720,
        fps: 30,
        sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40]),
        pps: Bytes::from_static(&[0x68, 0xce, 0x0f, 0x2c, 0x80]),
        audio_channels: 2,
    }
}

/// Starts a program in `main` and pushes 3 s of synthetic pictures (keyframe every 60).
fn start_synthetic_program(state: &venue_gateway::Services) -> u64 {
    let program = state
        .hls
        .start("main", HlsConfig::default(), synthetic_format())
        .unwrap();
    for i in 0..90u64 {
        for k in (i * 1600).div_ceil(960)..((i + 1) * 1600).div_ceil(960) {
            program.push_audio(ProgramAudio {
                opus: Bytes::from_static(&[31 << 3, 0xaa]),
                ts_48k: k * 960,
            });
        }
        let keyframe = i % 60 == 0;
        let slice: &'static [u8] = if keyframe {
            &[0x65, 0x88, 1]
        } else {
            &[0x41, 0x9a, 2]
        };
        program.push_video(
            ProgramVideo {
                nalus: vec![Bytes::from_static(slice)],
                keyframe,
                pts_90k: i * 3000,
            },
            SystemTime::now(),
        );
    }
    program.with(|p| p.config().first_msn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_and_still_serves_http1() {
    let server = serve_tls().await;
    let first_msn = start_synthetic_program(&server.app_state);

    // A client offering h2 and http/1.1 (reqwest's default with the `http2` feature) gets h2.
    let h2 = server.client(reqwest::Client::builder());
    let r = h2.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");

    let r = h2
        .get(server.url("/hls/nosuchroom/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["cache-control"], "no-store");

    let r = h2
        .get(server.url("/hls/main/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        venue_gateway::http::hls::PLAYLIST_TYPE
    );
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let playlist = r.text().await.unwrap();
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");

    // Several requests multiplexed on the one HTTP/2 connection.
    let part = format!("/hls/main/part{first_msn}.0.m4s");
    let fetches = (0..8).map(|_| h2.get(server.url(&part)).send());
    for r in futures_util::future::join_all(fetches).await {
        let r = r.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["cache-control"],
            venue_gateway::http::hls::CACHE_IMMUTABLE
        );
        assert!(!r.bytes().await.unwrap().is_empty());
    }

    // An HTTP/1.1-only client (ALPN http/1.1) still works.
    let h1 = server.client(reqwest::Client::builder().http1_only());
    let r = h1.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.status(), 200);
    let r = h1
        .get(server.url("/hls/main/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.status(), 200);

    // Plain HTTP to the TLS port gets no answer as HTTP (the handshake fails; the server lives).
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("http://{}/healthz", server.addr))
            .send()
            .await
            .is_err()
    );
    let r = h2.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the server still serves after a bad client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_works_over_http1_on_tls() {
    let server = serve_tls().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let url = format!("wss://localhost:{}/api/rooms/main/ws", server.addr.port());
    let (mut ws, response) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    // The room talks: after our hello the server sends its Hello (decodable protobuf).
    let hello = venue_proto::v1::ClientMessage {
        body: Some(venue_proto::v1::client_message::Body::Hello(
            venue_proto::v1::ClientHello {
                protocol_version: venue_proto::PROTOCOL_VERSION,
                display_name: "tls-viewer".into(),
                admin_token: String::new(),
            },
        )),
    };
    ws.send(Message::Binary(hello.encode_to_vec().into()))
        .await
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a frame within 10 s")
        .expect("the socket is open")
        .unwrap();
    let Message::Binary(bytes) = frame else {
        panic!("a binary frame, got {frame:?}")
    };
    let message = venue_gateway::hub::codec::decode_server(&bytes).unwrap();
    assert!(message.body.is_some(), "{message:?}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_with_the_config_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
    let err = TlsConfig::from_pem_files(&cert, &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("http.tls_cert"), "{err}");

    let missing = dir.path().join("missing.pem");
    let err = TlsConfig::from_pem_files(&missing, &key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http.tls_cert") && err.contains("missing.pem"),
        "{err}"
    );
    // A certificate file given as the key: no private key in it.
    let err = TlsConfig::from_pem_files(&cert, &cert)
        .unwrap_err()
        .to_string();
    assert!(err.contains("http.tls_key"), "{err}");
    // A key file given as the certificate: no certificate in it.
    let err = TlsConfig::from_pem_files(&key, &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("http.tls_cert"), "{err}");

    let ok = TlsConfig::from_pem_files(&cert, &{
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        key.clone()
    })
    .unwrap();
    assert_eq!(
        ok.rustls().alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
