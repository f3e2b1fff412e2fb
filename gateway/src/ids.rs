//! Typed ids of the gateway's entities: `Copy` newtypes over the store's row ids (`BIGINT` /
//! SQLite `INTEGER`), so a room id cannot be passed where a streamer id is expected. They run
//! from the store's rows (`#[sqlx(transparent)]`: bound and read as the bare `i64` on every
//! backend) through the domain actors to the HTTP responses (`#[serde(transparent)]`: the bare
//! number in JSON), and are displayed and parsed (`FromStr`, path segments) as the number.
//!
//! The media plane's ids are [`venue_sfu::RoomId`], [`ParticipantId`] and [`SessionId`]
//! (re-exported here); `From<RoomId> for venue_sfu::RoomId` converts a room.

use serde::{Deserialize, Serialize};

pub use venue_sfu::{ParticipantId, SessionId};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

row_id!(
    /// A room (`rooms.id`).
    RoomId
);
row_id!(
    /// A streamer of a room (`streamers.id`); its publisher sessions have their own
    /// [`ParticipantId`]s in the media plane.
    StreamerId
);
row_id!(
    /// A scheduled event of a room (`events.id`).
    EventId
);
row_id!(
    /// A streamer's booked slot in an event (`bookings.id`).
    BookingId
);
row_id!(
    /// A recording of a set (`recordings.id`).
    RecordingId
);

impl From<RoomId> for venue_sfu::RoomId {
    fn from(id: RoomId) -> venue_sfu::RoomId {
        venue_sfu::RoomId(id.0 as u64)
    }
}

impl From<venue_sfu::RoomId> for RoomId {
    fn from(id: venue_sfu::RoomId) -> RoomId {
        RoomId(id.0 as i64)
    }
}
