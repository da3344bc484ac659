//! Criterion benches of CLVP's hot paths on the committed tiny checkpoint (runs anywhere in seconds):
//! greedy generation with the KV cache (conditioning encoder, decoder steps, speech encoder, ranking) and the
//! speech encoder on a batch of candidates. The full-size comparison with PyTorch is `cargo xtask bench`.
//! `cargo bench -p clvp`.

use std::hint::black_box;

use clvp::{Clvp, GenerationConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn clvp(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
    let loaded = clvp::device::device("cpu")
        .map_err(|e| e.to_string())
        .and_then(|d| {
            Clvp::from_pretrained(&format!("{root}/clvp/tiny"), &d).map_err(|e| e.to_string())
        })
        .and_then(|m| {
            let voice = m
                .processor
                .load_voice(format!("{root}/audio/speech_mid.wav"))
                .map_err(|e| e.to_string())?;
            Ok((m, voice))
        });
    let (model, voice) = match loaded {
        Ok(v) => v,
        Err(e) => panic!("the tiny checkpoint does not load: {e}"),
    };
    let voices = [voice];
    let greedy = GenerationConfig {
        max_new_tokens: 20,
        min_new_tokens: 20,
        ..GenerationConfig::default()
    };
    c.bench_function("clvp tiny generate 1 × 20 tokens (greedy)", |b| {
        b.iter(|| {
            model
                .generate(black_box("Hello world, this is a test."), &voices, &greedy)
                .ok()
        })
    });
    let codes: Vec<Vec<u32>> = (0..16)
        .map(|i| {
            (0..200)
                .map(|j| ((7919 * i + 31 * j) % 256) as u32)
                .collect()
        })
        .collect();
    c.bench_function("clvp tiny speech encoder 16 × 200 codes", |b| {
        b.iter(|| model.get_speech_features(black_box(&codes)).ok())
    });
}

criterion_group!(benches, clvp);
criterion_main!(benches);
