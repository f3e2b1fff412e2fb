//! Live room state (the state actor): who is on stage, who is live, how many viewers, which WHIP/WHEP sessions
//! exist. Owned by one actor task; HTTP handlers talk to it through [`StateHandle`]
//! (bounded `mpsc` + `oneshot`), the SFU through its [`SfuEvent`] stream.
//!
//! Contract:
//! - [`Core`] is sans-IO: it takes events, commands and the time as input and returns
//!   [`Effect`]s (SFU calls) that the shell ([`run`]) performs. It never blocks or awaits.
//! - Every publisher session has its own [`venue_sfu::ParticipantId`] ([`new_participant`]),
//!   never the streamer's id: the streamer's *active* session (the newest registered) is what
//!   its stage slots and admin previews show, and a new session replaces (closes) the older.
//! - Live-ness is keyed by session: a streamer is live while at least one of its publisher
//!   sessions is up, so the `PublisherDown` of a replaced session does not mark the streamer
//!   offline while its new session is up.
//! - Every change of stage, title or live state pushes a new `StageState` frame to the room
//!   (via `SfuHandle::set_room_state`) at once; viewer-count changes at most once per second.
//! - Stage writes go through the actor, so store, SFU and frames see them in one order.

//!
//! Layout: [`core`] (the sans-IO model), [`session`] (what a session is), [`view`] (what
//! clients see: the room view and its `StageState` frame), [`actor`] (the task, its commands
//! and [`StateHandle`]).

pub mod actor;
pub mod cluster;
pub mod core;
mod effect;
pub mod relays;
mod room;
pub mod session;
pub mod view;

pub use self::core::{Core, Effect, PublishNotice, new_participant};
pub use self::room::VIEWER_COUNT_INTERVAL;
pub use actor::{StateHandle, WeakStateHandle, spawn};
pub use session::{SessionInfo, SessionKind};
pub use view::{RoomView, SlotView, Stats, stage_frame};

use crate::store::StoreError;

/// Why the state actor could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The actor task has stopped (a bug or shutdown).
    #[error("state actor stopped")]
    Stopped,
    /// The room does not exist (any more).
    #[error("no such room")]
    NoSuchRoom,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
