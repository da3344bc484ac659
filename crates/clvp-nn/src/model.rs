//! `ClvpModelForConditionalGeneration` (transformers 5.23): the conditioning encoder, the speech decoder, the
//! text and speech encoders and `logit_scale`, loaded from a checkpoint through one name table.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::{Checkpoint, HubError, ModelKind, Weights, load_module};
use clvp_hub::{Layout, NameMap};

use crate::conditioning::ClvpConditioningEncoder;
use crate::config::{ClvpConfig, ConfigError};
use crate::decoder::ClvpForCausalLM;
use crate::encoder::ClvpEncoder;
use crate::error::NnError;

mod forward;
pub mod tortoise;

pub use forward::{ClvpOutput, Embeddings};

/// Loading a model failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadModelError {
    /// The checkpoint's files could not be found, read or mapped.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// `config.json` is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration cannot build the modules.
    #[error(transparent)]
    Nn(#[from] NnError),
}

/// `ClvpModelForConditionalGeneration`.
#[derive(Module, Debug)]
pub struct ClvpModelForConditionalGeneration {
    /// Voice clip + text → conditioning embeddings.
    pub conditioning_encoder: ClvpConditioningEncoder,
    /// The GPT-2 speech decoder.
    pub speech_decoder_model: ClvpForCausalLM,
    /// The text encoder.
    pub text_encoder_model: ClvpEncoder,
    /// The speech encoder.
    pub speech_encoder_model: ClvpEncoder,
}

/// The HF → burn name table of a full CLVP checkpoint (1003 tensors for `susnato/clvp_dev`).
///
/// | HF key | burn path | layout |
/// |---|---|---|
/// | `*.{q,k,v,out}_proj.weight`, `*.fc1.proj.weight`, `*.fc2.weight`, `*.projection.weight`, `*.lm_head.weight` | same | `nn.Linear` `[out, in]`: as is (burn `Linear` with `LinearLayout::Col` keeps PyTorch's layout and reads it through a transposed view, so the weight is used straight from the mapped file) |
/// | `*.mlp.c_fc.*`, `*.mlp.c_proj.*` | same | GPT-2 `Conv1D` `[in, out]`: as is |
/// | `*{layernorm,layer_norm,final_norm,group_norms.N}.weight` / `.bias` | `….gamma` / `….beta` | as is |
/// | `logit_scale` | (read separately: a scalar) | — |
/// | everything else (embeddings, biases, RMSNorm weights, `mel_conv`, `rotary_pos_emb.inv_freq`) | same | as is |
pub fn clvp_name_map() -> NameMap {
    NameMap::new("clvp")
        .rule(
            r"(.*\.mlp\.(?:c_fc|c_proj)\.(?:weight|bias))",
            "$1",
            Layout::AsIs,
        )
        .rule(
            r"(.*(?:layernorm|layer_norm|final_norm|group_norms\.\d+))\.weight",
            "$1.gamma",
            Layout::AsIs,
        )
        .rule(
            r"(.*(?:layernorm|layer_norm|final_norm|group_norms\.\d+))\.bias",
            "$1.beta",
            Layout::AsIs,
        )
        .ignore(r"logit_scale")
        .rule(r"(.*)", "$1", Layout::AsIs)
}

impl ClvpModelForConditionalGeneration {
    /// The one switch between the host kernels of `clvp-kernels` and burn's ops for the whole model: the
    /// encoders' attention and gated units, the conditioning encoder's attention and the decoder's projections.
    /// Each network starts on the host kernels exactly when it was built on a CPU backend
    /// ([`crate::host::host_kernels_for`]); `false` runs everything through burn (as on a GPU), `true` on another
    /// device is [`NnError::Config`]. The decoder keeps bf16 or int8 weights if they were chosen.
    pub fn set_host_kernels(&mut self, on: bool) -> Result<(), NnError> {
        self.conditioning_encoder.set_host_kernels(on)?;
        self.speech_decoder_model.set_host_kernels(on)?;
        self.text_encoder_model.set_host_kernels(on)?;
        self.speech_encoder_model.set_host_kernels(on)
    }

