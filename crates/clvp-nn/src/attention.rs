//! `ClvpSelfAttention` (transformers 5.23 `modeling_clvp.py`): shared by the encoders (rotary on q, k and v),
//! the decoder (causal, KV cache) and the conditioning encoder (bidirectional, unmasked).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, TensorData};

use crate::host::{encoder_attention, host_kernels_for, to_host};
use crate::linear::{self, Stored, torch_linear};
use crate::rotary::RotaryEmbedding;

/// PyTorch's `torch.finfo(torch.float32).min`, the value HF's eager masks add for masked positions.
pub const MASK_MIN: f32 = f32::MIN;

/// `ClvpSelfAttention`.
#[derive(Module, Debug)]
pub struct ClvpSelfAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection (always with bias).
    pub out_proj: Linear,
    /// Number of heads.
    pub num_heads: usize,
    /// Whether the attention between the projections runs on the host kernel (chosen from the device by
    /// [`host_kernels_for`], changed by the owning network's `set_host_kernels`).
    #[module(skip)]
    pub(crate) host_kernels: bool,
}

impl ClvpSelfAttention {
    /// New attention of `hidden` width, `heads` heads, q/k/v bias as configured.
    pub fn new(hidden: usize, heads: usize, qkv_bias: bool, device: &Device) -> Self {
        let lin = |bias| torch_linear(hidden, hidden, bias, device);
        ClvpSelfAttention {
            q_proj: lin(qkv_bias),
            k_proj: lin(qkv_bias),
            v_proj: lin(qkv_bias),
            out_proj: lin(true),
            num_heads: heads,
            host_kernels: host_kernels_for(device),
        }
    }

    /// Project and split heads: `[B, T, H]` → `[B, heads, T, hd]`.
    fn heads(&self, x: Tensor<3>, proj: &Linear) -> Tensor<4> {
        self.split_heads(linear::forward(proj, x, Stored::OutIn))
    }

    /// `[B, T, H]` → `[B, heads, T, hd]`.
    fn split_heads(&self, y: Tensor<3>) -> Tensor<4> {
        let [b, t, h] = y.dims();
        y.reshape([b, t, self.num_heads, h / self.num_heads])
            .swap_dims(1, 2)
    }

    /// The factor `q` is scaled by: `head_dim^-½`.
    fn query_scale(&self, hidden: usize) -> f64 {
        ((hidden / self.num_heads) as f64).powf(-0.5)
    }

    /// q (scaled by hd^-½), k, v of `x`, with the rotary embedding applied to all three when given.
    pub fn qkv(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryEmbedding>,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [_, _, h] = x.dims();
        let scale = self.query_scale(h);
        let q = self.heads(x.clone(), &self.q_proj) * scale;
        let k = self.heads(x.clone(), &self.k_proj);
        let v = self.heads(x, &self.v_proj);
        match rotary {
            Some(r) => (r.apply(q), r.apply(k), r.apply(v)),
            None => (q, k, v),
        }
    }

    /// [`Self::qkv`] (without rotary) from the three projections computed together: `projected` is
    /// `[B, T, 3·H]`, q then k then v.
    pub fn split_qkv(&self, projected: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let h = projected.dims()[2] / 3;
        let scale = self.query_scale(h);
        let part = |k: usize| self.split_heads(projected.clone().narrow(2, k * h, h));
        (part(0) * scale, part(1), part(2))
    }

    /// `softmax(q·kᵀ + mask)·v`, heads merged, through `out_proj`. `mask` is additive, broadcastable to
    /// `[B, heads, Tq, Tk]`.
    pub fn attend(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4>>,
    ) -> Tensor<3> {
        self.project_out(self.attend_heads(q, k, v, mask))
    }

    /// `out_proj` of merged heads `[B, T, H]`.
    pub fn project_out(&self, merged: Tensor<3>) -> Tensor<3> {
        linear::forward(&self.out_proj, merged, Stored::OutIn)
    }

    /// [`Self::attend`] before `out_proj`: the heads merged, `[B, Tq, H]`.
    ///
    /// One fused `burn::tensor::module::attention` call (scale 1: `q` comes scaled, as in HF): burn-flex
    /// keeps each head's scores in cache, or tiles them with an online softmax, instead of writing the
    /// `[B, heads, Tq, Tk]` score tensor and reading it back for every softmax pass; burn-ndarray runs
    /// burn's unfused composition of the same ops, and the cubecl backends (wgpu, CUDA) their own kernels.
    pub fn attend_heads(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4>>,
    ) -> Tensor<3> {
        let [b, heads, tq, hd] = q.dims();
        let tk = k.dims()[2];
        // A key-padding mask `[B, 1, 1, Tk]` is spelled out over the queries (B·Tq·Tk values, not
        // B·heads·Tq·Tk): burn-flex shares a mask across heads for free but copies one broadcast over Tq.
        let bias = mask.map(|m| {
            let [mb, mh, mq, _] = m.dims();
            if mq == 1 && tq > 1 {
                m.expand([mb, mh, tq, tk])
            } else {
                m
            }
        });
        let options = AttentionModuleOptions {
            scale: Some(1.0),
            softcap: None,
            is_causal: false,
        };
        attention(q, k, v, None, bias, options)
            .swap_dims(1, 2)
            .reshape([b, tq, heads * hd])
    }

    /// Full self-attention over `x` `[B, T, H]`. With the host kernels (a CPU backend) the attention between the
    /// projections runs on the host (`host::encoder_attention`); without, or with a mask other than a
    /// key-padding one, through burn.
    pub fn forward(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<Tensor<4>>,
    ) -> Tensor<3> {
        let device = x.device();
        if self.host_kernels
            && let Some(merged) = self.attend_on_host(x.clone(), rotary, mask.clone())
        {
            return self.project_out(Tensor::from_data(
                TensorData::new(merged, x.dims()),
                &device,
            ));
        }
        let (q, k, v) = self.qkv(x, rotary);
        self.attend(q, k, v, mask)
    }

