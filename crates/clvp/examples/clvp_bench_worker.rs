//! The Rust side of `cargo xtask bench` P1, P2, P3 and P7 on a full-size CLVP checkpoint (release build).
//!
//! `clvp_bench_worker WORKLOAD MODEL_DIR VOICE_WAV RUNS WARMUP [DEVICE]` prints one JSON line
//! `{"median_s": ..., "runs": N, "peak_rss_bytes": ...}`. Workloads (the Python side is
//! `xtask/python/bench_clvp.py`, which builds the same inputs):
//! - `p1` generate, batch 1, the 24-token bench text, 100 new tokens, greedy, fixed length (min = max = 100);
//! - `p1-bf16` the same with the decoder's weights in bfloat16 ([`Clvp::set_decoder_weights`]); `p2-bf16`
//!   likewise for `p2`; `p1-int8`, `p2-int8` with them in int8;
//! - `p2` generate 16 candidates × 100 tokens, Tortoise's `ultra_fast` sampling, fixed length;
//! - `p3` rank 16 candidates × 500 codes against the text: text + speech encoders and the similarity;
//! - `p7` cold load of the checkpoint (`Clvp::from_pretrained`) to its first use (the text embedding);
//! - `p8-phases` where the time of P8 (the README's first command, `clvp generate`, timed as a whole process by
//!   `cargo xtask bench`) goes: the same steps in one process, each timed, printed as
//!   `{"phases": [[name, seconds], ...]}` (RUNS and WARMUP are ignored: one cold pass).

use std::time::Instant;

use clvp::{Clvp, GenerationConfig, Preset, WeightPrecision, device::device};

/// The allocator the `clvp` binary uses (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench text; both sides check that it is 24 tokens long.
const TEXT: &str = "The quick brown fox jumps over the dog.";
const TEXT_TOKENS: usize = 24;
const NEW_TOKENS: usize = 100;
const CANDIDATES: usize = 16;
const RANK_CODES: usize = 500;

