//! `clvp encodec encode|decode --stream` (issue 26): live audio in, code frames out as they are final, and back.
//!
//! * The bytes are those of the commands without `--stream`, whatever `--stream-frames`: `.ecdc`,
//!   `.safetensors`, JSON lines; decoded WAV from `.ecdc`, `.safetensors` or JSON lines; raw PCM in (`--raw
//!   RATE:CHANNELS`) gives the codes of the same samples in a WAV; `--raw` out is the WAV's samples.
//! * Live: through pipes, code lines come out while the audio is still being written, and samples while the
//!   codes are; a WAV on a pipe carries the "unknown length" sizes when the codes give the length only at
//!   their end.
//! * Broken input (a JSON stream cut short, a raw stream ending inside a frame, a header of another model) is an
//!   error that names it and leaves no output file.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use clvp_parity::fixture_path;
use common::{clvp, s};

fn run(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = clvp(cwd);
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().expect("clvp runs");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("clvp ends")
}

fn ok(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let o = run(cwd, args, stdin);
    assert!(
        o.status.success(),
        "clvp {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn fails(cwd: &Path, args: &[&str], stdin: Option<&[u8]>, want: &str) {
    let o = run(cwd, args, stdin);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "clvp {args:?} succeeded");
    assert!(err.contains(want), "clvp {args:?}: {err:?} lacks {want:?}");
    assert!(!err.contains("panicked"), "clvp {args:?} panicked: {err}");
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A 16-bit WAV at `rate` × `channels`: a chirp with noise; and its samples as raw PCM.
fn wav(
    dir: &Path,
    name: &str,
    rate: u32,
    channels: u16,
    seconds: f64,
) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("wav");
    let mut raw = Vec::new();
    let mut seed = 99u64;
    for i in 0..(seconds * f64::from(rate)) as usize {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let x = 0.4
                * (std::f64::consts::TAU * (180.0 + 400.0 * t + 60.0 * f64::from(c)) * t).sin()
                + 0.1 * noise;
            let v = (x * 32767.0) as i16;
            w.write_sample(v).expect("sample");
            raw.extend_from_slice(&v.to_le_bytes());
        }
    }
    w.finalize().expect("finalize");
    (path, raw)
}

fn model(name: &str) -> String {
    s(&fixture_path(&format!("encodec/{name}"))).to_string()
}

