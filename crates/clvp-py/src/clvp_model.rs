//! `ClvpModelForConditionalGeneration`: generation, scoring and the text / speech features of the facade's
//! [`clvp::Clvp`], with transformers' generation arguments.

use std::sync::Arc;

use clvp::raw::audio::Features;
use clvp::{Clvp, EarlyStopping, GenerationConfig, PrefillPositions, Preset, WeightPrecision};
use numpy::{AllowTypeChange, PyArray1, PyArrayLikeDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::arrays::values;
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

impl ClvpModelForConditionalGeneration {
    /// Voice clips: 1-D arrays at the feature extractor's rate, or file paths loaded as the command loads them.
    fn clips(&self, voices: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<f32>>> {
        let items: Vec<Bound<'_, PyAny>> = match voices.cast::<PyList>() {
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
                clips.push(values(&a));
            }
        }
        Ok(clips)
    }
}

/// transformers' generation arguments (and Tortoise's presets) as a [`GenerationConfig`].
struct GenerationArgs<'a> {
    preset: Option<&'a str>,
    do_sample: Option<bool>,
    num_return_sequences: Option<usize>,
    num_beams: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    repetition_penalty: Option<f32>,
    length_penalty: Option<f64>,
    max_new_tokens: Option<usize>,
    min_new_tokens: Option<usize>,
    early_stopping: Option<EarlyStopping>,
    pad_to_max_mel_tokens: Option<usize>,
    seed: Option<u64>,
    prefill_positions: &'a str,
}

/// HF's `early_stopping`: `True`, `False` or `"never"`.
fn early_stopping(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<EarlyStopping>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(Some(if b {
            EarlyStopping::True
        } else {
            EarlyStopping::False
        }));
    }
    match obj.extract::<String>()?.as_str() {
        "never" => Ok(Some(EarlyStopping::Never)),
        other => Err(value_err(format!(
            "early_stopping={other:?}: True, False or \"never\""
        ))),
    }
}

impl GenerationArgs<'_> {
    /// The configuration on top of `preset`, else of `base`.
    fn config(&self, base: GenerationConfig) -> PyResult<GenerationConfig> {
        let mut gc = match self.preset {
            Some(name) => name
                .parse::<Preset>()
                .map_err(|e| value_err(e.to_string()))?
                .config(),
            None => base,
        };
        if let Some(v) = self.do_sample {
            gc.do_sample = v;
        }
        if let Some(v) = self.num_beams {
            gc.num_beams = v;
            if v > 1 && self.do_sample.is_none() {
                gc.do_sample = false;
            }
        }
        if let Some(v) = self.num_return_sequences {
            gc.num_return_sequences = v;
        } else if !gc.do_sample {
            gc.num_return_sequences = gc.num_beams.max(1).min(gc.num_return_sequences);
        }
        if let Some(v) = self.temperature {
            gc.temperature = v;
        }
        if let Some(v) = self.top_p {
            gc.top_p = v;
        }
        if self.top_k.is_some() {
            gc.top_k = self.top_k;
        }
        if let Some(v) = self.repetition_penalty {
            gc.repetition_penalty = v;
        }
        if let Some(v) = self.length_penalty {
            gc.length_penalty = v;
        }
        if let Some(v) = self.max_new_tokens {
            gc.max_new_tokens = v;
        }
        if let Some(v) = self.min_new_tokens {
            gc.min_new_tokens = v;
        }
        if let Some(v) = self.early_stopping {
            gc.early_stopping = v;
        }
        gc.pad_to_max_mel_tokens = self.pad_to_max_mel_tokens;
        if let Some(s) = self.seed {
            gc.seed = s;
        }
        gc.prefill_positions = match self.prefill_positions {
            "tortoise" => PrefillPositions::Tortoise,
            "hf523" => PrefillPositions::Hf523,
            "tortoise_no_cache" => PrefillPositions::TortoiseNoCache,
            other => {
                return Err(value_err(format!(
                    "prefill_positions={other:?}: \"tortoise\", \"tortoise_no_cache\" or \"hf523\""
                )));
            }
        };
        Ok(gc)
    }
}

/// One text's ids from `input_ids` `[1, n]` and its `attention_mask`: the ids under the mask's ones, which
/// must come first (right padding, as the tokenizer pads).
fn one_text(ids: &Bound<'_, PyAny>, mask: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u32>> {
    let mut ids = rows(ids, "token id")?;
    if ids.len() != 1 {
        return Err(value_err(format!(
            "input_ids has {} rows; generate takes one text per call (call it once per text)",
            ids.len()
        )));
    }
    let mut row = ids.remove(0);
    if let Some(m) = mask {
        let m = rows(m, "mask value")?;
        let Some(m) = m.first().filter(|r| m.len() == 1 && r.len() == row.len()) else {
            return Err(value_err(format!(
                "attention_mask does not have input_ids' shape [1, {}]",
                row.len()
            )));
        };
        let kept = m.iter().take_while(|&&v| v == 1).count();
        if m[kept..].iter().any(|&v| v != 0) || m.iter().any(|&v| v > 1) {
            return Err(value_err(
                "attention_mask must be ones then zeros (right padding, as the tokenizer pads)",
            ));
        }
        row.truncate(kept);
    }
    Ok(row)
}

