//! Tensors read back to the host for the comparisons (feature `burn`): one place for what every burn crate's
//! tests need, so that a failed read shows as an empty vector that the comparison then rejects by length.

use burn::tensor::{Int, Tensor};

/// A float tensor's values as `f64` (empty if the backend cannot hand them back).
pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// A float tensor's shape and values as `f64`.
pub fn shaped<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f64>) {
    let shape = t.dims().to_vec();
    (shape, floats(t))
}

/// An int tensor's values as `i64` (empty if the backend cannot hand them back).
pub fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default()
}
