//! transformers' `ClvpTokenizer` and `ClvpFeatureExtractor` on the workspace's implementations (clvp-text's
//! HF-exact normaliser and BPE, clvp-audio's log-mel).

use std::path::{Path, PathBuf};

use clvp::raw::audio::ClvpFeatureExtractor as Extractor;
use clvp::raw::text::ClvpTokenizer as Tokenizer;
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{c_slice, values};
use crate::{py_err, value_err};

/// transformers' `ClvpTokenizer`.
#[pyclass(module = "clvp", frozen)]
pub struct ClvpTokenizer {
    inner: Box<Tokenizer>,
}

/// A text or a list of texts.
enum Texts {
    One(String),
    Many(Vec<String>),
}

fn texts(obj: &Bound<'_, PyAny>) -> PyResult<Texts> {
    if let Ok(s) = obj.extract::<String>() {
        return Ok(Texts::One(s));
    }
    obj.extract::<Vec<String>>()
        .map(Texts::Many)
        .map_err(|_| value_err("text must be a str or a list of str"))
}

fn ids(values: &[u32]) -> Vec<i64> {
    values.iter().map(|&v| i64::from(v)).collect()
}

#[pymethods]
impl ClvpTokenizer {
    /// The tokenizer of a checkpoint directory (`vocab.json`, `merges.txt`, `tokenizer_config.json`), or
    /// Tortoise's own vocabulary (embedded) when `path` is `None`.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn from_pretrained(path: Option<&str>) -> PyResult<Self> {
        let inner = match path {
            Some(p) => Tokenizer::from_dir(Path::new(p)),
            None => Tokenizer::tortoise(),
        }
        .map_err(|e| py_err(e.into()))?;
        Ok(ClvpTokenizer {
            inner: Box::new(inner),
        })
    }

    /// `tokenizer(text)`: `{"input_ids", "attention_mask"}`; a list of texts is padded to the longest.
    /// `return_tensors="np"` gives int64 arrays, else lists.
    #[pyo3(signature = (text, return_tensors = None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        return_tensors: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let np = match return_tensors {
            None => false,
            Some("np") => true,
            Some(other) => {
                return Err(value_err(format!(
                    "return_tensors={other:?}: only \"np\" (or None) is supported"
                )));
            }
        };
        match texts(text)? {
            Texts::One(t) => {
                let row = ids(&self.inner.encode(&t).map_err(|e| py_err(e.into()))?);
                let mask = vec![1i64; row.len()];
                if np {
                    let n = row.len();
                    out.set_item("input_ids", PyArray1::from_vec(py, row).reshape([1, n])?)?;
                    out.set_item(
                        "attention_mask",
                        PyArray1::from_vec(py, mask).reshape([1, n])?,
                    )?;
                } else {
                    out.set_item("input_ids", row)?;
                    out.set_item("attention_mask", mask)?;
                }
            }
            Texts::Many(list) => {
                let refs: Vec<&str> = list.iter().map(String::as_str).collect();
                let batch = self
                    .inner
                    .encode_batch(&refs)
                    .map_err(|e| py_err(e.into()))?;
                let rows: Vec<Vec<i64>> = batch.input_ids.iter().map(|r| ids(r)).collect();
                let masks: Vec<Vec<i64>> = batch.attention_mask.iter().map(|r| ids(r)).collect();
                if np {
                    let (b, n) = (rows.len(), rows.first().map_or(0, Vec::len));
                    out.set_item(
                        "input_ids",
                        PyArray1::from_vec(py, rows.concat()).reshape([b, n])?,
                    )?;
                    out.set_item(
                        "attention_mask",
                        PyArray1::from_vec(py, masks.concat()).reshape([b, n])?,
                    )?;
                } else {
                    out.set_item("input_ids", rows)?;
                    out.set_item("attention_mask", masks)?;
                }
            }
        }
        Ok(out)
    }

    /// `tokenizer.encode(text)`: the ids (no special tokens added, as transformers' CLVP tokenizer).
    fn encode(&self, text: &str) -> PyResult<Vec<i64>> {
        Ok(ids(&self
            .inner
            .encode(text)
            .map_err(|e| py_err(e.into()))?))
    }

    /// `tokenizer.decode(ids, skip_special_tokens=False)`.
    #[pyo3(signature = (token_ids, skip_special_tokens = false))]
    fn decode(&self, token_ids: Vec<i64>, skip_special_tokens: bool) -> PyResult<String> {
        let ids = token_ids
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .map_err(|_| value_err(format!("token id {i} is not in the vocabulary")))
            })
            .collect::<PyResult<Vec<u32>>>()?;
        self.inner
            .decode(&ids, skip_special_tokens)
            .map_err(|e| py_err(e.into()))
    }

    /// `tokenizer.batch_decode(sequences, skip_special_tokens=False)`.
    #[pyo3(signature = (sequences, skip_special_tokens = false))]
    fn batch_decode(
        &self,
        sequences: Vec<Vec<i64>>,
        skip_special_tokens: bool,
    ) -> PyResult<Vec<String>> {
        sequences
            .into_iter()
            .map(|s| self.decode(s, skip_special_tokens))
            .collect()
    }

    /// The vocabulary's size.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
}