/// `input_features` `[F, mels, frames]` float32.
fn log_mels(obj: &Bound<'_, PyAny>) -> PyResult<Features> {
    let a: PyArrayLikeDyn<'_, f32, AllowTypeChange> = obj.extract()?;
    let shape = a.shape().to_vec();
    let shape = <[usize; 3]>::try_from(shape.as_slice()).map_err(|_| {
        value_err(format!(
            "input_features has shape {shape:?}; expected [clips, mels, frames] (ClvpFeatureExtractor's)"
        ))
    })?;
    Ok(Features {
        input_features: values(&a),
        shape,
        attention_mask: Vec::new(),
        mask_shape: [shape[0], 0],
    })
}

/// transformers' `ClvpOutput` of `generate`: attributes, or keys as a dict (`out["speech_ids"]`).
#[pyclass(module = "clvp", frozen, get_all)]
pub struct ClvpOutput {
    /// Fixed speech codes int64 `[N, n]`.
    speech_ids: Py<PyAny>,
    /// float32 `[1, N]`.
    logits_per_text: Py<PyAny>,
    /// float32 `[N, 1]`.
    logits_per_speech: Py<PyAny>,
    /// L2-normalised, float32 `[1, P]`.
    text_embeds: Py<PyAny>,
    /// L2-normalised, float32 `[N, P]`.
    speech_embeds: Py<PyAny>,
    /// Candidate indices, best first.
    ranking: Vec<usize>,
    /// Beam search: the beams' length-normalised scores float32 `[N]`; else `None`.
    sequences_scores: Py<PyAny>,
}

const OUTPUT_KEYS: [&str; 7] = [
    "speech_ids",
    "logits_per_text",
    "logits_per_speech",
    "text_embeds",
    "speech_embeds",
    "ranking",
    "sequences_scores",
];

impl ClvpOutput {
    fn new(py: Python<'_>, out: clvp::Candidates) -> PyResult<Self> {
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
        let per_text = out.logits_per_text;
        Ok(ClvpOutput {
            speech_ids: PyArray1::from_vec(py, ids)
                .reshape([n, w])?
                .into_any()
                .unbind(),
            logits_per_speech: PyArray1::from_vec(py, per_text.clone())
                .reshape([n, 1])?
                .into_any()
                .unbind(),
            logits_per_text: PyArray1::from_vec(py, per_text)
                .reshape([1, n])?
                .into_any()
                .unbind(),
            text_embeds: embeddings(py, out.text_embeds)?.unbind(),
            speech_embeds: embeddings(py, out.speech_embeds)?.unbind(),
            ranking: out.ranking.iter().map(|r| r.0).collect(),
            sequences_scores: match out.sequences_scores {
                Some(s) => PyArray1::from_vec(py, s).into_any().unbind(),
                None => py.None(),
            },
        })
    }
}

#[pymethods]
impl ClvpOutput {
    /// `out["speech_ids"]`, as transformers' `ModelOutput`.
    fn __getitem__(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        Ok(match key {
            "speech_ids" => self.speech_ids.clone_ref(py),
            "logits_per_text" => self.logits_per_text.clone_ref(py),
            "logits_per_speech" => self.logits_per_speech.clone_ref(py),
            "text_embeds" => self.text_embeds.clone_ref(py),
            "speech_embeds" => self.speech_embeds.clone_ref(py),
            "ranking" => self.ranking.clone().into_pyobject(py)?.into_any().unbind(),
            "sequences_scores" => self.sequences_scores.clone_ref(py),
            other => {
                return Err(pyo3::exceptions::PyKeyError::new_err(other.to_string()));
            }
        })
    }

    fn __contains__(&self, key: &str) -> bool {
        OUTPUT_KEYS.contains(&key)
    }

    /// The field names.
    fn keys(&self) -> Vec<&'static str> {
        OUTPUT_KEYS.to_vec()
    }
}

