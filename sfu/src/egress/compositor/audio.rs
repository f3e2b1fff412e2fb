//! The program's sound: per slot a libopus decoder into a short jitter buffer ([`TileAudio`]:
//! primed at 40 ms, capped at 200 ms, loss concealment for gaps up to 100 ms), the tiles summed
//! at 48 kHz stereo, a look-ahead peak [`Limiter`] (ceiling −1 dBFS, 5 ms look-ahead, 100 ms
//! release) and libopus at 20 ms stereo ([`AudioMixer`]).

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::{debug, warn};

use super::{AUDIO_CHANNELS, AUDIO_FRAME_SAMPLES, CompositorError, TileStats};
use crate::egress::ProgramAudio;

/// Jitter buffer: start playing a tile once this much is buffered (samples, interleaved).
pub(super) const AUDIO_PRIME: usize = 2 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
/// Jitter buffer cap (200 ms) and the level it is trimmed to (60 ms), interleaved samples.
pub(super) const AUDIO_CAP: usize = 10 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
pub(super) const AUDIO_TRIM_TO: usize = 3 * AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS;
/// Longest gap (in 20 ms frames) filled with Opus loss concealment.
pub(super) const MAX_PLC_FRAMES: u64 = 5;
/// Largest Opus frame (120 ms) in interleaved stereo samples.
pub(super) const MAX_OPUS_SAMPLES: usize = 5760 * AUDIO_CHANNELS;
/// Limiter ceiling (−1 dBFS), look-ahead (5 ms) and release time constant (100 ms).
pub(super) const LIMITER_CEILING: f32 = 0.891;
pub(super) const LIMITER_LOOKAHEAD: usize = 240;
pub(super) const LIMITER_RELEASE_S: f32 = 0.1;

/// One slot's audio: its Opus decoder and jitter buffer (interleaved stereo f32 at 48 kHz).
#[derive(Default)]
pub(super) struct TileAudio {
    decoder: Option<opus::Decoder>,
    fifo: VecDeque<f32>,
    next_ts: Option<u64>,
    primed: bool,
}

impl TileAudio {
    /// Decodes one Opus packet of slot `slot` (`ts_48k`: its RTP timestamp at 48 kHz) into
    /// the jitter buffer, `pcm` being scratch of at least [`MAX_OPUS_SAMPLES`]. Late or
    /// duplicate packets are dropped, gaps up to 100 ms are concealed, longer ones skipped;
    /// counted in `stats`.
    pub(super) fn push(
        &mut self,
        slot: usize,
        opus: &[u8],
        ts_48k: u64,
        pcm: &mut [f32],
        stats: &mut TileStats,
    ) {
        if self.decoder.is_none() {
            match opus::Decoder::new(48_000, opus::Channels::Stereo) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => {
                    warn!(slot, error = %e, "compositor: Opus decoder not created");
                    stats.audio_errors += 1;
                    return;
                }
            }
        }
        let Some(dec) = self.decoder.as_mut() else {
            return;
        };
        let frame = AUDIO_FRAME_SAMPLES as u64;
        if let Some(next) = self.next_ts {
            if ts_48k.saturating_add(frame / 2) < next {
                stats.audio_errors += 1;
                return;
            }
            let gap = ts_48k.saturating_sub(next) / frame;
            if (1..=MAX_PLC_FRAMES).contains(&gap)
                && let Some(buf) = pcm.get_mut(..AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS)
            {
                for _ in 0..gap {
                    if let Ok(n) = dec.decode_float(&[], buf, false) {
                        self.fifo.extend(buf.iter().take(n * AUDIO_CHANNELS));
                    }
                }
            }
        }
        match dec.decode_float(opus, pcm, false) {
            Ok(n) => {
                self.fifo.extend(pcm.iter().take(n * AUDIO_CHANNELS));
                self.next_ts = Some(ts_48k.saturating_add(n as u64));
                stats.audio_packets += 1;
            }
            Err(e) => {
                debug!(slot, error = %e, "compositor: Opus decode error");
                self.next_ts = Some(ts_48k.saturating_add(frame));
                stats.audio_errors += 1;
            }
        }
        if self.fifo.len() > AUDIO_CAP {
            let excess = self.fifo.len() - AUDIO_TRIM_TO;
            self.fifo.drain(..excess);
        }
    }
}

/// The program's audio output: mixes the tiles' jitter buffers every 20 ms, limits, encodes.
pub(super) struct AudioMixer {
    encoder: opus::Encoder,
    mix: Vec<f32>,
    limiter: Limiter,
    out: Vec<u8>,
}

