//! The logits processors in HF's order (`RepetitionPenaltyLogitsProcessor`, temperature, `TopKLogitsWarper`,
//! `TopPLogitsWarper`) and the token choice (argmax, multinomial sampling).

use super::*;

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

pub(super) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

pub(super) fn sample_token(row: &[f32], rng: &mut StdRng) -> u32 {
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

/// The id of Tortoise's placeholder prompt (`inference_speech`'s `fake_inputs`, ones before the start token).
pub const TORTOISE_PROMPT_ID: u32 = 1;

/// The processors that run whatever the decoding mode, in HF's order: repetition penalty over the running
/// ids (start token included; under Tortoise's prompt ([`PrefillPositions::tortoise_prompt`]) also [`TORTOISE_PROMPT_ID`], as Tortoise's
/// prompt of ones is), then `min_new_tokens` (stop → −inf while `generated < min_new_tokens`).
pub(super) fn apply_common_processors(
    row: &mut [f32],
    history: &[u32],
    generated: usize,
    config: &GenerationConfig,
    stop: u32,
) {
    if config.repetition_penalty != 1.0 {
        apply_repetition_penalty(row, history, config.repetition_penalty);
        // Tortoise's generate runs on a placeholder prompt of ones (`fake_inputs`): its repetition penalty
        // counts token 1 as seen from the first step.
        if config.prefill_positions.tortoise_prompt() && !history.contains(&TORTOISE_PROMPT_ID) {
            apply_repetition_penalty(row, &[TORTOISE_PROMPT_ID], config.repetition_penalty);
        }
    }
    if generated < config.min_new_tokens
        && let Some(s) = row.get_mut(stop as usize)
    {
        *s = f32::NEG_INFINITY;
    }
}

/// The processors greedy decoding and sampling apply to one row of raw logits, in transformers' order
/// (`_get_logits_processor`): repetition penalty over `history` (the running ids, start token included, and
/// under Tortoise's prompt ([`PrefillPositions::tortoise_prompt`]) its placeholder id [`TORTOISE_PROMPT_ID`]), then
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
