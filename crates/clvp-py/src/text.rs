//! transformers' `ClvpTokenizer` and `ClvpFeatureExtractor` on the workspace's implementations (clvp-text's
//! HF-exact normaliser and BPE, clvp-audio's log-mel).

use std::path::Path;

use clvp::raw::audio::ClvpFeatureExtractor as Extractor;
use clvp::raw::text::ClvpTokenizer as Tokenizer;
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

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

    /// `feature_extractor(raw_speech, sampling_rate=..., return_tensors="np")`: one clip (a 1-D array) or a
    /// list of clips → `{"input_features": float32 [B, 80, T], "attention_mask": int64 [B, max_length]}`.
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
        let clips: Vec<Vec<f32>> = if let Ok(list) = raw_speech.cast::<PyList>() {
            list.iter()
                .map(|c| {
                    let a: PyArrayLikeDyn<'_, f32, AllowTypeChange> = c.extract()?;
                    one_clip(&a)
                })
                .collect::<PyResult<_>>()?
        } else {
            let a: PyArrayLikeDyn<'_, f32, AllowTypeChange> = raw_speech.extract()?;
            match a.ndim() {
                1 => vec![one_clip(&a)?],
                2 => {
                    let rows = a.shape()[0];
                    let n = a.shape()[1];
                    let v: Vec<f32> = a.as_array().iter().copied().collect();
                    (0..rows).map(|r| v[r * n..(r + 1) * n].to_vec()).collect()
                }
                d => {
                    return Err(value_err(format!(
                        "raw_speech has {d} dimensions; expected one clip [n] or a batch [B, n]"
                    )));
                }
            }
        };
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        let f = py
            .detach(|| self.inner.extract(&refs, sampling_rate))
            .map_err(|e| py_err(e.into()))?;
        let out = PyDict::new(py);
        out.set_item(
            "input_features",
            PyArray1::from_vec(py, f.input_features).reshape(f.shape)?,
        )?;
        let mask: Vec<i64> = f.attention_mask.iter().map(|&m| i64::from(m)).collect();
        out.set_item(
            "attention_mask",
            PyArray1::from_vec(py, mask).reshape(f.mask_shape)?,
        )?;
        Ok(out)
    }
}

fn one_clip(a: &PyArrayLikeDyn<'_, f32, AllowTypeChange>) -> PyResult<Vec<f32>> {
    if a.ndim() != 1 {
        return Err(value_err(format!(
            "a clip has shape {:?}; expected [n]",
            a.shape()
        )));
    }
    Ok(a.as_array().iter().copied().collect())
}
