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

mod beam;
mod config;
mod output;
mod processors;

use beam::beam_search;
pub use config::{EarlyStopping, GenerationConfig, PrefillPositions, length_penalty_range};
pub use output::{fix_speech_decoder_output, pad_to_max_mel_tokens};
pub use processors::{
    TORTOISE_PROMPT_ID, apply_logits_processors, apply_repetition_penalty, apply_top_k, apply_top_p,
};
use processors::{apply_common_processors, argmax, sample_token};

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
        PrefillPositions::Tortoise | PrefillPositions::TortoiseNoCache => prefix,
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
        cache.select_rows(&rows)?;
        let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rows.len()]), &device);
        last = last.select(0, idx);
    }
    Ok((last, cache))
}

/// Feed the newest token of every row at mel position `position` (see [`PrefillPositions::code_position`]:
/// `len([start, g1..gk]) = k + 1` as in Tortoise's cached loop and HF, where position 1 is never used; `k`
/// without the cache) and return the new last hidden state `[rows, 1, H]`.
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
        let pos = config.prefill_positions.code_position(sequences[0].len());
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
        let pos = prefill_positions.code_position(step + 2);
        last = decode_step(lm, &tokens, pos, &mut cache, &device)?;
    }
    Ok(out)
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
