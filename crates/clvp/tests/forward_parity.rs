//! `Clvp::forward` against `ClvpModelForConditionalGeneration.forward` (transformers 5.23) on the tiny
//! checkpoint (`forward.*`: 2 padded texts × 2 clips; `forward_broadcast.*`: 1 text × 2 clips), and
//! `Clvp::get_speech_features_generated` against the generate path of `get_speech_features` rebuilt from HF's
//! pieces (`speech_features_gen.*`; HF's own call fails on it). Ids identical, floats within `tolerance("nn")`.

use std::collections::HashMap;

use clvp::audio::Features;
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

#[test]
fn forward_and_generated_speech_features_match_transformers() {
    let dir = fixture_path("clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    let clvp =
        Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"));
    let t: HashMap<String, FixtureTensor> =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors"))
            .unwrap_or_else(|e| panic!("{e}"));
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
