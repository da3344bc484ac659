//! Criterion benches of the CLVP kernels `cargo xtask bench` found hot, at full-size shapes with random
//! values (no checkpoint needed): one speech-encoder attention of P3 (16 candidates × 500 codes, 12 heads
//! of 64), and one batch-1 decoder projection of P1 (1 × 1024 → 4096, PyTorch's `[out, in]` weight, the
//! two-thread split). `cargo bench -p clvp-nn`.

use std::hint::black_box;

use burn::tensor::{Device, Distribution, Tensor};
use clvp_nn::attention::ClvpSelfAttention;
use clvp_nn::linear::{self, Stored, torch_linear};
use criterion::{Criterion, criterion_group, criterion_main};

fn kernels(c: &mut Criterion) {
    let device = Device::flex();
    let attn = ClvpSelfAttention::new(768, 12, true, &device);
    let qkv = || Tensor::<4>::random([16, 12, 500, 64], Distribution::Normal(0.0, 0.5), &device);
    let (q, k, v) = (qkv(), qkv(), qkv());
    let mut group = c.benchmark_group("clvp-nn");
    group.sample_size(10);
    group.bench_function(
        "attention 16 × 12 heads × 500 × 64 (P3, one layer)",
        |b| b.iter(|| attn.attend(black_box(q.clone()), k.clone(), v.clone(), None)),
    );
    let fc = torch_linear(1024, 4096, true, &device);
    let x = Tensor::<3>::random([1, 1, 1024], Distribution::Default, &device);
    group.bench_function("linear 1 × 1024 → 4096 [out, in] (P1, one step)", |b| {
        b.iter(|| linear::forward(&fc, black_box(x.clone()), Stored::OutIn))
    });
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
