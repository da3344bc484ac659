//! `clvp encodec --model X.th`: Meta's own checkpoint files (the miniatures of xtask/python/ref_meta_encodec.py,
//! fixtures/encodec_meta) through the CLI: `encode` writes the bytes of Meta's `encodec.compress`, `decode` of
//! Meta's `.ecdc` gives `encodec.decompress`'s audio, and a file that is not such a checkpoint is a clear error.

mod run;

use clvp_parity::{Recorder, compare, fixture_path, read_safetensors, tolerance};
use run::{clvp, path, stderr};

fn run_ok(args: &[&str]) {
    let out = clvp(args);
    assert!(out.status.success(), "clvp {args:?}: {}", stderr(&out));
}

/// (model, case, bandwidth, whether every byte is ours to compare): a 48 kHz file holds per-segment scales, which
/// can be one ulp from Meta's (torch's float32 sqrt is not correctly rounded; crates/encodec-codec/tests/meta.rs
/// compares them), so with another seed its bytes may differ there; its length and decoding are compared.
const CASES: [(&str, &str, &str, bool); 4] = [
    ("tiny_24khz", "clip", "3.0", true),
    ("tiny_24khz", "short", "1.5", true),
    ("tiny_param_24khz", "clip", "1.5", true),
    ("tiny_48khz", "two", "6.0", false),
];

#[test]
fn encode_writes_metas_bytes_and_decode_reads_metas_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = fixture_path("encodec_meta");
    let mut rec = Recorder::new("cli-meta-encodec");
    for (model, case, bw, bytes_exact) in CASES {
        let th = meta.join(format!("{model}.th"));
        let wav = meta.join(format!("{model}.{case}.wav"));
        let want_ecdc = meta.join(format!("ecdc/{model}.{case}.bw{bw}.ecdc"));
        let ecdc = dir.path().join(format!("{model}.{case}.ecdc"));
        run_ok(&[
            "encodec",
            "encode",
            "--model",
            path(&th),
            "-b",
            bw,
            path(&wav),
            path(&ecdc),
        ]);
        let ours = std::fs::read(&ecdc).expect("ecdc written");
        let want = std::fs::read(&want_ecdc).expect("Meta's ecdc");
        if bytes_exact {
            let failures = if ours == want {
                vec![]
            } else {
                vec![format!("{} bytes vs Meta's {}", ours.len(), want.len())]
            };
            rec.record_exact(
                &format!("{model} {case} bw{bw} ecdc bytes"),
                want.len(),
                &failures,
            );
        } else {
            assert_eq!(ours.len(), want.len(), "{model} {case}: .ecdc length");
        }

        let audio = dir.path().join(format!("{model}.{case}.safetensors"));
        run_ok(&[
            "encodec",
            "decode",
            "--model",
            path(&th),
            path(&want_ecdc),
            path(&audio),
        ]);
        let a = &read_safetensors(&audio).expect("audio written")["audio_values"];
        let refs = read_safetensors(&meta.join(format!("{model}.cases.safetensors")))
            .expect("Meta fixture");
        let w = &refs[&format!("{case}.bw{bw}.audio")];
        assert_eq!(a.shape[a.shape.len() - 1], w.shape[w.shape.len() - 1]);
        rec.record(
            &format!("{model} {case} bw{bw} decode of Meta's ecdc"),
            &compare(&a.f64, &w.f64, tolerance("encodec_meta_audio")),
        );
    }
    rec.finish();
}

#[test]
fn a_file_that_is_not_a_codec_is_refused_by_its_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = fixture_path("encodec_meta");
    let out_path = dir.path().join("x.ecdc");
    let out = clvp(&[
        "encodec",
        "encode",
        "--model",
        path(&meta.join("lm_tiny.th")),
        path(&meta.join("tiny_24khz.clip.wav")),
        path(&out_path),
    ]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("lm_tiny.th") && e.contains("`emb.0.weight`") && e.contains("language model"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out_path.exists(), "nothing is written");

    // The checkpoint file is an input: an output may not overwrite it.
    let th = dir.path().join("encodec_24khz-copy.th");
    std::fs::copy(meta.join("tiny_24khz.th"), &th).expect("copy");
    let out = clvp(&[
        "encodec",
        "encode",
        "--model",
        path(&th),
        "--format",
        "ecdc",
        path(&meta.join("tiny_24khz.clip.wav")),
        path(&th),
    ]);
    assert!(!out.status.success(), "overwrote the checkpoint");
    assert_eq!(
        std::fs::read(&th).expect("still there"),
        std::fs::read(meta.join("tiny_24khz.th")).expect("fixture")
    );
}
