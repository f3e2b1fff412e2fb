//! The tick's frames: what happened since the last tick, collected here and sent as at most
//! two `EventBatch` broadcasts, each encoded once — a reliable one (joins and leaves, chat,
//! stickers, deletes, settings, stage, and the user count when it changed) and a lossy one
//! (the latest cursor of each user that moved, fireworks) — plus the connections waiting for
//! their snapshot after this tick.

use std::collections::BTreeMap;

use bytes::Bytes;
use venue_proto::v1;
use venue_proto::v1::event::Kind as EventKind;
use venue_proto::v1::server_message::Body as ServerBody;

use super::codec::encode;
use super::{Class, ConnId, Output};

/// What the next tick sends.
#[derive(Debug)]
pub(super) struct Batcher {
    /// Ticks so far (the batches' and snapshots' `tick`).
    tick: u64,
    events: Vec<v1::Event>,
    lossy_events: Vec<v1::Event>,
    /// User id → latest normalized position since the last tick.
    cursors: BTreeMap<u64, (f32, f32)>,
    user_count_sent: Option<usize>,
    awaiting_snapshot: Vec<ConnId>,
    /// Frames above this many bytes are deflated.
    deflate_threshold: usize,
}

impl Batcher {
    pub fn new(deflate_threshold: usize) -> Batcher {
        Batcher {
            tick: 0,
            events: Vec::new(),
            lossy_events: Vec::new(),
            cursors: BTreeMap::new(),
            user_count_sent: None,
            awaiting_snapshot: Vec::new(),
            deflate_threshold,
        }
    }

    /// The current tick number.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// An event for the reliable batch.
    pub fn event(&mut self, kind: EventKind) {
        self.events.push(v1::Event { kind: Some(kind) });
    }

    /// An event for the lossy batch.
    pub fn lossy_event(&mut self, kind: EventKind) {
        self.lossy_events.push(v1::Event { kind: Some(kind) });
    }

    /// The latest cursor of `user_id` (normalized [0, 1] coordinates).
    pub fn cursor(&mut self, user_id: u64, x: f32, y: f32) {
        self.cursors.insert(user_id, (x, y));
    }

    pub fn forget_cursor(&mut self, user_id: u64) {
        self.cursors.remove(&user_id);
    }

    /// `conn` gets a snapshot after the next tick's batches.
    pub fn await_snapshot(&mut self, conn: ConnId) {
        self.awaiting_snapshot.push(conn);
    }

    /// Ends a tick with `joined` users in the room: the broadcasts to send (0 to 2) and the
    /// connections waiting for a snapshot.
    pub fn flush(&mut self, joined: usize) -> (Vec<Output>, Vec<ConnId>) {
        self.tick += 1;
        let user_count = u32::try_from(joined).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        if !self.events.is_empty() || self.user_count_sent != Some(joined) {
            let batch = v1::EventBatch {
                tick: self.tick,
                cursors: Vec::new(),
                events: std::mem::take(&mut self.events),
                user_count,
            };
            self.user_count_sent = Some(joined);
            out.push(Output::Broadcast {
                class: Class::Reliable,
                frame: encode(ServerBody::Batch(batch), self.deflate_threshold),
            });
        }
        if !self.cursors.is_empty() || !self.lossy_events.is_empty() {
            let batch = v1::EventBatch {
                tick: self.tick,
                cursors: std::mem::take(&mut self.cursors)
                    .into_iter()
                    .map(|(user_id, (x, y))| v1::CursorState { user_id, x, y })
                    .collect(),
                events: std::mem::take(&mut self.lossy_events),
                user_count,
            };
            out.push(Output::Broadcast {
                class: Class::Lossy,
                frame: encode(ServerBody::Batch(batch), self.deflate_threshold),
            });
        }
        (out, std::mem::take(&mut self.awaiting_snapshot))
    }

    /// `body` encoded as this room's frames are (deflated above the threshold).
    pub fn encode(&self, body: ServerBody) -> Bytes {
        encode(body, self.deflate_threshold)
    }
}
