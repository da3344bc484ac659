//! Streaming rate of the host decoder projections (`clvp_nn::host`) over a full-size decoder's
//! weights: `cargo run --release -p clvp-nn --example host_matmul -- [ROWS]` (set RAYON_NUM_THREADS).

use std::time::Instant;

use clvp_nn::host::{PackedLinear, Precision};

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let (h, layers) = (1024, 30);
    let shapes = [(h, h), (h, h), (h, h), (h, h), (4 * h, h), (h, 4 * h)];
    for precision in [Precision::F32, Precision::Bf16] {
        let lins: Vec<PackedLinear> = (0..layers)
            .flat_map(|l| {
                shapes.iter().map(move |&(o, i)| {
                    let w: Vec<f32> = (0..o * i)
                        .map(|k| ((k * 7 + l) % 13) as f32 * 0.01)
                        .collect();
                    PackedLinear::new(w, Some(vec![0.0; o]), o, i, precision).expect("shape")
                })
            })
            .collect();
        let bytes: usize = lins.iter().map(PackedLinear::bytes).sum();
        let x: Vec<f32> = (0..rows * 4 * h).map(|k| (k % 5) as f32 * 0.1).collect();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            for lin in &lins {
                let (_, d_in) = lin.dims();
                std::hint::black_box(lin.forward(&x[..rows * d_in], rows).expect("shape"));
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "{precision:?} rows {rows}: {:.1} ms per pass over {:.0} MB, {:.1} GB/s, {:.1} GFLOP/s",
            best * 1e3,
            bytes as f64 / 1e6,
            bytes as f64 / best / 1e9,
            2.0 * (bytes as f64
                / if precision == Precision::F32 {
                    4.0
                } else {
                    2.0
                })
                * rows as f64
                / best
                / 1e9
        );
    }
}
