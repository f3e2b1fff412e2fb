//! Unit tests of `offer.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn mid_layout_follows_sdp_order() {
    let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\nm=audio 9 x 111\r\na=mid:4\r\n";
    let l = MidLayout::from_sdp(sdp);
    assert_eq!(l.video, vec![Mid::from("0"), Mid::from("2")]);
    assert_eq!(l.audio, vec![Mid::from("1"), Mid::from("4")]);
}

#[test]
fn bad_bodies_are_refused_with_the_reason_in_the_order_the_gateway_gave_it() {
    assert_eq!(Offer::parse("").unwrap_err(), OfferError::Empty);
    assert_eq!(Offer::parse(" \r\n").unwrap_err(), OfferError::Empty);
    assert_eq!(Offer::parse("hello").unwrap_err(), OfferError::NotSdp);
    assert_eq!(Offer::parse("v=0\r\n").unwrap_err(), OfferError::NoMedia);
    assert_eq!(
        Offer::parse(" v=0\r\nm=audio 9 x 111\r\n").unwrap_err(),
        OfferError::Invalid("an SDP body starts with \"v=0\"".into())
    );
    assert!(matches!(
        Offer::parse("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio\r\n"),
        Err(OfferError::Invalid(_))
    ));
    assert_eq!(
        OfferError::NotSdp.to_string(),
        "malformed SDP offer: it must start with \"v=0\" (RFC 8866 §5)"
    );
}
