//! Shared pieces of the `clvp batch` suites: a corpus of generated clips, running the binary, reading the
//! Parquet shards back as JSON rows.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

pub fn bin() -> Command {
    Command::new(
        std::env::var_os("CLVP_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_clvp").into()),
    )
}

pub fn fixture(name: &str) -> String {
    clvp_parity::fixture_path(name)
        .to_string_lossy()
        .into_owned()
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run clvp")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `clvp encodec encode --model MODEL -b 1.8 WAV OUT` (the tiny checkpoints' bandwidths: 0.9, 1.8, 3.6).
pub fn encode_file(model: &str, wav: &Path, out: &Path) {
    let o = run(&[
        "encodec",
        "encode",
        "--model",
        model,
        "-b",
        "1.8",
        wav.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A tensor of a safetensors file as i64 (8-byte) or f32 (4-byte) values.
pub fn tensor_i64(path: &Path, name: &str) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// See [`tensor_i64`].
pub fn tensor_f32(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A 16-bit WAV of `seconds` at `rate` with `channels`, a chirp plus seeded noise (different per seed).
pub fn wav(path: &Path, rate: u32, channels: u16, seconds: f64, seed: u64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let frames = (seconds * f64::from(rate)) as usize;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        let f = 150.0 + 40.0 * seed as f64 + 300.0 * t;
        for c in 0..channels {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let x = 0.4 * (2.0 * std::f64::consts::PI * f * t + f64::from(c)).sin() + 0.05 * noise;
            w.write_sample((x * 32767.0) as i16).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

/// A corpus under `dir/clips`: `n` good clips of mixed rates, channels and lengths, and three broken items
/// (a missing file, a text file named .wav, a WAV cut short). Returns the manifest (JSONL, relative paths).
pub fn corpus(dir: &Path, n: usize) -> PathBuf {
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips).expect("mkdir");
    let rates = [8000, 16000, 22050, 24000, 44100, 48000];
    let mut lines = Vec::new();
    for i in 0..n {
        let name = format!("clips/c{i:02}.wav");
        let seconds = 0.15 + 0.37 * (i % 5) as f64;
        wav(
            &dir.join(&name),
            rates[i % rates.len()],
            1 + (i % 2) as u16,
            seconds,
            i as u64,
        );
        lines.push(json!({"id": format!("c{i:02}"), "audio": name}));
    }
    std::fs::write(clips.join("text.wav"), "not audio at all\n").expect("write");
    wav(&clips.join("cut.wav"), 24000, 1, 0.5, 99);
    let cut = std::fs::read(clips.join("cut.wav")).expect("read");
    std::fs::write(clips.join("cut.wav"), &cut[..30]).expect("write");
    lines.push(json!({"id": "broken-missing", "audio": "clips/missing.wav"}));
    lines.push(json!({"id": "broken-text", "audio": "clips/text.wav"}));
    lines.push(json!({"id": "broken-cut", "audio": "clips/cut.wav"}));
    let manifest = dir.join("manifest.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&manifest, text).expect("write manifest");
    manifest
}

/// A cell as JSON: numbers, strings and nested lists.
fn cell(a: &ArrayRef, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Int64 => json!(a.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => json!(a.as_primitive::<Float32Type>().value(i)),
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::List(_) => {
            let inner = a.as_list::<i32>().value(i);
            Value::Array((0..inner.len()).map(|j| cell(&inner, j)).collect())
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// The rows of a Parquet file, each a JSON object keyed by column, in file order.
pub fn rows(path: &Path) -> Vec<BTreeMap<String, Value>> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            out.push(
                schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, a)| (f.name().clone(), cell(a, i)))
                    .collect(),
            );
        }
    }
    out
}

/// Every result row of an output directory (all its shards), by id.
pub fn results(dir: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    shard_files(dir, "")
        .iter()
        .flat_map(|p| rows(p))
        .map(|r| (r["id"].as_str().expect("id").to_string(), r))
        .collect()
}

/// Every error row of an output directory, id → message.
pub fn errors(dir: &Path) -> BTreeMap<String, String> {
    shard_files(dir, "_errors")
        .iter()
        .flat_map(|p| rows(p))
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                r["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

/// The `shard-*.parquet` files of `dir/sub`, sorted.
pub fn shard_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("shard-") && n.ends_with(".parquet")
        })
        .collect();
    files.sort();
    files
}

/// Every file under `dir` (relative path → bytes), hidden ones included.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}
