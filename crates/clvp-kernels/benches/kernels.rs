//! Each kernel of clvp-kernels on the shapes the models give it (full-size CLVP and EnCodec 24 kHz):
//! `cargo bench -p clvp-kernels`.

use std::hint::black_box;

use clvp_kernels::activation::{gated_gelu, gelu_new_in_place};
use clvp_kernels::attention::HostKv;
use clvp_kernels::conv::{PadMode, elu_into, group_norm, matmul_acc, pad_row};
use clvp_kernels::encoder_attention::{Shape, self_attention};
use clvp_kernels::lstm::{PackedHh, Recurrence};
use clvp_kernels::torch_sum::rms_scale;
use clvp_kernels::{PackedLinear, Precision};
use criterion::{Criterion, criterion_group, criterion_main};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn decoder(c: &mut Criterion) {
    let mut g = c.benchmark_group("decoder");
    g.sample_size(10);
    // The decoder MLP's two shapes (c_fc, c_proj): c_proj's 4 weight rows do not fit L1.
    for ((d_in, d_out), precision) in [(1024, 4096), (4096, 1024)]
        .into_iter()
        .flat_map(|s| [Precision::F32, Precision::Bf16, Precision::Int8].map(|p| (s, p)))
    {
        let x = values(16 * d_in, 1);
        let Some(lin) = PackedLinear::new(
            values(d_out * d_in, 2),
            Some(values(d_out, 3)),
            d_out,
            d_in,
            precision,
        ) else {
            panic!("the weights fit the shape")
        };
        // One decoding step's row, and P2's 16 candidates.
        for rows in [1, 16] {
            g.bench_function(
                format!("PackedLinear {rows} × {d_in} → {d_out} ({precision:?})"),
                |b| b.iter(|| black_box(lin.forward(black_box(&x[..rows * d_in]), rows))),
            );
        }
    }
    // A decoding step's weights do not fit any cache (the full-size decoder's are 1.5 GB in f32): 64 c_fc-shaped
    // layers in turn (1 GiB in f32, more than this VM's L3), as the decoder's layers stream from memory.
    let (d_in, d_out) = (1024, 4096);
    let x = values(16 * d_in, 1);
    for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
        let layers: Vec<PackedLinear> = (0..64)
            .filter_map(|i| {
                PackedLinear::new(values(d_out * d_in, 10 + i), None, d_out, d_in, precision)
            })
            .collect();
        for rows in [1, 16] {
            g.bench_function(
                format!(
                    "PackedLinear {rows} × {d_in} → {d_out} ({precision:?}), 64 layers from memory"
                ),
                |b| {
                    b.iter(|| {
                        for lin in &layers {
                            black_box(lin.forward(black_box(&x[..rows * d_in]), rows)).ok();
                        }
                    })
                },
            );
        }
    }
    // One cached step of one layer: 16 heads × 64, 300 positions in the cache.
    let (heads, hd, past) = (16, 64, 300);
    let mut kv = HostKv::new(1, 1, heads, 604, hd);
    let prefill = values(past * 3 * heads * hd, 4);
    kv.attend(0, 0, past, &prefill);
    let qkv = values(3 * heads * hd, 5);
    g.bench_function("HostKv::attend 1 step, 300 cached, 16 × 64", |b| {
        b.iter(|| black_box(kv.attend(0, past, 1, black_box(&qkv))))
    });
    let mut h = values(16 * 4096, 6);
    g.bench_function("gelu_new 16 × 4096", |b| {
        b.iter(|| gelu_new_in_place(black_box(&mut h)))
    });
    g.finish();
}

fn encoders(c: &mut Criterion) {
    let mut g = c.benchmark_group("encoders");
    g.sample_size(10);
    let shape = Shape {
        batch: 1,
        len: 500,
        hidden: 768,
        heads: 12,
    };
    let (q, k, v) = (
        values(500 * 768, 7),
        values(500 * 768, 8),
        values(500 * 768, 9),
    );
    g.bench_function("self_attention 1 × 500 × 768, 12 heads", |b| {
        b.iter(|| black_box(self_attention([&q, &k, &v], &shape, 0.125, None, None)))
    });
    let gate = values(500 * 2 * 1536, 10);
    g.bench_function("gated_gelu 500 × 1536", |b| {
        b.iter(|| black_box(gated_gelu(black_box(&gate), 1536)))
    });
    g.finish();
}

fn encodec(c: &mut Criterion) {
    let mut g = c.benchmark_group("encodec");
    g.sample_size(10);
    let src = values(1 << 16, 11);
    let mut dst = vec![0.0; src.len()];
    g.bench_function("elu 65 536", |b| {
        b.iter(|| elu_into(black_box(&src), &mut dst))
    });
    let mut padded = vec![0.0; 6 + (1 << 16)];
    g.bench_function("pad_row reflect + ELU 65 536 by (6, 0)", |b| {
        b.iter(|| pad_row(black_box(&src), 6, 0, PadMode::Reflect, true, &mut padded))
    });
    // One tap of a 64 → 64 channel conv over 4096 samples.
    let (m, n, k) = (64, 4096, 64);
    let (lhs, rhs) = (values(m * k, 12), values(k * n, 13));
    let mut acc = vec![0.0; m * n];
    g.bench_function("matmul_acc 64 × 64 × 4096", |b| {
        b.iter(|| matmul_acc(&mut acc, black_box(&lhs), black_box(&rhs), [m, n, k]))
    });
    let norm = (values(512, 14), values(512, 15));
    let mut y = values(512 * 1024, 16);
    g.bench_function("group_norm 512 × 1024", |b| {
        b.iter(|| group_norm(&mut y, 1024, &norm))
    });
    let hidden = 512;
    let w_hh = PackedHh::new(&values(4 * hidden * hidden, 17), hidden);
    let projected = values(75 * 4 * hidden, 18);
    let run = Recurrence {
        projected: &projected,
        w_hh: &w_hh,
        steps: 75,
        batch: 1,
    };
    g.bench_function("LSTM 75 steps × 512 (1 s at 24 kHz)", |b| {
        b.iter(|| black_box(run.run(vec![0.0; hidden], vec![0.0; hidden], 2)))
    });
    let chunk = values(2 * 48_000, 19);
    g.bench_function("rms_scale 2 × 48000 (a 48 kHz chunk)", |b| {
        b.iter(|| black_box(rms_scale(black_box(&chunk), 2, 48_000)))
    });
    g.finish();
}

criterion_group!(benches, decoder, encoders, encodec);
criterion_main!(benches);
