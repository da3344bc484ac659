//! Builders and runners of `hostile_validation.rs`: edited codes and checkpoints, wide WAVs, runs with an
//! environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use clvp_parity::fixture_path;

use crate::common::*;

/// A copy of the safetensors `src` at `dst` with the `index`-th value of `key` replaced by `value`'s bytes.
pub fn edit_value(src: &Path, dst: &Path, key: &str, index: usize, value: &[u8]) {
    let mut entries = safetensors_entries(src);
    let e = entries
        .iter_mut()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("{key} in {}", src.display()));
    let n = value.len();
    e.3[index * n..(index + 1) * n].copy_from_slice(value);
    std::fs::write(dst, safetensors_file(&entries, None)).expect("write");
}

/// `clvp encodec encode` of `audio` with `model` at `bandwidth` into `target`.
pub fn encode(model: &str, bandwidth: &str, audio: &str, target: &Path) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clvp"))
        .args([
            "encodec", "encode", "--model", model, "-b", bandwidth, audio,
        ])
        .arg(target)
        .output()
        .expect("clvp runs");
    assert!(
        o.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `encodec decode` of `input` with `model`, expected to fail naming `input` and every needle.
pub fn decode_with(
    d: &Dirs,
    name: &'static str,
    model: &str,
    input: &Path,
    needles: &[&str],
) -> Case {
    let output = d.o(&format!("{name}.wav"));
    let file = input.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let mut needles = needles.to_vec();
    needles.push(file);
    fails(
        name,
        &["encodec", "decode", "--model", model, s(input), s(&output)],
        &[&output],
        &needles,
    )
}

/// The tiny CLVP checkpoint copied to `root/name` with every value of `key` set to `value` (alternating in
/// sign when `alternate`).
pub fn tiny_with(root: &Path, name: &str, key: &str, value: f32, alternate: bool) -> PathBuf {
    let mut entries = safetensors_entries(&fixture_path("clvp/tiny/model.safetensors"));
    let e = entries
        .iter_mut()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("{key} in the tiny checkpoint"));
    e.3 = (0..e.3.len() / 4)
        .flat_map(|i| {
            let v = if alternate && i % 2 == 1 {
                -value
            } else {
                value
            };
            v.to_le_bytes()
        })
        .collect();
    tiny_with_weights(root, name, &safetensors_file(&entries, None))
}

/// A WAV with a 16-byte `fmt ` chunk (`tag` 1: PCM, 3: float) and `data`.
pub fn wav_raw(path: &Path, tag: u16, channels: u16, bits: u16, data: &[u8]) {
    let align = channels * bits / 8;
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    for x in [tag, channels] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&22050u32.to_le_bytes());
    v.extend_from_slice(&(22050 * u32::from(align)).to_le_bytes());
    for x in [align, bits] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    std::fs::write(path, v).expect("write wav");
}

/// A 16-bit WAV (hound; `WAVE_FORMAT_EXTENSIBLE` with an 18-bit mask beyond 2 channels), every channel `tone`.
pub fn wav_i16(path: &Path, channels: u16, frames: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for x in tone(frames, 1) {
        for _ in 0..channels {
            w.write_sample((x * 32767.0) as i16).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

/// `generate --greedy` of "Hi." with `model` into `out/{name}.safetensors`, expected to fail.
pub fn generate_with(
    d: &Dirs,
    name: &'static str,
    model: &Path,
    voice: &str,
    needles: &[&str],
) -> Case {
    let output = d.o(&format!("{name}.safetensors"));
    fails(
        name,
        &[
            "generate",
            "--model",
            s(model),
            "--text",
            "Hi.",
            "--voice",
            voice,
            "--greedy",
            "--output",
            s(&output),
        ],
        &[&output],
        needles,
    )
}

/// Exit code and stderr of `clvp args` with extra environment variables.
pub fn run_env(logs: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = clvp(logs);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("clvp runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `features --audio AUDIO --output OUTPUT` as string slices.
pub fn features_args_str<'a>(audio: &'a Path, output: &'a Path) -> Vec<&'a str> {
    vec!["features", "--audio", s(audio), "--output", s(output)]
}
