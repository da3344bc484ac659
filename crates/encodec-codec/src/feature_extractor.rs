//! `EncodecFeatureExtractor` (transformers 5.23): layout, chunk-aware padding and the padding mask only (no
//! resampling, no amplitude change). Host-side: clips in, `[B, C, L]` values and a `[B, L]` mask out.

use std::path::Path;

use serde::Deserialize;

use crate::config::EncodecConfig;
use crate::error::EncodecError;

/// How a batch is brought to one length (HF's `padding` / `truncation` / `max_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `padding=True` (the default): pad to the longest clip, or, for chunking models, to
    /// `(ceil(longest / stride) - 1) * stride + chunk_length`. Returns a mask.
    Longest,
    /// `padding="max_length", max_length=n`: pad (never truncate) to `n`. Returns a mask.
    MaxLength(usize),
    /// `truncation=True`: cut to the shortest clip, or, for chunking models, to
    /// `(floor(shortest / stride) - 1) * stride + chunk_length`. No mask.
    Truncate,
    /// `padding=False`: clips must already have one length. No mask.
    DoNotPad,
}

/// A padded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureBatch {
    /// `input_values` `[B, C, L]`, row-major.
    pub input_values: Vec<f32>,
    /// `[B, C, L]`.
    pub shape: [usize; 3],
    /// `padding_mask` `[B, L]` (1 = sample, 0 = padding) when padding is active.
    pub padding_mask: Option<Vec<i64>>,
}

/// `EncodecFeatureExtractor`'s settings (`preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct EncodecFeatureExtractor {
    /// Channels (1 mono, 2 stereo).
    pub feature_size: usize,
    /// Sample rate in Hz.
    pub sampling_rate: usize,
    /// Value of padded samples.
    pub padding_value: f32,
    /// Seconds per chunk.
    pub chunk_length_s: Option<f64>,
    /// Chunk overlap fraction.
    pub overlap: Option<f64>,
}

impl Default for EncodecFeatureExtractor {
    fn default() -> Self {
        EncodecFeatureExtractor {
            feature_size: 1,
            sampling_rate: 24_000,
            padding_value: 0.0,
            chunk_length_s: None,
            overlap: None,
        }
    }
}

impl EncodecFeatureExtractor {
    /// The extractor matching a model configuration (what the hub's `preprocessor_config.json` holds).
    pub fn from_config(config: &EncodecConfig) -> Self {
        EncodecFeatureExtractor {
            feature_size: config.audio_channels,
            sampling_rate: config.sampling_rate,
            padding_value: 0.0,
            chunk_length_s: config.chunk_length_s,
            overlap: config.overlap,
        }
    }

