//! Stage taps: readers of a room's stage that are not WebRTC peers — the compositor behind the
//! LL-HLS program and the recorder (DESIGN.md §2: "the compositor/HLS packager and recorder are
//! readers of room tracks").
//!
//! A tap is one shard's pseudo-subscriber of a room (kept in the core, `crate::shard`): per
//! stage slot one video and one audio [`crate::forward::Forwarder`], so it follows the stage
//! exactly as a viewer does (a switch waits for the new source's keyframe; sequence numbers and
//! timestamps are rewritten into one continuous stream per slot). Its packets leave the core as
//! outputs and the shell hands them to the reader's thread over a bounded channel; this module
//! is the reading end. When the channel is full a packet is dropped and counted, and the reader sees the gap in the
//! slot's sequence numbers ([`H264Depacketizer`] then waits for a keyframe and asks for one with
//! [`TapHandle::request_keyframe`]). The video layer of a simulcast publisher is the highest
//! whose measured bitrate fits [`TAP_BUDGET_BPS`] divided by the slots in use.
//!
//! [`H264Depacketizer`] turns a slot's RTP payloads (RFC 6184 packetization-mode 1: single NAL
//! unit §5.6, STAP-A §5.7.1, FU-A §5.8) back into access units.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::api::SfuError;
use crate::shard::{Command, TapId};
use crate::shell::ToShard;

pub use crate::shard::{TAP_BUDGET_BPS, TapPacket};

/// Packets a tap's channel holds before it drops.
pub const TAP_QUEUE: usize = 4096;

/// The reading end of a tap (see [`crate::SfuHandle::open_tap`]). Dropping it closes the tap.
#[derive(Debug)]
pub struct TapHandle {
    pub(crate) id: TapId,
    pub(crate) rx: mpsc::Receiver<TapPacket>,
    pub(crate) shard: mpsc::Sender<ToShard>,
}

impl TapHandle {
    /// The next packet; `None` when the media plane stopped. Blocking: call it from a thread
    /// of its own (the compositor's), never from an async task.
    pub fn blocking_recv(&mut self) -> Option<TapPacket> {
        self.rx.blocking_recv()
    }

    /// The next packet if one is waiting. Errors: [`SfuError::Stopped`] when the media plane
    /// stopped.
    pub fn try_recv(&mut self) -> Result<Option<TapPacket>, SfuError> {
        match self.rx.try_recv() {
            Ok(p) => Ok(Some(p)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(SfuError::Stopped),
        }
    }

    /// The next packet, waiting at most `timeout`; `Ok(None)` on timeout. For a reader thread
    /// that must also keep its own cadence. Errors: [`SfuError::Stopped`].
    pub fn recv_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<TapPacket>, SfuError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.try_recv()? {
                Some(p) => return Ok(Some(p)),
                None if std::time::Instant::now() >= deadline => return Ok(None),
                None => std::thread::sleep(
                    deadline
                        .saturating_duration_since(std::time::Instant::now())
                        .min(std::time::Duration::from_millis(2)),
                ),
            }
        }
    }

    /// Asks the source now on `slot` for a keyframe (PLI, throttled like a viewer's request).
    /// Never waits; a full command queue drops the request (the next loss asks again).
    pub fn request_keyframe(&self, slot: usize) {
        let _ = self
            .shard
            .try_send(ToShard::Tell(Command::TapKeyframe { tap: self.id, slot }));
    }
}

impl Drop for TapHandle {
    fn drop(&mut self) {
        let _ = self
            .shard
            .try_send(ToShard::Tell(Command::CloseTap { tap: self.id }));
    }
}

/// One H.264 access unit from a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units without start codes.
    pub nalus: Vec<Bytes>,
    /// Contains an IDR slice (type 5).
    pub keyframe: bool,
    /// RTP timestamp, 90 kHz.
    pub rtp_time: u32,
}

