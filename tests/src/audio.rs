//! Audio checks for tests: AAC test streams made by ffmpeg (ADTS framing, ISO/IEC 14496-3
//! §1.A.2), and what a decoded tone looks like (frequency, discontinuities).

use std::process::Command;

/// One AAC stream: its `AudioSpecificConfig` and raw frames (ADTS headers removed).
#[derive(Debug, Clone)]
pub struct AacStream {
    /// The 2-byte `AudioSpecificConfig` (object type, sampling index, channel configuration).
    pub config: Vec<u8>,
    /// Raw AAC frames, 1024 samples per channel each.
    pub frames: Vec<Vec<u8>>,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
}

/// The sampling frequencies of the AAC sampling frequency index (ISO/IEC 14496-3 §1.6.3.4).
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Encodes `seconds` of sine tones with ffmpeg's native AAC-LC encoder: `freqs[i]` Hz on channel
/// `i` (1 or 2 channels), at `rate` Hz. Needs `ffmpeg` on the PATH.
pub fn ffmpeg_aac_tone(freqs: &[u32], rate: u32, seconds: f32) -> anyhow::Result<AacStream> {
    let expr = freqs
        .iter()
        .map(|f| format!("0.5*sin({f}*2*PI*t)"))
        .collect::<Vec<_>>()
        .join("|");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("aevalsrc={expr}:s={rate}:d={seconds}"))
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "adts", "-"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_adts(&out.stdout)
}

/// Splits an ADTS byte stream into raw frames and derives the `AudioSpecificConfig`.
pub fn parse_adts(mut data: &[u8]) -> anyhow::Result<AacStream> {
    let mut frames = Vec::new();
    let mut config = None;
    while data.len() >= 7 {
        anyhow::ensure!(data[0] == 0xff && data[1] & 0xf0 == 0xf0, "lost ADTS sync");
        let protection_absent = data[1] & 1 == 1;
        let profile = (data[2] >> 6) + 1; // audio object type
        let sf_index = (data[2] >> 2) & 0x0f;
        let channels = ((data[2] & 1) << 2) | (data[3] >> 6);
        let len = (usize::from(data[3] & 0x03) << 11)
            | (usize::from(data[4]) << 3)
            | usize::from(data[5] >> 5);
        let header = if protection_absent { 7 } else { 9 };
        anyhow::ensure!(len >= header && len <= data.len(), "bad ADTS frame length");
        frames.push(data[header..len].to_vec());
        config.get_or_insert((profile, sf_index, channels));
        data = &data[len..];
    }
    let (aot, sfi, ch) = config.ok_or_else(|| anyhow::anyhow!("no ADTS frames"))?;
    let asc = vec![(aot << 3) | (sfi >> 1), ((sfi & 1) << 7) | (ch << 3)];
    Ok(AacStream {
        config: asc,
        frames,
        sample_rate: *RATES
            .get(usize::from(sfi))
            .ok_or_else(|| anyhow::anyhow!("bad sampling index"))?,
        channels: ch,
    })
}

/// The frequency of a tone, Hz, from its rising zero crossings (accurate to about 1/duration).
/// `samples` is one channel at `rate` Hz.
pub fn tone_frequency(samples: &[f32], rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, _)| i)
        .collect();
    match (crossings.first(), crossings.last()) {
        (Some(&a), Some(&b)) if b > a => {
            (crossings.len() - 1) as f64 * f64::from(rate) / (b - a) as f64
        }
        _ => 0.0,
    }
}

/// Root mean square of a signal.
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The largest step between neighbouring samples divided by the largest step a sine of
/// frequency `freq` and the signal's own amplitude can make: ≈ 1 for a clean tone, well above 1
/// where a gap or click breaks it.
pub fn worst_step_ratio(samples: &[f32], rate: u32, freq: f64) -> f64 {
    let amplitude = rms(samples) * std::f64::consts::SQRT_2;
    let max_step = amplitude * 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let worst = samples
        .windows(2)
        .map(|w| f64::from((w[1] - w[0]).abs()))
        .fold(0.0, f64::max);
    if max_step > 0.0 {
        worst / max_step
    } else {
        f64::INFINITY
    }
}

/// Splits interleaved samples into channels.
pub fn deinterleave(samples: &[f32], channels: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect()
}
