//! Hostile checkpoints through the `clvp` binary: truncated, empty and missing weights, mis-shaped and
//! mistyped tensors, repeated header keys, broken and out-of-range CLVP and EnCodec configs, a hub id that is
//! not in the cache. See `common/mod.rs`.

mod common;

use clvp_parity::fixture_path;
use serde_json::{Value, json};

use common::*;

#[test]
fn hostile_checkpoints_through_the_cli() {
    let d = Dirs::new();
    let root = d.root.as_path();
    let o = |name: &str| d.o(name);
    let e2e24 = fixture_path("encodec/e2e_24k.wav");

    // --- weights ---
    let weights = safetensors_entries(&fixture_path("clvp/tiny/model.safetensors"));
    let raw = std::fs::read(fixture_path("clvp/tiny/model.safetensors")).expect("read");
    let key = "text_encoder_model.final_layer_norm.weight";
    let edit = |f: &dyn Fn(&mut Entry)| {
        let mut w = weights.clone();
        let e = w
            .iter_mut()
            .find(|e| e.0 == key)
            .expect("the key is in the fixture");
        f(e);
        safetensors_file(&w, None)
    };
    let m_trunc = tiny_with_weights(root, "m-trunc", &raw[..raw.len() / 2]);
    let m_header_cut = tiny_with_weights(root, "m-header-cut", &raw[..100]);
    let m_empty = tiny_with_weights(root, "m-empty", b"");
    let m_shape = tiny_with_weights(root, "m-shape", &edit(&|e| e.2 = vec![32, 2]));
    let m_i32 = tiny_with_weights(root, "m-i32", &edit(&|e| e.1 = "I32".into()));
    // F16 weights are converted (as transformers does); 1.0 in f16 is 0x3C00.
    let m_f16 = tiny_with_weights(
        root,
        "m-f16",
        &edit(&|e| {
            e.1 = "F16".into();
            e.3 = [0x00, 0x3c].repeat(64);
        }),
    );
    let last = weights.last().expect("tensors");
    let first = weights.first().expect("tensors");
    let n = weights.iter().map(|e| e.3.len()).sum::<usize>();
    let info = |name: &str, shape: &[usize], a: usize, b: usize| {
        format!(
            "{}:{}",
            Value::from(name),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [a, b]})
        )
    };
    let m_dup_same = tiny_with_weights(
        root,
        "m-dup-same",
        &safetensors_file(&weights, Some(info(&last.0, &last.2, n - last.3.len(), n))),
    );
    let m_dup_other = tiny_with_weights(
        root,
        "m-dup-other",
        &safetensors_file(&weights, Some(info(&first.0, &last.2, n - last.3.len(), n))),
    );
    let m_no_weights = copy_checkpoint("clvp/tiny", root, "m-no-weights");
    std::fs::remove_file(m_no_weights.join("model.safetensors")).expect("rm");

    // --- configs ---
    let c_array = with_config("clvp/tiny", root, "c-array", "[1, 2, 3]");
    let c_string = with_config("clvp/tiny", root, "c-string", "\"clvp\"");
    let c_cut = with_config("clvp/tiny", root, "c-cut", "{\"text_config\": ");
    let c_empty = with_config("clvp/tiny", root, "c-empty", "");
    let c_hidden0 = config_edit(
        "clvp/tiny",
        root,
        "c-hidden0",
        &["text_config", "hidden_size"],
        json!(0),
    );
    let c_heads0 = config_edit(
        "clvp/tiny",
        root,
        "c-heads0",
        &["decoder_config", "num_attention_heads"],
        json!(0),
    );
    let c_vocab0 = config_edit(
        "clvp/tiny",
        root,
        "c-vocab0",
        &["speech_config", "vocab_size"],
        json!(0),
    );
    let c_vocab_huge = config_edit(
        "clvp/tiny",
        root,
        "c-vocab-huge",
        &["text_config", "vocab_size"],
        json!(1_000_000_000_000u64),
    );
    let c_pos_huge = config_edit(
        "clvp/tiny",
        root,
        "c-pos-huge",
        &["decoder_config", "max_position_embeddings"],
        json!(1u64 << 62),
    );
    let c_eos = config_edit(
        "clvp/tiny",
        root,
        "c-eos",
        &["decoder_config", "eos_token_id"],
        json!(1_000_000),
    );
    let c_float = config_edit(
        "clvp/tiny",
        root,
        "c-float",
        &["text_config", "hidden_size"],
        json!(64.5),
    );
    let e_array = with_config("encodec/tiny_24k", root, "e-array", "[]");
    let e_hidden = config_edit(
        "encodec/tiny_24k",
        root,
        "e-hidden",
        &["hidden_size"],
        json!(1u64 << 40),
    );
    let e_lstm = config_edit(
        "encodec/tiny_24k",
        root,
        "e-lstm",
        &["num_lstm_layers"],
        json!(1_000_000_000),
    );
    let e_ratio0 = config_edit(
        "encodec/tiny_24k",
        root,
        "e-ratio0",
        &["upsampling_ratios"],
        json!([8, 0, 4, 2]),
    );
    let e_bw = config_edit(
        "encodec/tiny_24k",
        root,
        "e-bw",
        &["target_bandwidths"],
        json!([]),
    );
    let roundtrip = |name: &'static str, model: &std::path::Path, needles: &[&str]| {
        let output = o(&format!("{name}.wav"));
        fails(
            name,
            &[
                "encodec",
                "roundtrip",
                "--model",
                s(model),
                "-b",
                "0.9",
                s(&e2e24),
                s(&output),
            ],
            &[&output],
            needles,
        )
    };

    let cases = vec![
        embed(
            &d,
            "weights truncated",
            &m_trunc,
            "Hi.",
            &["m-trunc/model.safetensors", "truncated"],
        ),
        embed(
            &d,
            "weights header cut",
            &m_header_cut,
            "Hi.",
            &[
                "m-header-cut/model.safetensors",
                "header length runs past the end",
            ],
        ),
        embed(
            &d,
            "weights empty",
            &m_empty,
            "Hi.",
            &["m-empty/model.safetensors", "0 bytes"],
        ),
        embed(
            &d,
            "weights missing",
            &m_no_weights,
            "Hi.",
            &["no weights in", "model.safetensors"],
        ),
        embed(
            &d,
            "tensor mis-shaped",
            &m_shape,
            "Hi.",
            &[key, "[32, 2]", "expects [64]"],
        ),
        embed(
            &d,
            "tensor I32",
            &m_i32,
            "Hi.",
            &[key, "dtype I32", "F32, F16, BF16 and F64"],
        ),
        embed(
            &d,
            "header repeats a key",
            &m_dup_other,
            "Hi.",
            &["more than once", &first.0],
        ),
        embed(
            &d,
            "header repeats a key identically",
            &m_dup_same,
            "Hi.",
            &["more than once", &last.0],
        ),
        succeeds(
            "tensor F16 (converted)",
            &[
                "embed-text",
                "--model",
                s(&m_f16),
                "--text",
                "Hi.",
                "--output",
                s(&o("f16.safetensors")),
            ],
            &[&o("f16.safetensors")],
            embeds_ok("text_embeds"),
        ),
        // Configs.
        embed(
            &d,
            "config an array",
            &c_array,
            "Hi.",
            &["c-array/config.json", "JSON object"],
        ),
        embed(
            &d,
            "config a string",
            &c_string,
            "Hi.",
            &["c-string/config.json", "JSON object"],
        ),
        embed(
            &d,
            "config cut short",
            &c_cut,
            "Hi.",
            &["c-cut/config.json", "line 1 column 16"],
        ),
        embed(
            &d,
            "config empty",
            &c_empty,
            "Hi.",
            &["c-empty/config.json", "EOF"],
        ),
        embed(
            &d,
            "config hidden_size 0",
            &c_hidden0,
            "Hi.",
            &["text_config.hidden_size", "must be positive"],
        ),
        embed(
            &d,
            "config heads 0",
            &c_heads0,
            "Hi.",
            &["decoder_config.num_attention_heads", "must be positive"],
        ),
        embed(
            &d,
            "config vocab 0",
            &c_vocab0,
            "Hi.",
            &["speech_config.vocab_size", "must be positive"],
        ),
        embed(
            &d,
            "config vocab huge",
            &c_vocab_huge,
            "Hi.",
            &[
                "text_config.vocab_size",
                "1000000000000 is larger than the supported maximum",
            ],
        ),
        embed(
            &d,
            "config positions huge",
            &c_pos_huge,
            "Hi.",
            &[
                "decoder_config.max_position_embeddings",
                "4611686018427387904 is larger",
            ],
        ),
        embed(
            &d,
            "config eos out of range",
            &c_eos,
            "Hi.",
            &["decoder_config.eos_token_id", "0..260"],
        ),
        // A field of the wrong type: the file, the field, the value and the expected type.
        embed(
            &d,
            "config float size",
            &c_float,
            "Hi.",
            &[
                "c-float/config.json",
                "64.5",
                "expected usize",
                "hidden_size",
            ],
        ),
        roundtrip(
            "encodec config an array",
            &e_array,
            &["e-array/config.json", "JSON object"],
        ),
        roundtrip(
            "encodec hidden_size huge",
            &e_hidden,
            &["`hidden_size`", "1099511627776", "16384"],
        ),
        roundtrip(
            "encodec lstm layers huge",
            &e_lstm,
            &["`num_lstm_layers`", "1000000000"],
        ),
        roundtrip(
            "encodec ratio 0",
            &e_ratio0,
            &["`upsampling_ratios`", "[8, 0, 4, 2]"],
        ),
        roundtrip(
            "encodec no bandwidths",
            &e_bw,
            &["`target_bandwidths`", "at least one"],
        ),
        fails(
            "model a hub id not in the cache (offline)",
            &[
                "embed-text",
                "--model",
                "nobody/nothing",
                "--text",
                "Hi.",
                "--output",
                s(&o("hub.safetensors")),
            ],
            &[&o("hub.safetensors")],
            &["nobody/nothing", "HF_HUB_OFFLINE"],
        ),
    ];
    run_cases(&cases, &d.logs, 26);
}

/// Sizes far beyond any CLVP (4 TiB for `hidden_size` 2^40, 1.1 TB for 10^9 layers) used to abort the process on
/// an impossible allocation when the modules were built; clvp-nn's config validation now names the field.
#[test]
fn clvp_config_sizes_too_large_name_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let hidden = config_edit(
        "clvp/tiny",
        tmp.path(),
        "c-hidden-huge",
        &["text_config", "hidden_size"],
        json!(1u64 << 40),
    );
    let layers = config_edit(
        "clvp/tiny",
        tmp.path(),
        "c-layers-huge",
        &["text_config", "num_hidden_layers"],
        json!(1_000_000_000),
    );
    let output = tmp.path().join("e.safetensors");
    let mut failures = Vec::new();
    for (index, (model, field)) in [
        (&hidden, "text_config.hidden_size"),
        (&layers, "text_config.num_hidden_layers"),
    ]
    .into_iter()
    .enumerate()
    {
        let case = fails(
            "config size huge",
            &[
                "embed-text",
                "--model",
                s(model),
                "--text",
                "Hi.",
                "--output",
                s(&output),
            ],
            &[&output],
            &[field],
        );
        failures.extend(check_case(&case, &logs, index));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
