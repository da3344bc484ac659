//! Text + audio → model inputs, as `transformers.ClvpProcessor` (5.23): the tokenizer's `input_ids` and
//! `attention_mask` and the feature extractor's `input_features`.

use std::path::Path;

use clvp_audio::{Audio, ClvpFeatureExtractor};
use clvp_hub::Checkpoint;
use clvp_text::ClvpTokenizer;

/// The facade's error ([`crate::Error`]), under its older name.
pub type ProcessorError = crate::Error;

/// What the processor returns. Absent parts are `None` (text only, or audio only).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorOutput {
    /// Token ids, right-padded with 0: `[batch][tokens]`.
    pub input_ids: Option<Vec<Vec<u32>>>,
    /// The text attention mask (1 = token, 0 = padding), same shape as `input_ids`.
    pub attention_mask: Option<Vec<Vec<u32>>>,
    /// Log-mel features, row-major `[clips, feature_size, frames]`.
    pub input_features: Option<Vec<f32>>,
    /// Shape of `input_features`.
    pub features_shape: Option<[usize; 3]>,
}

/// `ClvpProcessor`: a tokenizer and a feature extractor.
#[derive(Debug, Clone)]
pub struct ClvpProcessor {
    /// The tokenizer.
    pub tokenizer: ClvpTokenizer,
    /// The feature extractor.
    pub feature_extractor: ClvpFeatureExtractor,
}

impl ClvpProcessor {
    /// The Tortoise vocabulary and the Tortoise `mel_norms` (what `susnato/clvp_dev` ships).
    pub fn tortoise() -> Result<Self, ProcessorError> {
        Ok(ClvpProcessor {
            tokenizer: ClvpTokenizer::tortoise()?,
            feature_extractor: ClvpFeatureExtractor::tortoise(),
        })
    }

    /// A checkpoint directory: its tokenizer files and `preprocessor_config.json` where present, the
    /// Tortoise defaults for whichever is absent.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ProcessorError> {
        let dir = dir.as_ref();
        let tokenizer = if dir.join("vocab.json").exists() {
            ClvpTokenizer::from_dir(dir)?
        } else {
            ClvpTokenizer::tortoise()?
        };
        let config = dir.join("preprocessor_config.json");
        let feature_extractor = if config.exists() {
            ClvpFeatureExtractor::from_preprocessor_config(&config)?
        } else {
            ClvpFeatureExtractor::tortoise()
        };
        Ok(ClvpProcessor {
            tokenizer,
            feature_extractor,
        })
    }

    /// The processor files of a checkpoint (fetched from the hub when needed): its `vocab.json`/`merges.txt`
    /// and `preprocessor_config.json`, the Tortoise defaults for whichever is absent. Falling back to the
    /// built-in Tortoise vocabulary is said with a warning (`tracing::warn!`): a checkpoint trained with
    /// another vocabulary would silently get wrong token ids.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self, ProcessorError> {
        if let clvp_hub::Source::Local(dir) = checkpoint.source()
            && clvp_nn::tortoise_files(dir).is_some()
            && !dir.join("vocab.json").is_file()
        {
            // Tortoise's own files: its tokenizer and `mel_norms` are the built-in ones.
            return Self::tortoise();
        }
        let files = checkpoint.tokenizer_files()?;
        let builtin = |missing: &str| {
            tracing::warn!(
                "{}: no {missing}; using the built-in Tortoise vocabulary (the one susnato/clvp_dev ships). \
                 A model trained with another vocabulary needs its vocab.json and merges.txt",
                checkpoint.source()
            );
            ClvpTokenizer::tortoise()
        };
        let tokenizer = match (&files.vocab, &files.merges) {
            (Some(vocab), Some(_)) => match vocab.parent() {
                Some(dir) => ClvpTokenizer::from_dir(dir)?,
                None => builtin("tokenizer directory")?,
            },
            (None, None) => builtin("vocab.json or merges.txt")?,
            (None, Some(_)) => builtin("vocab.json")?,
            (Some(_), None) => builtin("merges.txt")?,
        };
        let feature_extractor = match checkpoint.file("preprocessor_config.json")? {
            Some(path) => ClvpFeatureExtractor::from_preprocessor_config(&path)?,
            None => ClvpFeatureExtractor::tortoise(),
        };
        Ok(ClvpProcessor {
            tokenizer,
            feature_extractor,
        })
    }

    /// Load the part of an audio file the feature extractor keeps, as it wants it: mono at its rate, at most 6 s,
    /// decoding only that beginning ([`ClvpFeatureExtractor::load_clip`]).
    pub fn load_voice(&self, path: impl AsRef<Path>) -> Result<Vec<f32>, ProcessorError> {
        Ok(self.feature_extractor.load_clip(path)?)
    }

    /// Frames of a `rate` Hz file that [`Self::load_voice`] decodes
    /// ([`ClvpFeatureExtractor::clip_frame_limit`]).
    pub fn voice_frame_limit(&self, rate: u32) -> u64 {
        self.feature_extractor.clip_frame_limit(rate)
    }

    /// Downmix and resample decoded audio to the feature extractor's format
    /// ([`ClvpFeatureExtractor::prepare`]).
    pub fn prepare(&self, audio: &Audio) -> Result<Vec<f32>, ProcessorError> {
        Ok(self.feature_extractor.prepare(audio)?)
    }

    /// Tokenize `texts` (right padding) and extract features of `clips` (already at the extractor's rate).
    pub fn process(
        &self,
        texts: &[&str],
        clips: &[&[f32]],
    ) -> Result<ProcessorOutput, ProcessorError> {
        if texts.is_empty() && clips.is_empty() {
            return Err(ProcessorError::Empty);
        }
        let mut out = ProcessorOutput {
            input_ids: None,
            attention_mask: None,
            input_features: None,
            features_shape: None,
        };
        if !texts.is_empty() {
            let enc = self.tokenizer.encode_batch(texts)?;
            out.input_ids = Some(enc.input_ids);
            out.attention_mask = Some(enc.attention_mask);
        }
        if !clips.is_empty() {
            let f = self
                .feature_extractor
                .extract(clips, Some(self.feature_extractor.sampling_rate))?;
            out.features_shape = Some(f.shape);
            out.input_features = Some(f.input_features);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_audio_together() {
        let p = ClvpProcessor::tortoise().expect("embedded assets");
        let clip = vec![0.0f32; 1000];
        let out = p
            .process(&["This is an example text.", "Hi."], &[&clip])
            .expect("process");
        let ids = out.input_ids.expect("ids");
        let mask = out.attention_mask.expect("mask");
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].len(), ids[1].len());
        assert_eq!(
            mask[1].iter().filter(|&&m| m == 1).count(),
            p.tokenizer.encode("Hi.").expect("ids").len()
        );
        assert_eq!(out.features_shape, Some([1, 80, 517]));
    }

    #[test]
    fn empty_is_an_error() {
        let p = ClvpProcessor::tortoise().expect("embedded assets");
        assert!(matches!(p.process(&[], &[]), Err(ProcessorError::Empty)));
    }
}
