//! Greedy generation parity with transformers 5.23 on the tiny checkpoint (`xtask/python/ref_clvp_nn.py`):
//! `PrefillPositions::Hf523` against `ClvpModelForConditionalGeneration.generate` as it is, and
//! `PrefillPositions::Tortoise` against a reference loop that feeds the decoder explicit positions.
//! Ids must be identical; per-step logits, embeddings and `logits_per_text` within `tolerance("nn")`.
//! Beam search (`gen_beam*`): sequences identical, `sequences_scores`, per-step logits of the running beams,
//! embeddings and `logits_per_text` (also with `pad_to_max_mel_tokens`) within `tolerance("nn")`.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::{
    EarlyStopping, GenerationConfig, LoadedClvp, PrefillPositions, fix_speech_decoder_output,
    generate, pad_extra_bos_eos, pad_to_max_mel_tokens,
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

/// `[rows][steps][vocab]` in the reference's order from our per-step `[rows * vocab]`.
fn per_step(steps: &[Vec<f32>], vocab: usize) -> Vec<f64> {
    let rows = steps.first().map_or(0, |s| s.len() / vocab);
    let mut v = vec![f64::NAN; rows * steps.len() * vocab];
    for (s, step) in steps.iter().enumerate() {
        for (r, row) in step.chunks(vocab).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                v[(r * steps.len() + s) * vocab + j] = f64::from(x);
            }
        }
    }
    v
}

/// The beam cases of `ref_clvp_nn.py` (`BEAM_CASES`): name, clips used, the decoding settings.
fn beam_cases() -> Vec<(&'static str, usize, GenerationConfig)> {
    let base = GenerationConfig {
        prefill_positions: PrefillPositions::Hf523,
        ..GenerationConfig::default()
    };
    vec![
        (
            "gen_beam",
            1,
            GenerationConfig {
                max_new_tokens: 10,
                num_beams: 3,
                num_return_sequences: 2,
                length_penalty: 1.0,
                early_stopping: EarlyStopping::False,
                pad_to_max_mel_tokens: Some(16),
                ..base.clone()
            },
        ),
        (
            "gen_beam4",
            2,
            GenerationConfig {
                max_new_tokens: 12,
                num_beams: 4,
                num_return_sequences: 4,
                length_penalty: 1.3,
                early_stopping: EarlyStopping::True,
                pad_to_max_mel_tokens: Some(8),
                ..base.clone()
            },
        ),
        (
            "gen_beam_never",
            2,
            GenerationConfig {
                max_new_tokens: 16,
                num_beams: 3,
                num_return_sequences: 3,
                length_penalty: 0.7,
                early_stopping: EarlyStopping::Never,
                repetition_penalty: 1.3,
                min_new_tokens: 2,
                ..base
            },
        ),
    ]
}