    /// The heads merged (`[B, T, H]` values) by the host kernel, or `None` when the mask is not a key-padding
    /// mask `[B, 1, 1, T]` or a tensor cannot be read back (the caller then takes the burn path).
    fn attend_on_host(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<Tensor<4>>,
    ) -> Option<Vec<f32>> {
        let [b, t, h] = x.dims();
        let key_mask = match mask {
            Some(m) if m.dims() == [b, 1, 1, t] => Some(to_host(m.into_data()).ok()?),
            Some(_) => return None,
            None => None,
        };
        let tables = match rotary {
            Some(r) => Some(r.host_tables().ok()?),
            None => None,
        };
        // Borrowed in place: a fresh projection's buffer is moved out of its tensor, not copied.
        let [q, k, v] = [&self.q_proj, &self.k_proj, &self.v_proj]
            .map(|proj| linear::forward(proj, x.clone(), Stored::OutIn).into_data());
        let (q, k, v) = (
            q.as_slice::<f32>().ok()?,
            k.as_slice::<f32>().ok()?,
            v.as_slice::<f32>().ok()?,
        );
        let shape = encoder_attention::Shape {
            batch: b,
            len: t,
            hidden: h,
            heads: self.num_heads,
        };
        Some(encoder_attention::self_attention(
            [q, k, v],
            &shape,
            self.query_scale(h) as f32,
            tables.as_ref(),
            key_mask.as_deref(),
        ))
    }
}

/// Additive key-padding mask `[B, 1, 1, T]` from a `[B, T]` 0/1 mask (1 = attend), or `None` when nothing is
/// masked (HF then passes no mask at all).
pub fn key_padding_mask(mask: &[Vec<u32>], device: &Device) -> Option<Tensor<4>> {
    if mask.iter().all(|row| row.iter().all(|&m| m != 0)) {
        return None;
    }
    let b = mask.len();
    let t = mask.first().map_or(0, Vec::len);
    let values: Vec<f32> = mask
        .iter()
        .flat_map(|row| row.iter().map(|&m| if m != 0 { 0.0 } else { MASK_MIN }))
        .collect();
    Some(Tensor::from_data(
        TensorData::new(values, [b, 1, 1, t]),
        device,
    ))
}

/// Additive causal mask `[1, 1, t, keys]`: query i (absolute position past + i) sees keys ≤ past + i.
/// `keys ≥ past + t`; key slots from `past + t` on (a KV cache's unused capacity) are masked, so
/// attention can read a preallocated cache whole instead of a copied prefix.
pub fn causal_mask(past: usize, t: usize, keys: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..keys).map(move |j| if j <= past + i { 0.0 } else { MASK_MIN }))
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, t, keys]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Distribution, Tolerance};

    /// `forward` on a CPU backend (the host attention) against the burn path (`qkv` then `attend`), with
    /// partial and full rotary, with and without a key-padding mask, on lengths below and above 16 lanes.
    #[test]
    fn host_attention_matches_the_burn_path() {
        use crate::rotary::ClvpRotaryPositionalEmbedding;
        let device = Device::default();
        for (t, rot_dim, heads) in [(21, 16, 2), (40, 32, 2), (9, 0, 4)] {
            let attn = ClvpSelfAttention::new(64, heads, true, &device);
            let x = Tensor::<3>::random([2, t, 64], Distribution::Normal(0.0, 1.0), &device);
            let rotary = (rot_dim > 0)
                .then(|| ClvpRotaryPositionalEmbedding::new(rot_dim, &device).embedding(t));
            let padded = vec![vec![1; t], (0..t).map(|j| u32::from(j < t - 3)).collect()];
            for mask in [None, key_padding_mask(&padded, &device)] {
                let (q, k, v) = attn.qkv(x.clone(), rotary.as_ref());
                let want = attn.attend(q, k, v, mask.clone());
                let got = attn.forward(x.clone(), rotary.as_ref(), mask);
                got.into_data()
                    .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
            }
        }
    }

    /// The fused call against the unfused `softmax(q·kᵀ + mask)·v` HF writes, on lengths that take
    /// burn-flex's whole-score path (40) and its tiled online-softmax path (600 > 512), with no mask, a
    /// key-padding mask and a causal mask over a cache.
    #[test]
    fn fused_attention_matches_the_composition() {
        let device = Device::default();
        let attn = ClvpSelfAttention::new(64, 2, true, &device);
        for t in [40, 600] {
            let qkv = |s| Tensor::<4>::random([2, 2, t, 32], Distribution::Normal(0.0, s), &device);
            let (q, k, v) = (qkv(0.5), qkv(0.5), qkv(1.0));
            let padded = vec![vec![1; t], (0..t).map(|j| u32::from(j < t - 7)).collect()];
            let masks = [
                None,
                key_padding_mask(&padded, &device),
                Some(causal_mask(0, t, t, &device)),
            ];
            for mask in masks {
                let mut scores = q.clone().matmul(k.clone().swap_dims(2, 3));
                if let Some(m) = mask.clone() {
                    scores = scores + m;
                }
                let want = softmax(scores, 3)
                    .matmul(v.clone())
                    .swap_dims(1, 2)
                    .reshape([2, t, 64]);
                let want = linear::forward(&attn.out_proj, want, Stored::OutIn);
                let got = attn.attend(q.clone(), k.clone(), v.clone(), mask);
                got.into_data()
                    .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-4));
            }
        }
    }
}
