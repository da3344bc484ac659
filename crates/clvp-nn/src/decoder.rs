//! `ClvpDecoder` / `ClvpModel` / `ClvpForCausalLM` (transformers 5.23): GPT-2 blocks (tanh GELU, biased q/k/v),
//! learned positions, `ln_f` then `final_norm`, `lm_head` with bias; a preallocated KV cache kept outside.

use std::sync::{Arc, OnceLock};

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::MappedPages;

use crate::attention::{ClvpSelfAttention, causal_mask};
use crate::config::ClvpDecoderConfig;
use crate::error::NnError;
use crate::host::decoder::{HostDecoder, HostLayer, apply, pack_linear};
use crate::host::{Precision, host_kernels_for, require_cpu};
use crate::linear::{self, Stored, torch_linear};

mod kv_cache;
pub use kv_cache::KvCache;
use kv_cache::Store;

/// `ClvpDecoderMLP`: GPT-2 `Conv1D` layers (weights stored `[in, out]`, as burn's `Linear`).
#[derive(Module, Debug)]
pub struct ClvpDecoderMLP {
    /// `Conv1D(hidden → inner)`.
    pub c_fc: Linear,
    /// `Conv1D(inner → hidden)`.
    pub c_proj: Linear,
    /// `[out, in]` copies of both weights, made on the first burn-path forward of several sequences at
    /// once (sampling candidates on a GPU backend, or with host projections off) and used from then
    /// on. For a few rows per step the CPU matmul runs 3–4× faster in that orientation
    /// (`examples/mm_layout.rs`); decoding one sequence never makes them.
    #[module(skip)]
    out_in: Arc<OnceLock<[Tensor<2>; 2]>>,
    /// Where the loaded weights lie in a memory-mapped checkpoint: handed back once the copies exist,
    /// so the process does not hold both.
    #[module(skip)]
    pub(crate) mapped: Vec<MappedPages>,
}

impl ClvpDecoderMLP {
    fn new(c_fc: Linear, c_proj: Linear) -> Self {
        ClvpDecoderMLP {
            c_fc,
            c_proj,
            out_in: Arc::default(),
            mapped: Vec::new(),
        }
    }

    /// `c_proj(gelu_new(c_fc(z)))`.
    fn forward(&self, z: Tensor<3>) -> Tensor<3> {
        let [batch, _, _] = z.dims();
        let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
        let copies = if batch > 1 {
            Some(self.out_in.get_or_init(|| {
                let copies = [
                    linear::out_in_copy(self.c_fc.weight.val()),
                    linear::out_in_copy(self.c_proj.weight.val()),
                ];
                self.mapped.iter().for_each(MappedPages::release);
                copies
            }))
        } else {
            self.out_in.get()
        };
        // A copy made on another device (the module was moved since) is not used.
        let weights = copies
            .filter(|[fc, _]| fc.device() == z.device())
            .map(|[fc, proj]| (fc.clone(), proj.clone(), Stored::OutIn));
        let (fc, proj, stored) = weights.unwrap_or_else(|| {
            (
                self.c_fc.weight.val(),
                self.c_proj.weight.val(),
                Stored::InOut,
            )
        });
        let a = gelu_new(linear::apply(z, fc, bias(&self.c_fc), stored));
        linear::apply(a, proj, bias(&self.c_proj), stored)
    }
}

/// `NewGELUActivation` (`gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` with `x³` as `(x·x)·x`,
/// which is what `torch.pow(x, 3.0)` computes. burn's `gelu_approximate` calls `powf` per element and
/// allocates at every step; here one buffer is allocated and every later op runs in place.
fn gelu_new(x: Tensor<3>) -> Tensor<3> {
    const SQRT_2_OVER_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    let inner = ((x.clone() * x.clone() * x.clone()) * 0.044715 + x.clone()) * SQRT_2_OVER_PI;
    (inner.tanh() + 1.0) * x * 0.5
}

