//! Moderation: the actions admins take ([`Moderation`]) and the sanctions the room keeps
//! ([`Sanctions`]): bans by hashed address, mutes and stars by identity (hashed address +
//! name key), so that they follow a person who reconnects. Times are Unix milliseconds.

use std::collections::{HashMap, HashSet};

use super::participants::IpHash;
use super::records::{BanRecord, MuteRecord, StarRecord};

/// A moderation action (admin command over the data channel / WebSocket, or the admin API).
/// Serde: forwarded to a room's hub owner in cluster mode (`cluster::hubs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Moderation {
    DeleteMessage {
        message_id: u64,
    },
    /// 1..=604800 s; 0 unmutes.
    Mute {
        user_id: u64,
        duration_s: u32,
    },
    Kick {
        user_id: u64,
        reason: String,
    },
    /// 0 = until lifted.
    Ban {
        user_id: u64,
        duration_s: u32,
        reason: String,
    },
    /// 0..=3600 s.
    SlowMode {
        interval_s: u32,
    },
    ClearChat,
    ClearStickers,
    Star {
        user_id: u64,
        starred: bool,
    },
}

/// Longest mute, seconds (a week).
pub const MAX_MUTE_S: u32 = 604_800;

/// Why a moderation action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ModerationError {
    #[error("no user {0} in this room")]
    NoSuchUser(u64),
    #[error("no chat message {0}")]
    NoSuchMessage(u64),
    #[error("{0}")]
    Invalid(String),
}

/// The end (ms since the epoch) of a sanction of `duration_s` seconds from `wall_ms`; 0 for
/// a duration of 0 (a ban until lifted, or an unmute).
pub(super) fn until_ms(wall_ms: u64, duration_s: u32) -> u64 {
    if duration_s == 0 {
        0
    } else {
        wall_ms.saturating_add(u64::from(duration_s).saturating_mul(1000))
    }
}

/// Who a mute or a star follows: the hashed address and the name key.
pub(super) type Identity = (Option<IpHash>, String);

/// The bans, mutes and stars in force in a room.
#[derive(Debug, Default)]
pub(super) struct Sanctions {
    bans: Vec<BanRecord>,
    /// Identity → muted until (ms since the epoch, > 0).
    mutes: HashMap<Identity, u64>,
    stars: HashSet<Identity>,
}

impl Sanctions {
    /// From the store's records (lifted mutes and removed stars are skipped).
    pub fn new(bans: Vec<BanRecord>, mutes: Vec<MuteRecord>, stars: Vec<StarRecord>) -> Sanctions {
        Sanctions {
            bans,
            mutes: mutes
                .into_iter()
                .filter(|m| m.until_ms > 0)
                .map(|m| ((m.ip_hash, m.name_key), m.until_ms))
                .collect(),
            stars: stars
                .into_iter()
                .filter(|s| s.starred)
                .map(|s| (s.ip_hash, s.name_key))
                .collect(),
        }
    }

    /// Until when `ip` is banned at `wall_ms` (0: until lifted), if it is.
    pub fn banned_until(&self, ip: Option<&IpHash>, wall_ms: u64) -> Option<u64> {
        let ip = ip?;
        self.bans
            .iter()
            .find(|b| &b.ip_hash == ip && (b.until_ms == 0 || b.until_ms > wall_ms))
            .map(|b| b.until_ms)
    }

    pub fn ban(&mut self, record: BanRecord) {
        self.bans.push(record);
    }

    /// Until when `identity` is muted at `wall_ms`, 0 when it is not.
    pub fn muted_until(&self, identity: &Identity, wall_ms: u64) -> u64 {
        self.mutes
            .get(identity)
            .copied()
            .filter(|until| *until > wall_ms)
            .unwrap_or(0)
    }

    /// Mutes `identity` until `until_ms`; 0 unmutes.
    pub fn set_mute(&mut self, identity: Identity, until_ms: u64) {
        if until_ms == 0 {
            self.mutes.remove(&identity);
        } else {
            self.mutes.insert(identity, until_ms);
        }
    }

    pub fn starred(&self, identity: &Identity) -> bool {
        self.stars.contains(identity)
    }

    pub fn set_star(&mut self, identity: Identity, starred: bool) {
        if starred {
            self.stars.insert(identity);
        } else {
            self.stars.remove(&identity);
        }
    }

    /// Forgets bans and mutes that ended before `wall_ms`.
    pub fn expire(&mut self, wall_ms: u64) {
        self.bans
            .retain(|b| b.until_ms == 0 || b.until_ms > wall_ms);
        self.mutes.retain(|_, until| *until > wall_ms);
    }
}
