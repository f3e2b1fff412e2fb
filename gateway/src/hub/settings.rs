//! Room settings (title, now playing, background colour, interactivity mode, sticker set,
//! slow mode) and sticker sets, with their validation and the default set shipped with Venue.

use serde::{Deserialize, Serialize};
use venue_proto::v1;

/// Longest title and "now playing" line, in chars.
pub const MAX_SETTING_CHARS: usize = 200;
/// Longest slow-mode interval, seconds.
pub const MAX_SLOW_MODE_S: u32 = 3600;
/// Id of the sticker set shipped with Venue.
pub const DEFAULT_STICKER_SET: &str = "default";
/// Sticker ids of the default set; the artwork is `web/public/stickers/default/<id>.svg`,
/// served as `/stickers/default/<id>.svg`.
pub const DEFAULT_STICKERS: [&str; 8] = [
    "heart", "star", "fire", "sparkles", "music", "rainbow", "clap", "moon",
];
/// Default page background.
pub const DEFAULT_BACKGROUND: &str = "#1a1033";

/// What viewers may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Cursors, stickers, fireworks and chat.
    #[default]
    Everything,
    /// Chat only.
    ChatOnly,
    /// Everything but stickers.
    StickersOff,
    /// Nothing interactive: viewers watch.
    Quiet,
}

impl Mode {
    /// Whether cursors and fireworks are allowed.
    pub fn motion(self) -> bool {
        matches!(self, Mode::Everything | Mode::StickersOff)
    }
    /// Whether stickers are allowed.
    pub fn stickers(self) -> bool {
        self == Mode::Everything
    }
    /// Whether chat is allowed.
    pub fn chat(self) -> bool {
        self != Mode::Quiet
    }
    /// The wire enum.
    pub fn to_proto(self) -> v1::InteractivityMode {
        match self {
            Mode::Everything => v1::InteractivityMode::Everything,
            Mode::ChatOnly => v1::InteractivityMode::ChatOnly,
            Mode::StickersOff => v1::InteractivityMode::StickersOff,
            Mode::Quiet => v1::InteractivityMode::Quiet,
        }
    }
    /// The store's text form (`"everything"`, `"chat_only"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Everything => "everything",
            Mode::ChatOnly => "chat_only",
            Mode::StickersOff => "stickers_off",
            Mode::Quiet => "quiet",
        }
    }
    /// Parses [`Mode::as_str`]'s form.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "everything" => Mode::Everything,
            "chat_only" => Mode::ChatOnly,
            "stickers_off" => Mode::StickersOff,
            "quiet" => Mode::Quiet,
            _ => return None,
        })
    }
}

/// One sticker of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickerDef {
    /// 1–64 chars of `[a-z0-9_-]`.
    pub id: String,
    /// Same-origin image URL, e.g. `/stickers/default/heart.svg`.
    pub url: String,
    pub label: String,
}

/// A sticker set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickerSet {
    /// 1–64 chars of `[a-z0-9_-]`.
    pub id: String,
    pub name: String,
    pub stickers: Vec<StickerDef>,
}

/// Whether `id` is a valid set or sticker id: 1–64 chars of `[a-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl StickerSet {
    /// The set shipped with Venue ([`DEFAULT_STICKERS`]).
    pub fn default_set() -> StickerSet {
        StickerSet {
            id: DEFAULT_STICKER_SET.into(),
            name: "Default".into(),
            stickers: DEFAULT_STICKERS
                .iter()
                .map(|id| {
                    let mut label = String::new();
                    let mut chars = id.chars();
                    if let Some(first) = chars.next() {
                        label.extend(first.to_uppercase());
                        label.push_str(chars.as_str());
                    }
                    StickerDef {
                        id: (*id).into(),
                        url: format!("/stickers/{DEFAULT_STICKER_SET}/{id}.svg"),
                        label,
                    }
                })
                .collect(),
        }
    }

    /// Whether the set has a sticker `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.stickers.iter().any(|s| s.id == id)
    }

    /// Checks ids (valid, unique), URLs (same origin: start with `/`, no `//`), 1–64
    /// stickers. Errors: the reason.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_id(&self.id) {
            return Err(format!(
                "sticker set id must be 1-64 characters of a-z, 0-9, '-' and '_', got {:?}",
                self.id
            ));
        }
        if self.name.chars().count() > 64 {
            return Err("sticker set name must be at most 64 characters".into());
        }
        if self.stickers.is_empty() || self.stickers.len() > 64 {
            return Err("a sticker set has 1-64 stickers".into());
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.stickers {
            if !valid_id(&s.id) || !seen.insert(s.id.as_str()) {
                return Err(format!("sticker id {:?} is invalid or repeated", s.id));
            }
            if !s.url.starts_with('/')
                || s.url.starts_with("//")
                || s.url.len() > 256
                || s.url.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(format!(
                    "sticker url must be a same-origin path like /stickers/set/id.svg, got {:?}",
                    s.url
                ));
            }
            if s.label.chars().count() > 64 {
                return Err("sticker labels are at most 64 characters".into());
            }
        }
        Ok(())
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::StickerSet {
        v1::StickerSet {
            id: self.id.clone(),
            name: self.name.clone(),
            stickers: self
                .stickers
                .iter()
                .map(|s| v1::StickerDef {
                    id: s.id.clone(),
                    url: s.url.clone(),
                    label: s.label.clone(),
                })
                .collect(),
        }
    }
}

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// At most 200 chars.
    pub title: String,
    /// At most 200 chars.
    pub now_playing: String,
    /// `#rrggbb`.
    pub background_color: String,
    pub mode: Mode,
    /// The active set.
    pub sticker_set: StickerSet,
    /// Seconds between one user's chat messages, 0 = off, at most 3600.
    pub slow_mode_s: u32,
}

impl RoomSettings {
    /// Defaults for a room titled `title`.
    pub fn with_title(title: &str) -> RoomSettings {
        RoomSettings {
            title: title.to_owned(),
            now_playing: String::new(),
            background_color: DEFAULT_BACKGROUND.into(),
            mode: Mode::Everything,
            sticker_set: StickerSet::default_set(),
            slow_mode_s: 0,
        }
    }

    /// Checks every field. Errors: the reason, for a 400.
    pub fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() || self.title.chars().count() > MAX_SETTING_CHARS {
            return Err(format!("title must be 1-{MAX_SETTING_CHARS} characters"));
        }
        if self.now_playing.chars().count() > MAX_SETTING_CHARS {
            return Err(format!(
                "now_playing must be at most {MAX_SETTING_CHARS} characters"
            ));
        }
        if self
            .title
            .chars()
            .chain(self.now_playing.chars())
            .any(char::is_control)
        {
            return Err("title and now_playing must not contain control characters".into());
        }
        if !valid_color(&self.background_color) {
            return Err(format!(
                "background_color must be \"#rrggbb\", got {:?}",
                self.background_color
            ));
        }
        if self.slow_mode_s > MAX_SLOW_MODE_S {
            return Err(format!("slow_mode_s must be 0..={MAX_SLOW_MODE_S}"));
        }
        self.sticker_set.validate()
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::RoomSettings {
        v1::RoomSettings {
            title: self.title.clone(),
            now_playing: self.now_playing.clone(),
            background_color: self.background_color.clone(),
            mode: self.mode.to_proto() as i32,
            sticker_set: Some(self.sticker_set.to_proto()),
            slow_mode_s: self.slow_mode_s,
        }
    }
}

/// Whether `s` is `#rrggbb` (hex digits, either case).
pub fn valid_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
}
