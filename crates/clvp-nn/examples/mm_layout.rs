//! Times the three ways `linear::forward` could run a layer, on 24 distinct weights per shape (so they
//! stream from memory as in a model): `[in, out]` weight (`x·W`), `[out, in]` weight read through a
//! transposed view (`x·Wᵀ`) and the same swapped (`(W·xᵀ)ᵀ`), for the row counts of decoding and
//! beyond. `cargo run --release -p clvp-nn --example mm_layout` (set `RAYON_NUM_THREADS`).

use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

const LAYERS: usize = 24;

fn millis<F: FnMut(usize) -> Tensor<2>>(mut f: F) -> f64 {
    for l in 0..LAYERS {
        let _ = f(l).into_data();
    }
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        for l in 0..LAYERS {
            let _ = f(l).into_data();
        }
    }
    t.elapsed().as_secs_f64() / (reps * LAYERS) as f64 * 1e3
}

fn main() {
    let dev = Device::default();
    let random = |shape: [usize; 2]| -> Vec<Tensor<2>> {
        (0..LAYERS)
            .map(|_| Tensor::random(shape, Distribution::Default, &dev))
            .collect()
    };
    for (k, n) in [
        (768, 768),
        (768, 3072),
        (1536, 768),
        (1024, 1024),
        (1024, 4096),
    ] {
        let in_out = random([k, n]);
        let out_in = random([n, k]);
        for m in [1usize, 16, 25, 64, 101, 517] {
            let x = Tensor::<2>::random([m, k], Distribution::Default, &dev);
            let a = millis(|l| x.clone().matmul(in_out[l].clone()));
            let b = millis(|l| x.clone().matmul(out_in[l].clone().transpose()));
            let c = millis(|l| out_in[l].clone().matmul(x.clone().transpose()).transpose());
            println!(
                "in={k} out={n} rows={m}: [in,out] {a:.3} ms, [out,in] view {b:.3} ms, [out,in] swapped {c:.3} ms"
            );
        }
    }
}
