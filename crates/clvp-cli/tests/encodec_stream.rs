//! `clvp encodec` streams (issue 22, item 6): encode reads the audio block by block and writes codes as they
//! are final, decode writes samples as the decoder hands them out, roundtrip never holds the audio. The bytes
//! must be those of the whole-clip path the CLI took before: the library's `Encodec::encode` / `decode` on the
//! whole clip, written as the old command wrote them (`write_ecdc`; HF's tensors through
//! `safetensors::serialize`; a 16-bit WAV through `hound`, clipped or rescaled). Checked on the tiny 24 kHz and
//! 48 kHz stereo fixtures and on a generated clip long enough for several tiles, resampled from 22.05 kHz.
//!
//! Codes and audio also come in from standard input and from a FIFO (`decode -`: refused before).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use clvp::raw::audio::{Audio, load_audio};
use clvp::raw::encodec::ecdc::write_ecdc;
use clvp::{AudioCodes, Encodec};
use clvp_parity::fixture_path;
use common::{clvp, s};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// `clvp ARGS` in `cwd`, with `stdin` as its standard input (none: /dev/null); stdout captured.
fn run(cwd: &Path, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut c = clvp(cwd);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(p) = stdin {
        c.stdin(std::fs::File::open(p).expect("stdin file"));
    }
    c.output().expect("clvp runs")
}

