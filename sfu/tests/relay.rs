//! Origin → edge relay over real loopback UDP: two media planes (`SfuHandle`s) in one process,
//! str0m to str0m with real ICE and DTLS-SRTP. A publisher (a str0m peer sending an ffmpeg
//! H.264 stream and Opus) on the origin's stage slot 0 reaches a viewer on the edge through one
//! relay session; the viewer's PLI reaches the publisher; an origin stage switch reaches the
//! edge viewer without renegotiation and with continuous sequence numbers; simulcast layers
//! cross the relay; the relay-added latency is measured; closing the relay stops the media.
//! Waits poll a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Simulcast, SimulcastLayer};
use str0m::rtp::Ssrc;
use tokio::sync::mpsc::Receiver;
use venue_sfu::{
    Offer, ParticipantId, RelayOffer, RoomId, SessionId, SfuConfig, SfuError, SfuEvent, SfuHandle,
    SubscribeTarget,
};
use venue_tests::h264::{depacketize, ffprobe_decode};
use venue_tests::media_files::{ffmpeg_h264, ffmpeg_opus};
use venue_tests::media_peer::{MediaPeer as Peer, Playback, Rx};

/// A publisher on `sfu`: video (simulcast with `rids`) and audio, sendonly, frame mode.
async fn publish(sfu: &SfuHandle, room: RoomId, id: ParticipantId, rids: &[&str]) -> Peer {
    let mut p = Peer::new(false).unwrap();
    let mut api = p.rtc.sdp_api();
    let simulcast = (!rids.is_empty()).then(|| {
        let mut s = Simulcast::new();
        for r in rids {
            s.add_send_layer(SimulcastLayer::new(r));
        }
        s
    });
    let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
    let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let ans = sfu
        .publish(room, id, Offer::parse(&offer.to_sdp_string()).unwrap())
        .await
        .unwrap();
    p.rtc
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&ans.answer_sdp).unwrap(),
        )
        .unwrap();
    p.video_mid = Some(v);
    p.audio_mid = Some(a);
    p
}

/// A stage viewer on `sfu` (one video, one audio m-line), RTP mode.
async fn view(sfu: &SfuHandle, room: RoomId) -> (Peer, SessionId) {
    let mut p = Peer::new(true).unwrap();
    let mut api = p.rtc.sdp_api();
    let v = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let a = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let ans = sfu
        .subscribe(
            room,
            SubscribeTarget::Stage,
            Offer::parse(&offer.to_sdp_string()).unwrap(),
        )
        .await
        .unwrap();
    p.rtc
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&ans.answer_sdp).unwrap(),
        )
        .unwrap();
    p.video_mid = Some(v);
    p.audio_mid = Some(a);
    (p, ans.session)
}

/// Opens a relay of `room` from `edge` to `origin` (the signalling the gateway will do over
/// HTTP, here in-process). Returns the edge's relay and the origin's relay session.
async fn relay(origin: &SfuHandle, edge: &SfuHandle, room: RoomId) -> (RelayOffer, SessionId) {
    let r = edge.open_relay(room).await.unwrap();
    assert_eq!(r.participants.len(), edge.max_slots());
    let ans = origin
        .subscribe(
            room,
            SubscribeTarget::Relay,
            Offer::parse(&r.offer_sdp).unwrap(),
        )
        .await
        .unwrap();
    edge.relay_answer(r.session, &ans.answer_sdp).await.unwrap();
    (r, ans.session)
}

fn start() -> (SfuHandle, Receiver<SfuEvent>) {
    SfuHandle::start(SfuConfig {
        base_port: 0,
        shards: 2,
        candidate_ips: vec!["127.0.0.1".parse().unwrap()],
        ..SfuConfig::default()
    })
    .unwrap()
}

