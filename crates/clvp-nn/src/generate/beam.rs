//! Beam search as transformers 5.23's vectorised `_beam_search`, the KV cache reordered by beam indices.

use super::*;

/// HF's additive "impossible" score (`-1.0e9`), added in float32 exactly where HF adds it.
pub(super) const NEG_LARGE: f32 = -1.0e9;

/// In place `log_softmax` of one row (max-shifted; the sum accumulated in f64).
pub(super) fn log_softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    let lse = sum.ln() as f32;
    for x in row.iter_mut() {
        *x = (*x - max) - lse;
    }
}

/// `x / n ^ length_penalty`, the power taken in f64 (Python's `int ** float`) and the division in f32 (a
/// float32 tensor divided by a Python scalar).
pub(super) fn length_normalise(x: f32, n: usize, length_penalty: f64) -> f32 {
    x / ((n as f64).powf(length_penalty) as f32)
}

/// One of the `num_beams` best hypotheses of a batch row (HF's `sequences` / `beam_scores` /
/// `is_sent_finished` slots).
#[derive(Debug, Clone)]
pub(super) struct Hypothesis {
    /// Start token and generated ids (no padding).
    tokens: Vec<u32>,
    /// Length-normalised score (or a placeholder around −1e9 while the slot holds no finished hypothesis).
    score: f32,
    /// A finished hypothesis (stop token or max length).
    finished: bool,
}

/// A top-`2·num_beams` continuation of one batch row.
pub(super) struct Candidate {
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
pub(super) fn beam_search(
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
            cache.select_rows(&sources)?;
        }
        let tokens: Vec<u32> = running
            .iter()
            .map(|s| s.last().copied().unwrap_or(start))
            .collect();
        let pos = config.prefill_positions.code_position(cur_len);
        last = decode_step(lm, &tokens, pos, &mut cache, &device)?;
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
