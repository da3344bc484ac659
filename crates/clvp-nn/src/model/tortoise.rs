//! Tortoise's own checkpoints — `autoregressive.pth` (`UnifiedVoice`: the conditioning encoder and the GPT-2
//! speech decoder) and `clvp2.pth` (`CLVP`: the text and speech encoders) — read as what transformers'
//! `convert_clvp_to_hf.py` makes of them, then loaded by [`clvp_name_map`](crate::clvp_name_map) as strictly
//! as a converted checkpoint.
//!
//! The conversion is one [`Conversion`] table ([`tortoise_conversion`]), generated from the configuration (the
//! encoders' layer count, the heads of the fused attention): no code per key.
//!
//! | Tortoise key | HF key | re-layout |
//! |---|---|---|
//! | `conditioning_encoder.init.*` | `conditioning_encoder.mel_conv.*` | as stored |
//! | `conditioning_encoder.attn.{i}.norm.*` | `conditioning_encoder.group_norms.{i}.*` | as stored |
//! | `conditioning_encoder.attn.{i}.qkv.{weight,bias}` | `….mel_attn_blocks.{i}.{q,k,v}_proj.*` | per head `[q; k; v]` rows (`QKVAttentionLegacy`), kernel axis dropped |
//! | `conditioning_encoder.attn.{i}.proj_out.{weight,bias}` | `….mel_attn_blocks.{i}.out_proj.*` | kernel axis dropped |
//! | `text_embedding.weight`, `text_pos_embedding.emb.weight` | `conditioning_encoder.text_{token,position}_embedding.weight` | as stored |
//! | `mel_embedding.weight`, `mel_pos_embedding.emb.weight` | `speech_decoder_model.model.decoder.{input,position}_embeds_layer.weight` | as stored |
//! | `gpt.h.{i}.ln_{1,2}.*` | `….decoder.layers.{i}.{input,post_attention}_layernorm.*` | as stored |
//! | `gpt.h.{i}.attn.c_attn.weight` (`Conv1D` `[in, 3·out]`) | `….layers.{i}.attn.{q,k,v}_proj.weight` (`[out, in]`) | column thirds, transposed |
//! | `gpt.h.{i}.attn.c_attn.bias` | `….layers.{i}.attn.{q,k,v}_proj.bias` | thirds |
//! | `gpt.h.{i}.attn.c_proj.weight` | `….layers.{i}.attn.out_proj.weight` | transposed |
//! | `gpt.h.{i}.mlp.{c_fc,c_proj}.*`, `gpt.ln_f.*` | `….layers.{i}.mlp.*`, `….decoder.layer_norm.*` | as stored |
//! | `final_norm.*`, `mel_head.*` | `speech_decoder_model.{final_norm,lm_head}.*` | as stored |
//! | `gpt.h.{i}.attn.{bias,masked_bias}`, `text_head.*` | — | not used (GPT-2's mask buffers; the text head trains only) |
//! | `{text,speech}_emb.weight` | `{text,speech}_encoder_model.token_embedding.weight` | as stored |
//! | `{t}_transformer.transformer.attn_layers.layers.{2i}.0.0.g` | `{t}_encoder_model.layers.{i}.input_rmsnorm.weight` | as stored |
//! | `….layers.{2i}.1.wrap.to_{q,k,v,out}.*` | `….layers.{i}.self_attn.{q,k,v,out}_proj.*` | as stored |
//! | `….layers.{2i+1}.0.0.g` | `….layers.{i}.post_attention_rmsnorm.weight` | as stored |
//! | `….layers.{2i+1}.1.wrap.net.0.proj.*`, `….net.3.*` | `….layers.{i}.mlp.fc1.proj.*`, `….mlp.fc2.*` | as stored |
//! | `{t}_transformer.transformer.attn_layers.rotary_pos_emb.inv_freq` | `{t}_encoder_model.rotary_pos_emb.inv_freq` | as stored |
//! | `{t}_transformer.transformer.norm.*` | `{t}_encoder_model.final_layer_norm.*` | as stored |
//! | `to_{text,speech}_latent.weight` | `{text,speech}_encoder_model.projection.weight` | as stored |
//! | `temperature` | `logit_scale` | as stored |
//!
//! Tortoise's files carry no configuration. Without a `config.json` beside them, the released hyper-parameters
//! ([`ClvpConfig::clvp_dev`], those of Tortoise's `api.py`) are used, and a file of another shape fails on its
//! first tensor that does not fit, with a hint to add one.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clvp_hub::{Checkpoint, Conversion, HubError, LoadError, Relayout, Weights};

use crate::config::ClvpConfig;
use crate::error::NnError;
use crate::model::{LoadModelError, LoadedClvp};

/// Tortoise's autoregressive model file (`UnifiedVoice`).
pub const AUTOREGRESSIVE_FILE: &str = "autoregressive.pth";
/// Tortoise's CLVP file (`CLVP`).
pub const CLVP_FILE: &str = "clvp2.pth";

const DECODER: &str = "speech_decoder_model.model.decoder";
const QKV: [&str; 3] = ["q", "k", "v"];

