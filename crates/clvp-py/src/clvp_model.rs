//! `ClvpModelForConditionalGeneration`: generation, scoring and the text / speech features of the facade's
//! [`clvp::Clvp`], with transformers' generation arguments.

use std::sync::Arc;

use clvp::{Clvp, GenerationConfig, PrefillPositions, Preset, WeightPrecision};
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::{py_err, value_err};

/// transformers' `ClvpModelForConditionalGeneration` on the workspace's implementation.
#[pyclass(module = "clvp", frozen)]
pub struct ClvpModelForConditionalGeneration {
    model: Arc<Clvp>,
}

/// Code or token rows from an int array `[N, n]` or a list of lists.
fn rows(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Vec<u32>>> {
    let to_u32 = |v: i64| {
        u32::try_from(v).map_err(|_| value_err(format!("{what} {v} is not in the vocabulary")))
    };
    if let Ok(list) = obj.extract::<Vec<Vec<i64>>>() {
        return list
            .into_iter()
            .map(|r| r.into_iter().map(to_u32).collect())
            .collect();
    }
    let a: PyArrayLikeDyn<'_, i64, AllowTypeChange> = obj.extract()?;
    let shape = a.shape().to_vec();
    let [n, w] = <[usize; 2]>::try_from(shape.as_slice()).map_err(|_| {
        value_err(format!(
            "{what}s of shape {shape:?}; expected [rows, length]"
        ))
    })?;
    let v: Vec<i64> = a.as_array().iter().copied().collect();
    (0..n)
        .map(|i| v[i * w..(i + 1) * w].iter().map(|&x| to_u32(x)).collect())
        .collect()
}

fn embeddings<'py>(py: Python<'py>, e: clvp::Embeddings) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, e.values)
        .reshape(e.shape)?
        .into_any())
}

#[pymethods]
impl ClvpModelForConditionalGeneration {
    /// A checkpoint directory or hub id (`susnato/clvp_dev`); `decoder_weights`: `"f32"` or `"bf16"` (the
    /// decoder's projections in bfloat16, about twice as fast on a CPU with AVX-512 BF16).
    #[staticmethod]
    #[pyo3(signature = (path, device = "cpu", decoder_weights = "f32"))]
    fn from_pretrained(
        py: Python<'_>,
        path: &str,
        device: &str,
        decoder_weights: &str,
    ) -> PyResult<Self> {
        let precision = match decoder_weights {
            "f32" => WeightPrecision::F32,
            "bf16" => WeightPrecision::Bf16,
            other => {
                return Err(value_err(format!(
                    "decoder_weights={other:?}: \"f32\" or \"bf16\""
                )));
            }
        };
        let (path, device) = (path.to_string(), device.to_string());
        let model = py
            .detach(|| -> Result<Clvp, clvp::Error> {
                let device = clvp::device::device(&device)?;
                let mut model = Clvp::from_pretrained(&path, &device)?;
                model.set_decoder_weights(precision)?;
                Ok(model)
            })
            .map_err(py_err)?;
        Ok(ClvpModelForConditionalGeneration {
            model: Arc::new(model),
        })
    }

