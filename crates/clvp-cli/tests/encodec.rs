//! End-to-end tests of `clvp encodec` on the committed tiny EnCodec fixtures (xtask/python/ref_encodec.py):
//! a 16-bit WAV encoded by the CLI gives transformers' codes, decoding gives its audio, `.ecdc` round trips, and
//! bad input is a clear error that writes nothing.

mod run;

use clvp_parity::{
    FixtureTensor, Recorder, compare, compare_ids, fixture_path, read_safetensors, tolerance,
};
use run::{clvp, path, stderr};

fn reference(model: &str) -> std::collections::HashMap<String, FixtureTensor> {
    read_safetensors(&fixture_path(&format!("encodec/{model}.cases.safetensors")))
        .expect("encodec fixture")
}

fn run_ok(args: &[&str]) {
    let out = clvp(args);
    assert!(out.status.success(), "clvp {args:?}: {}", stderr(&out));
}

#[test]
fn encode_and_decode_match_transformers_24khz() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = fixture_path("encodec/tiny_24k");
    let wav = fixture_path("encodec/e2e_24k.wav");
    let want = reference("tiny_24k");
    let mut rec = Recorder::new("cli-encodec");
    for bw in ["1.8", "3.6"] {
        let codes = dir.path().join(format!("codes_{bw}.safetensors"));
        run_ok(&[
            "encodec",
            "encode",
            "--model",
            path(&model),
            "-b",
            bw,
            path(&wav),
            path(&codes),
        ]);
        let ours = read_safetensors(&codes).expect("codes written");
        let c = &ours["audio_codes"];
        let w = &want[&format!("e2e.bw{bw}.audio_codes")];
        assert_eq!(c.shape, w.shape, "audio_codes shape");
        rec.record(
            &format!("tiny_24k e2e bw{bw} codes"),
            &compare_ids(&c.i64, &w.i64),
        );
        assert_eq!(ours["audio_length"].i64, [4850]);
        assert_eq!(ours["last_frame_pad_length"].i64, [0]);
        assert!(
            !ours.contains_key("audio_scales"),
            "the 24 kHz model has no scales"
        );

        // Decoding our codes = HF's forward (the codes are identical).
        let audio = dir.path().join(format!("audio_{bw}.safetensors"));
        run_ok(&[
            "encodec",
            "decode",
            "--model",
            path(&model),
            path(&codes),
            path(&audio),
        ]);
        let a = &read_safetensors(&audio).expect("audio written")["audio_values"];
        let w = &want[&format!("e2e.bw{bw}.audio_values")];
        assert_eq!(a.shape, w.shape);
        rec.record(
            &format!("tiny_24k e2e bw{bw} decode"),
            &compare(&a.f64, &w.f64, tolerance("encodec_audio")),
        );

        // .ecdc: same codes through Meta's container, same audio.
        let ecdc = dir.path().join(format!("codes_{bw}.ecdc"));
        run_ok(&[
            "encodec",
            "encode",
            "--model",
            path(&model),
            "-b",
            bw,
            path(&wav),
            path(&ecdc),
        ]);
        let audio2 = dir.path().join(format!("audio_{bw}_ecdc.safetensors"));
        run_ok(&[
            "encodec",
            "decode",
            "--model",
            path(&model),
            path(&ecdc),
            path(&audio2),
        ]);
        let b = &read_safetensors(&audio2).expect("audio written")["audio_values"];
        rec.record(
            &format!("tiny_24k e2e bw{bw} .ecdc decode"),
            &compare(&b.f64, &w.f64, tolerance("encodec_audio")),
        );
    }
    // A WAV output: 16-bit, the model's rate and channels, the input's length.
    let out = dir.path().join("round.wav");
    run_ok(&[
        "encodec",
        "roundtrip",
        "--model",
        path(&model),
        "-b",
        "3.6",
        path(&wav),
        path(&out),
    ]);
    let r = hound::WavReader::open(&out).expect("a WAV file");
    let spec = r.spec();
    assert_eq!(
        (
            spec.channels,
            spec.sample_rate,
            spec.bits_per_sample,
            r.duration()
        ),
        (1, 24_000, 16, 4850)
    );
    rec.finish();
}