/// The Tortoise → HF table for `config`'s shape (see the module docs).
pub fn tortoise_conversion(config: &ClvpConfig) -> Conversion {
    let heads = config.decoder_config.num_attention_heads;
    let mut table = Conversion::new("tortoise")
        .rename(
            r"conditioning_encoder\.init\.(weight|bias)",
            "conditioning_encoder.mel_conv.$1",
        )
        .rename(
            r"conditioning_encoder\.attn\.(\d+)\.norm\.(weight|bias)",
            "conditioning_encoder.group_norms.$1.$2",
        );
    for suffix in ["weight", "bias"] {
        let targets: Vec<(String, Relayout)> = QKV
            .iter()
            .enumerate()
            .map(|(part, p)| {
                let target = format!("conditioning_encoder.mel_attn_blocks.$1.{p}_proj.{suffix}");
                (target, Relayout::HeadRows { heads, part })
            })
            .collect();
        table = table.row(
            &format!(r"conditioning_encoder\.attn\.(\d+)\.qkv\.{suffix}"),
            &targets,
        );
    }
    table = table
        .row(
            r"conditioning_encoder\.attn\.(\d+)\.proj_out\.weight",
            &[(
                "conditioning_encoder.mel_attn_blocks.$1.out_proj.weight",
                Relayout::Squeeze,
            )],
        )
        .rename(
            r"conditioning_encoder\.attn\.(\d+)\.proj_out\.bias",
            "conditioning_encoder.mel_attn_blocks.$1.out_proj.bias",
        )
        .rename(
            r"text_embedding\.weight",
            "conditioning_encoder.text_token_embedding.weight",
        )
        .rename(
            r"text_pos_embedding\.emb\.weight",
            "conditioning_encoder.text_position_embedding.weight",
        )
        .rename(
            r"mel_embedding\.weight",
            &format!("{DECODER}.input_embeds_layer.weight"),
        )
        .rename(
            r"mel_pos_embedding\.emb\.weight",
            &format!("{DECODER}.position_embeds_layer.weight"),
        )
        .rename(
            r"gpt\.h\.(\d+)\.ln_1\.(weight|bias)",
            &format!("{DECODER}.layers.$1.input_layernorm.$2"),
        )
        .rename(
            r"gpt\.h\.(\d+)\.ln_2\.(weight|bias)",
            &format!("{DECODER}.layers.$1.post_attention_layernorm.$2"),
        );
    let split = |suffix: &str, thirds: fn(usize) -> Relayout| -> Vec<(String, Relayout)> {
        QKV.iter()
            .enumerate()
            .map(|(part, p)| {
                (
                    format!("{DECODER}.layers.$1.attn.{p}_proj.{suffix}"),
                    thirds(part),
                )
            })
            .collect()
    };
    table = table
        .row(
            r"gpt\.h\.(\d+)\.attn\.c_attn\.weight",
            &split("weight", |part| Relayout::ColumnsTransposed {
                part,
                parts: 3,
            }),
        )
        .row(
            r"gpt\.h\.(\d+)\.attn\.c_attn\.bias",
            &split("bias", |part| Relayout::Rows { part, parts: 3 }),
        )
        .row(
            r"gpt\.h\.(\d+)\.attn\.c_proj\.weight",
            &[(
                &format!("{DECODER}.layers.$1.attn.out_proj.weight"),
                Relayout::Transpose,
            )],
        )
        .rename(
            r"gpt\.h\.(\d+)\.attn\.c_proj\.bias",
            &format!("{DECODER}.layers.$1.attn.out_proj.bias"),
        )
        .rename(
            r"gpt\.h\.(\d+)\.mlp\.(c_fc|c_proj)\.(weight|bias)",
            &format!("{DECODER}.layers.$1.mlp.$2.$3"),
        )
        .rename(
            r"gpt\.ln_f\.(weight|bias)",
            &format!("{DECODER}.layer_norm.$1"),
        )
        .rename(
            r"final_norm\.(weight|bias)",
            "speech_decoder_model.final_norm.$1",
        )
        .rename(
            r"mel_head\.(weight|bias)",
            "speech_decoder_model.lm_head.$1",
        )
        .ignore(r"gpt\.h\.\d+\.attn\.(?:bias|masked_bias)")
        .ignore(r"text_head\.(?:weight|bias)")
        .rename(r"temperature", "logit_scale");
    for (t, encoder) in [
        ("text", &config.text_config),
        ("speech", &config.speech_config),
    ] {
        let from = format!(r"{t}_transformer\.transformer");
        let to = format!("{t}_encoder_model");
        table = table
            .rename(
                &format!(r"{t}_emb\.weight"),
                &format!("{to}.token_embedding.weight"),
            )
            .rename(
                &format!(r"{from}\.attn_layers\.rotary_pos_emb\.inv_freq"),
                &format!("{to}.rotary_pos_emb.inv_freq"),
            )
            .rename(
                &format!(r"{from}\.norm\.(weight|bias)"),
                &format!("{to}.final_layer_norm.$1"),
            )
            .rename(
                &format!(r"to_{t}_latent\.weight"),
                &format!("{to}.projection.weight"),
            );
        for i in 0..encoder.num_hidden_layers {
            let (attn, ff) = (2 * i, 2 * i + 1);
            let layers = format!(r"{from}\.attn_layers\.layers");
            let layer = format!("{to}.layers.{i}");
            table = table
                .rename(
                    &format!(r"{layers}\.{attn}\.0\.0\.g"),
                    &format!("{layer}.input_rmsnorm.weight"),
                )
                .rename(
                    &format!(r"{layers}\.{attn}\.1\.wrap\.to_(q|k|v|out)\.(weight|bias)"),
                    &format!("{layer}.self_attn.${{1}}_proj.$2"),
                )
                .rename(
                    &format!(r"{layers}\.{ff}\.0\.0\.g"),
                    &format!("{layer}.post_attention_rmsnorm.weight"),
                )
                .rename(
                    &format!(r"{layers}\.{ff}\.1\.wrap\.net\.0\.proj\.(weight|bias)"),
                    &format!("{layer}.mlp.fc1.proj.$1"),
                )
                .rename(
                    &format!(r"{layers}\.{ff}\.1\.wrap\.net\.3\.(weight|bias)"),
                    &format!("{layer}.mlp.fc2.$1"),
                );
        }
    }
    table
}

