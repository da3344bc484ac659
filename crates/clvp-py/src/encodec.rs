//! `EncodecModel` (transformers' `EncodecModel`: `encode` / `decode` with HF's shapes); its stream objects are
//! in `stream.rs`, the `.ecdc` functions in `ecdc.rs`.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp::Encodec;
use numpy::{AllowTypeChange, PyArrayLikeDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{array, floats, ints, read_f32, read_i64};
use crate::stream::{EncodecStreamDecoder, EncodecStreamEncoder};
use crate::{py_err, value_err};

/// transformers' `EncodecEncoderOutput`: `audio_codes` int64 `[chunks, B, n_q, T]`, `audio_scales` float32
/// `[chunks, B]` (or `None` for models that do not normalise), `last_frame_pad_length`.
#[pyclass(module = "clvp", frozen, get_all)]
pub struct EncodecEncoderOutput {
    audio_codes: Py<PyAny>,
    audio_scales: Py<PyAny>,
    last_frame_pad_length: usize,
}

#[pymethods]
impl EncodecEncoderOutput {
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let name = match key.extract::<usize>() {
            Ok(0) => "audio_codes".to_string(),
            Ok(1) => "audio_scales".to_string(),
            Ok(2) => "last_frame_pad_length".to_string(),
            _ => key.extract::<String>()?,
        };
        match name.as_str() {
            "audio_codes" => Ok(self.audio_codes.clone_ref(py)),
            "audio_scales" => Ok(self.audio_scales.clone_ref(py)),
            "last_frame_pad_length" => Ok(self
                .last_frame_pad_length
                .into_pyobject(py)?
                .into_any()
                .unbind()),
            other => Err(pyo3::exceptions::PyKeyError::new_err(other.to_string())),
        }
    }
}

/// transformers' `EncodecDecoderOutput`: `audio_values` float32 `[B, C, L]`.
#[pyclass(module = "clvp", frozen, get_all)]
pub struct EncodecDecoderOutput {
    audio_values: Py<PyAny>,
}

#[pymethods]
impl EncodecDecoderOutput {
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match (key.extract::<usize>(), key.extract::<String>()) {
            (Ok(0), _) => Ok(self.audio_values.clone_ref(py)),
            (_, Ok(k)) if k == "audio_values" => Ok(self.audio_values.clone_ref(py)),
            _ => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }
}

/// transformers' `EncodecModel` on the workspace's implementation.
///
/// Every field of a Python object's Rust side is a pointer: Python aligns its objects to 16 bytes, and burn's
/// `Device` asks for 64 (a field of it inline was a misaligned access, which the debug build caught).
#[pyclass(module = "clvp", frozen)]
pub struct EncodecModel {
    pub(crate) codec: Arc<Encodec>,
    device: Box<Device>,
}

#[pymethods]
impl EncodecModel {
    /// Load a checkpoint: a local directory (`config.json` + `model.safetensors`) or a hub id
    /// (`facebook/encodec_24khz[@revision]`, through the Hugging Face cache). `device`: `cpu` (default), `ndarray`,
    /// `wgpu`, `cuda[:N]`. `stream_frames`: the stream objects' block in code frames (1: frame by frame; default
    /// the library's, 2^16 samples' worth).
    #[staticmethod]
    #[pyo3(signature = (path, device = "cpu", stream_frames = None))]
    fn from_pretrained(
        py: Python<'_>,
        path: &str,
        device: &str,
        stream_frames: Option<usize>,
    ) -> PyResult<Self> {
        let (path, device) = (path.to_string(), device.to_string());
        let (codec, device) = py
            .detach(|| -> Result<(Encodec, Device), clvp::Error> {
                let device = clvp::device::device(&device)?;
                let mut codec = Encodec::from_pretrained(&path, &device)?;
                if let Some(f) = stream_frames {
                    codec.set_stream_frames(f);
                }
                Ok((codec, device))
            })
            .map_err(py_err)?;
        Ok(EncodecModel {
            codec: Arc::new(codec),
            device: Box::new(device),
        })
    }

    /// The model's sample rate in Hz (`config.sampling_rate`).
    #[getter]
    fn sampling_rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    /// Audio channels (`config.audio_channels`).
    #[getter]
    fn audio_channels(&self) -> usize {
        self.codec.channels()
    }

    /// The bandwidths in kbps (`config.target_bandwidths`).
    #[getter]
    fn target_bandwidths(&self) -> Vec<f64> {
        self.codec.bandwidths().to_vec()
    }

