//! Meta's `.ecdc` container from Python: `clvp.ecdc.compress` / `decompress`, byte-compatible with `encodec`.

use std::sync::Arc;

use clvp::Audio;
use numpy::{AllowTypeChange, PyArrayLikeDyn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::arrays::{array, floats};
use crate::encodec::EncodecModel;
use crate::{py_err, value_err};

/// Meta's `encodec.compress(model, wav)`: `wav` `[channels, length]` at the model's rate (or `sampling_rate`,
/// converted), coded at `bandwidth` kbps into the bytes of an `.ecdc` file (Meta's container, byte for byte).
#[pyfunction]
#[pyo3(signature = (model, wav, sampling_rate = None, bandwidth = 6.0))]
pub fn compress<'py>(
    py: Python<'py>,
    model: &EncodecModel,
    wav: PyArrayLikeDyn<'_, f32, AllowTypeChange>,
    sampling_rate: Option<u32>,
    bandwidth: f64,
) -> PyResult<Bound<'py, PyBytes>> {
    let (values, shape) = floats(&wav);
    let (c, l) = match shape.as_slice() {
        [l] => (1, *l),
        [c, l] => (*c, *l),
        _ => {
            return Err(value_err(format!(
                "wav has shape {shape:?}; expected [channels, length]"
            )));
        }
    };
    let channels: Vec<Vec<f32>> = values
        .chunks(l.max(1))
        .take(c)
        .map(<[f32]>::to_vec)
        .collect();
    let rate = sampling_rate.unwrap_or(model.codec.sample_rate());
    let codec = Arc::clone(&model.codec);
    let bytes = py
        .detach(move || -> Result<Vec<u8>, clvp::Error> {
            let audio = Audio::new(rate, channels)?;
            let audio = codec.convert(&audio)?;
            let codes = codec.encode(&audio, Some(bandwidth))?;
            let mut out = Vec::new();
            codec.write_ecdc(&codes, &mut out)?;
            Ok(out)
        })
        .map_err(py_err)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Meta's `encodec.decompress(compressed)`: the `.ecdc` bytes decoded with `model` (of the file's layout);
/// returns `(wav [channels, length] float32, sample_rate)`.
#[pyfunction]
pub fn decompress<'py>(
    py: Python<'py>,
    compressed: &[u8],
    model: &EncodecModel,
) -> PyResult<(Bound<'py, PyAny>, u32)> {
    let bytes = compressed.to_vec();
    let codec = Arc::clone(&model.codec);
    let audio = py
        .detach(move || -> Result<Audio, clvp::Error> {
            let codes = codec.read_ecdc(&mut bytes.as_slice())?;
            codec.decode(&codes)
        })
        .map_err(py_err)?;
    let (c, n) = (audio.num_channels(), audio.num_frames());
    Ok((
        array(py, audio.channels.concat(), &[c, n])?,
        audio.sample_rate,
    ))
}
