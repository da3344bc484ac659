//! `ClvpEncoder` (transformers 5.23): the text and speech encoders — token embedding, rotary self-attention,
//! RMSNorm pre-norm layers with a gated-GELU MLP, final LayerNorm, unmasked mean pooling, bias-free projection.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::attention::{ClvpSelfAttention, key_padding_mask};
use crate::config::ClvpEncoderConfig;
use crate::host::activation::gated_gelu;
use crate::host::{host_kernels_for, require_cpu};
use crate::linear::{self, Stored, torch_linear};
use crate::rotary::ClvpRotaryPositionalEmbedding;

/// `ClvpRMSNorm`: `weight · x / sqrt(mean(x²) + eps)`.
#[derive(Module, Debug)]
pub struct ClvpRMSNorm {
    /// Per-channel gain.
    pub weight: Param<Tensor<1>>,
    /// Epsilon inside the square root.
    pub eps: f64,
}

impl ClvpRMSNorm {
    /// A norm of width `d` with unit gain.
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        ClvpRMSNorm {
            weight: Param::from_tensor(Tensor::ones([d], device)),
            eps,
        }
    }

    /// Normalise over the last dimension.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let variance = x.clone().square().mean_dim(2);
        let [d] = self.weight.dims();
        x * (variance + self.eps).sqrt().recip() * self.weight.val().reshape([1, 1, d])
    }
}

/// `ClvpGatedLinearUnit`: `a · GELU(g)` with `[a | g] = proj(x)` (value half first, erf GELU).
#[derive(Module, Debug)]
pub struct ClvpGatedLinearUnit {
    /// `Linear(hidden → 2·intermediate)`.
    pub proj: Linear,
}

/// `ClvpEncoderMLP`: `fc2(fc1(x))` with the gated unit as `fc1`.
#[derive(Module, Debug)]
pub struct ClvpEncoderMLP {
    /// The gated linear unit.
    pub fc1: ClvpGatedLinearUnit,
    /// `Linear(intermediate → hidden)`.
    pub fc2: Linear,
    /// Whether the gated unit runs on the host (chosen from the device by [`host_kernels_for`]).
    #[module(skip)]
    pub(crate) host_kernels: bool,
}

impl ClvpEncoderMLP {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear::forward(&self.fc1.proj, x, Stored::OutIn);
        let [b, t, two_i] = h.dims();
        let i = two_i / 2;
        // With the host kernels (a CPU backend) the gated unit is one vectorised host pass over the projection's
        // buffer, read in place (moved out of its tensor, not copied): burn-flex's erf is a libm call per value,
        // and the composition five passes over the activations.
        let device = h.device();
        let h = if self.host_kernels {
            let data = h.into_data();
            if let Ok(v) = data.as_slice::<f32>() {
                let gated = TensorData::new(gated_gelu(v, i), [b, t, i]);
                return linear::forward(
                    &self.fc2,
                    Tensor::from_data(gated, &device),
                    Stored::OutIn,
                );
            }
            Tensor::from_data(data, &device)
        } else {
            h
        };
        let a = h.clone().narrow(2, 0, i);
        let g = h.narrow(2, i, i);
        let gated = a * gelu(g);
        linear::forward(&self.fc2, gated, Stored::OutIn)
    }
}

/// `ClvpEncoderLayer`: pre-RMSNorm attention and MLP with residuals.
#[derive(Module, Debug)]
pub struct ClvpEncoderLayer {
    /// Rotary self-attention.
    pub self_attn: ClvpSelfAttention,
    /// Gated MLP.
    pub mlp: ClvpEncoderMLP,
    /// Norm before attention.
    pub input_rmsnorm: ClvpRMSNorm,
    /// Norm before the MLP.
    pub post_attention_rmsnorm: ClvpRMSNorm,
}

/// Output of [`ClvpEncoder::forward`] (`ClvpEncoderOutput`).
#[derive(Debug, Clone)]
pub struct ClvpEncoderOutput {
    /// `projection(pooler_output)`, not normalised: `[B, projection_dim]`.
    pub embeds: Tensor<2>,
    /// Final-LayerNormed hidden states `[B, T, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// Mean over all T positions (padding included, as HF): `[B, hidden]`.
    pub pooler_output: Tensor<2>,
}

