//! One room as the state core ([`super::Core`]) keeps it: its stage (streamer per slot), title,
//! layout, the viewer sessions the SFU reported up, and when its state frame was last pushed
//! (viewer-count changes are pushed at most every [`VIEWER_COUNT_INTERVAL`]). Sans IO: the
//! time is a parameter; who is live and which participant shows a streamer are the core's
//! and come in as closures.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use venue_sfu::{ParticipantId, SessionId};

use super::view::{RoomView, SlotView};
use crate::ids::{RoomId, StreamerId};
use crate::store::Room;

/// Shortest interval between two frames caused by viewer-count changes alone.
pub const VIEWER_COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// See the module docs.
#[derive(Debug)]
pub(super) struct RoomEntry {
    pub name: String,
    pub title: String,
    pub layout: u32,
    /// `max_slots` long: (streamer id, name).
    slots: Vec<Option<(StreamerId, String)>>,
    /// Viewer sessions the SFU reported up.
    pub viewers: HashSet<SessionId>,
    last_push: Option<Instant>,
    viewers_dirty: bool,
}

impl RoomEntry {
    /// `room` with `layout` and `slots` (padded or cut to `max_slots`), keeping `viewers`.
    pub fn new(
        room: &Room,
        layout: u32,
        slots: Vec<Option<(StreamerId, String)>>,
        max_slots: usize,
        viewers: HashSet<SessionId>,
    ) -> RoomEntry {
        let mut entry = RoomEntry {
            name: room.name.clone(),
            title: room.title.clone(),
            layout,
            slots: Vec::new(),
            viewers,
            last_push: None,
            viewers_dirty: false,
        };
        entry.set_stage(layout, slots, max_slots);
        entry
    }

    /// Replaces the stage (`slots` padded or cut to `max_slots`).
    pub fn set_stage(
        &mut self,
        layout: u32,
        mut slots: Vec<Option<(StreamerId, String)>>,
        max_slots: usize,
    ) {
        slots.resize(max_slots, None);
        self.layout = layout;
        self.slots = slots;
    }

    /// The streamers on stage, slot order (a streamer on two slots twice).
    pub fn streamers(&self) -> impl Iterator<Item = StreamerId> + '_ {
        self.slots.iter().flatten().map(|(id, _)| *id)
    }

    /// Whether `streamer` is on a slot.
    pub fn has_streamer(&self, streamer: StreamerId) -> bool {
        self.streamers().any(|id| id == streamer)
    }

    /// Empties the slots showing `streamer`; whether there were any.
    pub fn remove_streamer(&mut self, streamer: StreamerId) -> bool {
        let mut removed = false;
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|(id, _)| *id == streamer) {
                *slot = None;
                removed = true;
            }
        }
        removed
    }

    /// The participant showing each slot: `participant(slot index, streamer)`.
    pub fn stage(
        &self,
        participant: impl Fn(usize, StreamerId) -> Option<ParticipantId>,
    ) -> Vec<Option<ParticipantId>> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| participant(i, s.as_ref()?.0))
            .collect()
    }

    /// Each slot's live flag.
    pub fn live_flags(&self, is_live: impl Fn(StreamerId) -> bool) -> Vec<bool> {
        self.slots
            .iter()
            .map(|s| s.as_ref().is_some_and(|(id, _)| is_live(*id)))
            .collect()
    }

    /// The room as clients see it.
    pub fn view(
        &self,
        id: RoomId,
        max_slots: usize,
        is_live: impl Fn(StreamerId) -> bool,
    ) -> RoomView {
        RoomView {
            id,
            name: self.name.clone(),
            title: self.title.clone(),
            layout: self.layout,
            max_slots,
            slots: self
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| SlotView {
                    index: i as u32,
                    streamer_id: s.as_ref().map(|(id, _)| *id),
                    name: s.as_ref().map(|(_, n)| n.clone()),
                    live: s.as_ref().is_some_and(|(id, _)| is_live(*id)),
                })
                .collect(),
            viewer_count: self.viewers.len(),
        }
    }

    fn may_push(&self, now: Instant) -> bool {
        self.last_push
            .is_none_or(|t| now.duration_since(t) >= VIEWER_COUNT_INTERVAL)
    }

    /// The viewer count changed: whether to push a frame now (else it is held back until
    /// [`RoomEntry::due`]).
    pub fn viewers_changed(&mut self, now: Instant) -> bool {
        let now_ok = self.may_push(now);
        if !now_ok {
            self.viewers_dirty = true;
        }
        now_ok
    }

    /// Whether a held-back viewer count is due now.
    pub fn due(&self, now: Instant) -> bool {
        self.viewers_dirty && self.may_push(now)
    }

    /// A frame was pushed at `now`.
    pub fn pushed(&mut self, now: Instant) {
        self.last_push = Some(now);
        self.viewers_dirty = false;
    }
}
