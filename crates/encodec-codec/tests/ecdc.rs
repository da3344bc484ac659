//! `.ecdc` parity against files written by the real `encodec` 0.1.1 package (`fixtures/encodec/ecdc/`).
//!
//! For every case of `cases.json`: our segment layout equals the recorded one, our writer turns the
//! recorded codes and scales into the same bytes as Python, and our reader turns Python's file back
//! into the same header, codes and scales, including the files Python itself cannot read back
//! (its float frame-count bug). Missing fixtures fail the test.

use std::path::{Path, PathBuf};

use clvp_parity::{
    FixtureTensor, Recorder, Tolerance, compare, compare_ids, fixture_path, read_json,
    read_safetensors,
};
use encodec_codec::ecdc::{EcdcFile, EcdcModel, EcdcSegment, read_ecdc, write_ecdc};

/// One entry of `cases.json`.
#[derive(Debug, serde::Deserialize)]
struct Case {
    name: String,
    model: String,
    audio_length: usize,
    num_codebooks: usize,
    /// `[offset, length, frames]` per segment, as the Python encoder cut them.
    segments: Vec<[usize; 3]>,
    normalize: bool,
    python_reads_back: bool,
    python_error: Option<String>,
}

fn dir() -> PathBuf {
    fixture_path("encodec/ecdc")
}

fn load_cases() -> Vec<Case> {
    let path = dir().join("cases.json");
    let cases: Vec<Case> = read_json(&path)
        .unwrap_or_else(|e| panic!("the .ecdc reference fixtures are missing or unreadable: {e}"));
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
}

/// The recorded codes and scales of a case as an [`EcdcFile`].
fn reference_file(case: &Case, model: EcdcModel) -> Result<EcdcFile, String> {
    let path = dir().join(format!("{}.codes.safetensors", case.name));
    let tensors = read_safetensors(&path).map_err(|e| e.to_string())?;
    let scales = match tensors.get("scales") {
        Some(t) => Some(scales_of(t, case.segments.len())?),
        None => None,
    };
    let mut segments = Vec::new();
    for i in 0..case.segments.len() {
        let key = format!("codes.{i}");
        let t = tensors
            .get(&key)
            .ok_or_else(|| format!("{}: no tensor {key}", path.display()))?;
        segments.push(segment_of(t, &key, scales.as_ref().map(|s| s[i]))?);
    }
    if tensors.contains_key(&format!("codes.{}", case.segments.len())) {
        return Err(format!(
            "{}: more code tensors than segments",
            path.display()
        ));
    }
    Ok(EcdcFile {
        model: model.name.to_string(),
        audio_length: case.audio_length,
        num_codebooks: case.num_codebooks,
        segments,
    })
}

fn scales_of(t: &FixtureTensor, n: usize) -> Result<Vec<f32>, String> {
    if t.shape != [n] || t.f64.len() != n {
        return Err(format!("scales: shape {:?}, expected [{n}]", t.shape));
    }
    // Widened from f32 by the fixture reader, so the narrowing is exact.
    Ok(t.f64.iter().map(|&v| v as f32).collect())
}

fn segment_of(t: &FixtureTensor, key: &str, scale: Option<f32>) -> Result<EcdcSegment, String> {
    let &[k, _] = t.shape.as_slice() else {
        return Err(format!("{key}: shape {:?}, expected [K, T]", t.shape));
    };
    let codes = t
        .i64
        .iter()
        .map(|&c| u16::try_from(c).map_err(|_| format!("{key}: code {c} does not fit u16")))
        .collect::<Result<Vec<u16>, String>>()?;
    Ok(EcdcSegment {
        scale,
        num_codebooks: k,
        codes,
    })
}

fn bytes_as_ids(b: &[u8]) -> Vec<i64> {
    b.iter().map(|&v| i64::from(v)).collect()
}

/// Codes of every segment, then the scales, as one sequence (compared exactly).
fn flat(file: &EcdcFile) -> Vec<f64> {
    let mut out: Vec<f64> = file
        .segments
        .iter()
        .flat_map(|s| s.codes.iter().map(|&c| f64::from(c)))
        .collect();
    out.extend(file.segments.iter().filter_map(|s| s.scale.map(f64::from)));
    out
}

