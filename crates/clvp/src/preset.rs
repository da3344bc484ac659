//! Tortoise's generation presets (`tortoise/api.py`), and the one place where a configuration is fitted to a
//! checkpoint: [`Clvp::fit_to_model`] (used by [`Clvp::preset`] and by the `clvp generate` command).

use std::fmt;
use std::str::FromStr;

use clvp_nn::GenerationConfig;

use crate::model::Clvp;

/// Tortoise's presets: sampling with temperature 0.8, top-p 0.8, top-k 50, repetition penalty 2.0 and 500 new
/// tokens, differing in the number of candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// 16 candidates.
    UltraFast,
    /// 96 candidates.
    Fast,
    /// 256 candidates.
    Standard,
    /// 256 candidates (Tortoise's `high_quality` differs from `standard` only in the diffusion steps, which
    /// are not CLVP's).
    HighQuality,
}

/// A preset name that is not one of [`Preset::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset {name:?}; known: ultra_fast, fast, standard, high_quality")]
pub struct UnknownPreset {
    /// The name given.
    pub name: String,
}

impl Preset {
    /// Every preset, fastest first.
    pub const ALL: [Preset; 4] = [
        Preset::UltraFast,
        Preset::Fast,
        Preset::Standard,
        Preset::HighQuality,
    ];

    /// Tortoise's name (`ultra_fast`, `fast`, `standard`, `high_quality`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::UltraFast => "ultra_fast",
            Preset::Fast => "fast",
            Preset::Standard => "standard",
            Preset::HighQuality => "high_quality",
        }
    }

    /// Candidates generated (`num_autoregressive_samples`).
    pub fn candidates(self) -> usize {
        match self {
            Preset::UltraFast => 16,
            Preset::Fast => 96,
            Preset::Standard | Preset::HighQuality => 256,
        }
    }

    /// The preset exactly as Tortoise sets it (500 new tokens, whatever the checkpoint): see
    /// [`Clvp::preset`] for the configuration fitted to a model.
    pub fn config(self) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: 500,
            do_sample: true,
            temperature: 0.8,
            top_k: Some(50),
            top_p: 0.8,
            repetition_penalty: 2.0,
            num_return_sequences: self.candidates(),
            ..GenerationConfig::default()
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPreset {
                name: s.to_string(),
            })
    }
}

impl Clvp {
    /// The most new tokens this checkpoint's decoder can generate: its mel position table holds the start token
    /// and `max_position_embeddings − 1` codes.
    pub fn max_new_tokens(&self) -> usize {
        self.model
            .config
            .decoder_config
            .max_position_embeddings
            .saturating_sub(1)
            .max(1)
    }

    /// Fit `config` to this checkpoint: `max_new_tokens` is lowered to [`Clvp::max_new_tokens`] when it asks
    /// for more (Tortoise's 500 on a checkpoint with fewer positions). Returns the limit when it lowered it.
    /// Nothing else is changed; a `max_new_tokens` the caller chose explicitly should be left unfitted, so that
    /// [`Clvp::generate`] reports it as an error instead.
    pub fn fit_to_model(&self, config: &mut GenerationConfig) -> Option<usize> {
        let limit = self.max_new_tokens();
        (config.max_new_tokens > limit).then(|| {
            config.max_new_tokens = limit;
            limit
        })
    }

    /// `preset`'s configuration fitted to this checkpoint ([`Clvp::fit_to_model`]).
    pub fn preset(&self, preset: Preset) -> GenerationConfig {
        let mut config = preset.config();
        self.fit_to_model(&mut config);
        config
    }
}
