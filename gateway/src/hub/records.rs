//! What the hub persists and starts from: chat messages, stickers on the board, bans, mutes
//! and stars ([`PersistOp`] out, [`Loaded`] in). The shell writes and reads them through the
//! store; the hub itself never touches it. Times are Unix milliseconds.

use venue_proto::v1;

use super::participants::IpHash;
use super::settings::RoomSettings;

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: u64,
    pub user_id: u64,
    pub display_name: String,
    pub text: String,
    pub sent_ms: u64,
    pub starred: bool,
    pub admin: bool,
}

impl ChatRecord {
    pub(crate) fn to_proto(&self) -> v1::ChatMessage {
        v1::ChatMessage {
            id: self.id,
            user_id: self.user_id,
            display_name: self.display_name.clone(),
            text: self.text.clone(),
            sent_ms: self.sent_ms,
            starred: self.starred,
            admin: self.admin,
        }
    }
}

/// A sticker on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct StickerRecord {
    pub id: u64,
    pub sticker_id: String,
    /// Normalized [0, 1].
    pub x: f32,
    pub y: f32,
    /// Degrees [-180, 180].
    pub rotation_deg: f32,
    /// [0.5, 2].
    pub scale: f32,
    pub user_id: u64,
    pub placed_ms: u64,
}

impl StickerRecord {
    pub(crate) fn to_proto(&self) -> v1::Sticker {
        v1::Sticker {
            id: self.id,
            sticker_id: self.sticker_id.clone(),
            x: self.x,
            y: self.y,
            rotation_deg: self.rotation_deg,
            scale: self.scale,
            user_id: self.user_id,
            placed_ms: self.placed_ms,
        }
    }
}

/// A ban of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub ip_hash: IpHash,
    /// Ms since the epoch; 0 = until lifted.
    pub until_ms: u64,
    pub reason: String,
}

/// A mute of a person (address + name key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteRecord {
    pub ip_hash: Option<IpHash>,
    pub name_key: String,
    /// Ms since the epoch; 0 = unmuted (the record is deleted).
    pub until_ms: u64,
}

/// A star (verified mark) of a person (address + name key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarRecord {
    pub ip_hash: Option<IpHash>,
    pub name_key: String,
    pub starred: bool,
}

/// A change the shell must write to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum PersistOp {
    Chat(ChatRecord),
    DeleteChat(u64),
    ClearChat,
    Sticker(StickerRecord),
    /// These stickers left the board (it keeps the newest N).
    ExpireStickers(Vec<u64>),
    ClearStickers,
    Ban(BanRecord),
    Mute(MuteRecord),
    Star(StarRecord),
    Settings(RoomSettings),
}

/// What the store had for a room at start-up.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub settings: Option<RoomSettings>,
    /// Oldest first.
    pub chat: Vec<ChatRecord>,
    /// Oldest first.
    pub stickers: Vec<StickerRecord>,
    pub bans: Vec<BanRecord>,
    pub mutes: Vec<MuteRecord>,
    pub stars: Vec<StarRecord>,
    /// Largest ids used so far (new ones are above).
    pub max_user_id: u64,
    pub max_chat_id: u64,
    pub max_sticker_id: u64,
}
