//! transformers' `EncodecFeatureExtractor` (layout, chunk-aware padding, the padding mask) on
//! `encodec_codec::EncodecFeatureExtractor`; beyond transformers, a clip may be an audio file's path, decoded and
//! converted to the extractor's channels and rate as the `clvp` command converts it.

use std::path::{Path, PathBuf};

use clvp::raw::audio::load_audio;
use clvp::raw::encodec::{
    EncodecConfig, EncodecFeatureExtractor as Extractor, PadOptions, Padding,
};
use clvp::raw::hub::Checkpoint;
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::arrays::values;
use crate::{py_err, value_err};

/// transformers' `EncodecFeatureExtractor`.
#[pyclass(module = "clvp", frozen)]
pub struct EncodecFeatureExtractor {
    inner: Box<Extractor>,
}

/// HF's `padding` argument: `True`/`"longest"`, `"max_length"`, `False`/`"do_not_pad"`, or `None`.
fn padding(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Padding>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(Some(if b {
            Padding::Longest
        } else {
            Padding::DoNotPad
        }));
    }
    match obj.extract::<String>()?.as_str() {
        "longest" => Ok(Some(Padding::Longest)),
        "max_length" => Ok(Some(Padding::MaxLength)),
        "do_not_pad" => Ok(Some(Padding::DoNotPad)),
        other => Err(value_err(format!(
            "padding={other:?}: True, False, \"longest\", \"max_length\" or \"do_not_pad\""
        ))),
    }
}

/// A path (`str` or `os.PathLike`), not an array.
fn as_path(obj: &Bound<'_, PyAny>) -> Option<PathBuf> {
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return None;
    }
    obj.extract::<PathBuf>().ok()
}

impl EncodecFeatureExtractor {
    /// One clip given as an array: `[n]` for mono, `[2, n]` (channels first) for stereo, as transformers.
    fn clip_from_array(&self, obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Vec<Vec<f32>>> {
        let a: PyArrayLikeDyn<'_, f32, AllowTypeChange> = obj.extract()?;
        let shape = a.shape().to_vec();
        let c = self.inner.feature_size;
        let values: Vec<f32> = values(&a);
        match (c, shape.as_slice()) {
            (1, [_]) => Ok(vec![values]),
            (2, [2, n]) => Ok(values
                .chunks(*n.max(&1))
                .take(2)
                .map(<[f32]>::to_vec)
                .collect()),
            (_, s) if s.len() > 2 => Err(value_err(format!(
                "Expected input shape (channels, length) but got shape {shape:?} (clip {index})"
            ))),
            (1, _) => Err(value_err(format!(
                "Expected mono audio but clip {index} has shape {shape:?} (mono clips are [length])"
            ))),
            _ => Err(value_err(format!(
                "Expected stereo audio but clip {index} has shape {shape:?} (stereo clips are [2, length])"
            ))),
        }
    }

    /// One clip from a file: decoded, then brought to the extractor's channels and rate as the `clvp` command
    /// does (mean to mono or mono duplicated, then the resampler).
    fn clip_from_file(&self, path: &Path) -> Result<Vec<Vec<f32>>, clvp::Error> {
        let audio = load_audio(path)?;
        let audio = audio
            .to_channels(self.inner.feature_size)?
            .resample(self.inner.sampling_rate as u32)?;
        Ok(audio.channels)
    }
}

#[pymethods]
impl EncodecFeatureExtractor {
    /// `EncodecFeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0, chunk_length_s=None,
    /// overlap=None)`.
    #[new]
    #[pyo3(signature = (feature_size = 1, sampling_rate = 24_000, padding_value = 0.0, chunk_length_s = None, overlap = None))]
    fn new(
        feature_size: usize,
        sampling_rate: usize,
        padding_value: f32,
        chunk_length_s: Option<f64>,
        overlap: Option<f64>,
    ) -> PyResult<Self> {
        if !(1..=2).contains(&feature_size) {
            return Err(value_err(format!(
                "feature_size={feature_size}: 1 (mono) or 2 (stereo)"
            )));
        }
        if sampling_rate == 0 || sampling_rate > u32::MAX as usize {
            return Err(value_err(format!("sampling_rate={sampling_rate}")));
        }
        Ok(EncodecFeatureExtractor {
            inner: Box::new(Extractor {
                feature_size,
                sampling_rate,
                padding_value,
                chunk_length_s,
                overlap,
            }),
        })
    }

    /// The extractor of a checkpoint: a local directory or a hub id (`facebook/encodec_24khz`, through the HF
    /// cache): its `preprocessor_config.json`, or, where it has none, the one its `config.json` implies.
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, path: &str) -> PyResult<Self> {
        let source = path.to_string();
        let inner = py
            .detach(move || -> Result<Extractor, clvp::Error> {
                let checkpoint = Checkpoint::from_pretrained(&source, None)?;
                Ok(match checkpoint.file("preprocessor_config.json")? {
                    Some(pre) => Extractor::from_file(&pre)?,
                    None => {
                        let config = checkpoint.file("config.json")?.ok_or_else(|| {
                            clvp::Error::Input(format!(
                                "{source}: no preprocessor_config.json or config.json"
                            ))
                        })?;
                        Extractor::from_config(&EncodecConfig::from_file(&config)?)
                    }
                })
            })
            .map_err(py_err)?;
        Ok(EncodecFeatureExtractor {
            inner: Box::new(inner),
        })
    }

