//! Tensors read back to the host as `f32`: the one place the networks, the streams and the host kernels'
//! adapters leave burn.

use burn::tensor::{DataError, Tensor};

/// A tensor's values on the host, as `f32` (moved out of the read-back buffer, not copied again).
pub(crate) fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, DataError> {
    t.into_data().try_into_vec_as::<f32>()
}

/// [`read_f32`] where a failure has no caller to go to (inside a network's forward).
///
/// # Panics
/// When burn cannot read the tensor back, as `Tensor::into_data` itself does.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    match read_f32(t) {
        Ok(v) => v,
        Err(e) => panic!("reading a tensor back to the host: {e:?}"),
    }
}
