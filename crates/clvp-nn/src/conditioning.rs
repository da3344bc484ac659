//! `ClvpConditioningEncoder` (transformers 5.23): text tokens with BOS/EOS and positions from the mask's cumsum,
//! and the mel path (1×1 conv → GroupNorm → bidirectional attention with residual, × N; time frame 0 kept).

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::attention::ClvpSelfAttention;
use crate::config::ClvpConfig;
use crate::error::NnError;
use crate::host::require_cpu;

/// `ClvpConditioningEncoder`.
#[derive(Module, Debug)]
pub struct ClvpConditioningEncoder {
    /// Text token table (text vocabulary × decoder width).
    pub text_token_embedding: Embedding,
    /// Text position table (`max_text_tokens` × decoder width).
    pub text_position_embedding: Embedding,
    /// `Conv1d(feature_size → hidden, kernel 1)`.
    pub mel_conv: Conv1d,
    /// GroupNorm before each attention block.
    pub group_norms: Vec<GroupNorm>,
    /// Bidirectional attention blocks (biased q/k/v, no rotary, no mask).
    pub mel_attn_blocks: Vec<ClvpSelfAttention>,
    /// Text BOS id (`text_config.bos_token_id`).
    pub bos_token_id: usize,
    /// Text EOS id (`text_config.eos_token_id`).
    pub eos_token_id: usize,
}

/// `_pad_extra_bos_eos_tokens`: optionally prepend `bos`; insert `eos` at the first literal 0 of each row (or at
/// the end), and prepend a 1 to the mask. Returns the new ids and mask.
pub fn pad_extra_bos_eos(
    ids: &[Vec<u32>],
    mask: &[Vec<u32>],
    bos: Option<u32>,
    eos: Option<u32>,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let mut out_ids = Vec::with_capacity(ids.len());
    let mut out_mask = Vec::with_capacity(ids.len());
    for (row, m) in ids.iter().zip(mask) {
        let mut r = row.clone();
        let mut mm = m.clone();
        if let Some(b) = bos {
            r.insert(0, b);
            mm.insert(0, 1);
        }
        if let Some(e) = eos {
            let p = r.iter().position(|&x| x == 0).unwrap_or(r.len());
            r.insert(p, e);
            mm.insert(0, 1);
        }
        out_ids.push(r);
        out_mask.push(mm);
    }
    (out_ids, out_mask)
}

impl ClvpConditioningEncoder {
    /// A randomly initialised conditioning encoder of `config`'s shape.
    pub fn new(config: &ClvpConfig, device: &Device) -> Result<Self, NnError> {
        let d = &config.decoder_config;
        let groups = d.groupnorm_groups().map_err(NnError::Config)?;
        Ok(ClvpConditioningEncoder {
            text_token_embedding: EmbeddingConfig::new(
                config.text_config.vocab_size,
                d.hidden_size,
            )
            .init(device),
            text_position_embedding: EmbeddingConfig::new(d.max_text_tokens, d.hidden_size)
                .init(device),
            mel_conv: Conv1dConfig::new(d.feature_size, d.hidden_size, 1).init(device),
            group_norms: (0..d.num_mel_attn_blocks)
                .map(|_| {
                    GroupNormConfig::new(groups, d.hidden_size)
                        .with_epsilon(1e-5)
                        .init(device)
                })
                .collect(),
            mel_attn_blocks: (0..d.num_mel_attn_blocks)
                .map(|_| {
                    ClvpSelfAttention::new(
                        d.hidden_size,
                        d.num_attention_heads,
                        d.use_attention_bias,
                        device,
                    )
                })
                .collect(),
            bos_token_id: config.text_config.bos_token_id as usize,
            eos_token_id: config.text_config.eos_token_id as usize,
        })
    }

    /// Run the mel path's attention on the host kernel (`true`, a CPU backend's default) or through burn's ops
    /// (`false`). `true` on another device is [`NnError::Config`].
    pub fn set_host_kernels(&mut self, on: bool) -> Result<(), NnError> {
        if on {
            require_cpu(&self.mel_conv.weight.val().device(), "host kernels")?;
        }
        for attn in &mut self.mel_attn_blocks {
            attn.host_kernels = on;
        }
        Ok(())
    }