#[test]
fn stream_outputs_equal_the_whole_file_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // (model, bandwidth, the whole-file codes format, input rate, channels, seconds)
    for (name, bw, form, rate, channels, seconds) in [
        ("tiny_24k", "1.8", "ecdc", 24_000, 1, 2.7),
        ("tiny_24k", "3.6", "safetensors", 22_050, 2, 1.9),
        ("tiny_48k", "3.6", "safetensors", 48_000, 2, 1.5),
    ] {
        let m = model(name);
        let label = format!("{name} {rate} Hz × {channels}");
        let (input, raw) = wav(d, &format!("{name}_{rate}.wav"), rate, channels, seconds);
        let input = s(&input).to_string();
        let whole = d.join(format!("whole.{form}"));
        ok(
            d,
            &[
                "encodec",
                "encode",
                "--model",
                &m,
                "-b",
                bw,
                &input,
                s(&whole),
            ],
            None,
        );
        let lines = d.join("whole.jsonl");
        ok(
            d,
            &[
                "encodec",
                "encode",
                "--model",
                &m,
                "-b",
                bw,
                &input,
                s(&lines),
            ],
            None,
        );
        let want_codes = read(&whole);
        let want_lines = read(&lines);
        for frames in ["1", "3", "1000"] {
            let out = d.join(format!("live.{form}"));
            ok(
                d,
                &[
                    "encodec",
                    "encode",
                    "--model",
                    &m,
                    "-b",
                    bw,
                    "--stream",
                    "--stream-frames",
                    frames,
                    &input,
                    s(&out),
                ],
                None,
            );
            assert!(
                read(&out) == want_codes,
                "{label} frames {frames}: {form} differs"
            );
            // JSON lines on standard output, from the WAV on standard input.
            let got = ok(
                d,
                &[
                    "encodec",
                    "encode",
                    "--model",
                    &m,
                    "-b",
                    bw,
                    "--stream",
                    "--stream-frames",
                    frames,
                    "--format",
                    "jsonl",
                    "-",
                    "-",
                ],
                Some(&read(Path::new(&input))),
            );
            assert!(
                got == want_lines,
                "{label} frames {frames}: JSON lines differ"
            );
        }
        // The same samples as raw PCM.
        let spec = format!("{rate}:{channels}");
        let got = ok(
            d,
            &[
                "encodec", "encode", "--model", &m, "-b", bw, "--stream", "--raw", &spec,
                "--format", "jsonl", "-", "-",
            ],
            Some(&raw),
        );
        assert!(got == want_lines, "{label}: raw PCM in gives other codes");

        // Decoding: the whole-file decode of the codes, against the live one of the JSON lines.
        let wav_out = d.join("whole.wav");
        ok(
            d,
            &["encodec", "decode", "--model", &m, s(&whole), s(&wav_out)],
            None,
        );
        let want_wav = read(&wav_out);
        for frames in ["1", "7"] {
            let out = d.join("live.wav");
            ok(
                d,
                &[
                    "encodec",
                    "decode",
                    "--model",
                    &m,
                    "--stream",
                    "--stream-frames",
                    frames,
                    s(&lines),
                    s(&out),
                ],
                None,
            );
            assert!(
                read(&out) == want_wav,
                "{label} frames {frames}: decoded WAV differs"
            );
            let piped = ok(
                d,
                &[
                    "encodec",
                    "decode",
                    "--model",
                    &m,
                    "--stream",
                    "--stream-frames",
                    frames,
                    "-",
                    "-",
                ],
                Some(&want_lines),
            );
            // On a pipe the sizes are unknown (0xFFFFFFFF); everything else is the file's bytes.
            assert_eq!(&piped[4..8], &[0xff; 4], "{label}: RIFF size on a pipe");
            assert_eq!(&piped[40..44], &[0xff; 4], "{label}: data size on a pipe");
            assert!(
                piped[..4] == want_wav[..4]
                    && piped[8..40] == want_wav[8..40]
                    && piped[44..] == want_wav[44..],
                "{label} frames {frames}: piped WAV differs"
            );
            let raw_out = ok(
                d,
                &[
                    "encodec", "decode", "--model", &m, "--stream", "--raw", "-", "-",
                ],
                Some(&want_lines),
            );
            assert!(
                raw_out == want_wav[44..],
                "{label}: --raw is not the WAV's samples"
            );
        }
        // Decoded to safetensors from JSON lines (the length comes last) equals the whole-file one.
        let a = d.join("a.safetensors");
        let b = d.join("b.safetensors");
        ok(
            d,
            &["encodec", "decode", "--model", &m, s(&whole), s(&a)],
            None,
        );
        ok(
            d,
            &["encodec", "decode", "--model", &m, s(&lines), s(&b)],
            None,
        );
        assert!(read(&a) == read(&b), "{label}: audio_values differ");
        // The .ecdc from JSON lines' source decodes as the live stream: an .ecdc input with --stream.
        if form == "ecdc" {
            let out = d.join("ecdc_live.wav");
            ok(
                d,
                &[
                    "encodec",
                    "decode",
                    "--model",
                    &m,
                    "--stream",
                    s(&whole),
                    s(&out),
                ],
                None,
            );
            assert!(
                read(&out) == want_wav,
                "{label}: --stream decode of .ecdc differs"
            );
        }
    }
}

