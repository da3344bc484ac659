//! Batch equals single (issue 9): the CLVP networks and greedy generation give every item of a batch the same
//! result as that item alone, within `tolerance("batch")`, wherever HF's semantics say they should.
//!
//! Where they should not (documented in docs/errors.md § "Batches"): the encoders' mean pooling runs over
//! padding, as HF's does, so a padded row's `pooler_output`/`embeds` differ from the row alone; its hidden
//! states at real positions do not. The conditioning encoder embeds padded text tokens too (HF again), so only
//! texts of equal length batch exactly through generation.

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::{GenerationConfig, LoadedClvp, PrefillPositions, generate, pad_extra_bos_eos};
use clvp_parity::tensors::floats as values;
use clvp_parity::{FixtureTensor, compare, fixture_path, read_safetensors, tolerance};

fn device() -> Device {
    Device::flex()
}

fn load() -> LoadedClvp {
    let ckpt = Checkpoint::local(fixture_path("clvp/tiny")).unwrap_or_else(|e| panic!("{e}"));
    LoadedClvp::from_checkpoint(&ckpt, &device()).unwrap_or_else(|e| panic!("{e}"))
}

fn ids_tensor(rows: &[Vec<u32>]) -> Tensor<2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().map(|&v| i64::from(v)).collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), rows[0].len()]),
        &device(),
    )
}

/// A deterministic pseudo-random sequence (no reference values are involved: ours is compared with ours).
fn lcg(seed: u64, n: usize, modulo: u32) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % u64::from(modulo)) as u32
        })
        .collect()
}

fn assert_close(what: &str, batched: &[f64], single: &[f64]) {
    let c = compare(batched, single, tolerance("batch"));
    assert!(c.passed(), "{}", c.report(what));
}

#[test]
fn speech_encoder_batch_equals_single() {
    let loaded = load();
    let enc = &loaded.model.speech_encoder_model;
    let vocab = loaded.config.speech_config.vocab_size as u32;
    let rows: Vec<Vec<u32>> = (0..3).map(|i| lcg(10 + i, 23, vocab)).collect();
    let batched = enc.forward(ids_tensor(&rows), None);
    let (emb, hid) = (values(batched.embeds), values(batched.last_hidden_state));
    let (e, h) = (emb.len() / 3, hid.len() / 3);
    for (i, row) in rows.iter().enumerate() {
        let single = enc.forward(ids_tensor(std::slice::from_ref(row)), None);
        assert_close(
            &format!("row {i} embeds"),
            &emb[i * e..(i + 1) * e],
            &values(single.embeds),
        );
        assert_close(
            &format!("row {i} last_hidden_state"),
            &hid[i * h..(i + 1) * h],
            &values(single.last_hidden_state),
        );
    }
}

#[test]
fn text_encoder_padded_batch_equals_single_at_real_positions() {
    let loaded = load();
    let enc = &loaded.model.text_encoder_model;
    let vocab = loaded.config.text_config.vocab_size as u32;
    let lens = [17usize, 9, 4];
    let width = lens[0];
    let real: Vec<Vec<u32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| lcg(100 + i as u64, n, vocab))
        .collect();
    let padded: Vec<Vec<u32>> = real
        .iter()
        .map(|r| {
            let mut p = r.clone();
            p.resize(width, 0);
            p
        })
        .collect();
    let mask: Vec<Vec<u32>> = lens
        .iter()
        .map(|&n| (0..width).map(|j| u32::from(j < n)).collect())
        .collect();
    let batched = enc.forward(ids_tensor(&padded), Some(&mask));
    let hidden = loaded.config.text_config.hidden_size;
    let hid = values(batched.last_hidden_state);
    let emb = values(batched.embeds);
    let e = emb.len() / lens.len();
    for (i, row) in real.iter().enumerate() {
        let single = enc.forward(ids_tensor(std::slice::from_ref(row)), None);
        let n = lens[i];
        let start = i * width * hidden;
        assert_close(
            &format!("row {i} last_hidden_state at its {n} real positions"),
            &hid[start..start + n * hidden],
            &values(single.last_hidden_state),
        );
        if n == width {
            // The longest row has no padding: its pooled embedding equals the row alone too.
            assert_close(
                &format!("row {i} embeds"),
                &emb[i * e..(i + 1) * e],
                &values(single.embeds),
            );
        }
    }
}

fn tiny_cases() -> std::collections::HashMap<String, FixtureTensor> {
    read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn greedy_generation_batch_equals_single() {
    let loaded = load();
    let m = &loaded.model;
    let cfg = &loaded.config;
    let t = tiny_cases();
    let f = t
        .get("gen.features")
        .unwrap_or_else(|| panic!("gen.features missing"));
    let [clips, mels, frames] = [f.shape[0], f.shape[1], f.shape[2]];
    assert!(clips >= 2, "the fixture has two clips");
    // Two texts of the same length (no padding), one clip each.
    let vocab = cfg.text_config.vocab_size as u32;
    let texts: Vec<Vec<u32>> = (0..2).map(|i| lcg(200 + i, 11, vocab)).collect();
    let mask: Vec<Vec<u32>> = texts.iter().map(|r| vec![1; r.len()]).collect();
    let eos = cfg.text_config.eos_token_id as u32;
    let (ids1, mask1) = pad_extra_bos_eos(&texts, &mask, None, Some(eos));
    let feats = |range: std::ops::Range<usize>| {
        let per = mels * frames;
        let v: Vec<f32> = f.f64[range.start * per..range.end * per]
            .iter()
            .map(|&x| x as f32)
            .collect();
        Tensor::<3>::from_data(TensorData::new(v, [range.len(), mels, frames]), &device())
    };
    for mode in [PrefillPositions::Tortoise, PrefillPositions::Hf523] {
        let gc = GenerationConfig {
            max_new_tokens: 10,
            prefill_positions: mode,
            repetition_penalty: 1.5,
            ..GenerationConfig::default()
        };
        let cond = m
            .conditioning_encoder
            .forward(feats(0..2), &ids1, Some(&mask1))
            .unwrap_or_else(|e| panic!("{e}"));
        let batched = generate(&m.speech_decoder_model, &cfg.decoder_config, cond, &gc)
            .unwrap_or_else(|e| panic!("{e}"));
        let vocab = cfg.decoder_config.vocab_size;
        for i in 0..2 {
            let cond = m
                .conditioning_encoder
                .forward(feats(i..i + 1), &ids1[i..=i], Some(&mask1[i..=i]))
                .unwrap_or_else(|e| panic!("{e}"));
            let single = generate(&m.speech_decoder_model, &cfg.decoder_config, cond, &gc)
                .unwrap_or_else(|e| panic!("{e}"));
            let want = &single.sequences[0];
            let got = &batched.sequences[i];
            // A finished row keeps the stop id while the other runs on: compare up to the single run's length.
            assert_eq!(
                &got[..want.len()],
                &want[..],
                "{mode:?}: row {i} ids batched vs alone"
            );
            for (s, step) in single.logits.iter().enumerate() {
                let b: Vec<f64> = batched.logits[s][i * vocab..(i + 1) * vocab]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect();
                let a: Vec<f64> = step.iter().map(|&x| f64::from(x)).collect();
                assert_close(&format!("{mode:?}: row {i} step {s} logits"), &b, &a);
            }
        }
    }
}