/// `ClvpDecoderLayer`: pre-LayerNorm causal attention and MLP with residuals.
#[derive(Module, Debug)]
pub struct ClvpDecoderLayer {
    /// Norm before attention.
    pub input_layernorm: LayerNorm,
    /// Causal self-attention.
    pub attn: ClvpSelfAttention,
    /// Norm before the MLP.
    pub post_attention_layernorm: LayerNorm,
    /// The MLP.
    pub mlp: ClvpDecoderMLP,
    /// Where the attention projections' weights lie in a memory-mapped checkpoint: handed back once
    /// the host copies exist.
    #[module(skip)]
    pub(crate) mapped: Vec<MappedPages>,
}

/// `ClvpDecoder`: embeddings, layers, `layer_norm` (GPT-2 `ln_f`).
#[derive(Module, Debug)]
pub struct ClvpDecoder {
    /// Speech-code embedding.
    pub input_embeds_layer: Embedding,
    /// Mel position embedding.
    pub position_embeds_layer: Embedding,
    /// The layers.
    pub layers: Vec<ClvpDecoderLayer>,
    /// Final LayerNorm of the decoder.
    pub layer_norm: LayerNorm,
}

/// `ClvpModel`: wraps the decoder as `.decoder`.
#[derive(Module, Debug)]
pub struct ClvpModel {
    /// The decoder.
    pub decoder: ClvpDecoder,
}

/// `ClvpForCausalLM`: `lm_head(final_norm(decoder(x)))`.
#[derive(Module, Debug)]
pub struct ClvpForCausalLM {
    /// The decoder model.
    pub model: ClvpModel,
    /// The second LayerNorm (Tortoise's `final_norm`).
    pub final_norm: LayerNorm,
    /// `Linear(hidden → vocab, bias=True)`.
    pub lm_head: Linear,
    /// How the projections run: `None` through burn's matmul on the loaded tensors, `Some` on the host
    /// kernels ([`crate::host`]) with weights packed in that precision on first use.
    #[module(skip)]
    host_precision: Option<Precision>,
    /// The packed weights, made on first use (or the error packing them met).
    #[module(skip)]
    host: Arc<OnceLock<Result<Arc<HostDecoder>, String>>>,
    /// Where `lm_head`'s weight lies in a memory-mapped checkpoint.
    #[module(skip)]
    pub(crate) mapped: Vec<MappedPages>,
}

impl ClvpForCausalLM {
    /// A randomly initialised decoder of `config`'s shape.
    pub fn new(config: &ClvpDecoderConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let eps = config.layer_norm_epsilon;
        let ln = || LayerNormConfig::new(h).with_epsilon(eps).init(device);
        let layer = || ClvpDecoderLayer {
            input_layernorm: ln(),
            attn: ClvpSelfAttention::new(
                h,
                config.num_attention_heads,
                config.use_attention_bias,
                device,
            ),
            post_attention_layernorm: ln(),
            mlp: ClvpDecoderMLP::new(
                LinearConfig::new(h, config.inner_dim()).init(device),
                LinearConfig::new(config.inner_dim(), h).init(device),
            ),
            mapped: Vec::new(),
        };
        ClvpForCausalLM {
            model: ClvpModel {
                decoder: ClvpDecoder {
                    input_embeds_layer: EmbeddingConfig::new(config.vocab_size, h).init(device),
                    position_embeds_layer: EmbeddingConfig::new(config.max_position_embeddings, h)
                        .init(device),
                    layers: (0..config.num_hidden_layers).map(|_| layer()).collect(),
                    layer_norm: ln(),
                },
            },
            final_norm: LayerNormConfig::new(h).with_epsilon(1e-5).init(device),
            lm_head: torch_linear(h, config.vocab_size, true, device),
            host_precision: host_kernels_for(device).then_some(Precision::F32),
            host: Arc::default(),
            mapped: Vec::new(),
        }
    }

