//! `EncodecFeatureExtractor` (transformers 5.23): layout, chunk-aware padding and the padding mask only (no
//! resampling, no amplitude change). Host-side: clips in, `[B, C, L]` values and a `[B, L]` mask out.

use std::path::Path;

use serde::Deserialize;

use crate::config::EncodecConfig;
use crate::error::EncodecError;

/// HF's `padding` argument (`True`/`"longest"`, `"max_length"`, `False`/`"do_not_pad"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// `True` / `"longest"`: pad to the longest clip (after truncation), or, for chunking models without
    /// `max_length`, to `(ceil(longest / stride) - 1) * stride + chunk_length`. Returns a mask.
    #[default]
    Longest,
    /// `"max_length"`: pad to `max_length` (clips longer than it stay longer unless `truncation`). Returns a mask.
    MaxLength,
    /// `False`: no padding; the clips must come out with one length. No mask.
    DoNotPad,
}

/// `EncodecFeatureExtractor.__call__`'s `padding`, `truncation` and `max_length`, with HF's defaults
/// (`PadOptions::default()` is `padding=None, truncation=False, max_length=None`: pad to the longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PadOptions {
    /// `padding`; `None` is HF's default, which pads but, unlike an explicit `True`, may be combined with
    /// `truncation`.
    pub padding: Option<Padding>,
    /// `truncation`: cut clips to `max_length`, or, for chunking models without `max_length`, to
    /// `(floor(shortest / stride) - 1) * stride + chunk_length`.
    pub truncation: bool,
    /// `max_length` in samples.
    pub max_length: Option<usize>,
}

