//! The CLVP networks' adapter to the CPU kernels of `clvp-kernels`: the decoder's layers as packed host
//! layers (`decoder.rs`), tensors read back to slices, and the kernels' modules under their old paths.

pub(crate) mod decoder;

use burn::tensor::Device;
pub use clvp_hub::is_cpu;
pub use clvp_kernels::matmul::{PackedLinear, Precision};
pub use clvp_kernels::{activation, matmul};
pub(crate) use clvp_kernels::{attention, encoder_attention};

use burn::tensor::TensorData;

/// The one place the CLVP networks choose their path from the device: the host kernels of `clvp-kernels` on a
/// CPU backend (burn-flex, burn-ndarray), burn's ops elsewhere. Each network stores the choice when it is built;
/// [`crate::ClvpModelForConditionalGeneration::set_host_kernels`] (or the networks' own `set_host_kernels`)
/// changes it, e.g. to run the burn path on a CPU as the `@burn` parity rows do.
pub fn host_kernels_for(device: &Device) -> bool {
    is_cpu(device)
}

/// `Err` naming `what` when the host kernels are asked for on a device that is not a CPU backend's.
pub(crate) fn require_cpu(device: &Device, what: &str) -> Result<(), crate::NnError> {
    if is_cpu(device) {
        Ok(())
    } else {
        Err(crate::NnError::Config(format!(
            "{what} need a CPU backend (flex or ndarray); the model is on {device:?}"
        )))
    }
}

/// A tensor's values read back to the host as `f32`.
pub(crate) fn to_host(data: TensorData) -> Result<Vec<f32>, String> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading a tensor back to the host: {e:?}"))
}