    /// The mel path: `[Ba, feature_size, Tm]` → the conditioning vector of time frame 0, `[Ba, 1, hidden]`.
    pub fn mel_vector(&self, input_features: Tensor<3>) -> Tensor<3> {
        let device = input_features.device();
        let mut h = self.mel_conv.forward(input_features);
        for (norm, attn) in self.group_norms.iter().zip(&self.mel_attn_blocks) {
            let residual = h.clone().swap_dims(1, 2);
            // Laid out `[B, T, C]` once here: each of the q/k/v projections would otherwise copy the
            // transposed view for itself.
            let normed = Tensor::from_data(norm.forward(h).swap_dims(1, 2).into_data(), &device);
            h = (attn.forward(normed, None, None) + residual).swap_dims(1, 2);
        }
        let [b, c, _] = h.dims();
        h.narrow(2, 0, 1).reshape([b, 1, c])
    }

    /// Tortoise's behaviour for several voice clips of one speaker: the conditioning vector is the **mean** of
    /// the per-clip vectors (`[clips, feature_size, Tm]` → `[1, 1, hidden]`). HF has no such path (one clip per
    /// batch row); feeding the result to the decoder in place of one clip's vector is what Tortoise does.
    pub fn mel_vector_mean(&self, input_features: Tensor<3>) -> Tensor<3> {
        self.mel_vector(input_features).mean_dim(0)
    }

    /// Text embeddings with BOS/EOS inserted and positions `cumsum(mask) − 1`: `[Bt, T+2, hidden]`.
    pub fn text_embeddings(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        device: &Device,
    ) -> Result<Tensor<3>, NnError> {
        let (ids, mask) = pad_extra_bos_eos(
            ids,
            mask,
            Some(self.bos_token_id as u32),
            Some(self.eos_token_id as u32),
        );
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        let vocab = self.text_token_embedding.weight.dims()[0];
        let max_pos = self.text_position_embedding.weight.dims()[0];
        let mut flat_ids = Vec::with_capacity(b * t);
        let mut flat_pos = Vec::with_capacity(b * t);
        for (row, m) in ids.iter().zip(&mask) {
            if row.len() != t || m.len() != t {
                return Err(NnError::Shape(
                    "text rows of different lengths (pad the batch)".into(),
                ));
            }
            let mut cum = 0i64;
            for (&id, &mv) in row.iter().zip(m) {
                if id as usize >= vocab {
                    return Err(NnError::TokenOutOfRange {
                        id: id as i64,
                        vocab,
                        what: "text token",
                    });
                }
                cum += mv as i64;
                let pos = cum - 1;
                if pos < 0 || pos as usize >= max_pos {
                    return Err(NnError::Shape(format!(
                        "text position {pos} outside 0..{max_pos} (text too long for max_text_tokens, or left padding)"
                    )));
                }
                flat_ids.push(id as i64);
                flat_pos.push(pos);
            }
        }
        let ids_t = Tensor::<2, Int>::from_data(TensorData::new(flat_ids, [b, t]), device);
        let pos_t = Tensor::<2, Int>::from_data(TensorData::new(flat_pos, [b, t]), device);
        Ok(self.text_token_embedding.forward(ids_t) + self.text_position_embedding.forward(pos_t))
    }

    /// `forward(input_features, input_ids, attention_mask)` → `[B, 1 + T + 2, hidden]` with HF's batch
    /// broadcast (1 text × N clips, N texts × 1 clip, or N × N).
    pub fn forward(
        &self,
        input_features: Tensor<3>,
        ids: &[Vec<u32>],
        mask: Option<&[Vec<u32>]>,
    ) -> Result<Tensor<3>, NnError> {
        let device = input_features.device();
        let ones: Vec<Vec<u32>>;
        let mask = match mask {
            Some(m) => m,
            None => {
                ones = ids.iter().map(|r| vec![1; r.len()]).collect();
                &ones
            }
        };
        let text = self.text_embeddings(ids, mask, &device)?;
        let mel = self.mel_vector(input_features);
        let (bt, ba) = (text.dims()[0], mel.dims()[0]);
        let (mel, text) = match (bt, ba) {
            (x, y) if x == y => (mel, text),
            (1, n) => (mel, text.repeat_dim(0, n)),
            (n, 1) => (mel.repeat_dim(0, n), text),
            (x, y) => {
                return Err(NnError::Shape(format!(
                    "the number of texts and of audios must be the same: {x} texts vs {y} audios"
                )));
            }
        };
        Ok(Tensor::cat(vec![mel, text], 1))
    }
}