/// transformers' `ClvpFeatureExtractor`.
#[pyclass(module = "clvp", frozen)]
pub struct ClvpFeatureExtractor {
    inner: Box<Extractor>,
}

#[pymethods]
impl ClvpFeatureExtractor {
    /// The extractor of a checkpoint directory (`preprocessor_config.json`), or Tortoise's settings when `path` is
    /// `None`.
    #[staticmethod]
    #[pyo3(signature = (path = None))]
    fn from_pretrained(path: Option<&str>) -> PyResult<Self> {
        let inner = match path {
            Some(p) => {
                Extractor::from_preprocessor_config(Path::new(p).join("preprocessor_config.json"))
                    .map_err(|e| py_err(e.into()))?
            }
            None => Extractor::tortoise(),
        };
        Ok(ClvpFeatureExtractor {
            inner: Box::new(inner),
        })
    }

    /// `feature_extractor(raw_speech, sampling_rate=..., return_tensors="np")`: one clip (a 1-D array or an
    /// audio file's path), a batch `[B, n]`, or a list of clips → `{"input_features": float32 [B, 80, T],
    /// "attention_mask": int32 [B, max_length]}`. Files are decoded, downmixed and resampled to the
    /// extractor's rate as the `clvp` command loads voices (only their first `max_length` samples are
    /// decoded); contiguous float32 arrays are read in place.
    #[pyo3(signature = (raw_speech, sampling_rate = None, return_tensors = "np"))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        raw_speech: &Bound<'py, PyAny>,
        sampling_rate: Option<u32>,
        return_tensors: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        if return_tensors != "np" {
            return Err(value_err(format!(
                "return_tensors={return_tensors:?}: only \"np\" is supported"
            )));
        }
        let items: Vec<Bound<'py, PyAny>> = match raw_speech.cast::<PyList>() {
            Ok(list) => list.iter().collect(),
            Err(_) => vec![raw_speech.clone()],
        };
        // Arrays stay borrowed (read in place when contiguous); paths are loaded without the GIL.
        let mut arrays: Vec<PyArrayLikeDyn<'py, f32, AllowTypeChange>> = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        for item in &items {
            if !item.is_instance_of::<PyList>()
                && let Ok(path) = item.extract::<PathBuf>()
            {
                sources.push(Source::Path(path));
                continue;
            }
            let a: PyArrayLikeDyn<'py, f32, AllowTypeChange> = item.extract()?;
            match (a.ndim(), items.len()) {
                (1, _) => sources.push(Source::Rows(arrays.len(), 1, a.shape()[0])),
                (2, 1) => sources.push(Source::Rows(arrays.len(), a.shape()[0], a.shape()[1])),
                (d, _) => {
                    return Err(value_err(format!(
                        "a clip has {d} dimensions (shape {:?}); expected one clip [n] or a batch [B, n]",
                        a.shape()
                    )));
                }
            }
            arrays.push(a);
        }
        let copies: Vec<Option<Vec<f32>>> = arrays
            .iter()
            .map(|a| c_slice(a).is_none().then(|| values(a)))
            .collect();
        let flat: Vec<&[f32]> = arrays
            .iter()
            .zip(&copies)
            .map(|(a, c)| match c {
                Some(v) => v.as_slice(),
                None => c_slice(a).unwrap_or_default(),
            })
            .collect();
        let inner = &self.inner;
        let f = py
            .detach(move || -> Result<_, clvp::raw::audio::AudioError> {
                let mut loaded: Vec<Vec<f32>> = Vec::new();
                for s in &sources {
                    if let Source::Path(p) = s {
                        loaded.push(inner.load_clip(p)?);
                    }
                }
                let mut loaded = loaded.iter();
                let mut clips: Vec<&[f32]> = Vec::new();
                for s in &sources {
                    match s {
                        Source::Path(_) => clips.extend(loaded.next().map(Vec::as_slice)),
                        Source::Rows(i, rows, n) => {
                            clips.extend((0..*rows).map(|r| &flat[*i][r * n..(r + 1) * n]))
                        }
                    }
                }
                // A file is at the extractor's rate once loaded; arrays are at `sampling_rate`.
                let rate = if sources.iter().all(|s| matches!(s, Source::Path(_))) {
                    Some(inner.sampling_rate)
                } else {
                    sampling_rate
                };
                inner.extract(&clips, rate)
            })
            .map_err(|e| py_err(e.into()))?;
        let out = PyDict::new(py);
        out.set_item(
            "input_features",
            PyArray1::from_vec(py, f.input_features).reshape(f.shape)?,
        )?;
        out.set_item(
            "attention_mask",
            PyArray1::from_vec(py, f.attention_mask).reshape(f.mask_shape)?,
        )?;
        Ok(out)
    }
}

/// Where a clip of a `ClvpFeatureExtractor` call comes from.
enum Source {
    /// A file to load.
    Path(PathBuf),
    /// `rows` clips of `n` samples in borrowed array `index`.
    Rows(usize, usize, usize),
}
