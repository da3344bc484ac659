//! [`GenerationConfig`] and its checks: HF's `GenerationConfig` fields CLVP's generation reads, with
//! [`PrefillPositions`] and [`EarlyStopping`].

use super::*;

/// Which prompt the decoding loop reproduces: the mel positions of the prefill (conditioning + start token),
/// and what the repetition penalty counts as already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefillPositions {
    /// Tortoise's own `inference_speech` (tortoise-tts 3.0.0, checked against it: `clvp-nn --test tortoise`):
    /// the conditioning vectors enter the decoder unchanged, the start token with mel position 0, the first
    /// code with position 2 (transformers ≤ 4.4x had the same positions). Its prompt is a placeholder of ones
    /// before the start token, so the repetition penalty also counts token 1
    /// ([`TORTOISE_PROMPT_ID`](crate::TORTOISE_PROMPT_ID)) as seen.
    #[default]
    Tortoise,
    /// Tortoise's `inference_speech` without its key/value cache (`TextToSpeech(kv_cache=False)`, the Python
    /// API's default; its scripts `do_tts.py` and `read.py` turn the cache on): every step re-embeds the codes
    /// at positions `0..n`, so the first code gets position 1, not 2. The same prompt as [`Self::Tortoise`].
    TortoiseNoCache,
    /// transformers 5.23: prefill position ids are `[[0]]`, broadcast, so every prefix position i gets
    /// `P[0] − P[i]` added (a regression, reproduced for parity with 5.23's `generate`).
    Hf523,
}

impl PrefillPositions {
    /// The mel position of the newest token when a sequence (start token first) is `len` long.
    pub fn code_position(self, len: usize) -> usize {
        match self {
            PrefillPositions::Tortoise | PrefillPositions::Hf523 => len,
            PrefillPositions::TortoiseNoCache => len.saturating_sub(1),
        }
    }

    /// Whether the prompt is Tortoise's (placeholder ones before the start token, seen by the repetition
    /// penalty).
    pub fn tortoise_prompt(self) -> bool {
        matches!(
            self,
            PrefillPositions::Tortoise | PrefillPositions::TortoiseNoCache
        )
    }
}

/// Decoding settings (the fields of HF's `GenerationConfig` that CLVP uses).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// New tokens at most (the leading start token is not counted).
    pub max_new_tokens: usize,
    /// New tokens before the stop token may be chosen.
    pub min_new_tokens: usize,
    /// Multinomial sampling (else greedy).
    pub do_sample: bool,
    /// Softmax temperature (sampling only).
    pub temperature: f32,
    /// Keep the k most likely tokens (sampling only; HF's default is 50).
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold (sampling only; 1.0 = off).
    pub top_p: f32,
    /// Repetition penalty over every id in the running sequence, the start token included (1.0 = off).
    pub repetition_penalty: f32,
    /// Sequences per conditioning row (rows ordered b0r0, b0r1, …, b1r0, …). Sampling repeats every row this
    /// many times; beam search returns the best this many finished hypotheses (≤ `num_beams`); greedy decoding
    /// allows only 1 (as HF).
    pub num_return_sequences: usize,
    /// Beams per conditioning row (1 = greedy or sampling; > 1 = beam search, `do_sample` must be false).
    pub num_beams: usize,
    /// Beam search: a finished hypothesis scores `sum of log-probs / generated_len ^ length_penalty`
    /// (`generated_len` counts the stop token, not the start token). > 0 favours longer sequences.
    /// A Python float in HF, used in double precision (`int ** float`), hence f64.
    pub length_penalty: f64,
    /// Beam search: when to stop (HF's `early_stopping`).
    pub early_stopping: EarlyStopping,
    /// `ClvpModelForConditionalGeneration.generate(pad_to_max_mel_tokens=P)`: before the fix-up, the sequences
    /// (start token included) are right-padded with the stop id, or cropped, to exactly `P` columns, so the speech
    /// encoder sees `P − 1` codes (Tortoise pads its 500 codes: `P = 501`). Applied by the caller of
    /// [`generate`] through [`pad_to_max_mel_tokens`]; `None` = off.
    pub pad_to_max_mel_tokens: Option<usize>,
    /// Seed of the sampling RNG.
    pub seed: u64,
    /// Prefill position behaviour.
    pub prefill_positions: PrefillPositions,
}

impl Default for GenerationConfig {
    /// HF's global defaults (greedy, 20 new tokens) with Tortoise prefill positions.
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 20,
            min_new_tokens: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: Some(50),
            top_p: 1.0,
            repetition_penalty: 1.0,
            num_return_sequences: 1,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            pad_to_max_mel_tokens: None,
            seed: 0,
            prefill_positions: PrefillPositions::Tortoise,
        }
    }
}

/// HF's `early_stopping` (beam search only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `False` (HF's default): stop a batch row once the best running beam, scored as if it ended now
    /// (`score / (cur_len − 1) ^ length_penalty`), cannot beat the worst of the `num_beams` finished ones.
    #[default]
    False,
    /// `True`: stop a batch row as soon as it has `num_beams` finished hypotheses.
    True,
    /// `"never"`: like `False`, but with `length_penalty > 0` the best running beam is scored at
    /// `max_new_tokens` (the canonical beam search bound).
    Never,
}

