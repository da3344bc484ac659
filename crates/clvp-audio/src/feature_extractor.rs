//! `transformers.ClvpFeatureExtractor` (5.23): pad/truncate to `default_audio_length` seconds, then
//! the float64 STFT log-mel features (`stft.rs`), with the sample-level attention mask.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize};

use crate::audio::find_non_finite;
use crate::error::{AudioError, try_with_capacity};
use crate::mel::{MelNorm, MelScale, SparseFilterBank, mel_filter_bank};
use crate::stft::LogMel;

/// The mel filters' frequency range in `ClvpFeatureExtractor.__init__` (fixed, not configurable).
const MIN_FREQUENCY: f64 = 0.0;
const MAX_FREQUENCY: f64 = 8000.0;
/// Largest `|ours − saved|` accepted for a `mel_filters` matrix stored in a config before warning.
const MEL_FILTERS_TOLERANCE: f64 = 1e-9;

/// The largest `n_fft` accepted from a config (Tortoise uses 1024): the FFT plan, the window and the
/// `(n_fft/2 + 1) × feature_size` filter bank grow with it (`n_fft` 2³¹ asked for an 8 GB filter bank).
pub const MAX_N_FFT: usize = 1 << 15;
/// The most mel bins accepted (Tortoise uses 80).
pub const MAX_FEATURE_SIZE: usize = 512;
/// The most samples per clip (`default_audio_length · sampling_rate`; Tortoise: 132 300): every clip is padded
/// to it, and the attention mask holds it per clip.
pub const MAX_CLIP_SAMPLES: usize = 1 << 24;
/// The most feature values per clip (`feature_size` × STFT frames; Tortoise: 80 × 517).
pub const MAX_FEATURE_VALUES: usize = 1 << 26;

/// Tortoise's `data/mel_norms.pth`, see `assets/mel_norms.json`.
const MEL_NORMS_JSON: &str = include_str!("../assets/mel_norms.json");

/// The CLVP feature extractor, with the fields of HF's `preprocessor_config.json`.
///
/// ```no_run
/// use clvp_audio::{ClvpFeatureExtractor, load_audio};
/// let audio = load_audio("voice.mp3")?.to_mono().resample(22_050)?;
/// let fe = ClvpFeatureExtractor::tortoise();
/// let features = fe.extract(&[audio.channels[0].as_slice()], Some(audio.sample_rate))?;
/// assert_eq!(features.shape, [1, 80, 517]);
/// # Ok::<(), clvp_audio::AudioError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClvpFeatureExtractor {
    /// Number of mel bins (80).
    #[serde(deserialize_with = "lenient_usize")]
    pub feature_size: usize,
    /// Expected input rate in Hz (22050); other rates are rejected by [`ClvpFeatureExtractor::extract`].
    #[serde(deserialize_with = "lenient_u32")]
    pub sampling_rate: u32,
    /// Clip length in seconds (6): every clip is padded/truncated to `default_audio_length · sampling_rate` samples.
    #[serde(deserialize_with = "lenient_usize")]
    pub default_audio_length: usize,
    /// STFT hop in samples (256).
    #[serde(deserialize_with = "lenient_usize")]
    pub hop_length: usize,
    /// Unused by the computation (HF derives `n_samples`/`nb_max_frames` from it); kept for round trips (30).
    #[serde(deserialize_with = "lenient_usize")]
    pub chunk_length: usize,
    /// FFT size and window length (1024).
    #[serde(deserialize_with = "lenient_usize")]
    pub n_fft: usize,
    /// Value used to pad short clips (0.0).
    pub padding_value: f32,
    /// Per-bin divisors of the log-mel features (Tortoise's `mel_norms`), or none.
    pub mel_norms: Option<Vec<f32>>,
    /// HF's constructor default (false); `__call__` returns the mask regardless, and so does `extract`.
    pub return_attention_mask: bool,
    #[serde(skip)]
    plan: PlanCache,
}

