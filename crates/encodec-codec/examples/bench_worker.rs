//! The Rust side of `cargo xtask bench` P5/P6: EnCodec encode + decode of the first `SECONDS` of a 16-bit WAV
//! at `BANDWIDTH` kbps, timed in this process (release build, flex backend).
//!
//! `bench_worker MODEL_DIR WAV SECONDS BANDWIDTH RUNS WARMUP` prints one JSON line
//! `{"median_s": ..., "runs": N, "peak_rss_bytes": ...}`.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use encodec_codec::EncodecModel;

/// The allocator the `clvp` binary uses (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, wav, seconds, bandwidth, runs, warmup] = args.as_slice() else {
        return Err("usage: bench_worker MODEL_DIR WAV SECONDS BANDWIDTH RUNS WARMUP".into());
    };
    let (seconds, bandwidth): (f64, f64) = (seconds.parse()?, bandwidth.parse()?);
    let (runs, warmup): (usize, usize) = (runs.parse()?, warmup.parse()?);
    let device = Device::flex();
    let model = EncodecModel::from_checkpoint(&Checkpoint::local(model)?, &device)?;
    let mut reader = hound::WavReader::open(wav)?;
    let spec = reader.spec();
    let channels = spec.channels as usize;
    let frames = ((seconds * f64::from(spec.sample_rate)) as usize).min(reader.duration() as usize);
    let interleaved: Vec<f32> = reader
        .samples::<i16>()
        .take(frames * channels)
        .map(|s| s.map(|v| f32::from(v) / 32768.0))
        .collect::<Result<_, _>>()?;
    let planar: Vec<f32> = (0..channels)
        .flat_map(|c| {
            interleaved
                .iter()
                .skip(c)
                .step_by(channels)
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let once = || -> Result<(), Box<dyn std::error::Error>> {
        let x = Tensor::<3>::from_data(
            TensorData::new(planar.clone(), [1, channels, frames]),
            &device,
        );
        let enc = model.encode(x, None, Some(bandwidth))?;
        let out = model.decode(
            enc.audio_codes,
            enc.audio_scales,
            enc.last_frame_pad_length,
            Some(frames),
        )?;
        std::hint::black_box(out.into_data());
        Ok(())
    };
    for _ in 0..warmup {
        once()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        once()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{{\"median_s\": {median}, \"runs\": {runs}, \"peak_rss_bytes\": {}}}",
        clvp_parity::bench::peak_rss_bytes()
    );
    Ok(())
}
