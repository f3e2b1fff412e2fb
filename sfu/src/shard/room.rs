//! Rooms as one shard sees them: the stage (which publisher each slot shows), the room's state
//! frame for `venue` data channels, and the local subscribers.

use std::collections::HashMap;

use bytes::Bytes;

use crate::api::{ParticipantId, RoomId};

/// One room on this shard.
#[derive(Debug, Default)]
pub struct Room {
    /// `stage[i]`: the publisher shown on slot i.
    pub stage: Vec<Option<ParticipantId>>,
    /// The latest state frame (an encoded `venue.v1.ServerMessage`), sent to each new
    /// `venue` channel.
    pub frame: Option<Bytes>,
    /// Peer indices of the room's local subscribers.
    pub subscribers: Vec<usize>,
}

/// The rooms of a shard by id.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<RoomId, Room>,
}

impl Rooms {
    /// The room, if this shard knows it.
    #[inline]
    pub fn get(&self, room: RoomId) -> Option<&Room> {
        self.rooms.get(&room)
    }

    /// The room, made empty if new.
    pub fn entry(&mut self, room: RoomId) -> &mut Room {
        self.rooms.entry(room).or_default()
    }

    /// Peer indices of the room's subscribers (a copy: callers change peers while walking).
    pub fn subscribers(&self, room: RoomId) -> Vec<usize> {
        self.get(room)
            .map(|r| r.subscribers.clone())
            .unwrap_or_default()
    }

    /// The room's stage (a copy; empty for an unknown room).
    pub fn stage(&self, room: RoomId) -> Vec<Option<ParticipantId>> {
        self.get(room).map(|r| r.stage.clone()).unwrap_or_default()
    }

    /// Forgets subscriber `idx` of `room`.
    pub fn remove_subscriber(&mut self, room: RoomId, idx: usize) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.subscribers.retain(|&i| i != idx);
        }
    }

    /// Every subscriber of every room.
    pub fn all_subscribers(&self) -> Vec<usize> {
        self.rooms
            .values()
            .flat_map(|r| r.subscribers.iter().copied())
            .collect()
    }
}
