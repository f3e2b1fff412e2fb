//! The people in a room: one [`Conn`] per connection with its user id, name, flags and
//! limits, the index by user id and by name key, and the count of those who said hello.
//! Addresses are kept only as [`IpHash`]es.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use venue_proto::v1;

use super::limits::{ConnLimits, Offences};

/// One client connection of a room (a WebSocket or a WebRTC `venue` channel), as numbered by
/// the shell. `Copy` newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a connection reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `GET /api/rooms/{room}/ws`.
    #[serde(rename = "websocket")]
    WebSocket,
    /// The `venue` / `venue-lossy` data channels of a WHEP session.
    DataChannel,
}

/// A salted SHA-256 of a client IP, truncated to 128 bits. Raw IPs are never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpHash(pub [u8; 16]);

impl IpHash {
    /// `sha256(salt ‖ ip octets)[..16]`; IPv4-mapped IPv6 addresses hash as IPv4.
    pub fn of(ip: IpAddr, salt: &[u8]) -> IpHash {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let mut h = Sha256::new();
        h.update(salt);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        IpHash(out)
    }

    /// Lowercase hex (32 chars), the store's form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`IpHash::to_hex`]'s form.
    pub fn from_hex(s: &str) -> Option<IpHash> {
        let v = hex::decode(s).ok()?;
        Some(IpHash(v.try_into().ok()?))
    }
}

/// A user as listed to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: u64,
    /// Empty when watching without a name.
    pub display_name: String,
    pub starred: bool,
    pub admin: bool,
    /// Ms since the epoch, 0 when not muted.
    pub muted_until_ms: u64,
    pub transport: Transport,
}

/// One connection of the room.
#[derive(Debug)]
pub(super) struct Conn {
    pub user_id: u64,
    pub transport: Transport,
    pub ip: Option<IpHash>,
    /// Said hello.
    pub joined: bool,
    /// The display name granted at hello, if any.
    pub name: Option<String>,
    /// [`names::name_key`](super::names::name_key) of `name`.
    pub name_key: Option<String>,
    pub admin: bool,
    pub starred: bool,
    /// Ms since the epoch, 0 when not muted.
    pub muted_until_ms: u64,
    /// When it last chatted (slow mode).
    pub last_chat: Option<Instant>,
    pub limits: ConnLimits,
    pub offences: Offences,
}

impl Conn {
    /// As clients see it.
    pub fn user(&self) -> v1::User {
        v1::User {
            id: self.user_id,
            display_name: self.name.clone().unwrap_or_default(),
            starred: self.starred,
            admin: self.admin,
            muted_until_ms: self.muted_until_ms,
        }
    }

    fn info(&self) -> UserInfo {
        UserInfo {
            id: self.user_id,
            display_name: self.name.clone().unwrap_or_default(),
            starred: self.starred,
            admin: self.admin,
            muted_until_ms: self.muted_until_ms,
            transport: self.transport,
        }
    }
}

/// What a hello grants: a name (with its key) and the sanctions that follow that identity.
#[derive(Debug)]
pub(super) struct Granted {
    pub name: String,
    pub name_key: String,
    pub muted_until_ms: u64,
    pub starred: bool,
}

/// The connections of a room and their indexes.
#[derive(Debug)]
pub(super) struct Participants {
    conns: HashMap<ConnId, Conn>,
    by_user: HashMap<u64, ConnId>,
    /// Name key → the connection holding that name.
    names: HashMap<String, ConnId>,
    /// Connections that said hello.
    joined: usize,
    next_user_id: u64,
}

impl Participants {
    /// No one yet; user ids start above `max_user_id`.
    pub fn new(max_user_id: u64) -> Participants {
        Participants {
            conns: HashMap::new(),
            by_user: HashMap::new(),
            names: HashMap::new(),
            joined: 0,
            next_user_id: max_user_id + 1,
        }
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    pub fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// Connections, joined or not.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Connections that said hello.
    pub fn joined(&self) -> usize {
        self.joined
    }

    /// The connection of user `user_id`, if connected.
    pub fn conn_of(&self, user_id: u64) -> Option<ConnId> {
        self.by_user
            .get(&user_id)
            .copied()
            .filter(|c| self.conns.contains_key(c))
    }

    /// Whether someone holds the name with key `name_key`.
    pub fn name_taken(&self, name_key: &str) -> bool {
        self.names.contains_key(name_key)
    }

    /// Adds connection `id` (not yet joined) with the next user id.
    pub fn add(
        &mut self,
        id: ConnId,
        transport: Transport,
        ip: Option<IpHash>,
        limits: ConnLimits,
    ) {
        let user_id = self.next_user_id;
        self.next_user_id += 1;
        self.by_user.insert(user_id, id);
        self.conns.insert(
            id,
            Conn {
                user_id,
                transport,
                ip,
                joined: false,
                name: None,
                name_key: None,
                admin: false,
                starred: false,
                muted_until_ms: 0,
                last_chat: None,
                limits,
                offences: Offences::default(),
            },
        );
    }

    /// Marks `id` joined (its hello), with its admin flag and, if granted, its name.
    pub fn join(&mut self, id: ConnId, admin: bool, granted: Option<Granted>) -> Option<&Conn> {
        let conn = self.conns.get_mut(&id)?;
        conn.joined = true;
        conn.admin = admin;
        if let Some(g) = granted {
            conn.muted_until_ms = g.muted_until_ms;
            conn.starred = g.starred;
            conn.name = Some(g.name);
            conn.name_key = Some(g.name_key.clone());
            self.names.insert(g.name_key, id);
        }
        self.joined += 1;
        self.conns.get(&id)
    }

    /// Removes connection `id` and frees its user id and name; returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.by_user.remove(&conn.user_id);
        if let Some(key) = &conn.name_key
            && self.names.get(key) == Some(&id)
        {
            self.names.remove(key);
        }
        if conn.joined {
            self.joined = self.joined.saturating_sub(1);
        }
        Some(conn)
    }

    /// Every joined user, by id.
    pub fn users(&self) -> Vec<UserInfo> {
        let mut users: Vec<UserInfo> = self
            .conns
            .values()
            .filter(|c| c.joined)
            .map(Conn::info)
            .collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// The first `limit` joined users with a name, by id (a snapshot's list).
    pub fn listed(&self, limit: usize) -> Vec<v1::User> {
        let mut users: Vec<v1::User> = self
            .conns
            .values()
            .filter(|c| c.joined && c.name.is_some())
            .map(Conn::user)
            .collect();
        users.sort_by_key(|u| u.id);
        users.truncate(limit);
        users
    }
}