/// `ClvpEncoder`.
#[derive(Module, Debug)]
pub struct ClvpEncoder {
    /// Token embedding.
    pub token_embedding: Embedding,
    /// Rotary position embedding (`inv_freq` buffer).
    pub rotary_pos_emb: Option<ClvpRotaryPositionalEmbedding>,
    /// The layers.
    pub layers: Vec<ClvpEncoderLayer>,
    /// Final LayerNorm.
    pub final_layer_norm: LayerNorm,
    /// `Linear(hidden → projection_dim, bias=False)`.
    pub projection: Linear,
}

impl ClvpEncoder {
    /// A randomly initialised encoder of `config`'s shape (weights are then loaded from a checkpoint).
    pub fn new(config: &ClvpEncoderConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let layer = || ClvpEncoderLayer {
            self_attn: ClvpSelfAttention::new(
                h,
                config.num_attention_heads,
                config.use_attention_bias,
                device,
            ),
            mlp: ClvpEncoderMLP {
                fc1: ClvpGatedLinearUnit {
                    proj: torch_linear(h, 2 * config.intermediate_size, true, device),
                },
                fc2: torch_linear(config.intermediate_size, h, true, device),
                host_kernels: host_kernels_for(device),
            },
            input_rmsnorm: ClvpRMSNorm::new(h, config.layer_norm_eps, device),
            post_attention_rmsnorm: ClvpRMSNorm::new(h, config.layer_norm_eps, device),
        };
        ClvpEncoder {
            token_embedding: EmbeddingConfig::new(config.vocab_size, h).init(device),
            rotary_pos_emb: config
                .use_rotary_embedding
                .then(|| ClvpRotaryPositionalEmbedding::new(config.rotary_dim(), device)),
            layers: (0..config.num_hidden_layers).map(|_| layer()).collect(),
            final_layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            projection: torch_linear(h, config.projection_dim, false, device),
        }
    }

    /// Run the attention and the gated unit on the host kernels (`true`, a CPU backend's default) or through
    /// burn's ops (`false`, every other backend's). `true` on another device is [`crate::NnError::Config`].
    pub fn set_host_kernels(&mut self, on: bool) -> Result<(), crate::NnError> {
        if on {
            require_cpu(&self.projection.weight.val().device(), "host kernels")?;
        }
        for layer in &mut self.layers {
            layer.self_attn.host_kernels = on;
            layer.mlp.host_kernels = on;
        }
        Ok(())
    }

    /// Whether the encoder runs on the host kernels ([`Self::set_host_kernels`]).
    pub fn host_kernels(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| l.self_attn.host_kernels)
    }

    /// Encode `input_ids` `[B, T]` with an optional `[B][T]` 0/1 attention mask (masks keys only).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<&[Vec<u32>]>,
    ) -> ClvpEncoderOutput {
        let device = input_ids.device();
        let [_, t] = input_ids.dims();
        let mut x = self.token_embedding.forward(input_ids);
        let mask = attention_mask.and_then(|m| key_padding_mask(m, &device));
        let rotary = self.rotary_pos_emb.as_ref().map(|r| r.embedding(t));
        for layer in &self.layers {
            let a = layer.self_attn.forward(
                layer.input_rmsnorm.forward(x.clone()),
                rotary.as_ref(),
                mask.clone(),
            );
            let h = x + a;
            x = h.clone() + layer.mlp.forward(layer.post_attention_rmsnorm.forward(h));
        }
        let last_hidden_state = self.final_layer_norm.forward(x);
        let [b, _, hidden] = last_hidden_state.dims();
        let pooler_output = last_hidden_state.clone().mean_dim(1).reshape([b, hidden]);
        let embeds = linear::forward(&self.projection, pooler_output.clone(), Stored::OutIn);
        ClvpEncoderOutput {
            embeds,
            last_hidden_state,
            pooler_output,
        }
    }
}
