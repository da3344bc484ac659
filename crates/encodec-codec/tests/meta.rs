//! Meta's own checkpoints (`encodec` 0.1.1 `.th` state dicts) against Meta's own code, on the random-init miniatures
//! written by `xtask/python/ref_meta_encodec.py` (committed under fixtures/encodec_meta).
//!
//! Per model, case and bandwidth: our codes of every segment from the `.th` file equal Meta's `model.encode` codes
//! (exactly), our scales are within one ulp of its scales (`encodec_meta_scale`: torch's float32 `sqrt` is not
//! correctly rounded), the `.ecdc` bytes we write equal `encodec.compress`'s (a 48 kHz file whose scale differs in
//! the last bit is compared with Meta's scales put in, and labelled so), and our decoding of Meta's `.ecdc` file equals `encodec.decompress`'s
//! audio within the `encodec_meta_audio` tolerance. Files that are not Meta EnCodec checkpoints are refused with a
//! typed error that names some of their keys.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_parity::{Recorder, compare, fixture_path, read_json, read_safetensors, tolerance};
use encodec_codec::ecdc::{EcdcFile, EcdcSegment, read_ecdc, write_ecdc};
use encodec_codec::{EncodecError, EncodecModel, EncodedSegment, NormType};

fn device() -> Device {
    Device::flex()
}

/// One entry of `cases.json`.
#[derive(Debug, serde::Deserialize)]
struct Case {
    model: String,
    case: String,
    wav: String,
    length: usize,
    channels: usize,
    bandwidth: f64,
    /// `[offset, length, frames]` of Meta's segments.
    segments: Vec<[usize; 3]>,
    ecdc: String,
}

fn dir() -> PathBuf {
    fixture_path("encodec_meta")
}

fn cases() -> Vec<Case> {
    let cases: Vec<Case> = read_json(&dir().join("cases.json"))
        .unwrap_or_else(|e| panic!("the Meta EnCodec fixtures are missing or unreadable: {e}"));
    assert!(!cases.is_empty());
    cases
}

/// A 16-bit WAV as planar int16/32768 (what Meta's reference read).
fn wav(path: &Path) -> Vec<Vec<f32>> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let channels = r.spec().channels as usize;
    let samples: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    (0..channels)
        .map(|c| {
            samples
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&s| f32::from(s) / 32768.0)
                .collect()
        })
        .collect()
}

