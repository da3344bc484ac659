//! `ClvpRotaryPositionalEmbedding` and `apply_rotary_pos_emb` (transformers 5.23): partial rotary on the first
//! `r` channels of each head, half-split `rotate_half`, positions `0..T`, applied to q, k **and** v.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::host::encoder_attention::RotaryTables;
use crate::host::to_host;

/// `ClvpRotaryPositionalEmbedding`: holds the persistent `inv_freq` buffer (`[r/2]`) of the checkpoint.
#[derive(Module, Debug)]
pub struct ClvpRotaryPositionalEmbedding {
    /// `1 / 10000^(2i/r)`, loaded from the checkpoint.
    pub inv_freq: Param<Tensor<1>>,
}

impl ClvpRotaryPositionalEmbedding {
    /// `inv_freq` for rotary dimension `dim` (as HF computes it; the checkpoint's buffer overrides it).
    pub fn new(dim: usize, device: &Device) -> Self {
        let half = dim / 2;
        let values: Vec<f32> = (0..half)
            .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / dim as f32))
            .collect();
        ClvpRotaryPositionalEmbedding {
            inv_freq: Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [half]),
                device,
            )),
        }
    }

    /// cos/sin tables for `t` positions.
    pub fn embedding(&self, t: usize) -> RotaryEmbedding {
        let inv = self.inv_freq.val();
        let [half] = inv.dims();
        let device = inv.device();
        let pos: Vec<f32> = (0..t).map(|i| i as f32).collect();
        let pos = Tensor::<2>::from_data(TensorData::new(pos, [t, 1]), &device);
        let freqs = pos.matmul(inv.reshape([1, half]));
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 1);
        RotaryEmbedding {
            cos: emb.clone().cos().reshape([1, 1, t, 2 * half]),
            sin: emb.sin().reshape([1, 1, t, 2 * half]),
        }
    }
}

/// cos/sin of `concat(freqs, freqs)` for one sequence length, broadcast over batch and heads.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RotaryEmbedding {
    /// The cos/sin tables on the host, `[T, r]` each, for the host attention.
    pub(crate) fn host_tables(&self) -> Result<RotaryTables, String> {
        Ok(RotaryTables {
            cos: to_host(self.cos.clone().into_data())?,
            sin: to_host(self.sin.clone().into_data())?,
            dim: self.cos.dims()[3],
        })
    }

    /// Rotate the first `r` channels of `x` `[B, heads, T, hd]`; the rest pass through.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, hd] = x.dims();
        let r = self.cos.dims()[3];
        let rot = x.clone().narrow(3, 0, r);
        let half = r / 2;
        let rotated = Tensor::cat(
            vec![
                -rot.clone().narrow(3, half, half),
                rot.clone().narrow(3, 0, half),
            ],
            3,
        );
        let rot = rot * self.cos.clone() + rotated * self.sin.clone();
        if r == hd {
            rot
        } else {
            Tensor::cat(vec![rot, x.narrow(3, r, hd - r)], 3).reshape([b, h, t, hd])
        }
    }
}
