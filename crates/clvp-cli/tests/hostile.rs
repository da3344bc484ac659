//! Hostile and broken input, table-driven: every front door of the `clvp` binary (audio, text, weights and
//! configs, codes, `.ecdc`, the output location) and of the library where the CLI cannot reach.
//!
//! Each case either fails with a non-zero exit (an `Err`) whose message names the problem, or gives a correct
//! result. Never a panic (exit code 101, "panicked", an abort), never a hang (each run has a deadline), never
//! a half-written output (after a failure the output paths do not exist and no temporary file is left).
//! All cases run; the failures are listed together at the end. The messages are documented in docs/errors.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clvp_parity::{fixture_path, read_safetensors};
use serde_json::{Value, json};

/// A generous bound for one run: every case takes well under a second on the tiny fixtures; only a hang
/// reaches it.
const DEADLINE: Duration = Duration::from_secs(300);

type Check = Box<dyn Fn(&Path) -> Result<(), String>>;

/// One safetensors tensor: key, dtype, shape, little-endian bytes.
type Entry = (String, String, Vec<usize>, Vec<u8>);

enum Expect {
    /// Non-zero exit; stderr contains every substring (case-insensitive).
    Fails(Vec<String>),
    /// Zero exit; the outputs exist and pass the check (run on the first output).
    Succeeds(Option<Check>),
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Files the command would write.
    outputs: Vec<PathBuf>,
    expect: Expect,
}

fn fails(name: &'static str, args: &[&str], outputs: &[&Path], needles: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|p| p.to_path_buf()).collect(),
        expect: Expect::Fails(needles.iter().map(|s| s.to_string()).collect()),
    }
}

fn succeeds(name: &'static str, args: &[&str], outputs: &[&Path], check: Option<Check>) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|p| p.to_path_buf()).collect(),
        expect: Expect::Succeeds(check),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

// ---------------------------------------------------------------------------------------------------------
// Input builders.

/// A 32-bit float WAV (hound), interleaved `samples`.
fn wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for &x in samples {
        w.write_sample(x).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

fn tone(frames: usize, channels: usize) -> Vec<f32> {
    (0..frames * channels)
        .map(|i| 0.3 * ((i / channels) as f32 * 0.05).sin())
        .collect()
}

/// A safetensors file from `(key, dtype, shape, bytes)` entries; `extra` is appended raw to the header's JSON
/// object (to repeat a key, which no serializer does).
fn safetensors_file(entries: &[Entry], extra: Option<String>) -> Vec<u8> {
    let mut offset = 0usize;
    let mut fields = Vec::new();
    let mut data = Vec::new();
    for (key, dtype, shape, bytes) in entries {
        let info =
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]});
        fields.push(format!("{}:{info}", Value::from(key.as_str())));
        offset += bytes.len();
        data.extend_from_slice(bytes);
    }
    fields.extend(extra);
    let mut header = format!("{{{}}}", fields.join(",")).into_bytes();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    [&(header.len() as u64).to_le_bytes()[..], &header, &data].concat()
}

/// The tensors of a safetensors file, in file order.
fn safetensors_entries(path: &Path) -> Vec<Entry> {
    let raw = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&raw[8..8 + n]).expect("header JSON");
    let body = &raw[8 + n..];
    let mut out: Vec<(usize, Entry)> = header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let start = v["data_offsets"][0].as_u64().expect("offset") as usize;
            let end = v["data_offsets"][1].as_u64().expect("offset") as usize;
            let shape = v["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let dtype = v["dtype"].as_str().expect("dtype").to_string();
            (start, (k, dtype, shape, body[start..end].to_vec()))
        })
        .collect();
    out.sort_by_key(|(start, _)| *start);
    out.into_iter().map(|(_, e)| e).collect()
}

/// A copy of a fixture checkpoint directory under `root/name`.
fn copy_checkpoint(fixture: &str, root: &Path, name: &str) -> PathBuf {
    let src = fixture_path(fixture);
    let dst = root.join(name);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(&src).expect("fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy");
    }
    dst
}

/// The tiny CLVP checkpoint with its `model.safetensors` replaced.
fn tiny_with_weights(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = copy_checkpoint("clvp/tiny", root, name);
    std::fs::write(dir.join("model.safetensors"), bytes).expect("write weights");
    dir
}

/// A checkpoint copy with `config.json` replaced by `text`.
fn with_config(fixture: &str, root: &Path, name: &str, text: &str) -> PathBuf {
    let dir = copy_checkpoint(fixture, root, name);
    std::fs::write(dir.join("config.json"), text).expect("write config");
    dir
}

/// A checkpoint copy with one config field set (`path` is a list of keys).
fn config_edit(fixture: &str, root: &Path, name: &str, path: &[&str], value: Value) -> PathBuf {
    let mut cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path(fixture).join("config.json")).expect("config"),
    )
    .expect("config JSON");
    let mut at = &mut cfg;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = value;
    with_config(fixture, root, name, &cfg.to_string())
}

/// An `.ecdc` file: magic, version, big-endian metadata length, metadata, body.
fn ecdc(version: u8, meta: &[u8], body: &[u8]) -> Vec<u8> {
    [
        &b"ECDC"[..],
        &[version],
        &(meta.len() as u32).to_be_bytes(),
        meta,
        body,
    ]
    .concat()
}

// ---------------------------------------------------------------------------------------------------------
// Checks of successful results.

fn features_ok() -> Option<Check> {
    Some(Box::new(|p: &Path| {
        let t = read_safetensors(p).map_err(|e| format!("unreadable output: {e}"))?;
        let f = t.get("input_features").ok_or("no input_features")?;
        if f.shape != [1, 80, 517] {
            return Err(format!("input_features shape {:?}", f.shape));
        }
        if !f.f64.iter().all(|v| v.is_finite()) {
            return Err("non-finite features".into());
        }
        Ok(())
    }))
}

