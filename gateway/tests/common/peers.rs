//! Media helpers of the cluster tests: admin calls, WHIP publishers and WHEP viewers as
//! str0m peers over HTTP, decoding what a viewer received, stepping peers with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use venue_tests::h264::{depacketize, ffprobe_decode};
use venue_tests::media_peer::{MediaPeer, Playback};

use super::ADMIN;
use super::cluster::Node;

/// An admin call on `node`: the JSON answer (asserting a 2xx).
pub async fn admin(
    client: &reqwest::Client,
    node: &Node,
    method: &str,
    path: &str,
    body: Value,
) -> Value {
    let r = client
        .request(method.parse().unwrap(), node.url(path))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Posts `offer` to `url` (WHIP with `key`, or WHEP) and returns the SDP answer.
pub async fn post_sdp(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    offer: String,
) -> String {
    let mut req = client
        .post(url)
        .header("content-type", "application/sdp")
        .body(offer);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    text
}

/// A WHIP publisher (video + audio, sendonly, frame mode) live on `node` with `key`.
pub async fn publisher(client: &reqwest::Client, node: &Node, key: &str) -> MediaPeer {
    let mut p = MediaPeer::new(false).unwrap();
    let mut api = p.rtc.sdp_api();
    let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = post_sdp(
        client,
        node.url("/api/whip"),
        Some(key),
        offer.to_sdp_string(),
    )
    .await;
    p.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    p.video_mid = Some(v);
    p.audio_mid = Some(a);
    p
}

/// A WHEP viewer of room `main` on `node`: two video + audio pairs (stage slots 0 and 1), RTP
/// mode. Returns the peer and its two video m-lines.
pub async fn viewer(client: &reqwest::Client, node: &Node) -> (MediaPeer, [Mid; 2]) {
    let mut p = MediaPeer::new(true).unwrap();
    let mut api = p.rtc.sdp_api();
    let v0 = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let v1 = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = post_sdp(
        client,
        node.url("/api/whep/main"),
        None,
        offer.to_sdp_string(),
    )
    .await;
    p.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    (p, [v0, v1])
}

/// What the viewer decoded on video m-line `mid` from its `from`-th video packet on: (pictures,
/// width, height).
pub fn decoded(viewer: &MediaPeer, mid: Mid, from: usize) -> (u64, u32, u32) {
    let mut packets: Vec<(u64, Vec<u8>)> = viewer.video[from..]
        .iter()
        .filter(|r| r.mid == mid)
        .map(|r| (r.seq, r.payload.clone()))
        .collect();
    packets.sort_by_key(|(seq, _)| *seq);
    packets.dedup_by_key(|(seq, _)| *seq);
    let payloads: Vec<Vec<u8>> = packets.into_iter().map(|(_, p)| p).collect();
    match ffprobe_decode(&depacketize(&payloads)) {
        Ok(d) => (d.frames, d.width, d.height),
        Err(_) => (0, 0, 0),
    }
}

/// An ffmpeg-made H.264 stream (`w`x`h`, 30 fps, GOP 30) and a stereo Opus tone of `secs`,
/// to be played from now on.
pub fn playback(w: u32, h: u32, secs: f32) -> Playback {
    Playback::new(
        venue_tests::media_files::ffmpeg_h264(secs, w, h, 30, 30).unwrap(),
        venue_tests::media_files::ffmpeg_opus(secs, 2).unwrap(),
    )
}

/// Steps `peers` (the first one plays `play` when given) until `done` holds; panics after
/// `limit` with `what`. Runs on a blocking thread of the test's runtime.
pub fn run_until(
    peers: &mut [&mut MediaPeer],
    mut play: Option<&mut Playback>,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&[&mut MediaPeer]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(play) = play.as_deref_mut() {
            let _ = play.tick(peers[0]);
        }
        for p in peers.iter_mut() {
            p.step();
        }
        if done(peers) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("not within {limit:?}: {what}");
}