    /// Channels (1 mono, 2 stereo).
    #[getter]
    fn feature_size(&self) -> usize {
        self.inner.feature_size
    }

    /// Sample rate in Hz.
    #[getter]
    fn sampling_rate(&self) -> usize {
        self.inner.sampling_rate
    }

    /// Value of padded samples.
    #[getter]
    fn padding_value(&self) -> f32 {
        self.inner.padding_value
    }

    /// `chunk_length_s · sampling_rate` in samples (`None` for models that do not chunk).
    #[getter]
    fn chunk_length(&self) -> Option<usize> {
        self.inner.chunk_length()
    }

    /// The chunks' stride in samples (`None` for models that do not chunk).
    #[getter]
    fn chunk_stride(&self) -> Option<usize> {
        self.inner.chunk_stride()
    }

    /// `feature_extractor(raw_audio, padding=None, truncation=False, max_length=None, return_tensors=None,
    /// sampling_rate=None)`: one clip (`[n]` mono, `[2, n]` stereo), a list of clips, or audio file path(s) →
    /// `{"input_values": float32 [B, C, L], "padding_mask": int32 [B, L]}` (the mask when padding), always
    /// numpy arrays. Files are decoded and converted to the extractor's channels and rate as the `clvp`
    /// command does; arrays must already be at `sampling_rate`.
    #[pyo3(signature = (raw_audio, padding = None, truncation = false, max_length = None, return_tensors = None, sampling_rate = None))]
    #[allow(clippy::too_many_arguments)]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        raw_audio: &Bound<'py, PyAny>,
        padding: Option<&Bound<'py, PyAny>>,
        truncation: bool,
        max_length: Option<usize>,
        return_tensors: Option<&str>,
        sampling_rate: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if let Some(t) = return_tensors.filter(|&t| t != "np") {
            return Err(value_err(format!(
                "return_tensors={t:?}: this module returns numpy arrays (\"np\")"
            )));
        }
        let options = PadOptions {
            padding: self::padding(padding)?,
            truncation,
            max_length,
        };
        // A list of clips (arrays, lists or paths), or one clip (an array, a list of floats, a path).
        let items: Vec<Bound<'py, PyAny>> = match raw_audio.cast::<PyList>() {
            Ok(list)
                if list.get_item(0).is_ok_and(|first| {
                    as_path(&first).is_some()
                        || first.is_instance_of::<PyList>()
                        || first.is_instance_of::<PyTuple>()
                        || first.hasattr("__array__").unwrap_or(false)
                }) =>
            {
                list.iter().collect()
            }
            _ => vec![raw_audio.clone()],
        };
        let any_array = items.iter().any(|i| as_path(i).is_none());
        if let Some(rate) = sampling_rate
            && any_array
            && rate != self.inner.sampling_rate
        {
            return Err(value_err(format!(
                "The model corresponding to this feature extractor was trained using a sampling rate of {}. \
                 Please make sure that the provided audio input was sampled with {} and not {rate}.",
                self.inner.sampling_rate, self.inner.sampling_rate
            )));
        }
        let mut arrays: Vec<Option<Vec<Vec<f32>>>> = Vec::with_capacity(items.len());
        let mut paths: Vec<(usize, PathBuf)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match as_path(item) {
                Some(p) => {
                    paths.push((i, p));
                    arrays.push(None);
                }
                None => arrays.push(Some(self.clip_from_array(item, i)?)),
            }
        }
        let batch = py
            .detach(move || -> Result<_, clvp::Error> {
                for (i, p) in paths {
                    arrays[i] = Some(self.clip_from_file(&p)?);
                }
                let clips: Vec<Vec<Vec<f32>>> = arrays.into_iter().flatten().collect();
                Ok(self.inner.call(&clips, options)?)
            })
            .map_err(py_err)?;
        let out = PyDict::new(py);
        let [b, _, l] = batch.shape;
        out.set_item(
            "input_values",
            PyArray1::from_vec(py, batch.input_values).reshape(batch.shape)?,
        )?;
        if let Some(mask) = batch.padding_mask {
            let mask: Vec<i32> = mask.into_iter().map(|m| m as i32).collect();
            out.set_item(
                "padding_mask",
                PyArray1::from_vec(py, mask).reshape([b, l])?,
            )?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let f = &self.inner;
        format!(
            "EncodecFeatureExtractor(feature_size={}, sampling_rate={}, padding_value={}, chunk_length_s={:?}, overlap={:?})",
            f.feature_size, f.sampling_rate, f.padding_value, f.chunk_length_s, f.overlap
        )
    }
}
