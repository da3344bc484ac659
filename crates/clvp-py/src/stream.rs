//! The live stream objects of `EncodecModel` (issue 26): `EncodecStreamEncoder` and `EncodecStreamDecoder`.

use std::sync::{Arc, Mutex};

use clvp::Encodec;
use clvp::codec::{CodeEvent, CodesRef, DecodeStream, StreamEncoder};
use numpy::{AllowTypeChange, PyArrayLikeDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{array, floats, ints};
use crate::{py_err, value_err};

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

impl EncodecStreamEncoder {
    /// `model.stream_encoder(...)`.
    pub(crate) fn new(
        codec: Arc<Encodec>,
        bandwidth: Option<f64>,
        rate: u32,
        channels: usize,
    ) -> PyResult<Self> {
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

impl EncodecStreamEncoder {
    /// Push `block`, or with `None` finish the stream, with a sink gathering the code events.
    fn run<'py>(
        &self,
        py: Python<'py>,
        block: Option<&[Vec<f32>]>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = py.detach(|| -> Result<Vec<Event>, clvp::Error> {
            let mut guard = self
                .inner
                .lock()
                .map_err(|_| clvp::Error::Input("the stream failed earlier".into()))?;
            let finished = || clvp::Error::Input("the stream is finished".into());
            let mut out = Vec::new();
            let mut sink = |e: CodeEvent<'_>| -> Result<(), clvp::Error> {
                out.push(Event::from(e));
                Ok(())
            };
            match block {
                Some(block) => guard
                    .as_mut()
                    .ok_or_else(finished)?
                    .push(block, &mut sink)?,
                // The encoder is consumed: later calls find the stream finished.
                None => {
                    let summary = guard.take().ok_or_else(finished)?.finish(&mut sink)?;
                    if let Ok(mut l) = self.audio_length.lock() {
                        *l = Some(summary.audio_length);
                    }
                }
            }
            Ok(out)
        });
        events(py, out.map_err(py_err)?)
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
        self.run(py, Some(&block))
    }

    /// The end of the input: the remaining code events (the last frame padded as the whole pass pads it).
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.run(py, None)
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
    /// `model.stream_decoder(...)`.
    pub(crate) fn new(
        codec: Arc<Encodec>,
        num_codebooks: usize,
        audio_length: Option<usize>,
    ) -> PyResult<Self> {
        let decoder = codec.decoder(num_codebooks, audio_length).map_err(py_err)?;
        // SAFETY: as in `EncodecStreamEncoder::new`.
        let decoder: DecodeStream<'static> = unsafe { std::mem::transmute(decoder) };
        Ok(EncodecStreamDecoder {
            inner: Mutex::new(Some(Box::new(decoder))),
            num_codebooks,
            channels: codec.channels(),
            _codec: codec,
        })
    }

    /// Take `step` with a sink gathering the samples; planar `[C, n]` out.
    fn run<'py>(&self, py: Python<'py>, step: Step<'_>) -> PyResult<Bound<'py, PyAny>> {
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
            let finished = || clvp::Error::Input("the stream is finished".into());
            match step {
                // The decoder is consumed: later calls find the stream finished.
                Step::Finish => {
                    guard.take().ok_or_else(finished)?.finish(&mut sink)?;
                }
                Step::Push(codes, frames) => {
                    let dec = guard.as_mut().ok_or_else(finished)?;
                    dec.push(CodesRef::I64(codes), frames, &mut sink)?;
                }
                Step::EndSegment(scale) => {
                    let dec = guard.as_mut().ok_or_else(finished)?;
                    dec.end_segment(scale, &mut sink)?;
                }
            }
            Ok(out)
        });
        let out = out.map_err(py_err)?;
        let n = out.first().map_or(0, Vec::len);
        array(py, out.concat(), &[c, n])
    }
}

/// What an [`EncodecStreamDecoder`] call does.
enum Step<'a> {
    /// Code frames `[n_q, frames]`, row-major.
    Push(&'a [i64], usize),
    /// The end of a chunk, with its scale.
    EndSegment(Option<f32>),
    /// The end of the codes.
    Finish,
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
        self.run(py, Step::Push(&values, frames))
    }

    /// The end of a chunk (chunked models) with its scale; returns the samples now final.
    #[pyo3(signature = (scale = None))]
    fn end_segment<'py>(&self, py: Python<'py>, scale: Option<f32>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, Step::EndSegment(scale))
    }

    /// The end of the codes: the remaining samples.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, Step::Finish)
    }
}