impl PadOptions {
    /// `padding=True` (the default).
    pub const LONGEST: PadOptions = PadOptions {
        padding: Some(Padding::Longest),
        truncation: false,
        max_length: None,
    };
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
        // Only right padding is implemented: a left-padding config is refused, not padded on the wrong side.
        let side: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not an EnCodec preprocessor config: {e}")))?;
        match side.get("padding_side").and_then(|v| v.as_str()) {
            None | Some("right") => {}
            Some(other) => {
                return Err(EncodecError::Config {
                    file,
                    field: "padding_side".into(),
                    message: format!(
                        "{other:?}: only \"right\" is supported (transformers' default)"
                    ),
                });
            }
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

    /// Pad or truncate `clips` (each: one `Vec` of samples per channel) as HF's `__call__` does with `options`,
    /// into one `[B, C, L]` batch (HF's `return_tensors="np"`: clips that do not come out with one length are
    /// an error, not a ragged list).
    pub fn call(
        &self,
        clips: &[Vec<Vec<f32>>],
        options: PadOptions,
    ) -> Result<FeatureBatch, EncodecError> {
        if clips.is_empty() {
            return Err(EncodecError::Input("no audio clips to prepare".into()));
        }
        if options.truncation
            && matches!(options.padding, Some(Padding::Longest | Padding::MaxLength))
        {
            return Err(EncodecError::Input(
                "Both padding and truncation were set. Make sure you only set one.".into(),
            ));
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
        let mut strategy = options.padding.unwrap_or_default();
        let mask = strategy != Padding::DoNotPad;
        let mut max_length = options.max_length;
        // Chunking models derive max_length from the chunk grid when none is given.
        if let (Some(chunk), Some(stride), None) =
            (self.chunk_length(), self.chunk_stride(), max_length)
        {
            let grid = |n_steps: usize| -> Result<usize, EncodecError> {
                let len = (n_steps as i64 - 1) * stride as i64 + chunk as i64;
                usize::try_from(len).ok().filter(|&l| l > 0).ok_or_else(|| {
                    EncodecError::Input(format!(
                        "clips of {shortest} samples leave no whole chunk (length {chunk}, stride {stride})"
                    ))
                })
            };
            if options.truncation {
                max_length = Some(grid(shortest / stride)?);
            } else if mask {
                max_length = Some(grid(longest.div_ceil(stride))?);
                strategy = Padding::MaxLength;
            } else {
                return self.assemble(clips, &lengths, 0, false);
            }
        }
        let limit = match (options.truncation, strategy, max_length) {
            (_, _, Some(n)) => n,
            (true, _, None) => {
                return Err(EncodecError::Input(
                    "truncation needs max_length (or a chunking model, which derives it)".into(),
                ));
            }
            (false, Padding::MaxLength, None) => {
                return Err(EncodecError::Input(
                    "padding=\"max_length\" needs max_length".into(),
                ));
            }
            (false, _, None) => usize::MAX,
        };
        let kept: Vec<usize> = lengths
            .iter()
            .map(|&l| if options.truncation { l.min(limit) } else { l })
            .collect();
        let target = match strategy {
            Padding::Longest => kept.iter().copied().max().unwrap_or(0),
            Padding::MaxLength => limit,
            Padding::DoNotPad => 0,
        };
        self.assemble(clips, &kept, target, mask)
    }

    /// Stack clips cut to `kept` samples and padded to `target` (0: not padded) into one batch.
    fn assemble(
        &self,
        clips: &[Vec<Vec<f32>>],
        kept: &[usize],
        target: usize,
        mask: bool,
    ) -> Result<FeatureBatch, EncodecError> {
        let width = kept.iter().map(|&k| k.max(target)).max().unwrap_or(0);
        if kept.iter().any(|&k| k.max(target) != width) {
            return Err(EncodecError::Input(format!(
                "the clips come out with different lengths ({:?} samples) and cannot form one batch: pad them \
                 (padding=True) or truncate them",
                kept.iter().map(|&k| k.max(target)).collect::<Vec<_>>()
            )));
        }
        if width == 0 {
            return Err(EncodecError::Input("the clips are empty".into()));
        }
        let c = self.feature_size;
        let mut input_values = Vec::with_capacity(clips.len() * c * width);
        let mut padding_mask = Vec::with_capacity(clips.len() * width);
        for (clip, &keep) in clips.iter().zip(kept) {
            for ch in clip {
                input_values.extend_from_slice(&ch[..keep]);
                input_values.extend(std::iter::repeat_n(self.padding_value, width - keep));
            }
            padding_mask.extend(std::iter::repeat_n(1i64, keep));
            padding_mask.extend(std::iter::repeat_n(0i64, width - keep));
        }
        Ok(FeatureBatch {
            input_values,
            shape: [clips.len(), c, width],
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

    fn opts(padding: Option<Padding>, truncation: bool, max_length: Option<usize>) -> PadOptions {
        PadOptions {
            padding,
            truncation,
            max_length,
        }
    }

    #[test]
    fn chunk_aware_lengths_of_the_hf_tests() {
        // tests/models/encodec/test_feature_extraction_encodec.py (spec §2): 24 kHz FE with chunk_length_s=1,
        // overlap=0.01 on a 93680-sample clip pads to 95280; truncation of [93680, 73000] gives 71520.
        let f = fe(24_000, 1, Some((1.0, 0.01)));
        let longest = f.call(&clips(&[93680], 1), PadOptions::default()).unwrap();
        assert_eq!(longest.shape[2], 95280);
        let cut = f
            .call(&clips(&[93680, 73000], 1), opts(None, true, None))
            .unwrap();
        assert_eq!(cut.shape[2], 71520);
        // padding=None with truncation still pads (HF turns None into True after the conflict check): a mask.
        assert!(cut.padding_mask.is_some_and(|m| m.iter().all(|&v| v == 1)));
        let max = opts(Some(Padding::MaxLength), false, Some(100_000));
        assert_eq!(f.call(&clips(&[93680], 1), max).unwrap().shape[2], 100_000);
        // 48 kHz hub FE (spec §2): 48000 → 95520, 281040 → 285600.
        let f = fe(48_000, 2, Some((1.0, 0.01)));
        assert_eq!(
            f.call(&clips(&[48000], 2), PadOptions::LONGEST)
                .unwrap()
                .shape[2],
            95520
        );
        assert_eq!(
            f.call(&clips(&[281040], 2), PadOptions::LONGEST)
                .unwrap()
                .shape[2],
            285600
        );
    }

    #[test]
    fn a_left_padding_config_is_refused() {
        let dir = std::env::temp_dir().join(format!("encodec-fe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("preprocessor_config.json");
        std::fs::write(&path, r#"{"feature_size": 1, "padding_side": "left"}"#).unwrap();
        let err = EncodecFeatureExtractor::from_file(&path)
            .unwrap_err()
            .to_string();
        std::fs::write(&path, r#"{"feature_size": 1, "padding_side": "right"}"#).unwrap();
        let ok = EncodecFeatureExtractor::from_file(&path);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.contains("padding_side") && err.contains("left"),
            "{err}"
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn mask_and_errors() {
        let f = fe(24_000, 1, None);
        let b = f.call(&clips(&[3, 5], 1), PadOptions::default()).unwrap();
        assert_eq!(b.shape, [2, 1, 5]);
        assert_eq!(b.padding_mask.unwrap(), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(&b.input_values[..5], &[0.5, 0.5, 0.5, 0.0, 0.0]);
        let no_pad = opts(Some(Padding::DoNotPad), false, None);
        assert!(f.call(&clips(&[3, 5], 1), no_pad).is_err());
        assert!(
            f.call(&clips(&[5, 5], 1), no_pad)
                .is_ok_and(|b| b.padding_mask.is_none())
        );
        assert!(f.call(&clips(&[3], 2), PadOptions::default()).is_err());
        assert!(f.call(&[], PadOptions::default()).is_err());
        // Truncation without a chunk grid needs max_length; with it, no padding means no mask.
        assert!(f.call(&clips(&[3, 5], 1), opts(None, true, None)).is_err());
        let cut = f
            .call(
                &clips(&[3, 5], 1),
                opts(Some(Padding::DoNotPad), true, Some(3)),
            )
            .unwrap();
        assert_eq!((cut.shape, cut.padding_mask), ([2, 1, 3], None));
        // An explicit padding with truncation is HF's ValueError.
        assert!(
            f.call(&clips(&[3], 1), opts(Some(Padding::Longest), true, Some(2)))
                .is_err()
        );
        // "max_length" pads to it; a longer clip beside a shorter one cannot form a batch.
        let max = opts(Some(Padding::MaxLength), false, Some(4));
        assert_eq!(f.call(&clips(&[3, 2], 1), max).unwrap().shape, [2, 1, 4]);
        assert!(f.call(&clips(&[3, 6], 1), max).is_err());
        assert!(
            f.call(&clips(&[3], 1), opts(Some(Padding::MaxLength), false, None))
                .is_err()
        );
        let f = fe(24_000, 1, Some((1.0, 0.01)));
        // Shorter than one stride: the grid gives chunk − stride = 240 samples.
        let one = f.call(&clips(&[100], 1), opts(None, true, None)).unwrap();
        assert_eq!(one.shape[2], 100);
        let two = f
            .call(&clips(&[100, 300], 1), opts(None, true, None))
            .unwrap();
        assert_eq!(two.shape[2], 240);
    }
}
