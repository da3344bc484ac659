//! Bad input files: every error names the file and says what is wrong.

use std::path::Path;

use clvp_audio::{AudioError, load_audio};

fn wav_bytes(spec: hound::WavSpec, samples: &[f32]) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for &s in samples {
        match spec.sample_format {
            hound::SampleFormat::Float => w.write_sample(s).unwrap(),
            hound::SampleFormat::Int => w.write_sample((s * 32767.0) as i16).unwrap(),
        }
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

fn mono(float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

/// Load `path`, expect an error of the given kind whose message names the file and contains `words`.
fn expect_error(
    path: &Path,
    is_kind: fn(&AudioError) -> bool,
    words: &[&str],
    failures: &mut Vec<String>,
) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    match load_audio(path) {
        Ok(a) => failures.push(format!(
            "{name}: decoded {} frames instead of failing",
            a.num_frames()
        )),
        Err(e) => {
            let msg = e.to_string();
            if !is_kind(&e) {
                failures.push(format!("{name}: wrong error kind: {e:?}"));
            }
            if !msg.contains(&path.display().to_string()) {
                failures.push(format!("{name}: message does not name the file: {msg}"));
            }
            for w in words {
                if !msg.contains(w) {
                    failures.push(format!("{name}: message lacks {w:?}: {msg}"));
                }
            }
        }
    }
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut failures = Vec::new();

    expect_error(
        &d.join("missing.wav"),
        |e| matches!(e, AudioError::NotFound { .. }),
        &["no such file"],
        &mut failures,
    );

    std::fs::write(d.join("empty.wav"), b"").unwrap();
    expect_error(
        &d.join("empty.wav"),
        |e| matches!(e, AudioError::EmptyFile { .. }),
        &["empty"],
        &mut failures,
    );

    // Deterministic pseudo-random bytes (an LCG), no container signature.
    let mut x = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(d.join("noise.bin"), &noise).unwrap();
    expect_error(
        &d.join("noise.bin"),
        |e| matches!(e, AudioError::NotAudio { .. }),
        &["not a recognised audio file"],
        &mut failures,
    );
    std::fs::write(d.join("noise.wav"), &noise).unwrap();
    expect_error(
        &d.join("noise.wav"),
        |e| matches!(e, AudioError::NotAudio { .. }),
        &["not a recognised audio file"],
        &mut failures,
    );

    let good = wav_bytes(mono(false), &vec![0.1; 22050]);
    // Cut inside the header.
    std::fs::write(d.join("header_cut.wav"), &good[..30]).unwrap();
    expect_error(
        &d.join("header_cut.wav"),
        |e| {
            matches!(
                e,
                AudioError::Truncated { .. }
                    | AudioError::Malformed { .. }
                    | AudioError::NotAudio { .. }
            )
        },
        &[],
        &mut failures,
    );
    // Cut inside the data: the header still declares 22050 frames.
    std::fs::write(d.join("data_cut.wav"), &good[..good.len() / 2]).unwrap();
    expect_error(
        &d.join("data_cut.wav"),
        |e| matches!(e, AudioError::Truncated { .. }),
        &["truncated", "22050"],
        &mut failures,
    );

    let mut with_nan = vec![0.1f32; 1000];
    with_nan[17] = f32::NAN;
    with_nan[500] = f32::INFINITY;
    std::fs::write(d.join("nan.wav"), wav_bytes(mono(true), &with_nan)).unwrap();
    expect_error(
        &d.join("nan.wav"),
        |e| {
            matches!(
                e,
                AudioError::NonFinite {
                    count: 2,
                    channel: 0,
                    frame: 17,
                    ..
                }
            )
        },
        &["2 non-finite", "frame 17"],
        &mut failures,
    );

    std::fs::write(d.join("zero.wav"), wav_bytes(mono(false), &[])).unwrap();
    expect_error(
        &d.join("zero.wav"),
        |e| matches!(e, AudioError::ZeroLength { .. }),
        &["zero length"],
        &mut failures,
    );

    std::fs::create_dir(d.join("folder.wav")).unwrap();
    expect_error(
        &d.join("folder.wav"),
        |e| matches!(e, AudioError::Io { .. }),
        &["directory"],
        &mut failures,
    );

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn in_memory_errors_name_the_source() {
    let err = clvp_audio::decode_bytes(Vec::new(), Some("wav"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("<memory>") && err.contains("empty"), "{err}");
    let err = clvp_audio::decode_bytes(&b"definitely not audio at all"[..], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("<memory>") && err.contains("not a recognised audio file"),
        "{err}"
    );
}

#[test]
fn bad_preprocessor_configs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("preprocessor_config.json");
    let err = clvp_audio::ClvpFeatureExtractor::from_preprocessor_config(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("preprocessor_config.json") && err.contains("no such file"),
        "{err}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"feature_size": 80, "mel_norms": [1.0, 2.0]}"#).unwrap();
    let err = clvp_audio::ClvpFeatureExtractor::from_preprocessor_config(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("mel_norms has 2 values"),
        "{err}"
    );
    std::fs::write(&bad, "{not json").unwrap();
    let err = clvp_audio::ClvpFeatureExtractor::from_preprocessor_config(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("invalid preprocessor config"),
        "{err}"
    );
}
