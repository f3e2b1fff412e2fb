//! Unit tests of `framing.rs` (RFC 4571 de-framing).

use super::*;

fn framed(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        encode(p, &mut out).unwrap();
    }
    out
}

fn drain(d: &mut Deframer) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame()? {
        frames.push(f.to_vec());
    }
    Ok(frames)
}

#[test]
fn encode_writes_a_big_endian_length_prefix() {
    let mut out = vec![9];
    encode(&[1, 2, 3], &mut out).unwrap();
    assert_eq!(out, vec![9, 0, 3, 1, 2, 3]);
    let big = vec![7u8; 0x1234];
    let mut out = Vec::new();
    encode(&big, &mut out).unwrap();
    assert_eq!(out[..2], [0x12, 0x34]);
    assert_eq!(out.len(), 2 + 0x1234);
}

#[test]
fn encode_refuses_empty_and_oversize_payloads() {
    let mut out = Vec::new();
    assert_eq!(encode(&[], &mut out), Err(FrameError::Empty));
    let huge = vec![0u8; MAX_FRAME + 1];
    assert_eq!(
        encode(&huge, &mut out),
        Err(FrameError::TooLong {
            len: MAX_FRAME + 1,
            max: MAX_FRAME
        })
    );
    assert!(out.is_empty(), "nothing appended on error");
    encode(&vec![1u8; MAX_FRAME], &mut out).unwrap();
    assert_eq!(out[..2], [0xff, 0xff]);
}

#[test]
fn two_frames_in_one_read() {
    let mut d = Deframer::new(MAX_FRAME);
    d.push(&framed(&[b"stun", b"dtls-record"]));
    assert_eq!(
        drain(&mut d).unwrap(),
        vec![b"stun".to_vec(), b"dtls-record".to_vec()]
    );
    assert_eq!(d.pending(), 0);
}

#[test]
fn partial_frames_wait_for_the_rest() {
    let wire = framed(&[&[0xaa; 300], &[0xbb; 5]]);
    // Every split point, including inside the length prefix.
    for cut in 0..wire.len() {
        let mut d = Deframer::new(MAX_FRAME);
        d.push(&wire[..cut]);
        let mut frames = drain(&mut d).unwrap();
        d.push(&wire[cut..]);
        frames.extend(drain(&mut d).unwrap());
        assert_eq!(frames, vec![vec![0xaa; 300], vec![0xbb; 5]], "cut at {cut}");
        assert_eq!(d.pending(), 0);
    }
    // One byte at a time.
    let mut d = Deframer::new(MAX_FRAME);
    let mut frames = Vec::new();
    for b in &wire {
        d.push(std::slice::from_ref(b));
        frames.extend(drain(&mut d).unwrap());
    }
    assert_eq!(frames.len(), 2);
    // A lone first byte of a length is not a frame.
    let mut d = Deframer::new(MAX_FRAME);
    d.push(&[0]);
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.pending(), 1);
}

#[test]
fn zero_length_is_an_error() {
    let mut d = Deframer::new(MAX_FRAME);
    let mut wire = framed(&[b"ok"]);
    wire.extend_from_slice(&[0, 0, 1, 2]);
    d.push(&wire);
    assert_eq!(d.next_frame(), Ok(Some(&b"ok"[..])));
    assert_eq!(d.next_frame(), Err(FrameError::Empty));
}

#[test]
fn oversize_is_an_error_before_the_body_arrives() {
    let mut d = Deframer::new(1500);
    d.push(&[0x05, 0xdd]); // 1501
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLong {
            len: 1501,
            max: 1500
        })
    );
    // At the limit is fine.
    let mut d = Deframer::new(1500);
    d.push(&framed(&[&[3u8; 1500]]));
    assert_eq!(drain(&mut d).unwrap(), vec![vec![3u8; 1500]]);
    // The limit never exceeds what the format can express.
    let mut d = Deframer::new(usize::MAX);
    d.push(&framed(&[&vec![1u8; MAX_FRAME]]));
    assert_eq!(drain(&mut d).unwrap()[0].len(), MAX_FRAME);
}

#[test]
fn garbage_reads_as_a_long_frame_that_never_completes() {
    // An HTTP request on the ICE-TCP port: "GE" = 0x4745 = 18245 bytes announced. The shell
    // closes such a connection (first frame must be STUN, and idle timeout); the deframer
    // itself only waits.
    let mut d = Deframer::new(MAX_FRAME);
    d.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(d.next_frame(), Ok(None));
    let mut small = Deframer::new(1500);
    small.push(b"GET / HTTP/1.1\r\n");
    assert!(matches!(
        small.next_frame(),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn stun_is_recognised_and_other_protocols_are_not() {
    // A Binding request with one 8-byte attribute (header 20 bytes, body 8).
    let mut stun = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]); // transaction id
    stun.extend_from_slice(&[0x80, 0x22, 0x00, 0x04, b'v', b'e', b'n', b'u']);
    assert!(looks_like_stun(&stun));
    // Length field not matching the frame.
    assert!(!looks_like_stun(&stun[..24]));
    // Wrong cookie.
    let mut bad = stun.clone();
    bad[4] = 0;
    assert!(!looks_like_stun(&bad));
    // DTLS (22), RTP (0x80), HTTP, TLS ClientHello, short frames.
    for f in [
        &[
            22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
        &[0x80u8; 40][..],
        &b"GET / HTTP/1.1\r\nHost: venue\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x10][..],
        &[0x00, 0x01][..],
        &[][..],
    ] {
        assert!(!looks_like_stun(f), "{f:?}");
    }
}

#[test]
fn the_limit_can_be_raised_after_the_first_frame() {
    let mut d = Deframer::new(100);
    d.push(&framed(&[&[1u8; 100], &[2u8; 1000]]));
    assert_eq!(d.next_frame().unwrap().map(<[u8]>::len), Some(100));
    d.set_max_frame(MAX_FRAME);
    assert_eq!(d.next_frame().unwrap().map(<[u8]>::len), Some(1000));
    d.set_max_frame(usize::MAX);
    d.push(&[0xff, 0xff]);
    assert_eq!(d.next_frame(), Ok(None), "65535 is within the capped limit");
}
