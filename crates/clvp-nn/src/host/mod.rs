//! Host-side (plain `f32`/bf16 slices) kernels for the decoder and the encoders' attention on a CPU backend.

pub mod activation;
pub(crate) mod attention;
pub(crate) mod decoder;
pub(crate) mod encoder_attention;
pub mod matmul;
pub(crate) mod team;

pub use clvp_hub::is_cpu;
pub use matmul::{PackedLinear, Precision};

use burn::tensor::TensorData;

/// A tensor's values read back to the host as `f32`.
pub(crate) fn to_host(data: TensorData) -> Result<Vec<f32>, String> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading a tensor back to the host: {e:?}"))
}

/// Deterministic values in [-1, 1) for the kernels' tests (a 64-bit LCG's high bits).
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u64) -> Vec<f32> {
    let step = |s: u64| {
        s.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
    };
    let mut s = step(seed);
    (0..n)
        .map(|_| {
            s = step(s);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