    /// Read `preprocessor_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, EncodecError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bad = |message: String| EncodecError::Config {
            file: file.clone(),
            field: "(file)".into(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| EncodecError::ConfigIo {
            file: file.clone(),
            source,
        })?;
        let fe: Self = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not an EnCodec preprocessor config: {e}")))?;
        if !(1..=2).contains(&fe.feature_size) {
            return Err(EncodecError::Config {
                file,
                field: "feature_size".into(),
                message: format!("must be 1 or 2, found {}", fe.feature_size),
            });
        }
        Ok(fe)
    }

    /// `int(chunk_length_s * sampling_rate)`.
    pub fn chunk_length(&self) -> Option<usize> {
        self.chunk_length_s
            .map(|s| (s * self.sampling_rate as f64) as usize)
    }

    /// `max(1, int((1 - overlap) * chunk_length))`.
    pub fn chunk_stride(&self) -> Option<usize> {
        match (self.chunk_length(), self.overlap) {
            (Some(c), Some(o)) => Some((((1.0 - o) * c as f64) as usize).max(1)),
            _ => None,
        }
    }

    /// Pad or truncate `clips` (each: one `Vec` of samples per channel) as HF's `__call__`.
    pub fn call(
        &self,
        clips: &[Vec<Vec<f32>>],
        padding: Padding,
    ) -> Result<FeatureBatch, EncodecError> {
        if clips.is_empty() {
            return Err(EncodecError::Input("no audio clips to prepare".into()));
        }
        let mut lengths = Vec::with_capacity(clips.len());
        for (i, clip) in clips.iter().enumerate() {
            if clip.len() != self.feature_size {
                return Err(EncodecError::Channels {
                    expected: self.feature_size,
                    found: clip.len(),
                });
            }
            let len = clip.first().map(Vec::len).unwrap_or(0);
            if clip.iter().any(|c| c.len() != len) {
                return Err(EncodecError::Input(format!(
                    "clip {i}: its channels have different lengths"
                )));
            }
            lengths.push(len);
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let shortest = lengths.iter().copied().min().unwrap_or(0);
        let chunking = self.chunk_length().zip(self.chunk_stride());
        let chunked_length = |n_steps: usize| -> Result<usize, EncodecError> {
            let (chunk, stride) = chunking.unwrap_or((0, 1));
            let len = (n_steps as i64 - 1) * stride as i64 + chunk as i64;
            usize::try_from(len).ok().filter(|&l| l > 0).ok_or_else(|| {
                EncodecError::Input(format!(
                    "clips of {shortest} samples are shorter than one chunk stride ({stride}): nothing is left after truncation"
                ))
            })
        };
        let (target, mask) = match (padding, chunking) {
            (Padding::Longest, Some((_, stride))) => {
                (chunked_length(longest.div_ceil(stride))?, true)
            }
            (Padding::Longest, None) => (longest, true),
            (Padding::MaxLength(n), _) => (n.max(longest), true),
            (Padding::Truncate, Some((_, stride))) => (chunked_length(shortest / stride)?, false),
            (Padding::Truncate, None) => (shortest, false),
            (Padding::DoNotPad, _) => {
                if shortest != longest {
                    return Err(EncodecError::Input(format!(
                        "clips of different lengths ({shortest}..{longest} samples) cannot form a batch without padding"
                    )));
                }
                (longest, false)
            }
        };
        // Truncation never pads: a clip shorter than the target stays as it is (HF then cannot stack unequal
        // lengths, and neither can this).
        let target = if padding == Padding::Truncate {
            let kept: Vec<usize> = lengths.iter().map(|&l| l.min(target)).collect();
            if kept.iter().any(|&k| k != kept[0]) {
                return Err(EncodecError::Input(format!(
                    "after truncation to {target} samples the clips have different lengths ({kept:?})"
                )));
            }
            kept[0]
        } else {
            target
        };
        if target == 0 {
            return Err(EncodecError::Input("the clips are empty".into()));
        }
        let c = self.feature_size;
        let mut input_values = Vec::with_capacity(clips.len() * c * target);
        let mut padding_mask = Vec::with_capacity(clips.len() * target);
        for (clip, &len) in clips.iter().zip(&lengths) {
            let keep = len.min(target);
            for ch in clip {
                input_values.extend_from_slice(&ch[..keep]);
                input_values.extend(std::iter::repeat_n(self.padding_value, target - keep));
            }
            padding_mask.extend(std::iter::repeat_n(1i64, keep));
            padding_mask.extend(std::iter::repeat_n(0i64, target - keep));
        }
        Ok(FeatureBatch {
            input_values,
            shape: [clips.len(), c, target],
            padding_mask: mask.then_some(padding_mask),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clips(lengths: &[usize], channels: usize) -> Vec<Vec<Vec<f32>>> {
        lengths
            .iter()
            .map(|&l| (0..channels).map(|_| vec![0.5; l]).collect())
            .collect()
    }

    fn fe(rate: usize, channels: usize, chunk: Option<(f64, f64)>) -> EncodecFeatureExtractor {
        EncodecFeatureExtractor {
            feature_size: channels,
            sampling_rate: rate,
            padding_value: 0.0,
            chunk_length_s: chunk.map(|c| c.0),
            overlap: chunk.map(|c| c.1),
        }
    }

    #[test]
    fn chunk_aware_lengths_of_the_hf_tests() {
        // tests/models/encodec/test_feature_extraction_encodec.py (spec §2): 24 kHz FE with chunk_length_s=1,
        // overlap=0.01 on a 93680-sample clip pads to 95280; truncation of [93680, 73000] gives 71520.
        let f = fe(24_000, 1, Some((1.0, 0.01)));
        assert_eq!(
            f.call(&clips(&[93680], 1), Padding::Longest).unwrap().shape[2],
            95280
        );
        assert_eq!(
            f.call(&clips(&[93680, 73000], 1), Padding::Truncate)
                .unwrap()
                .shape[2],
            71520
        );
        assert_eq!(
            f.call(&clips(&[93680], 1), Padding::MaxLength(100_000))
                .unwrap()
                .shape[2],
            100_000
        );
        // 48 kHz hub FE (spec §2): 48000 → 95520, 281040 → 285600.
        let f = fe(48_000, 2, Some((1.0, 0.01)));
        assert_eq!(
            f.call(&clips(&[48000], 2), Padding::Longest).unwrap().shape[2],
            95520
        );
        assert_eq!(
            f.call(&clips(&[281040], 2), Padding::Longest)
                .unwrap()
                .shape[2],
            285600
        );
    }

    #[test]
    fn mask_and_errors() {
        let f = fe(24_000, 1, None);
        let b = f.call(&clips(&[3, 5], 1), Padding::Longest).unwrap();
        assert_eq!(b.shape, [2, 1, 5]);
        assert_eq!(b.padding_mask.unwrap(), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(&b.input_values[..5], &[0.5, 0.5, 0.5, 0.0, 0.0]);
        assert!(f.call(&clips(&[3, 5], 1), Padding::DoNotPad).is_err());
        assert!(f.call(&clips(&[3], 2), Padding::Longest).is_err());
        assert!(f.call(&[], Padding::Longest).is_err());
        let f = fe(24_000, 1, Some((1.0, 0.01)));
        assert!(
            f.call(&clips(&[100], 1), Padding::Truncate)
                .is_ok_and(|b| b.shape[2] == 100)
        );
        assert!(f.call(&clips(&[100, 300], 1), Padding::Truncate).is_err());
    }
}
