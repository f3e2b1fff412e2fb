//! Pieces shared by the interaction benchmarks (`loadgen-events` over WebSocket, `loadgen
//! --events` over data channels): frame builders, the cursor send-time stamp, decoding with
//! deflate-raw, and latency extraction from a batch.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use venue_proto::v1::{self, client_message, event, server_message};

/// Microseconds since the Unix epoch (the host clock shared by sender and receiver).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Send time (µs since the epoch, modulo 100 s) → cursor x in [0, 1) (f32 resolution ≈ 6 µs).
pub fn stamp_x(us: u64) -> f32 {
    // The largest f32 below 1 keeps x inside the server's [0, 1] clamp without wrapping.
    (((us % 100_000_000) as f64 / 100_000_000.0) as f32).min(0.999_999_94)
}

/// Latency in µs of a cursor stamped with [`stamp_x`], received at `now_us`.
pub fn latency_from_x(x: f32, now_us: u64) -> u64 {
    let sent = (f64::from(x) * 100_000_000.0) as u64;
    let now = now_us % 100_000_000;
    (now + 100_000_000 - sent) % 100_000_000
}

/// Encodes one client frame.
pub fn client_frame(body: client_message::Body) -> Vec<u8> {
    v1::ClientMessage { body: Some(body) }.encode_to_vec()
}

/// `hello` with a display name.
pub fn hello(name: &str) -> Vec<u8> {
    client_frame(client_message::Body::Hello(v1::ClientHello {
        protocol_version: venue_proto::PROTOCOL_VERSION,
        display_name: name.to_string(),
        admin_token: String::new(),
    }))
}

/// A cursor move stamped with the send time; `y` marks the benchmark's own cursors.
pub fn cursor(y: f32) -> Vec<u8> {
    client_frame(client_message::Body::Cursor(v1::CursorMove {
        x: stamp_x(now_us()),
        y,
    }))
}

/// A chat message carrying its send time.
pub fn chat() -> Vec<u8> {
    client_frame(client_message::Body::Chat(v1::ChatSend {
        text: format!("t={}", now_us()),
    }))
}

/// Decodes a server frame, inflating `deflated` ones. `None` for garbage.
pub fn decode(bytes: &[u8]) -> Option<v1::ServerMessage> {
    let msg = v1::ServerMessage::decode(bytes).ok()?;
    if let Some(server_message::Body::Deflated(d)) = &msg.body {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(d.as_slice())
            .read_to_end(&mut out)
            .ok()?;
        return v1::ServerMessage::decode(out.as_slice()).ok();
    }
    Some(msg)
}

/// Latencies (µs) in one batch: other users' benchmark cursors (those at `y`) and chat.
pub fn batch_latencies(
    b: &v1::EventBatch,
    my_id: u64,
    y: f32,
    now_us: u64,
) -> (Vec<u64>, Vec<u64>) {
    let cursors = b
        .cursors
        .iter()
        .filter(|c| c.user_id != my_id && (c.y - y).abs() < 1e-6)
        .map(|c| latency_from_x(c.x, now_us))
        .collect();
    let chat = b
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Chat(c)) if c.user_id != my_id => c
                .text
                .strip_prefix("t=")
                .and_then(|t| t.parse::<u64>().ok())
                .map(|t| now_us.saturating_sub(t)),
            _ => None,
        })
        .collect();
    (cursors, chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_stamp_round_trips_within_10_us() {
        for us in [
            0u64,
            1,
            99_999_999,
            1_763_700_000_123_456,
            1_763_700_099_999_999,
        ] {
            let x = stamp_x(us);
            assert!((0.0..1.0).contains(&x));
            let lat = latency_from_x(x, us + 5_000);
            assert!((4_990..=5_010).contains(&lat), "{us}: {lat}");
        }
    }

    #[test]
    fn deflated_frames_are_inflated() {
        use std::io::Write;
        let inner = v1::ServerMessage {
            body: Some(server_message::Body::Batch(v1::EventBatch {
                tick: 7,
                ..Default::default()
            })),
        }
        .encode_to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&inner).unwrap();
        let outer = v1::ServerMessage {
            body: Some(server_message::Body::Deflated(enc.finish().unwrap())),
        }
        .encode_to_vec();
        let Some(server_message::Body::Batch(b)) = decode(&outer).and_then(|m| m.body) else {
            panic!()
        };
        assert_eq!(b.tick, 7);
        assert!(decode(&[0xff, 0xff]).is_none());
    }
}