/// Layout, model flags and Python's read-back verdict of one case; returns the mismatches.
fn check_layout(case: &Case, model: EcdcModel) -> Vec<String> {
    let mut failures = Vec::new();
    let ours: Vec<[usize; 3]> = model
        .segments(case.audio_length)
        .iter()
        .map(|s| [s.offset, s.length, s.frames])
        .collect();
    if ours != case.segments {
        failures.push(format!(
            "segments: ours {ours:?}, Python {:?}",
            case.segments
        ));
    }
    if model.normalize != case.normalize {
        failures.push(format!(
            "normalize: ours {}, Python {}",
            model.normalize, case.normalize
        ));
    }
    let reads_back = model.python_reads_back(case.audio_length);
    if reads_back != case.python_reads_back {
        failures.push(format!(
            "python_reads_back: predicted {reads_back}, Python {}",
            case.python_reads_back
        ));
    }
    if case.python_reads_back == case.python_error.is_some() {
        failures.push(format!(
            "python_reads_back {} but python_error {:?}",
            case.python_reads_back, case.python_error
        ));
    }
    failures
}

/// Our writer, through a real file, on the recorded codes.
fn write_through_file(file: &EcdcFile, tmp: &Path) -> Result<Vec<u8>, String> {
    let path = tmp.join("out.ecdc");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    write_ecdc(&mut f, file).map_err(|e| e.to_string())?;
    drop(f);
    std::fs::read(&path).map_err(|e| e.to_string())
}

#[test]
fn python_ecdc_files_match() {
    let cases = load_cases();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut rec = Recorder::new("ecdc");
    for case in &cases {
        let name = &case.name;
        let Some(model) = EcdcModel::by_name(&case.model) else {
            rec.record_error(name, &format!("unknown model {}", case.model));
            continue;
        };
        rec.record_exact(
            &format!("{name} layout"),
            case.segments.len(),
            &check_layout(case, model),
        );

        let python_path = dir().join(format!("{name}.ecdc"));
        let python = match std::fs::read(&python_path) {
            Ok(b) => b,
            Err(e) => {
                rec.record_error(name, &format!("{}: {e}", python_path.display()));
                continue;
            }
        };
        let reference = match reference_file(case, model) {
            Ok(f) => f,
            Err(e) => {
                rec.record_error(name, &e);
                continue;
            }
        };

        match write_through_file(&reference, tmp.path()) {
            Ok(ours) => rec.record(
                &format!("{name} write"),
                &compare_ids(&bytes_as_ids(&ours), &bytes_as_ids(&python)),
            ),
            Err(e) => rec.record_error(&format!("{name} write"), &e),
        }

        let mut reader = std::io::BufReader::new(python.as_slice());
        match read_ecdc(&mut reader) {
            Ok(ours) => {
                let header = (&ours.model, ours.audio_length, ours.num_codebooks);
                let expected = (&reference.model, case.audio_length, case.num_codebooks);
                if header != expected {
                    rec.record_error(
                        &format!("{name} read"),
                        &format!("header: ours {header:?}, Python {expected:?}"),
                    );
                } else {
                    let shapes: Vec<_> = ours.segments.iter().map(|s| s.frames()).collect();
                    let expected: Vec<_> = reference.segments.iter().map(|s| s.frames()).collect();
                    if shapes != expected {
                        rec.record_error(
                            &format!("{name} read"),
                            &format!("frames per segment: ours {shapes:?}, Python {expected:?}"),
                        );
                    } else {
                        rec.record(
                            &format!("{name} read"),
                            &compare(&flat(&ours), &flat(&reference), Tolerance::EXACT),
                        );
                    }
                }
            }
            Err(e) => rec.record_error(&format!("{name} read"), &e.to_string()),
        }
    }
    rec.finish();
}

#[test]
fn fixtures_cover_both_models_and_the_python_bug() {
    let cases = load_cases();
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    assert!(count(&|c| c.model == "encodec_24khz") > 0, "no 24 kHz case");
    assert!(count(&|c| c.model == "encodec_48khz") > 0, "no 48 kHz case");
    assert!(
        count(&|c| c.segments.len() > 1) > 0,
        "no multi-segment case"
    );
    assert!(
        count(&|c| !c.python_reads_back) > 0,
        "no case that Python cannot read back (e.g. 6720 samples at 24 kHz)"
    );
}

#[test]
fn python_unreadable_files_read_here() {
    // The files Python fails on are exactly those whose last segment trips its float frame count;
    // we read them with the integer count and find nothing left over.
    let cases = load_cases();
    let mut seen = 0;
    for case in cases.iter().filter(|c| !c.python_reads_back) {
        let bytes = std::fs::read(dir().join(format!("{}.ecdc", case.name)))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let file =
            read_ecdc(&mut bytes.as_slice()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let model = EcdcModel::by_name(&case.model)
            .unwrap_or_else(|| panic!("{}: unknown model {}", case.name, case.model));
        let last = model
            .segments(case.audio_length)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("{}: no segments", case.name));
        assert_eq!(
            model.python_frames(last.length),
            last.frames + 1,
            "{}",
            case.name
        );
        assert_eq!(file.segments.last().map(|s| s.frames()), Some(last.frames));
        seen += 1;
    }
    assert!(seen > 0, "no Python-unreadable case in the fixtures");
}
