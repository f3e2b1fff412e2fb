//! Display names and chat text: Unicode normalization and the rules of issue 3.
//!
//! - Display names: NFC, trimmed, runs of whitespace collapsed to one space, 1–24 grapheme
//!   clusters ([`MAX_NAME_GRAPHEMES`]), no control, format (invisible), bidi-override,
//!   zero-width or private-use characters — except the zero-width joiner and variation
//!   selectors inside emoji sequences (👩‍👩‍👧, ❤️), which are part of the visible glyph.
//!   Uniqueness is decided on [`name_key`]: the NFC form lowercased with
//!   `str::to_lowercase` (Unicode's default full case mapping, not full case folding: "ß"
//!   and "SS" stay different, which errs on the side of allowing a name).
//! - Chat text: NFC, trimmed, 1–500 Unicode scalar values ([`MAX_CHAT_CHARS`]); tabs and line
//!   breaks become spaces; other control characters and bidi overrides are removed (RTL text
//!   itself is kept: the browser's bidi algorithm lays it out).

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longest display name, in grapheme clusters.
pub const MAX_NAME_GRAPHEMES: usize = 24;
/// Longest chat message, in Unicode scalar values after NFC.
pub const MAX_CHAT_CHARS: usize = 500;

/// Why a display name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_GRAPHEMES} characters")]
    TooLong,
    #[error("the name contains an invisible or control character (U+{0:04X})")]
    Forbidden(u32),
    #[error("the name is taken")]
    Taken,
}

/// Why a chat message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is longer than {MAX_CHAT_CHARS} characters")]
    TooLong,
}

/// Bidi embedding/override/isolate controls and marks (UAX #9).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that render as nothing (zero-width, fillers, format characters).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    ) || is_bidi_control(c)
}

fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// Emoji-ish code points after which a ZWJ or a variation selector is part of the glyph.
fn is_emoji_base(c: char) -> bool {
    matches!(
        c,
        '\u{2190}'..='\u{21FF}'
            | '\u{2300}'..='\u{23FF}'
            | '\u{2460}'..='\u{27BF}'
            | '\u{2900}'..='\u{2BFF}'
            | '\u{3030}'
            | '\u{303D}'
            | '\u{3297}'
            | '\u{3299}'
            | '\u{1F000}'..='\u{1FAFF}'
            | '\u{FE0F}'
    ) || c == '\u{00A9}'
        || c == '\u{00AE}'
        || c == '\u{203C}'
        || c == '\u{2049}'
        || c == '\u{2122}'
        || c == '\u{2139}'
}

/// Validates and normalizes a wanted display name. Returns the name to show.
/// Errors: [`NameError::Empty`], [`NameError::TooLong`], [`NameError::Forbidden`].
pub fn normalize_name(raw: &str) -> Result<String, NameError> {
    let nfc: String = raw.nfc().collect();
    let mut out = String::with_capacity(nfc.len());
    let mut prev: Option<char> = None;
    let mut pending_space = false;
    for c in nfc.chars() {
        if c.is_whitespace() && !is_invisible(c) {
            pending_space = !out.is_empty();
            prev = Some(' ');
            continue;
        }
        let emoji_part =
            matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}') && prev.is_some_and(is_emoji_base);
        if !emoji_part && (c.is_control() || is_invisible(c) || is_private_use(c)) {
            return Err(NameError::Forbidden(u32::from(c)));
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
        prev = Some(c);
    }
    if out.ends_with('\u{200D}') {
        return Err(NameError::Forbidden(0x200D));
    }
    if out.is_empty() {
        return Err(NameError::Empty);
    }
    if out.graphemes(true).count() > MAX_NAME_GRAPHEMES {
        return Err(NameError::TooLong);
    }
    Ok(out)
}

/// The uniqueness key of a normalized name: NFC, lowercased (see the module doc).
pub fn name_key(name: &str) -> String {
    name.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// Validates and normalizes a chat message. Returns the text to show.
/// Errors: [`ChatError::Empty`], [`ChatError::TooLong`].
pub fn normalize_chat(raw: &str) -> Result<String, ChatError> {
    // Cheap upper bound first: 500 chars are at most 2000 bytes, NFC can grow text ×3.
    if raw.len() > MAX_CHAT_CHARS * 4 * 3 {
        return Err(ChatError::TooLong);
    }
    let cleaned: String = raw
        .nfc()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() || is_bidi_control(c) => None,
            c => Some(c),
        })
        .collect();
    let text = cleaned.trim();
    if text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(ChatError::Empty);
    }
    if text.chars().count() > MAX_CHAT_CHARS {
        return Err(ChatError::TooLong);
    }
    Ok(text.to_owned())
}