/// Output of [`ClvpFeatureExtractor::extract`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Log-mel features, row-major `[batch, feature_size, frames]` (`input_features`).
    pub input_features: Vec<f32>,
    /// `[batch, feature_size, frames]`, e.g. `[B, 80, 517]`.
    pub shape: [usize; 3],
    /// Sample-level mask, row-major `[batch, max_length]`: 1 for real samples, 0 for padding.
    /// It is **not** the model's attention mask.
    pub attention_mask: Vec<i32>,
    /// `[batch, max_length]`, e.g. `[B, 132300]`.
    pub mask_shape: [usize; 2],
}

impl Features {
    /// The `[feature_size, frames]` features of clip `index`.
    pub fn clip(&self, index: usize) -> Option<&[f32]> {
        let size = self.shape[1] * self.shape[2];
        self.input_features.get(index * size..(index + 1) * size)
    }
}

impl Default for ClvpFeatureExtractor {
    /// HF's constructor defaults: 80 mels, 22050 Hz, 6 s, hop 256, n_fft 1024, no `mel_norms`.
    fn default() -> Self {
        ClvpFeatureExtractor {
            feature_size: 80,
            sampling_rate: 22050,
            default_audio_length: 6,
            hop_length: 256,
            chunk_length: 30,
            n_fft: 1024,
            padding_value: 0.0,
            mel_norms: None,
            return_attention_mask: false,
            plan: PlanCache::default(),
        }
    }
}

#[derive(Deserialize)]
struct MelNormsAsset {
    mel_norms: Vec<f32>,
}

impl ClvpFeatureExtractor {
    /// The defaults plus Tortoise's 80 `mel_norms` (what the CLVP checkpoint's preprocessor config holds).
    pub fn tortoise() -> Self {
        // The asset is compiled in and checked by a unit test; failing to parse it is a build defect.
        let asset: MelNormsAsset = serde_json::from_str(MEL_NORMS_JSON)
            .expect("assets/mel_norms.json is valid (checked by tests)");
        ClvpFeatureExtractor {
            mel_norms: Some(asset.mel_norms),
            ..Self::default()
        }
    }

