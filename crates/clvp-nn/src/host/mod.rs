//! Host-side (plain `f32`/bf16 slices) kernels for the decoder on a CPU backend.

pub mod activation;
pub(crate) mod attention;
pub(crate) mod decoder;
pub mod matmul;

pub use decoder::is_cpu;
pub use matmul::{PackedLinear, Precision};
