//! The logits processors against transformers 5.23's on the same raw logits (`procs.*` of
//! `xtask/python/ref_clvp_nn.py`): repetition penalty, temperature, top-k, top-p and `min_new_tokens` alone, and
//! the chain `_get_logits_processor` builds for Tortoise's sampling settings (`apply_logits_processors`, what
//! `generate` samples from). Finite entries within `tolerance("processors")`, the −inf masks identical.
//! Then sampling itself: deterministic under the seed, and every sampled token inside the top-k / top-p support.

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::{
    GenerationConfig, LoadedClvp, PrefillPositions, apply_logits_processors,
    apply_repetition_penalty, apply_top_k, apply_top_p, generate, pad_extra_bos_eos,
};
use clvp_parity::{FixtureTensor, Recorder, compare, fixture_path, read_safetensors, tolerance};

fn cases() -> HashMap<String, FixtureTensor> {
    read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).unwrap_or_else(|e| panic!("{e}"))
}

fn get<'a>(t: &'a HashMap<String, FixtureTensor>, k: &str) -> &'a FixtureTensor {
    t.get(k)
        .unwrap_or_else(|| panic!("fixture tensor {k} missing"))
}

/// Compare finite entries within the tolerance; the positions of −inf must agree exactly.
fn record(rec: &mut Recorder, case: &str, ours: &[f32], want: &[f64]) {
    let inf_ours: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i] == f32::NEG_INFINITY)
        .collect();
    let inf_want: Vec<usize> = (0..want.len())
        .filter(|&i| want[i] == f64::NEG_INFINITY)
        .collect();
    if inf_ours != inf_want {
        let only_ours: Vec<usize> = inf_ours
            .iter()
            .filter(|i| !inf_want.contains(i))
            .copied()
            .collect();
        let only_ref: Vec<usize> = inf_want
            .iter()
            .filter(|i| !inf_ours.contains(i))
            .copied()
            .collect();
        rec.record_exact(
            &format!("{case} −inf mask"),
            want.len(),
            &[format!(
                "{} masked by us only (first {:?}), {} by the reference only (first {:?})",
                only_ours.len(),
                only_ours.iter().take(5).collect::<Vec<_>>(),
                only_ref.len(),
                only_ref.iter().take(5).collect::<Vec<_>>()
            )],
        );
        return;
    }
    rec.record_exact(&format!("{case} −inf mask"), want.len(), &[]);
    let keep: Vec<usize> = (0..want.len()).filter(|i| !inf_want.contains(i)).collect();
    let a: Vec<f64> = keep.iter().map(|&i| f64::from(ours[i])).collect();
    let b: Vec<f64> = keep.iter().map(|&i| want[i]).collect();
    rec.record(case, &compare(&a, &b, tolerance("processors")));
}