    /// Read a HF `preprocessor_config.json`. Unknown keys (`feature_extractor_type`, `processor_class`,
    /// `n_samples`, ...) are ignored; missing keys take the HF defaults; a saved `mel_filters` matrix
    /// is compared with the recomputed one (HF recomputes it too) and a mismatch is logged as a warning.
    pub fn from_preprocessor_config(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                AudioError::NotFound { file: file.clone() }
            } else {
                AudioError::Io {
                    file: file.clone(),
                    source,
                }
            }
        })?;
        Self::from_json(&text).map_err(|e| match e {
            AudioError::Config { reason, .. } => AudioError::Config { file, reason },
            AudioError::InvalidSettings { reason } => AudioError::Config { file, reason },
            AudioError::TooLarge {
                field,
                value,
                limit,
                ..
            } => AudioError::TooLarge {
                file,
                field,
                value,
                limit,
            },
            other => other,
        })
    }

    /// Parse the JSON text of a `preprocessor_config.json` (see [`ClvpFeatureExtractor::from_preprocessor_config`]).
    pub fn from_json(text: &str) -> Result<Self, AudioError> {
        let config_error = |reason: String| AudioError::Config {
            file: "<json>".into(),
            reason,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| config_error(e.to_string()))?;
        let Some(object) = value.as_object_mut() else {
            return Err(config_error("the top level is not a JSON object".into()));
        };
        if let Some(kind) = object
            .get("feature_extractor_type")
            .and_then(|v| v.as_str())
            && kind != "ClvpFeatureExtractor"
        {
            tracing::warn!(
                kind,
                "preprocessor config is for another feature extractor; reading it as ClvpFeatureExtractor"
            );
        }
        let saved_filters = object.remove("mel_filters");
        let fe: ClvpFeatureExtractor =
            serde_json::from_value(value).map_err(|e| config_error(e.to_string()))?;
        fe.validate()?;
        if let Some(saved) = saved_filters {
            fe.check_saved_mel_filters(&saved)?;
        }
        Ok(fe)
    }

    /// Check the settings: positive sizes, a whole clip of at least one sample, and one `mel_norms`
    /// value per mel bin.
    pub fn validate(&self) -> Result<(), AudioError> {
        let invalid = |reason: String| Err(AudioError::InvalidSettings { reason });
        if self.feature_size == 0
            || self.n_fft < 2
            || self.hop_length == 0
            || self.sampling_rate == 0
        {
            return invalid(format!(
                "feature_size ({}), hop_length ({}) and sampling_rate ({}) must be positive and n_fft ({}) at least 2",
                self.feature_size, self.hop_length, self.sampling_rate, self.n_fft
            ));
        }
        // Sizes that allocate are bounded before anything is built from them.
        let too_large = |field: &str, value: u128, limit: usize| {
            Err(AudioError::TooLarge {
                file: "feature extractor settings".into(),
                field: field.to_string(),
                value: u64::try_from(value).unwrap_or(u64::MAX),
                limit: limit as u64,
            })
        };
        if self.n_fft > MAX_N_FFT {
            return too_large("n_fft", self.n_fft as u128, MAX_N_FFT);
        }
        if self.feature_size > MAX_FEATURE_SIZE {
            return too_large("feature_size", self.feature_size as u128, MAX_FEATURE_SIZE);
        }
        let samples = self.default_audio_length as u128 * u128::from(self.sampling_rate);
        if samples > MAX_CLIP_SAMPLES as u128 {
            return too_large(
                "default_audio_length · sampling_rate (samples per clip)",
                samples,
                MAX_CLIP_SAMPLES,
            );
        }
        let values = (samples / self.hop_length as u128 + 1) * self.feature_size as u128;
        if values > MAX_FEATURE_VALUES as u128 {
            return too_large(
                "feature_size × frames (feature values per clip)",
                values,
                MAX_FEATURE_VALUES,
            );
        }
        if self.max_length() == 0 {
            return invalid("default_audio_length · sampling_rate is 0 samples".into());
        }
        if !self.padding_value.is_finite() {
            return invalid(format!("padding_value is {}", self.padding_value));
        }
        if let Some(norms) = &self.mel_norms {
            if norms.len() != self.feature_size {
                return invalid(format!(
                    "mel_norms has {} values but feature_size is {}",
                    norms.len(),
                    self.feature_size
                ));
            }
            if let Some(i) = norms.iter().position(|v| !v.is_finite() || *v == 0.0) {
                return invalid(format!(
                    "mel_norms[{i}] is {}, which cannot divide",
                    norms[i]
                ));
            }
        }
        Ok(())
    }

    /// Samples per clip after padding/truncation: `default_audio_length · sampling_rate` (132300).
    pub fn max_length(&self) -> usize {
        self.default_audio_length
            .saturating_mul(self.sampling_rate as usize)
    }

    /// The mel filter bank of this extractor, HF layout `(n_fft/2 + 1) × feature_size` (`self.mel_filters`).
    pub fn mel_filters(&self) -> Result<Vec<f64>, AudioError> {
        mel_filter_bank(
            self.n_fft / 2 + 1,
            self.feature_size,
            MIN_FREQUENCY,
            MAX_FREQUENCY,
            self.sampling_rate,
            MelNorm::Slaney,
            MelScale::Htk,
            false,
        )
    }

    /// Features of a batch of mono clips, as `extractor(clips, sampling_rate=sr, return_tensors="np")`:
    /// each clip is truncated (keeping its start) or padded on the right with `padding_value` to
    /// [`max_length`](Self::max_length) samples, then turned into `feature_size × frames` log-mel features.
    ///
    /// `sampling_rate` different from the extractor's is an error (resample first with
    /// [`crate::Audio::resample`]); `None` assumes the extractor's rate and logs a warning, like HF.
    /// Clips with NaN/Inf samples and empty batches are rejected. Clips are processed one after the
    /// other on the calling thread (3–4 ms per 6 s clip in release on the 2-core build machine, where
    /// splitting frames across threads did not pay; `cargo run --release -p clvp-audio --example
    /// features_timing`), so callers may parallelise batches.
    pub fn extract(
        &self,
        clips: &[&[f32]],
        sampling_rate: Option<u32>,
    ) -> Result<Features, AudioError> {
        self.extract_to_length(clips, sampling_rate, self.max_length())
    }

    /// [`extract`](Self::extract) with HF's `max_length=` override.
    pub fn extract_to_length(
        &self,
        clips: &[&[f32]],
        sampling_rate: Option<u32>,
        max_length: usize,
    ) -> Result<Features, AudioError> {
        match sampling_rate {
            Some(given) if given != self.sampling_rate => {
                return Err(AudioError::SamplingRateMismatch {
                    expected: self.sampling_rate,
                    given,
                });
            }
            Some(_) => {}
            None => tracing::warn!(
                "no sampling_rate given to ClvpFeatureExtractor; assuming {} Hz as HF does",
                self.sampling_rate
            ),
        }
        if clips.is_empty() {
            return Err(AudioError::InvalidAudio {
                reason: "the batch has no clips".into(),
            });
        }
        if max_length == 0 {
            return Err(AudioError::InvalidSettings {
                reason: "max_length is 0 samples".into(),
            });
        }
        for (i, clip) in clips.iter().enumerate() {
            // Only the kept (non-truncated) part can reach the features.
            if let Some((count, _, frame)) = find_non_finite([&clip[..clip.len().min(max_length)]])
            {
                return Err(AudioError::NonFinite {
                    file: format!("clip {i}"),
                    count,
                    channel: 0,
                    frame,
                });
            }
        }
        let plan = self.plan()?;
        let (batch, mels, frames) = (clips.len(), plan.num_mels(), plan.num_frames(max_length));
        if frames == 0 {
            return Err(AudioError::InvalidSettings {
                reason: format!("max_length {max_length} gives no STFT frame"),
            });
        }
        let mut input_features = zeroed(batch, mels * frames, "the features")?;
        let mut attention_mask = zeroed(batch, max_length, "the attention mask")?;
        for (b, clip) in clips.iter().enumerate() {
            let kept = clip.len().min(max_length);
            attention_mask[b * max_length..b * max_length + kept].fill(1);
        }
        let mut scratch = plan.scratch();
        for (clip, dst) in clips.iter().zip(input_features.chunks_mut(mels * frames)) {
            plan.load(clip, max_length, self.padding_value, &mut scratch);
            plan.frames_into(&mut scratch, 0, frames, dst, frames)?;
        }
        Ok(Features {
            input_features,
            shape: [batch, mels, frames],
            attention_mask,
            mask_shape: [batch, max_length],
        })
    }

    fn plan(&self) -> Result<Arc<LogMel>, AudioError> {
        self.validate()?;
        let key = PlanKey::of(self);
        let mut guard = self
            .plan
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((k, plan)) = guard.as_ref()
            && *k == key
        {
            return Ok(plan.clone());
        }
        let bins = self.n_fft / 2 + 1;
        let dense = self.mel_filters()?;
        let filters = SparseFilterBank::from_dense(&dense, bins, self.feature_size);
        let norms = self
            .mel_norms
            .as_ref()
            .map(|n| n.iter().map(|&v| f64::from(v)).collect());
        let plan = Arc::new(LogMel::new(self.n_fft, self.hop_length, filters, norms));
        *guard = Some((key, plan.clone()));
        Ok(plan)
    }

    fn check_saved_mel_filters(&self, saved: &serde_json::Value) -> Result<(), AudioError> {
        let bins = self.n_fft / 2 + 1;
        let rows: Option<Vec<Vec<f64>>> = serde_json::from_value(saved.clone()).ok();
        let Some(rows) = rows else {
            tracing::warn!("mel_filters in the config is not a matrix of numbers; ignoring it");
            return Ok(());
        };
        if rows.len() != bins || rows.iter().any(|r| r.len() != self.feature_size) {
            tracing::warn!(
                rows = rows.len(),
                expected_rows = bins,
                expected_cols = self.feature_size,
                "mel_filters in the config has the wrong shape; ignoring it (HF recomputes it too)"
            );
            return Ok(());
        }
        let ours = self.mel_filters()?;
        let worst = rows
            .iter()
            .flatten()
            .zip(&ours)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        if worst > MEL_FILTERS_TOLERANCE {
            tracing::warn!(
                worst,
                "mel_filters in the config differs from the recomputed filter bank; using the recomputed one (as HF does)"
            );
        }
        Ok(())
    }
}