    /// Run the projections (q/k/v, `out_proj`, the MLP, `lm_head`) on the host kernels of
    /// [`crate::host`] with weights packed in `precision`, or with `None` through burn's matmul. The
    /// weights are packed on the next forward, and from then on the loaded tensors are not read.
    ///
    /// Host kernels need a CPU backend: with `Some` on any other device this returns
    /// [`NnError::Config`]. [`Precision::F32`] gives the loaded model's results up to summation
    /// order; [`Precision::Bf16`] halves the weights' memory and the bytes each decoding step streams,
    /// at the cost of rounding every weight to 8 significant bits; [`Precision::Int8`] quarters them,
    /// rounding every weight to one of 255 steps of its output row's largest magnitude.
    pub fn set_host_projections(&mut self, precision: Option<Precision>) -> Result<(), NnError> {
        if precision.is_some() {
            let device = self.lm_head.weight.val().device();
            require_cpu(
                &device,
                &format!("host projections ({precision:?} weights)"),
            )?;
        }
        self.host_precision = precision;
        self.host = Arc::default();
        Ok(())
    }

    /// The decoder's part of the one switch between the host kernels and burn's ops: `true` runs the
    /// projections on the host (keeping bf16 or int8 weights if they were chosen, else f32), `false`
    /// through burn's matmul. `true` on a device that is not a CPU backend's is [`NnError::Config`].
    pub fn set_host_kernels(&mut self, on: bool) -> Result<(), NnError> {
        match (on, self.host_precision) {
            (true, Some(_)) => {}
            (true, None) => self.set_host_projections(Some(Precision::F32))?,
            (false, _) => self.set_host_projections(None)?,
        }
        for layer in &mut self.model.decoder.layers {
            layer.attn.host_kernels = on;
        }
        Ok(())
    }

    /// The precision of the host projections, `None` when burn's matmul runs them.
    pub fn host_projections(&self) -> Option<Precision> {
        self.host_precision
    }

    /// Pack the projections in `precision` for the host kernels, the layers in parallel, handing each layer's
    /// mapped checkpoint pages back once its copy exists (the loaded tensors are not used again).
    fn pack_host(&self, precision: Precision) -> Result<HostDecoder, NnError> {
        use rayon::prelude::*;
        let dec = &self.model.decoder;
        // Layers in parallel: most of a layer's time is the first touch of its fresh pages, which
        // both threads can take at once.
        let layers = dec
            .layers
            .par_iter()
            .enumerate()
            .map(|(i, layer)| {
                let a = &layer.attn;
                let host = HostLayer::pack(
                    [&a.q_proj, &a.k_proj, &a.v_proj],
                    &a.out_proj,
                    [&layer.mlp.c_fc, &layer.mlp.c_proj],
                    precision,
                )
                .map_err(|e| NnError::Shape(format!("decoder layer {i}: {e}")))?;
                layer.mapped.iter().for_each(MappedPages::release);
                layer.mlp.mapped.iter().for_each(MappedPages::release);
                Ok(host)
            })
            .collect::<Result<Vec<_>, NnError>>()?;
        let lm_head = pack_linear(&self.lm_head, precision)
            .map_err(|e| NnError::Shape(format!("lm_head: {e}")))?;
        self.mapped.iter().for_each(MappedPages::release);
        Ok(HostDecoder { layers, lm_head })
    }