#[pymethods]
impl ClvpModelForConditionalGeneration {
    /// A checkpoint directory or hub id (`susnato/clvp_dev`), or Tortoise's own files (a folder with
    /// `autoregressive.pth` and `clvp2.pth`, or the path of either); `decoder_weights`: `"f32"`, `"bf16"` (the
    /// decoder's projections in bfloat16, about twice as fast on a CPU with AVX-512 BF16) or `"int8"`
    /// (int8 with a scale per output channel: a quarter of the bytes, the largest error).
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
            "int8" => WeightPrecision::Int8,
            other => {
                return Err(value_err(format!(
                    "decoder_weights={other:?}: \"f32\", \"bf16\" or \"int8\""
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

    /// `generate(input_ids, input_features, attention_mask=None, **generation arguments)`, as transformers:
    /// `input_ids` `[1, n]` one text's token ids and `input_features` `[F, 80, frames]` log-mels, as
    /// `ClvpProcessor` gives them; each feature row conditions its own `num_return_sequences` candidates
    /// (transformers broadcasts one text over the clips). Or, as the `clvp` command takes them,
    /// `generate(text, voices)`: the text as a `str` and the voice clips (1-D arrays at 22 050 Hz or file paths),
    /// whose conditionings are averaged as Tortoise does.
    ///
    /// The generation arguments are transformers' (`do_sample`, `num_return_sequences`, `num_beams`,
    /// `temperature`, `top_p`, `top_k`, `repetition_penalty`, `length_penalty`, `max_new_tokens`,
    /// `pad_to_max_mel_tokens`), on top of a Tortoise `preset` (`ultra_fast`, `fast`, `standard`,
    /// `high_quality`), `min_new_tokens`, `early_stopping`, with `seed` for sampling and `prefill_positions`
    /// (`"tortoise"`, default, or `"hf523"`, transformers 5.23's). Without a preset, the transformers form has
    /// transformers' defaults (greedy, 20 new tokens), the text form the command's (ultra_fast's sampling, 100
    /// new tokens). Returns a `ClvpOutput`.
    #[pyo3(signature = (
        input_ids = None, input_features = None, attention_mask = None, *, text = None, voices = None,
        preset = None, do_sample = None, num_return_sequences = None, num_beams = None, temperature = None,
        top_p = None, top_k = None, repetition_penalty = None, length_penalty = None, max_new_tokens = None,
        min_new_tokens = None, early_stopping = None, pad_to_max_mel_tokens = None, seed = None,
        prefill_positions = "tortoise"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        input_ids: Option<&Bound<'py, PyAny>>,
        input_features: Option<&Bound<'py, PyAny>>,
        attention_mask: Option<&Bound<'py, PyAny>>,
        text: Option<String>,
        voices: Option<&Bound<'py, PyAny>>,
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
        min_new_tokens: Option<usize>,
        early_stopping: Option<&Bound<'py, PyAny>>,
        pad_to_max_mel_tokens: Option<usize>,
        seed: Option<u64>,
        prefill_positions: &str,
    ) -> PyResult<ClvpOutput> {
        let args = GenerationArgs {
            preset,
            do_sample,
            num_return_sequences,
            num_beams,
            temperature,
            top_p,
            top_k,
            repetition_penalty,
            length_penalty,
            max_new_tokens,
            min_new_tokens,
            early_stopping: self::early_stopping(early_stopping)?,
            pad_to_max_mel_tokens,
            seed,
            prefill_positions,
        };
        // `generate("text", voices)`: the command's form, with its defaults (ultra_fast's sampling, 100 new
        // tokens); the processor's tensors get transformers' (greedy, 20 new tokens).
        let text = match (text, input_ids) {
            (Some(t), _) => Some((t, voices.or(input_features))),
            (None, Some(i)) if i.is_instance_of::<PyString>() => {
                Some((i.extract::<String>()?, voices.or(input_features)))
            }
            _ => None,
        };
        let mut gc = args.config(if text.is_some() {
            GenerationConfig {
                max_new_tokens: 100,
                ..Preset::UltraFast.config()
            }
        } else {
            GenerationConfig::default()
        })?;
        self.model.fit_to_model(&mut gc);
        let model = Arc::clone(&self.model);
        let out = if let Some((text, voices)) = text {
            let voices = voices.ok_or_else(|| value_err("generate(text, voices): no voice clips given"))?;
            let clips = self.clips(voices)?;
            py.detach(move || model.generate(&text, &clips, &gc))
        } else {
            let (Some(ids), Some(features)) = (input_ids, input_features) else {
                return Err(value_err(
                    "generate needs input_ids and input_features (ClvpProcessor's output), or a text and voices",
                ));
            };
            let ids = one_text(ids, attention_mask)?;
            let features = log_mels(features)?;
            py.detach(move || model.generate_from_inputs(&ids, &features, &gc, &mut |_, _| {}))
        }
        .map_err(py_err)?;
        ClvpOutput::new(py, out)
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
