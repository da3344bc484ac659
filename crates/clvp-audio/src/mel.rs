//! Mel filter banks: `transformers.audio_utils.mel_filter_bank` (with `hertz_to_mel`, `mel_to_hertz`
//! and `_create_triangular_filter_bank`), in float64, plus a sparse form for fast application.

use crate::error::AudioError;

/// The mel scale (`mel_scale=` in transformers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScale {
    /// `2595 · log10(1 + f/700)` (CLVP, Whisper-style HTK).
    Htk,
    /// `1127 · ln(1 + f/700)`.
    Kaldi,
    /// Slaney's scale: linear below 1 kHz, logarithmic above (librosa's default).
    Slaney,
}

/// Filter normalisation (`norm=` in transformers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelNorm {
    /// No normalisation (`norm=None`).
    None,
    /// Slaney area normalisation: triangle `j` is multiplied by `2 / (f[j+2] − f[j])` (`norm="slaney"`).
    Slaney,
}

const SLANEY_MIN_LOG_HERTZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = 15.0;

/// `logstep` in `hertz_to_mel` (`27 / ln 6.4`); `mel_to_hertz` uses its own `ln 6.4 / 27` (not the
/// reciprocal of this one, to round the same way as numpy).
fn slaney_logstep() -> f64 {
    27.0 / 6.4f64.ln()
}

/// `hertz_to_mel(freq, mel_scale)`.
pub fn hertz_to_mel(freq: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + freq / 700.0).log10(),
        MelScale::Kaldi => 1127.0 * (1.0 + freq / 700.0).ln(),
        MelScale::Slaney => {
            if freq >= SLANEY_MIN_LOG_HERTZ {
                SLANEY_MIN_LOG_MEL + (freq / SLANEY_MIN_LOG_HERTZ).ln() * slaney_logstep()
            } else {
                3.0 * freq / 200.0
            }
        }
    }
}

/// `mel_to_hertz(mels, mel_scale)`.
pub fn mel_to_hertz(mels: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mels / 2595.0) - 1.0),
        MelScale::Kaldi => 700.0 * ((mels / 1127.0).exp() - 1.0),
        MelScale::Slaney => {
            if mels >= SLANEY_MIN_LOG_MEL {
                SLANEY_MIN_LOG_HERTZ * ((6.4f64.ln() / 27.0) * (mels - SLANEY_MIN_LOG_MEL)).exp()
            } else {
                200.0 * mels / 3.0
            }
        }
    }
}

/// `np.linspace(start, stop, num)` (endpoint included): `i·step + start`, last element exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// `transformers.audio_utils.mel_filter_bank`: a `(num_frequency_bins × num_mel_filters)` row-major
/// float64 matrix (HF's layout; element `[k, j]` at `k · num_mel_filters + j`).
///
/// Triangle `j` has corners `f[j], f[j+1], f[j+2]` from `num_mel_filters + 2` points equally spaced in
/// mel between `min_frequency` and `max_frequency`; FFT bin `k` sits at
/// `linspace(0, sampling_rate // 2, num_frequency_bins)[k]` Hz, or in mel when
/// `triangularize_in_mel_space`. CLVP uses `(513, 80, 0, 8000, 22050, Slaney, Htk, false)`.
/// A filter that is zero everywhere (fmax above Nyquist, too many filters) gives a `tracing` warning,
/// like HF's `UserWarning`.
#[allow(clippy::too_many_arguments)]
pub fn mel_filter_bank(
    num_frequency_bins: usize,
    num_mel_filters: usize,
    min_frequency: f64,
    max_frequency: f64,
    sampling_rate: u32,
    norm: MelNorm,
    mel_scale: MelScale,
    triangularize_in_mel_space: bool,
) -> Result<Vec<f64>, AudioError> {
    let invalid = |reason: String| Err(AudioError::InvalidSettings { reason });
    if num_frequency_bins < 2 {
        return invalid(format!(
            "num_frequency_bins must be at least 2, got {num_frequency_bins}"
        ));
    }
    if num_mel_filters == 0 {
        return invalid("num_mel_filters must be at least 1".into());
    }
    if min_frequency > max_frequency {
        return invalid(format!(
            "min_frequency ({min_frequency}) must not exceed max_frequency ({max_frequency})"
        ));
    }
    let mel_min = hertz_to_mel(min_frequency, mel_scale);
    let mel_max = hertz_to_mel(max_frequency, mel_scale);
    let mel_freqs = linspace(mel_min, mel_max, num_mel_filters + 2);
    let (fft_freqs, filter_freqs) = if triangularize_in_mel_space {
        let bin_width = f64::from(sampling_rate) / ((num_frequency_bins - 1) * 2) as f64;
        let fft: Vec<f64> = (0..num_frequency_bins)
            .map(|k| hertz_to_mel(bin_width * k as f64, mel_scale))
            .collect();
        (fft, mel_freqs)
    } else {
        let filter: Vec<f64> = mel_freqs
            .iter()
            .map(|&m| mel_to_hertz(m, mel_scale))
            .collect();
        (
            linspace(0.0, f64::from(sampling_rate / 2), num_frequency_bins),
            filter,
        )
    };

    // _create_triangular_filter_bank
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut filters = vec![0.0f64; num_frequency_bins * num_mel_filters];
    for (k, &fk) in fft_freqs.iter().enumerate() {
        let row = &mut filters[k * num_mel_filters..(k + 1) * num_mel_filters];
        for (j, out) in row.iter_mut().enumerate() {
            let down = -(filter_freqs[j] - fk) / diff[j];
            let up = (filter_freqs[j + 2] - fk) / diff[j + 1];
            *out = 0.0f64.max(down.min(up));
        }
    }
    if norm == MelNorm::Slaney {
        for j in 0..num_mel_filters {
            let enorm = 2.0 / (filter_freqs[j + 2] - filter_freqs[j]);
            for k in 0..num_frequency_bins {
                filters[k * num_mel_filters + j] *= enorm;
            }
        }
    }
    let empty: Vec<usize> = (0..num_mel_filters)
        .filter(|&j| (0..num_frequency_bins).all(|k| filters[k * num_mel_filters + j] <= 0.0))
        .collect();
    if !empty.is_empty() {
        tracing::warn!(
            ?empty,
            "at least one mel filter has all zero values: num_mel_filters may be too high or num_frequency_bins too low"
        );
    }
    Ok(filters)
}