    /// Whether the model runs on the host kernels ([`Self::set_host_kernels`]).
    pub fn host_kernels(&self) -> bool {
        self.text_encoder_model.host_kernels()
    }

    /// A randomly initialised model of `config`'s shape.
    pub fn new(config: &ClvpConfig, device: &Device) -> Result<Self, NnError> {
        Ok(ClvpModelForConditionalGeneration {
            conditioning_encoder: ClvpConditioningEncoder::new(config, device)?,
            speech_decoder_model: ClvpForCausalLM::new(&config.decoder_config, device),
            text_encoder_model: ClvpEncoder::new(&config.text_config, device),
            speech_encoder_model: ClvpEncoder::new(&config.speech_config, device),
        })
    }
}

/// A loaded CLVP model: the modules, `logit_scale`, and the configuration.
#[derive(Debug)]
pub struct LoadedClvp {
    /// The networks.
    pub model: ClvpModelForConditionalGeneration,
    /// `logit_scale` (the similarity is scaled by its exponential).
    pub logit_scale: f32,
    /// The checkpoint's configuration.
    pub config: ClvpConfig,
}

impl LoadedClvp {
    /// Read `config.json` and the weights of `checkpoint` onto `device`, strictly (every key used, every
    /// parameter filled, shapes checked). A local directory with Tortoise's own `autoregressive.pth` and
    /// `clvp2.pth` (and no converted weights) is read through [`crate::tortoise`].
    pub fn from_checkpoint(
        checkpoint: &Checkpoint,
        device: &Device,
    ) -> Result<Self, LoadModelError> {
        checkpoint.expect_model(ModelKind::Clvp)?;
        if let Some(loaded) = Self::from_tortoise_checkpoint(checkpoint, device)? {
            return Ok(loaded);
        }
        let config_path = checkpoint.require("config.json")?;
        let config = ClvpConfig::from_file(&config_path)?;
        let weights = checkpoint.weights()?;
        Self::from_weights(config, &weights, device)
    }

    /// Build from a configuration and opened weights.
    pub fn from_weights(
        config: ClvpConfig,
        weights: &Weights,
        device: &Device,
    ) -> Result<Self, LoadModelError> {
        weights.expect_model(ModelKind::Clvp)?;
        let model = ClvpModelForConditionalGeneration::new(&config, device)?;
        let mut model = load_module(model, weights, &clvp_name_map()).map_err(HubError::from)?;
        let mapped = |key: String| weights.get(&key).and_then(|e| e.mapped_pages());
        let lm = &mut model.speech_decoder_model;
        for (i, layer) in lm.model.decoder.layers.iter_mut().enumerate() {
            let prefix = format!("speech_decoder_model.model.decoder.layers.{i}");
            layer.mlp.mapped = ["c_fc", "c_proj"]
                .iter()
                .filter_map(|name| mapped(format!("{prefix}.mlp.{name}.weight")))
                .collect();
            layer.mapped = ["q_proj", "k_proj", "v_proj", "out_proj"]
                .iter()
                .filter_map(|name| mapped(format!("{prefix}.attn.{name}.weight")))
                .collect();
        }
        lm.mapped = mapped("speech_decoder_model.lm_head.weight".to_owned())
            .into_iter()
            .collect();
        let logit_scale = match weights.get("logit_scale") {
            Some(entry) => match entry.to_f32().map_err(HubError::from)?.as_slice() {
                [v] => *v,
                other => {
                    return Err(NnError::Shape(format!(
                        "{}: logit_scale has {} values, expected a scalar",
                        weights.origin().display(),
                        other.len()
                    ))
                    .into());
                }
            },
            None => {
                return Err(HubError::from(clvp_hub::LoadError::MissingKey {
                    file: weights.origin().to_path_buf(),
                    target: "logit_scale".into(),
                    expected: vec![],
                })
                .into());
            }
        };
        Ok(LoadedClvp {
            model,
            logit_scale,
            config,
        })
    }
}

/// A float tensor from row-major values.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
