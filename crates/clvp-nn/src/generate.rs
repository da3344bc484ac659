//! Speech-code generation of `ClvpForCausalLM` from conditioning embeddings, as transformers 5.23's
//! `GenerationMixin._sample` with CLVP's `_prepare_model_inputs` / `prepare_inputs_for_generation`, plus
//! `fix_speech_decoder_output`. Greedy decoding and multinomial sampling; logits processors in HF's order.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::ClvpDecoderConfig;
use crate::decoder::{ClvpForCausalLM, KvCache};
use crate::error::NnError;

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
    /// Sequences per conditioning row (rows ordered b0r0, b0r1, …, b1r0, …).
    pub num_return_sequences: usize,
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
            seed: 0,
            prefill_positions: PrefillPositions::Tortoise,
        }
    }
}

/// What [`generate`] returns.
#[derive(Debug, Clone)]
pub struct GenerateOutput {
    /// `[N][1 + n]`: the start token then the generated ids (finished rows padded with the stop id).
    pub sequences: Vec<Vec<u32>>,
    /// Per step, the processed scores `[N * vocab]` the token was chosen from (HF's `scores`).
    pub scores: Vec<Vec<f32>>,
    /// Per step, the raw logits `[N * vocab]` (HF's `logits`).
    pub logits: Vec<Vec<f32>>,
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, NnError> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| NnError::Shape(format!("reading logits: {e:?}")))
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
pub fn apply_top_p(scores: &mut [f32], p: f32) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = order
        .iter()
        .map(|&i| ((scores[i] - max) as f64).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    let mut cum = 0.0f64;
    let last = order.len().saturating_sub(1);
    let mut remove = Vec::new();
    for (rank, (&i, e)) in order.iter().zip(&exps).enumerate() {
        cum += e / total;
        if cum <= (1.0 - p) as f64 && rank != last {
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

fn sample(row: &[f32], rng: &mut StdRng) -> u32 {
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
    let device: Device = conditioning.device();
    let [b, l, h] = conditioning.dims();
    let r = config.num_return_sequences.max(1);
    let n = b * r;
    let start = decoder_config.bos_token_id as u32;
    let stop = decoder_config.eos_token_id as u32;
    let vocab = decoder_config.vocab_size;
    let total_positions = l + 1 + config.max_new_tokens;
    if config.max_new_tokens >= lm.max_positions() {
        return Err(NnError::Shape(format!(
            "max_new_tokens {} needs mel positions up to {} but the decoder has {} (max_position_embeddings)",
            config.max_new_tokens,
            config.max_new_tokens,
            lm.max_positions()
        )));
    }

    // repeat_interleave over num_return_sequences.
    let idx: Vec<i64> = (0..b)
        .flat_map(|i| std::iter::repeat_n(i as i64, r))
        .collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let cond = conditioning.select(0, idx);

    // Prefix = conditioning ++ (emb(start) + P[0]); minus P[0..=L]; then the decoder's own addition.
    let start_ids =
        Tensor::<2, Int>::from_data(TensorData::new(vec![start as i64; n], [n, 1]), &device);
    let p0 = lm.position_embeddings(&[0], &device);
    let start_emb = lm.embed_ids(start_ids) + p0.clone();
    let prefix = Tensor::cat(vec![cond, start_emb], 1);
    let prefix_positions: Vec<usize> = (0..=l).collect();
    let p_prefix = lm.position_embeddings(&prefix_positions, &device);
    let x = match config.prefill_positions {
        PrefillPositions::Tortoise => prefix,
        PrefillPositions::Hf523 => prefix - p_prefix + p0.expand([1, l + 1, h]),
    };

    let mut cache = KvCache::new(decoder_config, n, total_positions, &device);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut sequences: Vec<Vec<u32>> = vec![vec![start]; n];
    let mut finished = vec![false; n];
    let mut scores_out = Vec::new();
    let mut logits_out = Vec::new();

    let mut hidden = lm.hidden(x, Some(&mut cache))?;
    for step in 0..config.max_new_tokens {
        let [_, t, _] = hidden.dims();
        let last = hidden.narrow(1, t - 1, 1);
        let logits = to_vec(lm.logits(last).reshape([n, vocab]))?;
        let mut scores = logits.clone();
        let mut next = Vec::with_capacity(n);
        for (row, seq) in scores.chunks_mut(vocab).zip(&sequences) {
            if config.repetition_penalty != 1.0 {
                apply_repetition_penalty(row, seq, config.repetition_penalty);
            }
            if step < config.min_new_tokens
                && let Some(s) = row.get_mut(stop as usize)
            {
                *s = f32::NEG_INFINITY;
            }
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
                next.push(sample(row, &mut rng));
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
        // Token g_k is fed with mel position k + 1 = `len([start, g1..gk])` (position 1 is never used).
        let pos = sequences[0].len();
        let ids: Vec<i64> = next.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        let x = lm.embed_ids(ids) + lm.position_embeddings(&[pos], &device);
        hidden = lm.hidden(x, Some(&mut cache))?;
    }
    Ok(GenerateOutput {
        sequences,
        scores: scores_out,
        logits: logits_out,
    })
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