#[test]
fn beam_search_matches_transformers() {
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
    let mut rec = Recorder::new("clvp-nn");
    let vocab = cfg.decoder_config.vocab_size;
    let stop = cfg.decoder_config.eos_token_id as u32;
    let fixing = &cfg.decoder_config.decoder_fixing_codes;
    let dim = cfg.text_config.projection_dim;

    let ids = rows(get("gen.input_ids"));
    let mask = rows(get("gen.attention_mask"));
    let f = get("gen.features");
    let eos = cfg.text_config.eos_token_id as u32;
    let (ids1, mask1) = pad_extra_bos_eos(&ids, &mask, None, Some(eos));
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();

    // The text side of generate(): the text encoder on ids1/mask1.
    let tw = ids1[0].len();
    let ids_t = Tensor::<2, Int>::from_data(
        TensorData::new(flat_ids(&ids1), [ids1.len(), tw]),
        &device(),
    );
    let text = to32(&values(
        m.text_encoder_model.forward(ids_t, Some(&mask1)).embeds,
    ));
    let text_n: Vec<f64> = clvp_rank::normalize(&text, dim)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(f64::from)
        .collect();

    // The speech side on fixed codes and the similarity head.
    let head = |codes: &[Vec<u32>]| -> (Vec<f64>, Vec<f64>) {
        let n = codes.len();
        let width = codes[0].len();
        let codes_t =
            Tensor::<2, Int>::from_data(TensorData::new(flat_ids(codes), [n, width]), &device());
        let speech = to32(&values(
            m.speech_encoder_model.forward(codes_t, None).embeds,
        ));
        let lpt = clvp_rank::logits_per_text(&text, &speech, dim, loaded.logit_scale)
            .unwrap_or_else(|e| panic!("{e}"));
        let speech_n = clvp_rank::normalize(&speech, dim).unwrap_or_else(|e| panic!("{e}"));
        (
            speech_n.into_iter().map(f64::from).collect(),
            lpt.into_iter().map(f64::from).collect(),
        )
    };

    for (key, clips, gc) in beam_cases() {
        let per_clip = f.shape[1] * f.shape[2];
        let feats: Vec<f32> = f.f64[..clips * per_clip]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let feats = Tensor::<3>::from_data(
            TensorData::new(feats, [clips, f.shape[1], f.shape[2]]),
            &device(),
        );
        let cond = m
            .conditioning_encoder
            .forward(feats, &ids1, Some(&mask1))
            .unwrap_or_else(|e| panic!("{e}"));
        let out = generate(&m.speech_decoder_model, &cfg.decoder_config, cond, &gc)
            .unwrap_or_else(|e| panic!("{key}: {e}"));

        let want = get(&format!("{key}.sequences"));
        assert_eq!(
            [out.sequences.len(), out.sequences[0].len()],
            [want.shape[0], want.shape[1]],
            "{key}: sequences shape"
        );
        rec.record(
            &format!("{key}.sequences"),
            &compare_ids(&flat_ids(&out.sequences), &want.i64),
        );
        let scores: Vec<f64> = out
            .sequences_scores
            .as_deref()
            .unwrap_or_else(|| panic!("{key}: beam search returns sequences_scores"))
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        rec.record(
            &format!("{key}.sequences_scores"),
            &compare(&scores, &get(&format!("{key}.sequences_scores")).f64, tol),
        );
        // Per-step raw logits of the running beams: the same number of steps, the same beams in the same order.
        let want_logits = get(&format!("{key}.logits"));
        assert_eq!(
            out.logits.len(),
            want_logits.shape[1],
            "{key}: decoding steps"
        );
        rec.record(
            &format!("{key}.logits"),
            &compare(&per_step(&out.logits, vocab), &want_logits.f64, tol),
        );

        let codes = fix_speech_decoder_output(&out.sequences, stop, fixing);
        rec.record(
            &format!("{key}.speech_ids"),
            &compare_ids(&flat_ids(&codes), &get(&format!("{key}.speech_ids")).i64),
        );
        let (speech_n, lpt) = head(&codes);
        rec.record(
            &format!("{key}.text_embeds"),
            &compare(&text_n, &get(&format!("{key}.text_embeds")).f64, tol),
        );
        rec.record(
            &format!("{key}.speech_embeds"),
            &compare(&speech_n, &get(&format!("{key}.speech_embeds")).f64, tol),
        );
        rec.record(
            &format!("{key}.logits_per_text"),
            &compare(&lpt, &get(&format!("{key}.logits_per_text")).f64, tol),
        );

        if let Some(p) = gc.pad_to_max_mel_tokens {
            assert_eq!(
                get(&format!("{key}.pad_to_max_mel_tokens")).i64,
                vec![p as i64],
                "{key}: pad_to_max_mel_tokens"
            );
            let padded = pad_to_max_mel_tokens(&out.sequences, p, stop);
            let codes = fix_speech_decoder_output(&padded, stop, fixing);
            let want = get(&format!("{key}.pad_speech_ids"));
            assert_eq!(codes[0].len(), want.shape[1], "{key}: padded width");
            rec.record(
                &format!("{key}.pad_speech_ids"),
                &compare_ids(&flat_ids(&codes), &want.i64),
            );
            let (_, lpt) = head(&codes);
            rec.record(
                &format!("{key}.pad_logits_per_text"),
                &compare(&lpt, &get(&format!("{key}.pad_logits_per_text")).f64, tol),
            );
        }
    }
    rec.finish();
}

#[test]
fn generation_config_is_validated() {
    let ok = GenerationConfig::default();
    assert!(ok.validate().is_ok());
    let bad = [
        GenerationConfig {
            num_beams: 0,
            ..ok.clone()
        },
        GenerationConfig {
            num_beams: 2,
            num_return_sequences: 3,
            ..ok.clone()
        },
        GenerationConfig {
            num_beams: 2,
            do_sample: true,
            ..ok.clone()
        },
        GenerationConfig {
            num_return_sequences: 2,
            ..ok.clone()
        },
        GenerationConfig {
            num_return_sequences: 0,
            ..ok.clone()
        },
        GenerationConfig {
            max_new_tokens: 0,
            ..ok.clone()
        },
        GenerationConfig {
            pad_to_max_mel_tokens: Some(1),
            ..ok.clone()
        },
        GenerationConfig {
            length_penalty: f64::NAN,
            num_beams: 2,
            ..ok.clone()
        },
        GenerationConfig {
            do_sample: true,
            temperature: 0.0,
            ..ok.clone()
        },
    ];
    for gc in bad {
        let e = gc.validate().err();
        assert!(
            matches!(e, Some(clvp_nn::NnError::Generation(_))),
            "{gc:?} must be rejected"
        );
    }
    // Sampling with several return sequences, and beams with as many return sequences, are fine.
    for gc in [
        GenerationConfig {
            do_sample: true,
            num_return_sequences: 4,
            ..ok.clone()
        },
        GenerationConfig {
            num_beams: 4,
            num_return_sequences: 4,
            ..ok.clone()
        },
    ] {
        assert!(gc.validate().is_ok(), "{gc:?}");
    }
    assert_eq!(
        "never".parse::<EarlyStopping>().ok(),
        Some(EarlyStopping::Never)
    );
    assert!("sometimes".parse::<EarlyStopping>().is_err());
}
