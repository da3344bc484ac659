//! [`Clvp`]: a CLVP checkpoint (processor + networks) on a chosen device, with HF's entry points
//! `from_pretrained`, `get_text_features` and `get_speech_features` (`ClvpModelForConditionalGeneration`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_nn::host::{Precision as WeightPrecision, host_kernels_for};
use clvp_nn::{LoadModelError, LoadedClvp, NnError};
use std::path::{Path, PathBuf};

use crate::processor::{ClvpProcessor, ProcessorError};

/// The default checkpoint (`susnato/clvp_dev`, the HF port of Tortoise's CLVP).
pub const DEFAULT_MODEL: &str = "susnato/clvp_dev";

/// The most bytes the attention scores of one sequence may take in an encoder (`heads × T² × 4`, f32). The
/// encoders materialise the whole `[T, T]` score matrix per head; without this bound a 100 000-character text
/// asked the allocator for 80 GB and aborted the process instead of returning an error.
pub const MAX_ATTENTION_BYTES_PER_SEQUENCE: u64 = 2 << 30;

/// The longest sequence (tokens or codes) an encoder with `heads` attention heads accepts:
/// the largest `T` with `heads × T² × 4 ≤` [`MAX_ATTENTION_BYTES_PER_SEQUENCE`] (16 384 for 2 heads, 6 688 for 12).
pub fn max_encoder_tokens(heads: usize) -> usize {
    let per_head = MAX_ATTENTION_BYTES_PER_SEQUENCE / (4 * heads.max(1) as u64);
    usize::try_from(per_head.isqrt()).unwrap_or(usize::MAX)
}

/// `Err` when a sequence of `len` items (`what`: `text token`, `speech code`) is too long for an encoder with
/// `heads` attention heads (see [`max_encoder_tokens`]); `hint` tells the user what to change.
pub(crate) fn check_encoder_length(
    len: usize,
    heads: usize,
    what: &'static str,
    encoder: &'static str,
    hint: &'static str,
) -> Result<(), ClvpError> {
    let max = max_encoder_tokens(heads);
    if len <= max {
        return Ok(());
    }
    let gib = heads.max(1) as f64 * (len as f64).powi(2) * 4.0 / f64::from(1u32 << 30);
    Err(ClvpError::SequenceTooLong {
        what,
        len,
        max,
        encoder,
        heads,
        gib,
        hint,
    })
}

/// The facade's error ([`crate::Error`]), under its older name.
pub type ClvpError = crate::Error;

pub use clvp_nn::Embeddings;

/// A CLVP checkpoint loaded on a device.
#[derive(Debug)]
pub struct Clvp {
    /// Tokenizer and feature extractor of the checkpoint.
    pub processor: ClvpProcessor,
    /// The networks, `logit_scale` and configuration ([`Clvp::raw`]).
    pub(crate) model: LoadedClvp,
    device: Device,
}

impl Clvp {
    /// The networks, `logit_scale` and configuration as clvp-nn holds them: for those who pick and mix the
    /// inner crates ([`crate::raw`]), outside the facade's semver promise.
    pub fn raw(&self) -> &LoadedClvp {
        &self.model
    }
}

