//! Unit tests of `lib.rs` (kept in their own file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn stage_round_trips() {
    let msg = v1::ServerMessage {
        body: Some(v1::server_message::Body::Stage(v1::StageState {
            title: "Main".into(),
            layout: 2,
            slots: vec![v1::StageSlot {
                index: 0,
                streamer_id: 7,
                name: "a".into(),
                live: true,
            }],
            revision: 3,
            viewer_count: 1,
        })),
    };
    let bytes = encode_server(&msg);
    let back = v1::ServerMessage::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(back, msg);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(matches!(
        decode_client(&[0xff, 0xff, 0xff]),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode_client(&vec![0u8; MAX_FRAME_BYTES + 1]),
        Err(DecodeError::TooLarge(_))
    ));
}