impl AudioMixer {
    /// A mixer encoding 20 ms stereo Opus at `bitrate_bps`. Errors:
    /// [`CompositorError::Opus`] when libopus refuses.
    pub(super) fn new(bitrate_bps: u32) -> Result<Self, CompositorError> {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)
                .map_err(|e| CompositorError::Opus(e.to_string()))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate_bps as i32))
            .map_err(|e| CompositorError::Opus(e.to_string()))?;
        Ok(AudioMixer {
            encoder,
            mix: vec![0.0; AUDIO_FRAME_SAMPLES * AUDIO_CHANNELS],
            limiter: Limiter::new(LIMITER_CEILING, LIMITER_LOOKAHEAD, LIMITER_RELEASE_S),
            out: vec![0; 4000],
        })
    }

    /// One 20 ms tick at `ts_48k`: 20 ms from each primed tile (a tile starts playing once
    /// [`AUDIO_PRIME`] is buffered and primes again when it runs dry), summed, limited and
    /// encoded. `None` when the encoder fails (logged).
    pub(super) fn tick<'a>(
        &mut self,
        tiles: impl Iterator<Item = &'a mut TileAudio>,
        ts_48k: u64,
    ) -> Option<ProgramAudio> {
        self.mix.fill(0.0);
        for a in tiles {
            if !a.primed {
                if a.fifo.len() >= AUDIO_PRIME {
                    a.primed = true;
                } else {
                    continue;
                }
            }
            let n = a.fifo.len().min(self.mix.len());
            for (m, s) in self.mix.iter_mut().zip(a.fifo.drain(..n)) {
                *m += s;
            }
            if n < self.mix.len() {
                a.primed = false;
            }
        }
        self.limiter.process(&mut self.mix);
        match self.encoder.encode_float(&self.mix, &mut self.out) {
            Ok(n) => Some(ProgramAudio {
                opus: Bytes::copy_from_slice(self.out.get(..n)?),
                ts_48k,
            }),
            Err(e) => {
                warn!(error = %e, "compositor: Opus encode failed");
                None
            }
        }
    }
}

/// A look-ahead peak limiter on interleaved stereo: the gain is the minimum of the needed
/// gains over the next `L` samples, released with a one-pole curve and smoothed by an
/// `L`-sample moving average, applied to the signal delayed by `L − 1` samples — every
/// averaged gain is at most the gain the delayed sample needs, so the output never exceeds
/// the ceiling. State is kept across calls.
#[derive(Debug)]
pub struct Limiter {
    ceiling: f32,
    lookahead: usize,
    release: f32,
    n: u64,
    /// Monotonic deque (index, needed gain) for the sliding minimum.
    min_q: VecDeque<(u64, f32)>,
    /// The last `lookahead` released gains and their sum.
    avg_q: VecDeque<f32>,
    avg_sum: f64,
    released: f32,
    delay: VecDeque<[f32; 2]>,
}

impl Limiter {
    /// A limiter with `ceiling` (linear, e.g. 0.891 for −1 dBFS), `lookahead` samples (≥ 1)
    /// and a release time constant `release_s` seconds at 48 kHz.
    pub fn new(ceiling: f32, lookahead: usize, release_s: f32) -> Self {
        let lookahead = lookahead.max(1);
        Self {
            ceiling,
            lookahead,
            release: 1.0 - (-1.0 / (release_s.max(1e-4) * 48_000.0)).exp(),
            n: 0,
            min_q: VecDeque::with_capacity(lookahead + 1),
            avg_q: VecDeque::with_capacity(lookahead + 1),
            avg_sum: 0.0,
            released: 1.0,
            delay: VecDeque::with_capacity(lookahead + 1),
        }
    }

    /// Limits interleaved stereo `samples` in place (output delayed by `lookahead − 1`
    /// samples; the first ones are silence).
    pub fn process(&mut self, samples: &mut [f32]) {
        let l = self.lookahead as u64;
        for frame in samples.chunks_exact_mut(2) {
            let peak = frame[0].abs().max(frame[1].abs());
            let need = if peak > self.ceiling && peak.is_finite() {
                self.ceiling / peak
            } else if peak.is_finite() {
                1.0
            } else {
                0.0
            };
            while self.min_q.back().is_some_and(|&(_, g)| g >= need) {
                self.min_q.pop_back();
            }
            self.min_q.push_back((self.n, need));
            while self.min_q.front().is_some_and(|&(i, _)| i + l <= self.n) {
                self.min_q.pop_front();
            }
            let hold = self.min_q.front().map_or(1.0, |&(_, g)| g);
            self.released = hold.min(self.released + (1.0 - self.released) * self.release);
            self.avg_q.push_back(self.released);
            self.avg_sum += f64::from(self.released);
            if self.avg_q.len() > self.lookahead {
                self.avg_sum -= f64::from(self.avg_q.pop_front().unwrap_or(0.0));
            }
            let gain = (self.avg_sum / self.avg_q.len() as f64) as f32;
            let input = if peak.is_finite() {
                [frame[0], frame[1]]
            } else {
                [0.0, 0.0]
            };
            self.delay.push_back(input);
            let out = if self.delay.len() >= self.lookahead {
                self.delay.pop_front().unwrap_or([0.0, 0.0])
            } else {
                [0.0, 0.0]
            };
            let c = self.ceiling;
            frame[0] = (out[0] * gain).clamp(-c, c);
            frame[1] = (out[1] * gain).clamp(-c, c);
            self.n += 1;
        }
    }
}