fn embeds_ok(key: &'static str) -> Option<Check> {
    Some(Box::new(move |p: &Path| {
        let t = read_safetensors(p).map_err(|e| format!("unreadable output: {e}"))?;
        let e = t.get(key).ok_or_else(|| format!("no {key}"))?;
        if e.shape != [1, 32] || !e.f64.iter().all(|v| v.is_finite()) {
            return Err(format!("{key}: shape {:?} or non-finite values", e.shape));
        }
        Ok(())
    }))
}

fn wav_ok(frames: u32) -> Option<Check> {
    Some(Box::new(move |p: &Path| {
        let r = hound::WavReader::open(p).map_err(|e| format!("unreadable WAV: {e}"))?;
        if r.duration() != frames {
            return Err(format!("{} frames, expected {frames}", r.duration()));
        }
        Ok(())
    }))
}

// ---------------------------------------------------------------------------------------------------------
// The runner.

struct Run {
    code: Option<i32>,
    stderr: String,
}

fn run_clvp(args: &[String], logs: &Path, index: usize) -> Result<Run, String> {
    let err_path = logs.join(format!("stderr-{index}"));
    let stderr = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_clvp"))
        .args(args)
        // Nothing may reach the network: every model is a local directory, and a hub id stays in an empty cache.
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", logs.join("hf-cache"))
        .env("RUST_BACKTRACE", "0")
        .env_remove("CLVP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start clvp: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("hung: still running after {DEADLINE:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stderr = std::fs::read_to_string(&err_path).map_err(|e| e.to_string())?;
    Ok(Run {
        code: status.code(),
        stderr,
    })
}

/// Temporary files `write_atomic` would leave next to an output after a failure.
fn leftovers(output: &Path) -> Vec<String> {
    let Some(dir) = output.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".clvp-") || n.starts_with(".tmp"))
        .collect()
}

fn check_case(case: &Case, logs: &Path, index: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let run = match run_clvp(&case.args, logs, index) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let err = &run.stderr;
    let short: String = err.chars().take(600).collect();
    match run.code {
        None => problems.push(format!("killed by a signal (abort?): {short}")),
        Some(101) => problems.push(format!("exit code 101 (panic): {short}")),
        _ => {}
    }
    if err.contains("panicked") || err.contains("memory allocation of") {
        problems.push(format!("panic or abort in stderr: {short}"));
    }
    match &case.expect {
        Expect::Fails(needles) => {
            if run.code == Some(0) {
                problems.push("succeeded, expected a failure".into());
            }
            let lower = err.to_lowercase();
            for n in needles {
                if !lower.contains(&n.to_lowercase()) {
                    problems.push(format!("message lacks {n:?}: {short}"));
                }
            }
            if !err.contains("error: ") {
                problems.push(format!("no `error: ` line: {short}"));
            }
            for out in &case.outputs {
                if out.exists() {
                    problems.push(format!("{} was left behind", out.display()));
                }
                let left = leftovers(out);
                if !left.is_empty() {
                    problems.push(format!("temporary files left: {left:?}"));
                }
            }
        }
        Expect::Succeeds(check) => {
            if run.code != Some(0) {
                problems.push(format!("failed (code {:?}): {short}", run.code));
            } else {
                for out in &case.outputs {
                    if !out.exists() {
                        problems.push(format!("{} was not written", out.display()));
                    }
                }
                if let (Some(check), Some(out)) = (check, case.outputs.first())
                    && out.exists()
                    && let Err(e) = check(out)
                {
                    problems.push(format!("wrong result: {e}"));
                }
            }
        }
    }
    problems
}

/// Whether the current user cannot create files in `dir` (false for root, which ignores the mode bits).
fn unwritable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------------------

