//! The log-mel spectrogram of `ClvpFeatureExtractor._np_extract_fbank_features`: transformers'
//! `audio_utils.spectrogram` (periodic Hann, centred reflect padding, float64 rfft stored as
//! complex64, power 2, mel filters) followed by `np.log(np.clip(mel, 1e-5))` and the `mel_norms` division.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::error::AudioError;
use crate::mel::SparseFilterBank;

/// `np.maximum(mel_floor, ·)` in `spectrogram` (its default `mel_floor`).
const MEL_FLOOR: f64 = 1e-10;
/// `np.clip(log_spec, a_min=1e-5)` in `_np_extract_fbank_features`.
const LOG_CLIP: f64 = 1e-5;

/// A planned log-mel transform: window, FFT plan and sparse filters, built once and shared.
pub(crate) struct LogMel {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    filters: SparseFilterBank,
    mel_norms: Option<Vec<f64>>,
    /// `ln(LOG_CLIP)`.
    ln_clip: f64,
}

/// Per-thread working memory, so no frame allocates.
pub(crate) struct Scratch {
    padded: Vec<f64>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    fft_scratch: Vec<Complex<f64>>,
    power: Vec<f64>,
}

/// `window_function(n, "hann")` (periodic): `0.5 − 0.5·cos(2πi/n)`, i.e. `np.hanning(n + 1)[:-1]`.
pub(crate) fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// numpy `mode="reflect"` source index for padded position `i` (may be negative or past the end) of a
/// signal of `len ≥ 1` samples: mirror without repeating the edge sample, periodically for long pads.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= len as isize { period - m } else { m }) as usize
}

impl LogMel {
    /// Plan the transform. `mel_norms`, when given, has one entry per filter.
    pub(crate) fn new(
        n_fft: usize,
        hop: usize,
        filters: SparseFilterBank,
        mel_norms: Option<Vec<f64>>,
    ) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        LogMel {
            n_fft,
            hop,
            window: periodic_hann(n_fft),
            fft,
            filters,
            mel_norms,
            ln_clip: LOG_CLIP.ln(),
        }
    }

    /// Number of mel bins.
    pub(crate) fn num_mels(&self) -> usize {
        self.filters.len()
    }

    /// Frames for a waveform of `len` samples: `1 + (len + 2·(n_fft/2) − n_fft) / hop`.
    pub(crate) fn num_frames(&self, len: usize) -> usize {
        let padded = len + 2 * (self.n_fft / 2);
        if padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop
        }
    }

    /// Fresh working memory for one thread.
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch {
            padded: Vec::new(),
            frame: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            fft_scratch: self.fft.make_scratch_vec(),
            power: vec![0.0; self.n_fft / 2 + 1],
        }
    }

    /// Load a clip into the scratch's reflect-padded float64 buffer, as the float32 waveform of `len`
    /// samples that HF pads/truncates it to: `clip[..len]`, then `pad_value` up to `len`. Must precede
    /// [`LogMel::frames_into`] for that clip.
    pub(crate) fn load(&self, clip: &[f32], len: usize, pad_value: f32, scratch: &mut Scratch) {
        let pad = self.n_fft / 2;
        let kept = clip.len().min(len);
        scratch.padded.clear();
        scratch.padded.reserve(len + 2 * pad);
        if len == 0 {
            scratch.padded.resize(2 * pad, 0.0);
            return;
        }
        let sample = |i: usize| f64::from(if i < kept { clip[i] } else { pad_value });
        let reflected = |i: isize| sample(reflect_index(i, len));
        scratch.padded.extend((-(pad as isize)..0).map(reflected));
        scratch
            .padded
            .extend(clip[..kept].iter().map(|&x| f64::from(x)));
        scratch.padded.resize(pad + len, f64::from(pad_value));
        scratch
            .padded
            .extend((len as isize..(len + pad) as isize).map(reflected));
    }

    /// Log-mel frames `first..first + count` of the loaded waveform, written as `out[m · stride + t]`
    /// for mel `m` and local frame `t` (`stride ≥ count`).
    pub(crate) fn frames_into(
        &self,
        scratch: &mut Scratch,
        first: usize,
        count: usize,
        out: &mut [f32],
        stride: usize,
    ) -> Result<(), AudioError> {
        let Scratch {
            padded,
            frame,
            spectrum,
            fft_scratch,
            power,
        } = scratch;
        for t in 0..count {
            let start = (first + t) * self.hop;
            let src = padded.get(start..start + self.n_fft).ok_or_else(|| {
                AudioError::InvalidSettings {
                    reason: format!("frame {} runs past the padded waveform", first + t),
                }
            })?;
            for ((f, &x), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                *f = x * w;
            }
            self.fft
                .process_with_scratch(frame, spectrum, fft_scratch)
                .map_err(|e| AudioError::InvalidSettings {
                    reason: format!("FFT failed: {e}"),
                })?;
            // numpy stores the rfft in a complex64 array, then takes |·|² in float64.
            for (p, c) in power.iter_mut().zip(spectrum.iter()) {
                let (re, im) = (f64::from(c.re as f32), f64::from(c.im as f32));
                *p = re * re + im * im;
            }
            for m in 0..self.filters.len() {
                let mel = self.filters.apply(m, power).max(MEL_FLOOR);
                // Silence is clipped; its log is the same constant (same `ln`, same bits).
                let mut v = if mel <= LOG_CLIP {
                    self.ln_clip
                } else {
                    mel.ln()
                };
                if let Some(norms) = &self.mel_norms {
                    v /= norms[m];
                }
                out[m * stride + t] = v as f32;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([1,2,3], (5,6), "reflect") = [2 1 2 3 2 | 1 2 3 | 2 1 2 3 2 1]
        let x = [1.0f32, 2.0, 3.0];
        let got: Vec<f32> = (-5isize..9).map(|i| x[reflect_index(i, 3)]).collect();
        assert_eq!(
            got,
            [2., 1., 2., 3., 2., 1., 2., 3., 2., 1., 2., 3., 2., 1.]
        );
        assert_eq!(reflect_index(-2, 1), 0);
    }

    #[test]
    fn hann_is_periodic() {
        let w = periodic_hann(1024);
        assert_eq!(w[0], 0.0);
        assert!((w[512] - 1.0).abs() < 1e-15);
        assert!((w[1] - w[1023]).abs() < 1e-15);
    }
}