    /// The packed projections, packing them first if needed; `None` without host projections.
    fn host(&self) -> Result<Option<Arc<HostDecoder>>, NnError> {
        let Some(precision) = self.host_precision else {
            return Ok(None);
        };
        let packed = self.host.get_or_init(|| {
            self.pack_host(precision)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        match packed {
            Ok(h) => Ok(Some(Arc::clone(h))),
            Err(e) => Err(NnError::Shape(format!(
                "packing the decoder's weights: {e}"
            ))),
        }
    }

    /// Embed speech ids `[B, T]` (no position added).
    pub fn embed_ids(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.model.decoder.input_embeds_layer.forward(ids)
    }

    /// Position embeddings of `positions` `[P]` → `[1, P, hidden]`.
    pub fn position_embeddings(&self, positions: &[usize], device: &Device) -> Tensor<3> {
        let p: Vec<i64> = positions.iter().map(|&x| x as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(p, [1, positions.len()]), device);
        self.model.decoder.position_embeds_layer.forward(ids)
    }

    /// Number of mel positions.
    pub fn max_positions(&self) -> usize {
        self.model.decoder.position_embeds_layer.weight.dims()[0]
    }

    /// Decoder hidden states (after `layer_norm`) of `inputs_embeds` `[B, T, H]` to which position
    /// embeddings `positions` (`[1 or B, T, H]`, broadcast as HF does) were already added by the caller;
    /// with a cache, attends to everything cached before and appends the new keys/values.
    pub fn hidden(
        &self,
        x: Tensor<3>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, NnError> {
        let device = x.device();
        let [b, t, _] = x.dims();
        let dec = &self.model.decoder;
        let past = match cache.as_deref() {
            Some(cache) if cache.len + t > cache.capacity => {
                return Err(NnError::Shape(format!(
                    "KV cache full: {} cached + {t} new positions > capacity {}",
                    cache.len, cache.capacity
                )));
            }
            Some(cache) => cache.len,
            None => 0,
        };
        let host = self.host()?;
        if let Some(cache) = cache.as_deref_mut() {
            cache.prepare(host.is_some(), &device)?;
            if cache.batch != b {
                return Err(NnError::Shape(format!(
                    "KV cache holds {} rows, the input has {b}",
                    cache.batch
                )));
            }
        }
        // With a cache, attention reads its whole preallocated buffer (a prefix of it is a strided view
        // that burn-flex's attention would copy, every layer of every step); the unused slots are
        // masked, and contribute exact zeros to the softmax.
        // Built once, on the first layer that attends through burn (the host cache needs none).
        let keys = cache.as_deref().map_or(t, KvCache::capacity);
        let mut mask: Option<Tensor<4>> = None;
        let mut x = x;
        for (i, layer) in dec.layers.iter().enumerate() {
            let hl = host.as_ref().and_then(|h| h.layers.get(i));
            let normed = layer.input_layernorm.forward(x.clone());
            let a = match (hl, cache.as_deref_mut()) {
                (
                    Some(hl),
                    Some(KvCache {
                        store: Store::Host(kv),
                        ..
                    }),
                ) => hl.cached_attention(kv, i, past, t, normed)?,
                (hl, cache) => {
                    let (q, k, v) = match hl {
                        Some(hl) => layer.attn.split_qkv(apply(&hl.qkv, normed)?),
                        None => layer.attn.qkv(normed, None),
                    };
                    let (k, v) = match cache {
                        Some(cache) => cache.append(i, k, v)?,
                        None => (k, v),
                    };
                    let mask = mask
                        .get_or_insert_with(|| causal_mask(past, t, keys, &device))
                        .clone();
                    let merged = layer.attn.attend_heads(q, k, v, Some(mask));
                    match hl {
                        Some(hl) => apply(&hl.out_proj, merged)?,
                        None => layer.attn.project_out(merged),
                    }
                }
            };
            let h = x + a;
            x = h.clone() + layer.mlp_forward(h, hl)?;
        }
        if let Some(cache) = cache {
            cache.len += t;
        }
        Ok(dec.layer_norm.forward(x))
    }

    /// Logits `[B, T, vocab]` of hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Result<Tensor<3>, NnError> {
        let normed = self.final_norm.forward(hidden);
        match self.host()? {
            Some(host) => apply(&host.lm_head, normed),
            None => Ok(linear::forward(&self.lm_head, normed, Stored::OutIn)),
        }
    }

    /// `forward(input_ids)` with positions `past..past+T` (past = cached length): logits `[B, T, vocab]`.
    pub fn forward_ids(
        &self,
        ids: Tensor<2, Int>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, NnError> {
        let x = self.embed_ids(ids);
        self.forward_embeds(x, cache)
    }

    /// `forward(inputs_embeds)` with positions `past..past+T` added: logits `[B, T, vocab]`.
    pub fn forward_embeds(
        &self,
        x: Tensor<3>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, NnError> {
        let device = x.device();
        let [_, t, _] = x.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());
        if past + t > self.max_positions() {
            return Err(NnError::Shape(format!(
                "sequence of {} positions exceeds max_position_embeddings {}",
                past + t,
                self.max_positions()
            )));
        }
        let positions: Vec<usize> = (past..past + t).collect();
        let x = x + self.position_embeddings(&positions, &device);
        self.logits(self.hidden(x, cache)?)
    }
}

impl ClvpDecoderLayer {
    fn mlp_forward(&self, h: Tensor<3>, host: Option<&HostLayer>) -> Result<Tensor<3>, NnError> {
        let z = self.post_attention_layernorm.forward(h);
        match host {
            Some(hl) => hl.mlp(z),
            None => Ok(self.mlp.forward(z)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    fn small_decoder(device: &Device) -> (ClvpDecoderConfig, ClvpForCausalLM) {
        let config = ClvpDecoderConfig::new()
            .with_vocab_size(16)
            .with_max_position_embeddings(16)
            .with_hidden_size(64)
            .with_num_hidden_layers(1)
            .with_num_attention_heads(2);
        let lm = ClvpForCausalLM::new(&config, device);
        (config, lm)
    }

    #[test]
    fn selecting_a_row_past_the_batch_is_an_error() {
        let device = Device::default();
        let (config, _) = small_decoder(&device);
        let mut cache = KvCache::new(&config, 2, 8, &device);
        let err = cache.select_rows(&[1, 2]).expect_err("row 2 of 2");
        assert!(
            err.to_string().contains("row 2 selected from a batch of 2"),
            "{err}"
        );
        assert!(cache.select_rows(&[1, 1, 0]).is_ok());
        assert!(cache.select_rows(&[2]).is_ok(), "the batch is 3 rows now");
    }

    /// A cache made for one batch size, fed another, and a cache filled on the host path then read
    /// through burn's: both are errors that say what does not fit.
    #[test]
    fn mismatched_caches_are_errors() {
        let device = Device::default();
        let (config, mut lm) = small_decoder(&device);
        let ids =
            |b: usize| Tensor::<2, Int>::from_data(TensorData::new(vec![1i64; b], [b, 1]), &device);

        let message = |r: Result<Tensor<3>, NnError>| r.err().map(|e| e.to_string());

        let mut cache = KvCache::new(&config, 2, 8, &device);
        let err = message(lm.forward_ids(ids(1), Some(&mut cache)));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("holds 2 rows") && e.contains("has 1")),
            "{err:?}"
        );

        lm.set_host_projections(Some(Precision::F32)).unwrap();
        let mut cache = KvCache::new(&config, 1, 8, &device);
        assert!(lm.forward_ids(ids(1), Some(&mut cache)).is_ok());
        lm.set_host_projections(None).unwrap();
        let err = message(lm.forward_ids(ids(1), Some(&mut cache)));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("1 positions from the host path")),
            "{err:?}"
        );
    }

    /// The `[out, in]` copies the MLP makes for several sequences give the rows the loaded `[in, out]`
    /// weights give one sequence at a time, and are kept once made.
    #[test]
    fn mlp_copies_match_the_loaded_layout() {
        let device = Device::default();
        let mlp = ClvpDecoderMLP::new(
            LinearConfig::new(16, 64).init(&device),
            LinearConfig::new(64, 16).init(&device),
        );
        let z = Tensor::<3>::random([2, 3, 16], Distribution::Default, &device);
        let rows: Vec<_> = (0..2)
            .map(|b| mlp.forward(z.clone().narrow(0, b, 1)))
            .collect();
        assert!(mlp.out_in.get().is_none(), "one sequence made copies");
        let both = mlp.forward(z);
        assert!(mlp.out_in.get().is_some(), "two sequences made no copies");
        both.into_data()
            .assert_approx_eq::<f32>(&Tensor::cat(rows, 0).into_data(), Tolerance::absolute(1e-5));
    }
}
