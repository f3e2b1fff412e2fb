//! RFC 4571 framing, as ICE-TCP uses it (RFC 6544 §3): on a TCP connection every STUN
//! message, DTLS record, RTP or RTCP packet travels as a 16-bit big-endian length followed by
//! that many bytes.
//!
//! Sans-IO: the shell pushes the bytes it read into a [`Deframer`] and takes whole frames out;
//! [`encode`] frames one packet for writing. Nothing here touches a socket or the clock.

/// Largest frame RFC 4571 can express (its length field is 16 bits), in bytes.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Bytes of the length prefix.
pub const HEADER: usize = 2;

/// Why a stream cannot be read any further. After any of these the connection is closed: the
/// framing has no way to resynchronise.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame of length 0. ICE-TCP frames always carry a STUN, DTLS, RTP or RTCP packet, so
    /// an empty one means the peer is not speaking RFC 6544.
    #[error("zero-length frame")]
    Empty,
    /// A frame longer than the reader's limit (or, for [`encode`], than [`MAX_FRAME`]).
    #[error("frame of {len} bytes, the limit is {max}")]
    TooLong {
        /// The frame's length, bytes.
        len: usize,
        /// The limit, bytes.
        max: usize,
    },
}

/// Splits a TCP byte stream into RFC 4571 frames. Holds at most one partial frame plus what
/// was pushed since the last [`Deframer::next_frame`] that returned `Ok(None)`.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    max: usize,
}

impl Deframer {
    /// A reader that accepts frames of 1..=`max_frame` bytes (`max_frame` is capped at
    /// [`MAX_FRAME`]).
    pub fn new(max_frame: usize) -> Deframer {
        Deframer {
            buf: Vec::new(),
            start: 0,
            max: max_frame.min(MAX_FRAME),
        }
    }

    /// Changes the largest accepted frame (capped at [`MAX_FRAME`]), e.g. once a connection
    /// has shown it speaks ICE.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max = max_frame.min(MAX_FRAME);
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame's payload (without the length prefix), or `Ok(None)` when more
    /// bytes are needed. Call until it returns `Ok(None)` after each [`Deframer::push`].
    /// Errors: [`FrameError::Empty`] for a zero length, [`FrameError::TooLong`] for a length
    /// over the limit; the stream is then unusable.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = self.buf.get(self.start..).unwrap_or_default();
        let &[hi, lo, ..] = avail else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max {
            return Err(FrameError::TooLong { len, max: self.max });
        }
        if avail.len() < HEADER + len {
            return Ok(None);
        }
        let from = self.start + HEADER;
        self.start = from + len;
        Ok(self.buf.get(from..self.start))
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }
}

/// Appends `payload` to `out` as one frame (length prefix, then the bytes).
/// Errors: [`FrameError::TooLong`] when `payload` is over [`MAX_FRAME`] bytes,
/// [`FrameError::Empty`] when it is empty (nothing is appended then).
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameError::TooLong {
        len: payload.len(),
        max: MAX_FRAME,
    })?;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Whether a frame can be a STUN message (RFC 8489 §5: two zero bits, a length that is a
/// multiple of 4 matching the rest, the magic cookie). RFC 6544 §10 has the first frame on an
/// ICE-TCP connection be a STUN Binding request; a connection that starts otherwise is not
/// ICE and is closed.
pub fn looks_like_stun(frame: &[u8]) -> bool {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    let &[t0, _, l0, l1, c0, c1, c2, c3, ..] = frame else {
        return false;
    };
    let body = usize::from(u16::from_be_bytes([l0, l1]));
    t0 & 0xc0 == 0 && [c0, c1, c2, c3] == MAGIC_COOKIE && body % 4 == 0 && frame.len() == 20 + body
}

#[cfg(test)]
#[path = "tests/framing.rs"]
mod tests;
