//! SEANet's convolution stacks on the host for a CPU backend: `EncodecConv1d`, `EncodecConvTranspose1d`,
//! `EncodecResnetBlock` and ELU over plain `[B, C, T]` buffers, each conv a few `gemm` calls on shifted
//! views of its padded input (no im2col copy), ELU computed once per value while padding, GroupNorm as
//! two passes for its statistics and one for the output, each split over the pool's threads. Same
//! functions as the burn path, summed in another order.
//!
//! Here: what moves tensors to plain buffers and back ([`Signal`], [`Pool`]);
//! `blocks.rs`: the blocks built from the slice kernels of `clvp_kernels::conv`.

use burn::tensor::{Device, Tensor, TensorData};

use crate::readback::values;

mod blocks;

/// A `[B, C, T]` signal on the host.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    pub b: usize,
    pub c: usize,
    pub t: usize,
    pub data: Vec<f32>,
}

impl Signal {
    /// Read `x` back to the host.
    pub fn read(x: Tensor<3>) -> Self {
        let [b, c, t] = x.dims();
        Signal {
            b,
            c,
            t,
            data: values(x),
        }
    }

    /// Back into a tensor on `device`.
    pub fn into_tensor(self, device: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(self.data, [self.b, self.c, self.t]), device)
    }

    /// A signal whose values the caller overwrites.
    fn uninit(b: usize, c: usize, t: usize, pool: &mut Pool) -> Self {
        Signal {
            b,
            c,
            t,
            data: pool.take(b * c * t),
        }
    }

    /// Every row of channel `c` set to `value(c)`.
    fn fill_rows(&mut self, value: impl Fn(usize) -> f32) {
        let (c, t) = (self.c, self.t.max(1));
        for (r, row) in self.data.chunks_exact_mut(t).enumerate() {
            row.fill(value(r % c.max(1)));
        }
    }

    fn item(&self, i: usize) -> &[f32] {
        &self.data[i * self.c * self.t..(i + 1) * self.c * self.t]
    }
}

/// Buffers a [`Pool`] keeps: more than a resnet block holds at once (its input, padded input, hidden
/// signal, output and shortcut).
const POOL_KEEP: usize = 6;

/// Buffers freed by one stack's convolutions, reused by the next ones: a fresh allocation of this
/// size is a fresh mapping, and the kernel zeroes every page of it on first touch.
#[derive(Debug, Default)]
pub(crate) struct Pool(Vec<Vec<f32>>);

impl Pool {
    /// A buffer of `n` values, whose contents the caller overwrites.
    fn take(&mut self, n: usize) -> Vec<f32> {
        if n == 0 {
            return Vec::new();
        }
        let best = (0..self.0.len())
            .filter(|&i| self.0[i].capacity() >= n)
            .min_by_key(|&i| self.0[i].capacity());
        let mut v = match best {
            Some(i) => self.0.swap_remove(i),
            None => Vec::with_capacity(n),
        };
        v.truncate(n);
        v.resize(n, 0.0);
        v
    }

    /// Hand `v` back. The pool keeps its [`POOL_KEEP`] largest buffers: a decoder's stages grow, so
    /// what an earlier stage freed is too small for the later ones and would only be held.
    pub fn give(&mut self, v: Vec<f32>) {
        if v.capacity() > 0 {
            self.0.push(v);
        }
        if self.0.len() > POOL_KEEP
            && let Some(i) = (0..self.0.len()).min_by_key(|&i| self.0[i].capacity())
        {
            self.0.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PadMode;
    use crate::conv::{pad1d, reflect_pad};

    #[test]
    fn padding_matches_the_tensor_path() {
        let device = Device::flex();
        for len in [1, 2, 3, 5, 9] {
            let row: Vec<f32> = (0..len).map(|i| i as f32 * 0.7 - 1.3).collect();
            for (left, right) in [(0, 0), (1, 1), (3, 4), (6, 0), (0, 5), (2, 9)] {
                for mode in [PadMode::Reflect, PadMode::Constant, PadMode::Replicate] {
                    let x =
                        Tensor::<3>::from_data(TensorData::new(row.clone(), [1, 1, len]), &device);
                    let want = values(match mode {
                        PadMode::Reflect => reflect_pad(x, left, right),
                        _ => pad1d(x, left, right, mode),
                    });
                    let mut got = vec![f32::NAN; left + len + right];
                    clvp_kernels::conv::pad_row(
                        &row,
                        left,
                        right,
                        blocks::kernel_pad(mode),
                        false,
                        &mut got,
                    );
                    assert_eq!(got, want, "{mode:?} len {len} pad ({left}, {right})");
                }
            }
        }
    }
}