/// Reassembles one slot's H.264 RTP payloads into access units (RFC 6184 mode 1). A gap in
/// sequence numbers or a malformed payload discards the picture in progress and everything up
/// to the next keyframe (a decoder fed a broken reference chain shows garbage);
/// [`H264Depacketizer::needs_keyframe`] says when to ask for one.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    nalus: Vec<Bytes>,
    fu: Option<BytesMut>,
    rtp_time: Option<u32>,
    last_seq: Option<u64>,
    /// Waiting for a keyframe after loss (or at the start).
    broken: bool,
    started: bool,
    /// Pictures dropped for loss or bad payloads.
    pub dropped: u64,
}

impl H264Depacketizer {
    /// A depacketizer waiting for the first keyframe.
    pub fn new() -> Self {
        H264Depacketizer::default()
    }

    /// Whether it is waiting for a keyframe (after loss, a bad payload, or at the start).
    pub fn needs_keyframe(&self) -> bool {
        self.broken || !self.started
    }

    /// Takes one packet (in sequence order); returns the access unit it completes (on the
    /// marker bit or when the timestamp moves on), if that unit is decodable.
    pub fn push(
        &mut self,
        seq: u64,
        rtp_time: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<AccessUnit> {
        let mut done = None;
        if let Some(last) = self.last_seq
            && seq != last.wrapping_add(1)
        {
            self.lose();
        }
        self.last_seq = Some(seq);
        if self.rtp_time.is_some_and(|t| t != rtp_time) && !self.nalus.is_empty() {
            // The previous picture's marker was lost: finish it at the timestamp change.
            done = self.finish();
        }
        self.rtp_time = Some(rtp_time);
        if !self.payload(payload) {
            self.lose();
        }
        if marker {
            done = self.finish().or(done);
        }
        done
    }

    fn lose(&mut self) {
        if !self.nalus.is_empty() || self.fu.is_some() {
            self.dropped += 1;
        }
        self.nalus.clear();
        self.fu = None;
        self.broken = true;
    }

    /// Parses one payload into `nalus`; false when it is malformed.
    fn payload(&mut self, p: &[u8]) -> bool {
        let Some(&first) = p.first() else {
            return false;
        };
        match first & 0x1f {
            1..=23 => {
                self.fu = None;
                self.nalus.push(Bytes::copy_from_slice(p));
                true
            }
            24 => {
                let mut rest = p.get(1..).unwrap_or_default();
                while !rest.is_empty() {
                    let Some((len, tail)) = rest.split_at_checked(2) else {
                        return false;
                    };
                    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
                    let Some((unit, tail)) = tail.split_at_checked(n) else {
                        return false;
                    };
                    if !unit.is_empty() {
                        self.nalus.push(Bytes::copy_from_slice(unit));
                    }
                    rest = tail;
                }
                true
            }
            28 => {
                let Some(&fu_header) = p.get(1) else {
                    return false;
                };
                let body = p.get(2..).unwrap_or_default();
                if fu_header & 0x80 != 0 {
                    let mut unit = BytesMut::with_capacity(body.len() * 4 + 1);
                    unit.extend_from_slice(&[(first & 0xe0) | (fu_header & 0x1f)]);
                    unit.extend_from_slice(body);
                    self.fu = Some(unit);
                } else if let Some(unit) = self.fu.as_mut() {
                    unit.extend_from_slice(body);
                } else {
                    return false; // a middle fragment without its start
                }
                if fu_header & 0x40 != 0
                    && let Some(unit) = self.fu.take()
                {
                    self.nalus.push(unit.freeze());
                }
                true
            }
            _ => false,
        }
    }

    fn finish(&mut self) -> Option<AccessUnit> {
        self.fu = None;
        let nalus = std::mem::take(&mut self.nalus);
        let rtp_time = self.rtp_time?;
        if nalus.is_empty() {
            return None;
        }
        let keyframe = nalus
            .iter()
            .any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
        if keyframe {
            self.broken = false;
            self.started = true;
        }
        if self.needs_keyframe() {
            self.dropped += 1;
            return None;
        }
        Some(AccessUnit {
            nalus,
            keyframe,
            rtp_time,
        })
    }
}

#[cfg(test)]
#[path = "tests/tap.rs"]
mod tests;
