//! Shared pieces of the hostile-input suites (`hostile_*.rs`), table-driven: every front door of the `clvp`
//! binary (audio, text, weights and configs, codes, `.ecdc`, the output location) and of the library where the
//! CLI cannot reach has its own file.
//!
//! Each case either fails with a non-zero exit (an `Err`) whose message names the problem, or gives a correct
//! result. Never a panic (exit code 101, "panicked", an abort), never a hang (each run has a deadline), never
//! a half-written output (after a failure the output paths do not exist and no temporary file is left).
//! All cases of a file run; the failures are listed together at the end. The messages are documented in
//! docs/errors.md.

// Each test binary uses its own share of these helpers.
#![allow(dead_code)]

#[cfg(unix)]
mod unix;
#[cfg(unix)]
#[allow(unused_imports)] // not every suite uses them
pub use unix::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clvp_parity::{fixture_path, read_safetensors};
use serde_json::{Value, json};

/// A generous bound for one run: every case takes well under a second on the tiny fixtures; only a hang
/// reaches it.
pub const DEADLINE: Duration = Duration::from_secs(300);

pub type Check = Box<dyn Fn(&Path) -> Result<(), String>>;

/// One safetensors tensor: key, dtype, shape, little-endian bytes.
pub type Entry = (String, String, Vec<usize>, Vec<u8>);

pub enum Expect {
    /// Non-zero exit; stderr contains every substring (case-insensitive).
    Fails(Vec<String>),
    /// Zero exit; the outputs exist and pass the check (run on the first output).
    Succeeds(Option<Check>),
}

pub struct Case {
    pub name: &'static str,
    pub args: Vec<String>,
    /// Files the command would write.
    pub outputs: Vec<PathBuf>,
    pub expect: Expect,
}

pub fn fails(name: &'static str, args: &[&str], outputs: &[&Path], needles: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|p| p.to_path_buf()).collect(),
        expect: Expect::Fails(needles.iter().map(|s| s.to_string()).collect()),
    }
}

pub fn succeeds(
    name: &'static str,
    args: &[&str],
    outputs: &[&Path],
    check: Option<Check>,
) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|p| p.to_path_buf()).collect(),
        expect: Expect::Succeeds(check),
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A fixture directory or file as a command-line argument.
pub fn fixture(name: &str) -> String {
    s(&fixture_path(name)).to_string()
}

/// The directories of one suite: inputs, outputs and logs under one temporary root.
pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub inp: PathBuf,
    pub out: PathBuf,
    pub logs: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let (inp, out, logs) = (root.join("in"), root.join("out"), root.join("logs"));
        for d in [&inp, &out, &logs] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        Dirs {
            _tmp: tmp,
            root,
            inp,
            out,
            logs,
        }
    }

    /// A file in the input directory.
    pub fn i(&self, name: &str) -> PathBuf {
        self.inp.join(name)
    }

    /// A file in the output directory.
    pub fn o(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// `in/ok.wav`: one second of a 22050 Hz mono tone, the voice and audio of most cases.
    pub fn ok_wav(&self) -> PathBuf {
        let p = self.i("ok.wav");
        if !p.exists() {
            wav_f32(&p, 22050, 1, &tone(22050, 1));
        }
        p
    }
}

// ---------------------------------------------------------------------------------------------------------
// Input builders.
/// A 32-bit float WAV (hound), interleaved `samples`.
pub fn wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
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

pub fn tone(frames: usize, channels: usize) -> Vec<f32> {
    (0..frames * channels)
        .map(|i| 0.3 * ((i / channels) as f32 * 0.05).sin())
        .collect()
}

