//! numpy arrays in and out: inputs read in place where their layout allows (a copy only for another dtype or a
//! strided view), outputs handed to numpy without a copy (`PyArray1::from_vec` adopts the `Vec`).

use burn::tensor::{Int, Tensor};
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// The array's values in place when it is C-contiguous (row-major, what the shapes below mean). rust-numpy's
/// `as_slice` also accepts Fortran order, whose memory order is not the logical one (`wav.T[None]` of a
/// `soundfile` clip): those, and strided views, are gathered by `values`.
pub(crate) fn c_slice<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
) -> Option<&'a [T]> {
    if a.is_c_contiguous() {
        a.as_slice().ok()
    } else {
        None
    }
}

/// The array's values in logical (row-major) order: one copy, from memory in place when C-contiguous.
pub(crate) fn values<T: numpy::Element + Copy, D: numpy::ndarray::Dimension>(
    a: &numpy::PyReadonlyArray<'_, T, D>,
) -> Vec<T> {
    match c_slice(a) {
        Some(s) => s.to_vec(),
        None => a.as_array().iter().copied().collect(),
    }
}

/// A numpy array's values (any real dtype, converted to `f32`) and shape.
pub(crate) fn floats(a: &PyArrayLikeDyn<'_, f32, AllowTypeChange>) -> (Vec<f32>, Vec<usize>) {
    (values(a), a.shape().to_vec())
}

/// A numpy array's values (any integer dtype, converted to `i64`) and shape.
pub(crate) fn ints(a: &PyArrayLikeDyn<'_, i64, AllowTypeChange>) -> (Vec<i64>, Vec<usize>) {
    (values(a), a.shape().to_vec())
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