    /// Generate speech-code candidates for `text` in the voice of `voices` (clips at 22 050 Hz as 1-D arrays, or
    /// audio file paths; several are averaged as Tortoise does), then score and rank them with CLVP.
    ///
    /// The generation arguments are transformers' (`do_sample`, `num_return_sequences`, `num_beams`,
    /// `temperature`, `top_p`, `top_k`, `repetition_penalty`, `length_penalty`, `max_new_tokens`,
    /// `pad_to_max_mel_tokens`), on top of a Tortoise `preset` (`ultra_fast`, `fast`, `standard`,
    /// `high_quality`; default: ultra_fast's sampling with 100 new tokens), with `seed` for sampling and
    /// `prefill_positions` (`"tortoise"`, default, or `"hf523"`). Returns a dict: `speech_ids` int64 `[N, n]`,
    /// `logits_per_text` float32 `[1, N]`, `text_embeds` `[1, P]`, `speech_embeds` `[N, P]`, `ranking` (candidate
    /// indices, best first) and `sequences_scores` (beam search) or `None`.
    #[pyo3(signature = (
        text, voices, *, preset = None, do_sample = None, num_return_sequences = None, num_beams = None,
        temperature = None, top_p = None, top_k = None, repetition_penalty = None, length_penalty = None,
        max_new_tokens = None, pad_to_max_mel_tokens = None, seed = None, prefill_positions = "tortoise"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        voices: &Bound<'py, PyAny>,
        preset: Option<&str>,
        do_sample: Option<bool>,
        num_return_sequences: Option<usize>,
        num_beams: Option<usize>,
        temperature: Option<f32>,
        top_p: Option<f32>,
        top_k: Option<usize>,
        repetition_penalty: Option<f32>,
        length_penalty: Option<f64>,
        max_new_tokens: Option<usize>,
        pad_to_max_mel_tokens: Option<usize>,
        seed: Option<u64>,
        prefill_positions: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut gc = match preset {
            Some(name) => name
                .parse::<Preset>()
                .map_err(|e| value_err(e.to_string()))?
                .config(),
            None => GenerationConfig {
                max_new_tokens: 100,
                ..Preset::UltraFast.config()
            },
        };
        if let Some(v) = do_sample {
            gc.do_sample = v;
        }
        if let Some(v) = num_beams {
            gc.num_beams = v;
            if v > 1 && do_sample.is_none() {
                gc.do_sample = false;
            }
        }
        if let Some(v) = num_return_sequences {
            gc.num_return_sequences = v;
        } else if !gc.do_sample {
            gc.num_return_sequences = gc.num_beams.max(1).min(gc.num_return_sequences);
        }
        if let Some(v) = temperature {
            gc.temperature = v;
        }
        if let Some(v) = top_p {
            gc.top_p = v;
        }
        if top_k.is_some() {
            gc.top_k = top_k;
        }
        if let Some(v) = repetition_penalty {
            gc.repetition_penalty = v;
        }
        if let Some(v) = length_penalty {
            gc.length_penalty = v;
        }
        if let Some(v) = max_new_tokens {
            gc.max_new_tokens = v;
        }
        gc.pad_to_max_mel_tokens = pad_to_max_mel_tokens;
        if let Some(s) = seed {
            gc.seed = s;
        }
        gc.prefill_positions = match prefill_positions {
            "tortoise" => PrefillPositions::Tortoise,
            "hf523" => PrefillPositions::Hf523,
            other => {
                return Err(value_err(format!(
                    "prefill_positions={other:?}: \"tortoise\" or \"hf523\""
                )));
            }
        };
        // Voices: arrays at the feature extractor's rate, or file paths loaded as the CLI loads them.
        let items: Vec<Bound<'py, PyAny>> = match voices.cast::<PyList>() {
            Ok(list) => list.iter().collect(),
            Err(_) => vec![voices.clone()],
        };
        let mut clips: Vec<Vec<f32>> = Vec::with_capacity(items.len());
        for item in items {
            if let Ok(path) = item.extract::<std::path::PathBuf>() {
                let clip = self.model.processor.load_voice(&path).map_err(py_err)?;
                clips.push(clip);
            } else {
                let a: PyArrayLikeDyn<'_, f32, AllowTypeChange> = item.extract()?;
                if a.ndim() != 1 {
                    return Err(value_err(format!(
                        "a voice clip has shape {:?}; expected [n] at 22050 Hz",
                        a.shape()
                    )));
                }
                clips.push(a.as_array().iter().copied().collect());
            }
        }
        let model = Arc::clone(&self.model);
        let text = text.to_string();
        let out = py
            .detach(move || {
                let mut gc = gc;
                model.fit_to_model(&mut gc);
                model.generate(&text, &clips, &gc)
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        let (n, w) = (
            out.speech_ids.len(),
            out.speech_ids.first().map_or(0, Vec::len),
        );
        let ids: Vec<i64> = out
            .speech_ids
            .iter()
            .flatten()
            .map(|&c| i64::from(c))
            .collect();
        d.set_item("speech_ids", PyArray1::from_vec(py, ids).reshape([n, w])?)?;
        d.set_item(
            "logits_per_text",
            PyArray1::from_vec(py, out.logits_per_text).reshape([1, n])?,
        )?;
        d.set_item("text_embeds", embeddings(py, out.text_embeds)?)?;
        d.set_item("speech_embeds", embeddings(py, out.speech_embeds)?)?;
        d.set_item(
            "ranking",
            out.ranking.iter().map(|r| r.0).collect::<Vec<usize>>(),
        )?;
        match out.sequences_scores {
            Some(s) => d.set_item("sequences_scores", PyArray1::from_vec(py, s))?,
            None => d.set_item("sequences_scores", py.None())?,
        }
        Ok(d)
    }

    /// `get_text_features(input_ids, attention_mask=None)`: the text encoder's projected embeddings, not
    /// normalised, float32 `[rows, projection_dim]`.
    #[pyo3(signature = (input_ids, attention_mask = None))]
    fn get_text_features<'py>(
        &self,
        py: Python<'py>,
        input_ids: &Bound<'py, PyAny>,
        attention_mask: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = rows(input_ids, "token id")?;
        let mask = attention_mask.map(|m| rows(m, "mask value")).transpose()?;
        let model = Arc::clone(&self.model);
        let e = py
            .detach(move || model.get_text_features(&ids, mask.as_deref()))
            .map_err(py_err)?;
        embeddings(py, e)
    }

    /// `get_speech_features(speech_ids=...)`: the speech encoder's projected embeddings of code rows, not
    /// normalised, float32 `[rows, projection_dim]`.
    fn get_speech_features<'py>(
        &self,
        py: Python<'py>,
        speech_ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let codes = rows(speech_ids, "speech code")?;
        let model = Arc::clone(&self.model);
        let e = py
            .detach(move || model.get_speech_features(&codes))
            .map_err(py_err)?;
        embeddings(py, e)
    }
}