fn ints(t: Tensor<3, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn model(name: &str) -> EncodecModel {
    EncodecModel::from_meta_file(dir().join(format!("{name}.th")), &device())
        .unwrap_or_else(|e| panic!("loading {name}.th: {e}"))
}

/// One case at one bandwidth: codes, scales, `.ecdc` bytes, decoding of Meta's file.
fn check_case(rec: &mut Recorder, m: &EncodecModel, c: &Case) {
    let label = |what: &str| format!("{}.{}.bw{}.{what}", c.model, c.case, c.bandwidth);
    let refs = read_safetensors(&dir().join(format!("{}.cases.safetensors", c.model)))
        .unwrap_or_else(|e| panic!("{e}"));
    let key = format!("{}.bw{:?}", c.case, c.bandwidth);
    let audio = wav(&dir().join(&c.wav));
    assert_eq!((audio.len(), audio[0].len()), (c.channels, c.length));
    let input = Tensor::<3>::from_data(
        TensorData::new(audio.concat(), [1, c.channels, c.length]),
        &device(),
    );
    let segments = match m.encode_segments(input, None, Some(c.bandwidth)) {
        Ok(s) => s,
        Err(e) => return rec.record_error(&label("encode"), &e.to_string()),
    };
    // Codes, exactly, segment by segment.
    let mut failures = Vec::new();
    let mut total = 0;
    let mut ecdc_segments: Vec<EcdcSegment> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let want = refs
            .get(&format!("{key}.codes.{i}"))
            .unwrap_or_else(|| panic!("{key}.codes.{i} missing"));
        let [_, k, t] = seg.codes.dims();
        let ours = ints(seg.codes.clone());
        total += want.i64.len();
        if [k, t] != [want.shape[0], want.shape[1]] {
            failures.push(format!(
                "segment {i}: shape ours [{k}, {t}], Meta {:?}",
                want.shape
            ));
            continue;
        }
        for (j, (a, b)) in ours.iter().zip(&want.i64).enumerate() {
            if a != b {
                failures.push(format!(
                    "segment {i} codebook {} frame {}: ours {a}, Meta {b}",
                    j / t,
                    j % t
                ));
            }
        }
        let scale = seg.scale.clone().map(|s| floats(s)[0]);
        ecdc_segments.push(EcdcSegment {
            scale,
            num_codebooks: k,
            codes: ours.iter().map(|&v| v as u16).collect(),
        });
    }
    if segments.len() != c.segments.len() {
        failures.push(format!(
            "{} segments, Meta has {}",
            segments.len(),
            c.segments.len()
        ));
    }
    rec.record_exact(&label("codes"), total, &failures);
    // Scales: our sum over the segment is torch's to the bit (its order of float32 operations, one thread), but
    // torch's float32 `sqrt` is not correctly rounded (1 ulp off for about 1 value in 6), so a scale may be one ulp
    // from Meta's (`encodec_meta_scale`; docs/encodec.md, "Meta's checkpoints").
    let meta_scales = refs.get(&format!("{key}.scales"));
    if let Some(want) = meta_scales {
        let ours: Vec<f64> = ecdc_segments
            .iter()
            .map(|s| f64::from(s.scale.unwrap_or(f32::NAN)))
            .collect();
        rec.record(
            &label("scales"),
            &compare(&ours, &want.f64, tolerance("encodec_meta_scale")),
        );
    }
    // Our .ecdc bytes for our codes against compress's; where the model normalises, with Meta's scales put in
    // when ours differ in the last bit (so that the bytes compared are the container's and the codes').
    let meta_bytes =
        std::fs::read(dir().join(&c.ecdc)).unwrap_or_else(|e| panic!("{}: {e}", c.ecdc));
    let name = if c.channels == 2 {
        "encodec_48khz"
    } else {
        "encodec_24khz"
    };
    let mut what = "ecdc_bytes";
    if let Some(want) = meta_scales {
        for (seg, &s) in ecdc_segments.iter_mut().zip(&want.f64) {
            if seg.scale.map(f32::to_bits) != Some((s as f32).to_bits()) {
                seg.scale = Some(s as f32);
                what = "ecdc_bytes_with_metas_scales";
            }
        }
    }
    let file = EcdcFile {
        model: name.into(),
        audio_length: c.length,
        num_codebooks: ecdc_segments.first().map_or(0, |s| s.num_codebooks),
        segments: ecdc_segments,
    };
    let mut ours = Vec::new();
    match write_ecdc(&mut ours, &file) {
        Ok(()) => {
            let differ = ours
                .iter()
                .zip(&meta_bytes)
                .position(|(a, b)| a != b)
                .or((ours.len() != meta_bytes.len()).then(|| ours.len().min(meta_bytes.len())));
            let failures: Vec<String> = differ
                .map(|at| {
                    vec![format!(
                        "bytes differ from offset {at} (ours {} bytes, Meta {})",
                        ours.len(),
                        meta_bytes.len()
                    )]
                })
                .unwrap_or_default();
            rec.record_exact(&label(what), meta_bytes.len(), &failures);
        }
        Err(e) => rec.record_error(&label(what), &e.to_string()),
    }
    // Our decoding of Meta's file against decompress.
    let meta_file = match read_ecdc(&mut meta_bytes.as_slice()) {
        Ok(f) => f,
        Err(e) => return rec.record_error(&label("decompress"), &e.to_string()),
    };
    let segs: Vec<EncodedSegment> = meta_file
        .segments
        .iter()
        .map(|s| EncodedSegment {
            codes: Tensor::<3, Int>::from_data(
                TensorData::new(
                    s.codes.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
                    [1, s.num_codebooks, s.frames()],
                ),
                &device(),
            ),
            scale: s
                .scale
                .map(|v| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device())),
        })
        .collect();
    let want = refs
        .get(&format!("{key}.audio"))
        .unwrap_or_else(|| panic!("{key}.audio missing"));
    match m.decode_segments(segs, Some(meta_file.audio_length)) {
        Ok(out) => {
            let dims = out.dims();
            let ours: Vec<f64> = floats(out).into_iter().map(f64::from).collect();
            if dims[1..] != want.shape[..] {
                rec.record_error(
                    &label("decompress"),
                    &format!("shape ours {dims:?}, Meta {:?}", want.shape),
                );
            } else {
                rec.record(
                    &label("decompress"),
                    &compare(&ours, &want.f64, tolerance("encodec_meta_audio")),
                );
            }
        }
        Err(e) => rec.record_error(&label("decompress"), &e.to_string()),
    }
}

#[test]
fn codes_ecdc_and_decoding_match_metas_package() {
    let mut rec = Recorder::new("meta-encodec");
    let all = cases();
    let mut names: Vec<&str> = all.iter().map(|c| c.model.as_str()).collect();
    names.dedup();
    for name in names {
        let m = model(name);
        for c in all.iter().filter(|c| c.model == name) {
            check_case(&mut rec, &m, c);
        }
    }
    rec.finish();
}