/// A filter bank stored per filter as its non-zero bin range, so applying it costs only the
/// triangles' widths (729 non-zero weights in all for CLVP, 9 per filter) instead of 80 × 513.
#[derive(Debug, Clone)]
pub(crate) struct SparseFilterBank {
    /// `(first bin, offset into weights, length)` per filter, in filter order.
    ranges: Vec<(usize, usize, usize)>,
    /// All filters' non-zero runs, back to back.
    weights: Vec<f64>,
}

impl SparseFilterBank {
    /// Compress a `(bins × filters)` HF-layout matrix.
    pub(crate) fn from_dense(dense: &[f64], bins: usize, filters: usize) -> Self {
        let mut ranges = Vec::with_capacity(filters);
        let mut weights = Vec::new();
        for j in 0..filters {
            let column = |k: usize| dense[k * filters + j];
            match (0..bins).find(|&k| column(k) != 0.0) {
                None => ranges.push((0, weights.len(), 0)),
                Some(first) => {
                    let last = (first..bins)
                        .rev()
                        .find(|&k| column(k) != 0.0)
                        .unwrap_or(first);
                    ranges.push((first, weights.len(), last + 1 - first));
                    weights.extend((first..=last).map(column));
                }
            }
        }
        SparseFilterBank { ranges, weights }
    }

    /// Number of filters.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// `filtersᵀ · power` for filter `j` (power has one value per FFT bin).
    #[inline]
    pub(crate) fn apply(&self, j: usize, power: &[f64]) -> f64 {
        let (first, offset, len) = self.ranges[j];
        let w = &self.weights[offset..offset + len];
        let p = &power[first..first + len];
        let mut acc = 0.0;
        for (a, b) in w.iter().zip(p) {
            acc += a * b;
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clvp_bank() -> Vec<f64> {
        mel_filter_bank(
            513,
            80,
            0.0,
            8000.0,
            22050,
            MelNorm::Slaney,
            MelScale::Htk,
            false,
        )
        .unwrap()
    }

    #[test]
    fn sparse_matches_dense() {
        let fb = clvp_bank();
        let sparse = SparseFilterBank::from_dense(&fb, 513, 80);
        let power: Vec<f64> = (0..513)
            .map(|k| (k as f64 * 0.37).sin().abs() + 0.1)
            .collect();
        for j in 0..80 {
            let dense: f64 = (0..513).map(|k| fb[k * 80 + j] * power[k]).sum();
            assert!((dense - sparse.apply(j, &power)).abs() < 1e-15 * dense.abs().max(1.0));
        }
    }

    #[test]
    fn scales_round_trip() {
        for scale in [MelScale::Htk, MelScale::Kaldi, MelScale::Slaney] {
            for f in [0.0, 300.0, 1000.0, 4000.0, 11025.0] {
                let back = mel_to_hertz(hertz_to_mel(f, scale), scale);
                assert!((back - f).abs() < 1e-9 * f.max(1.0), "{scale:?} {f} {back}");
            }
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(
            mel_filter_bank(
                1,
                80,
                0.0,
                8000.0,
                22050,
                MelNorm::None,
                MelScale::Htk,
                false
            )
            .is_err()
        );
        assert!(
            mel_filter_bank(
                513,
                80,
                9000.0,
                8000.0,
                22050,
                MelNorm::None,
                MelScale::Htk,
                false
            )
            .is_err()
        );
    }
}