fn ok(cwd: &Path, args: &[&str], stdin: Option<&Path>) -> Vec<u8> {
    let o = run(cwd, args, stdin);
    assert!(
        o.status.success(),
        "clvp {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn codec(model: &str) -> Encodec {
    let device = clvp::device::device("cpu").expect("cpu");
    Encodec::from_pretrained(s(&fixture_path(&format!("encodec/{model}"))), &device)
        .expect("fixture model")
}

/// A safetensors file of `(name, dtype, shape, bytes)`.
fn serialize(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, shape, b)| {
            let view = TensorView::new(*d, shape.clone(), b).expect("view");
            (n.to_string(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

fn le<T: Copy, const N: usize>(values: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

/// What the whole-clip `encode` wrote to `.safetensors`.
fn hf_bytes(codes: &AudioCodes) -> Vec<u8> {
    let hf = codes.to_hf().expect("HF form");
    let mut t = vec![(
        "audio_codes",
        Dtype::I64,
        hf.shape.to_vec(),
        le(&hf.audio_codes, i64::to_le_bytes),
    )];
    if let Some(sc) = &hf.audio_scales {
        t.push((
            "audio_scales",
            Dtype::F32,
            vec![sc.len(), 1],
            le(sc, f32::to_le_bytes),
        ));
    }
    let one = |v: usize| (v as i64).to_le_bytes().to_vec();
    t.push((
        "last_frame_pad_length",
        Dtype::I64,
        vec![1],
        one(hf.last_frame_pad_length),
    ));
    t.push(("audio_length", Dtype::I64, vec![1], one(hf.audio_length)));
    serialize(&t)
}

/// What the whole-clip command wrote for decoded audio: `.wav` (clipped, or rescaled) or `.safetensors`.
fn audio_bytes(audio: &Audio, wav: bool, rescale: bool) -> Vec<u8> {
    if !wav {
        let planar: Vec<f32> = audio.channels.concat();
        let shape = vec![1, audio.num_channels(), audio.num_frames()];
        return serialize(&[(
            "audio_values",
            Dtype::F32,
            shape,
            le(&planar, f32::to_le_bytes),
        )]);
    }
    let peak = audio
        .channels
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let (gain, clip) = if rescale {
        ((0.99 / peak).min(1.0), false)
    } else {
        (1.0, true)
    };
    let spec = hound::WavSpec {
        channels: audio.num_channels() as u16,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).expect("wav");
    for i in 0..audio.num_frames() {
        for ch in &audio.channels {
            let mut v = ch[i] * gain;
            if clip {
                v = v.clamp(-0.99, 0.99);
            }
            let v = if v.is_finite() { v } else { 0.0 };
            w.write_sample((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
                .expect("sample");
        }
    }
    w.finalize().expect("finalize");
    cursor.into_inner()
}

/// A 16-bit WAV of `seconds` at `rate` Hz (`channels`): a chirp plus noise, loud enough to clip at times.
fn long_wav(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..(seconds * f64::from(rate)) as usize {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let v = 0.9
                * (std::f64::consts::TAU * (120.0 + 40.0 * t + 50.0 * f64::from(c)) * t).sin()
                + 0.1 * noise;
            w.write_sample((v * 32767.0) as i16).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

/// One model and input: every verb and output format of the CLI against the whole-clip bytes.
fn check_model(dir: &Path, model: &str, wav: &Path, bw: &str, ecdc: bool) {
    let codec = codec(model);
    let m = fixture_path(&format!("encodec/{model}"));
    let audio = load_audio(wav).expect("input");
    let codes = codec
        .encode(&audio, Some(bw.parse().expect("bandwidth")))
        .expect("whole-clip encode");
    let decoded = codec.decode(&codes).expect("whole-clip decode");
    let o = |name: &str| dir.join(format!("{model}_{name}"));
    let verb = |v: &str, input: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec!["encodec", v, "--model", s(&m)];
        if v != "decode" {
            args.extend(["-b", bw]);
        }
        args.extend_from_slice(extra);
        args.extend([s(input), s(out)]);
        ok(dir, &args, None);
        std::fs::read(out).expect("output written")
    };
    let read = |p: &Path| std::fs::read(p).expect("read");

    let st = o("codes.safetensors");
    let got = verb("encode", wav, &st, &[]);
    assert!(got == hf_bytes(&codes), "{model}: encode .safetensors");
    let mut inputs = vec![st.clone()];
    if ecdc {
        let e = o("codes.ecdc");
        let got = verb("encode", wav, &e, &[]);
        let mut want = Vec::new();
        write_ecdc(
            &mut want,
            &codes
                .to_ecdc(&codec.ecdc_model().expect("ecdc layout"))
                .expect("ecdc"),
        )
        .expect("write_ecdc");
        assert!(got == want, "{model}: encode .ecdc");
        inputs.push(e);
    }
    for (i, input) in inputs.iter().enumerate() {
        let w = o(&format!("{i}.wav"));
        assert!(
            verb("decode", input, &w, &[]) == audio_bytes(&decoded, true, false),
            "{model}: decode {} .wav",
            s(input)
        );
        let r = o(&format!("{i}_r.wav"));
        assert!(
            verb("decode", input, &r, &["--rescale"]) == audio_bytes(&decoded, true, true),
            "{model}: decode --rescale"
        );
        let a = o(&format!("{i}_audio.safetensors"));
        assert!(
            verb("decode", input, &a, &[]) == audio_bytes(&decoded, false, false),
            "{model}: decode .safetensors"
        );
    }
    let rt = o("rt.wav");
    assert!(
        verb("roundtrip", wav, &rt, &[]) == read(&o("0.wav")),
        "{model}: roundtrip .wav"
    );
    let rr = o("rt_r.wav");
    assert!(
        verb("roundtrip", wav, &rr, &["--rescale"]) == read(&o("0_r.wav")),
        "{model}: roundtrip --rescale"
    );
    let ra = o("rt.safetensors");
    assert!(
        verb("roundtrip", wav, &ra, &[]) == read(&o("0_audio.safetensors")),
        "{model}: roundtrip .safetensors"
    );
}

#[test]
fn streamed_verbs_write_the_whole_clip_bytes_24khz() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_model(
        dir.path(),
        "tiny_24k",
        &fixture_path("encodec/e2e_24k.wav"),
        "3.6",
        true,
    );
}

#[test]
fn streamed_verbs_write_the_whole_clip_bytes_48khz_stereo() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_model(
        dir.path(),
        "tiny_48k",
        &fixture_path("encodec/e2e_48k.wav"),
        "7.2",
        false,
    );
}

#[test]
fn streamed_verbs_write_the_whole_clip_bytes_over_many_tiles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("long_22k.wav");
    long_wav(&wav, 22_050, 1, 25.0);
    check_model(dir.path(), "tiny_24k", &wav, "1.8", true);
    let wav = dir.path().join("long_44k.wav");
    long_wav(&wav, 44_100, 2, 3.5);
    check_model(dir.path(), "tiny_48k", &wav, "7.2", false);
}

/// A FIFO in `dir` fed `bytes` by a thread (which gives up quietly when the reader goes away).
#[cfg(unix)]
fn fifo_of(dir: &Path, name: &str, bytes: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
    let path = dir.join(name);
    common::mkfifo(&path);
    let p = path.clone();
    let feeder = std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(&bytes);
        }
    });
    (path, feeder)
}

/// Codes from standard input and from a FIFO decode as from the file (`decode -` was refused: "must end in
/// .ecdc or .safetensors"), with the format told by the first bytes; audio from standard input and from a
/// FIFO encodes as from the file; every verb writes to standard output.
#[cfg(unix)]
#[test]
fn codes_and_audio_come_from_stdin_and_fifos() {
    let d = tempfile::tempdir().expect("temp dir");
    let dir = d.path();
    let m = fixture_path("encodec/tiny_24k");
    let m = s(&m);
    let wav = fixture_path("encodec/e2e_24k.wav");
    let (ecdc, st, want_wav) = (
        dir.join("c.ecdc"),
        dir.join("c.safetensors"),
        dir.join("want.wav"),
    );
    ok(
        dir,
        &[
            "encodec",
            "encode",
            "--model",
            m,
            "-b",
            "3.6",
            s(&wav),
            s(&ecdc),
        ],
        None,
    );
    ok(
        dir,
        &[
            "encodec",
            "encode",
            "--model",
            m,
            "-b",
            "3.6",
            s(&wav),
            s(&st),
        ],
        None,
    );
    ok(
        dir,
        &["encodec", "decode", "--model", m, s(&ecdc), s(&want_wav)],
        None,
    );
    let want = std::fs::read(&want_wav).expect("read");
    for input in [&ecdc, &st] {
        let got = ok(
            dir,
            &["encodec", "decode", "--model", m, "-", "-"],
            Some(input),
        );
        assert!(got == want, "decode - < {}", s(input));
        let out = dir.join("from_fifo.wav");
        let (fifo, feeder) = fifo_of(dir, "codes_fifo", std::fs::read(input).expect("read"));
        ok(
            dir,
            &["encodec", "decode", "--model", m, s(&fifo), s(&out)],
            None,
        );
        feeder.join().expect("feeder");
        std::fs::remove_file(&fifo).expect("rm fifo");
        assert!(
            std::fs::read(&out).expect("read") == want,
            "decode FIFO of {}",
            s(input)
        );
    }
    // Audio: standard input and a FIFO, to a file and to standard output.
    let want_codes = std::fs::read(&ecdc).expect("read");
    let got = ok(
        dir,
        &["encodec", "encode", "--model", m, "-b", "3.6", "-", "-"],
        Some(&wav),
    );
    assert!(got == want_codes, "encode - -");
    let (fifo, feeder) = fifo_of(dir, "audio_fifo", std::fs::read(&wav).expect("read"));
    let out = dir.join("fifo.ecdc");
    ok(
        dir,
        &[
            "encodec",
            "encode",
            "--model",
            m,
            "-b",
            "3.6",
            s(&fifo),
            s(&out),
        ],
        None,
    );
    feeder.join().expect("feeder");
    assert!(
        std::fs::read(&out).expect("read") == want_codes,
        "encode FIFO"
    );
    let rt = dir.join("rt.wav");
    ok(
        dir,
        &[
            "encodec",
            "roundtrip",
            "--model",
            m,
            "-b",
            "3.6",
            s(&wav),
            s(&rt),
        ],
        None,
    );
    let got = ok(
        dir,
        &["encodec", "roundtrip", "--model", m, "-b", "3.6", "-", "-"],
        Some(&wav),
    );
    assert!(got == std::fs::read(&rt).expect("read"), "roundtrip - -");
}
