//! Stage taps in the core: readers of a room's stage that are not WebRTC peers (the
//! compositor behind the LL-HLS program, the recorder). A tap is one shard's
//! pseudo-subscriber of a room: per stage slot one video and one audio [`Forwarder`], so it
//! follows the stage exactly as a viewer does (a switch waits for the new source's keyframe;
//! sequence numbers and timestamps are rewritten into one continuous stream per slot). Its
//! packets leave the core as `Output::Tap`; the reading end is `crate::tap::TapHandle`.

use std::collections::{HashMap, VecDeque};

use str0m::media::MediaKind;

use super::layers::Layers;
use super::media::{MediaPacket, clock_hz};
use super::messages::{Output, TapId, TapPacket};
use super::subscriber::{retarget, wanted_source};
use crate::api::{ParticipantId, RoomId};
use crate::forward::{Forwarder, PacketMeta, SourceKey, Verdict};

/// Total video bitrate a tap aims for across the stage, bit/s (per slot: this ÷ slots in use).
pub const TAP_BUDGET_BPS: u64 = 8_000_000;

#[derive(Debug)]
struct Tap {
    room: RoomId,
    tracks: Vec<TapTrack>,
}

#[derive(Debug)]
struct TapTrack {
    slot: usize,
    kind: MediaKind,
    fwd: Forwarder,
}

/// The stage taps of a shard by id.
#[derive(Debug, Default)]
pub struct Taps {
    taps: HashMap<TapId, Tap>,
}

impl Taps {
    /// Whether there is no tap (the forwarding path skips taps then).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Opens tap `id` of `room` with a video and an audio forwarder per slot.
    pub fn open(&mut self, id: TapId, room: RoomId, max_slots: usize) {
        let mut tracks = Vec::with_capacity(max_slots * 2);
        for slot in 0..max_slots {
            for kind in [MediaKind::Video, MediaKind::Audio] {
                tracks.push(TapTrack {
                    slot,
                    kind,
                    fwd: Forwarder::new(clock_hz(kind)),
                });
            }
        }
        self.taps.insert(id, Tap { room, tracks });
    }

    /// Closes tap `id`; false when there was none.
    pub fn close(&mut self, id: TapId) -> bool {
        self.taps.remove(&id).is_some()
    }

    /// The video source tap `id` shows (or switches to) on `slot`.
    pub fn video_source(&self, id: TapId, slot: usize) -> Option<SourceKey> {
        self.taps
            .get(&id)?
            .tracks
            .iter()
            .find(|t| t.slot == slot && t.kind == MediaKind::Video)?
            .fwd
            .target()
    }

    /// Hands `pkt` to the room's taps: one [`Output::Tap`] per track that forwards it.
    pub fn dispatch(&mut self, pkt: &MediaPacket, meta: &PacketMeta, out: &mut VecDeque<Output>) {
        for (id, tap) in self.taps.iter_mut().filter(|(_, t)| t.room == pkt.room) {
            for t in tap.tracks.iter_mut().filter(|t| t.kind == pkt.kind) {
                let rw = match t.fwd.on_packet(meta) {
                    Verdict::Drop => continue,
                    Verdict::Forward(rw) | Verdict::Switched(rw) => rw,
                };
                out.push_back(Output::Tap {
                    tap: *id,
                    packet: TapPacket {
                        slot: t.slot,
                        kind: pkt.kind,
                        codec: pkt.codec.codec,
                        seq: rw.seq,
                        rtp_time: rw.rtp_time,
                        marker: pkt.marker,
                        payload: pkt.payload.clone(),
                    },
                });
            }
        }
    }

    /// Points every tap's forwarders at its room's stage (`stage_of`), the video layer by
    /// [`TAP_BUDGET_BPS`] ÷ slots in use; returns the sources to ask for a keyframe (new
    /// targets, and switches still waiting).
    pub fn retarget(
        &mut self,
        stage_of: impl Fn(RoomId) -> Vec<Option<ParticipantId>>,
        layers: &Layers,
    ) -> Vec<SourceKey> {
        let mut requests = Vec::new();
        for tap in self.taps.values_mut() {
            let stage = stage_of(tap.room);
            let active = stage.iter().filter(|s| s.is_some()).count().max(1) as u64;
            let budget = TAP_BUDGET_BPS / active;
            for t in &mut tap.tracks {
                let key = wanted_source(&stage, t.slot, t.kind, &t.fwd, layers, budget);
                if !retarget(&mut t.fwd, t.kind, key, &mut requests)
                    && t.kind == MediaKind::Video
                    && let Some(p) = t.fwd.pending()
                {
                    requests.push(p);
                }
            }
        }
        requests.dedup();
        requests
    }
}
