//! Venue's client⇄server event protocol, generated from `venue.proto` by prost.
//!
//! Contract: this crate depends on nothing internal. Types here are wire types only; other
//! crates convert them into their own types at the edges (`TryFrom`), never pass them inside.
//! Every frame is one protobuf message; decoding untrusted bytes goes through [`decode_client`],
//! which returns an error (never panics) for malformed input.

#![allow(clippy::all)]

/// Generated types of package `venue.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/venue.v1.rs"));
}

pub use prost::Message;

/// The protocol version this build speaks (`ProtocolVersion::Current`).
pub const PROTOCOL_VERSION: u32 = v1::ProtocolVersion::Current as u32;

/// Largest frame accepted from a client, in bytes (16 KiB; larger frames are dropped and
/// counted).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Why a client frame was rejected.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    TooLarge(usize),
    /// The bytes are not a valid `ClientMessage`.
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME_BYTES}"),
            DecodeError::Malformed(e) => write!(f, "malformed ClientMessage: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one client frame. Errors: [`DecodeError::TooLarge`], [`DecodeError::Malformed`].
pub fn decode_client(frame: &[u8]) -> Result<v1::ClientMessage, DecodeError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge(frame.len()));
    }
    v1::ClientMessage::decode(frame).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes a server message into a fresh buffer.
pub fn encode_server(msg: &v1::ServerMessage) -> Vec<u8> {
    msg.encode_to_vec()
}

#[cfg(test)]
#[path = "tests/lib.rs"]
mod tests;
