//! Decoding every supported format: WAV variants written here with hound (and by hand for 64-bit
//! float), plus the committed sox-made files in `fixtures/audio/formats/` (see its `make.sh`).

use std::f64::consts::PI;
use std::path::Path;

use clvp_audio::{Audio, decode_bytes, load_audio};
use clvp_parity::fixture_path;

/// `amp · sin(2π f n / rate)` for `n` in `0..frames`.
fn sine(freq: f64, rate: u32, frames: usize, amp: f64) -> Vec<f64> {
    (0..frames)
        .map(|n| amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin())
        .collect()
}

/// Correlation of `y` with the best-phase sine of `freq` over the middle 80% (a least-squares fit
/// on `sin` and `cos`, so codec delay does not matter).
fn sine_correlation(y: &[f32], freq: f64, rate: u32) -> f64 {
    let (lo, hi) = (y.len() / 10, y.len() - y.len() / 10);
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc, mut yy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in y.iter().enumerate().take(hi).skip(lo) {
        let (v, s, c) = (f64::from(v), (w * n as f64).sin(), (w * n as f64).cos());
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += v * s;
        yc += v * c;
        yy += v * v;
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
    ((a * ys + b * yc) / yy).sqrt()
}

fn write_wav(path: &Path, spec: hound::WavSpec, channels: &[Vec<f64>]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let frames = channels[0].len();
    for n in 0..frames {
        for ch in channels {
            let x = ch[n];
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(x as f32).unwrap(),
                (hound::SampleFormat::Int, 8) => w.write_sample((x * 128.0).round() as i8).unwrap(),
                (hound::SampleFormat::Int, 16) => {
                    w.write_sample((x * 32768.0).round() as i16).unwrap()
                }
                (hound::SampleFormat::Int, 24) => {
                    w.write_sample((x * 8388608.0).round() as i32).unwrap()
                }
                (hound::SampleFormat::Int, 32) => {
                    w.write_sample((x * 2147483648.0).round() as i32).unwrap()
                }
                other => panic!("unsupported {other:?}"),
            }
        }
    }
    w.finalize().unwrap();
}