/// Steps every peer until `done` holds or `timeout` passes; `tick` runs first on each round
/// (to send media). Returns whether `done` held.
fn run(
    peers: &mut [&mut Peer],
    timeout: Duration,
    mut tick: impl FnMut(&mut [&mut Peer]),
    mut done: impl FnMut(&[&mut Peer]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        tick(peers);
        for p in peers.iter_mut() {
            p.step();
        }
        if done(peers) {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// As [`run`], with one closure that sends and says when it is done.
fn run1(
    peers: &mut [&mut Peer],
    timeout: Duration,
    mut f: impl FnMut(&mut [&mut Peer]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f(peers) {
            return true;
        }
        for p in peers.iter_mut() {
            p.step();
        }
        std::thread::yield_now();
    }
    false
}

fn drain_events(rx: &mut Receiver<SfuEvent>, into: &mut Vec<SfuEvent>) {
    while let Ok(e) = rx.try_recv() {
        into.push(e);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_slot_relayed_origin_to_edge() {
    let (origin, mut origin_events) = start();
    let (edge, mut edge_events) = start();
    let room = RoomId(7);
    let (p1_id, p2_id) = (ParticipantId(101), ParticipantId(102));

    // Bad input gets clear errors.
    assert!(matches!(
        edge.relay_answer(SessionId(0x55_00), "v=0\r\n").await,
        Err(SfuError::BadAnswer(_) | SfuError::UnknownSession)
    ));
    assert!(matches!(
        edge.relay_answer(SessionId(0x55_00), "garbage").await,
        Err(SfuError::BadAnswer(_))
    ));
    let bad = edge.open_relay(room).await.unwrap();
    let r = edge
        .relay_answer(
            bad.session,
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        )
        .await;
    assert!(matches!(r, Err(SfuError::BadAnswer(_))), "{r:?}");
    assert!(matches!(
        edge.close(bad.session).await,
        Err(SfuError::UnknownSession)
    ));

    let video1 = ffmpeg_h264(3.0, 320, 240, 30, 30).unwrap();
    let video2 = ffmpeg_h264(3.0, 256, 144, 30, 30).unwrap();
    let audio = ffmpeg_opus(3.0, 2).unwrap();

    let mut p1 = publish(&origin, room, p1_id, &[]).await;
    origin.set_stage(room, vec![Some(p1_id)]).await.unwrap();
    let (relay_offer, origin_relay) = relay(&origin, &edge, room).await;
    edge.set_stage(room, vec![Some(relay_offer.participants[0])])
        .await
        .unwrap();
    let (mut viewer, _) = view(&edge, room).await;
    let (mut direct, _) = view(&origin, room).await;

    // Everyone connects; the relay reports RelayUp.
    let connected = tokio::task::block_in_place(|| {
        run(
            &mut [&mut p1, &mut viewer, &mut direct],
            Duration::from_secs(10),
            |_| {},
            |ps| ps.iter().all(|p| p.rtc.is_connected()),
        )
    });
    assert!(connected, "publisher and viewers connected");
    let mut ev = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ev
        .iter()
        .any(|e| matches!(e, SfuEvent::RelayUp { session, .. } if *session == relay_offer.session))
    {
        assert!(Instant::now() < deadline, "RelayUp within 5 s");
        drain_events(&mut edge_events, &mut ev);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 1. The ffmpeg stream crosses the relay and decodes on the edge.
    let sent = video1.frames.len() as u64;
    let mut play = Playback::new(video1, audio.clone());
    tokio::task::block_in_place(|| {
        let mut finished_at: Option<Instant> = None;
        run1(
            &mut [&mut p1, &mut viewer, &mut direct],
            Duration::from_secs(10),
            |ps| {
                if play.tick(ps[0]).unwrap() && finished_at.is_none() {
                    finished_at = Some(Instant::now());
                }
                finished_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500))
            },
        )
    });
    let payloads: Vec<Vec<u8>> = viewer.video.iter().map(|r| r.payload.clone()).collect();
    let decoded = ffprobe_decode(&depacketize(&payloads)).unwrap();
    println!(
        "edge viewer: {} video packets, {} audio packets, {} of {sent} frames decoded ({}x{})",
        viewer.video.len(),
        viewer.audio,
        decoded.frames,
        decoded.width,
        decoded.height
    );
    assert_eq!((decoded.width, decoded.height), (320, 240));
    assert!(
        decoded.frames + 30 >= sent && decoded.frames <= sent,
        "decoded {} of {sent} frames",
        decoded.frames
    );
    assert!(
        viewer.audio > 50,
        "audio crossed the relay: {}",
        viewer.audio
    );

    // 2. A PLI from the edge viewer reaches the origin publisher.
    let ssrc = viewer.video.last().unwrap().ssrc;
    tokio::task::block_in_place(|| {
        run(
            &mut [&mut p1, &mut viewer],
            Duration::from_millis(600),
            |_| {},
            |_| false,
        )
    });
    p1.keyframe_requests = 0;
    viewer
        .rtc
        .direct_api()
        .stream_rx(&ssrc)
        .unwrap()
        .request_keyframe(KeyframeRequestKind::Pli);
    let asked = tokio::task::block_in_place(|| {
        run(
            &mut [&mut p1, &mut viewer],
            Duration::from_secs(3),
            |_| {},
            |ps| ps[0].keyframe_requests > 0,
        )
    });
    assert!(asked, "the edge viewer's PLI reached the origin publisher");

    // 3. Relay-added latency: single-packet frames numbered in their payload, every 4 ms;
    // publisher → origin viewer and → edge viewer, per packet.
    let (v0, d0) = (viewer.video.len(), direct.video.len());
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut ts = 1_000_000u64;
    let mut key_sent = false;
    tokio::task::block_in_place(|| {
        let mut next = Instant::now();
        run1(
            &mut [&mut p1, &mut viewer, &mut direct],
            Duration::from_secs(10),
            |ps| {
                if !key_sent {
                    // A keyframe first: forwarders that lost the stream during the pause wait
                    // for one.
                    key_sent = true;
                    ts += 360;
                    let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f];
                    data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
                    data.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88]);
                    data.extend(std::iter::repeat_n(0x55u8, 200));
                    ps[0].send_video(None, ts, data).unwrap();
                    next = Instant::now() + Duration::from_millis(50);
                }
                if sent_at.len() < 1200 && Instant::now() >= next {
                    next += Duration::from_millis(4);
                    let n = sent_at.len() as u32;
                    // The number in ASCII digits: binary could hold an Annex B start code.
                    let mut data = vec![0, 0, 0, 1, 0x41, 0x9a];
                    data.extend_from_slice(format!("{n:06}").as_bytes());
                    data.extend(std::iter::repeat_n(0x55u8, 198));
                    ts += 360;
                    ps[0].send_video(None, ts, data).unwrap();
                    sent_at.push(Instant::now());
                }
                sent_at.len() >= 1200
                    && sent_at.last().unwrap().elapsed() > Duration::from_millis(300)
            },
        )
    });
    let numbered = |rx: &[Rx]| -> HashMap<u32, Instant> {
        rx.iter()
            .filter(|r| r.payload.len() == 206 && r.payload[..2] == [0x41, 0x9a])
            .map(|r| {
                let n: u32 = std::str::from_utf8(&r.payload[2..8])
                    .unwrap()
                    .parse()
                    .unwrap();
                (n, r.at)
            })
            .collect()
    };
    let at_edge = numbered(&viewer.video[v0..]);
    let at_origin = numbered(&direct.video[d0..]);
    let mut to_edge = Vec::new();
    let mut added = Vec::new();
    for (n, t) in &at_edge {
        let s = sent_at[*n as usize];
        to_edge.push(t.saturating_duration_since(s));
        if let Some(o) = at_origin.get(n) {
            added.push(t.saturating_duration_since(*o));
        }
    }
    to_edge.sort();
    added.sort();
    println!(
        "numbered packets: {} sent, {} at the origin viewer, {} at the edge viewer",
        sent_at.len(),
        at_origin.len(),
        at_edge.len()
    );
    println!(
        "relay latency over {} packets: publisher → edge viewer p50 {:?} p99 {:?}; relay-added \
         (edge viewer − origin viewer, {} packets) p50 {:?} p99 {:?}",
        to_edge.len(),
        percentile(&to_edge, 0.5),
        percentile(&to_edge, 0.99),
        added.len(),
        percentile(&added, 0.5),
        percentile(&added, 0.99),
    );
    assert!(
        to_edge.len() >= 1000,
        "{} numbered packets reached the edge",
        to_edge.len()
    );
    assert!(added.len() >= 1000);

    // 4. The origin's stage slot 0 switches to a second publisher: same m-line and SSRC on the
    // edge, continuous sequence numbers, the new source decodes.
    let mut p2 = publish(&origin, room, p2_id, &[]).await;
    let ok = tokio::task::block_in_place(|| {
        run(
            &mut [&mut p2],
            Duration::from_secs(5),
            |_| {},
            |ps| ps[0].rtc.is_connected(),
        )
    });
    assert!(ok, "second publisher connected");
    let before = viewer.video.len();
    origin.set_stage(room, vec![Some(p2_id)]).await.unwrap();
    let sent2 = video2.frames.len() as u64;
    let mut play2 = Playback::new(video2, audio.clone());
    tokio::task::block_in_place(|| {
        let mut finished_at: Option<Instant> = None;
        run1(
            &mut [&mut p2, &mut viewer, &mut p1],
            Duration::from_secs(10),
            |ps| {
                if play2.tick(ps[0]).unwrap() && finished_at.is_none() {
                    finished_at = Some(Instant::now());
                }
                finished_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500))
            },
        )
    });
    let after = &viewer.video[before..];
    assert!(!after.is_empty(), "media after the switch");
    let ssrcs: std::collections::HashSet<Ssrc> = viewer.video.iter().map(|r| r.ssrc).collect();
    assert_eq!(
        ssrcs.len(),
        1,
        "one video stream on the edge viewer: no renegotiation"
    );
    let mut seqs: Vec<u64> = viewer.video.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let span = seqs.last().unwrap() - seqs.first().unwrap() + 1;
    println!(
        "edge viewer video: {} packets, sequence numbers span {span} (gaps {})",
        seqs.len(),
        span - seqs.len() as u64
    );
    assert_eq!(
        span,
        seqs.len() as u64,
        "sequence numbers continuous across the switch"
    );
    let payloads: Vec<Vec<u8>> = after.iter().map(|r| r.payload.clone()).collect();
    let decoded2 = ffprobe_decode(&depacketize(&payloads)).unwrap();
    println!(
        "after the switch: {} of {sent2} frames decoded ({}x{})",
        decoded2.frames, decoded2.width, decoded2.height
    );
    assert_eq!((decoded2.width, decoded2.height), (256, 144));
    assert!(decoded2.frames + 30 >= sent2, "decoded {}", decoded2.frames);

    // 5. Closing the relay: the edge viewer gets nothing more; the origin's relay subscriber
    // goes away.
    edge.close(relay_offer.session).await.unwrap();
    let mut play3 = Playback::new(ffmpeg_h264(2.0, 256, 144, 30, 30).unwrap(), audio);
    let mut settled = 0;
    tokio::task::block_in_place(|| {
        let t0 = Instant::now();
        run(
            &mut [&mut p2, &mut viewer],
            Duration::from_millis(1500),
            |ps| {
                play3.tick(ps[0]).unwrap();
                if t0.elapsed() < Duration::from_millis(200) {
                    settled = ps[1].video.len();
                }
            },
            |_| false,
        )
    });
    assert_eq!(
        viewer.video.len(),
        settled,
        "no media on the edge after close"
    );
    let mut ev = Vec::new();
    drain_events(&mut edge_events, &mut ev);
    assert!(
        ev.iter().any(
            |e| matches!(e, SfuEvent::RelayDown { session, .. } if *session == relay_offer.session)
        ),
        "RelayDown reported"
    );
    // The origin notices the silent edge (ICE consent) or the gateway closes it; either way
    // the relay subscriber is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gone_by_itself = false;
    let mut ev = Vec::new();
    while Instant::now() < deadline {
        drain_events(&mut origin_events, &mut ev);
        if ev.iter().any(
            |e| matches!(e, SfuEvent::SubscriberDown { session, .. } if *session == origin_relay),
        ) {
            gone_by_itself = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("origin relay subscriber ended by itself: {gone_by_itself}");
    if !gone_by_itself {
        origin.close(origin_relay).await.unwrap();
    }
    assert!(matches!(
        origin.close(origin_relay).await,
        Err(SfuError::UnknownSession)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_cross_the_relay() {
    let (origin, _oe) = start();
    // Two edges: one whose viewers start with a 100 kbit/s estimate, one with 3 Mbit/s.
    let edge_config = |bps| SfuConfig {
        base_port: 0,
        shards: 1,
        candidate_ips: vec!["127.0.0.1".parse().unwrap()],
        initial_bitrate_bps: bps,
        ..SfuConfig::default()
    };
    let (low_edge, _le) = SfuHandle::start(edge_config(100_000)).unwrap();
    let (high_edge, _he) = SfuHandle::start(edge_config(3_000_000)).unwrap();
    let room = RoomId(8);
    let id = ParticipantId(201);
    let mut p = publish(&origin, room, id, &["h", "l"]).await;
    origin.set_stage(room, vec![Some(id)]).await.unwrap();
    let mut viewers = Vec::new();
    for edge in [&low_edge, &high_edge] {
        let (relay_offer, _) = relay(&origin, edge, room).await;
        edge.set_stage(room, vec![Some(relay_offer.participants[0])])
            .await
            .unwrap();
        viewers.push(view(edge, room).await.0);
    }
    let (mut low, mut high) = (viewers.remove(0), viewers.remove(0));
    // Each layer's frames (one packet each) carry its name: 'H' (1000 bytes a frame, ~250
    // kbit/s) or 'L' (100 bytes, ~30 kbit/s).
    let mut frame = 0u64;
    let mut next = Instant::now();
    let last_tag = |v: &Peer| v.video.last().and_then(|r| r.payload.get(1).copied());
    let settled = tokio::task::block_in_place(|| {
        run(
            &mut [&mut p, &mut low, &mut high],
            Duration::from_secs(15),
            |ps| {
                if ps[0].rtc.is_connected() && Instant::now() >= next {
                    next += Duration::from_millis(33);
                    let key = frame.is_multiple_of(30)
                        || std::mem::take(&mut ps[0].keyframe_requests) > 0;
                    for (rid, tag, size) in [("h", b'H', 1000), ("l", b'L', 100)] {
                        let mut data = Vec::new();
                        if key {
                            data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f]);
                            data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
                            data.extend_from_slice(&[0, 0, 0, 1, 0x65, tag]);
                        } else {
                            data.extend_from_slice(&[0, 0, 0, 1, 0x41, tag]);
                        }
                        data.extend(std::iter::repeat_n(tag, size));
                        ps[0].send_video(Some(rid), frame * 3000, data).unwrap();
                    }
                    frame += 1;
                }
            },
            |ps| {
                ps[1].video.len() > 30
                    && ps[2].video.len() > 30
                    && last_tag(ps[1]) == Some(b'L')
                    && last_tag(ps[2]) == Some(b'H')
            },
        )
    });
    let tags = |v: &Peer| {
        v.video
            .iter()
            .filter_map(|r| r.payload.get(1).copied())
            .filter(|t| *t == b'H' || *t == b'L')
            .map(char::from)
            .collect::<std::collections::BTreeSet<char>>()
    };
    println!(
        "low-estimate edge viewer saw layers {:?} (last {:?}), high-estimate one {:?} (last {:?})",
        tags(&low),
        last_tag(&low).map(char::from),
        tags(&high),
        last_tag(&high).map(char::from)
    );
    assert!(
        settled,
        "the low-estimate edge viewer ends on the low layer, the other on the high one"
    );
}
