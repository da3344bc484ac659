//! Time `ClvpFeatureExtractor::extract` on a 6 s clip (or on a given audio file, downmixed and
//! resampled to 22050 Hz): `cargo run --release -p clvp-audio --example features_timing [-- FILE]`.

use std::time::Instant;

use clvp_audio::{AudioError, ClvpFeatureExtractor, load_audio};

fn main() -> Result<(), AudioError> {
    let fe = ClvpFeatureExtractor::tortoise();
    let clip: Vec<f32> = match std::env::args().nth(1) {
        Some(path) => load_audio(path)?
            .to_mono()
            .resample(fe.sampling_rate)?
            .into_mono(),
        None => (0..fe.max_length())
            .map(|n| {
                let t = n as f32 / fe.sampling_rate as f32;
                0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 3100.0 * t).sin()
            })
            .collect(),
    };
    let features = fe.extract(&[&clip], Some(fe.sampling_rate))?;
    let runs = 50;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(fe.extract(&[&clip], Some(fe.sampling_rate))?);
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    println!(
        "{} samples -> features {:?}: {ms:.2} ms per extract (mean of {runs})",
        clip.len(),
        features.shape
    );
    Ok(())
}