/// `rows × cols` zeros, or [`AudioError::OutOfMemory`] where that is more than the memory there is.
fn zeroed<T: Clone + Default>(rows: usize, cols: usize, what: &str) -> Result<Vec<T>, AudioError> {
    let n = rows.saturating_mul(cols);
    let mut v = try_with_capacity(n, &format!("feature extraction of {rows} clip(s)"), what)?;
    v.resize(n, T::default());
    Ok(v)
}

/// The settings a planned [`LogMel`] depends on.
#[derive(Debug, Clone, PartialEq)]
struct PlanKey {
    feature_size: usize,
    sampling_rate: u32,
    hop_length: usize,
    n_fft: usize,
    mel_norms: Option<Vec<f32>>,
}

impl PlanKey {
    fn of(fe: &ClvpFeatureExtractor) -> Self {
        PlanKey {
            feature_size: fe.feature_size,
            sampling_rate: fe.sampling_rate,
            hop_length: fe.hop_length,
            n_fft: fe.n_fft,
            mel_norms: fe.mel_norms.clone(),
        }
    }
}

/// The lazily built FFT plan and filters, rebuilt if the public fields change.
#[derive(Default)]
struct PlanCache(Mutex<Option<(PlanKey, Arc<LogMel>)>>);

impl Clone for PlanCache {
    fn clone(&self) -> Self {
        let inner = self
            .0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        PlanCache(Mutex::new(inner))
    }
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanCache")
    }
}

