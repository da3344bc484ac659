//! End-to-end tests of the `clvp` binary on the committed fixtures.

mod run;

use std::path::Path;
use std::process::Output;

use clvp_parity::{Recorder, compare, fixture_path, read_json, read_safetensors, tolerance};
use run::{clvp, stderr};

#[derive(serde::Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn tokenize_json_matches_reference() {
    let cases: Cases =
        read_json(&fixture_path("text/tokenizer_cases.json")).expect("tokenizer fixture");
    let picked: Vec<&Case> = cases
        .cases
        .iter()
        .filter(|c| !c.text.contains('\n'))
        .take(25)
        .collect();
    let mut args = vec!["tokenize", "--json"];
    for c in &picked {
        args.push("--text");
        args.push(&c.text);
    }
    let out = clvp(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), picked.len());
    let mut rec = Recorder::new("cli-tokenize");
    for (line, case) in lines.iter().zip(&picked) {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["text"], case.text.as_str());
        let ids: Vec<i64> = v["input_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(|x| x.as_i64())
            .collect();
        let want: Vec<i64> = case.ids.iter().map(|&i| i as i64).collect();
        rec.record(&case.text, &clvp_parity::compare_ids(&ids, &want));
    }
    rec.finish();
}

#[test]
fn tokenize_text_file_plain_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "Hello world\nThis is an example text.\n").expect("write");
    let out = clvp(&[
        "tokenize",
        "--text-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 2);
    assert!(
        stdout
            .lines()
            .all(|l| l.split(' ').all(|t| t.parse::<u32>().is_ok())),
        "{stdout}"
    );
}

#[test]
fn tokenize_without_text_is_an_error() {
    let out = clvp(&["tokenize"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing to tokenize"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn features_match_reference_and_png_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("f.safetensors");
    let out_png = dir.path().join("f.png");
    let wav = fixture_path("audio/speech_mid.wav");
    let out = clvp(&[
        "features",
        "--audio",
        wav.to_str().expect("utf-8 path"),
        "--output",
        out_st.to_str().expect("utf-8 path"),
        "--png",
        out_png.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = read_safetensors(&out_st).expect("our output");
    let want = read_safetensors(&fixture_path("audio/speech_mid.expected.safetensors"))
        .expect("reference");
    let (o, w) = (&ours["input_features"], &want["input_features"]);
    assert_eq!(o.shape, vec![1, 80, 517]);
    let c = compare(&o.f64, &w.f64, tolerance("features"));
    assert!(c.passed(), "{}", c.report("clvp features speech_mid"));
    let png = std::fs::read(&out_png).expect("png written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "suspiciously small PNG: {} bytes",
        png.len()
    );
}

#[test]
fn features_resamples_other_rates() {
    // The 4 kHz fixture clip goes through the resampler to 22050 Hz.
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("f.safetensors");
    let wav = fixture_path("audio/small_config.wav");
    let out = clvp(&[
        "features",
        "--audio",
        wav.to_str().expect("path"),
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = read_safetensors(&out_st).expect("our output");
    let f = &ours["input_features"];
    assert_eq!(f.shape, vec![1, 80, 517]);
    assert!(f.f64.iter().all(|v| v.is_finite()));
}

#[test]
fn features_of_a_missing_file_names_it_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("f.safetensors");
    let missing = dir.path().join("no-such-voice.wav");
    let out = clvp(&[
        "features",
        "--audio",
        missing.to_str().expect("path"),
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no-such-voice.wav"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&out_st).exists(), "no output may be left behind");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no temporary files left behind"
    );
}

#[test]
fn features_of_garbage_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("noise.wav");
    std::fs::write(&bad, b"this is not audio at all, just bytes").expect("write");
    let out_st = dir.path().join("f.safetensors");
    let out = clvp(&[
        "features",
        "--audio",
        bad.to_str().expect("path"),
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("noise.wav"), "{}", stderr(&out));
    assert!(!out_st.exists());
}

fn tiny_model() -> String {
    fixture_path("clvp/tiny")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// `clvp generate --model <tiny> --text TEXT --voice VOICE EXTRA...`.
fn generate(text: &str, voice: &str, extra: &[&str]) -> Output {
    let model = tiny_model();
    let mut args = vec![
        "generate", "--model", &model, "--text", text, "--voice", voice,
    ];
    args.extend_from_slice(extra);
    clvp(&args)
}

/// The bench clip every generate test conditions on.
fn voice_path() -> String {
    fixture_path("audio/speech_mid.wav")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

#[test]
fn embed_text_matches_get_text_features() {
    let cases =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).expect("clvp fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("t.safetensors");
    // The text the reference script encoded for `text_single` (xtask/python/ref_clvp_nn.py).
    let out = clvp(&[
        "embed-text",
        "--model",
        &tiny_model(),
        "--text",
        "Hello world, this is a test.",
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = read_safetensors(&out_st).expect("our output");
    let (o, w) = (&ours["text_embeds"], &cases["text_single.embeds"]);
    assert_eq!(o.shape, w.shape);
    let c = compare(&o.f64, &w.f64, tolerance("nn"));
    assert!(c.passed(), "{}", c.report("embed-text"));
}

#[test]
fn embed_speech_matches_get_speech_features() {
    let cases =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).expect("clvp fixture");
    let codes = &cases["inputs.speech_codes"];
    let width = codes.shape[1];
    let row0: Vec<String> = codes.i64[..width].iter().map(|c| c.to_string()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("s.safetensors");
    let joined = row0.join(",");
    let out = clvp(&[
        "embed-speech",
        "--model",
        &tiny_model(),
        "--codes",
        &joined,
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = read_safetensors(&out_st).expect("our output");
    let want = &cases["speech_codes.embeds"];
    let dim = want.shape[1];
    let c = compare(
        &ours["speech_embeds"].f64,
        &want.f64[..dim],
        tolerance("nn"),
    );
    assert!(c.passed(), "{}", c.report("embed-speech"));
}

#[test]
fn embed_speech_rejects_codes_outside_the_vocabulary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("s.safetensors");
    let out = clvp(&[
        "embed-speech",
        "--model",
        &tiny_model(),
        "--codes",
        "5,9,99999",
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("99999") && err.contains("0..260"), "{err}");
    assert!(!out_st.exists());
    let out = clvp(&[
        "embed-speech",
        "--model",
        &tiny_model(),
        "--codes",
        "5,x",
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"x\""), "{}", stderr(&out));
}

#[test]
fn model_commands_name_a_missing_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_st = dir.path().join("s.safetensors");
    let missing = dir.path().join("no-model-here");
    let out = clvp(&[
        "embed-text",
        "--model",
        missing.to_str().expect("path"),
        "--text",
        "hi",
        "--output",
        out_st.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-model-here"), "{}", stderr(&out));
}

/// `clvp generate` end to end (tokenizer, extractor on a real clip, conditioning, greedy generation, fix-up,
/// encoders, similarity) against `e2e_*` of `xtask/python/ref_clvp_nn.py`, in both prefill modes.
#[test]
fn generate_greedy_matches_transformers_end_to_end() {
    let cases =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).expect("clvp fixture");
    let mut rec = Recorder::new("cli-generate");
    for mode in ["hf523", "tortoise"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_st = dir.path().join("g.safetensors");
        let out = generate(
            "Hello world, this is a test.",
            &voice_path(),
            &[
                "--greedy",
                "--max-new-tokens",
                "12",
                "--prefill-positions",
                mode,
                "--json",
                "--output",
                out_st.to_str().expect("path"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let ours = read_safetensors(&out_st).expect("our output");
        let want_ids = &cases[&format!("e2e_{mode}.speech_ids")];
        assert_eq!(
            ours["speech_ids"].shape, want_ids.shape,
            "{mode}: speech_ids shape"
        );
        rec.record(
            &format!("{mode} speech_ids"),
            &clvp_parity::compare_ids(&ours["speech_ids"].i64, &want_ids.i64),
        );
        let want = &cases[&format!("e2e_{mode}.logits_per_text")];
        rec.record(
            &format!("{mode} logits_per_text"),
            &compare(&ours["logits_per_text"].f64, &want.f64, tolerance("nn")),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["ranking"].as_array().map(Vec::len), Some(1));
    }
    rec.finish();
}

/// `--decoder-weights bf16` and `int8` decode the same number of codes through their host kernels (their
/// logits against the reference are checked by `clvp-nn`'s parity rows `@bf16` and `@int8`; greedy ids may
/// part from f32 where two logits are within the weights' rounding, so they are not compared here).
#[test]
fn generate_with_bf16_and_int8_decoder_weights() {
    for weights in ["bf16", "int8"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_st = dir.path().join("g.safetensors");
        let out = generate(
            "Hello world, this is a test.",
            &voice_path(),
            &[
                "--greedy",
                "--max-new-tokens",
                "12",
                "--decoder-weights",
                weights,
                "--output",
                out_st.to_str().expect("path"),
            ],
        );
        assert!(out.status.success(), "{weights}: {}", stderr(&out));
        let ours = read_safetensors(&out_st).expect("our output");
        assert_eq!(ours["speech_ids"].shape.len(), 2, "{weights}");
        assert_eq!(ours["speech_ids"].shape[0], 1, "{weights}");
        assert!(
            ours["logits_per_text"].f64.iter().all(|v| v.is_finite()),
            "{weights}"
        );
    }
}

/// `clvp generate --beams 3 --candidates 2` end to end against transformers 5.23's
/// `generate(num_beams=3, num_return_sequences=2)`, without and with `--pad-to-max-mel-tokens 16`.
#[test]
fn generate_beam_search_matches_transformers_end_to_end() {
    let cases =
        read_safetensors(&fixture_path("clvp/tiny.cases.safetensors")).expect("clvp fixture");
    let mut rec = Recorder::new("cli-generate");
    for (pad, key) in [(None, "e2e_beam."), (Some("16"), "e2e_beam.pad_")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_st = dir.path().join("g.safetensors");
        let mut args = vec![
            "--beams",
            "3",
            "--candidates",
            "2",
            "--max-new-tokens",
            "12",
            "--prefill-positions",
            "hf523",
            "--json",
            "--output",
            out_st.to_str().expect("path"),
        ];
        if let Some(p) = pad {
            args.extend(["--pad-to-max-mel-tokens", p]);
        }
        let out = generate("Hello world, this is a test.", &voice_path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let ours = read_safetensors(&out_st).expect("our output");
        let want_ids = &cases[&format!("{key}speech_ids")];
        assert_eq!(
            ours["speech_ids"].shape, want_ids.shape,
            "{key}: speech_ids shape"
        );
        rec.record(
            &format!("{key}speech_ids"),
            &clvp_parity::compare_ids(&ours["speech_ids"].i64, &want_ids.i64),
        );
        let want = &cases[&format!("{key}logits_per_text")];
        rec.record(
            &format!("{key}logits_per_text"),
            &compare(&ours["logits_per_text"].f64, &want.f64, tolerance("nn")),
        );
        assert_eq!(ours["sequences_scores"].shape, vec![2]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        let ranking = v["ranking"].as_array().expect("ranking");
        assert_eq!(ranking.len(), 2);
        assert!(ranking.iter().all(|r| r["beam_score"].is_number()));
    }
    rec.finish();

    // Beam options that cannot work are refused before anything is loaded.
    for bad in [
        vec!["--beams", "2", "--candidates", "3"],
        vec!["--beams", "2", "--greedy"],
        vec!["--beams", "2", "--seed", "1"],
        vec!["--beams", "0"],
        vec!["--greedy", "--candidates", "2"],
        vec!["--length-penalty", "0.5"],
        vec!["--pad-to-max-mel-tokens", "1"],
    ] {
        let out = generate("Hi.", &voice_path(), &bad);
        assert!(!out.status.success(), "{bad:?} must fail");
        assert!(!stderr(&out).is_empty(), "{bad:?}: an error message");
    }
}

#[test]
fn generate_samples_deterministically_and_rejects_bad_input() {
    let run = |seed: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_st = dir.path().join("g.safetensors");
        let out = generate(
            "Hi there.",
            &voice_path(),
            &[
                "--candidates",
                "3",
                "--max-new-tokens",
                "8",
                "--seed",
                seed,
                "--output",
                out_st.to_str().expect("path"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        read_safetensors(&out_st).expect("output")["speech_ids"]
            .i64
            .clone()
    };
    assert_eq!(run("7"), run("7"), "same seed, same candidates");
    // A text over the token limit, a missing voice, no voice at all.
    let long = "word ".repeat(200);
    let out = generate(&long, &voice_path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("over the limit"), "{}", stderr(&out));
    let out = generate("hi", "/no/such/voice.wav", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("voice.wav"), "{}", stderr(&out));
    let out = clvp(&["generate", "--model", &tiny_model(), "--text", "hi"]);
    assert!(!out.status.success());
}