impl Clvp {
    /// Load `source` (a local directory, or a hub id `owner/name[@revision]` resolved through the HF cache
    /// and downloaded when needed) onto `device`.
    ///
    /// A directory holding Tortoise's own `autoregressive.pth` and `clvp2.pth` loads too (with its `config.json`
    /// if it has one, else the released hyper-parameters), as does the path of either file with the other beside
    /// it under its released name, or the two files apart as a path list (`autoregressive.pth:clvp2.pth` on Unix,
    /// `;` on Windows, either order); see [`Clvp::from_tortoise`].
    pub fn from_pretrained(source: &str, device: &Device) -> Result<Self, ClvpError> {
        let path = Path::new(source);
        if path.is_file() && path.extension().is_some_and(|e| e == "pth") {
            let dir = path.parent().unwrap_or(Path::new("."));
            let named = path.file_name().and_then(|n| n.to_str());
            let (ar, clvp) = if named == Some(clvp_nn::CLVP_FILE) {
                (dir.join(clvp_nn::AUTOREGRESSIVE_FILE), path.to_path_buf())
            } else {
                (path.to_path_buf(), dir.join(clvp_nn::CLVP_FILE))
            };
            return Self::from_tortoise(&ar, &clvp, device);
        }
        // Tortoise's two files apart, as a path list (`ar.pth:clvp.pth` on Unix), in either order.
        let parts: Vec<PathBuf> = std::env::split_paths(source).collect();
        if !path.exists() && parts.len() == 2 && parts.iter().all(|p| p.is_file()) {
            let first_is_decoder = clvp_hub::Weights::from_pytorch(&parts[0])
                .map(|w| w.keys().any(|k| k.starts_with("gpt.")))
                .unwrap_or(true);
            let (ar, clvp) = if first_is_decoder { (0, 1) } else { (1, 0) };
            return Self::from_tortoise(&parts[ar], &parts[clvp], device);
        }
        let checkpoint = Checkpoint::from_pretrained(source, None)?;
        Self::from_checkpoint(&checkpoint, device)
    }

    /// Load Tortoise's own files: `autoregressive` (`UnifiedVoice`, Tortoise's `autoregressive.pth`) and `clvp`
    /// (`CLVP`, `clvp2.pth`), PyTorch checkpoints read without running pickle code, mapped onto transformers'
    /// modules by the table of [`clvp_nn::tortoise`] as strictly as a converted checkpoint. Their shape is the
    /// `config.json` beside `autoregressive` (transformers' `ClvpConfig`), else the released model's. The processor
    /// is Tortoise's (the vocabulary and `mel_norms` its files ship, built in).
    pub fn from_tortoise(
        autoregressive: &Path,
        clvp: &Path,
        device: &Device,
    ) -> Result<Self, ClvpError> {
        for file in [autoregressive, clvp] {
            if !file.is_file() {
                return Err(LoadModelError::from(clvp_hub::HubError::from(
                    clvp_hub::SourceError::MissingFile {
                        file: file.display().to_string(),
                        location: "Tortoise's model files (autoregressive.pth and clvp2.pth)"
                            .into(),
                    },
                ))
                .into());
            }
        }
        let model = LoadedClvp::from_tortoise_files(autoregressive, clvp, device)?;
        Ok(Clvp {
            processor: ClvpProcessor::tortoise()?,
            model,
            device: device.clone(),
        })
    }

    /// Load an opened checkpoint onto `device`.
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, ClvpError> {
        // The networks before the processor: a checkpoint of another model is named as such (from its config,
        // else its weights' keys), with no word on its tokenizer files.
        let model = LoadedClvp::from_checkpoint(checkpoint, device)?;
        let processor = ClvpProcessor::from_checkpoint(checkpoint)?;
        Ok(Clvp {
            processor,
            model,
            device: device.clone(),
        })
    }

    /// Hold the speech decoder's projection weights in `precision`. The CPU backends run the decoder's
    /// projections on host kernels with f32 weights from the start; [`WeightPrecision::Bf16`] packs them
    /// as bfloat16 on first use instead: half their memory and bytes streamed per step, so batch-1
    /// decoding runs about 1.35× faster (`docs/performance.md`). Each weight is rounded to 8 significant
    /// bits, so logits move by under 1 % of their largest magnitude (`docs/parity.md`) and sampled or
    /// greedy tokens can differ from f32 decoding where two logits are that close.
    /// [`WeightPrecision::Int8`] packs them as int8 with one f32 scale per output channel (weight-only:
    /// the activations stay f32): a quarter of f32's bytes per step, at a larger error than bf16's
    /// (`docs/parity.md` measures both against f32). The encoders, and so the ranking of given codes, are
    /// unchanged. bf16 and int8 need a CPU backend; on another device they are an error, and f32 keeps
    /// burn's own matmul there.
    pub fn set_decoder_weights(&mut self, precision: WeightPrecision) -> Result<(), ClvpError> {
        let lm = &mut self.model.model.speech_decoder_model;
        let host = match precision {
            WeightPrecision::F32 if !host_kernels_for(&self.device) => None,
            p => Some(p),
        };
        lm.set_host_projections(host)?;
        Ok(())
    }

