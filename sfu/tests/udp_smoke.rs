//! Real-socket smoke test: the running media plane (`SfuHandle`, two shards on loopback UDP)
//! forwards a str0m publisher's media to a subscriber on the other shard, with real ICE and
//! DTLS-SRTP. Waits poll a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use str0m::Event;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime};
use venue_sfu::{ParticipantId, RoomId, SfuConfig, SfuError, SfuHandle, SubscribeTarget};
use venue_tests::peer::LoopbackPeer;

/// A loopback peer and what it saw.
struct Client {
    peer: LoopbackPeer,
    received: usize,
    keyframe_asked: bool,
}

impl Client {
    fn new(rtp_mode: bool) -> Client {
        Client {
            peer: LoopbackPeer::new(rtp_mode).unwrap(),
            received: 0,
            keyframe_asked: false,
        }
    }

    fn step(&mut self) {
        let (received, asked) = (&mut self.received, &mut self.keyframe_asked);
        self.peer
            .step(|_, e| match e {
                Event::RtpPacket(_) => *received += 1,
                Event::KeyframeRequest(_) => *asked = true,
                _ => {}
            })
            .unwrap();
    }
}

/// What OBS sends: an offer with no candidates at all (RFC 9725 §4.1 lets the client trickle
/// or not at all). The ICE-lite server learns the address from the client's STUN checks.
fn without_candidates(sdp: &str) -> String {
    let kept: Vec<&str> = sdp
        .lines()
        .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
        .collect();
    assert!(
        kept.len() < sdp.lines().count(),
        "the client's offer had candidates to strip"
    );
    kept.join("\r\n") + "\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_crosses_shards_over_loopback_udp() {
    let config = SfuConfig {
        base_port: 0,
        shards: 2,
        candidate_ips: vec!["127.0.0.1".parse().unwrap()],
        ..SfuConfig::default()
    };
    let (sfu, mut events) = SfuHandle::start(config).unwrap();
    assert_eq!(sfu.addrs().shards.len(), 2);
    let room = RoomId(1);

    // Bad input gets errors, not panics.
    assert!(matches!(
        sfu.publish(room, ParticipantId(9), "garbage").await,
        Err(SfuError::BadOffer(_))
    ));
    assert!(matches!(
        sfu.close(venue_sfu::SessionId(0x1234_5600)).await,
        Err(SfuError::UnknownSession)
    ));

    let mut publisher = Client::new(false);
    let mut api = publisher.peer.rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let ans = sfu
        .publish(
            room,
            ParticipantId(1),
            &without_candidates(&offer.to_sdp_string()),
        )
        .await
        .unwrap();
    publisher
        .peer
        .rtc
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&ans.answer_sdp).unwrap(),
        )
        .unwrap();
    sfu.set_stage(room, vec![Some(ParticipantId(1))])
        .await
        .unwrap();

    let mut viewer = Client::new(true);
    let mut api = viewer.peer.rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let sub = sfu
        .subscribe(room, SubscribeTarget::Stage, &offer.to_sdp_string())
        .await
        .unwrap();
    viewer
        .peer
        .rtc
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&sub.answer_sdp).unwrap(),
        )
        .unwrap();
    assert_ne!(
        ans.session.shard(),
        sub.session.shard(),
        "round-robin puts them on different shards"
    );

    let handle = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = Instant::now();
        let mut frame = 0u64;
        let mut next = Instant::now();
        while Instant::now() < deadline && viewer.received < 60 {
            if publisher.peer.rtc.is_connected() && Instant::now() >= next {
                next += Duration::from_millis(33);
                frame += 1;
                let key = frame == 1 || std::mem::take(&mut publisher.keyframe_asked);
                let mut data = if key {
                    vec![
                        0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0,
                        0, 0, 1, 0x65,
                    ]
                } else {
                    vec![0, 0, 0, 1, 0x41]
                };
                data.extend(std::iter::repeat_n(7u8, 500));
                let w = publisher.peer.rtc.writer(video).unwrap();
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::H264)
                    .unwrap()
                    .pt();
                w.write(
                    pt,
                    Instant::now(),
                    MediaTime::from_90khz(frame * 3000),
                    data,
                )
                .unwrap();
            }
            publisher.step();
            viewer.step();
        }
        (viewer.received, start.elapsed())
    });
    let (received, took) = handle.await.unwrap();
    assert!(
        received >= 60,
        "viewer received {received} RTP packets in {took:?}"
    );

    let mut saw_up = false;
    while let Ok(e) = events.try_recv() {
        saw_up |= matches!(e, venue_sfu::SfuEvent::PublisherUp { .. });
    }
    assert!(saw_up, "PublisherUp reported");
    sfu.close(sub.session).await.unwrap();
    sfu.close(ans.session).await.unwrap();
}