/// A safetensors file from `(key, dtype, shape, bytes)` entries; `extra` is appended raw to the header's JSON
/// object (to repeat a key, which no serializer does).
pub fn safetensors_file(entries: &[Entry], extra: Option<String>) -> Vec<u8> {
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
pub fn safetensors_entries(path: &Path) -> Vec<Entry> {
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
pub fn copy_checkpoint(fixture: &str, root: &Path, name: &str) -> PathBuf {
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
pub fn tiny_with_weights(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = copy_checkpoint("clvp/tiny", root, name);
    std::fs::write(dir.join("model.safetensors"), bytes).expect("write weights");
    dir
}

/// A checkpoint copy with `config.json` replaced by `text`.
pub fn with_config(fixture: &str, root: &Path, name: &str, text: &str) -> PathBuf {
    let dir = copy_checkpoint(fixture, root, name);
    std::fs::write(dir.join("config.json"), text).expect("write config");
    dir
}

/// A checkpoint copy with one config field set (`path` is a list of keys).
pub fn config_edit(fixture: &str, root: &Path, name: &str, path: &[&str], value: Value) -> PathBuf {
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
pub fn ecdc(version: u8, meta: &[u8], body: &[u8]) -> Vec<u8> {
    [
        &b"ECDC"[..],
        &[version],
        &(meta.len() as u32).to_be_bytes(),
        meta,
        body,
    ]
    .concat()
}

/// `target` (`.ecdc` or `.safetensors`) written by `clvp encodec encode` of the 24 kHz fixture clip at 3.6 kbps.
pub fn encode_good(target: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_clvp"))
        .args([
            "encodec",
            "encode",
            "--model",
            &fixture("encodec/tiny_24k"),
            "-b",
            "3.6",
            &fixture("encodec/e2e_24k.wav"),
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

// ---------------------------------------------------------------------------------------------------------
// Case builders shared by several front doors.

/// `clvp features --audio AUDIO --output OUTPUT`.
pub fn features_args(audio: &str, output: &Path) -> Vec<String> {
    ["features", "--audio", audio, "--output", s(output)]
        .iter()
        .map(|x| x.to_string())
        .collect()
}

/// `embed-text` of `text` with the checkpoint `model` into `out/{name}.safetensors`, expected to fail.
pub fn embed(d: &Dirs, name: &'static str, model: &Path, text: &str, needles: &[&str]) -> Case {
    let output = d.o(&format!("{name}.safetensors"));
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
}

/// `generate` with the tiny checkpoint into `out/generate.safetensors`, expected to fail.
pub fn generate(
    d: &Dirs,
    name: &'static str,
    text: &str,
    voice: &str,
    extra: &[&str],
    needles: &[&str],
) -> Case {
    let tiny = fixture("clvp/tiny");
    let gen_out = d.o("generate.safetensors");
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
}

/// `encodec decode` of `in/{input}` with the 24 kHz fixture into `out/{name}.wav`, expected to fail naming
/// the input.
pub fn decode(d: &Dirs, name: &'static str, input: &str, needles: &[&str]) -> Case {
    let output = d.o(&format!("{name}.wav"));
    let mut needles = needles.to_vec();
    needles.push(input);
    fails(
        name,
        &[
            "encodec",
            "decode",
            "--model",
            &fixture("encodec/tiny_24k"),
            s(&d.i(input)),
            s(&output),
        ],
        &[&output],
        &needles,
    )
}

// ---------------------------------------------------------------------------------------------------------
// Checks of successful results.

pub fn features_ok() -> Option<Check> {
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

pub fn embeds_ok(key: &'static str) -> Option<Check> {
    Some(Box::new(move |p: &Path| {
        let t = read_safetensors(p).map_err(|e| format!("unreadable output: {e}"))?;
        let e = t.get(key).ok_or_else(|| format!("no {key}"))?;
        if e.shape != [1, 32] || !e.f64.iter().all(|v| v.is_finite()) {
            return Err(format!("{key}: shape {:?} or non-finite values", e.shape));
        }
        Ok(())
    }))
}

pub fn wav_ok(frames: u32) -> Option<Check> {
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

pub struct Run {
    pub code: Option<i32>,
    pub stderr: String,
}

/// `clvp` with the suites' environment, run in `cwd`: anything written to a relative path (a file named `-` by
/// a command that did not take it as standard output) lands there, not in the source tree; nothing may reach
/// the network (every model is a local directory, and a hub id stays in an empty cache).
///
/// `CLVP_TEST_BIN` runs the suites against another build of `clvp` (the release binary, or an older one to see
/// a regression test fail).
pub fn clvp(cwd: &Path) -> Command {
    let bin =
        std::env::var_os("CLVP_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_clvp").into());
    let mut c = Command::new(bin);
    c.current_dir(cwd)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cwd.join("hf-cache"))
        .env("RUST_BACKTRACE", "0")
        .env_remove("CLVP_LOG")
        .stdin(Stdio::null());
    c
}

pub fn run_clvp(args: &[String], logs: &Path, index: usize) -> Result<Run, String> {
    let err_path = logs.join(format!("stderr-{index}"));
    let stderr = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = clvp(logs)
        .args(args)
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
pub fn leftovers(output: &Path) -> Vec<String> {
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

pub fn check_case(case: &Case, logs: &Path, index: usize) -> Vec<String> {
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
pub fn unwritable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

/// Run every case; the problems found, each prefixed with its case's name. `min` guards against a table that
/// lost its cases.
pub fn check_cases(cases: &[Case], logs: &Path, min: usize) -> Vec<String> {
    assert!(
        cases.len() >= min,
        "{} cases, expected {min} or more",
        cases.len()
    );
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        for p in check_case(case, logs, index) {
            failures.push(format!("[{}] {p}", case.name));
        }
    }
    failures
}

/// Fail with the list of problems of `total` cases, if any.
pub fn report(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} CLI cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Run every case and fail with the list of problems.
pub fn run_cases(cases: &[Case], logs: &Path, min: usize) {
    report(&check_cases(cases, logs, min), cases.len());
}
