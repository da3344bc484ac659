//! Speech-code generation of `ClvpForCausalLM` from conditioning embeddings, as transformers 5.23's
//! `GenerationMixin._sample` / `_beam_search` with CLVP's `_prepare_model_inputs` /
//! `prepare_inputs_for_generation`, plus `fix_speech_decoder_output` and `pad_to_max_mel_tokens`.
//! Greedy decoding, multinomial sampling and (vectorised, HF 5.23) beam search; logits processors in HF's
//! order; the KV cache is kept outside the module and reordered by beam indices.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::ClvpDecoderConfig;
use crate::decoder::{ClvpForCausalLM, KvCache};
use crate::error::NnError;
use crate::torch_order::{sort_ascending, topk_largest};

/// Which mel positions the prefill (conditioning + start token) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefillPositions {
    /// Tortoise (and transformers ≤ 4.4x): the conditioning vectors enter the decoder unchanged, the start
    /// token with mel position 0.
    #[default]
    Tortoise,
    /// transformers 5.23: prefill position ids are `[[0]]`, broadcast, so every prefix position i gets
    /// `P[0] − P[i]` added (a regression, reproduced for parity with 5.23's `generate`).
    Hf523,
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

/// What [`generate`] returns.
#[derive(Debug, Clone)]
pub struct GenerateOutput {
    /// `[N][1 + n]`: the start token then the generated ids, finished rows padded with the stop id
    /// (`N = B · num_return_sequences`, rows ordered b0r0, b0r1, …; beam search: best hypothesis first).
    pub sequences: Vec<Vec<u32>>,
    /// Beam search only (HF's `sequences_scores`): `[N]` length-normalised scores of the returned hypotheses.
    pub sequences_scores: Option<Vec<f32>>,
    /// Per step, the processed scores `[rows * vocab]` the token was chosen from (HF's `scores`): with beam
    /// search the processed log-probabilities of the `B · num_beams` running beams.
    pub scores: Vec<Vec<f32>>,
    /// Per step, the raw logits `[rows * vocab]` (HF's `logits`; with beam search those of the running beams).
    pub logits: Vec<Vec<f32>>,
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, NnError> {
    crate::host::to_host(t.into_data()).map_err(|e| NnError::Shape(format!("reading logits: {e}")))
}

/// Repetition penalty over the distinct ids of `history` (HF `RepetitionPenaltyLogitsProcessor`).
pub fn apply_repetition_penalty(scores: &mut [f32], history: &[u32], penalty: f32) {
    let mut seen = std::collections::HashSet::new();
    for &id in history {
        if seen.insert(id)
            && let Some(s) = scores.get_mut(id as usize)
        {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// Top-k filter (HF `TopKLogitsWarper`): scores below the k-th largest become −inf.
pub fn apply_top_k(scores: &mut [f32], k: usize) {
    let k = k.max(1).min(scores.len());
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    for s in scores.iter_mut() {
        if *s < kth {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Top-p filter (HF `TopPLogitsWarper`): sort ascending, drop tokens whose cumulative probability is
/// ≤ 1 − p, always keeping the most likely one.
///
/// The arithmetic follows torch's where it decides ties at the cut: the probabilities are float32, their running
/// sum is accumulated in float64 and stored as float32 (torch's CPU `cumsum`), and `1 − p` is taken in float64
/// from `p` as written (`0.8`, not the float32 nearest to it) and compared in float32.
pub fn apply_top_p(scores: &mut [f32], p: f32) {
    // Tied scores at the cut: which of them go depends on the sort's order of equal elements, so sort as
    // torch.sort does on CPU.
    let order = sort_ascending(scores);
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = order
        .iter()
        .map(|&i| ((scores[i] - max) as f64).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    // `p` as the user wrote it: the shortest decimal that reads back as this f32 (Python passes a double).
    let p64: f64 = format!("{p}").parse().unwrap_or(f64::from(p));
    let threshold = (1.0 - p64) as f32;
    let mut cum = 0.0f64;
    let last = order.len().saturating_sub(1);
    let mut remove = Vec::new();
    for (rank, (&i, e)) in order.iter().zip(&exps).enumerate() {
        cum += f64::from((e / total) as f32);
        if (cum as f32) <= threshold && rank != last {
            remove.push(i);
        }
    }
    for i in remove {
        scores[i] = f32::NEG_INFINITY;
    }
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

fn sample_token(row: &[f32], rng: &mut StdRng) -> u32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let probs: Vec<f64> = row.iter().map(|&s| ((s - max) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, p) in probs.iter().enumerate() {
        if *p > 0.0 {
            if u < *p {
                return i as u32;
            }
            u -= p;
        }
    }
    argmax(row)
}

/// Generate speech codes after `conditioning` `[B, L, H]` (from the conditioning encoder); the start token
/// is appended. Special ids come from the decoder config (start `bos_token_id`, stop `eos_token_id`).
/// Greedy, sampling or beam search according to `config` (validated first).
pub fn generate(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    config: &GenerationConfig,
) -> Result<GenerateOutput, NnError> {
    generate_with_progress(lm, decoder_config, conditioning, config, &mut |_, _| {})
}

/// [`generate`], calling `progress(step, max_new_tokens)` after every decoding step.
pub fn generate_with_progress(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    config: &GenerationConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateOutput, NnError> {
    config.validate()?;
    if config.max_new_tokens >= lm.max_positions() {
        return Err(NnError::Shape(format!(
            "max_new_tokens {} needs mel positions up to {} but the decoder has {} (max_position_embeddings)",
            config.max_new_tokens,
            config.max_new_tokens,
            lm.max_positions()
        )));
    }
    let vocab = decoder_config.vocab_size;
    for (what, id) in [
        ("start", decoder_config.bos_token_id),
        ("stop", decoder_config.eos_token_id),
    ] {
        if id < 0 || id as usize >= vocab {
            return Err(NnError::TokenOutOfRange {
                id,
                vocab,
                what: if what == "start" {
                    "start token"
                } else {
                    "stop token"
                },
            });
        }
    }
    if config.is_beam_search() {
        beam_search(lm, decoder_config, conditioning, config, progress)
    } else {
        sample(lm, decoder_config, conditioning, config, progress)
    }
}

/// The prefill: `conditioning ++ (emb(start) + P[0])` through the decoder into a fresh cache for
/// `B · expand` rows (every conditioning row repeated `expand` times, HF's `_expand_inputs_for_generation`;
/// the prefill runs once per distinct row and the cache is expanded). Returns the last position's hidden
/// state `[B · expand, 1, H]` and the cache.
fn prefill(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    expand: usize,
    config: &GenerationConfig,
) -> Result<(Tensor<3>, KvCache), NnError> {
    let device: Device = conditioning.device();
    let [b, l, h] = conditioning.dims();
    let start = decoder_config.bos_token_id;
    // Prefix = conditioning ++ (emb(start) + P[0]); minus P[0..=L]; then the decoder's own addition.
    let start_ids = Tensor::<2, Int>::from_data(TensorData::new(vec![start; b], [b, 1]), &device);
    let p0 = lm.position_embeddings(&[0], &device);
    let start_emb = lm.embed_ids(start_ids) + p0.clone();
    let prefix = Tensor::cat(vec![conditioning, start_emb], 1);
    let x = match config.prefill_positions {
        PrefillPositions::Tortoise => prefix,
        PrefillPositions::Hf523 => {
            let prefix_positions: Vec<usize> = (0..=l).collect();
            let p_prefix = lm.position_embeddings(&prefix_positions, &device);
            prefix - p_prefix + p0.expand([1, l + 1, h])
        }
    };
    let mut cache = KvCache::new(decoder_config, b, l + 1 + config.max_new_tokens, &device);
    let hidden = lm.hidden(x, Some(&mut cache))?;
    let mut last = hidden.narrow(1, l, 1);
    if expand > 1 {
        let rows: Vec<usize> = (0..b)
            .flat_map(|i| std::iter::repeat_n(i, expand))
            .collect();
        cache.select_rows(&rows);
        let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rows.len()]), &device);
        last = last.select(0, idx);
    }
    Ok((last, cache))
}

/// Feed the newest token of every row at mel position `position` (`len([start, g1..gk]) = k + 1`; position 1
/// is never used, as in Tortoise and HF) and return the new last hidden state `[rows, 1, H]`.
fn decode_step(
    lm: &ClvpForCausalLM,
    tokens: &[u32],
    position: usize,
    cache: &mut KvCache,
    device: &Device,
) -> Result<Tensor<3>, NnError> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [tokens.len(), 1]), device);
    let x = lm.embed_ids(ids) + lm.position_embeddings(&[position], device);
    lm.hidden(x, Some(cache))
}

/// The processors that run whatever the decoding mode, in HF's order: repetition penalty over the running
/// ids (start token included), then `min_new_tokens` (stop → −inf while `generated < min_new_tokens`).
fn apply_common_processors(
    row: &mut [f32],
    history: &[u32],
    generated: usize,
    config: &GenerationConfig,
    stop: u32,
) {
    if config.repetition_penalty != 1.0 {
        apply_repetition_penalty(row, history, config.repetition_penalty);
    }
    if generated < config.min_new_tokens
        && let Some(s) = row.get_mut(stop as usize)
    {
        *s = f32::NEG_INFINITY;
    }
}

/// The processors greedy decoding and sampling apply to one row of raw logits, in transformers' order
/// (`_get_logits_processor`): repetition penalty over `history` (the running ids, start token included), then
/// `min_new_tokens` (the stop id → −inf while `generated < min_new_tokens`), then, when sampling, temperature,
/// top-k and top-p. `generated` counts the ids after the start token. What [`generate`] samples from.
pub fn apply_logits_processors(
    row: &mut [f32],
    history: &[u32],
    generated: usize,
    config: &GenerationConfig,
    stop: u32,
) {
    apply_common_processors(row, history, generated, config, stop);
    if config.do_sample {
        if config.temperature != 1.0 {
            for s in row.iter_mut() {
                *s /= config.temperature;
            }
        }
        if let Some(k) = config.top_k
            && k > 0
        {
            apply_top_k(row, k);
        }
        if config.top_p < 1.0 {
            apply_top_p(row, config.top_p);
        }
    }
}

/// Greedy decoding or multinomial sampling (HF `_sample`), every conditioning row repeated
/// `num_return_sequences` times.
fn sample(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    config: &GenerationConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateOutput, NnError> {
    let device: Device = conditioning.device();
    let [b, _, _] = conditioning.dims();
    let r = config.num_return_sequences;
    let n = b * r;
    let start = decoder_config.bos_token_id as u32;
    let stop = decoder_config.eos_token_id as u32;
    let vocab = decoder_config.vocab_size;
    let (mut last, mut cache) = prefill(lm, decoder_config, conditioning, r, config)?;

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut sequences: Vec<Vec<u32>> = vec![vec![start]; n];
    let mut finished = vec![false; n];
    let mut scores_out = Vec::new();
    let mut logits_out = Vec::new();

    for step in 0..config.max_new_tokens {
        let logits = to_vec(lm.logits(last)?.reshape([n, vocab]))?;
        let mut scores = logits.clone();
        let mut next = Vec::with_capacity(n);
        for (row, seq) in scores.chunks_mut(vocab).zip(&sequences) {
            apply_logits_processors(row, seq, step, config, stop);
            if config.do_sample {
                next.push(sample_token(row, &mut rng));
            } else {
                next.push(argmax(row));
            }
        }
        for (i, token) in next.iter_mut().enumerate() {
            if finished[i] {
                *token = stop;
            }
            sequences[i].push(*token);
            if *token == stop {
                finished[i] = true;
            }
        }
        scores_out.push(scores);
        logits_out.push(logits);
        progress(step + 1, config.max_new_tokens);
        if finished.iter().all(|&f| f) || step + 1 == config.max_new_tokens {
            break;
        }
        let pos = sequences[0].len();
        last = decode_step(lm, &next, pos, &mut cache, &device)?;
    }
    Ok(GenerateOutput {
        sequences,
        sequences_scores: None,
        scores: scores_out,
        logits: logits_out,
    })
}

/// Teacher forcing: the raw logits `[rows * vocab]` per step that decoding `conditioning` `[B, L, H]` would see
/// if it chose exactly `sequences` (`[B][1 + n]`, start token first, as [`GenerateOutput::sequences`] or HF's
/// `sequences`): step `s` is the distribution of `sequences[_][s + 1]`, so there are `n` steps. The prefix and
/// positions are those of [`generate`] under `prefill_positions`. Scores a given continuation, and lets a
/// parity check compare per-step logits on the reference's ids even where free-running ids part.
pub fn teacher_forced_logits(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    sequences: &[Vec<u32>],
    prefill_positions: PrefillPositions,
) -> Result<Vec<Vec<f32>>, NnError> {
    let device: Device = conditioning.device();
    let [b, _, _] = conditioning.dims();
    let vocab = decoder_config.vocab_size;
    if sequences.len() != b {
        return Err(NnError::Shape(format!(
            "teacher forcing: {} sequences for {b} conditioning rows",
            sequences.len()
        )));
    }
    let width = sequences.first().map_or(0, Vec::len);
    if width < 2 || sequences.iter().any(|s| s.len() != width) {
        return Err(NnError::Shape(format!(
            "teacher forcing: sequences must all have the same length ≥ 2 (start + one token), found lengths {:?}",
            sequences.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    if let Some(&id) = sequences.iter().flatten().find(|&&id| id as usize >= vocab) {
        return Err(NnError::TokenOutOfRange {
            id: i64::from(id),
            vocab,
            what: "teacher-forced token",
        });
    }
    let n = width - 1;
    if n >= lm.max_positions() {
        return Err(NnError::Shape(format!(
            "teacher forcing {n} tokens needs mel positions up to {n} but the decoder has {}",
            lm.max_positions()
        )));
    }
    let config = GenerationConfig {
        max_new_tokens: n,
        prefill_positions,
        ..GenerationConfig::default()
    };
    let (mut last, mut cache) = prefill(lm, decoder_config, conditioning, 1, &config)?;
    let mut out = Vec::with_capacity(n);
    for step in 0..n {
        out.push(to_vec(lm.logits(last)?.reshape([b, vocab]))?);
        if step + 1 == n {
            break;
        }
        let tokens: Vec<u32> = sequences.iter().map(|s| s[step + 1]).collect();
        last = decode_step(lm, &tokens, step + 2, &mut cache, &device)?;
    }
    Ok(out)
}

/// HF's additive "impossible" score (`-1.0e9`), added in float32 exactly where HF adds it.
const NEG_LARGE: f32 = -1.0e9;

/// In place `log_softmax` of one row (max-shifted; the sum accumulated in f64).
fn log_softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    let lse = sum.ln() as f32;
    for x in row.iter_mut() {
        *x = (*x - max) - lse;
    }
}

/// `x / n ^ length_penalty`, the power taken in f64 (Python's `int ** float`) and the division in f32 (a
/// float32 tensor divided by a Python scalar).
fn length_normalise(x: f32, n: usize, length_penalty: f64) -> f32 {
    x / ((n as f64).powf(length_penalty) as f32)
}

/// One of the `num_beams` best hypotheses of a batch row (HF's `sequences` / `beam_scores` /
/// `is_sent_finished` slots).
#[derive(Debug, Clone)]
struct Hypothesis {
    /// Start token and generated ids (no padding).
    tokens: Vec<u32>,
    /// Length-normalised score (or a placeholder around −1e9 while the slot holds no finished hypothesis).
    score: f32,
    /// A finished hypothesis (stop token or max length).
    finished: bool,
}

/// A top-`2·num_beams` continuation of one batch row.
struct Candidate {
    /// The running beam (0..num_beams) it extends.
    beam: usize,
    /// The new token.
    token: u32,
    /// Accumulated log-probability including the new token.
    log_prob: f32,
    /// The new token stops the sequence (stop id, or the sequence reached `max_length`).
    hits_stop: bool,
}

/// HF 5.23 `_beam_search` (vectorised beam search) for `B` conditioning rows × `num_beams` beams:
///
/// 1. log_softmax of the raw logits, then the processors (on log-probabilities), plus the running beam score
///    (initially 0 for beam 0 and −1e9 for the others, so the first step expands beam 0 only);
/// 2. top `2·num_beams` over `num_beams × vocab` candidates per row;
/// 3. candidates that hit the stop id or `max_length` are removed from the running set (−1e9); the best
///    `num_beams` others continue (the KV cache is gathered by their beam indices);
/// 4. finished candidates among the first `num_beams` join the finished slots with score
///    `log_prob / generated_len ^ length_penalty` (unless the row is full with `early_stopping` True or can no
///    longer improve); the best `num_beams` slots are kept;
/// 5. the loop ends when no row can improve (early-stopping heuristic), every row is full with
///    `early_stopping` True, or every candidate hit a stop (max length).
///
/// The best `num_return_sequences` slots per row are returned, padded with the stop id to the longest.
fn beam_search(
    lm: &ClvpForCausalLM,
    decoder_config: &ClvpDecoderConfig,
    conditioning: Tensor<3>,
    config: &GenerationConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateOutput, NnError> {
    let device: Device = conditioning.device();
    let [b, _, _] = conditioning.dims();
    let k = config.num_beams;
    let n = b * k;
    let start = decoder_config.bos_token_id as u32;
    let stop = decoder_config.eos_token_id as u32;
    let vocab = decoder_config.vocab_size;
    let lp = config.length_penalty;
    // HF: `max_length = max_new_tokens + len([start])`; the prompt is the start token.
    let prompt_len = 1usize;
    let max_length = prompt_len + config.max_new_tokens;
    // `max(2, 1 + number of stop ids) · num_beams`, one stop id.
    let beams_to_keep = 2 * k;
    let (mut last, mut cache) = prefill(lm, decoder_config, conditioning, k, config)?;

    let mut running: Vec<Vec<u32>> = vec![vec![start]; n];
    let mut running_scores: Vec<f32> = (0..n)
        .map(|i| if i % k == 0 { 0.0 } else { NEG_LARGE })
        .collect();
    let mut slots: Vec<Hypothesis> = vec![
        Hypothesis {
            tokens: vec![start],
            score: NEG_LARGE,
            finished: false,
        };
        n
    ];
    // HF's `is_early_stop_heuristic_unsatisfied`, per batch row.
    let mut can_improve = vec![true; b];
    let mut cur_len = prompt_len;
    let mut scores_out = Vec::new();
    let mut logits_out = Vec::new();

    loop {
        let step = cur_len - prompt_len;
        let logits = to_vec(lm.logits(last)?.reshape([n, vocab]))?;
        let mut log_probs = logits.clone();
        for (row, seq) in log_probs.chunks_mut(vocab).zip(&running) {
            log_softmax(row);
            apply_common_processors(row, seq, step, config, stop);
        }

        let mut next_running = Vec::with_capacity(n);
        let mut next_scores = Vec::with_capacity(n);
        let mut sources = Vec::with_capacity(n);
        let mut all_hit_stop = true;
        let divisor_len = cur_len + 1 - prompt_len;
        for bi in 0..b {
            let rows = bi * k..(bi + 1) * k;
            // Accumulated log-probs of the row's num_beams × vocab continuations.
            let acc: Vec<f32> = log_probs[bi * k * vocab..(bi + 1) * k * vocab]
                .iter()
                .enumerate()
                .map(|(i, &lp)| lp + running_scores[bi * k + i / vocab])
                .collect();
            let candidates: Vec<Candidate> = topk_largest(&acc, beams_to_keep)
                .into_iter()
                .map(|i| {
                    let token = (i % vocab) as u32;
                    Candidate {
                        beam: i / vocab,
                        token,
                        log_prob: acc[i],
                        hits_stop: token == stop || cur_len + 1 >= max_length,
                    }
                })
                .collect();
            all_hit_stop &= candidates.iter().all(|c| c.hits_stop);
            let extend = |c: &Candidate| {
                let mut t = running[bi * k + c.beam].clone();
                t.push(c.token);
                t
            };

            // The best num_beams candidates that did not stop keep running.
            let running_log_probs: Vec<f32> = candidates
                .iter()
                .map(|c| {
                    if c.hits_stop {
                        c.log_prob + NEG_LARGE
                    } else {
                        c.log_prob
                    }
                })
                .collect();
            for j in topk_largest(&running_log_probs, k) {
                let c = &candidates[j];
                next_running.push(extend(c));
                next_scores.push(running_log_probs[j]);
                sources.push(bi * k + c.beam);
            }

            // Finished candidates among the first num_beams compete with the finished slots.
            let row_slots = &slots[rows.clone()];
            let row_full = config.early_stopping == EarlyStopping::True
                && row_slots.iter().all(|h| h.finished);
            let mut merged: Vec<Hypothesis> = row_slots.to_vec();
            for (j, c) in candidates.iter().enumerate() {
                let just_finished = c.hits_stop && j < k;
                let mut score = length_normalise(c.log_prob, divisor_len, lp);
                if row_full {
                    score += NEG_LARGE;
                }
                if !can_improve[bi] {
                    score += NEG_LARGE;
                }
                if !just_finished {
                    score += NEG_LARGE;
                }
                merged.push(Hypothesis {
                    tokens: extend(c),
                    score,
                    finished: just_finished,
                });
            }
            let merged_scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            let kept: Vec<Hypothesis> = topk_largest(&merged_scores, k)
                .into_iter()
                .map(|i| merged[i].clone())
                .collect();
            for (slot, h) in slots[rows].iter_mut().zip(kept) {
                *slot = h;
            }
        }
        scores_out.push(log_probs);
        logits_out.push(logits);
        running = next_running;
        running_scores = next_scores;
        cur_len += 1;

        // Early-stopping heuristic: can the best running beam still beat the worst finished slot?
        for bi in 0..b {
            let hypothetical_len = if config.early_stopping == EarlyStopping::Never && lp > 0.0 {
                max_length - prompt_len
            } else {
                cur_len - prompt_len
            };
            let best_running = length_normalise(running_scores[bi * k], hypothetical_len, lp);
            let row_slots = &slots[bi * k..(bi + 1) * k];
            let worst = row_slots
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let improvable = row_slots
                .iter()
                .any(|h| best_running > if h.finished { worst } else { NEG_LARGE });
            can_improve[bi] &= improvable;
        }
        progress(step + 1, config.max_new_tokens);
        let all_full =
            config.early_stopping == EarlyStopping::True && slots.iter().all(|h| h.finished);
        if !can_improve.iter().any(|&c| c) || all_full || all_hit_stop {
            break;
        }

        // Reorder the cache by the beams the survivors came from, then feed their newest tokens.
        if sources.iter().enumerate().any(|(i, &s)| i != s) {
            cache.select_rows(&sources);
        }
        let tokens: Vec<u32> = running
            .iter()
            .map(|s| s.last().copied().unwrap_or(start))
            .collect();
        last = decode_step(lm, &tokens, cur_len, &mut cache, &device)?;
    }

    let r = config.num_return_sequences;
    let mut sequences = Vec::with_capacity(b * r);
    let mut sequences_scores = Vec::with_capacity(b * r);
    for bi in 0..b {
        for h in &slots[bi * k..bi * k + r] {
            if !h.finished {
                // An empty slot: every finished hypothesis scored below its −1e9 (HF returns the bare start token).
                return Err(NnError::Generation {
                    option: Some("length_penalty"),
                    message: format!(
                        "beam search finished no hypothesis for row {bi}: with length_penalty {lp} every \
                         finished one scored below -1e9 (log-prob / length^{lp}); use a length penalty nearer 0"
                    ),
                });
            }
            sequences.push(h.tokens.clone());
            sequences_scores.push(h.score);
        }
    }
    let width = sequences.iter().map(Vec::len).max().unwrap_or(prompt_len);
    for s in &mut sequences {
        s.resize(width, stop);
    }
    Ok(GenerateOutput {
        sequences,
        sequences_scores: Some(sequences_scores),
        scores: scores_out,
        logits: logits_out,
    })
}

/// `ClvpModelForConditionalGeneration.generate(pad_to_max_mel_tokens=length)`: every sequence (start token
/// included) right-padded with `pad` (HF: the model generation config's `eos_token_id`, the stop id), or
/// cropped, to exactly `length` columns. Run it before [`fix_speech_decoder_output`]: a padded row without a
/// stop token then gets the filler tail too.
pub fn pad_to_max_mel_tokens(sequences: &[Vec<u32>], length: usize, pad: u32) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.resize(length, pad);
            s
        })
        .collect()
}

/// `fix_speech_decoder_output`: drop the leading start token; in rows that contain the stop token, every
/// column from `min(first stop, n − 3)` on becomes the filler row `[c0, …, c0, c1, c2, c3]` (`c` = the
/// decoder's `decoder_fixing_codes`), and any stop token becomes `c0`.
pub fn fix_speech_decoder_output(
    sequences: &[Vec<u32>],
    stop: u32,
    fixing_codes: &[i64],
) -> Vec<Vec<u32>> {
    let c0 = fixing_codes.first().copied().unwrap_or(83) as u32;
    sequences
        .iter()
        .map(|seq| {
            let codes: Vec<u32> = seq.iter().skip(1).copied().collect();
            let len = codes.len();
            let Some(first_stop) = codes.iter().position(|&c| c == stop) else {
                return codes;
            };
            let mut filler = vec![c0; len];
            let tail = &fixing_codes[1.min(fixing_codes.len())..];
            let k = tail.len().min(len);
            for (f, &c) in filler[len - k..].iter_mut().zip(&tail[tail.len() - k..]) {
                *f = c as u32;
            }
            let boundary = first_stop.min(len.saturating_sub(3));
            codes
                .iter()
                .enumerate()
                .map(|(i, &c)| if i >= boundary { filler[i] } else { c })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_replaces_from_the_first_stop_and_forces_the_tail() {
        let codes = [83, 45, 45, 248];
        // start, 5, 6, stop, 7, 8, 9, 10
        let out = fix_speech_decoder_output(&[vec![99, 5, 6, 98, 7, 8, 9, 10]], 98, &codes);
        assert_eq!(out, vec![vec![5, 6, 83, 83, 45, 45, 248]]);
        // No stop: unchanged apart from the start token.
        let out = fix_speech_decoder_output(&[vec![99, 5, 6, 7]], 98, &codes);
        assert_eq!(out, vec![vec![5, 6, 7]]);
        // Stop in the last three: the boundary is n − 3.
        let out = fix_speech_decoder_output(&[vec![99, 1, 2, 3, 4, 98]], 98, &codes);
        assert_eq!(out, vec![vec![1, 2, 45, 45, 248]]);
    }

    #[test]
    fn top_k_and_top_p_keep_the_best() {
        let mut s = vec![1.0, 3.0, 2.0, 0.0];
        apply_top_k(&mut s, 2);
        assert_eq!(s[0], f32::NEG_INFINITY);
        assert_eq!(s[3], f32::NEG_INFINITY);
        assert_eq!(s[1], 3.0);
        let mut s = vec![0.0, 10.0, 0.0];
        apply_top_p(&mut s, 0.5);
        assert_eq!(s, vec![f32::NEG_INFINITY, 10.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut s = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0]);
    }
}