/// P3's candidates: the same deterministic codes as `bench_clvp.py` (`(7919 i + 104729 j) mod 8192`).
fn rank_codes() -> Vec<Vec<u32>> {
    (0..CANDIDATES)
        .map(|i| {
            (0..RANK_CODES)
                .map(|j| ((7919 * i + 104_729 * j) % 8192) as u32)
                .collect()
        })
        .collect()
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (workload, model, voice, runs, warmup, dev) = match args.as_slice() {
        [_, w, m, v, r, u] => (w, m, v, r, u, "cpu"),
        [_, w, m, v, r, u, d] => (w, m, v, r, u, d.as_str()),
        _ => {
            return Err(
                "usage: clvp_bench_worker p1|p1-bf16|p1-int8|p2|p2-bf16|p2-int8|p3|p7 MODEL_DIR VOICE_WAV RUNS WARMUP [DEVICE]"
                    .into(),
            );
        }
    };
    let (runs, warmup): (usize, usize) = (runs.parse()?, warmup.parse()?);
    let device = device(dev)?;
    if workload == "p8-phases" {
        return p8_phases(model, voice, &device);
    }
    let mut times = Vec::with_capacity(runs);
    if workload == "p7" {
        for i in 0..warmup + runs {
            let t0 = Instant::now();
            let clvp = Clvp::from_pretrained(model, &device)?;
            std::hint::black_box(clvp.embed_text(TEXT)?);
            let dt = t0.elapsed().as_secs_f64();
            drop(clvp);
            if i >= warmup {
                times.push(dt);
            }
        }
    } else {
        let mut clvp = Clvp::from_pretrained(model, &device)?;
        if workload.ends_with("-bf16") {
            clvp.set_decoder_weights(WeightPrecision::Bf16)?;
        } else if workload.ends_with("-int8") {
            clvp.set_decoder_weights(WeightPrecision::Int8)?;
        }
        let n = clvp.processor.tokenizer.encode(TEXT)?.len();
        if n != TEXT_TOKENS {
            return Err(format!("the bench text has {n} tokens, not {TEXT_TOKENS}").into());
        }
        let voices = [clvp.processor.load_voice(voice)?];
        let fixed = |c: GenerationConfig| GenerationConfig {
            max_new_tokens: NEW_TOKENS,
            min_new_tokens: NEW_TOKENS,
            ..c
        };
        let once: Box<dyn Fn() -> Res<()>> = match workload.as_str() {
            "p1" | "p1-bf16" | "p1-int8" => {
                let cfg = fixed(GenerationConfig::default());
                Box::new(move || {
                    let out = clvp.generate(TEXT, &voices, &cfg)?;
                    std::hint::black_box(out);
                    Ok(())
                })
            }
            "p2" | "p2-bf16" | "p2-int8" => {
                let cfg = fixed(Preset::UltraFast.config());
                Box::new(move || {
                    let out = clvp.generate(TEXT, &voices, &cfg)?;
                    std::hint::black_box(out);
                    Ok(())
                })
            }
            "p3" => {
                let codes = rank_codes();
                Box::new(move || {
                    let text = clvp.embed_text(TEXT)?;
                    let speech = clvp.get_speech_features(&codes)?;
                    let logits = clvp_rank::logits_per_text(
                        &text.values,
                        &speech.values,
                        text.shape[1],
                        clvp.raw().logit_scale,
                    )?;
                    std::hint::black_box(logits);
                    Ok(())
                })
            }
            other => {
                return Err(format!(
                    "unknown workload {other:?}; known: p1 p1-bf16 p1-int8 p2 p2-bf16 p2-int8 p3 p7"
                )
                .into());
            }
        };
        for _ in 0..warmup {
            once()?;
        }
        for _ in 0..runs {
            let t0 = Instant::now();
            once()?;
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = match times.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => times[n / 2],
        n => (times[n / 2 - 1] + times[n / 2]) / 2.0,
    };
    println!(
        "{{\"median_s\": {median}, \"runs\": {runs}, \"peak_rss_bytes\": {}}}",
        clvp_parity::bench::peak_rss_bytes()
    );
    Ok(())
}

/// P8's text: the README's first command.
const P8_TEXT: &str = "Hello world, this is a test.";

/// P8's steps one by one, as `clvp generate` runs them (`Clvp::generate` with the CLI's defaults: Tortoise's
/// `ultra_fast` preset, 16 candidates, at most 100 new tokens), each timed.
fn p8_phases(model: &str, voice: &str, device: &clvp::device::Device) -> Res<()> {
    let mut phases: Vec<(&str, f64)> = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&str, f64)>| {
        phases.push((name, t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    let clvp = Clvp::from_pretrained(model, device)?;
    lap("load (from_pretrained)", &mut phases);
    let clip = clvp.processor.load_voice(voice)?;
    lap("voice file (decode, resample)", &mut phases);
    let features = clvp
        .processor
        .feature_extractor
        .extract(&[clip.as_slice()], None)?;
    std::hint::black_box(features);
    lap("features (log-mel)", &mut phases);
    let mut conditioning = clvp.voice_conditioning();
    conditioning.push(&clip)?;
    let mel = conditioning.finish()?;
    let ids1 = clvp.text_ids_for_scoring(P8_TEXT)?;
    let cond = clvp.raw().conditioning(mel, &ids1)?;
    lap(
        "conditioning (features again + conditioning encoder + text embedding)",
        &mut phases,
    );
    let cfg = GenerationConfig {
        max_new_tokens: NEW_TOKENS,
        ..Preset::UltraFast.config()
    };
    let (lm, dc) = (
        &clvp.raw().model.speech_decoder_model,
        &clvp.raw().config.decoder_config,
    );
    let start = Instant::now();
    let mut first: Option<f64> = None;
    let out = clvp_nn::generate_with_progress(lm, dc, cond, &cfg, &mut |_, _| {
        first.get_or_insert_with(|| start.elapsed().as_secs_f64());
    })?;
    let decoding = start.elapsed().as_secs_f64();
    let prefill = first.unwrap_or(decoding);
    phases.push(("prefill (and the first token)", prefill));
    phases.push(("decoding steps", decoding - prefill));
    t = Instant::now();
    let ids = clvp.raw().fix_speech_ids(&out.sequences, None);
    let text = clvp.embed_text(P8_TEXT)?;
    let speech = clvp.get_speech_features(&ids)?;
    let logits = clvp_rank::logits_per_text(
        &text.values,
        &speech.values,
        text.shape[1],
        clvp.raw().logit_scale,
    )?;
    std::hint::black_box(logits);
    phases.push((
        "encoders (text + speech) and ranking",
        t.elapsed().as_secs_f64(),
    ));
    let cells: Vec<String> = phases
        .iter()
        .map(|(n, s)| format!("[{n:?}, {s}]"))
        .collect();
    println!("{{\"phases\": [{}]}}", cells.join(", "));
    Ok(())
}
