//! Hostile values that pass the parsers (issue 22, items 4, 8, 9, 10): codes beyond `i32` in a codes file,
//! NaN, infinite, zero and negative `audio_scales` (HF tensors and `.ecdc` alike), `layer_norm_eps` ≤ 0, NaN
//! and overflowing weights (refused at load, or a non-finite result refused before it is written), an
//! extreme `--length-penalty`, a checkpoint of the other model, WAVs of more channels than symphonia takes, a
//! checkpoint without a vocabulary, and what stderr shows besides the one-line error. See `common/mod.rs`.

mod common;
#[path = "hostile_validation/helpers.rs"]
mod helpers;

use std::path::Path;

use clvp_parity::{fixture_path, read_safetensors};
use serde_json::json;

use common::*;
use helpers::*;

#[test]
fn hostile_values_through_the_cli() {
    let d = Dirs::new();
    let root = d.root.as_path();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let tiny = fixture("clvp/tiny");
    let enc24 = fixture("encodec/tiny_24k");
    let enc48 = fixture("encodec/tiny_48k");
    let voice = fixture("encodec/e2e_24k.wav");

    // --- item 4: codes beyond i32 (burn's cast panicked: exit 101) ---
    let c24 = i("c24.safetensors");
    encode(&enc24, "3.6", &voice, &c24);
    for (name, value) in [
        ("code-2p31.safetensors", 1i64 << 31),
        ("code-max.safetensors", i64::MAX),
        ("code-min.safetensors", -(1i64 << 31) - 1),
        ("code-64.safetensors", 64),
    ] {
        edit_value(&c24, &i(name), "audio_codes", 5, &value.to_le_bytes());
    }
    edit_value(
        &c24,
        &i("length-max.safetensors"),
        "audio_length",
        0,
        &i64::MAX.to_le_bytes(),
    );
    edit_value(
        &c24,
        &i("pad-min.safetensors"),
        "last_frame_pad_length",
        0,
        &i64::MIN.to_le_bytes(),
    );

    // --- item 8: audio_scales NaN, infinite, negative, zero (decoded silently before), and huge ---
    let c48 = i("c48.safetensors");
    encode(&enc48, "1.8", &fixture("encodec/e2e_48k.wav"), &c48);
    for (name, index, value) in [
        ("scale-nan.safetensors", 0, f32::NAN),
        ("scale-inf.safetensors", 1, f32::INFINITY),
        ("scale-neg.safetensors", 1, -1.0),
        ("scale-zero.safetensors", 0, 0.0),
        ("scale-huge.safetensors", 0, 3.4e38),
    ] {
        edit_value(&c48, &i(name), "audio_scales", index, &value.to_le_bytes());
    }
    // The same in an .ecdc file (the first 4 bytes after the metadata are segment 0's big-endian scale).
    let mut e48 = std::fs::read(fixture_path("encodec/ecdc/48k_k4_len100000.ecdc")).expect("read");
    let meta = u32::from_be_bytes([e48[5], e48[6], e48[7], e48[8]]) as usize;
    e48[9 + meta..13 + meta].copy_from_slice(&(-1.0f32).to_be_bytes());
    std::fs::write(i("scale-neg.ecdc"), &e48).expect("write");

    // --- item 9: eps ≤ 0, NaN weights, overflowing weights, overflowing audio ---
    let eps_text = config_edit(
        "clvp/tiny",
        root,
        "eps-text",
        &["text_config", "layer_norm_eps"],
        json!(-1),
    );
    let eps_dec = config_edit(
        "clvp/tiny",
        root,
        "eps-dec",
        &["decoder_config", "layer_norm_epsilon"],
        json!(0),
    );
    let nan_w = i("nan-w.safetensors");
    edit_value(
        &fixture_path("clvp/tiny/model.safetensors"),
        &nan_w,
        "text_encoder_model.final_layer_norm.weight",
        3,
        &f32::NAN.to_le_bytes(),
    );
    let m_nan = tiny_with_weights(root, "m-nan", &std::fs::read(&nan_w).expect("read"));
    let m_huge = tiny_with(
        root,
        "m-huge",
        "text_encoder_model.projection.weight",
        3e38,
        true,
    );
    let m_speech_huge = tiny_with(
        root,
        "m-speech-huge",
        "speech_encoder_model.projection.weight",
        3e38,
        true,
    );
    // EnCodec weights whose decoder overflows: every weight-norm gain of the decoder 1e30.
    let e_huge = copy_checkpoint("encodec/tiny_24k", root, "e-huge");
    let mut entries = safetensors_entries(&e_huge.join("model.safetensors"));
    for e in entries
        .iter_mut()
        .filter(|e| e.0.starts_with("decoder.") && e.0.ends_with("weight.original0"))
    {
        e.3 = 1e30f32.to_le_bytes().repeat(e.3.len() / 4);
    }
    std::fs::write(
        e_huge.join("model.safetensors"),
        safetensors_file(&entries, None),
    )
    .expect("write");
    let loud: Vec<f32> = (0..22050).map(|k| 3e38 * (k as f32 * 0.05).sin()).collect();
    wav_f32(&i("loud.wav"), 22050, 1, &loud);

    // --- item 10 ---
    // (c) more channels than symphonia takes (26 plain, 18 WAVE_FORMAT_EXTENSIBLE); a corrupt count.
    wav_i16(&i("ch33-ext.wav"), 33, 22050);
    let pcm30: Vec<u8> = tone(22050, 1)
        .iter()
        .flat_map(|x| ((x * 32767.0) as i16).to_le_bytes().repeat(30))
        .collect();
    wav_raw(&i("ch30-pcm.wav"), 1, 30, 16, &pcm30);
    let float40: Vec<u8> = tone(4000, 1)
        .iter()
        .flat_map(|x| x.to_le_bytes().repeat(40))
        .collect();
    wav_raw(&i("ch40-float.wav"), 3, 40, 32, &float40);
    wav_raw(&i("ch2000.wav"), 1, 2000, 16, &[0; 8000]);
    // (d) each model's checkpoint given to the other; an EnCodec checkpoint whose config says nothing.
    let e_anon = copy_checkpoint("encodec/tiny_24k", root, "e-anon");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e_anon.join("config.json")).expect("config"))
            .expect("json");
    if let Some(m) = cfg.as_object_mut() {
        m.remove("model_type");
        m.remove("architectures");
    }
    std::fs::write(e_anon.join("config.json"), cfg.to_string()).expect("write");

    let cases = vec![
        // item 4
        decode_with(
            &d,
            "code 2^31",
            &enc24,
            &i("code-2p31.safetensors"),
            &["code 2147483648", "outside the codebook (0..64)"],
        ),
        decode_with(
            &d,
            "code i64::MAX",
            &enc24,
            &i("code-max.safetensors"),
            &["code 9223372036854775807", "outside the codebook"],
        ),
        decode_with(
            &d,
            "code -2^31-1",
            &enc24,
            &i("code-min.safetensors"),
            &["code -2147483649", "outside the codebook"],
        ),
        decode_with(
            &d,
            "code 64",
            &enc24,
            &i("code-64.safetensors"),
            &["code 64", "outside the codebook"],
        ),
        decode_with(
            &d,
            "last_frame_pad_length i64::MIN",
            &enc24,
            &i("pad-min.safetensors"),
            &["last_frame_pad_length", "non-negative integer"],
        ),
        succeeds(
            "audio_length i64::MAX",
            &[
                "encodec",
                "decode",
                "--model",
                &enc24,
                s(&i("length-max.safetensors")),
                s(&o("length-max.wav")),
            ],
            &[&o("length-max.wav")],
            None,
        ),
        // item 8
        decode_with(
            &d,
            "scale NaN",
            &enc48,
            &i("scale-nan.safetensors"),
            &["chunk 0 has the scale NaN", "finite and positive"],
        ),
        decode_with(
            &d,
            "scale inf",
            &enc48,
            &i("scale-inf.safetensors"),
            &["chunk 1 has the scale inf", "finite and positive"],
        ),
        decode_with(
            &d,
            "scale negative",
            &enc48,
            &i("scale-neg.safetensors"),
            &["chunk 1 has the scale -1", "finite and positive"],
        ),
        decode_with(
            &d,
            "scale zero",
            &enc48,
            &i("scale-zero.safetensors"),
            &["chunk 0 has the scale 0", "finite and positive"],
        ),
        decode_with(
            &d,
            "scale negative in .ecdc",
            &enc48,
            &i("scale-neg.ecdc"),
            &["segment 0 has the scale -1", "finite and positive"],
        ),
        decode_with(
            &d,
            "scale 3.4e38 overflows",
            &enc48,
            &i("scale-huge.safetensors"),
            &[
                "decoded audio has",
                "non-finite samples",
                "overflows float32",
            ],
        ),
        // item 9
        embed(
            &d,
            "text layer_norm_eps -1",
            &eps_text,
            "Hi.",
            &["text_config.layer_norm_eps", "positive", "-1"],
        ),
        generate_with(
            &d,
            "decoder layer_norm_epsilon 0",
            &eps_dec,
            &voice,
            &["decoder_config.layer_norm_epsilon", "positive"],
        ),
        embed(
            &d,
            "NaN weight",
            &m_nan,
            "Hi.",
            &[
                "text_encoder_model.final_layer_norm.weight",
                "non-finite",
                "NaN at index 3",
                "m-nan/model.safetensors",
            ],
        ),
        embed(
            &d,
            "weights overflow the text embedding",
            &m_huge,
            "Hi.",
            &[
                "the text embedding has",
                "non-finite",
                "nothing was written",
            ],
        ),
        fails(
            "weights overflow the speech embedding",
            &[
                "embed-speech",
                "--model",
                s(&m_speech_huge),
                "--codes",
                "5,9,17",
                "--output",
                s(&o("speech-huge.safetensors")),
            ],
            &[&o("speech-huge.safetensors")],
            &["the speech embedding has", "non-finite"],
        ),
        generate_with(
            &d,
            "weights overflow generate's logits",
            &m_huge,
            &voice,
            &["logits_per_text", "non-finite", "nothing was written"],
        ),
        fails(
            "EnCodec weights overflow the decoded audio",
            &[
                "encodec",
                "roundtrip",
                "--model",
                s(&e_huge),
                "-b",
                "3.6",
                &voice,
                s(&o("e-huge.wav")),
            ],
            &[&o("e-huge.wav")],
            &["decoded audio has", "non-finite samples"],
        ),
        fails(
            "audio loud enough to overflow the features",
            &features_args_str(&i("loud.wav"), &o("loud.safetensors")),
            &[&o("loud.safetensors")],
            &[
                "log-mel features has",
                "non-finite",
                "samples reach",
                "far outside [-1, 1]",
            ],
        ),
        // item 10 (b): the flag is named, not "an empty sequence of speech codes".
        generate(
            &d,
            "length penalty -100",
            "Hi.",
            &voice,
            &["--beams", "2", "--length-penalty", "-100"],
            &["--length-penalty", "length_penalty -100", "float32"],
        ),
        generate(
            &d,
            "length penalty -14 leaves no finished beam",
            "Hi.",
            &voice,
            &["--beams", "2", "--length-penalty", "-14"],
            &["--length-penalty", "finished no hypothesis"],
        ),
        // (c)
        succeeds(
            "WAV of 33 channels (extensible)",
            &features_args_str(&i("ch33-ext.wav"), &o("ch33.safetensors")),
            &[&o("ch33.safetensors")],
            features_ok(),
        ),
        succeeds(
            "WAV of 30 channels (PCM)",
            &features_args_str(&i("ch30-pcm.wav"), &o("ch30.safetensors")),
            &[&o("ch30.safetensors")],
            features_ok(),
        ),
        succeeds(
            "WAV of 40 channels into encodec",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&i("ch40-float.wav")),
                s(&o("ch40.ecdc")),
            ],
            &[&o("ch40.ecdc")],
            None,
        ),
        fails(
            "WAV of 2000 channels",
            &features_args_str(&i("ch2000.wav"), &o("ch2000.safetensors")),
            &[&o("ch2000.safetensors")],
            &["ch2000.wav", "channel count is 2000", "limit of 1024"],
        ),
        // (d)
        embed(
            &d,
            "EnCodec checkpoint to embed-text",
            &fixture_path("encodec/tiny_24k"),
            "Hi.",
            &[
                "is an EnCodec checkpoint, not a CLVP checkpoint",
                "model_type",
            ],
        ),
        generate_with(
            &d,
            "EnCodec checkpoint to generate",
            &fixture_path("encodec/tiny_48k"),
            &voice,
            &["is an EnCodec checkpoint, not a CLVP checkpoint"],
        ),
        embed(
            &d,
            "EnCodec checkpoint without model_type",
            &e_anon,
            "Hi.",
            &["is an EnCodec checkpoint", "its weights have keys like"],
        ),
        fails(
            "CLVP checkpoint to encodec",
            &[
                "encodec",
                "roundtrip",
                "--model",
                &tiny,
                &voice,
                s(&o("clvp-as-encodec.wav")),
            ],
            &[&o("clvp-as-encodec.wav")],
            &["is a CLVP checkpoint, not an EnCodec checkpoint"],
        ),
    ];
    let mut failures = check_cases(&cases, &d.logs, 30);
    let mut total = cases.len();

    // (d) no missing-keys list.
    let (_, err) = run_env(
        &d.logs,
        &[
            "embed-text",
            "--model",
            &enc24,
            "--text",
            "Hi.",
            "--output",
            s(&o("x.safetensors")),
        ],
        &[],
    );
    total += 1;
    if err.contains("missing key") {
        failures.push(format!("[EnCodec checkpoint] a missing-keys list: {err}"));
    }

    // (c) a 33-channel file of one tone gives the features of the mono tone (the channels are averaged).
    total += 1;
    wav_i16(&i("ch1.wav"), 1, 22050);
    let mono_out = o("ch1.safetensors");
    let (code, err) = run_env(&d.logs, &features_args_str(&i("ch1.wav"), &mono_out), &[]);
    let read = |p: &Path| {
        read_safetensors(p)
            .ok()
            .and_then(|t| t.get("input_features").map(|f| f.f64.clone()))
    };
    match (code, read(&mono_out), read(&o("ch33.safetensors"))) {
        (Some(0), Some(a), Some(b)) if a.len() == b.len() => {
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            if worst > 1e-3 {
                failures.push(format!(
                    "[33 channels] features differ from mono by {worst}"
                ));
            }
        }
        other => failures.push(format!("[33 channels] cannot compare: {:?} {err}", other.0)),
    }

    // (a) symphonia's own log lines (with ANSI colours) stay off stderr: only the one-line error.
    total += 1;
    let mut avi = b"RIFF".to_vec();
    avi.extend_from_slice(&100u32.to_le_bytes());
    avi.extend_from_slice(b"AVI LIST");
    avi.extend_from_slice(&[0; 100]);
    std::fs::write(i("riff-avi.wav"), &avi).expect("write");
    let (avi_in, avi_out) = (i("riff-avi.wav"), o("avi.safetensors"));
    let args = features_args_str(&avi_in, &avi_out);
    let (code, err) = run_env(&d.logs, &args, &[]);
    let lines: Vec<&str> = err.lines().collect();
    if code != Some(1)
        || lines.len() != 1
        || !lines[0].starts_with("error: ")
        || err.contains('\u{1b}')
        || err.contains("symphonia")
    {
        failures.push(format!("[symphonia logs] code {code:?}, stderr: {err:?}"));
    }
    // ... unless asked for, still without colour codes on a non-terminal.
    total += 1;
    let (_, err) = run_env(&d.logs, &args, &[("CLVP_LOG", "warn")]);
    if !err.contains("symphonia") || err.contains('\u{1b}') {
        failures.push(format!(
            "[symphonia logs under CLVP_LOG=warn] stderr: {err:?}"
        ));
    }

    // (e) a checkpoint without vocab.json and merges.txt says it uses the built-in vocabulary.
    total += 1;
    let no_vocab = copy_checkpoint("clvp/tiny", root, "no-vocab");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::remove_file(no_vocab.join(f)).expect("rm");
    }
    let out = o("no-vocab.safetensors");
    let (code, err) = run_env(
        &d.logs,
        &[
            "embed-text",
            "--model",
            s(&no_vocab),
            "--text",
            "Hi.",
            "--output",
            s(&out),
        ],
        &[],
    );
    if code != Some(0)
        || !out.exists()
        || !err.contains("no vocab.json or merges.txt; using the built-in Tortoise vocabulary")
    {
        failures.push(format!("[no vocab.json] code {code:?}, stderr: {err:?}"));
    }
    // ... and a checkpoint with them says nothing.
    total += 1;
    let (_, err) = run_env(
        &d.logs,
        &[
            "embed-text",
            "--model",
            &tiny,
            "--text",
            "Hi.",
            "--output",
            s(&o("vocab.safetensors")),
        ],
        &[],
    );
    if !err.is_empty() {
        failures.push(format!("[with vocab.json] stderr not empty: {err:?}"));
    }
    report(&failures, total);
}
