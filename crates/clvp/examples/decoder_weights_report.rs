//! What the decoder's weight precisions cost against f32 on a checkpoint: the numbers of docs/parity.md's
//! "Decoder weights in bf16 and int8" section ([`Clvp::set_decoder_weights`]).
//!
//! `decoder_weights_report MODEL_DIR VOICE_WAV` (release build; the bench's full-size checkpoint and voice:
//! `target/bench/clvp/full`, `fixtures/audio/speech_mid.wav`) prints one markdown table. For bf16 and int8:
//! - **greedy**: P1's workload (the bench text, 100 new tokens, greedy, fixed length): how many of the 100
//!   ids equal f32's, the first step where they part, and f32's gap there between its two best processed
//!   scores (what greedy's argmax compares);
//! - **logits**: the raw logits of every step, teacher-forced on f32's greedy ids, against f32's: the largest
//!   difference, and the largest f32 logit for scale;
//! - **P2**: 16 candidates, `ultra_fast` sampling, seed 0, 100 tokens: how many candidates equal f32's,
//!   whether the CLVP ranking (the order of the candidates' indices) is f32's, and the best and mean CLVP
//!   score (`logits_per_text`) of the candidates.
//!
//! A second f32 run comes first: it shows the run is deterministic, so every difference below it is the
//! weights'.

use clvp::{Clvp, GenerationConfig, Preset, WeightPrecision, device::device};
use clvp_nn::{generate, teacher_forced_logits};

const TEXT: &str = "The quick brown fox jumps over the dog.";
const NEW_TOKENS: usize = 100;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, voice] = args.as_slice() else {
        return Err("usage: decoder_weights_report MODEL_DIR VOICE_WAV".into());
    };
    let mut clvp = Clvp::from_pretrained(model, &device("cpu")?)?;
    let clip = clvp.processor.load_voice(voice)?;
    let mut conditioning = clvp.voice_conditioning();
    conditioning.push(&clip)?;
    let mel = conditioning.finish()?;
    let ids1 = clvp.text_ids_for_scoring(TEXT)?;
    let cond = clvp.raw().conditioning(mel, &ids1)?;
    let fixed = |c: GenerationConfig| GenerationConfig {
        max_new_tokens: NEW_TOKENS,
        min_new_tokens: NEW_TOKENS,
        ..c
    };
    let greedy = fixed(GenerationConfig::default());
    let sampled = fixed(Preset::UltraFast.config());
    let voices = [clip];

    struct Run {
        ids: Vec<u32>,
        scores: Vec<Vec<f32>>,
        forced: Vec<Vec<f32>>,
        p2: clvp::Candidates,
    }
    let mut runs = Vec::new();
    let mut f32_sequences: Option<Vec<Vec<u32>>> = None;
    for precision in [
        WeightPrecision::F32,
        WeightPrecision::F32,
        WeightPrecision::Bf16,
        WeightPrecision::Int8,
    ] {
        clvp.set_decoder_weights(precision)?;
        let (lm, dc) = (
            &clvp.raw().model.speech_decoder_model,
            &clvp.raw().config.decoder_config,
        );
        let out = generate(lm, dc, cond.clone(), &greedy)?;
        let sequences = f32_sequences.get_or_insert_with(|| out.sequences.clone());
        let forced =
            teacher_forced_logits(lm, dc, cond.clone(), sequences, greedy.prefill_positions)?;
        let p2 = clvp.generate(TEXT, &voices, &sampled)?;
        runs.push((
            precision,
            Run {
                ids: out.sequences.first().cloned().unwrap_or_default(),
                scores: out.scores,
                forced,
                p2,
            },
        ));
    }
    let [(_, base), rest @ ..] = runs.as_slice() else {
        return Err("no f32 run".into());
    };
    let max_logit = base
        .forced
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "| weights | greedy ids equal to f32's | first differing step | f32's top-2 score gap there | max abs logit error (teacher-forced) | relative to max abs f32 logit ({max_logit:.3}) | P2 candidates equal to f32's | P2 ranking equal to f32's | P2 best / mean CLVP score |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let clvp_scores = |c: &clvp::Candidates| {
        let best = c
            .logits_per_text
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mean = c.logits_per_text.iter().sum::<f32>() / c.logits_per_text.len().max(1) as f32;
        format!("{best:.3} / {mean:.3}")
    };
    println!(
        "| F32 (the base) | — | — | — | — | — | — | — | {} |",
        clvp_scores(&base.p2)
    );
    let order = |c: &clvp::Candidates| c.ranking.iter().map(|r| r.0).collect::<Vec<_>>();
    for (precision, run) in rest {
        // ids[0] is the start token; step s chose ids[s + 1].
        let steps = base.ids.len().saturating_sub(1);
        let equal = (1..=steps)
            .filter(|&i| base.ids.get(i) == run.ids.get(i))
            .count();
        let first = (1..=steps).find(|&i| base.ids.get(i) != run.ids.get(i));
        let (first_cell, gap_cell) = match first {
            None => ("none".to_string(), "—".to_string()),
            Some(i) => {
                let s = &base.scores[i - 1];
                let mut top = [f32::NEG_INFINITY; 2];
                for &v in s {
                    if v > top[0] {
                        top = [v, top[0]];
                    } else if v > top[1] {
                        top[1] = v;
                    }
                }
                (format!("{}", i - 1), format!("{:.4}", top[0] - top[1]))
            }
        };
        let err = base
            .forced
            .iter()
            .flatten()
            .zip(run.forced.iter().flatten())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let same = base
            .p2
            .speech_ids
            .iter()
            .zip(&run.p2.speech_ids)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "| {precision:?} | {equal} / {steps} | {first_cell} | {gap_cell} | {err:.4} | {:.2} % | {same} / {} | {} | {} |",
            100.0 * err / max_logit,
            base.p2.speech_ids.len(),
            if order(&base.p2) == order(&run.p2) {
                "yes"
            } else {
                "no"
            },
            clvp_scores(&run.p2)
        );
    }
    Ok(())
}
