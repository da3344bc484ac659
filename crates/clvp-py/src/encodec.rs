//! `EncodecModel` (transformers' `EncodecModel`: `encode` / `decode` with HF's shapes), the live stream objects
//! (issue 26) and Meta's `.ecdc` container (`compress` / `decompress`, byte-compatible with `encodec`).

use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp::codec::{CodeEvent, CodesRef, DecodeStream, StreamEncoder};
use clvp::{Audio, Encodec};
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::{py_err, value_err};

/// A numpy array's values (any real dtype, converted to `f32`; a copy only where the layout needs one) and
/// shape.
fn floats(a: &PyArrayLikeDyn<'_, f32, AllowTypeChange>) -> (Vec<f32>, Vec<usize>) {
    let shape = a.shape().to_vec();
    let values = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    (values, shape)
}

fn ints(a: &PyArrayLikeDyn<'_, i64, AllowTypeChange>) -> (Vec<i64>, Vec<usize>) {
    let shape = a.shape().to_vec();
    let values = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    (values, shape)
}

fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}

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
    codec: Arc<Encodec>,
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
        let codec = Arc::clone(&self.codec);
        let encoder = codec.encoder(bandwidth, rate, channels).map_err(py_err)?;
        // SAFETY: the encoder borrows the model behind `codec`, an `Arc` stored in the same object and declared
        // after it, so the model outlives the encoder (fields drop in declaration order) and never moves.
        let encoder: StreamEncoder<'static> = unsafe { std::mem::transmute(encoder) };
        Ok(EncodecStreamEncoder {
            inner: Mutex::new(Some(Box::new(encoder))),
            channels,
            audio_length: Mutex::new(None),
            _codec: codec,
        })
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
        let codec = Arc::clone(&self.codec);
        let decoder = codec.decoder(num_codebooks, audio_length).map_err(py_err)?;
        // SAFETY: as in `stream_encoder`.
        let decoder: DecodeStream<'static> = unsafe { std::mem::transmute(decoder) };
        Ok(EncodecStreamDecoder {
            inner: Mutex::new(Some(Box::new(decoder))),
            num_codebooks,
            channels: codec.channels(),
            _codec: codec,
        })
    }
}

fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, clvp::Error> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| clvp::Error::Readback {
            what: "a float tensor",
            message: format!("{e:?}"),
        })
}

fn read_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>, clvp::Error> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| clvp::Error::Readback {
            what: "the codes",
            message: format!("{e:?}"),
        })
}

/// The events of a push as Python values: `{"type": "frames", "codes": int64 [n_q, T]}` and
/// `{"type": "end_segment", "scale": float | None}`.
enum Event {
    Frames(Vec<i64>, usize),
    End(Option<f32>),
}

impl From<CodeEvent<'_>> for Event {
    fn from(e: CodeEvent<'_>) -> Self {
        match e {
            CodeEvent::Frames { codes, frames } => Event::Frames(codes.to_vec(), frames),
            CodeEvent::EndSegment { scale } => Event::End(scale),
        }
    }
}

fn events(py: Python<'_>, list: Vec<Event>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for e in list {
        let d = PyDict::new(py);
        match e {
            Event::Frames(codes, frames) => {
                let k = codes.len().checked_div(frames).unwrap_or(0);
                d.set_item("type", "frames")?;
                d.set_item("codes", array(py, codes, &[k, frames])?)?;
            }
            Event::End(scale) => {
                d.set_item("type", "end_segment")?;
                d.set_item("scale", scale)?;
            }
        }
        out.append(d)?;
    }
    Ok(out)
}

/// The live encoder of [`EncodecModel::stream_encoder`].
#[pyclass(module = "clvp")]
pub struct EncodecStreamEncoder {
    inner: Mutex<Option<Box<StreamEncoder<'static>>>>,
    channels: usize,
    audio_length: Mutex<Option<usize>>,
    _codec: Arc<Encodec>,
}

/// A planar block `[C, n]` or `[n]` of `channels` channels.
fn planar(
    block: &PyArrayLikeDyn<'_, f32, AllowTypeChange>,
    channels: usize,
) -> PyResult<Vec<Vec<f32>>> {
    let (values, shape) = floats(block);
    match shape.as_slice() {
        [n] if channels == 1 => Ok(vec![values[..*n].to_vec()]),
        [c, n] if *c == channels => Ok(values
            .chunks(*n.max(&1))
            .take(*c)
            .map(<[f32]>::to_vec)
            .collect()),
        _ => Err(value_err(format!(
            "a block of shape {shape:?}; this stream takes [{channels}, n]{}",
            if channels == 1 { " or [n]" } else { "" }
        ))),
    }
}

