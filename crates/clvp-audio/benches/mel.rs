//! Criterion benches of the feature path's hot kernels: `ClvpFeatureExtractor` log-mel of a 6 s clip at the
//! model rate, and the same clip from 24 kHz (resampling included). `cargo bench -p clvp-audio`.

use std::f32::consts::PI;
use std::hint::black_box;

use clvp_audio::ClvpFeatureExtractor;
use criterion::{Criterion, criterion_group, criterion_main};

fn clip(rate: u32, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * PI * 220.0 * t).sin() + 0.1 * (2.0 * PI * 3150.0 * t).sin()
        })
        .collect()
}

fn features(c: &mut Criterion) {
    let fe = ClvpFeatureExtractor::tortoise();
    let native = clip(22_050, 6.0);
    let other = clip(24_000, 6.0);
    c.bench_function("log-mel 6 s at 22.05 kHz", |b| {
        b.iter(|| fe.extract(&[black_box(&native)], Some(22_050)))
    });
    c.bench_function("log-mel 6 s from 24 kHz (resampled)", |b| {
        b.iter(|| fe.extract(&[black_box(&other)], Some(24_000)))
    });
}

criterion_group!(benches, features);
criterion_main!(benches);