#[test]
fn stereo_48khz_encode_matches_transformers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = fixture_path("encodec/tiny_48k");
    let wav = fixture_path("encodec/e2e_48k.wav");
    let want = reference("tiny_48k");
    let mut rec = Recorder::new("cli-encodec");
    let codes = dir.path().join("codes.safetensors");
    run_ok(&[
        "encodec",
        "encode",
        "--model",
        path(&model),
        "-b",
        "7.2",
        path(&wav),
        path(&codes),
    ]);
    let ours = read_safetensors(&codes).expect("codes written");
    let (c, w) = (&ours["audio_codes"], &want["e2e.bw7.2.audio_codes"]);
    assert_eq!(c.shape, w.shape);
    rec.record("tiny_48k e2e bw7.2 codes", &compare_ids(&c.i64, &w.i64));
    rec.record(
        "tiny_48k e2e bw7.2 scales",
        &compare(
            &ours["audio_scales"].f64,
            &want["e2e.bw7.2.audio_scales"].f64,
            tolerance("encodec_audio"),
        ),
    );
    assert_eq!(
        ours["last_frame_pad_length"].i64,
        want["e2e.bw7.2.last_frame_pad_length"].i64
    );
    let audio = dir.path().join("audio.safetensors");
    run_ok(&[
        "encodec",
        "decode",
        "--model",
        path(&model),
        path(&codes),
        path(&audio),
    ]);
    let a = &read_safetensors(&audio).expect("audio written")["audio_values"];
    let w = &want["e2e.bw7.2.audio_values"];
    assert_eq!(a.shape, w.shape);
    rec.record(
        "tiny_48k e2e bw7.2 decode",
        &compare(&a.f64, &w.f64, tolerance("encodec_audio")),
    );
    rec.finish();
}

#[test]
fn bad_encodec_input_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = fixture_path("encodec/tiny_24k");
    let model48 = fixture_path("encodec/tiny_48k");
    let wav = fixture_path("encodec/e2e_24k.wav");
    let garbage = dir.path().join("garbage.ecdc");
    std::fs::write(&garbage, b"NOPE\0\0\0\0\x02{}").expect("write");
    let truncated = dir.path().join("truncated.ecdc");
    let full = dir.path().join("full.ecdc");
    run_ok(&[
        "encodec",
        "encode",
        "--model",
        path(&model),
        "-b",
        "3.6",
        path(&wav),
        path(&full),
    ]);
    let bytes = std::fs::read(&full).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).expect("write");
    let out = dir.path().join("out.safetensors");
    let x_ecdc = dir.path().join("x.ecdc");
    let x_mp3 = dir.path().join("x.mp3");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "encodec",
                "encode",
                "--model",
                path(&model),
                "-b",
                "6",
                path(&wav),
                path(&out),
            ],
            "choose one of 0.9, 1.8, 3.6",
        ),
        (
            vec![
                "encodec",
                "decode",
                "--model",
                path(&model),
                path(&garbage),
                path(&out),
            ],
            "ECDC",
        ),
        (
            vec![
                "encodec",
                "decode",
                "--model",
                path(&model),
                path(&truncated),
                path(&out),
            ],
            "truncated",
        ),
        (
            vec![
                "encodec",
                "encode",
                "--model",
                path(&model48),
                "-b",
                "1.8",
                path(&wav),
                path(&x_ecdc),
            ],
            "only knows encodec_24khz and encodec_48khz",
        ),
        (
            vec![
                "encodec",
                "encode",
                "--model",
                path(&model),
                "-b",
                "3.6",
                "missing.wav",
                path(&out),
            ],
            "missing.wav",
        ),
        (
            vec![
                "encodec",
                "encode",
                "--model",
                path(&model),
                "-b",
                "3.6",
                path(&wav),
                path(&x_mp3),
            ],
            ".ecdc, .safetensors or .jsonl",
        ),
    ];
    for (args, needle) in cases {
        let o = clvp(&args);
        let msg = stderr(&o);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: `{needle}` not in: {msg}"
        );
        assert!(!out.exists(), "{args:?} left an output behind");
    }
    // Codes out of range in a safetensors file.
    let codes = dir.path().join("codes.safetensors");
    run_ok(&[
        "encodec",
        "encode",
        "--model",
        path(&model),
        "-b",
        "3.6",
        path(&wav),
        path(&codes),
    ]);
    let st = read_safetensors(&codes).expect("codes");
    let mut bad = st["audio_codes"].i64.clone();
    bad[3] = 64;
    let shape = st["audio_codes"].shape.clone();
    let bytes: Vec<u8> = bad.iter().flat_map(|v| v.to_le_bytes()).collect();
    let one = |v: i64| v.to_le_bytes().to_vec();
    let tensors = [
        ("audio_codes", safetensors::Dtype::I64, shape, bytes),
        ("audio_length", safetensors::Dtype::I64, vec![1], one(4850)),
        (
            "last_frame_pad_length",
            safetensors::Dtype::I64,
            vec![1],
            one(0),
        ),
    ];
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let bad_path = dir.path().join("bad.safetensors");
    safetensors::serialize_to_file(views, None, &bad_path).expect("write");
    let o = clvp(&[
        "encodec",
        "decode",
        "--model",
        path(&model),
        path(&bad_path),
        path(&out),
    ]);
    assert!(!o.status.success());
    let msg = stderr(&o);
    assert!(msg.contains("code 64") && msg.contains("0..64"), "{msg}");
    assert!(!out.exists());
}
