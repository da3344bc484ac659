//! Resampling accuracy against an analytic band-limited reference, exact lengths, and no delay.

use std::f64::consts::PI;

use clvp_audio::Audio;
use clvp_audio::resample::{ACCURACY_BOUND, resampled_len, sinc_len};

/// Five tones at fixed fractions of the lower Nyquist frequency, up to 0.9 of it (sum of amplitudes 0.95).
fn tones(from: u32, to: u32) -> Vec<(f64, f64)> {
    let nyquist = f64::from(from.min(to)) / 2.0;
    [0.013, 0.1, 0.37, 0.61, 0.9]
        .iter()
        .enumerate()
        .map(|(i, f)| (f * nyquist, i as f64))
        .collect()
}

fn signal(tones: &[(f64, f64)], t: f64) -> f64 {
    tones
        .iter()
        .map(|&(f, phase)| 0.19 * (2.0 * PI * f * t + phase).sin())
        .sum()
}

#[test]
fn band_limited_signals_resample_within_the_documented_bound() {
    let pairs: [(u32, u32); 10] = [
        (44100, 22050),
        (16000, 22050),
        (48000, 22050),
        (8000, 22050),
        (192000, 22050),
        (24000, 22050),
        (22050, 24000),
        (22050, 48000),
        (16000, 24000),
        (22050, 44101),
    ];
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (from, to) in pairs {
        let tones = tones(from, to);
        // At least 2 s, and long enough that the interior clears the filter's reach at both ends.
        let margin_in = sinc_len(from, to);
        let frames = (2 * from as usize).max(6 * margin_in);
        let x: Vec<f32> = (0..frames)
            .map(|n| signal(&tones, n as f64 / f64::from(from)) as f32)
            .collect();
        let stereo = Audio::new(from, vec![x.clone(), x.iter().map(|v| -v).collect()]).unwrap();
        let y = stereo.resample(to).unwrap();
        assert_eq!(
            y.num_frames(),
            resampled_len(frames, from, to),
            "{from}->{to} length"
        );
        assert_eq!(y.sample_rate, to);
        let margin_out = resampled_len(margin_in, from, to).max(y.num_frames() / 10);
        let mut worst = 0.0f64;
        for k in margin_out..y.num_frames() - margin_out {
            let want = signal(&tones, k as f64 / f64::from(to));
            worst = worst.max((f64::from(y.channels[0][k]) - want).abs());
            worst = worst.max((f64::from(y.channels[1][k]) + want).abs());
        }
        report.push(format!(
            "{from}->{to}: max abs error {worst:.2e} (sinc {margin_in})"
        ));
        if worst > ACCURACY_BOUND {
            failures.push(format!("{from}->{to}: {worst:.3e} > {ACCURACY_BOUND:e}"));
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}

#[test]
fn an_impulse_stays_in_place() {
    // A centred impulse, band-limited by the resampler, must peak at the same time (no delay).
    for (from, to) in [
        (44100u32, 22050u32),
        (22050, 44100),
        (16000, 22050),
        (48000, 24000),
    ] {
        let mut x = vec![0.0f32; from as usize];
        let centre = from as usize / 2;
        x[centre] = 1.0;
        let y = Audio::mono(from, x).unwrap().resample(to).unwrap();
        let peak = y.channels[0]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        let expected = centre as f64 * f64::from(to) / f64::from(from);
        assert!(
            (peak as f64 - expected).abs() <= 0.5,
            "{from}->{to}: peak at {peak}, expected {expected}"
        );
    }
}

#[test]
fn same_rate_is_a_copy_and_short_clips_work() {
    let a = Audio::mono(22050, vec![0.5, -0.5, 0.25]).unwrap();
    assert_eq!(a.resample(22050).unwrap(), a);
    for frames in [1usize, 2, 3, 10, 100] {
        let a = Audio::mono(8000, vec![0.1; frames]).unwrap();
        let y = a.resample(192000).unwrap();
        assert_eq!(y.num_frames(), frames * 24);
    }
    let eight = Audio::new(48000, vec![vec![0.1; 480]; 8]).unwrap();
    let y = eight.resample(24000).unwrap();
    assert_eq!((y.num_channels(), y.num_frames()), (8, 240));
}
