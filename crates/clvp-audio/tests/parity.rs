//! Parity with transformers 5.23 `ClvpFeatureExtractor` on the committed fixtures in
//! `fixtures/audio/` (made by `xtask/python/ref_features.py`): every case, every failure reported.

use std::path::PathBuf;

use clvp_audio::{ClvpFeatureExtractor, MelNorm, MelScale, load_audio, mel_filter_bank};
use clvp_parity::{
    Recorder, compare, compare_ids, fixture_path, read_json, read_safetensors, tolerance,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    /// `tortoise` / `small` (a saved `preprocessor_config.json` in that folder) or `default`.
    config: String,
    /// One WAV per batch row.
    audio: Vec<String>,
    expected: String,
}

fn audio_dir() -> PathBuf {
    fixture_path("audio")
}

fn extractor(config: &str) -> Result<ClvpFeatureExtractor, String> {
    match config {
        "default" => Ok(ClvpFeatureExtractor::default()),
        name => ClvpFeatureExtractor::from_preprocessor_config(
            audio_dir().join(name).join("preprocessor_config.json"),
        )
        .map_err(|e| e.to_string()),
    }
}

/// Run one case; `Ok` carries the feature comparison.
fn run_case(case: &Case) -> Result<clvp_parity::Comparison, String> {
    let fe = extractor(&case.config)?;
    let mut clips = Vec::new();
    for file in &case.audio {
        let audio = load_audio(audio_dir().join(file)).map_err(|e| e.to_string())?;
        if audio.num_channels() != 1 {
            return Err(format!(
                "{file}: expected mono, got {} channels",
                audio.num_channels()
            ));
        }
        clips.push((audio.sample_rate, audio.into_mono()));
    }
    let rate = clips.first().map(|c| c.0);
    let refs: Vec<&[f32]> = clips.iter().map(|c| c.1.as_slice()).collect();
    let ours = fe.extract(&refs, rate).map_err(|e| e.to_string())?;

    let expected =
        read_safetensors(&audio_dir().join(&case.expected)).map_err(|e| e.to_string())?;
    let features = expected
        .get("input_features")
        .ok_or("no input_features tensor")?;
    if features.shape != ours.shape {
        return Err(format!(
            "shape: ours {:?}, reference {:?}",
            ours.shape, features.shape
        ));
    }
    let mut problems = Vec::new();
    let ours_f64: Vec<f64> = ours.input_features.iter().map(|&v| f64::from(v)).collect();
    let features_cmp = compare(&ours_f64, &features.f64, tolerance("features"));
    if !features_cmp.passed() {
        problems.push(features_cmp.report("input_features"));
    }
    // The sample-level mask is stored as per-row prefix lengths plus the row width.
    let lengths = expected
        .get("mask_lengths")
        .ok_or("no mask_lengths tensor")?;
    let width = expected.get("mask_width").ok_or("no mask_width tensor")?;
    let our_lengths: Vec<i64> = ours
        .attention_mask
        .chunks(ours.mask_shape[1])
        .map(|row| row.iter().map(|&v| i64::from(v)).sum())
        .collect();
    let prefix_ok = ours
        .attention_mask
        .chunks(ours.mask_shape[1])
        .zip(&our_lengths)
        .all(|(row, &n)| {
            let n = n as usize;
            row[..n].iter().all(|&v| v == 1) && row[n..].iter().all(|&v| v == 0)
        });
    let c = compare_ids(&our_lengths, &lengths.i64);
    if !c.passed() || !prefix_ok {
        problems.push(c.report("attention_mask lengths"));
    }
    if width.i64 != [ours.mask_shape[1] as i64] {
        problems.push(format!(
            "mask width: ours {}, reference {:?}",
            ours.mask_shape[1], width.i64
        ));
    }
    if problems.is_empty() {
        Ok(features_cmp)
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn features_match_hf_on_every_case() {
    let list: CaseFile = read_json(&audio_dir().join("features_cases.json")).unwrap();
    let mut rec = Recorder::new("features");
    for case in &list.cases {
        match run_case(case) {
            Ok(c) => rec.record(&case.name, &c),
            Err(e) => rec.record_error(&case.name, &e),
        }
    }
    rec.finish();
}

#[test]
fn mel_filter_bank_matches_hf() {
    let expected = read_safetensors(&audio_dir().join("mel_filters.safetensors")).unwrap();
    let reference = &expected["mel_filters"];
    assert_eq!(reference.shape, [513, 80]);
    let ours = mel_filter_bank(
        513,
        80,
        0.0,
        8000.0,
        22050,
        MelNorm::Slaney,
        MelScale::Htk,
        false,
    )
    .unwrap();
    let c = compare(&ours, &reference.f64, tolerance("mel_filters"));
    let mut rec = Recorder::new("features");
    rec.record("mel filter bank", &c);
    rec.finish();
    // The extractor's own bank is the same matrix.
    assert_eq!(ClvpFeatureExtractor::default().mel_filters().unwrap(), ours);
}

#[test]
fn embedded_tortoise_norms_equal_the_saved_config() {
    let saved = extractor("tortoise").unwrap();
    let embedded = ClvpFeatureExtractor::tortoise();
    assert_eq!(saved.mel_norms, embedded.mel_norms);
    assert_eq!(
        (
            saved.feature_size,
            saved.sampling_rate,
            saved.default_audio_length,
            saved.hop_length,
            saved.n_fft
        ),
        (80, 22050, 6, 256, 1024)
    );
}