#[test]
fn hostile_input_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (inp, out, logs) = (root.join("in"), root.join("out"), root.join("logs"));
    for d in [&inp, &out, &logs] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let o = |name: &str| out.join(name);
    let i = |name: &str| inp.join(name);

    let tiny = fixture_path("clvp/tiny");
    let tiny = s(&tiny).to_string();
    let enc24 = fixture_path("encodec/tiny_24k");
    let enc24 = s(&enc24).to_string();
    let enc48 = fixture_path("encodec/tiny_48k");
    let enc48 = s(&enc48).to_string();
    let e2e24 = fixture_path("encodec/e2e_24k.wav");

    // --- audio files ---
    wav_f32(&i("ok.wav"), 22050, 1, &tone(22050, 1));
    std::fs::write(i("empty.wav"), b"").expect("write");
    let noise: Vec<u8> = (0..5000u32)
        .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(i("noise.wav"), &noise).expect("write");
    let ok = std::fs::read(i("ok.wav")).expect("read");
    std::fs::write(i("cut.wav"), &ok[..ok.len() / 2]).expect("write");
    std::fs::write(i("header-only.wav"), &ok[..30]).expect("write");
    let mut nan = tone(1000, 1);
    nan[0] = f32::NAN;
    wav_f32(&i("nan.wav"), 22050, 1, &nan);
    let mut inf = tone(1000, 1);
    inf[500] = f32::INFINITY;
    wav_f32(&i("inf.wav"), 22050, 1, &inf);
    wav_f32(&i("zero.wav"), 22050, 1, &[]);
    wav_f32(&i("one.wav"), 22050, 1, &[0.25]);
    wav_f32(&i("eight-ch.wav"), 22050, 8, &tone(4000, 8));
    wav_f32(&i("8k.wav"), 8000, 1, &tone(8000, 1));
    wav_f32(&i("192k.wav"), 192_000, 1, &tone(96_000, 1));
    wav_f32(&i("1hz.wav"), 1, 1, &tone(2000, 1));
    // A 16-bit PCM header declaring 65535 channels (symphonia multiplied that in u16 and panicked).
    let mut many = ok[..44].to_vec();
    many[20..22].copy_from_slice(&1u16.to_le_bytes());
    many[22..24].copy_from_slice(&65535u16.to_le_bytes());
    many[34..36].copy_from_slice(&16u16.to_le_bytes());
    many.extend_from_slice(&[0; 64]);
    std::fs::write(i("65535-ch.wav"), &many).expect("write");

    // --- text ---
    let long_text = "a".repeat(100_000);
    let over_limit = "hello world ".repeat(20);
    std::fs::write(
        i("control.txt"),
        "tab\there\u{0}nul\u{1b}[31mesc\u{7f}del\r\n\u{202e}rtl\n",
    )
    .expect("write");
    std::fs::write(i("latin1.txt"), b"caf\xe9\n").expect("write");

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
    let m_vocab = copy_checkpoint("clvp/tiny", root, "m-vocab");
    std::fs::write(m_vocab.join("vocab.json"), "[1, 2, 3]").expect("write");

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

    // --- codes: a good .ecdc and safetensors from the CLI, then broken copies ---
    let good_ecdc = i("good.ecdc");
    let good_codes = i("good.safetensors");
    for target in [&good_ecdc, &good_codes] {
        let o = Command::new(env!("CARGO_BIN_EXE_clvp"))
            .args([
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&e2e24),
                s(target),
            ])
            .output()
            .expect("clvp runs");
        assert!(
            o.status.success(),
            "setup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let g = std::fs::read(&good_ecdc).expect("read");
    let meta_len = u32::from_be_bytes(g[5..9].try_into().expect("4 bytes")) as usize;
    let meta = g[9..9 + meta_len].to_vec();
    let body = g[9 + meta_len..].to_vec();
    assert_eq!(
        meta,
        br#"{"m": "encodec_24khz", "al": 4850, "nc": 8, "lm": false}"#
    );
    let ecdc_cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad-magic", [&b"RIFF"[..], &g[4..]].concat()),
        ("version", ecdc(1, &meta, &body)),
        ("empty", Vec::new()),
        ("short", g[..6].to_vec()),
        ("meta-cut", g[..9 + meta_len / 2].to_vec()),
        (
            "meta-len-huge",
            [&b"ECDC\x00\xff\xff\xff\xff"[..], &meta, &body].concat(),
        ),
        (
            "meta-not-json",
            ecdc(0, br#"{"m": "encodec_24khz", "#, &body),
        ),
        ("meta-not-utf8", ecdc(0, b"{\"m\": \"\xff\xfe\"}", &body)),
        ("meta-array", ecdc(0, b"[1,2,3]", &body)),
        (
            "meta-no-nc",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al-string",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": "4850", "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-model",
            ecdc(
                0,
                br#"{"m": "encodec_96khz", "al": 4850, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-lm",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "nc": 8, "lm": true}"#,
                &body,
            ),
        ),
        (
            "meta-nc0",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "nc": 0, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al0",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 0, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al-huge",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 1000000000000000, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        ("body-cut", ecdc(0, &meta, &body[..body.len() / 2])),
        (
            "body-trailing",
            ecdc(0, &meta, &[&body[..], &[0; 7]].concat()),
        ),
        ("codes-1023", ecdc(0, &meta, &vec![0xff; body.len()])),
    ];
    for (name, bytes) in &ecdc_cases {
        std::fs::write(i(&format!("{name}.ecdc")), bytes).expect("write");
    }
    let codes = safetensors_entries(&good_codes);
    let codes_edit = |name: &str, f: &dyn Fn(&mut Vec<Entry>)| {
        let mut c = codes.clone();
        f(&mut c);
        std::fs::write(i(name), safetensors_file(&c, None)).expect("write");
    };
    let find = |c: &mut Vec<Entry>, k: &str| -> usize {
        c.iter().position(|e| e.0 == k).expect("codes tensor")
    };
    codes_edit("neg.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].3[..8].copy_from_slice(&(-3i64).to_le_bytes());
    });
    codes_edit("f64-codes.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].1 = "F64".into();
    });
    codes_edit("rank3.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].2.remove(1);
    });
    codes_edit("len-neg.safetensors", &|c| {
        let k = find(c, "audio_length");
        c[k].3 = (-1i64).to_le_bytes().to_vec();
    });
    codes_edit("pad-huge.safetensors", &|c| {
        let k = find(c, "last_frame_pad_length");
        c[k].3 = 1_000_000_000_000_000i64.to_le_bytes().to_vec();
    });
    codes_edit("no-frames.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].2[3] = 0;
        c[k].3.clear();
    });
    codes_edit("no-codes.safetensors", &|c| {
        c.retain(|e| e.0 != "audio_codes")
    });
    let gc = std::fs::read(&good_codes).expect("read");
    std::fs::write(i("cut.safetensors"), &gc[..gc.len() - 100]).expect("write");
    let many_codes = vec!["5"; 16_385].join(",");

    // --- output locations ---
    let ro = root.join("read-only");
    std::fs::create_dir_all(&ro).expect("mkdir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    }
    // Root ignores mode bits; sysfs refuses new files even to root. Without either the case is skipped (said).
    let read_only = if unwritable(&ro) {
        Some(ro.clone())
    } else if Path::new("/sys").is_dir() && unwritable(Path::new("/sys")) {
        Some(PathBuf::from("/sys"))
    } else {
        None
    };
    let missing_dir = root.join("no-such-dir");
    let file_parent = i("ok.wav").join("x.safetensors");
    let as_dir = out.join("is-a-dir.safetensors");
    std::fs::create_dir_all(&as_dir).expect("mkdir");

    let ok_wav = i("ok.wav");
    let okw = s(&ok_wav);
    let f = |audio: &str, output: &Path| -> Vec<String> {
        ["features", "--audio", audio, "--output", s(output)]
            .iter()
            .map(|x| x.to_string())
            .collect()
    };
    let feat = |name: &'static str, file: &str, needles: &[&str]| {
        let p = i(file);
        let output = o(&format!("{name}.safetensors"));
        let mut needles = needles.to_vec();
        needles.push(file);
        Case {
            name,
            args: f(s(&p), &output),
            outputs: vec![output],
            expect: Expect::Fails(needles.iter().map(|x| x.to_string()).collect()),
        }
    };
    let feat_ok = |name: &'static str, file: &str| {
        let output = o(&format!("{name}.safetensors"));
        Case {
            name,
            args: f(s(&i(file)), &output),
            outputs: vec![output],
            expect: Expect::Succeeds(features_ok()),
        }
    };
    let embed = |name: &'static str, model: &Path, text: &str, needles: &[&str]| {
        let output = o(&format!("{name}.safetensors"));
        fails(
            name,
            &[
                "embed-text",
                "--model",
                s(model),
                "--text",
                text,
                "--output",
                s(&output),
            ],
            &[&output],
            needles,
        )
    };
    let decode = |name: &'static str, input: &str, needles: &[&str]| {
        let output = o(&format!("{name}.wav"));
        let mut needles = needles.to_vec();
        needles.push(input);
        fails(
            name,
            &[
                "encodec",
                "decode",
                "--model",
                &enc24,
                s(&i(input)),
                s(&output),
            ],
            &[&output],
            &needles,
        )
    };
    let roundtrip = |name: &'static str, model: &Path, needles: &[&str]| {
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
    let gen_out = o("generate.safetensors");
    let generate =
        |name: &'static str, text: &str, voice: &str, extra: &[&str], needles: &[&str]| {
            let mut args = vec![
                "generate",
                "--model",
                &tiny,
                "--text",
                text,
                "--voice",
                voice,
                "--output",
                s(&gen_out),
            ];
            args.extend_from_slice(extra);
            fails(name, &args, &[&gen_out], needles)
        };

    let mut cases = vec![
        // Audio.
        feat("audio missing", "no-such-voice.wav", &["no such file"]),
        feat(
            "audio empty file",
            "empty.wav",
            &["the file is empty (0 bytes)"],
        ),
        feat(
            "audio random bytes",
            "noise.wav",
            &["not a recognised audio file"],
        ),
        feat(
            "audio truncated data",
            "cut.wav",
            &["truncated file", "of the 22050 frames"],
        ),
        feat(
            "audio truncated header",
            "header-only.wav",
            &["truncated file", "header"],
        ),
        feat(
            "audio NaN sample",
            "nan.wav",
            &["non-finite", "channel 0, frame 0"],
        ),
        feat("audio Inf sample", "inf.wav", &["non-finite", "frame 500"]),
        feat("audio zero samples", "zero.wav", &["zero length"]),
        feat(
            "audio 1 Hz",
            "1hz.wav",
            &["from 1 Hz to 22050 Hz", "too far apart"],
        ),
        feat(
            "audio 65535 channels",
            "65535-ch.wav",
            &["65535 channels of 16 bits"],
        ),
        feat(
            "audio is a directory",
            ".",
            &["cannot read the file", "directory"],
        ),
        feat_ok("audio one sample", "one.wav"),
        feat_ok("audio 8 channels", "eight-ch.wav"),
        feat_ok("audio 8 kHz", "8k.wav"),
        feat_ok("audio 192 kHz", "192k.wav"),
        generate(
            "voice with NaN",
            "Hi.",
            s(&i("nan.wav")),
            &["--greedy"],
            &["loading voice", "nan.wav", "non-finite"],
        ),
        fails(
            "encodec 8 channels into a stereo model",
            &[
                "encodec",
                "encode",
                "--model",
                &enc48,
                "-b",
                "3.6",
                s(&i("eight-ch.wav")),
                s(&o("8ch.ecdc")),
            ],
            &[&o("8ch.ecdc")],
            &["eight-ch.wav", "cannot convert 8 channels to 2"],
        ),
        fails(
            "encodec zero samples",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&i("zero.wav")),
                s(&o("zero.ecdc")),
            ],
            &[&o("zero.ecdc")],
            &["zero.wav", "zero length"],
        ),
        // Text.
        embed(
            "text empty",
            Path::new(&tiny),
            "",
            &["no tokens after normalisation"],
        ),
        embed(
            "text of 100k characters",
            Path::new(&tiny),
            &long_text,
            &["100000 text tokens", "text encoder", "split the text"],
        ),
        succeeds(
            "text with control characters",
            &[
                "embed-text",
                "--model",
                &tiny,
                "--text",
                "a\u{1}b\u{1b}[0m\tc\rd\u{7f}\u{200b}",
                "--output",
                s(&o("control.safetensors")),
            ],
            &[&o("control.safetensors")],
            embeds_ok("text_embeds"),
        ),
        succeeds(
            "text file with NUL and control characters",
            &["tokenize", "--text-file", s(&i("control.txt"))],
            &[],
            None,
        ),
        fails(
            "text file not UTF-8",
            &["tokenize", "--text-file", s(&i("latin1.txt"))],
            &[],
            &["latin1.txt", "valid UTF-8"],
        ),
        generate(
            "text over the token limit",
            &over_limit,
            okw,
            &["--greedy"],
            &["over the limit of 37", "max_text_tokens 40"],
        ),
        generate(
            "text empty (generate)",
            "",
            okw,
            &["--greedy"],
            &["no tokens after normalisation"],
        ),
        generate(
            "pad_to_max_mel_tokens huge",
            "Hi.",
            okw,
            &["--greedy", "--pad-to-max-mel-tokens", "1000000000000"],
            &["pad_to_max_mel_tokens", "speech encoder"],
        ),
        embed(
            "tokenizer vocab.json not an object",
            &m_vocab,
            "Hi.",
            &["vocab.json"],
        ),
        // Weights.
        embed(
            "weights truncated",
            &m_trunc,
            "Hi.",
            &["m-trunc/model.safetensors", "truncated"],
        ),
        embed(
            "weights header cut",
            &m_header_cut,
            "Hi.",
            &[
                "m-header-cut/model.safetensors",
                "header length runs past the end",
            ],
        ),
        embed(
            "weights empty",
            &m_empty,
            "Hi.",
            &["m-empty/model.safetensors", "0 bytes"],
        ),
        embed(
            "weights missing",
            &m_no_weights,
            "Hi.",
            &["no weights in", "model.safetensors"],
        ),
        embed(
            "tensor mis-shaped",
            &m_shape,
            "Hi.",
            &[key, "[32, 2]", "expects [64]"],
        ),
        embed(
            "tensor I32",
            &m_i32,
            "Hi.",
            &[key, "dtype I32", "F32, F16, BF16 and F64"],
        ),
        embed(
            "header repeats a key",
            &m_dup_other,
            "Hi.",
            &["more than once", &first.0],
        ),
        embed(
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
            "config an array",
            &c_array,
            "Hi.",
            &["c-array/config.json", "JSON object"],
        ),
        embed(
            "config a string",
            &c_string,
            "Hi.",
            &["c-string/config.json", "JSON object"],
        ),
        embed(
            "config cut short",
            &c_cut,
            "Hi.",
            &["c-cut/config.json", "line 1 column 16"],
        ),
        embed(
            "config empty",
            &c_empty,
            "Hi.",
            &["c-empty/config.json", "EOF"],
        ),
        embed(
            "config hidden_size 0",
            &c_hidden0,
            "Hi.",
            &["text_config.hidden_size", "must be positive"],
        ),
        embed(
            "config heads 0",
            &c_heads0,
            "Hi.",
            &["decoder_config.num_attention_heads", "must be positive"],
        ),
        embed(
            "config vocab 0",
            &c_vocab0,
            "Hi.",
            &["speech_config.vocab_size", "must be positive"],
        ),
        embed(
            "config vocab huge",
            &c_vocab_huge,
            "Hi.",
            &[
                "text_config.vocab_size",
                "1000000000000 is larger than the supported maximum",
            ],
        ),
        embed(
            "config positions huge",
            &c_pos_huge,
            "Hi.",
            &[
                "decoder_config.max_position_embeddings",
                "4611686018427387904 is larger",
            ],
        ),
        embed(
            "config eos out of range",
            &c_eos,
            "Hi.",
            &["decoder_config.eos_token_id", "0..260"],
        ),
        // A field of the wrong type: the file, the field, the value and the expected type.
        embed(
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
        // Codes.
        fails(
            "speech code out of range",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "5,9,999999",
                "--output",
                s(&o("c1.safetensors")),
            ],
            &[&o("c1.safetensors")],
            &["speech code 999999", "0..260"],
        ),
        fails(
            "speech code negative",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "5,-1",
                "--output",
                s(&o("c2.safetensors")),
            ],
            &[&o("c2.safetensors")],
            &["\"-1\"", "not a non-negative integer"],
        ),
        fails(
            "speech code past u32",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "99999999999999999999",
                "--output",
                s(&o("c3.safetensors")),
            ],
            &[&o("c3.safetensors")],
            &["99999999999999999999", "too large"],
        ),
        fails(
            "speech codes empty",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                ",",
                "--output",
                s(&o("c4.safetensors")),
            ],
            &[&o("c4.safetensors")],
            &["--codes is empty"],
        ),
        fails(
            "speech codes too many",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                &many_codes,
                "--output",
                s(&o("c5.safetensors")),
            ],
            &[&o("c5.safetensors")],
            &["16385 speech codes", "speech encoder"],
        ),
        decode(
            "encodec code negative",
            "neg.safetensors",
            &["code -3", "0..64"],
        ),
        decode(
            "encodec code 1023 in .ecdc",
            "codes-1023.ecdc",
            &["code 1023", "0..64"],
        ),
        decode(
            "encodec codes F64",
            "f64-codes.safetensors",
            &["audio_codes", "F64, expected I64"],
        ),
        decode(
            "encodec codes rank 3",
            "rank3.safetensors",
            &["expected [chunks, 1, n_q, T]"],
        ),
        decode(
            "encodec audio_length -1",
            "len-neg.safetensors",
            &["audio_length", "found -1"],
        ),
        decode(
            "encodec pad huge",
            "pad-huge.safetensors",
            &["last_frame_pad_length", "leaves none"],
        ),
        decode(
            "encodec zero frames",
            "no-frames.safetensors",
            &["are empty"],
        ),
        decode(
            "encodec no audio_codes",
            "no-codes.safetensors",
            &["no tensor `audio_codes`"],
        ),
        decode(
            "encodec codes truncated",
            "cut.safetensors",
            &["not a safetensors file"],
        ),
        // .ecdc.
        decode(
            "ecdc bad magic",
            "bad-magic.ecdc",
            &["starts with b\"RIFF\""],
        ),
        decode(
            "ecdc version 1",
            "version.ecdc",
            &["unsupported .ecdc version 1"],
        ),
        decode(
            "ecdc empty",
            "empty.ecdc",
            &["header needs 9 bytes, only 0"],
        ),
        decode(
            "ecdc 6 bytes",
            "short.ecdc",
            &["header needs 9 bytes, only 6"],
        ),
        decode(
            "ecdc metadata cut",
            "meta-cut.ecdc",
            &["metadata JSON needs 56 bytes, only 28"],
        ),
        decode(
            "ecdc metadata length huge",
            "meta-len-huge.ecdc",
            &["needs 4294967295 bytes"],
        ),
        decode(
            "ecdc metadata not JSON",
            "meta-not-json.ecdc",
            &["metadata is not valid JSON"],
        ),
        decode(
            "ecdc metadata not UTF-8",
            "meta-not-utf8.ecdc",
            &["metadata is not UTF-8"],
        ),
        decode(
            "ecdc metadata an array",
            "meta-array.ecdc",
            &["not a JSON object"],
        ),
        decode("ecdc no nc", "meta-no-nc.ecdc", &["no \"nc\" field"]),
        decode(
            "ecdc al a string",
            "meta-al-string.ecdc",
            &["field \"al\"", "\"4850\""],
        ),
        decode(
            "ecdc unknown model",
            "meta-model.ecdc",
            &["unknown .ecdc model \"encodec_96khz\""],
        ),
        decode("ecdc entropy-coded", "meta-lm.ecdc", &["entropy-coded"]),
        decode("ecdc nc 0", "meta-nc0.ecdc", &["cannot have 0 codebooks"]),
        decode("ecdc al 0", "meta-al0.ecdc", &["audio length is 0"]),
        decode(
            "ecdc al huge",
            "meta-al-huge.ecdc",
            &["truncated .ecdc file", "segment 0 codes"],
        ),
        decode(
            "ecdc body cut",
            "body-cut.ecdc",
            &["segment 0 codes needs 160 bytes, only 80"],
        ),
        decode(
            "ecdc trailing bytes",
            "body-trailing.ecdc",
            &["7 trailing bytes"],
        ),
        succeeds(
            "ecdc intact decodes",
            &[
                "encodec",
                "decode",
                "--model",
                &enc24,
                s(&good_ecdc),
                s(&o("good.wav")),
            ],
            &[&o("good.wav")],
            wav_ok(4850),
        ),
        // Output location.
        fails(
            "output parent missing",
            &f(okw, &missing_dir.join("x.safetensors"))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[&missing_dir.join("x.safetensors")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "output parent is a file",
            &f(okw, &file_parent)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[&file_parent],
            &["ok.wav is not a directory"],
        ),
        fails(
            "output is a directory",
            &f(okw, &as_dir)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[],
            &["is-a-dir.safetensors", "is a directory"],
        ),
        fails(
            "second output's directory missing: neither written",
            &[
                "features",
                "--audio",
                okw,
                "--output",
                s(&o("pair.safetensors")),
                "--png",
                s(&missing_dir.join("pair.png")),
            ],
            &[&o("pair.safetensors"), &missing_dir.join("pair.png")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            ".ecdc into a missing directory",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&e2e24),
                s(&missing_dir.join("x.ecdc")),
            ],
            &[&missing_dir.join("x.ecdc")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "generate into a missing directory",
            &[
                "generate",
                "--model",
                &tiny,
                "--text",
                "Hi.",
                "--voice",
                okw,
                "--greedy",
                "--output",
                s(&missing_dir.join("g.safetensors")),
            ],
            &[&missing_dir.join("g.safetensors")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "encode output extension",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&e2e24),
                s(&o("x.mp3")),
            ],
            &[&o("x.mp3")],
            &[".ecdc or .safetensors"],
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
    match &read_only {
        Some(dir) => {
            let p = dir.join("x.safetensors");
            let w = dir.join("x.wav");
            cases.push(fails(
                "output in a read-only directory",
                &f(okw, &p).iter().map(String::as_str).collect::<Vec<_>>(),
                &[&p],
                &["cannot create a file in", "permission denied"],
            ));
            cases.push(fails(
                "decoded WAV into a read-only directory",
                &["encodec", "decode", "--model", &enc24, s(&good_ecdc), s(&w)],
                &[&w],
                &["cannot create a file in", "permission denied"],
            ));
        }
        None => eprintln!(
            "skipped the read-only directory cases: this user can write into a 0555 directory and /sys"
        ),
    }

    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        for p in check_case(case, &logs, index) {
            failures.push(format!("[{}] {p}", case.name));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755));
    }
    assert!(
        failures.is_empty(),
        "{} of {} CLI cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------
// The library, where the CLI cannot reach (in-memory input, hand-built values, API misuse).

type LibRun = Box<dyn Fn() -> Result<(), String>>;

fn err_text<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn hostile_input_through_the_library() {
    use clvp::audio::{Audio, ClvpFeatureExtractor, decode_bytes};
    use clvp::encodec::ecdc::{EcdcFile, EcdcSegment, read_ecdc, write_ecdc};
    use clvp::{AudioCodes, ChunkCodes, Clvp, Encodec, GenerationConfig, HfCodes};

    let device = clvp::device::device("cpu").expect("cpu");
    let tiny_dir = fixture_path("clvp/tiny");
    let clvp = std::rc::Rc::new(Clvp::from_pretrained(s(&tiny_dir), &device).expect("tiny CLVP"));
    let enc_dir = fixture_path("encodec/tiny_24k");
    let enc =
        std::rc::Rc::new(Encodec::from_pretrained(s(&enc_dir), &device).expect("tiny EnCodec"));
    let enc48_dir = fixture_path("encodec/tiny_48k");
    let enc48 = std::rc::Rc::new(
        Encodec::from_pretrained(s(&enc48_dir), &device).expect("tiny EnCodec 48k"),
    );
    let fe = ClvpFeatureExtractor::tortoise();
    let tok = clvp::text::ClvpTokenizer::tortoise().expect("tokenizer");

    // (name, run, expected substrings of the error; None: must succeed)
    let mut cases: Vec<(&str, LibRun, Option<Vec<&str>>)> = Vec::new();
    let mut add =
        |name, run: LibRun, needles: Option<Vec<&'static str>>| cases.push((name, run, needles));

    add(
        "decode_bytes empty",
        Box::new(|| err_text(decode_bytes(Vec::new(), None))),
        Some(vec!["<memory>", "empty"]),
    );
    add(
        "decode_bytes random",
        Box::new(|| err_text(decode_bytes(vec![0x5a; 3000], Some("wav")))),
        Some(vec!["<memory>", "not a recognised audio file"]),
    );
    add(
        "Audio no channels",
        Box::new(|| err_text(Audio::new(22050, vec![]))),
        Some(vec!["no channels"]),
    );
    add(
        "Audio ragged channels",
        Box::new(|| err_text(Audio::new(22050, vec![vec![0.0; 3], vec![0.0; 2]]))),
        Some(vec!["channel 1 has 2 frames but channel 0 has 3"]),
    );
    add(
        "Audio 0 Hz",
        Box::new(|| err_text(Audio::mono(0, vec![0.0; 3]))),
        Some(vec!["0 Hz"]),
    );
    add(
        "resample a hand-built 0 Hz clip",
        Box::new(|| {
            let a = Audio {
                sample_rate: 0,
                channels: vec![vec![0.1; 100]],
            };
            err_text(a.resample(22050))
        }),
        Some(vec!["sample rates must be positive"]),
    );
    add(
        "resample to u32::MAX Hz",
        Box::new(|| {
            err_text(Audio::mono(22050, vec![0.1; 22050]).and_then(|a| a.resample(u32::MAX)))
        }),
        Some(vec!["too far apart"]),
    );
    add(
        "to_channels 6 to 2",
        Box::new(|| {
            err_text(Audio::new(22050, vec![vec![0.0; 4]; 6]).and_then(|a| a.to_channels(2)))
        }),
        Some(vec!["cannot convert 6 channels to 2"]),
    );
    let fe1 = fe.clone();
    add(
        "features of an empty batch",
        Box::new(move || err_text(fe1.extract(&[], Some(22050)))),
        Some(vec!["no clips"]),
    );
    let fe2 = fe.clone();
    add(
        "features of NaN",
        Box::new(move || err_text(fe2.extract(&[&[0.1, f32::NAN, 0.2]], Some(22050)))),
        Some(vec!["clip 0", "non-finite", "frame 1"]),
    );
    let fe3 = fe.clone();
    add(
        "features at the wrong rate",
        Box::new(move || err_text(fe3.extract(&[&[0.1; 100]], Some(16000)))),
        Some(vec!["expects 22050 Hz", "16000 Hz"]),
    );
    let fe4 = fe.clone();
    add(
        "features of an empty clip (zeros, as HF pads)",
        Box::new(move || {
            let f = fe4
                .extract(&[&[]], Some(22050))
                .map_err(|e| e.to_string())?;
            match f.input_features.iter().all(|v| v.is_finite()) {
                true => Ok(()),
                false => Err("non-finite features".into()),
            }
        }),
        None,
    );
    add(
        "preprocessor config with sampling_rate 0",
        Box::new(|| err_text(ClvpFeatureExtractor::from_json(r#"{"sampling_rate": 0}"#))),
        Some(vec!["sampling_rate"]),
    );
    add(
        "tokenizer decodes an unknown id",
        Box::new(move || err_text(tok.decode(&[999_999], false))),
        Some(vec!["unknown token id 999999"]),
    );
    add(
        "read_ecdc of 3 bytes",
        Box::new(|| err_text(read_ecdc(&mut &b"ECD"[..]))),
        Some(vec!["header needs 9 bytes, only 3"]),
    );
    add(
        "write_ecdc code out of range",
        Box::new(|| {
            let file = EcdcFile {
                model: "encodec_24khz".into(),
                audio_length: 320,
                num_codebooks: 2,
                segments: vec![EcdcSegment {
                    scale: None,
                    num_codebooks: 2,
                    codes: vec![5000, 1],
                }],
            };
            err_text(write_ecdc(&mut Vec::new(), &file))
        }),
        Some(vec!["code 5000 is out of range", "< 1024"]),
    );
    add(
        "write_ecdc wrong segment count",
        Box::new(|| {
            let file = EcdcFile {
                model: "encodec_24khz".into(),
                audio_length: 320,
                num_codebooks: 2,
                segments: vec![],
            };
            err_text(write_ecdc(&mut Vec::new(), &file))
        }),
        Some(vec!["has 1 segments, got 0"]),
    );
    add(
        "rank with width 0",
        Box::new(|| err_text(clvp::rank::logits_per_text(&[1.0], &[1.0], 0, 1.0))),
        Some(vec!["rows of width 0"]),
    );
    add(
        "rank ragged rows",
        Box::new(|| err_text(clvp::rank::logits_per_text(&[1.0; 3], &[1.0; 4], 2, 1.0))),
        Some(vec!["3 values are not rows of width 2"]),
    );
    add(
        "HF codes with batch 2",
        Box::new(|| {
            let hf = HfCodes {
                audio_codes: vec![0; 8],
                shape: [1, 2, 2, 2],
                audio_scales: None,
                last_frame_pad_length: 0,
                audio_length: 640,
            };
            err_text(AudioCodes::from_hf(&hf))
        }),
        Some(vec!["batch 2"]),
    );
    add(
        "HF codes shorter than their shape",
        Box::new(|| {
            let hf = HfCodes {
                audio_codes: vec![0; 3],
                shape: [1, 1, 2, 2],
                audio_scales: None,
                last_frame_pad_length: 0,
                audio_length: 640,
            };
            err_text(AudioCodes::from_hf(&hf))
        }),
        Some(vec!["3 values", "needs 4"]),
    );
    let e1 = enc.clone();
    add(
        "EnCodec chunk with too few codes",
        Box::new(move || {
            let codes = AudioCodes {
                chunks: vec![ChunkCodes {
                    codes: vec![1, 2, 3],
                    frames: 2,
                    scale: None,
                }],
                num_codebooks: 2,
                audio_length: 640,
            };
            err_text(e1.decode(&codes))
        }),
        Some(vec!["chunk 0 has 3 codes for 2 codebooks × 2 frames"]),
    );
    let e2 = enc48.clone();
    add(
        "EnCodec encode of hand-built ragged stereo",
        Box::new(move || {
            let a = Audio {
                sample_rate: 48000,
                channels: vec![vec![0.1; 640], vec![0.1; 320]],
            };
            err_text(e2.encode(&a, None))
        }),
        Some(vec!["channel 1 has 320 frames but channel 0 has 640"]),
    );
    let e3 = enc.clone();
    add(
        "EnCodec encode of hand-built audio without channels",
        Box::new(move || {
            let a = Audio {
                sample_rate: 24000,
                channels: vec![],
            };
            err_text(e3.encode(&a, None))
        }),
        Some(vec!["no channels"]),
    );
    let e4 = enc.clone();
    add(
        "EnCodec bandwidth NaN",
        Box::new(move || {
            let a = Audio::mono(24000, vec![0.1; 640]).map_err(|e| e.to_string())?;
            err_text(e4.encode(&a, Some(f64::NAN)))
        }),
        Some(vec!["bandwidth of NaN kbps", "0.9, 1.8, 3.6"]),
    );
    let c1 = clvp.clone();
    add(
        "generate without a voice",
        Box::new(move || err_text(c1.generate("Hi.", &[], &GenerationConfig::default()))),
        Some(vec!["no voice clip"]),
    );
    let c2 = clvp.clone();
    add(
        "generate with a NaN voice",
        Box::new(move || {
            err_text(c2.generate("Hi.", &[vec![f32::NAN; 100]], &GenerationConfig::default()))
        }),
        Some(vec!["clip 0", "non-finite"]),
    );
    let c3 = clvp.clone();
    add(
        "generate with an empty voice clip",
        Box::new(move || {
            let gc = GenerationConfig {
                max_new_tokens: 3,
                ..GenerationConfig::default()
            };
            let out = c3
                .generate("Hi.", &[vec![]], &gc)
                .map_err(|e| e.to_string())?;
            match out.speech_ids.len() {
                1 => Ok(()),
                n => Err(format!("{n} candidates")),
            }
        }),
        None,
    );
    let c4 = clvp.clone();
    add(
        "generate with num_beams 0",
        Box::new(move || {
            let gc = GenerationConfig {
                num_beams: 0,
                ..GenerationConfig::default()
            };
            err_text(c4.generate("Hi.", &[vec![0.1; 100]], &gc))
        }),
        Some(vec!["num_beams must be at least 1"]),
    );
    let c5 = clvp.clone();
    add(
        "text rows of different lengths",
        Box::new(move || err_text(c5.get_text_features(&[vec![5, 6], vec![5]], None))),
        Some(vec!["different lengths"]),
    );
    let c6 = clvp.clone();
    add(
        "no speech rows",
        Box::new(move || err_text(c6.get_speech_features(&[]))),
        Some(vec!["no speech codes given"]),
    );
    let c7 = clvp.clone();
    add(
        "an empty text row",
        Box::new(move || err_text(c7.get_text_features(&[vec![]], None))),
        Some(vec!["an empty sequence of text tokens"]),
    );
    let c8 = clvp.clone();
    add(
        "a text token out of range",
        Box::new(move || err_text(c8.get_text_features(&[vec![5, 4000]], None))),
        Some(vec!["text token 4000", "0..256"]),
    );
    add(
        "unknown device",
        Box::new(|| err_text(clvp::device::device("tpu"))),
        Some(vec!["unknown device \"tpu\""]),
    );
    add(
        "empty model argument",
        Box::new(|| err_text(clvp::hub::Checkpoint::from_pretrained("", None))),
        Some(vec!["not a local directory"]),
    );

    let mut failures = Vec::new();
    for (name, run, needles) in &cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        match (outcome, needles) {
            (Err(_), _) => failures.push(format!("[{name}] panicked")),
            (Ok(Ok(())), Some(_)) => {
                failures.push(format!("[{name}] succeeded, expected an error"))
            }
            (Ok(Err(e)), None) => failures.push(format!("[{name}] failed: {e}")),
            (Ok(Err(e)), Some(needles)) => {
                for n in needles {
                    if !e.contains(n) {
                        failures.push(format!("[{name}] message lacks {n:?}: {e}"));
                    }
                }
            }
            (Ok(Ok(())), None) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} library cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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
