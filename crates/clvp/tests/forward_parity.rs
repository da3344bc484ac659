//! `Clvp::forward` against `ClvpModelForConditionalGeneration.forward` (transformers 5.23) on the tiny
//! checkpoint (`forward.*`: 2 padded texts × 2 clips; `forward_broadcast.*`: 1 text × 2 clips), and
//! `Clvp::get_speech_features_generated` against the generate path of `get_speech_features` rebuilt from HF's
//! pieces (`speech_features_gen.*`; HF's own call fails on it). Ids identical, floats within `tolerance("nn")`.

use std::collections::HashMap;

use clvp::raw::audio::Features;
use clvp::{Clvp, GenerationConfig};
use clvp_parity::{
    FixtureTensor, Recorder, compare, compare_ids, fixture_path, read_safetensors, tolerance,
};

fn rows(t: &FixtureTensor) -> Vec<Vec<u32>> {
    t.i64
        .chunks(t.shape[1])
        .map(|r| r.iter().map(|&v| v as u32).collect())
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn flat(rows: &[Vec<u32>]) -> Vec<i64> {
    rows.iter().flatten().map(|&v| i64::from(v)).collect()
}

/// The tiny checkpoint and its reference tensors.
fn tiny() -> (Clvp, HashMap<String, FixtureTensor>) {
    let dir = fixture_path("clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    let clvp =
        Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"));
    let t = read_safetensors(&fixture_path("clvp/tiny.cases.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    (clvp, t)
}

#[test]
fn forward_and_generated_speech_features_match_transformers() {
    let (clvp, t) = tiny();
    let get = |k: &str| {
        t.get(k)
            .unwrap_or_else(|| panic!("fixture tensor {k} missing"))
    };
    let tol = tolerance("nn");
    let mut rec = Recorder::new("facade");

    let ids = rows(get("gen.input_ids"));
    let mask = rows(get("gen.attention_mask"));
    let f = get("gen.features");
    let features = Features {
        input_features: f.f64.iter().map(|&v| v as f32).collect(),
        shape: [f.shape[0], f.shape[1], f.shape[2]],
        attention_mask: Vec::new(),
        mask_shape: [0, 0],
    };
    for (key, n_text) in [("forward", ids.len()), ("forward_broadcast", 1)] {
        let out = clvp
            .forward(&ids[..n_text], Some(&mask[..n_text]), &features)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        rec.record(
            &format!("{key}.speech_ids"),
            &compare_ids(
                &flat(&out.speech_ids),
                &get(&format!("{key}.speech_ids")).i64,
            ),
        );
        for (name, ours) in [
            ("logits_per_text", &out.logits_per_text),
            ("logits_per_speech", &out.logits_per_speech),
            ("text_embeds", &out.text_embeds.values),
            ("speech_embeds", &out.speech_embeds.values),
            ("text_model_output", &out.text_model_output.values),
            ("speech_model_output", &out.speech_model_output.values),
        ] {
            let k = format!("{key}.{name}");
            rec.record(&k, &compare(&f64s(ours), &get(&k).f64, tol));
        }
    }

    let steps = 12; // GEN_STEPS of the reference script
    let gc = GenerationConfig {
        max_new_tokens: steps,
        prefill_positions: clvp::PrefillPositions::Hf523,
        ..GenerationConfig::default()
    };
    let (embeds, codes) = clvp
        .get_speech_features_generated(&ids, Some(&mask), &features, &gc)
        .unwrap_or_else(|e| panic!("{e}"));
    rec.record(
        "speech_features_gen.speech_ids",
        &compare_ids(&flat(&codes), &get("speech_features_gen.speech_ids").i64),
    );
    rec.record(
        "speech_features_gen.embeds",
        &compare(
            &f64s(&embeds.values),
            &get("speech_features_gen.embeds").f64,
            tol,
        ),
    );
    rec.finish();
}

/// `generate(input_ids, input_features)` on the processor's tensors (the tokenizer's ids of the e2e text, the
/// extractor's log-mels of `speech_mid.wav`), as the Python binding's transformers form calls it: greedy in both
/// prefill modes and beam search, against `e2e_*` of ref_clvp_nn.py (transformers' own `generate`).
#[test]
fn generate_from_inputs_matches_transformers_generate() {
    let (clvp, t) = tiny();
    let get = |k: &str| {
        t.get(k)
            .unwrap_or_else(|| panic!("fixture tensor {k} missing"))
    };
    // The committed clip the reference script reads (E2E_VOICE), whatever CLVP_FIXTURES names.
    let voice = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio/speech_mid.wav");
    let processor = clvp::ClvpProcessor::tortoise().unwrap_or_else(|e| panic!("{e}"));
    let clip = processor
        .load_voice(&voice)
        .unwrap_or_else(|e| panic!("{e}"));
    let fe = &processor.feature_extractor;
    let features = fe
        .extract(&[&clip], Some(fe.sampling_rate))
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = processor
        .tokenizer
        .encode("Hello world, this is a test.")
        .unwrap_or_else(|e| panic!("{e}"));
    let tol = tolerance("nn");
    let mut rec = Recorder::new("facade");
    let greedy = GenerationConfig {
        max_new_tokens: 12, // GEN_STEPS
        ..GenerationConfig::default()
    };
    let beams = GenerationConfig {
        num_beams: 3,
        num_return_sequences: 2,
        prefill_positions: clvp::PrefillPositions::Hf523,
        ..greedy.clone()
    };
    let cases = [
        (
            "e2e_hf523.",
            GenerationConfig {
                prefill_positions: clvp::PrefillPositions::Hf523,
                ..greedy.clone()
            },
        ),
        ("e2e_tortoise.", greedy.clone()),
        ("e2e_beam.", beams.clone()),
        (
            "e2e_beam.pad_",
            GenerationConfig {
                pad_to_max_mel_tokens: Some(16),
                ..beams
            },
        ),
    ];
    for (key, gc) in cases {
        let out = clvp
            .generate_from_inputs(&ids, &features, &gc, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        rec.record(
            &format!("generate_from_inputs {key}speech_ids"),
            &compare_ids(
                &flat(&out.speech_ids),
                &get(&format!("{key}speech_ids")).i64,
            ),
        );
        rec.record(
            &format!("generate_from_inputs {key}logits_per_text"),
            &compare(
                &f64s(&out.logits_per_text),
                &get(&format!("{key}logits_per_text")).f64,
                tol,
            ),
        );
    }
    // Errors before any work: an empty text, an id outside the vocabulary.
    let err = |ids: &[u32]| {
        clvp.generate_from_inputs(ids, &features, &greedy, &mut |_, _| {})
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(
        err(&[]).is_err_and(|e| e.contains("no tokens")),
        "{:?}",
        err(&[])
    );
    let vocab = clvp.raw().config.text_config.vocab_size as u32;
    assert!(
        err(&[vocab]).is_err_and(|e| e.contains("text token")),
        "{:?}",
        err(&[vocab])
    );
    rec.finish();
}

#[test]
fn forward_rejects_bad_input_naming_the_problem() {
    let dir = fixture_path("clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    let clvp =
        Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"));
    let cfg = &clvp.raw().config;
    let mels = cfg.decoder_config.feature_size;
    let feats = |mels: usize, values: usize| Features {
        input_features: vec![0.5; values],
        shape: [1, mels, 20],
        attention_mask: Vec::new(),
        mask_shape: [0, 0],
    };
    let good = feats(mels, mels * 20);
    let ids = vec![vec![5u32, 6, 7]];
    let long = vec![vec![5u32; cfg.decoder_config.max_text_tokens]];
    let vocab = cfg.text_config.vocab_size as u32;
    /// name, input_ids, attention_mask, input_features, expected part of the message
    type Case = (
        &'static str,
        Vec<Vec<u32>>,
        Option<Vec<Vec<u32>>>,
        Features,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "no text",
            vec![],
            None,
            good.clone(),
            "no text tokens given",
        ),
        (
            "ragged ids",
            vec![vec![5, 6], vec![5]],
            None,
            good.clone(),
            "different lengths",
        ),
        (
            "mask shape",
            ids.clone(),
            Some(vec![vec![1, 1]]),
            good.clone(),
            "attention_mask is 1×2, input_ids 1×3",
        ),
        ("text too long", long, None, good.clone(), "max_text_tokens"),
        (
            "token out of range",
            vec![vec![5, vocab]],
            None,
            good.clone(),
            "text token",
        ),
        (
            "mel channels",
            ids.clone(),
            None,
            feats(mels + 1, (mels + 1) * 20),
            "mel channels",
        ),
        (
            "feature count",
            ids.clone(),
            None,
            feats(mels, 7),
            "input_features hold 7 values",
        ),
    ];
    for (name, ids, mask, f, want) in cases {
        let err = clvp
            .forward(&ids, mask.as_deref(), &f)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(err.to_string().contains(want), "{name}: {err}");
        let err = clvp
            .get_speech_features_generated(&ids, mask.as_deref(), &f, &GenerationConfig::default())
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted by the generate path"));
        assert!(
            err.to_string().contains(want),
            "{name} (generate path): {err}"
        );
    }
}