#[pymethods]
impl EncodecStreamEncoder {
    /// Push a block; returns the code events now final.
    fn push<'py>(
        &self,
        py: Python<'py>,
        block: PyArrayLikeDyn<'_, f32, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyList>> {
        let block = planar(&block, self.channels)?;
        let out = py.detach(|| -> Result<Vec<Event>, clvp::Error> {
            let mut guard = self
                .inner
                .lock()
                .map_err(|_| clvp::Error::Input("the stream failed earlier".into()))?;
            let Some(enc) = guard.as_mut() else {
                return Err(clvp::Error::Input("the stream is finished".into()));
            };
            let mut out = Vec::new();
            let mut sink = |e: CodeEvent<'_>| -> Result<(), clvp::Error> {
                out.push(Event::from(e));
                Ok(())
            };
            enc.push(&block, &mut sink)?;
            Ok(out)
        });
        events(py, out.map_err(py_err)?)
    }

    /// The end of the input: the remaining code events (the last frame padded as the whole pass pads it).
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = py.detach(|| -> Result<Vec<Event>, clvp::Error> {
            let mut guard = self
                .inner
                .lock()
                .map_err(|_| clvp::Error::Input("the stream failed earlier".into()))?;
            let Some(enc) = guard.take() else {
                return Err(clvp::Error::Input("the stream is finished".into()));
            };
            let mut out = Vec::new();
            let mut sink = |e: CodeEvent<'_>| -> Result<(), clvp::Error> {
                out.push(Event::from(e));
                Ok(())
            };
            let summary = (*enc).finish(&mut sink)?;
            if let Ok(mut l) = self.audio_length.lock() {
                *l = Some(summary.audio_length);
            }
            Ok(out)
        });
        events(py, out.map_err(py_err)?)
    }

    /// Samples per channel encoded, once finished (the model's rate).
    #[getter]
    fn audio_length(&self) -> Option<usize> {
        self.audio_length.lock().ok().and_then(|l| *l)
    }
}

/// The live decoder of [`EncodecModel::stream_decoder`].
#[pyclass(module = "clvp")]
pub struct EncodecStreamDecoder {
    inner: Mutex<Option<Box<DecodeStream<'static>>>>,
    num_codebooks: usize,
    channels: usize,
    _codec: Arc<Encodec>,
}

impl EncodecStreamDecoder {
    /// Run `f` on the decoder with a sink gathering the samples; planar `[C, n]` out.
    fn run<'py>(
        &self,
        py: Python<'py>,
        finish: bool,
        f: impl FnOnce(
            &mut Box<DecodeStream<'static>>,
            &mut dyn FnMut(&[f32], usize) -> Result<(), clvp::Error>,
        ) -> Result<(), clvp::Error>
        + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.channels;
        let out = py.detach(|| -> Result<Vec<Vec<f32>>, clvp::Error> {
            let mut guard = self
                .inner
                .lock()
                .map_err(|_| clvp::Error::Input("the stream failed earlier".into()))?;
            let mut out = vec![Vec::new(); c];
            let mut sink = |block: &[f32], n: usize| -> Result<(), clvp::Error> {
                for (o, ch) in out.iter_mut().zip(block.chunks_exact(n.max(1))) {
                    o.extend_from_slice(ch);
                }
                Ok(())
            };
            if finish {
                let Some(dec) = guard.take() else {
                    return Err(clvp::Error::Input("the stream is finished".into()));
                };
                (*dec).finish(&mut sink)?;
            } else {
                let Some(dec) = guard.as_mut() else {
                    return Err(clvp::Error::Input("the stream is finished".into()));
                };
                f(dec, &mut sink)?;
            }
            Ok(out)
        });
        let out = out.map_err(py_err)?;
        let n = out.first().map_or(0, Vec::len);
        array(py, out.concat(), &[c, n])
    }
}

#[pymethods]
impl EncodecStreamDecoder {
    /// Push code frames `[n_q, T]` (int); returns the samples `[channels, n]` now final.
    fn push<'py>(
        &self,
        py: Python<'py>,
        codes: PyArrayLikeDyn<'_, i64, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (values, shape) = ints(&codes);
        let frames = match shape.as_slice() {
            [k, t] if *k == self.num_codebooks => *t,
            _ => {
                return Err(value_err(format!(
                    "codes of shape {shape:?}; this stream takes [{}, frames]",
                    self.num_codebooks
                )));
            }
        };
        self.run(py, false, move |dec, sink| {
            dec.push(CodesRef::I64(&values), frames, sink)
        })
    }

    /// The end of a chunk (chunked models) with its scale; returns the samples now final.
    #[pyo3(signature = (scale = None))]
    fn end_segment<'py>(&self, py: Python<'py>, scale: Option<f32>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, false, move |dec, sink| dec.end_segment(scale, sink))
    }

    /// The end of the codes: the remaining samples.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, true, |_, _| Ok(()))
    }
}

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
