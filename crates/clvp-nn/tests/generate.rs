//! Greedy generation parity with transformers 5.23 on the tiny checkpoint (`xtask/python/ref_clvp_nn.py`):
//! `PrefillPositions::Hf523` against `ClvpModelForConditionalGeneration.generate` as it is, and
//! `PrefillPositions::Tortoise` against a reference loop that feeds the decoder explicit positions.
//! Ids must be identical; per-step logits, embeddings and `logits_per_text` within `tolerance("nn")`.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::{
    GenerationConfig, LoadedClvp, PrefillPositions, fix_speech_decoder_output, generate,
    pad_extra_bos_eos,
};
use clvp_parity::{
    FixtureTensor, Recorder, compare, compare_ids, fixture_path, read_safetensors, tolerance,
};

fn device() -> Device {
    Device::flex()
}

fn rows(t: &FixtureTensor) -> Vec<Vec<u32>> {
    t.i64
        .chunks(t.shape[1])
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect()
}

fn flat_ids(rows: &[Vec<u32>]) -> Vec<i64> {
    rows.iter().flatten().map(|&v| v as i64).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn greedy_generation_matches_transformers() {
    let dir = fixture_path("clvp/tiny");
    let ckpt = Checkpoint::local(&dir).unwrap_or_else(|e| panic!("{e}"));
    let loaded = LoadedClvp::from_checkpoint(&ckpt, &device()).unwrap_or_else(|e| panic!("{e}"));
    let m = &loaded.model;
    let cfg = &loaded.config;
    let t: HashMap<String, FixtureTensor> =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors"))
            .unwrap_or_else(|e| panic!("{e}"));
    let get = |k: &str| {
        t.get(k)
            .unwrap_or_else(|| panic!("fixture tensor {k} missing"))
    };
    let tol = tolerance("nn");
    let mut rec = Recorder::new("generate");

    let ids = rows(get("gen.input_ids"));
    let mask = rows(get("gen.attention_mask"));
    let f = get("gen.features");
    let feats: Vec<f32> = f.f64.iter().map(|&v| v as f32).collect();
    let feats = Tensor::<3>::from_data(
        TensorData::new(feats, [f.shape[0], f.shape[1], f.shape[2]]),
        &device(),
    );

    // generate(): one EOS appended to the text (the conditioning encoder adds BOS and a second EOS).
    let eos = cfg.text_config.eos_token_id as u32;
    let (ids1, mask1) = pad_extra_bos_eos(&ids, &mask, None, Some(eos));
    let cond = m
        .conditioning_encoder
        .forward(feats, &ids1, Some(&mask1))
        .unwrap_or_else(|e| panic!("{e}"));
    let steps = get("gen_hf523.logits").shape[1];

    for (mode, key) in [
        (PrefillPositions::Hf523, "gen_hf523"),
        (PrefillPositions::Tortoise, "gen_tortoise"),
    ] {
        let gc = GenerationConfig {
            max_new_tokens: steps,
            prefill_positions: mode,
            ..GenerationConfig::default()
        };
        let out = generate(
            &m.speech_decoder_model,
            &cfg.decoder_config,
            cond.clone(),
            &gc,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want = get(&format!("{key}.sequences"));
        rec.record(
            &format!("{key}.sequences"),
            &compare_ids(&flat_ids(&out.sequences), &want.i64),
        );
        let logits: Vec<f64> = {
            // ours: per step [N * vocab]; reference: [N, steps, vocab]
            let n = out.sequences.len();
            let vocab = cfg.decoder_config.vocab_size;
            let mut v = vec![f64::NAN; n * out.logits.len() * vocab];
            for (s, step) in out.logits.iter().enumerate() {
                for (r, row) in step.chunks(vocab).enumerate() {
                    for (j, &x) in row.iter().enumerate() {
                        v[(r * out.logits.len() + s) * vocab + j] = x as f64;
                    }
                }
            }
            v
        };
        rec.record(
            &format!("{key}.logits"),
            &compare(&logits, &get(&format!("{key}.logits")).f64, tol),
        );
        let stop = cfg.decoder_config.eos_token_id as u32;
        let codes = fix_speech_decoder_output(
            &out.sequences,
            stop,
            &cfg.decoder_config.decoder_fixing_codes,
        );
        rec.record(
            &format!("{key}.speech_ids"),
            &compare_ids(&flat_ids(&codes), &get(&format!("{key}.speech_ids")).i64),
        );

        if mode == PrefillPositions::Hf523 {
            // The rest of generate(): speech encoder on the fixed codes (no mask), text encoder on ids1/mask1,
            // the similarity head.
            let n = codes.len();
            let width = codes[0].len();
            let codes_t = Tensor::<2, Int>::from_data(
                TensorData::new(flat_ids(&codes), [n, width]),
                &device(),
            );
            let speech = values(m.speech_encoder_model.forward(codes_t, None).embeds);
            let tw = ids1[0].len();
            let ids_t = Tensor::<2, Int>::from_data(
                TensorData::new(flat_ids(&ids1), [ids1.len(), tw]),
                &device(),
            );
            let text = values(m.text_encoder_model.forward(ids_t, Some(&mask1)).embeds);
            let dim = cfg.text_config.projection_dim;
            let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let lpt =
                clvp_rank::logits_per_text(&to32(&text), &to32(&speech), dim, loaded.logit_scale)
                    .unwrap_or_else(|e| panic!("{e}"));
            let norm = |v: &[f64]| {
                clvp_rank::normalize(&to32(v), dim)
                    .unwrap_or_default()
                    .into_iter()
                    .map(f64::from)
                    .collect::<Vec<_>>()
            };
            rec.record(
                "gen_hf523.text_embeds",
                &compare(&norm(&text), &get("gen_hf523.text_embeds").f64, tol),
            );
            rec.record(
                "gen_hf523.speech_embeds",
                &compare(&norm(&speech), &get("gen_hf523.speech_embeds").f64, tol),
            );
            let lpt: Vec<f64> = lpt.into_iter().map(f64::from).collect();
            rec.record(
                "gen_hf523.logits_per_text",
                &compare(&lpt, &get("gen_hf523.logits_per_text").f64, tol),
            );
        }
    }
    rec.finish();
}
