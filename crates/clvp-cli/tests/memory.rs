//! Memory flat in the input's size (issue 22, items 5 and 6), on the tiny checkpoints:
//!
//! * `clvp encodec` encode, decode and roundtrip of a 300 s clip peak within a few MB of a 24 s clip's peak.
//!   Before streaming, each held the whole clip (and decode its whole WAV image): +55 to +130 MB.
//! * `clvp generate` with 160 `--voice` clips peaks within a few MB of 16 clips (one batch of the conditioning
//!   encoder). Before the running mean, every clip was kept until all were loaded: +70 MB.
//!
//! The peak is the child's `VmHWM` (its own high-water resident set since `exec`), sampled from
//! `/proc/PID/status` while it runs: `wait4`'s `ru_maxrss` would also count the test process, whose memory a
//! spawned child starts from. Sampling gives a lower bound of the peak, close to it: `VmHWM` only grows, and
//! the buffers of the old paths lived for most of the run.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clvp_parity::fixture_path;
use common::{DEADLINE, clvp, s};

/// Growth of the peak allowed from 24 s to 300 s of audio, or from 16 to 160 voice clips: allocator noise (±15
/// MB seen between runs of one input), far below what the old paths held (300 s × 24 kHz × 4 bytes = 29 MB,
/// several times; 144 clips × 6 s × 22.05 kHz × 4 bytes = 76 MB).
const ALLOWED_GROWTH_KIB: u64 = 35 * 1024;

/// `VmHWM` of a running process, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run `clvp ARGS` to success; its peak resident set (KiB) as sampled.
fn peak_kib(cwd: &Path, args: &[&str]) -> u64 {
    let err = cwd.join("stderr.txt");
    let mut child = clvp(cwd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("clvp runs");
    let start = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "clvp {args:?} hangs");
        std::thread::sleep(Duration::from_millis(2));
    };
    let msg = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "clvp {args:?}: {msg}");
    assert!(peak > 0, "no VmHWM read for clvp {args:?}");
    peak
}

/// A 16-bit mono WAV of `seconds` at `rate` Hz: a gliding tone.
fn wav(path: &Path, rate: u32, seconds: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    let mut phase = 0.0f64;
    let r = f64::from(rate);
    for i in 0..seconds * rate as usize {
        phase += std::f64::consts::TAU * (200.0 + (i % 240_000) as f64 / 400.0) / r;
        w.write_sample((phase.sin() * 12_000.0) as i16)
            .expect("sample");
    }
    w.finalize().expect("finalize");
}

#[test]
fn encodec_memory_does_not_grow_with_the_length() {
    let d = tempfile::tempdir().expect("temp dir");
    let dir = d.path();
    let model = fixture_path("encodec/tiny_24k");
    let m = s(&model);
    let mut peaks = Vec::new();
    for seconds in [24, 300] {
        let input = dir.join(format!("in_{seconds}.wav"));
        wav(&input, 24_000, seconds);
        let codes = dir.join(format!("codes_{seconds}.ecdc"));
        let out = dir.join(format!("out_{seconds}.wav"));
        let i = s(&input);
        let encode = peak_kib(
            dir,
            &["encodec", "encode", "--model", m, "-b", "3.6", i, s(&codes)],
        );
        let decode = peak_kib(
            dir,
            &["encodec", "decode", "--model", m, s(&codes), s(&out)],
        );
        let roundtrip = peak_kib(
            dir,
            &[
                "encodec",
                "roundtrip",
                "--model",
                m,
                "-b",
                "3.6",
                i,
                s(&out),
            ],
        );
        peaks.push([encode, decode, roundtrip]);
    }
    let mut report = Vec::new();
    for (k, verb) in ["encode", "decode", "roundtrip"].iter().enumerate() {
        let (short, long) = (peaks[0][k], peaks[1][k]);
        let growth = long.saturating_sub(short);
        report.push(format!(
            "{verb}: 24 s {short} KiB, 300 s {long} KiB, +{growth} KiB"
        ));
        if growth > ALLOWED_GROWTH_KIB {
            report.push(format!("  ^ grows by more than {ALLOWED_GROWTH_KIB} KiB"));
        }
    }
    let report = report.join("\n");
    assert!(!report.contains('^'), "{report}");
    println!("{report}");
}

#[test]
fn generate_memory_does_not_grow_with_the_voice_count() {
    let d = tempfile::tempdir().expect("temp dir");
    let dir = d.path();
    let voice = dir.join("voice.wav");
    wav(&voice, 22_050, 6);
    let model = fixture_path("clvp/tiny");
    let mut peaks = Vec::new();
    for clips in [16, 160] {
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--text",
            "Hi.",
            "--greedy",
            "--max-new-tokens",
            "4",
        ];
        for _ in 0..clips {
            args.extend(["--voice", s(&voice)]);
        }
        peaks.push(peak_kib(dir, &args));
    }
    let growth = peaks[1].saturating_sub(peaks[0]);
    let report = format!(
        "generate: 16 clips {} KiB, 160 clips {} KiB, +{growth} KiB",
        peaks[0], peaks[1]
    );
    assert!(
        growth <= ALLOWED_GROWTH_KIB,
        "{report}: grows by more than {ALLOWED_GROWTH_KIB} KiB"
    );
    println!("{report}");
}
