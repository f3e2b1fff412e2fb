//! A small ISOBMFF reader for tests (ISO/IEC 14496-12 §4.2 box headers, §8.8 fragments): walk
//! boxes, find one by path, and read the fields of `tfdt` / `trun` back.

/// One box: its type and body (the bytes after the 8-byte header).
#[derive(Debug, Clone, Copy)]
pub struct Mp4Box<'a> {
    /// The four-character code.
    pub fourcc: [u8; 4],
    /// The body.
    pub body: &'a [u8],
    /// Offset of the box's first header byte in the buffer walked.
    pub offset: usize,
}

/// The boxes in `buf`, in order. Errors: a size below 8 or past the end.
pub fn boxes(buf: &[u8]) -> anyhow::Result<Vec<Mp4Box<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        anyhow::ensure!(buf.len() - at >= 8, "truncated box header at {at}");
        let size = u32::from_be_bytes(buf[at..at + 4].try_into()?) as usize;
        anyhow::ensure!(
            size >= 8 && at + size <= buf.len(),
            "bad box size {size} at {at}"
        );
        let fourcc: [u8; 4] = buf[at + 4..at + 8].try_into()?;
        out.push(Mp4Box {
            fourcc,
            body: &buf[at + 8..at + size],
            offset: at,
        });
        at += size;
    }
    Ok(out)
}

/// Bytes before the children of container boxes that have fields first: full-box
/// headers, entry counts and sample-entry fields.
fn children_skip(fourcc: &[u8; 4]) -> usize {
    match fourcc {
        b"stsd" => 8,
        b"dref" => 8,
        b"avc1" => 78,
        b"Opus" | b"mp4a" => 28,
        _ => 0,
    }
}

/// The first box at `path` (e.g. `["moov", "trak", "mdia"]`), descending into each one's
/// children. `None` when missing or malformed.
pub fn find<'a>(buf: &'a [u8], path: &[&str]) -> Option<Mp4Box<'a>> {
    let (first, rest) = path.split_first()?;
    let b = boxes(buf)
        .ok()?
        .into_iter()
        .find(|b| b.fourcc == first.as_bytes())?;
    if rest.is_empty() {
        return Some(b);
    }
    find(b.body.get(children_skip(&b.fourcc)..)?, rest)
}

/// All boxes at `path` (the last element may repeat, e.g. every `traf` of a `moof`).
pub fn find_all<'a>(buf: &'a [u8], path: &[&str]) -> Vec<Mp4Box<'a>> {
    let Some((last, parents)) = path.split_last() else {
        return Vec::new();
    };
    let inside = if parents.is_empty() {
        Some(buf)
    } else {
        find(buf, parents).and_then(|p| p.body.get(children_skip(&p.fourcc)..))
    };
    inside
        .and_then(|b| boxes(b).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b.fourcc == last.as_bytes())
        .collect()
}

/// A big-endian u32 at `at`.
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One `traf` read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFragment {
    /// `tfhd` track_ID.
    pub track_id: u32,
    /// `tfhd` flags.
    pub tfhd_flags: u32,
    /// `tfdt` baseMediaDecodeTime.
    pub base_decode_time: u64,
    /// `trun` data_offset.
    pub data_offset: i32,
    /// (duration, size, flags) per sample.
    pub samples: Vec<(u32, u32, u32)>,
}

/// Reads each `traf` of a `moof` body. Expects `trun` with data offset, duration, size and
/// flags per sample (what Venue writes).
pub fn track_fragments(moof_body: &[u8]) -> anyhow::Result<Vec<TrackFragment>> {
    let mut out = Vec::new();
    for traf in boxes(moof_body)?
        .into_iter()
        .filter(|b| &b.fourcc == b"traf")
    {
        let tfhd = find(traf.body, &["tfhd"]).ok_or_else(|| anyhow::anyhow!("no tfhd"))?;
        let tfdt = find(traf.body, &["tfdt"]).ok_or_else(|| anyhow::anyhow!("no tfdt"))?;
        let trun = find(traf.body, &["trun"]).ok_or_else(|| anyhow::anyhow!("no trun"))?;
        let base = if tfdt.body[0] == 1 {
            u64::from_be_bytes(tfdt.body[4..12].try_into()?)
        } else {
            u64::from(be32(tfdt.body, 4))
        };
        let flags = be32(trun.body, 0) & 0xff_ffff;
        anyhow::ensure!(flags == 0x701, "unexpected trun flags {flags:#x}");
        let count = be32(trun.body, 4) as usize;
        let data_offset = be32(trun.body, 8) as i32;
        let samples = (0..count)
            .map(|i| {
                let at = 12 + i * 12;
                (
                    be32(trun.body, at),
                    be32(trun.body, at + 4),
                    be32(trun.body, at + 8),
                )
            })
            .collect();
        out.push(TrackFragment {
            track_id: be32(tfhd.body, 4),
            tfhd_flags: be32(tfhd.body, 0) & 0xff_ffff,
            base_decode_time: base,
            data_offset,
            samples,
        });
    }
    Ok(out)
}