/// What the loader makes of the miniatures: the released layout by name, the widths and bandwidths by tensors.
#[test]
fn configs_come_from_the_name_and_the_tensors() {
    let c = model("tiny_24khz").config;
    assert_eq!(
        (
            c.sampling_rate,
            c.audio_channels,
            c.norm_type,
            c.use_causal_conv
        ),
        (24_000, 1, NormType::WeightNorm, true)
    );
    assert_eq!(
        (c.num_filters, c.hidden_size, c.codebook_size),
        (2, 8, 1024)
    );
    assert_eq!(c.target_bandwidths, [1.5, 3.0]);
    let c = model("tiny_48khz").config;
    assert_eq!(
        (c.sampling_rate, c.audio_channels, c.norm_type, c.normalize),
        (48_000, 2, NormType::TimeGroupNorm, true)
    );
    assert_eq!(
        (c.chunk_length(), c.chunk_stride()),
        (Some(48_000), Some(47_520))
    );
    assert_eq!(c.target_bandwidths, [3.0, 6.0]);
    // torch's new weight-norm names load too.
    assert_eq!(model("tiny_param_24khz").config.target_bandwidths, [1.5]);

    // Without a telling name, the first conv's input channels decide.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (src, want) in [("tiny_24khz", 1), ("tiny_48khz", 2)] {
        let p = tmp
            .path()
            .join(format!("{src}_renamed.th").replace("khz", "k"));
        std::fs::copy(dir().join(format!("{src}.th")), &p).unwrap_or_else(|e| panic!("{e}"));
        let m = EncodecModel::from_meta_file(&p, &device()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.config.audio_channels, want, "{}", p.display());
    }
    // A name that contradicts the tensors is an error naming both.
    let p = tmp.path().join("encodec_24khz-0000.th");
    std::fs::copy(dir().join("tiny_48khz.th"), &p).unwrap_or_else(|e| panic!("{e}"));
    let e = EncodecModel::from_meta_file(&p, &device())
        .err()
        .unwrap_or_else(|| panic!("a stereo file named 24khz loaded"))
        .to_string();
    assert!(
        e.contains("encodec_24khz") && e.contains("2 channel"),
        "{e}"
    );
}

/// Files that are not Meta EnCodec state dicts: a typed error naming some of their keys, never a panic.
#[test]
fn other_checkpoints_are_refused_by_name() {
    let lm = EncodecModel::from_meta_file(dir().join("lm_tiny.th"), &device())
        .err()
        .unwrap_or_else(|| panic!("the LM loaded as a codec"));
    match &lm {
        EncodecError::NotMetaCheckpoint { keys, total, .. } => {
            assert!(
                !keys.is_empty() && keys.len() <= 5 && *total > keys.len(),
                "{lm}"
            );
        }
        other => panic!("expected NotMetaCheckpoint, got {other:?}"),
    }
    let text = lm.to_string();
    assert!(
        text.contains("`emb.0.weight`") && text.contains("language model"),
        "{text}"
    );

    let nested = EncodecModel::from_meta_file(dir().join("audiocraft_like.th"), &device())
        .err()
        .unwrap_or_else(|| panic!("a nested checkpoint loaded"));
    assert!(
        matches!(nested, EncodecError::NotMetaCheckpoint { .. }),
        "{nested:?}"
    );
    assert!(nested.to_string().contains("audiocraft"), "{nested}");

    // A transformers checkpoint file given as a file (the committed one: a parity-check run points
    // `fixture_path` at this component's fresh references alone).
    let hf = EncodecModel::from_meta_file(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/encodec/tiny_24k/model.safetensors"),
        &device(),
    )
    .err()
    .unwrap_or_else(|| panic!("an HF file loaded as Meta's"));
    assert!(hf.to_string().contains("pass its directory"), "{hf}");

    // Damaged files: errors, not panics.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(dir().join("tiny_24khz.th")).unwrap_or_else(|e| panic!("{e}"));
    for (name, data) in [
        ("cut.th", bytes[..bytes.len() / 2].to_vec()),
        ("empty.th", Vec::new()),
        ("text.th", b"not a checkpoint".to_vec()),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("{e}"));
        let r =
            std::panic::catch_unwind(|| EncodecModel::from_meta_file(&p, &device()).map(|_| ()));
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("{name} loaded"),
            Err(_) => panic!("{name} panicked"),
        }
    }
    // A missing file.
    assert!(EncodecModel::from_meta_file(tmp.path().join("none.th"), &device()).is_err());
}