#[test]
fn processors_match_transformers() {
    let t = cases();
    let logits = get(&t, "procs.logits");
    let (rows, vocab) = (logits.shape[0], logits.shape[1]);
    let hist = get(&t, "procs.history");
    let width = hist.shape[1];
    let history: Vec<Vec<u32>> = hist
        .i64
        .chunks(width)
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect();
    let ckpt = Checkpoint::local(fixture_path("clvp/tiny")).unwrap_or_else(|e| panic!("{e}"));
    let loaded =
        LoadedClvp::from_checkpoint(&ckpt, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    let stop = loaded.config.decoder_config.eos_token_id as u32;
    assert_eq!(vocab, loaded.config.decoder_config.vocab_size);
    let generated = width - 1;
    let mut rec = Recorder::new("processors");

    let run = |f: &dyn Fn(&mut [f32], &[u32])| -> Vec<f32> {
        let mut out: Vec<f32> = logits.f64.iter().map(|&x| x as f32).collect();
        for (r, row) in out.chunks_mut(vocab).enumerate() {
            f(row, &history[r]);
        }
        out
    };
    let only = |f: &dyn Fn(&mut GenerationConfig)| {
        // transformers' prompt (the start token alone): Tortoise's adds its placeholder id to the penalty.
        let mut gc = GenerationConfig {
            repetition_penalty: 1.0,
            do_sample: false,
            prefill_positions: PrefillPositions::Hf523,
            ..GenerationConfig::default()
        };
        f(&mut gc);
        gc
    };
    record(
        &mut rec,
        "procs.rep",
        &run(&|row, h| apply_repetition_penalty(row, h, 2.0)),
        &get(&t, "procs.rep").f64,
    );
    let temp = GenerationConfig {
        do_sample: true,
        temperature: 0.8,
        top_k: None,
        top_p: 1.0,
        ..only(&|_| {})
    };
    record(
        &mut rec,
        "procs.temp",
        &run(&|row, h| apply_logits_processors(row, h, generated, &temp, stop)),
        &get(&t, "procs.temp").f64,
    );
    for (k, key) in [(50, "procs.topk50"), (5, "procs.topk5")] {
        record(
            &mut rec,
            key,
            &run(&|row, _| apply_top_k(row, k)),
            &get(&t, key).f64,
        );
    }
    for (p, key) in [(0.8, "procs.topp08"), (0.3, "procs.topp03")] {
        record(
            &mut rec,
            key,
            &run(&|row, _| apply_top_p(row, p)),
            &get(&t, key).f64,
        );
    }
    let minnew = only(&|gc| gc.min_new_tokens = 10);
    record(
        &mut rec,
        "procs.minnew",
        &run(&|row, h| apply_logits_processors(row, h, generated, &minnew, stop)),
        &get(&t, "procs.minnew").f64,
    );
    for (min_new, key) in [(10, "procs.chain_min10"), (3, "procs.chain_min3")] {
        let gc = GenerationConfig {
            do_sample: true,
            temperature: 0.8,
            top_k: Some(50),
            top_p: 0.8,
            repetition_penalty: 2.0,
            min_new_tokens: min_new,
            prefill_positions: PrefillPositions::Hf523,
            ..GenerationConfig::default()
        };
        record(
            &mut rec,
            key,
            &run(&|row, h| apply_logits_processors(row, h, generated, &gc, stop)),
            &get(&t, key).f64,
        );
    }
    assert_eq!(rows, history.len());
    rec.finish();
}

/// Sampling on the tiny model: the gen inputs, `num_return_sequences` 4, 12 steps.
fn sample(top_k: Option<usize>, top_p: f32, seed: u64) -> (clvp_nn::GenerateOutput, usize, u32) {
    let t = cases();
    let ckpt = Checkpoint::local(fixture_path("clvp/tiny")).unwrap_or_else(|e| panic!("{e}"));
    let loaded =
        LoadedClvp::from_checkpoint(&ckpt, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    let (m, cfg) = (&loaded.model, &loaded.config);
    let rows = |f: &FixtureTensor| -> Vec<Vec<u32>> {
        f.i64
            .chunks(f.shape[1])
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect()
    };
    let (ids, mask) = (
        rows(get(&t, "gen.input_ids")),
        rows(get(&t, "gen.attention_mask")),
    );
    let f = get(&t, "gen.features");
    let feats: Vec<f32> = f.f64.iter().map(|&v| v as f32).collect();
    let feats = Tensor::<3>::from_data(
        TensorData::new(feats, [f.shape[0], f.shape[1], f.shape[2]]),
        &Device::flex(),
    );
    let (ids1, mask1) =
        pad_extra_bos_eos(&ids, &mask, None, Some(cfg.text_config.eos_token_id as u32));
    let cond = m
        .conditioning_encoder
        .forward(feats, &ids1, Some(&mask1))
        .unwrap_or_else(|e| panic!("{e}"));
    let gc = GenerationConfig {
        do_sample: true,
        num_return_sequences: 4,
        max_new_tokens: 12,
        temperature: 0.8,
        top_k,
        top_p,
        repetition_penalty: 2.0,
        seed,
        ..GenerationConfig::default()
    };
    let out = generate(&m.speech_decoder_model, &cfg.decoder_config, cond, &gc)
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out,
        cfg.decoder_config.vocab_size,
        cfg.decoder_config.eos_token_id as u32,
    )
}

#[test]
fn sampling_is_seeded_and_stays_in_the_support() {
    let (a, vocab, stop) = sample(Some(5), 1.0, 11);
    let (b, _, _) = sample(Some(5), 1.0, 11);
    let (c, _, _) = sample(Some(5), 1.0, 12);
    assert_eq!(a.sequences, b.sequences, "same seed, same ids");
    assert_ne!(a.sequences, c.sequences, "another seed, other ids");
    for (out, what) in [(a, "top-k 5"), (sample(None, 0.3, 3).0, "top-p 0.3")] {
        let n = out.sequences.len();
        for (s, scores) in out.scores.iter().enumerate() {
            for r in 0..n {
                let row = &scores[r * vocab..(r + 1) * vocab];
                let finite = row.iter().filter(|x| x.is_finite()).count();
                if what == "top-k 5" {
                    assert!(
                        finite <= 5,
                        "{what}: step {s} row {r}: {finite} tokens kept"
                    );
                }
                let tok = out.sequences[r][s + 1] as usize;
                let finished_before = out.sequences[r][1..=s].contains(&stop);
                assert!(
                    finished_before || row[tok].is_finite(),
                    "{what}: step {s} row {r}: sampled token {tok} outside the support"
                );
            }
        }
    }
}

/// `torch.topk` and `torch.sort` on CPU over values with many exact ties (`torch_order.*`): the same indices in
/// the same order, so that beam search keeps the beams transformers keeps and the top-p cut drops the tokens it
/// drops (`clvp_nn::torch_order`).
#[test]
fn torch_order_matches_torch() {
    let t = cases();
    let mut rec = Recorder::new("torch_order");
    for kind in ["topk", "sort"] {
        let mut failures = Vec::new();
        let mut total = 0;
        for i in 0.. {
            let Some(values) = t.get(&format!("torch_order.{kind}{i}.values")) else {
                break;
            };
            let want = &get(&t, &format!("torch_order.{kind}{i}.indices")).i64;
            let values: Vec<f32> = values.f64.iter().map(|&v| v as f32).collect();
            let ours: Vec<usize> = if kind == "topk" {
                clvp_nn::torch_order::topk_largest(&values, want.len())
            } else {
                clvp_nn::torch_order::sort_ascending(&values)
            };
            let ours: Vec<i64> = ours.iter().map(|&i| i as i64).collect();
            if &ours != want {
                failures.push(format!(
                    "{kind}{i} (n={}, k={}): ours {ours:?}, torch {want:?}",
                    values.len(),
                    want.len()
                ));
            }
            total += 1;
        }
        assert!(total > 0, "no torch_order.{kind}* cases in the fixtures");
        rec.record_exact(&format!("torch_order.{kind}"), total, &failures);
    }
    rec.finish();
}