/// Read lines from `r` on a thread; the receiver gets each as it comes.
fn lines_as_they_come(r: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn codes_and_samples_come_out_while_the_input_is_still_coming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let m = model("tiny_24k");
    let (_, raw) = wav(d, "live.wav", 24_000, 1, 3.0);
    let mut child = clvp(d)
        .args([
            "encodec", "encode", "--model", &m, "-b", "1.8", "--stream", "--raw", "24000:1",
            "--format", "jsonl", "-", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clvp runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = lines_as_they_come(child.stdout.take().expect("stdout"));
    // The first second, then wait for frames while the rest is held back.
    stdin.write_all(&raw[..48_000]).expect("write");
    stdin.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut frames = 0;
    let mut got = Vec::new();
    while frames < 40 && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            frames += usize::from(line.contains("\"frame\""));
            got.push(line);
        }
    }
    assert!(
        frames >= 40,
        "only {frames} code frames before the input went on"
    );
    stdin.write_all(&raw[48_000..]).expect("write");
    drop(stdin);
    got.extend(lines.iter());
    let status = child.wait().expect("clvp ends");
    assert!(status.success());
    assert!(
        got.last().is_some_and(|l| l.contains("\"end\"")),
        "{:?}",
        got.last()
    );
    let codes = got.join("\n") + "\n";

    // Decode live: samples before the last code line is written.
    let mut child = clvp(d)
        .args([
            "encodec", "decode", "--model", &m, "--stream", "--raw", "-", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clvp runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let half: Vec<&str> = codes.lines().take(80).collect();
    stdin
        .write_all((half.join("\n") + "\n").as_bytes())
        .expect("write");
    stdin.flush().expect("flush");
    let mut samples = 0;
    while samples < 24_000 && Instant::now() < deadline {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
            samples += bytes.len() / 2;
        }
    }
    assert!(
        samples >= 24_000,
        "only {samples} samples before the codes went on"
    );
    let rest: Vec<&str> = codes.lines().skip(80).collect();
    stdin
        .write_all((rest.join("\n") + "\n").as_bytes())
        .expect("write");
    drop(stdin);
    samples += rx.iter().map(|b| b.len() / 2).sum::<usize>();
    assert!(child.wait().expect("clvp ends").success());
    assert_eq!(samples, 72_000, "decoded length");
}

#[test]
fn broken_live_input_is_named_and_leaves_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let m = model("tiny_24k");
    let (input, raw) = wav(d, "in.wav", 24_000, 1, 0.5);
    let lines = d.join("c.jsonl");
    ok(
        d,
        &[
            "encodec",
            "encode",
            "--model",
            &m,
            "-b",
            "1.8",
            s(&input),
            s(&lines),
        ],
        None,
    );
    let text = String::from_utf8(read(&lines)).expect("utf-8");
    let cut: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    let out = d.join("out.wav");
    fails(
        d,
        &["encodec", "decode", "--model", &m, "--stream", "-", s(&out)],
        Some(cut.as_bytes()),
        "cut short",
    );
    assert!(!out.exists(), "a cut stream left {}", out.display());
    let other = text.replace("\"sample_rate\":24000", "\"sample_rate\":48000");
    fails(
        d,
        &["encodec", "decode", "--model", &m, "-", s(&out)],
        Some(other.as_bytes()),
        "48000 Hz",
    );
    let wrong_len = text.replace("\"audio_length\":12000", "\"audio_length\":99999");
    fails(
        d,
        &["encodec", "decode", "--model", &m, "-", s(&out)],
        Some(wrong_len.as_bytes()),
        "audio length 99999",
    );
    assert!(!out.exists());
    let odd = &raw[..raw.len() - 1];
    let codes = d.join("x.jsonl");
    fails(
        d,
        &[
            "encodec",
            "encode",
            "--model",
            &m,
            "-b",
            "1.8",
            "--raw",
            "24000:1",
            "-",
            s(&codes),
        ],
        Some(odd),
        "ends inside a frame",
    );
    assert!(!codes.exists());
    fails(
        d,
        &[
            "encodec",
            "encode",
            "--model",
            &m,
            "--raw",
            "24000",
            "-",
            s(&codes),
        ],
        Some(&raw),
        "RATE:CHANNELS",
    );
    fails(
        d,
        &[
            "encodec",
            "encode",
            "--model",
            &m,
            "--format",
            "jsonl",
            s(&input),
            s(&d.join("x.ecdc")),
        ],
        None,
        "does not match",
    );
    fails(
        d,
        &[
            "encodec",
            "decode",
            "--model",
            &m,
            "--raw",
            s(&lines),
            s(&out),
        ],
        None,
        "--raw writes headerless PCM",
    );
    fails(
        d,
        &[
            "encodec",
            "encode",
            "--model",
            &m,
            "--stream",
            "--stream-frames",
            "0",
            s(&input),
            s(&codes),
        ],
        None,
        "at least 1",
    );
}
