//! An SDP offer (RFC 8866, JSEP RFC 8829 §5.2) parsed once, where it enters: the text is
//! checked, handed to str0m's parser, and what Venue reads from it (the m-line layout, the ICE
//! ufrag, the directions) is kept next to str0m's [`SdpOffer`].

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};

/// Why an SDP offer was refused. The messages are for the HTTP caller (WHIP/WHEP answer 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The body is empty (or only whitespace).
    #[error("the SDP offer is empty")]
    Empty,
    /// The body does not start with the version line (RFC 8866 §5.1).
    #[error("malformed SDP offer: it must start with \"v=0\" (RFC 8866 §5)")]
    NotSdp,
    /// No media description at all (RFC 8866 §5.14).
    #[error("malformed SDP offer: it has no m= line")]
    NoMedia,
    /// str0m's parser refused it; the string says why.
    #[error("bad SDP offer: {0}")]
    Invalid(String),
}

/// Where the i-th video and i-th audio m-line of an offer sit (by mid), in SDP order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MidLayout {
    /// Video m-line mids in order.
    pub video: Vec<Mid>,
    /// Audio m-line mids in order.
    pub audio: Vec<Mid>,
}

impl MidLayout {
    /// Reads m-line kinds and mids from SDP text (RFC 8866 §5.14, RFC 9143 `a=mid`).
    pub fn from_sdp(sdp: &str) -> MidLayout {
        let mut layout = MidLayout::default();
        let mut kind: Option<MediaKind> = None;
        for line in sdp.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("m=") {
                kind = if rest.starts_with("video") {
                    Some(MediaKind::Video)
                } else if rest.starts_with("audio") {
                    Some(MediaKind::Audio)
                } else {
                    None
                };
            } else if let Some(mid) = line.strip_prefix("a=mid:") {
                match kind.take() {
                    Some(MediaKind::Video) => layout.video.push(Mid::from(mid)),
                    Some(MediaKind::Audio) => layout.audio.push(Mid::from(mid)),
                    None => {}
                }
            }
        }
        layout
    }
}

/// A parsed SDP offer: str0m's [`SdpOffer`] and what Venue reads from it. Made by
/// [`Offer::parse`]; taken by `SfuHandle::publish` and `SfuHandle::subscribe`.
#[derive(Debug)]
pub struct Offer {
    pub(crate) sdp: SdpOffer,
    pub(crate) layout: MidLayout,
    /// The remote `a=ice-ufrag` (RFC 8839 §5.4), to tell a trickle PATCH from an ICE restart.
    pub(crate) ice_ufrag: Option<String>,
    data_channel: bool,
    recv_only: bool,
}

impl Offer {
    /// Parses an offer body. Errors: [`OfferError::Empty`], [`OfferError::NotSdp`] (not
    /// starting with `v=0` after leading whitespace), [`OfferError::NoMedia`], and
    /// [`OfferError::Invalid`] when str0m's parser refuses it (or the `v=0` line is preceded by
    /// whitespace, which the parser does not take).
    pub fn parse(text: &str) -> Result<Offer, OfferError> {
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return Err(OfferError::Empty);
        }
        if !trimmed.starts_with("v=0") {
            return Err(OfferError::NotSdp);
        }
        if !trimmed.lines().any(|l| l.starts_with("m=")) {
            return Err(OfferError::NoMedia);
        }
        if !text.starts_with("v=0") {
            return Err(OfferError::Invalid(
                "an SDP body starts with \"v=0\"".into(),
            ));
        }
        let sdp =
            SdpOffer::from_sdp_string(text).map_err(|e| OfferError::Invalid(e.to_string()))?;
        let ice_ufrag = sdp.to_sdp_string().lines().find_map(|l| {
            l.trim_end()
                .strip_prefix("a=ice-ufrag:")
                .map(str::to_string)
        });
        let direction = |l: &str| matches!(l.trim_end(), "a=sendonly" | "a=sendrecv");
        Ok(Offer {
            layout: MidLayout::from_sdp(text),
            ice_ufrag,
            data_channel: text.lines().any(|l| l.starts_with("m=application")),
            recv_only: text.lines().any(|l| l.trim_end() == "a=recvonly")
                && !text.lines().any(direction),
            sdp,
        })
    }

    /// The audio and video m-lines by mid, in SDP order.
    pub fn layout(&self) -> &MidLayout {
        &self.layout
    }

    /// Whether it has at least one audio or video m-line.
    pub fn has_media(&self) -> bool {
        !self.layout.video.is_empty() || !self.layout.audio.is_empty()
    }

    /// Whether it has an SCTP m-line (`m=application`, data channels, RFC 8841).
    pub fn has_data_channel(&self) -> bool {
        self.data_channel
    }

    /// Whether it only receives (`a=recvonly` and no `a=sendonly`/`a=sendrecv`): a viewer's
    /// offer, not a publication.
    pub fn is_recv_only(&self) -> bool {
        self.recv_only
    }

    /// The remote ICE username fragment, if the offer has one.
    pub fn ice_ufrag(&self) -> Option<&str> {
        self.ice_ufrag.as_deref()
    }
}

#[cfg(test)]
#[path = "tests/offer.rs"]
mod tests;