/// Accept `6` or `6.0` (Python may write either) for integer fields.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(53) => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a non-negative integer, got {v}"
        ))),
    }
}

fn lenient_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = lenient_u64(d)?;
    usize::try_from(v).map_err(|_| serde::de::Error::custom(format!("{v} is too large")))
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = lenient_u64(d)?;
    u32::try_from(v).map_err(|_| serde::de::Error::custom(format!("{v} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tortoise_norms_parse() {
        let fe = ClvpFeatureExtractor::tortoise();
        let norms = fe.mel_norms.as_ref().unwrap();
        assert_eq!(norms.len(), 80);
        assert!(norms.iter().all(|&v| v < 0.0));
    }

    #[test]
    fn config_is_lenient() {
        let fe = ClvpFeatureExtractor::from_json(
            r#"{"feature_extractor_type": "ClvpFeatureExtractor", "processor_class": "ClvpProcessor",
                "feature_size": 10, "hop_length": 160, "chunk_length": 8, "sampling_rate": 4000.0,
                "padding_value": 0, "n_samples": 32000, "mel_norms": null}"#,
        )
        .unwrap();
        assert_eq!(
            (fe.feature_size, fe.hop_length, fe.sampling_rate, fe.n_fft),
            (10, 160, 4000, 1024)
        );
        assert_eq!(fe.max_length(), 24000);
    }

    #[test]
    fn wrong_rate_is_an_error() {
        let fe = ClvpFeatureExtractor::default();
        let err = fe
            .extract(&[&[0.0; 100]], Some(16000))
            .unwrap_err()
            .to_string();
        assert!(err.contains("22050") && err.contains("16000"), "{err}");
    }

    #[test]
    fn non_finite_input_is_rejected_only_where_it_is_kept() {
        let fe = ClvpFeatureExtractor::default();
        let mut clip = vec![0.0f32; 200];
        clip[150] = f32::NAN;
        let err = fe
            .extract(&[&[0.0; 10], &clip], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("clip 1") && err.contains("frame 150"), "{err}");
        assert!(fe.extract_to_length(&[&clip], None, 100).is_ok());
    }

    #[test]
    fn mismatched_norms_are_an_error() {
        let fe = ClvpFeatureExtractor {
            mel_norms: Some(vec![1.0; 3]),
            ..Default::default()
        };
        assert!(fe.extract(&[&[0.0; 100]], None).is_err());
    }

    #[test]
    fn plan_follows_field_changes() {
        let mut fe = ClvpFeatureExtractor::default();
        let a = fe.extract(&[&[0.1; 1000]], None).unwrap();
        fe.feature_size = 40;
        let b = fe.extract(&[&[0.1; 1000]], None).unwrap();
        assert_eq!((a.shape[1], b.shape[1]), (80, 40));
    }
}
