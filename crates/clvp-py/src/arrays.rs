//! numpy arrays in and out: inputs read in place where their layout allows (a copy only for another dtype or a
//! strided view), outputs handed to numpy without a copy (`PyArray1::from_vec` adopts the `Vec`).

use burn::tensor::{Int, Tensor};
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A numpy array's values (any real dtype, converted to `f32`; a copy only where the layout needs one) and
/// shape.
pub(crate) fn floats(a: &PyArrayLikeDyn<'_, f32, AllowTypeChange>) -> (Vec<f32>, Vec<usize>) {
    let shape = a.shape().to_vec();
    let values = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    (values, shape)
}

pub(crate) fn ints(a: &PyArrayLikeDyn<'_, i64, AllowTypeChange>) -> (Vec<i64>, Vec<usize>) {
    let shape = a.shape().to_vec();
    let values = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    (values, shape)
}

pub(crate) fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}

pub(crate) fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, clvp::Error> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| clvp::Error::Readback {
            what: "a float tensor",
            message: format!("{e:?}"),
        })
}

pub(crate) fn read_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>, clvp::Error> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| clvp::Error::Readback {
            what: "the codes",
            message: format!("{e:?}"),
        })
}