/// A 64-bit float WAV (hound cannot write one): `WAVE_FORMAT_IEEE_FLOAT`, interleaved f64.
pub fn write_f64_wav(path: &Path, rate: u32, channels: &[Vec<f64>]) {
    let nch = channels.len() as u16;
    let frames = channels[0].len();
    let data_len = (frames * channels.len() * 8) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 8 + 16 + 8 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&nch.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(nch) * 8).to_le_bytes());
    b.extend_from_slice(&(nch * 8).to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..frames {
        for ch in channels {
            b.extend_from_slice(&ch[n].to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

#[test]
fn wav_sample_formats_decode_to_the_written_signal() {
    let dir = tempfile::tempdir().unwrap();
    let src = [
        sine(440.0, 22050, 2205, 0.5),
        sine(1000.0, 22050, 2205, 0.25),
    ];
    // (name, spec, largest expected |decoded − source|: half an integer step, or f32 rounding)
    let cases = [
        ("u8", spec(2, 22050, 8, false), 0.5 / 128.0 + 1e-7),
        ("s16", spec(2, 22050, 16, false), 0.5 / 32768.0 + 1e-7),
        ("s24", spec(2, 22050, 24, false), 0.5 / 8388608.0 + 1e-7),
        ("s32", spec(2, 22050, 32, false), 1e-7),
        ("f32", spec(2, 22050, 32, true), 1e-7),
    ];
    let mut failures = Vec::new();
    for (name, spec, tol) in cases {
        let path = dir.path().join(format!("{name}.wav"));
        write_wav(&path, spec, &src);
        match load_audio(&path) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(a) => {
                assert_eq!(
                    (a.sample_rate, a.num_channels(), a.num_frames()),
                    (22050, 2, 2205),
                    "{name}"
                );
                let worst = a
                    .channels
                    .iter()
                    .zip(&src)
                    .flat_map(|(d, s)| d.iter().zip(s).map(|(&d, &s)| (f64::from(d) - s).abs()))
                    .fold(0.0f64, f64::max);
                if worst > tol {
                    failures.push(format!("{name}: max error {worst:e} > {tol:e}"));
                }
            }
        }
    }
    let path = dir.path().join("f64.wav");
    write_f64_wav(&path, 22050, &src);
    match load_audio(&path) {
        Err(e) => failures.push(format!("f64: {e}")),
        Ok(a) => {
            assert_eq!(
                (a.sample_rate, a.num_channels(), a.num_frames()),
                (22050, 2, 2205)
            );
            for (d, s) in a.channels.iter().zip(&src) {
                for (&d, &s) in d.iter().zip(s) {
                    if d != s as f32 {
                        failures.push(format!("f64: {d} != {s}"));
                        break;
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn many_channels_odd_rates_and_tiny_clips() {
    let dir = tempfile::tempdir().unwrap();
    // 8 channels, each a different tone.
    let eight: Vec<Vec<f64>> = (0..8)
        .map(|c| sine(200.0 * (c + 1) as f64, 48000, 4800, 0.3))
        .collect();
    let path = dir.path().join("eight.wav");
    write_wav(&path, spec(8, 48000, 16, false), &eight);
    let a = load_audio(&path).unwrap();
    assert_eq!(
        (a.sample_rate, a.num_channels(), a.num_frames()),
        (48000, 8, 4800)
    );
    for (c, ch) in a.channels.iter().enumerate() {
        assert!(
            sine_correlation(ch, 200.0 * (c + 1) as f64, 48000) > 0.9999,
            "channel {c}"
        );
    }
    assert_eq!(a.to_mono().num_channels(), 1);

    for rate in [8000u32, 11025, 192000] {
        let path = dir.path().join(format!("r{rate}.wav"));
        write_wav(
            &path,
            spec(1, rate, 16, false),
            &[sine(440.0, rate, rate as usize / 10, 0.5)],
        );
        let a = load_audio(&path).unwrap();
        assert_eq!((a.sample_rate, a.num_frames()), (rate, rate as usize / 10));
    }

    for frames in [1usize, 2, 7] {
        let path = dir.path().join(format!("tiny{frames}.wav"));
        write_wav(&path, spec(1, 22050, 16, false), &[vec![0.25; frames]]);
        let a = load_audio(&path).unwrap();
        assert_eq!(a.channels, vec![vec![0.25f32; frames]]);
        // Tiny clips still resample and extract.
        let r = a.resample(16000).unwrap();
        assert_eq!(
            r.num_frames(),
            clvp_audio::resample::resampled_len(frames, 22050, 16000)
        );
        let f = clvp_audio::ClvpFeatureExtractor::tortoise()
            .extract(&[&a.channels[0]], Some(22050))
            .unwrap();
        assert_eq!(f.shape, [1, 80, 517]);
        assert_eq!(f.attention_mask.iter().sum::<i32>(), frames as i32);
    }
}

#[test]
fn decode_bytes_matches_load_audio() {
    let path = fixture_path("audio/formats/sine440_mono_22050_s16.wav");
    let from_file = load_audio(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        decode_bytes(bytes.as_slice(), Some("wav")).unwrap(),
        from_file
    );
    assert_eq!(decode_bytes(bytes, None).unwrap(), from_file);
}

struct FormatCase {
    file: &'static str,
    rate: u32,
    channels: usize,
    /// Exact frame count, or `None` for codecs whose padding/delay handling may vary by a frame block.
    frames: Option<usize>,
    /// Approximate duration in frames for `frames: None`.
    approx_frames: usize,
    /// Tone of each channel.
    tones: &'static [f64],
    /// Minimum correlation with the tone.
    min_corr: f64,
}

#[test]
fn committed_format_fixtures_decode() {
    let cases = [
        FormatCase {
            file: "sine440_mono_22050_s16.flac",
            rate: 22050,
            channels: 1,
            frames: Some(11025),
            approx_frames: 11025,
            tones: &[440.0],
            min_corr: 0.9999,
        },
        FormatCase {
            file: "sine440_mono_22050_s16.aiff",
            rate: 22050,
            channels: 1,
            frames: Some(11025),
            approx_frames: 11025,
            tones: &[440.0],
            min_corr: 0.9999,
        },
        FormatCase {
            file: "sine440_mono_22050_ima.wav",
            rate: 22050,
            channels: 1,
            frames: None,
            approx_frames: 11025,
            tones: &[440.0],
            min_corr: 0.99,
        },
        FormatCase {
            file: "sine440_880_stereo_48000_s24.flac",
            rate: 48000,
            channels: 2,
            frames: Some(9600),
            approx_frames: 9600,
            tones: &[440.0, 880.0],
            min_corr: 0.9999,
        },
        FormatCase {
            file: "sine440_880_stereo_44100.mp3",
            rate: 44100,
            channels: 2,
            frames: None,
            approx_frames: 44100,
            tones: &[440.0, 880.0],
            min_corr: 0.99,
        },
        FormatCase {
            file: "sine440_mono_16000.ogg",
            rate: 16000,
            channels: 1,
            frames: None,
            approx_frames: 16000,
            tones: &[440.0],
            min_corr: 0.99,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let path = fixture_path(&format!("audio/formats/{}", case.file));
        let audio = match load_audio(&path) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: {e}", case.file));
                continue;
            }
        };
        let got = (audio.sample_rate, audio.num_channels());
        if got != (case.rate, case.channels) {
            failures.push(format!("{}: rate/channels {got:?}", case.file));
            continue;
        }
        let frames = audio.num_frames();
        let length_ok = match case.frames {
            Some(n) => frames == n,
            // Within one MP3 granule pair / ADPCM block of the nominal length.
            None => frames.abs_diff(case.approx_frames) <= 2304,
        };
        if !length_ok {
            failures.push(format!(
                "{}: {frames} frames, expected about {}",
                case.file, case.approx_frames
            ));
        }
        for (c, (&tone, samples)) in case.tones.iter().zip(&audio.channels).enumerate() {
            let corr = sine_correlation(samples, tone, case.rate);
            if corr < case.min_corr {
                failures.push(format!(
                    "{} channel {c}: correlation {corr:.5} < {}",
                    case.file, case.min_corr
                ));
            }
        }
        if audio.channels.iter().flatten().any(|x| x.abs() > 1.0) {
            failures.push(format!("{}: samples outside [-1, 1]", case.file));
        }
    }
    // Lossless files made from the 16-bit WAV hold exactly its samples.
    let reference = load_audio(fixture_path("audio/formats/sine440_mono_22050_s16.wav")).unwrap();
    for file in ["sine440_mono_22050_s16.flac", "sine440_mono_22050_s16.aiff"] {
        let a: Option<Audio> = load_audio(fixture_path(&format!("audio/formats/{file}"))).ok();
        if a.as_ref() != Some(&reference) {
            failures.push(format!(
                "{file}: samples differ from sine440_mono_22050_s16.wav"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