    /// The precision of the speech decoder's projection weights.
    pub fn decoder_weights(&self) -> WeightPrecision {
        self.model
            .model
            .speech_decoder_model
            .host_projections()
            .unwrap_or(WeightPrecision::F32)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn ids_tensor(
        &self,
        rows: &[Vec<u32>],
        vocab: usize,
        heads: usize,
        what: &'static str,
    ) -> Result<Tensor<2, Int>, ClvpError> {
        let Some(first) = rows.first() else {
            return Err(ClvpError::Input(format!("no {what}s given")));
        };
        let t = first.len();
        if t == 0 {
            return Err(ClvpError::Input(format!("an empty sequence of {what}s")));
        }
        let (encoder, hint) = if what == "text token" {
            ("text encoder", "split the text")
        } else {
            ("speech encoder", "give fewer codes per sequence")
        };
        check_encoder_length(t, heads, what, encoder, hint)?;
        let mut flat = Vec::with_capacity(rows.len() * t);
        for row in rows {
            if row.len() != t {
                return Err(ClvpError::Input(format!(
                    "{what} rows of different lengths ({} vs {t})",
                    row.len()
                )));
            }
            for &id in row {
                if id as usize >= vocab {
                    return Err(NnError::TokenOutOfRange {
                        id: id as i64,
                        vocab,
                        what,
                    }
                    .into());
                }
                flat.push(id as i64);
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [rows.len(), t]),
            &self.device,
        ))
    }

    /// `get_text_features(input_ids, attention_mask)`: the text encoder's projected embeddings, **not**
    /// normalised, `[rows, projection_dim]`.
    pub fn get_text_features(
        &self,
        ids: &[Vec<u32>],
        mask: Option<&[Vec<u32>]>,
    ) -> Result<Embeddings, ClvpError> {
        let c = &self.model.config.text_config;
        let ids = self.ids_tensor(ids, c.vocab_size, c.num_attention_heads, "text token")?;
        Ok(Embeddings::from_tensor(
            self.model
                .model
                .text_encoder_model
                .forward(ids, mask)
                .embeds,
        )?)
    }

    /// Tokenize `text` and return its `get_text_features` row `[1, projection_dim]`, of the tokens alone.
    ///
    /// `generate` embeds the text with one EOS appended (HF's `_pad_extra_bos_eos_tokens`), which gives another
    /// vector: to score or re-rank candidates as `generate` does, use [`Clvp::score`] (or
    /// [`Clvp::text_ids_for_scoring`] with [`Clvp::get_text_features`]).
    pub fn embed_text(&self, text: &str) -> Result<Embeddings, ClvpError> {
        let ids = self
            .processor
            .tokenizer
            .encode(text)
            .map_err(ProcessorError::from)?;
        if ids.is_empty() {
            return Err(ClvpError::EmptyText);
        }
        self.get_text_features(&[ids], None)
    }

    /// `get_speech_features(speech_ids=codes)`: the speech encoder's projected embeddings of code rows (no
    /// mask), **not** normalised, `[rows, projection_dim]`. Codes outside the speech vocabulary are an error.
    pub fn get_speech_features(&self, codes: &[Vec<u32>]) -> Result<Embeddings, ClvpError> {
        let c = &self.model.config.speech_config;
        let ids = self.ids_tensor(codes, c.vocab_size, c.num_attention_heads, "speech code")?;
        Ok(Embeddings::from_tensor(
            self.model
                .model
                .speech_encoder_model
                .forward(ids, None)
                .embeds,
        )?)
    }
}