impl std::str::FromStr for EarlyStopping {
    type Err = NnError;

    /// `true`, `false` or `never` (HF's spellings; case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "false" => Ok(EarlyStopping::False),
            "true" => Ok(EarlyStopping::True),
            "never" => Ok(EarlyStopping::Never),
            _ => Err(NnError::Generation {
                option: Some("early_stopping"),
                message: format!("early_stopping must be true, false or never, not {s:?}"),
            }),
        }
    }
}

impl GenerationConfig {
    /// True for beam search (`num_beams > 1`).
    pub fn is_beam_search(&self) -> bool {
        self.num_beams > 1
    }

    /// The checks of HF's `GenerationConfig.validate` and processor constructors that apply here:
    /// `max_new_tokens ≥ 1`, `num_beams ≥ 1`, `num_return_sequences ≥ 1`, greedy decoding with one return
    /// sequence only, `num_return_sequences ≤ num_beams` with beams, no beam sampling (not implemented),
    /// a positive repetition penalty, a positive temperature and `0 < top_p ≤ 1` when sampling, a finite
    /// length penalty whose normalisation stays inside float32 ([`length_penalty_range`]), and
    /// `pad_to_max_mel_tokens ≥ 2` (at least one code after the start token). Errors name the setting.
    pub fn validate(&self) -> Result<(), NnError> {
        let err = |m: String| {
            Err(NnError::Generation {
                option: None,
                message: m,
            })
        };
        let bad = |option: &'static str, message: String| {
            Err(NnError::Generation {
                option: Some(option),
                message,
            })
        };
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "max_new_tokens must be at least 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams", "num_beams must be at least 1".into());
        }
        if self.num_return_sequences == 0 {
            return bad(
                "num_return_sequences",
                "num_return_sequences must be at least 1".into(),
            );
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return err(format!(
                "greedy decoding (do_sample false, num_beams 1) does not support num_return_sequences {} \
                 (every sequence would be the same); use sampling or num_beams ≥ {}",
                self.num_return_sequences, self.num_return_sequences
            ));
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return err(format!(
                "num_return_sequences ({}) has to be smaller or equal to num_beams ({})",
                self.num_return_sequences, self.num_beams
            ));
        }
        if self.num_beams > 1 && self.do_sample {
            return err(format!(
                "beam sampling (do_sample with num_beams {}) is not implemented; use num_beams 1 to sample \
                 or do_sample false for beam search",
                self.num_beams
            ));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return err(format!(
                "repetition_penalty has to be a strictly positive float, but is {}",
                self.repetition_penalty
            ));
        }
        if self.do_sample {
            if !(self.temperature > 0.0 && self.temperature.is_finite()) {
                return err(format!(
                    "temperature has to be a strictly positive float, but is {}",
                    self.temperature
                ));
            }
            if !(self.top_p > 0.0 && self.top_p <= 1.0) {
                return err(format!(
                    "top_p has to be a float > 0 and <= 1, but is {}",
                    self.top_p
                ));
            }
        }
        let lp = self.length_penalty;
        if !lp.is_finite() {
            return bad(
                "length_penalty",
                format!("length_penalty must be finite, but is {lp}"),
            );
        }
        let range = length_penalty_range(self.max_new_tokens);
        if self.is_beam_search() && !range.contains(&lp) {
            return bad(
                "length_penalty",
                format!(
                    "length_penalty {lp} is outside {:.1}..={:.1}, the range {} new tokens allow: a finished \
                     hypothesis scores log-prob / length^length_penalty, and {}^{lp} leaves float32's range \
                     (every hypothesis would score ±inf or 0, and beam search would return none)",
                    range.start(),
                    range.end(),
                    self.max_new_tokens,
                    self.max_new_tokens
                ),
            );
        }
        if let Some(p) = self.pad_to_max_mel_tokens
            && p < 2
        {
            return bad(
                "pad_to_max_mel_tokens",
                format!(
                    "pad_to_max_mel_tokens must be at least 2 (the start token and one code), not {p}"
                ),
            );
        }
        Ok(())
    }
}

/// The length penalties whose normalisation `length ^ length_penalty` stays within `1e-30..=1e30` for every
/// length up to `max_new_tokens`, so a finished hypothesis' score (a log-probability sum divided by it) stays
/// a finite, ordered float32. Outside it HF's scores overflow to ±inf or collapse to 0 and beam search returns
/// unfinished slots (a candidate without codes).
pub fn length_penalty_range(max_new_tokens: usize) -> std::ops::RangeInclusive<f64> {
    if max_new_tokens < 2 {
        // Every length is 1, and 1^p = 1.
        return f64::NEG_INFINITY..=f64::INFINITY;
    }
    let bound = 30.0 * std::f64::consts::LN_10 / (max_new_tokens as f64).ln();
    -bound..=bound
}