    /// `model.encode(input_values, padding_mask=None, bandwidth=None)`: `input_values` `[B, C, L]` (as
    /// `EncodecFeatureExtractor` gives them), `padding_mask` `[B, L]` of 1/0; `bandwidth` one of
    /// `target_bandwidths` (`None`: the smallest, as transformers).
    #[pyo3(signature = (input_values, padding_mask = None, bandwidth = None))]
    fn encode(
        &self,
        py: Python<'_>,
        input_values: PyArrayLikeDyn<'_, f32, AllowTypeChange>,
        padding_mask: Option<PyArrayLikeDyn<'_, f32, AllowTypeChange>>,
        bandwidth: Option<f64>,
    ) -> PyResult<EncodecEncoderOutput> {
        let (audio, shape) = floats(&input_values);
        let [b, c, l] = <[usize; 3]>::try_from(shape.as_slice()).map_err(|_| {
            value_err(format!(
                "input_values has shape {shape:?}; EncodecModel takes [batch, channels, length]"
            ))
        })?;
        let mask = padding_mask.as_ref().map(floats);
        let (codec, device) = (Arc::clone(&self.codec), (*self.device).clone());
        let (codes, scales, pad) = py
            .detach(move || -> Result<_, clvp::Error> {
                let model = codec.raw();
                let x = Tensor::<3>::from_data(TensorData::new(audio, [b, c, l]), &device);
                let mask = match mask {
                    Some((m, s)) => {
                        let [mb, ml] = <[usize; 2]>::try_from(s.as_slice()).map_err(|_| {
                            clvp::Error::Input(format!(
                                "padding_mask has shape {s:?}; expected [{b}, {l}]"
                            ))
                        })?;
                        Some(Tensor::<2>::from_data(
                            TensorData::new(m, [mb, ml]),
                            &device,
                        ))
                    }
                    None => None,
                };
                let out = model
                    .encode(x, mask, bandwidth)
                    .map_err(clvp::Error::from)?;
                let codes = out.audio_codes.dims().to_vec();
                let code_values = read_i64(out.audio_codes)?;
                let scales = match out.audio_scales {
                    Some(s) => {
                        let dims = s.dims().to_vec();
                        Some((read_f32(s)?, dims))
                    }
                    None => None,
                };
                Ok(((code_values, codes), scales, out.last_frame_pad_length))
            })
            .map_err(py_err)?;
        let audio_scales = match scales {
            Some((v, s)) => array(py, v, &s)?.unbind(),
            None => py.None(),
        };
        Ok(EncodecEncoderOutput {
            audio_codes: array(py, codes.0, &codes.1)?.unbind(),
            audio_scales,
            last_frame_pad_length: pad,
        })
    }

    /// `model.decode(audio_codes, audio_scales, padding_mask=None, last_frame_pad_length=0)`: codes int
    /// `[chunks, B, n_q, T]`, scales `[chunks, B]` (or `None`); the output is cut to `padding_mask`'s length
    /// when one is given, as transformers does.
    #[pyo3(signature = (audio_codes, audio_scales = None, padding_mask = None, last_frame_pad_length = 0))]
    fn decode(
        &self,
        py: Python<'_>,
        audio_codes: PyArrayLikeDyn<'_, i64, AllowTypeChange>,
        audio_scales: Option<PyArrayLikeDyn<'_, f32, AllowTypeChange>>,
        padding_mask: Option<PyArrayLikeDyn<'_, f32, AllowTypeChange>>,
        last_frame_pad_length: usize,
    ) -> PyResult<EncodecDecoderOutput> {
        let (codes, shape) = ints(&audio_codes);
        let dims = <[usize; 4]>::try_from(shape.as_slice()).map_err(|_| {
            value_err(format!(
                "audio_codes has shape {shape:?}; expected [chunks, batch, n_q, frames]"
            ))
        })?;
        let scales = audio_scales.as_ref().map(floats);
        let output_length = padding_mask
            .as_ref()
            .map(|m| m.shape().last().copied().unwrap_or(0));
        let (codec, device) = (Arc::clone(&self.codec), (*self.device).clone());
        let (values, out_shape) = py
            .detach(move || -> Result<_, clvp::Error> {
                let model = codec.raw();
                let codes = Tensor::<4, Int>::from_data(TensorData::new(codes, dims), &device);
                let scales = match scales {
                    Some((v, s)) => {
                        let n: usize = s.iter().product();
                        if n != dims[0] * dims[1] {
                            return Err(clvp::Error::Input(format!(
                                "audio_scales has shape {s:?}; the codes need {} x {} scales",
                                dims[0], dims[1]
                            )));
                        }
                        Some(Tensor::<2>::from_data(
                            TensorData::new(v, [dims[0], dims[1]]),
                            &device,
                        ))
                    }
                    None => None,
                };
                let audio = model
                    .decode(codes, scales, last_frame_pad_length, output_length)
                    .map_err(clvp::Error::from)?;
                let out_shape = audio.dims().to_vec();
                Ok((read_f32(audio)?, out_shape))
            })
            .map_err(py_err)?;
        Ok(EncodecDecoderOutput {
            audio_values: array(py, values, &out_shape)?.unbind(),
        })
    }

    /// A live encoder (issue 26): push planar PCM blocks `[channels, n]` (or `[n]` for one channel) of
    /// `sampling_rate` Hz (default the model's), converted to the model's channels and rate as they come;
    /// each push returns the code events that are final. The codes equal `encode`'s on the whole clip.
    #[pyo3(signature = (bandwidth = None, sampling_rate = None, channels = None))]
    fn stream_encoder(
        &self,
        bandwidth: Option<f64>,
        sampling_rate: Option<u32>,
        channels: Option<usize>,
    ) -> PyResult<EncodecStreamEncoder> {
        let rate = sampling_rate.unwrap_or(self.codec.sample_rate());
        let channels = channels.unwrap_or(self.codec.channels());
        EncodecStreamEncoder::new(Arc::clone(&self.codec), bandwidth, rate, channels)
    }

    /// A live decoder: push code frames `[n_q, T]` as they arrive, receive the samples `[channels, n]` that are
    /// final; `end_segment(scale)` after each chunk of a chunked model; `finish()` at the end. The audio is cut
    /// to `audio_length` when given. The samples equal `decode`'s.
    #[pyo3(signature = (num_codebooks, audio_length = None))]
    fn stream_decoder(
        &self,
        num_codebooks: usize,
        audio_length: Option<usize>,
    ) -> PyResult<EncodecStreamDecoder> {
        EncodecStreamDecoder::new(Arc::clone(&self.codec), num_codebooks, audio_length)
    }
}
