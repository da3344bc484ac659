//! The CLVP networks' adapter to the CPU kernels of `clvp-kernels`: the decoder's layers as packed host
//! layers (`decoder.rs`), tensors read back to slices, and the kernels' modules under their old paths.

pub(crate) mod decoder;

pub use clvp_hub::is_cpu;
pub use clvp_kernels::matmul::{PackedLinear, Precision};
pub use clvp_kernels::{activation, matmul};
pub(crate) use clvp_kernels::{attention, encoder_attention};

use burn::tensor::TensorData;

/// A tensor's values read back to the host as `f32`.
pub(crate) fn to_host(data: TensorData) -> Result<Vec<f32>, String> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading a tensor back to the host: {e:?}"))
}
