//! The CPU kernels of the CLVP and EnCodec models: plain `f32` (and bf16 or int8 weight) slices in, plain
//! slices out, no tensor library. The models' adapters (clvp-nn's `host` module, encodec-codec's `host` module) move
//! tensors to slices and back and decide, from the device, whether these kernels or burn's ops run.
//!
//! * [`matmul`]: packed linear layers (`[out, in]`, f32, bf16 or int8) for batch-1 and small-batch decoding;
//!   [`team`]: the thread team their products and the decoder's attention split over.
//! * [`attention`]: the decoder's cached attention (the KV cache as a host buffer);
//!   [`encoder_attention`]: the text and speech encoders' self-attention (rotary, softmax, `gemm` products).
//! * [`activation`]: `gelu_new` and the encoders' gated GELU.
//! * [`conv`]: EnCodec's ELU, padding, the convolutions' GEMM wrappers, GroupNorm; [`lstm`]: its LSTM's
//!   recurrence over a packed `W_hh`.
//! * [`torch_sum`]: torch's single-threaded float32 `sum`, bit for bit, and EnCodec's RMS scale built on it
//!   (the `.ecdc` files store the scale as float32 bits).
//! * [`simd`]: where the CPU's vector features are detected, once, for all of them, and the one `exp`;
//!   [`gemm`]: the one wrapper of the `gemm` crate.
//!
//! Each kernel has unit tests against an f64 (or plain scalar) reference in its module; `cargo bench -p
//! clvp-kernels` times them one by one (Criterion).

pub mod activation;
pub mod attention;
pub mod conv;
pub mod encoder_attention;
pub mod gemm;
pub mod lstm;
pub mod matmul;
pub mod simd;
pub mod team;
pub mod torch_sum;

pub use matmul::{PackedLinear, Precision};

/// A kernel called with slices whose lengths do not fit its shapes.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A shape mismatch, described.
    #[error("{0}")]
    Shape(String),
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
