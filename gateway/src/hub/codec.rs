//! The edge between wire types (`venue_proto::v1`) and the hub's own types: decoding client
//! frames into [`Command`]s (`TryFrom`), encoding server messages (deflate-raw above a size
//! threshold), notices, and the clamping of coordinates.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use venue_proto::v1;
use venue_proto::v1::client_message::Body as ClientBody;
use venue_proto::v1::server_message::Body as ServerBody;

use super::Moderation;

/// Frames whose encoding is larger than this many bytes are sent as
/// `ServerMessage{deflated}` (when that is smaller).
pub const DEFAULT_DEFLATE_THRESHOLD: usize = 512;

/// A client frame, decoded and checked for shape (not yet for permissions or limits).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Hello {
        protocol_version: u32,
        display_name: String,
        /// Never logged.
        admin_token: String,
    },
    /// Normalized coordinates, clamped to [0, 1].
    Cursor {
        x: f32,
        y: f32,
    },
    Sticker {
        sticker_id: String,
        x: f32,
        y: f32,
        /// Degrees, clamped to [-180, 180].
        rotation_deg: f32,
        /// Clamped to [0.5, 2]; 0 (unset) is 1.
        scale: f32,
    },
    Firework {
        x: f32,
        y: f32,
        hue: u32,
    },
    Chat {
        text: String,
    },
    Admin(Moderation),
}

/// Why a client frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than `venue_proto::MAX_FRAME_BYTES` (16 KiB).
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not a `ClientMessage`, or one without a body.
    #[error("undecodable frame: {0}")]
    Malformed(String),
    /// A coordinate is NaN: the command is dropped without an offence.
    #[error("NaN coordinate")]
    NotANumber,
}

/// A coordinate in [0, 1]; NaN → `None`, everything else clamped.
pub fn coord(v: f32) -> Option<f32> {
    if v.is_nan() {
        None
    } else {
        Some(v.clamp(0.0, 1.0))
    }
}

fn rotation(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-180.0, 180.0)
    }
}

fn scale(v: f32) -> f32 {
    if v.is_nan() || v == 0.0 {
        1.0
    } else {
        v.clamp(0.5, 2.0)
    }
}

impl TryFrom<v1::ClientMessage> for Command {
    type Error = FrameError;

    fn try_from(msg: v1::ClientMessage) -> Result<Command, FrameError> {
        let body = msg
            .body
            .ok_or_else(|| FrameError::Malformed("empty ClientMessage".into()))?;
        Ok(match body {
            ClientBody::Hello(h) => Command::Hello {
                protocol_version: h.protocol_version,
                display_name: h.display_name,
                admin_token: h.admin_token,
            },
            ClientBody::Cursor(c) => Command::Cursor {
                x: coord(c.x).ok_or(FrameError::NotANumber)?,
                y: coord(c.y).ok_or(FrameError::NotANumber)?,
            },
            ClientBody::Sticker(s) => Command::Sticker {
                sticker_id: s.sticker_id,
                x: coord(s.x).ok_or(FrameError::NotANumber)?,
                y: coord(s.y).ok_or(FrameError::NotANumber)?,
                rotation_deg: rotation(s.rotation_deg),
                scale: scale(s.scale),
            },
            ClientBody::Firework(f) => Command::Firework {
                x: coord(f.x).ok_or(FrameError::NotANumber)?,
                y: coord(f.y).ok_or(FrameError::NotANumber)?,
                hue: f.hue % 360,
            },
            ClientBody::Chat(c) => Command::Chat { text: c.text },
            ClientBody::Admin(a) => Command::Admin(Moderation::try_from(a)?),
        })
    }
}

impl TryFrom<v1::AdminCommand> for Moderation {
    type Error = FrameError;

    fn try_from(a: v1::AdminCommand) -> Result<Moderation, FrameError> {
        use v1::admin_command::Command as C;
        let c = a
            .command
            .ok_or_else(|| FrameError::Malformed("empty AdminCommand".into()))?;
        Ok(match c {
            C::DeleteMessage(d) => Moderation::DeleteMessage {
                message_id: d.message_id,
            },
            C::Mute(m) => Moderation::Mute {
                user_id: m.user_id,
                duration_s: m.duration_s,
            },
            C::Kick(k) => Moderation::Kick {
                user_id: k.user_id,
                reason: k.reason,
            },
            C::Ban(b) => Moderation::Ban {
                user_id: b.user_id,
                duration_s: b.duration_s,
                reason: b.reason,
            },
            C::SlowMode(s) => Moderation::SlowMode {
                interval_s: s.interval_s,
            },
            C::ClearChat(_) => Moderation::ClearChat,
            C::ClearStickers(_) => Moderation::ClearStickers,
            C::Star(s) => Moderation::Star {
                user_id: s.user_id,
                starred: s.starred,
            },
        })
    }
}

/// Decodes one client frame. Errors: [`FrameError`] (never panics on any input).
pub fn decode(frame: &[u8]) -> Result<Command, FrameError> {
    let msg = venue_proto::decode_client(frame).map_err(|e| match e {
        venue_proto::DecodeError::TooLarge(n) => FrameError::TooLarge(n),
        other => FrameError::Malformed(other.to_string()),
    })?;
    Command::try_from(msg)
}

/// Encodes `body` as a `ServerMessage`; above `threshold` bytes it is wrapped as
/// `ServerMessage{deflated: deflate-raw(encoding)}` when that is smaller.
pub fn encode(body: ServerBody, threshold: usize) -> Bytes {
    let plain = venue_proto::encode_server(&v1::ServerMessage { body: Some(body) });
    if plain.len() <= threshold {
        return Bytes::from(plain);
    }
    match deflate(&plain) {
        Some(packed) if packed.len() + 4 < plain.len() => {
            Bytes::from(venue_proto::encode_server(&v1::ServerMessage {
                body: Some(ServerBody::Deflated(packed)),
            }))
        }
        _ => Bytes::from(plain),
    }
}

fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(data.len() / 2), Compression::fast());
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

/// Decodes a server frame, inflating `deflated` (tests, load generator).
/// Errors: the bytes are not a `ServerMessage`, or the deflated payload is corrupt.
pub fn decode_server(frame: &[u8]) -> Result<v1::ServerMessage, String> {
    use prost::Message;
    let msg = v1::ServerMessage::decode(frame).map_err(|e| e.to_string())?;
    if let Some(ServerBody::Deflated(packed)) = &msg.body {
        let mut out = Vec::new();
        let mut decoder = flate2::write::DeflateDecoder::new(&mut out);
        decoder.write_all(packed).map_err(|e| e.to_string())?;
        decoder.finish().map_err(|e| e.to_string())?;
        return v1::ServerMessage::decode(out.as_slice()).map_err(|e| e.to_string());
    }
    Ok(msg)
}

/// A `Notice` message body.
pub fn notice(code: v1::NoticeCode, text: impl Into<String>, until_ms: u64) -> ServerBody {
    ServerBody::Notice(v1::Notice {
        code: code as i32,
        text: text.into(),
        until_ms,
    })
}