/// The two files of a Tortoise model in `dir`, when both are there.
pub fn tortoise_files(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (ar, clvp) = (dir.join(AUTOREGRESSIVE_FILE), dir.join(CLVP_FILE));
    (ar.is_file() && clvp.is_file()).then_some((ar, clvp))
}

impl LoadedClvp {
    /// Load Tortoise's `autoregressive.pth` and `clvp2.pth` (PyTorch zip checkpoints, read without running
    /// pickle code) onto `device` through [`tortoise_conversion`]. `config` describes their shape;
    /// [`ClvpConfig::clvp_dev`] is the released one.
    pub fn from_tortoise(
        autoregressive: &Path,
        clvp: &Path,
        config: ClvpConfig,
        device: &Device,
    ) -> Result<Self, LoadModelError> {
        let ar = Weights::from_pytorch(autoregressive).map_err(HubError::from)?;
        let encoders = Weights::from_pytorch(clvp).map_err(HubError::from)?;
        let origin = autoregressive.parent().unwrap_or(autoregressive);
        let converted = tortoise_conversion(&config)
            .apply(&[&ar, &encoders], origin)
            .map_err(HubError::from)?;
        Self::from_weights(config, &converted, device)
    }

    /// [`Self::from_tortoise`] with the `config.json` beside `autoregressive` when there is one, else the released
    /// shape; files of another shape without one are told to add it.
    pub fn from_tortoise_files(
        autoregressive: &Path,
        clvp: &Path,
        device: &Device,
    ) -> Result<Self, LoadModelError> {
        let beside = autoregressive.parent().map(|d| d.join("config.json"));
        let (config, released) = match beside.filter(|p| p.is_file()) {
            Some(path) => (ClvpConfig::from_file(&path)?, false),
            None => (ClvpConfig::clvp_dev(), true),
        };
        match Self::from_tortoise(autoregressive, clvp, config, device) {
            Err(LoadModelError::Hub(HubError::Load(e))) if released && misshapen(&e) => {
                Err(NnError::Shape(format!(
                    "{}: Tortoise's files carry no hyper-parameters and, without a config.json beside them, are \
                     read as the released model (30 decoder layers of 1024, encoders of 20 layers of 768); these \
                     are another shape, so add the model's config.json (transformers' ClvpConfig). {}",
                    autoregressive.parent().unwrap_or(autoregressive).display(),
                    first_problem(&e)
                ))
                .into())
            }
            other => other,
        }
    }

    /// [`Self::from_tortoise_files`] for a local checkpoint directory holding both files. `Ok(None)` when the
    /// directory is not a Tortoise one.
    pub fn from_tortoise_checkpoint(
        checkpoint: &Checkpoint,
        device: &Device,
    ) -> Result<Option<Self>, LoadModelError> {
        let dir = match checkpoint.source() {
            clvp_hub::Source::Local(dir) => dir,
            clvp_hub::Source::Hub(_) => return Ok(None),
        };
        let converted = [
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
        ];
        if converted.iter().any(|f| dir.join(f).is_file()) {
            return Ok(None);
        }
        let Some((ar, clvp)) = tortoise_files(dir) else {
            return Ok(None);
        };
        Self::from_tortoise_files(&ar, &clvp, device).map(Some)
    }
}

/// The first problem, and how many more there are.
fn first_problem(e: &LoadError) -> String {
    let all = e.problems();
    match all.as_slice() {
        [] => e.to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more problems)", rest.len()),
    }
}

fn misshapen(e: &LoadError) -> bool {
    e.problems()
        .iter()
        .any(|p| matches!(p, LoadError::ShapeMismatch(_)))
}
